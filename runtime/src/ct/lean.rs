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
//!
//! The work is split in three so that bursts (`burst`) can do the first two for many packets before the third:
//! [`Conntrack::lean_parse`] (headers and hash), the chain walk ([`Conntrack::lean_step`] one link at a time,
//! [`Conntrack::lean_lookup`] the whole walk) and [`Conntrack::lean_act`] (the tracker on what the walk found).

use super::{
    ConnId, Conntrack, CtEventKind, CtInfo, L4State, Lookup, NONE_IDX, Nfct, Resolve, Tuple, ips,
    tcp, tick, tuple,
};
use crate::wire::proto;
use crate::wire::tcp_flags as F;
use nfr_vm::Verdict;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};

/// A segment the lean paths take, parsed and hashed once (64 bytes: bursts keep 32 of them).
#[derive(Clone, Copy)]
pub(super) struct LeanTcp<'a> {
    /// The datagram.
    pub l3: &'a [u8],
    /// The original-direction tuple.
    pub t: Tuple,
    /// The bucket of `t`.
    pub b: u32,
    /// Offset of the TCP header (20 or 40) and its length (`doff * 4`, within the datagram).
    pub thoff: u8,
    pub doff: u8,
    /// `F::ACK` or `F::SYN` (the flag class among SYN, FIN, RST and ACK).
    pub class: u8,
}

impl<'a> LeanTcp<'a> {
    /// The segment's fields (read again from the header, which is in L1 by now).
    #[inline(always)]
    fn seg(&self) -> tcp::Seg<'a> {
        let l3: &'a [u8] = self.l3;
        let th = l3.get(usize::from(self.thoff)..).unwrap_or_default();
        let th20: [u8; 20] = th.first_chunk().copied().unwrap_or([0; 20]);
        let doff = usize::from(self.doff);
        tcp::Seg {
            seq: u32::from_be_bytes([th20[4], th20[5], th20[6], th20[7]]),
            ack: u32::from_be_bytes([th20[8], th20[9], th20[10], th20[11]]),
            flags: th20[13],
            win: u16::from_be_bytes([th20[14], th20[15]]),
            payload_len: th.len().saturating_sub(doff) as u32,
            options: th.get(20..doff).unwrap_or_default(),
        }
    }
}

/// One link of a chain walk.
#[derive(Clone, Copy)]
pub(super) enum Step {
    /// The entry in slot `.0` matches in direction `.1` (not yet checked for expiry).
    Found(u32, usize),
    /// Not this one; the walk goes on at the link.
    Next(u32),
    /// The chain ends without a match.
    Miss,
}

impl Conntrack {
    /// `get_l4proto` and `tcp_error`'s header checks for the lean case, then the tuple and its bucket; `None`
    /// when the packet is not one the lean paths take.
    #[inline(always)]
    pub(super) fn lean_parse<'a>(&self, l3: &'a [u8], zone: u16) -> Option<LeanTcp<'a>> {
        let h: &[u8; 40] = l3.first_chunk()?;
        let v4 = h[0] == 0x45;
        let thoff = if v4 {
            // get_l4proto: no fragment offset.
            if h[9] != proto::TCP || h[6] & 0x1f != 0 || h[7] != 0 {
                return None;
            }
            20
        } else if h[0] >> 4 == 6 {
            if h[6] != proto::TCP || 40 + usize::from(u16::from_be_bytes([h[4], h[5]])) > l3.len() {
                return None;
            }
            40
        } else {
            return None;
        };
        let th = l3.get(thoff..)?;
        let th20: &[u8; 20] = th.first_chunk()?;
        let flags = th20[13];
        let class = flags & (F::SYN | F::FIN | F::RST | F::ACK);
        let doff = usize::from(th20[12] >> 4) * 4;
        // tcp_error's header-length checks; the flag classes taken here are valid flag combinations.
        if (class != F::ACK && class != F::SYN) || doff < 20 || th.len() < doff {
            return None;
        }
        let sport = u16::from_be_bytes([th20[0], th20[1]]);
        let dport = u16::from_be_bytes([th20[2], th20[3]]);
        let mut t = Tuple {
            l3: NFPROTO_IPV4,
            l4: proto::TCP,
            sport,
            dport,
            ..Tuple::default()
        };
        let hash = if v4 {
            t.src[..4].copy_from_slice(&h[12..16]);
            t.dst[..4].copy_from_slice(&h[16..20]);
            tuple::hash_v4(
                u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
                u32::from_le_bytes([h[16], h[17], h[18], h[19]]),
                sport,
                dport,
                zone,
                proto::TCP,
                self.settings.hash_seed,
            )
        } else {
            t.l3 = NFPROTO_IPV6;
            t.src.copy_from_slice(&h[8..24]);
            t.dst.copy_from_slice(&h[24..40]);
            t.hash(zone, self.settings.hash_seed)
        };
        Some(LeanTcp {
            l3,
            t,
            b: self.bucket_of(hash) as u32,
            thoff: thoff as u8,
            doff: doff as u8,
            class,
        })
    }

    /// One link of the walk for tuple `t` (TCP or UDP: a port protocol, whose inverse swaps the ports) in `zone`:
    /// the entry `cur` refers to (slot << 1 | direction) against `t`.
    #[inline(always)]
    pub(super) fn lean_step(&self, cur: u32, t: &Tuple, zone: u16) -> Step {
        let node = cur >> 1;
        let dir = (cur & 1) as usize;
        let Some(c) = self.conns.get(node as usize) else {
            return Step::Miss;
        };
        let hit = c.zone == zone
            && if dir == 0 {
                c.orig.key_eq(t)
            } else {
                c.orig.key_eq_swapped(t)
            };
        if hit {
            Step::Found(node, dir)
        } else if c.next[dir] == NONE_IDX {
            Step::Miss
        } else {
            Step::Next(c.next[dir])
        }
    }

    /// The lookup of a parsed segment: [`Self::lookup`] with [`Self::lean_step`]'s compare.
    #[inline(always)]
    pub(super) fn lean_lookup(&self, p: &LeanTcp<'_>, zone: u16, now: u64) -> Lookup {
        let mut cur = self.heads.get(p.b as usize).copied().unwrap_or(NONE_IDX);
        while cur != NONE_IDX {
            match self.lean_step(cur, &p.t, zone) {
                Step::Found(node, dir) => return self.found(node, dir, now),
                Step::Next(n) => cur = n,
                Step::Miss => break,
            }
        }
        Lookup::Miss
    }

    /// A match becomes `Found`, or `Expired` when its timeout has passed.
    #[inline(always)]
    pub(super) fn found(&self, node: u32, dir: usize, now: u64) -> Lookup {
        match self.conns.get(node as usize) {
            Some(c) if Self::expired(c, now) => Lookup::Expired,
            Some(_) => Lookup::Found(node, dir),
            None => Lookup::Miss,
        }
    }

    /// The lean paths of `conntrack_in` (see the module documentation).
    #[inline]
    pub(super) fn fast_tcp(&mut self, l3: &[u8], zone: u16, now: u64) -> Option<(Verdict, Nfct)> {
        let p = self.lean_parse(l3, zone)?;
        let found = self.lean_lookup(&p, zone, now);
        self.lean_act(&p, zone, found, now)
    }

    /// The lean tracker on what the lookup of `p` found.
    #[inline(always)]
    pub(super) fn lean_act(
        &mut self,
        p: &LeanTcp<'_>,
        zone: u16,
        found: Lookup,
        now: u64,
    ) -> Option<(Verdict, Nfct)> {
        match found {
            Lookup::Found(idx, dir) if p.class == F::ACK => self
                .established_at(idx, dir, &p.seg(), p.l3.len(), now)
                .map(|n| (Verdict::Accept, n)),
            Lookup::Miss if p.class == F::SYN => {
                Some(self.new_syn(&p.t, zone, &p.seg(), p.l3.len(), now))
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
        if status & (ips::CONFIRMED | ips::SEEN_REPLY) != ips::CONFIRMED | ips::SEEN_REPLY {
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
}
