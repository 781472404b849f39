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
    ConnId, Conntrack, CtEventKind, CtInfo, L4State, Lookup, Nfct, Resolve, Tuple, ips, tcp, tick,
    tuple,
};
use crate::wire::proto;
use crate::wire::tcp_flags as F;
use nfr_vm::Verdict;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};

impl Conntrack {
    /// The lean paths (see the module documentation): `None` when the packet is not theirs.
    #[inline]
    pub(super) fn fast_tcp(&mut self, l3: &[u8], zone: u16, now: u64) -> Option<(Verdict, Nfct)> {
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
        let found = if v4 {
            let src = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
            let dst = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
            let hash = tuple::hash_v4(
                src,
                dst,
                sport,
                dport,
                zone,
                proto::TCP,
                self.settings.hash_seed,
            );
            let found =
                self.lookup_tcp4(self.bucket_of(hash), [src, dst], [sport, dport], zone, now);
            if let Lookup::Miss = found {
                t.src[..4].copy_from_slice(&h[12..16]);
                t.dst[..4].copy_from_slice(&h[16..20]);
            }
            found
        } else {
            t.l3 = NFPROTO_IPV6;
            t.src.copy_from_slice(&h[8..24]);
            t.dst.copy_from_slice(&h[24..40]);
            self.lookup(self.bucket(&t, zone), &t, zone, now)
        };
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

    /// [`Self::lookup`] of an IPv4 TCP tuple given as its parts (addresses as little-endian reads of their 4
    /// bytes): an IPv4 entry's addresses are zero past the 4th byte, so the parts compare exactly.
    #[inline(always)]
    fn lookup_tcp4(&self, b: usize, addr: [u32; 2], port: [u16; 2], zone: u16, now: u64) -> Lookup {
        // The keys of both directions packed into words: original (the tuple), reply (its inverse).
        let key_addr = [
            u64::from(addr[0]) | u64::from(addr[1]) << 32,
            u64::from(addr[1]) | u64::from(addr[0]) << 32,
        ];
        let key_port = [
            u32::from(port[0]) | u32::from(port[1]) << 16,
            u32::from(port[1]) | u32::from(port[0]) << 16,
        ];
        let key_meta =
            u32::from(zone) | u32::from(NFPROTO_IPV4) << 16 | u32::from(proto::TCP) << 24;
        self.lookup_by(b, now, |c, dir| {
            let o = &c.orig;
            let oa = u64::from(u32::from_le_bytes([o.src[0], o.src[1], o.src[2], o.src[3]]))
                | u64::from(u32::from_le_bytes([o.dst[0], o.dst[1], o.dst[2], o.dst[3]])) << 32;
            let op = u32::from(o.sport) | u32::from(o.dport) << 16;
            let om = u32::from(c.zone) | u32::from(o.l3) << 16 | u32::from(o.l4) << 24;
            oa == key_addr[dir & 1] && op == key_port[dir & 1] && om == key_meta
        })
    }
}
