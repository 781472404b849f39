//! Bursts: [`Conntrack::conntrack_in_burst`] runs `conntrack_in` over a batch of packets (OVS's
//! `conntrack_execute` on a `dp_packet_batch`, VPP's vector of buffers) after fetching, for all of them at once,
//! the memory their lookups will touch.
//!
//! Once the table outgrows the caches, a lookup is a chain of dependent misses: bucket head, then each chain
//! entry, then the entry's protocol-state line. One packet at a time, the CPU waits for each in turn. Here three
//! short passes over the burst go one step further each, every step issuing a prefetch for the next: the bucket
//! heads; the first chain entries; then, for each packet, the matching entry's second line or the next link.
//! The misses of different packets overlap instead of adding up (group prefetching, as in hash joins). Chains
//! longer than two links are left to the lookup. A new entry's reply bucket is not fetched here:
//! `init_conntrack` prefetches its head itself, and `confirm` reads its chain only to count it.
//!
//! The first pass is also the lean path's parse: an IPv4 TCP segment of the lean cases ([`LeanV4`]) is parsed
//! and hashed once, and the packet later goes straight to the lean lookup and tracker with it; other TCP and
//! UDP datagrams get a tuple for the passes and then the ordinary `conntrack_in`. Nothing else crosses from
//! the passes to the packets: they only read the table and issue hints, and every lookup walks its chain
//! afresh, in packet order, so a burst's results are those of the packets one by one (a test holds them to
//! it). Packets the passes do not understand (not TCP/UDP, IPv4 fragments, IPv6 extension headers) are simply
//! not prefetched.

use super::lean::LeanV4;
use super::{Conn, Conntrack, NONE_IDX, Nfct, Tuple};
use crate::memhint::prefetch;
use crate::wire::proto;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};
use nfr_vm::{Hook, Verdict};

/// Packets whose walks advance together (OVS's `NETDEV_MAX_BURST`).
pub const BURST: usize = 32;

/// Below this many bytes of entries the table stays in the caches, the second and third passes would only add
/// their ~60 instructions a packet, and `conntrack_in_burst` skips them (`ct_profile hitb`, passes never /
/// always, on a 2-vCPU EPYC VM, 3 runs each: 71 / 76 ns a hit at 1K flows (128 KB of entries), even at 5K,
/// 88 / 77 ns at 10K, 108 / 85 ns at 30K).
pub const PREFETCH_MIN_BYTES: usize = 1 << 20;

/// The original-direction tuple of a TCP or UDP datagram (`nf_ct_get_tuple` for the common case): IPv4 that is
/// not a fragment, or IPv6 whose first next header is the transport.
fn burst_tuple(l3: &[u8]) -> Option<Tuple> {
    let first = *l3.first()?;
    let (l4, thoff, mut t) = match first >> 4 {
        4 => {
            let h: &[u8; 20] = l3.first_chunk()?;
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return None;
            }
            let mut t = Tuple {
                l3: NFPROTO_IPV4,
                ..Tuple::default()
            };
            t.src[..4].copy_from_slice(&h[12..16]);
            t.dst[..4].copy_from_slice(&h[16..20]);
            (h[9], usize::from(first & 0xf) * 4, t)
        }
        6 => {
            let h: &[u8; 40] = l3.first_chunk()?;
            let mut t = Tuple {
                l3: NFPROTO_IPV6,
                ..Tuple::default()
            };
            t.src.copy_from_slice(&h[8..24]);
            t.dst.copy_from_slice(&h[24..40]);
            (h[6], 40, t)
        }
        _ => return None,
    };
    if l4 != proto::TCP && l4 != proto::UDP {
        return None;
    }
    let ports: &[u8; 4] = l3.get(thoff..)?.first_chunk()?;
    t.l4 = l4;
    t.sport = u16::from_be_bytes([ports[0], ports[1]]);
    t.dport = u16::from_be_bytes([ports[2], ports[3]]);
    Some(t)
}

/// Whether [`Conntrack::conntrack_in_burst`] runs its prefetch passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BurstPrefetch {
    /// Once the table holds [`PREFETCH_MIN_BYTES`] of entries.
    #[default]
    Auto,
    Always,
    Never,
}

/// What the first pass made of a packet.
#[derive(Clone, Copy)]
enum Lane {
    /// Left to `conntrack_in` as it is (already attached, or not TCP/UDP in a form the passes read).
    Plain,
    /// A lean IPv4 TCP segment, parsed and hashed once for the passes and the lean path.
    Lean(LeanV4),
    /// Another TCP or UDP datagram: its tuple and bucket, for the prefetch passes only.
    Tuple(Tuple, u16, u32),
}

impl Conntrack {
    /// [`Self::conntrack_in`] for each packet of `pkts` in order, each starting from `nfcts[i]` (as
    /// `conntrack_in` does) and leaving its attachment there, with its verdict in `verdicts[i]`: equal, packet
    /// for packet, to calling `conntrack_in` in a loop, and faster.
    ///
    /// Once the table outgrows the caches ([`BurstPrefetch`]), up to [`BURST`] packets at a time: one pass
    /// parses them (lean IPv4 TCP segments are parsed and hashed once, for the passes and the lean path both)
    /// and prefetches their bucket heads, two more prefetch the chain entries the lookups will read (see the
    /// module documentation), then each packet goes through the lookup and tracker in order. Only hints cross
    /// from the passes to the packets: every lookup walks its chain afresh, so packets see the changes made by
    /// the packets before them. A table that fits the caches is run packet by packet.
    pub fn conntrack_in_burst(
        &mut self,
        pkts: &[&[u8]],
        hook: Hook,
        now: u64,
        nfcts: &mut [Nfct],
        verdicts: &mut [Verdict],
    ) {
        let csum = self.settings.checksum && hook == Hook::Prerouting;
        let lean = self.fast_path && !csum && self.nat_reply.is_empty();
        let deep = match self.burst_prefetch {
            BurstPrefetch::Auto => self.conns.len() * size_of::<Conn>() >= PREFETCH_MIN_BYTES,
            BurstPrefetch::Always => true,
            BurstPrefetch::Never => false,
        };
        for ((chunk, nfcts), verdicts) in pkts
            .chunks(BURST)
            .zip(nfcts.chunks_mut(BURST))
            .zip(verdicts.chunks_mut(BURST))
        {
            if !deep {
                // In the caches the passes have nothing to hide, and keeping the parsed lanes in memory
                // costs more than parsing in place.
                for ((l3, nfct), v) in chunk.iter().zip(nfcts).zip(verdicts) {
                    *v = self.conntrack_in(l3, hook, now, nfct);
                }
                continue;
            }
            let mut lanes = [Lane::Plain; BURST];
            for ((l3, nfct), lane) in chunk.iter().zip(nfcts.iter()).zip(&mut lanes) {
                // The zone `conntrack_in` will take; an attached packet is left alone.
                let zone = match *nfct {
                    Nfct::None => 0,
                    Nfct::Template { zone } => zone,
                    Nfct::Untracked | Nfct::Ct { .. } => continue,
                };
                self.fill_lane(lane, l3, zone, lean);
            }
            self.prefetch_walks(&lanes);
            for (((l3, nfct), v), lane) in chunk.iter().zip(nfcts).zip(verdicts).zip(&lanes) {
                *v = match lane {
                    Lane::Lean(seg) => {
                        *nfct = Nfct::None;
                        self.auto_gc(now);
                        match self.lean_v4(l3, *seg, now) {
                            Some((v, n)) => {
                                *nfct = n;
                                v
                            }
                            None => self.conntrack_in_general(l3, false, seg.zone, now, nfct),
                        }
                    }
                    _ => self.conntrack_in(l3, hook, now, nfct),
                };
            }
        }
    }

    /// Prefetches what `conntrack_in` will read for the packets of `pkts` (up to [`BURST`] at a time) in zone
    /// `zone`: the passes of [`Self::conntrack_in_burst`] without the packets. Changes nothing.
    pub fn prefetch_burst(&self, pkts: &[&[u8]], zone: u16) {
        for chunk in pkts.chunks(BURST) {
            let mut lanes = [Lane::Plain; BURST];
            for (l3, lane) in chunk.iter().zip(&mut lanes) {
                self.fill_lane(lane, l3, zone, true);
            }
            self.prefetch_walks(&lanes);
        }
    }

    /// The first pass for one packet in zone `zone`: its lane (a lean segment only when `lean`) written into
    /// `lane` (left as it is for a packet the passes do not read), with its bucket head prefetched.
    #[inline(always)]
    fn fill_lane(&self, lane: &mut Lane, l3: &[u8], zone: u16, lean: bool) {
        let b = if let Some(seg) = self.parse_v4(l3, zone).filter(|_| lean) {
            *lane = Lane::Lean(seg);
            seg.bucket
        } else if let Some(t) = burst_tuple(l3) {
            let b = self.bucket(&t, zone) as u32;
            *lane = Lane::Tuple(t, zone, b);
            b
        } else {
            return;
        };
        if let Some(h) = self.heads.get(b as usize) {
            prefetch(h);
        }
    }

    /// The second and third passes over a burst's lanes: the first chain entries, then each packet's matched
    /// entry's state line or its next link.
    fn prefetch_walks(&self, lanes: &[Lane; BURST]) {
        let mut at = [NONE_IDX; BURST];
        for (lane, at) in lanes.iter().zip(&mut at) {
            let b = match lane {
                Lane::Plain => continue,
                Lane::Lean(seg) => seg.bucket,
                Lane::Tuple(_, _, b) => *b,
            };
            let cur = self.heads.get(b as usize).copied().unwrap_or(NONE_IDX);
            if let Some(c) = self.conns.get((cur >> 1) as usize) {
                prefetch(c);
            }
            *at = cur;
        }
        for (lane, &cur) in lanes.iter().zip(&at) {
            let Some(c) = self.conns.get((cur >> 1) as usize) else {
                continue;
            };
            let dir = (cur & 1) as usize;
            let hit = match lane {
                Lane::Plain => continue,
                Lane::Lean(seg) => seg.matches(c, dir),
                Lane::Tuple(t, zone, _) => c.zone == *zone && c.orig.matches_dir(dir, t),
            };
            if hit {
                // The entry's second line: the protocol state the tracker reads and writes.
                prefetch(&c.l4);
            } else if let Some(n) = self.conns.get((c.next[dir] >> 1) as usize) {
                prefetch(n);
            }
        }
    }
}
