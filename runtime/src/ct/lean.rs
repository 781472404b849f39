//! The lean paths of `conntrack_in` for the dominant packets: TCP over IPv4 without options (not a fragment) or
//! IPv6 without extension headers, checksum verification off, and either
//! - an ACK segment (no SYN, FIN or RST) of a confirmed ESTABLISHED connection that has seen a reply
//!   ([`Conntrack::established_at`]), or
//! - a SYN (no ACK, FIN or RST) without an entry ([`Conntrack::new_syn`]).
//!
//! They run the kernel's checks for those cases (`get_l4proto`, `tcp_error`, the lookup, `init_conntrack`,
//! `tcp_in_window`, the timeout choice, ASSURED) without the general machinery. Whenever the packet leaves the
//! case (another protocol or flag set, lookup miss or hit where the other was expected, an expired match, a
//! failed window check, another state) they return `None` having changed nothing, and the general path handles
//! the packet from the start; a differential test holds the two to the same results.

use super::{
    Conn, ConnId, Conntrack, CtEventKind, CtInfo, L4State, Lookup, Nfct, Resolve, Tuple, ips, tcp,
    tick, tuple,
};
use crate::wire::proto;
use crate::wire::tcp_flags as F;
use nfr_vm::Verdict;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};

/// An IPv4 TCP segment of the lean cases (header without options, not a fragment, an ACK or a SYN segment),
/// parsed once: the lookup key packed in words, the fields the tracker reads, and the tuple's bucket. The
/// single-packet path parses and runs it in one go; bursts parse a whole batch first and prefetch its buckets.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LeanV4 {
    /// Source then destination address, as the little-endian read of header bytes 12..20.
    pub addr: u64,
    /// `sport | dport << 16`.
    pub port: u32,
    pub seq: u32,
    pub ack: u32,
    pub payload_len: u32,
    pub bucket: u32,
    pub win: u16,
    pub zone: u16,
    pub flags: u8,
    /// TCP header length in bytes (20..=60).
    pub doff: u8,
}

impl LeanV4 {
    /// Whether entry `c` is this segment's connection in direction `dir`.
    #[inline(always)]
    pub(super) fn matches(&self, c: &Conn, dir: usize) -> bool {
        let key_addr = [self.addr, self.addr.rotate_left(32)];
        let key_port = [self.port, self.port.rotate_left(16)];
        Conntrack::conn_is(c, dir, &key_addr, &key_port, self.meta())
    }

    /// Zone and protocols packed as [`Conntrack::conn_is`] compares them.
    #[inline(always)]
    fn meta(&self) -> u32 {
        u32::from(self.zone) | u32::from(NFPROTO_IPV4) << 16 | u32::from(proto::TCP) << 24
    }

    fn is_syn(&self) -> bool {
        self.flags & (F::SYN | F::FIN | F::RST | F::ACK) == F::SYN
    }

    /// The tuple of the segment's direction (for the SYN path, which creates the entry).
    fn tuple(&self) -> Tuple {
        let mut t = Tuple {
            l3: NFPROTO_IPV4,
            l4: proto::TCP,
            sport: self.port as u16,
            dport: (self.port >> 16) as u16,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&(self.addr as u32).to_le_bytes());
        t.dst[..4].copy_from_slice(&((self.addr >> 32) as u32).to_le_bytes());
        t
    }
}

impl Conntrack {
    /// The lean paths (see the module documentation): `None` when the packet is not theirs.
    #[inline]
    pub(super) fn fast_tcp(&mut self, l3: &[u8], zone: u16, now: u64) -> Option<(Verdict, Nfct)> {
        if l3.first() == Some(&0x45) {
            let seg = self.parse_v4(l3, zone)?;
            return self.lean_v4(l3, seg, now);
        }
        let h: &[u8; 40] = l3.first_chunk()?;
        if h[0] >> 4 != 6
            || h[6] != proto::TCP
            || 40 + usize::from(u16::from_be_bytes([h[4], h[5]])) > l3.len()
        {
            return None;
        }
        let th = l3.get(40..)?;
        let th20: &[u8; 20] = th.first_chunk()?;
        let flags = th20[13];
        let class = flags & (F::SYN | F::FIN | F::RST | F::ACK);
        let doff = usize::from(th20[12] >> 4) * 4;
        // tcp_error's header-length checks; the flag classes taken here are valid flag combinations.
        if (class != F::ACK && class != F::SYN) || doff < 20 || th.len() < doff {
            return None;
        }
        let mut t = Tuple {
            l3: NFPROTO_IPV6,
            l4: proto::TCP,
            sport: u16::from_be_bytes([th20[0], th20[1]]),
            dport: u16::from_be_bytes([th20[2], th20[3]]),
            ..Tuple::default()
        };
        t.src.copy_from_slice(&h[8..24]);
        t.dst.copy_from_slice(&h[24..40]);
        let found = self.lookup(self.bucket(&t, zone), &t, zone, now);
        let seg = tcp::Seg {
            seq: u32::from_be_bytes([th20[4], th20[5], th20[6], th20[7]]),
            ack: u32::from_be_bytes([th20[8], th20[9], th20[10], th20[11]]),
            flags,
            win: u16::from_be_bytes([th20[14], th20[15]]),
            payload_len: (th.len() - doff) as u32,
            options: th.get(20..doff).unwrap_or(&[]),
        };
        match found {
            Lookup::Found(idx, dir) if class == F::ACK => self
                .established_at(idx, dir, &seg, l3.len(), now)
                .map(|n| (Verdict::Accept, n)),
            Lookup::Miss if class == F::SYN => Some(self.new_syn(&t, zone, &seg, l3.len(), now)),
            _ => None,
        }
    }

    /// Parses `l3` as a [`LeanV4`] segment in zone `zone`, computing its bucket: `None` when the datagram is
    /// not one (the checks of `get_l4proto` and `tcp_error`'s header-length checks for these flag classes).
    #[inline(always)]
    pub(super) fn parse_v4(&self, l3: &[u8], zone: u16) -> Option<LeanV4> {
        let h: &[u8; 40] = l3.first_chunk()?;
        let flags = h[33];
        let class = flags & (F::SYN | F::FIN | F::RST | F::ACK);
        let doff = h[32] >> 4 << 2;
        if h[0] != 0x45
            || h[9] != proto::TCP
            || h[6] & 0x1f != 0
            || h[7] != 0
            || (class != F::ACK && class != F::SYN)
            || doff < 20
            || l3.len() - 20 < usize::from(doff)
        {
            return None;
        }
        let word = |at: usize| {
            h.get(at..at + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let addr = word(12);
        let ports = (word(20) as u32).swap_bytes();
        let (sport, dport) = ((ports >> 16) as u16, ports as u16);
        let hash = tuple::hash_v4(
            addr as u32,
            (addr >> 32) as u32,
            sport,
            dport,
            zone,
            proto::TCP,
            self.settings.hash_seed,
        );
        Some(LeanV4 {
            addr,
            port: u32::from(sport) | u32::from(dport) << 16,
            seq: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
            ack: u32::from_be_bytes([h[28], h[29], h[30], h[31]]),
            payload_len: (l3.len() - 20 - usize::from(doff)) as u32,
            bucket: self.bucket_of(hash) as u32,
            win: u16::from_be_bytes([h[34], h[35]]),
            zone,
            flags,
            doff,
        })
    }

    /// The lean paths for a parsed IPv4 segment `seg` of datagram `l3`: the lookup (a fresh walk of its
    /// bucket), then the established ACK or the new SYN; `None`, having changed nothing, otherwise.
    #[inline(always)]
    pub(super) fn lean_v4(&mut self, l3: &[u8], seg: LeanV4, now: u64) -> Option<(Verdict, Nfct)> {
        let found = self.lookup_tcp4(&seg, now);
        let tseg = tcp::Seg {
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            win: seg.win,
            payload_len: seg.payload_len,
            options: if seg.doff > 20 {
                l3.get(40..20 + usize::from(seg.doff)).unwrap_or(&[])
            } else {
                &[]
            },
        };
        match found {
            Lookup::Found(idx, dir) if !seg.is_syn() => self
                .established_at(idx, dir, &tseg, l3.len(), now)
                .map(|n| (Verdict::Accept, n)),
            Lookup::Miss if seg.is_syn() => {
                Some(self.new_syn(&seg.tuple(), seg.zone, &tseg, l3.len(), now))
            }
            _ => None,
        }
    }

    /// The established-ACK lean path on the entry the lookup found.
    #[inline(always)]
    fn established_at(
        &mut self,
        idx: u32,
        dir: usize,
        seg: &tcp::Seg<'_>,
        len: usize,
        now: u64,
    ) -> Option<Nfct> {
        let settings = &self.settings;
        let c = self.conns.get_mut(idx as usize)?;
        let status = c.status;
        // A NAT helper's sequence corrections (IPS_SEQ_ADJUST) are the general tracker's.
        if status & (ips::CONFIRMED | ips::SEEN_REPLY | ips::SEQ_ADJUST)
            != ips::CONFIRMED | ips::SEEN_REPLY
        {
            return None;
        }
        let L4State::Tcp(tc) = &mut c.l4 else {
            return None;
        };
        let (timeout_s, assured) =
            tcp::established_ack(tc, dir, seg, status & ips::ASSURED != 0, settings)?;
        if status & ips::FIXED_TIMEOUT == 0 {
            c.timeout = tick(now).wrapping_add(timeout_s.saturating_mul(1000));
        }
        let generation = c.generation;
        self.stats.found += 1;
        if assured {
            c.status |= ips::ASSURED;
            self.event(CtEventKind::Assured, idx, now);
        }
        self.account(idx, dir, len);
        Some(Nfct::Ct {
            id: ConnId { idx, generation },
            ctinfo: if dir == 1 {
                CtInfo::EstablishedReply
            } else {
                CtInfo::Established
            },
        })
    }

    /// The new-SYN lean path after a lookup miss: `init_conntrack` (allocation, early drop, expectation, helper),
    /// then `tcp_new` + `tcp_packet` folded into [`tcp::new_syn`], the timeout and the counters. Never falls back
    /// (allocation has side effects): returns the verdict and attachment the general path would.
    #[inline(always)]
    fn new_syn(
        &mut self,
        t: &Tuple,
        zone: u16,
        seg: &tcp::Seg<'_>,
        len: usize,
        now: u64,
    ) -> (Verdict, Nfct) {
        let idx = match self.init_conntrack(t, zone, now) {
            Ok(idx) => idx,
            Err(Resolve::Drop) => return (Verdict::Drop, Nfct::None),
            Err(_) => {
                self.stats.invalid += 1;
                return (Verdict::Accept, Nfct::None);
            }
        };
        let (tc, timeout_s) = tcp::new_syn(seg, &self.settings);
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return (Verdict::Accept, Nfct::None);
        };
        c.l4 = L4State::Tcp(tc);
        if c.status & ips::FIXED_TIMEOUT == 0 {
            c.timeout = timeout_s.saturating_mul(1000);
        }
        let ctinfo = if c.status & ips::EXPECTED != 0 {
            CtInfo::Related
        } else {
            CtInfo::New
        };
        let generation = c.generation;
        self.account(idx, 0, len);
        (
            Verdict::Accept,
            Nfct::Ct {
                id: ConnId { idx, generation },
                ctinfo,
            },
        )
    }

    /// [`Self::lookup`] of a [`LeanV4`] segment's tuple: an IPv4 entry's addresses are zero past the 4th byte,
    /// so the packed words compare exactly.
    #[inline(always)]
    fn lookup_tcp4(&self, seg: &LeanV4, now: u64) -> Lookup {
        // The keys of both directions: original (the tuple), reply (its inverse).
        let key_addr = [seg.addr, seg.addr.rotate_left(32)];
        let key_port = [seg.port, seg.port.rotate_left(16)];
        let key_meta = seg.meta();
        self.lookup_by(seg.bucket as usize, now, |node, c, dir| {
            if dir == 1 && c.status & ips::NAT_MASK != 0 {
                // A NAT binding's reply tuple is not the inverse of the original one.
                c.zone == seg.zone && self.conn_hit(node, c, dir, &seg.tuple())
            } else {
                Self::conn_is(c, dir, &key_addr, &key_port, key_meta)
            }
        })
    }

    /// Whether entry `c` in direction `dir` has the keys `key_*` (see [`Self::lookup_tcp4`]).
    #[inline(always)]
    fn conn_is(
        c: &Conn,
        dir: usize,
        key_addr: &[u64; 2],
        key_port: &[u32; 2],
        key_meta: u32,
    ) -> bool {
        let o = &c.orig;
        let oa = u64::from(u32::from_le_bytes([o.src[0], o.src[1], o.src[2], o.src[3]]))
            | u64::from(u32::from_le_bytes([o.dst[0], o.dst[1], o.dst[2], o.dst[3]])) << 32;
        let op = u32::from(o.sport) | u32::from(o.dport) << 16;
        oa == key_addr[dir & 1]
            && op == key_port[dir & 1]
            && c.zone == key_meta as u16
            && (u16::from(o.l3) | u16::from(o.l4) << 8) == (key_meta >> 16) as u16
    }
}
