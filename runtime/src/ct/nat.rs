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
}

/// The `bysource` key: an original tuple's source and protocols, and the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SrcKey([u8; 16], u16, u8, u8, u16);

impl SrcKey {
    pub(super) fn of(t: &Tuple, zone: u16) -> Self {
        SrcKey(t.src, t.sport, t.l3, t.l4, zone)
    }
}

/// Why a binding could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// The packet has no conntrack entry, or it is already confirmed.
    NoEntry,
    /// Every tuple of the range is in use (the kernel's confirm then fails: `insert_failed`).
    Exhausted,
}

impl Conntrack {
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
        let Nfct::Ct { id, .. } = nfct else {
            return Err(NatError::NoEntry);
        };
        let Some(c) = self.conn(*id) else {
            return Err(NatError::NoEntry);
        };
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
            if let Some(c) = self.conn_mut(*id) {
                c.status |= match manip {
                    Manip::Src => ips::SRC_NAT,
                    Manip::Dst => ips::DST_NAT,
                };
                c.next[1] = b1 as u32;
            }
        }
        if let Some(c) = self.conn_mut(*id) {
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
    /// has (the port may still move if the tuple is taken). A range with no free tuple is counted as the kernel's
    /// confirm would count the clash (`insert_failed`).
    pub fn nf_nat_alloc_null_binding(
        &mut self,
        nfct: &Nfct,
        manip: Manip,
        now: u64,
    ) -> Result<Tuple, NatError> {
        let Nfct::Ct { id, .. } = nfct else {
            return Err(NatError::NoEntry);
        };
        let Some(c) = self.conn(*id) else {
            return Err(NatError::NoEntry);
        };
        let reply = self.tuple_of(id.idx, c, 1);
        let ip = match manip {
            Manip::Src => reply.dst,
            Manip::Dst => reply.src,
        };
        let range = NatRange {
            addr: Some((ip, ip)),
            proto: None,
        };
        let r = self.nf_nat_setup_info(nfct, &range, manip, now);
        if r == Err(NatError::Exhausted) {
            self.stats.insert_failed += 1;
        }
        r
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

    /// `get_unique_tuple`: `orig` with the manipulated part taken from `range`, unused by any other entry.
    fn get_unique_tuple(
        &mut self,
        me: u32,
        orig: &Tuple,
        range: &NatRange,
        manip: Manip,
        zone: u16,
        now: u64,
    ) -> Result<Tuple, NatError> {
        let mut t = *orig;
        // find_appropriate_src: a source that already has a mapping keeps it when it is in range and unused.
        if manip == Manip::Src
            && let Some(&other) = self.nat_bysource.get(&SrcKey::of(orig, zone))
            && let Some(r) = self.nat_reply.get(&other)
        {
            let mut c = *orig;
            c.src = r.dst;
            c.sport = r.dport;
            let addr_ok = range.addr.is_none_or(|(lo, hi)| lo <= c.src && c.src <= hi);
            let port_ok = range
                .proto
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&c.sport));
            if addr_ok && port_ok && !self.nf_nat_used_tuple(me, &c, zone, now) {
                return Ok(c);
            }
        }
        // find_best_ips_proto: the range's first address (a single-address range is the common case).
        if let Some((min, _)) = range.addr {
            match manip {
                Manip::Src => t.src = min,
                Manip::Dst => t.dst = min,
            }
        }
        let in_range = |t: &Tuple| match range.proto {
            None => true,
            Some((lo, hi)) => {
                let k = key(t, manip);
                (lo..=hi).contains(&k)
            }
        };
        if in_range(&t) && !self.nf_nat_used_tuple(me, &t, zone, now) {
            return Ok(t);
        }
        if !(tuple::has_ports(t.l4) || t.l4 == proto::ICMP) {
            return Err(NatError::Exhausted);
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
        // A DST search starts at the range's first port (without `random`, which requests do not carry yet);
        // a SRC one at a random offset (here from the seeded hash).
        let mut off = match manip {
            Manip::Dst => 0,
            Manip::Src => (orig.hash(zone, self.settings.hash_seed) % range_size) as u16,
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
                return Err(NatError::Exhausted);
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
