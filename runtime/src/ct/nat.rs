//! NAT bindings on conntrack entries, after the kernel's nf_nat_core.c: `nf_nat_setup_info` turns a NAT range
//! into the entry's reply tuple at the connection's first packet (`get_unique_tuple`: the tuple is kept when it
//! is in range and unused, else `nf_nat_l4proto_unique_tuple` searches the port range), so that reply packets are
//! found by the NATed reply tuple and `conntrack -L` lists it; a `bysource` map lets a source that already has a
//! SNAT mapping keep it (`find_appropriate_src`). The port search starts at an offset derived from
//! the table's hash seed (the kernel's `get_random_u16()`), so that runs are repeatable.
//!
//! Every packet of a bound connection is then rewritten (`nf_nat_packet`, with `manip` doing the bytes): at a
//! DST hook (PREROUTING, OUTPUT) an original-direction packet of a DNATed connection gets the destination of the
//! reply tuple's inverse, a reply of an SNATed one its original source back as destination; at a SRC hook
//! (INPUT, POSTROUTING) the other way round. ICMP errors about a NATed flow have their quoted datagram rewritten
//! too (`nf_nat_icmp_reply_translation`).

mod manip;

use super::{Conntrack, CtInfo, Nfct, Tuple, tuple};
use crate::wire::proto;
pub use manip::manip_pkt;
use nfr_proto::nat::{NF_NAT_RANGE_PERSISTENT, NF_NAT_RANGE_PROTO_RANDOM_ALL};
use nfr_vm::Hook;
use nfr_vm::pkt::ips;

/// `NF_NAT_MAX_ATTEMPTS`.
const NF_NAT_MAX_ATTEMPTS: u32 = 128;

/// `enum nf_nat_manip_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manip {
    Src,
    Dst,
}

impl Manip {
    /// `HOOK2MANIP`: PREROUTING and OUTPUT change the destination, INPUT and POSTROUTING the source.
    pub fn of_hook(hook: Hook) -> Manip {
        if matches!(hook, Hook::Prerouting | Hook::Output) {
            Manip::Dst
        } else {
            Manip::Src
        }
    }

    /// `IPS_*_NAT_DONE`: the binding for this manipulation is set up.
    pub fn done_bit(self) -> u32 {
        match self {
            Manip::Src => ips::SRC_NAT_DONE,
            Manip::Dst => ips::DST_NAT_DONE,
        }
    }
}

/// What `nf_nat_packet` did to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatVerdict {
    /// Not NATed for this hook and direction: unchanged.
    Untouched,
    /// Rewritten.
    Rewritten,
    /// Too short to rewrite (or an ICMP error with a bad checksum): the hook drops it.
    Drop,
}

/// `struct nf_nat_range2`, resolved to addresses (network order, IPv4 in the first 4 bytes) and host-order ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRange {
    /// `NF_NAT_RANGE_MAP_IPS`: the address range.
    pub addr: Option<([u8; 16], [u8; 16])>,
    /// `NF_NAT_RANGE_PROTO_SPECIFIED`: the port (ICMP: echo id) range.
    pub proto: Option<(u16, u16)>,
    /// The other `NF_NAT_RANGE_*` flags (`random`, `fully-random`, `persistent`).
    pub flags: u32,
}

/// The `bysource` key: an original tuple's source and protocols, and the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SrcKey([u8; 16], u16, u8, u8, u16);

impl SrcKey {
    pub(super) fn of(t: &Tuple, zone: u16) -> Self {
        SrcKey(t.src, t.sport, t.l3, t.l4, zone)
    }
}

/// Why a binding could not be set up. (A range whose every tuple is in use is no error: as the kernel's
/// `get_unique_tuple` gives up, the binding keeps the last tuple tried, and the packet goes on through the later
/// hooks until confirm finds the clash and drops it, `insert_failed`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// The packet has no conntrack entry, or it is already confirmed.
    NoEntry,
}

impl Conntrack {
    /// The live entry `nfct` is attached to (`NatError::NoEntry` for none).
    fn nat_entry(&self, nfct: &Nfct) -> Result<(super::ConnId, &super::Conn), NatError> {
        let Nfct::Ct { id, .. } = nfct else {
            return Err(NatError::NoEntry);
        };
        let c = self.conn(*id).ok_or(NatError::NoEntry)?;
        Ok((*id, c))
    }

    /// `nf_nat_setup_info(ct, range, maniptype)` for the packet's unconfirmed entry: picks a unique tuple for
    /// the range and makes its inverse the entry's reply tuple, setting `IPS_SRC_NAT` / `IPS_DST_NAT` when it
    /// changed anything. Returns the reply tuple in force. `now` (ns) tells expired entries, which hold no tuple.
    pub fn nf_nat_setup_info(
        &mut self,
        nfct: &Nfct,
        range: &NatRange,
        manip: Manip,
        now: u64,
    ) -> Result<Tuple, NatError> {
        let (id, c) = self.nat_entry(nfct)?;
        if c.status & ips::CONFIRMED != 0 {
            return Err(NatError::NoEntry);
        }
        let zone = c.zone;
        let cur_reply = self.tuple_of(id.idx, c, 1);
        // The tuple as the original direction will look after this manip (nf_ct_invert_tuple of the reply).
        let Some(orig) = cur_reply.invert() else {
            return Err(NatError::NoEntry);
        };
        let new = self.get_unique_tuple(id.idx, &orig, range, manip, zone, now)?;
        let Some(reply) = new.invert() else {
            return Err(NatError::NoEntry);
        };
        if new != orig {
            // nf_conntrack_alter_reply; the still-unused reply link holds the reply bucket confirm links into.
            let b1 = self.bucket(&reply, zone);
            self.nat_reply.insert(id.idx, reply);
            if manip == Manip::Src {
                self.nat_bysource.insert(SrcKey::of(&orig, zone), id.idx);
            }
            if let Some(c) = self.conn_mut(id) {
                c.status |= match manip {
                    Manip::Src => ips::SRC_NAT,
                    Manip::Dst => ips::DST_NAT,
                };
                c.next[1] = b1 as u32;
            }
        }
        if let Some(c) = self.conn_mut(id) {
            c.status |= manip.done_bit();
        }
        Ok(reply)
    }

    /// `nf_nat_initialized`: whether the packet's entry has its binding for `manip`.
    pub fn nat_initialized(&self, nfct: &Nfct, manip: Manip) -> bool {
        match nfct {
            Nfct::Ct { id, .. } => self
                .conn(*id)
                .is_some_and(|c| c.status & manip.done_bit() != 0),
            _ => false,
        }
    }

    /// `nf_nat_alloc_null_binding`: the binding of a connection no NAT rule mapped, to the address it already
    /// has (the port may still move if the tuple is taken).
    pub fn nf_nat_alloc_null_binding(
        &mut self,
        nfct: &Nfct,
        manip: Manip,
        now: u64,
    ) -> Result<Tuple, NatError> {
        let (id, c) = self.nat_entry(nfct)?;
        let reply = self.tuple_of(id.idx, c, 1);
        let ip = match manip {
            Manip::Src => reply.dst,
            Manip::Dst => reply.src,
        };
        let range = NatRange {
            addr: Some((ip, ip)),
            proto: None,
            flags: 0,
        };
        self.nf_nat_setup_info(nfct, &range, manip, now)
    }

    /// The status bit that says a packet of direction `dir` is rewritten at a `manip` hook (`nf_nat_packet`:
    /// `IPS_SRC_NAT` / `IPS_DST_NAT`, swapped for replies).
    pub fn nat_status_bit(manip: Manip, dir: usize) -> u32 {
        let bit = match manip {
            Manip::Src => ips::SRC_NAT,
            Manip::Dst => ips::DST_NAT,
        };
        if dir == 1 { bit ^ ips::NAT_MASK } else { bit }
    }

    /// `nf_nat_packet`: rewrites the datagram `l3` of a packet attached to `nfct` at `hook` when its connection
    /// is NATed for that hook's manipulation in the packet's direction: towards the inverse of the tuple of the
    /// other direction (`nf_nat_manip_pkt`).
    pub fn nf_nat_packet(&self, nfct: &Nfct, hook: Hook, l3: &mut [u8]) -> NatVerdict {
        let Nfct::Ct { id, ctinfo } = nfct else {
            return NatVerdict::Untouched;
        };
        let Some(c) = self.conn(*id) else {
            return NatVerdict::Untouched;
        };
        let manip = Manip::of_hook(hook);
        let dir = ctinfo.dir();
        if c.status & Self::nat_status_bit(manip, dir) == 0 {
            return NatVerdict::Untouched;
        }
        // The other direction's tuple, by reference when it is stored (the original, or a NATed reply).
        let stored = if dir == 1 {
            Some(&c.orig)
        } else {
            self.nat_reply.get(&id.idx)
        };
        if let Some(o) = stored
            && l3.len() >= 20
            && manip::ipv4_manip_ports_of(l3, o, manip) == Some(true)
        {
            return NatVerdict::Rewritten;
        }
        let Some(target) = self.tuple_of(id.idx, c, 1 - dir).invert() else {
            return NatVerdict::Untouched;
        };
        if manip_pkt(l3, 0, &target, manip) {
            NatVerdict::Rewritten
        } else {
            NatVerdict::Drop
        }
    }

    /// `nf_nat_icmp_reply_translation` / `nf_nat_icmpv6_reply_translation` for a RELATED ICMP(v6) packet whose
    /// ICMP header is at `icmp_off` of `l3`: an error about a flow NATed for this hook's manipulation has the
    /// quoted datagram and the outer header rewritten. Dropped: a short error or one with a bad checksum (at
    /// every NAT hook, NATed flow or not), and an ICMP redirect about a NATed flow.
    pub fn nf_nat_icmp_reply_translation(
        &self,
        nfct: &Nfct,
        hook: Hook,
        l3: &mut [u8],
        icmp_off: usize,
    ) -> NatVerdict {
        let Nfct::Ct { id, ctinfo } = nfct else {
            return NatVerdict::Untouched;
        };
        let Some(c) = self.conn(*id) else {
            return NatVerdict::Untouched;
        };
        if !matches!(ctinfo, CtInfo::Related | CtInfo::RelatedReply) {
            return NatVerdict::Untouched;
        }
        if !manip::icmp_error_ok(l3, icmp_off, c.orig.l3 == nfr_vm::pkt::NFPROTO_IPV6) {
            return NatVerdict::Drop;
        }
        let redirect = if c.orig.l3 == nfr_vm::pkt::NFPROTO_IPV6 {
            137
        } else {
            5
        };
        if l3.get(icmp_off) == Some(&redirect)
            && (c.status & ips::NAT_DONE_MASK != ips::NAT_DONE_MASK
                || c.status & ips::NAT_MASK != 0)
        {
            return NatVerdict::Drop;
        }
        let manip = Manip::of_hook(hook);
        let dir = ctinfo.dir();
        if c.status & Self::nat_status_bit(manip, dir) == 0 {
            return NatVerdict::Untouched;
        }
        let other = self.tuple_of(id.idx, c, 1 - dir);
        if manip::icmp_reply_translation(l3, icmp_off, &other, manip) {
            NatVerdict::Rewritten
        } else {
            NatVerdict::Drop
        }
    }

    /// `get_unique_tuple`: `orig` with the manipulated part taken from `range`, unused by any other entry when
    /// the range has one; else the last tuple tried (the kernel gives up and keeps it: confirm drops the packet).
    fn get_unique_tuple(
        &mut self,
        me: u32,
        orig: &Tuple,
        range: &NatRange,
        manip: Manip,
        zone: u16,
        now: u64,
    ) -> Result<Tuple, NatError> {
        let random_all = range.flags & NF_NAT_RANGE_PROTO_RANDOM_ALL != 0;
        // nf_in_range: the source (address and port) of `t` is in the range.
        let src_in_range = |t: &Tuple| {
            range.addr.is_none_or(|(lo, hi)| lo <= t.src && t.src <= hi)
                && range
                    .proto
                    .is_none_or(|(lo, hi)| (lo..=hi).contains(&key(t, Manip::Src)))
        };
        // 1) A source keeps its original tuple when that is in range and unused, else the mapping it already has
        // (find_appropriate_src) when that is; not with `random`.
        if manip == Manip::Src && !random_all {
            if src_in_range(orig) {
                if !self.nf_nat_used_tuple(me, orig, zone, now) {
                    return Ok(*orig);
                }
            } else if let Some(&other) = self.nat_bysource.get(&SrcKey::of(orig, zone))
                && let Some(r) = self.nat_reply.get(&other)
            {
                let mut c = *orig;
                c.src = r.dst;
                c.sport = r.dport;
                if src_in_range(&c) && !self.nf_nat_used_tuple(me, &c, zone, now) {
                    return Ok(c);
                }
            }
        }
        // 2) The address.
        let mut t = *orig;
        if let Some((min, max)) = range.addr {
            let a = find_best_ips(&t, min, max, range.flags, zone);
            match manip {
                Manip::Src => t.src = a,
                Manip::Dst => t.dst = a,
            }
        }
        // 3) The port, kept when in range and unused (not with `random`).
        let in_range = |t: &Tuple| match range.proto {
            None => true,
            Some((lo, hi)) => {
                let k = key(t, manip);
                (lo..=hi).contains(&k)
            }
        };
        if !random_all && in_range(&t) && !self.nf_nat_used_tuple(me, &t, zone, now) {
            return Ok(t);
        }
        if !(tuple::has_ports(t.l4) || t.l4 == proto::ICMP) {
            return Ok(t);
        }
        // nf_nat_l4proto_unique_tuple
        let k = key(&t, manip);
        let (lo, hi) = match range.proto {
            Some((lo, hi)) => (lo.min(hi), lo.max(hi)),
            // DST manip never changes the port without a range: the tuple is kept, and its clash fails at
            // confirm.
            None if manip == Manip::Dst && t.l4 != proto::ICMP => return Ok(t),
            None if t.l4 == proto::ICMP => (0, u16::MAX),
            None if k < 512 => (1, 511),
            None if k < 1024 => (600, 1023),
            None => (1024, u16::MAX),
        };
        let range_size = u32::from(hi - lo) + 1;
        // A DST search starts at the range's first port unless `random`; a SRC one at a random offset (here from
        // the seeded hash, so that runs repeat).
        let mut off = if manip == Manip::Dst && !random_all {
            0
        } else {
            (orig.hash(zone, self.settings.hash_seed) % range_size) as u16
        };
        let mut attempts = range_size.min(NF_NAT_MAX_ATTEMPTS);
        loop {
            for i in 0..attempts {
                let p = lo.wrapping_add(((u32::from(off) + i) % range_size) as u16);
                set_key(&mut t, manip, p);
                if !self.nf_nat_used_tuple(me, &t, zone, now) {
                    return Ok(t);
                }
            }
            if attempts >= range_size || attempts < 16 {
                return Ok(t);
            }
            attempts /= 2;
            off = off.wrapping_mul(31).wrapping_add(7) % range_size as u16;
        }
    }

    /// `nf_nat_used_tuple` (`nf_conntrack_tuple_taken`): whether another entry already has `t`'s reply tuple
    /// (its inverse) in either direction.
    fn nf_nat_used_tuple(&self, me: u32, t: &Tuple, zone: u16, now: u64) -> bool {
        let Some(reply) = t.invert() else {
            return false;
        };
        let b = self.bucket(&reply, zone);
        let mut cur = self.heads.get(b).copied().unwrap_or(super::NONE_IDX);
        while cur != super::NONE_IDX {
            let node = cur >> 1;
            let dir = (cur & 1) as usize;
            let Some(c) = self.conns.get(node as usize) else {
                break;
            };
            // Expired entries do not count (nf_conntrack_tuple_taken skips them).
            if node != me
                && c.zone == zone
                && self.conn_hit(node, c, dir, &reply)
                && !Self::expired(c, now)
            {
                return true;
            }
            cur = c.next[dir];
        }
        false
    }
}

/// `find_best_ips_proto`'s address: the one address of a single-address range, else one chosen by hashing the
/// tuple's addresses (`jhash2`; with `persistent` the source alone), so that a client keeps its address.
fn find_best_ips(t: &Tuple, min: [u8; 16], max: [u8; 16], flags: u32, zone: u16) -> [u8; 16] {
    if min == max {
        return min;
    }
    let words = |a: &[u8; 16]| -> [u32; 4] {
        std::array::from_fn(|i| {
            u32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
        })
    };
    let last = if t.l3 == nfr_vm::pkt::NFPROTO_IPV4 {
        0
    } else {
        3
    };
    let (src, dst) = (words(&t.src), words(&t.dst));
    let persistent = flags & NF_NAT_RANGE_PERSISTENT != 0;
    let mut j = jhash2(
        &src,
        if persistent {
            0
        } else {
            dst[last] ^ u32::from(zone)
        },
    );
    let (lo, hi) = (words(&min), words(&max));
    let mut out = [0u32; 4];
    let mut full_range = false;
    for i in 0..=last {
        let (minip, dist) = if full_range {
            (0u32, u32::MAX)
        } else {
            let (a, b) = (u32::from_be(lo[i]), u32::from_be(hi[i]));
            (a, b.wrapping_sub(a).wrapping_add(1))
        };
        // reciprocal_scale
        let v = minip.wrapping_add(((u64::from(j) * u64::from(dist)) >> 32) as u32);
        out[i] = v.to_be();
        if out[i] != hi[i] {
            full_range = true;
        }
        if !persistent {
            j ^= dst[i];
        }
    }
    let mut a = [0u8; 16];
    for (i, w) in out.iter().enumerate().take(last + 1) {
        a[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    a
}

/// The kernel's `jhash2` (Bob Jenkins' lookup3 over 32-bit words).
fn jhash2(k: &[u32], initval: u32) -> u32 {
    let init = 0xdead_beefu32
        .wrapping_add((k.len() as u32) << 2)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = k;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        // __jhash_mix
        a = a.wrapping_sub(c) ^ c.rotate_left(4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ a.rotate_left(6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ b.rotate_left(8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c) ^ c.rotate_left(16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ a.rotate_left(19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ b.rotate_left(4);
        b = b.wrapping_add(a);
        k = &k[3..];
    }
    if k.is_empty() {
        return c;
    }
    if k.len() == 3 {
        c = c.wrapping_add(k[2]);
    }
    if k.len() >= 2 {
        b = b.wrapping_add(k[1]);
    }
    a = a.wrapping_add(k[0]);
    // __jhash_final
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

/// The manipulated key of `t`: source or destination port (ICMP: the echo id, for either manip).
fn key(t: &Tuple, manip: Manip) -> u16 {
    match manip {
        _ if t.l4 == proto::ICMP => t.sport,
        Manip::Src => t.sport,
        Manip::Dst => t.dport,
    }
}

fn set_key(t: &mut Tuple, manip: Manip, v: u16) {
    match manip {
        _ if t.l4 == proto::ICMP => t.sport = v,
        Manip::Src => t.sport = v,
        Manip::Dst => t.dport = v,
    }
}
