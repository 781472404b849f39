//! `-m recent`'s lists for the executor, as xt_recent keeps them (`net/netfilter/xt_recent.c`).
//!
//! - A list per `--name` (`recent_table`), made when the table is loaded (`recent_mt_check`, in
//!   entry order): its address mask is the one of the first rule naming it, its ring of
//!   timestamps per address holds `nstamps_max_mask + 1` stamps, the largest any of its rules
//!   needs (`roundup_pow_of_two(--hitcount)`, 32 without one: `ip_pkt_list_tot` is 0 by
//!   default).
//! - At most [`IP_LIST_TOT`] (100, the module's default `ip_list_tot`) addresses per list: a new
//!   one evicts the least recently updated (`recent_entry_init`).
//! - `recent_mt`: the packet's source (`--rsource`) or destination (`--rdest`) address, masked,
//!   looked up (with `--rttl`, also by TTL: the packet's, plus one after forwarding); `--set` adds
//!   it or stamps it and matches; `--rcheck`/`--update` match when it is there (with
//!   `--seconds`, stamped within that many seconds; with `--hitcount`, at least that many such
//!   stamps); `--update` stamps it when the rule matched; `--remove` removes it and matches;
//!   `--reap` removes the least recently updated address when its last stamp is older than
//!   `--seconds` (not the one being updated); `!` inverts the result.
//!
//! Time is the packet's, in jiffies (HZ 250, as `limit`), compared as the kernel's
//! `time_after` does. The lists are the table's own (the kernel shares one per name across a
//! network namespace's tables).

use crate::layout::*;
use std::collections::HashMap;

/// `ip_list_tot`: addresses per list (the module parameter's default).
pub const IP_LIST_TOT: usize = 100;

const NIL: u32 = u32::MAX;

/// `time_after(a, b)`: `a` is later than `b` (wrapping).
fn time_after(a: u64, b: u64) -> bool {
    (b.wrapping_sub(a) as i64) < 0
}

#[derive(Debug, Clone, Default)]
struct Entry {
    addr: [u8; 4],
    ttl: u8,
    /// The next stamp goes to `stamps[index & mask]`.
    index: u32,
    nstamps: u32,
    stamps: Vec<u64>,
    /// LRU neighbours (older, newer).
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone)]
struct List {
    name: Vec<u8>,
    mask: [u8; 4],
    nstamps_max_mask: u32,
    by_addr: HashMap<[u8; 4], u32>,
    slab: Vec<Entry>,
    free: Vec<u32>,
    /// Least and most recently updated.
    oldest: u32,
    newest: u32,
}

impl List {
    fn entry(&self, i: u32) -> Option<&Entry> {
        self.slab.get(i as usize)
    }

    fn unlink(&mut self, i: u32) {
        let Some(e) = self.entry(i) else { return };
        let (p, n) = (e.prev, e.next);
        match self.slab.get_mut(p as usize) {
            Some(x) => x.next = n,
            None => self.oldest = n,
        }
        match self.slab.get_mut(n as usize) {
            Some(x) => x.prev = p,
            None => self.newest = p,
        }
    }

    fn push_newest(&mut self, i: u32) {
        let last = self.newest;
        if let Some(e) = self.slab.get_mut(i as usize) {
            e.prev = last;
            e.next = NIL;
        }
        match self.slab.get_mut(last as usize) {
            Some(x) => x.next = i,
            None => self.oldest = i,
        }
        self.newest = i;
    }

    /// `recent_entry_remove`.
    fn remove(&mut self, i: u32) {
        self.unlink(i);
        if let Some(e) = self.slab.get(i as usize) {
            self.by_addr.remove(&e.addr);
            self.free.push(i);
        }
    }

    /// `recent_entry_lookup`: the address's entry, with `ttl` (non-zero) also its TTL.
    fn lookup(&self, addr: [u8; 4], ttl: u8) -> Option<u32> {
        let i = *self.by_addr.get(&addr)?;
        let e = self.entry(i)?;
        (ttl == e.ttl || ttl == 0 || e.ttl == 0).then_some(i)
    }

    /// `recent_entry_init`: a new entry stamped `now` (evicting the oldest of a full list).
    fn init(&mut self, addr: [u8; 4], ttl: u8, now: u64) -> u32 {
        if self.by_addr.len() >= IP_LIST_TOT {
            let old = self.oldest;
            self.remove(old);
        }
        let n = self.nstamps_max_mask as usize + 1;
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slab.push(Entry::default());
                self.slab.len() as u32 - 1
            }
        };
        if let Some(e) = self.slab.get_mut(i as usize) {
            e.addr = addr;
            e.ttl = ttl;
            e.stamps.clear();
            e.stamps.resize(n, 0);
            e.stamps[0] = now;
            e.nstamps = 1;
            e.index = 1;
        }
        self.by_addr.insert(addr, i);
        self.push_newest(i);
        i
    }

    /// `recent_entry_update`: stamp `now`, most recently updated.
    fn update(&mut self, i: u32, now: u64) {
        let mask = self.nstamps_max_mask;
        if let Some(e) = self.slab.get_mut(i as usize) {
            e.index &= mask;
            if let Some(s) = e.stamps.get_mut(e.index as usize) {
                *s = now;
            }
            e.index += 1;
            e.nstamps = e.nstamps.max(e.index);
        }
        self.unlink(i);
        self.push_newest(i);
    }

    /// `recent_entry_reap`: drop the least recently updated entry if its last stamp is before
    /// `time` (unless it is `working` and about to be updated).
    fn reap(&mut self, time: u64, working: u32, update: bool) {
        let old = self.oldest;
        if old == working && update {
            return;
        }
        let Some(e) = self.entry(old) else { return };
        let last = e
            .stamps
            .get((e.index as usize).wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        if time_after(time, last) {
            self.remove(old);
        }
    }
}

/// The lists of one table, and which list each `-m recent` match uses.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    lists: Vec<List>,
}

/// The packet facts `recent_mt` reads.
#[derive(Debug, Clone, Copy)]
pub struct RecentPkt {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// The TTL as seen before forwarding (`iph->ttl`, plus one on the way out of a forwarded
    /// packet).
    pub ttl: u8,
    /// Jiffies.
    pub now: u64,
}

impl Recent {
    /// `recent_mt_check` for one match (tables in entry order): the index of its list.
    pub fn check(&mut self, info: &RecentInfoV1) -> u32 {
        let nstamp_mask = match info.hit_count {
            0 => 32 - 1,
            h => h.next_power_of_two() - 1,
        };
        let name = info.name();
        if let Some(i) = self.lists.iter().position(|l| l.name == name) {
            if let Some(l) = self.lists.get_mut(i) {
                l.nstamps_max_mask = l.nstamps_max_mask.max(nstamp_mask);
            }
            return i as u32;
        }
        self.lists.push(List {
            name: name.to_vec(),
            mask: info.mask4(),
            nstamps_max_mask: nstamp_mask,
            by_addr: HashMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            oldest: NIL,
            newest: NIL,
        });
        self.lists.len() as u32 - 1
    }

    /// Addresses in list `name` (for tests and listings), least recently updated first.
    pub fn addresses(&self, name: &str) -> Vec<[u8; 4]> {
        let Some(l) = self.lists.iter().find(|l| l.name == name.as_bytes()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut i = l.oldest;
        while let Some(e) = l.entry(i) {
            out.push(e.addr);
            i = e.next;
        }
        out
    }

    /// `recent_mt` with list `list`.
    pub fn eval(&mut self, list: u32, info: &RecentInfoV1, p: &RecentPkt) -> bool {
        let Some(t) = self.lists.get_mut(list as usize) else {
            return false;
        };
        let mut ret = info.invert != 0;
        let raw = if info.side == XT_RECENT_DEST {
            p.daddr
        } else {
            p.saddr
        };
        let addr = [
            raw[0] & t.mask[0],
            raw[1] & t.mask[1],
            raw[2] & t.mask[2],
            raw[3] & t.mask[3],
        ];
        let cs = info.check_set;
        let look_ttl = if cs & XT_RECENT_TTL != 0 { p.ttl } else { 0 };
        let Some(e) = t.lookup(addr, look_ttl) else {
            if cs & XT_RECENT_SET == 0 {
                return ret;
            }
            t.init(addr, p.ttl, p.now);
            return !ret;
        };
        if cs & XT_RECENT_SET != 0 {
            ret = !ret;
        } else if cs & XT_RECENT_REMOVE != 0 {
            t.remove(e);
            return !ret;
        } else if cs & (XT_RECENT_CHECK | XT_RECENT_UPDATE) != 0 {
            let time = p.now.wrapping_sub(u64::from(info.seconds) * 250);
            let mut hits = 0u32;
            if let Some(ent) = t.entry(e) {
                for s in ent.stamps.iter().take(ent.nstamps as usize) {
                    if info.seconds != 0 && time_after(time, *s) {
                        continue;
                    }
                    hits += 1;
                    if info.hit_count == 0 || hits >= info.hit_count {
                        ret = !ret;
                        break;
                    }
                }
            }
            if cs & XT_RECENT_REAP != 0 {
                t.reap(time, e, cs & XT_RECENT_UPDATE != 0 && ret);
            }
        }
        if cs & XT_RECENT_SET != 0 || (cs & XT_RECENT_UPDATE != 0 && ret) {
            t.update(e, p.now);
            if let Some(x) = t.slab.get_mut(e as usize) {
                x.ttl = p.ttl;
            }
        }
        ret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(check_set: u8, seconds: u32, hit_count: u32, name: &str) -> RecentInfoV1 {
        let mut r = RecentInfoV1 {
            check_set,
            seconds,
            hit_count,
            ..RecentInfoV1::default()
        };
        r.set_name(name.as_bytes());
        r
    }

    fn pkt(a: u8, now: u64) -> RecentPkt {
        RecentPkt {
            saddr: [10, 0, 0, a],
            daddr: [10, 0, 0, 1],
            ttl: 64,
            now,
        }
    }

    #[test]
    fn hitcount_counts_stamps_within_seconds() {
        let mut r = Recent::default();
        let set = info(XT_RECENT_SET, 0, 0, "L");
        let chk = info(XT_RECENT_CHECK, 10, 3, "L");
        let (ls, lc) = (r.check(&set), r.check(&chk));
        assert_eq!(ls, lc);
        assert!(!r.eval(lc, &chk, &pkt(2, 0)));
        for t in [0, 250, 500] {
            assert!(r.eval(ls, &set, &pkt(2, t)));
        }
        assert!(r.eval(lc, &chk, &pkt(2, 600)));
        // 10 s after the first stamp only two remain within the window
        assert!(!r.eval(lc, &chk, &pkt(2, 2501)));
        assert!(r.eval(lc, &chk, &pkt(2, 2500)));
    }

    #[test]
    fn a_full_list_evicts_the_least_recently_updated() {
        let mut r = Recent::default();
        let set = info(XT_RECENT_SET, 0, 0, "L");
        let l = r.check(&set);
        for a in 0..=100u8 {
            r.eval(l, &set, &pkt(a, u64::from(a)));
        }
        let got = r.addresses("L");
        assert_eq!(got.len(), IP_LIST_TOT);
        assert_eq!(got[0], [10, 0, 0, 1]);
        // stamping address 1 makes 2 the oldest
        r.eval(l, &set, &pkt(1, 200));
        assert_eq!(r.addresses("L")[0], [10, 0, 0, 2]);
    }

    #[test]
    fn update_remove_reap_and_invert() {
        let mut r = Recent::default();
        let set = info(XT_RECENT_SET, 0, 0, "L");
        let upd = info(XT_RECENT_UPDATE | XT_RECENT_REAP, 5, 0, "L");
        let rm = info(XT_RECENT_REMOVE, 0, 0, "L");
        let l = r.check(&set);
        r.eval(l, &set, &pkt(1, 0));
        r.eval(l, &set, &pkt(2, 100));
        // within 5 s: matches and restamps 1 (so 2 is now the oldest)
        assert!(r.eval(l, &upd, &pkt(1, 1000)));
        assert_eq!(r.addresses("L"), vec![[10, 0, 0, 2], [10, 0, 0, 1]]);
        // at 2200 jiffies, 1 was stamped within 5 s (at 1000) and 2's last stamp (100) is
        // older: reaped while 1 is updated
        assert!(r.eval(l, &upd, &pkt(1, 2200)));
        assert_eq!(r.addresses("L"), vec![[10, 0, 0, 1]]);
        assert!(r.eval(l, &rm, &pkt(1, 2400)));
        assert!(r.addresses("L").is_empty());
        let mut not = info(XT_RECENT_CHECK, 0, 0, "L");
        not.invert = 1;
        assert!(r.eval(l, &not, &pkt(1, 2500)));
    }
}
