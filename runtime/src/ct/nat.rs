//! NAT bindings on conntrack entries, after the kernel's nf_nat_core.c: `nf_nat_setup_info` turns a NAT range
//! into the entry's reply tuple at the connection's first packet (`get_unique_tuple`: the tuple is kept when it
//! is in range and unused, else `nf_nat_l4proto_unique_tuple` searches the port range), so that reply packets are
//! found by the NATed reply tuple and `conntrack -L` lists it; a `bysource` map lets a source that already has a
//! SNAT mapping keep it (`find_appropriate_src`). The port search starts at an offset derived from
//! the table's hash seed (the kernel's `get_random_u16()`), so that runs are repeatable.

use super::{Conntrack, Nfct, Tuple, tuple};
use crate::wire::proto;
use nfr_vm::pkt::ips;

/// `NF_NAT_MAX_ATTEMPTS`.
const NF_NAT_MAX_ATTEMPTS: u32 = 128;

/// `enum nf_nat_manip_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manip {
    Src,
    Dst,
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
        Ok(reply)
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
            // DST manip never changes the port without a range.
            None if manip == Manip::Dst && t.l4 != proto::ICMP => return Err(NatError::Exhausted),
            None if t.l4 == proto::ICMP => (0, u16::MAX),
            None if k < 512 => (1, 511),
            None if k < 1024 => (600, 1023),
            None => (1024, u16::MAX),
        };
        let range_size = u32::from(hi - lo) + 1;
        let mut off = (orig.hash(zone, self.settings.hash_seed) % range_size) as u16;
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
