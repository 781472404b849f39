//! Bursts: [`Conntrack::conntrack_in_burst`] runs `conntrack_in` over a batch of packets (OVS's
//! `conntrack_execute` on a `dp_packet_batch`, VPP's vector of buffers) after fetching, for all of them at once,
//! the memory their lookups will touch.
//!
//! Once the table outgrows the caches, a lookup is a chain of dependent misses: bucket head, then each chain
//! entry, then the entry's protocol-state line. One packet at a time, the CPU waits for each in turn. Here the
//! walks of a whole burst advance in rounds, one link per packet per round, each step issuing a prefetch for the
//! next, so the misses of different packets overlap (group prefetching, as in hash joins). A walk that ends
//! without a match goes on through the reply tuple's bucket, which `confirm` will search for a clash and link
//! into.
//!
//! The rounds only read the table. Every packet then goes through `conntrack_in` in order, so a burst's results
//! are by construction those of the packets one by one: the lean path reuses the packet's parse and, if no chain
//! changed since (the table's `epoch`), the walk's result; otherwise it walks again (a packet may well find an
//! entry that an earlier packet of the same burst created). Packets the rounds do not understand (not TCP/UDP,
//! IPv4 fragments, IPv6 extension headers) are not prefetched. A differential test compares bursts with single
//! packets on random traffic.

use super::lean::{LeanTcp, Step};
use super::{Conntrack, NONE_IDX, Nfct, Tuple};
use crate::memhint::prefetch;
use crate::wire::proto;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};
use nfr_vm::{Hook, Verdict};

/// Packets whose walks advance together (OVS's `NETDEV_MAX_BURST`).
pub const BURST: usize = 32;

/// Rounds after which walks still going are left to the packet's own lookup (chains hold ~2 links).
const MAX_ROUNDS: usize = 8;

/// What a burst's rounds learnt about a packet that the lean path takes, for [`Conntrack::conntrack_in`].
#[derive(Clone, Copy)]
pub(super) struct Pre<'p, 'a> {
    pub p: &'p LeanTcp<'a>,
    /// The zone `p` was hashed for.
    pub zone: u16,
    /// How the walk of the original tuple ended, if it did.
    pub walk: Option<Step>,
    /// The table's epoch during the walk.
    pub epoch: u64,
}

/// Walk modes (`mode[i]`; 0: not walking): at the bucket head `cur[i]`, or at the chain entry `cur[i]` refers to
/// (slot << 1 | direction); `REPLY`: of the reply tuple, after the original tuple's walk missed.
const HEAD: u8 = 1;
const NODE: u8 = 2;
const REPLY: u8 = 4;

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

/// The reply tuple of a port protocol's tuple.
fn swapped(t: &Tuple) -> Tuple {
    Tuple {
        src: t.dst,
        dst: t.src,
        sport: t.dport,
        dport: t.sport,
        ..*t
    }
}

impl Conntrack {
    /// [`Self::conntrack_in`] for each packet of `pkts` in order, each starting from `nfcts[i]` (as
    /// `conntrack_in` does) and leaving its attachment there, with its verdict in `verdicts[i]`. Equal, packet for
    /// packet, to calling `conntrack_in` in a loop; faster once the table outgrows the caches.
    ///
    /// Walks are prepared for the zone of `nfcts[0]`'s template (0 without one); a packet of another zone
    /// simply takes the ordinary path.
    pub fn conntrack_in_burst(
        &mut self,
        pkts: &[&[u8]],
        hook: Hook,
        now: u64,
        nfcts: &mut [Nfct],
        verdicts: &mut [Verdict],
    ) {
        let zone = match nfcts.first() {
            Some(Nfct::Template { zone }) => *zone,
            _ => 0,
        };
        for ((chunk, nfcts), verdicts) in pkts
            .chunks(BURST)
            .zip(nfcts.chunks_mut(BURST))
            .zip(verdicts.chunks_mut(BURST))
        {
            let mut lean: [Option<LeanTcp<'_>>; BURST] = [None; BURST];
            let mut ends: [Option<Step>; BURST] = [None; BURST];
            self.prefetch_chunk(chunk, zone, &mut lean, &mut ends);
            let epoch = self.epoch;
            for (i, ((l3, nfct), v)) in chunk.iter().zip(nfcts).zip(verdicts).enumerate() {
                let pre = match (lean.get(i), ends.get(i)) {
                    (Some(Some(p)), Some(&walk)) => Some(Pre {
                        p,
                        zone,
                        walk,
                        epoch,
                    }),
                    _ => None,
                };
                *v = self.conntrack_in_pre(l3, hook, now, nfct, pre);
            }
        }
    }

    /// Prefetches what `conntrack_in` and `confirm` will read for each packet of `pkts`, in zone `zone`.
    /// Changes nothing.
    pub fn prefetch_burst(&self, pkts: &[&[u8]], zone: u16) {
        for chunk in pkts.chunks(BURST) {
            let mut lean: [Option<LeanTcp<'_>>; BURST] = [None; BURST];
            let mut ends: [Option<Step>; BURST] = [None; BURST];
            self.prefetch_chunk(chunk, zone, &mut lean, &mut ends);
        }
    }

    /// The rounds over one chunk (at most [`BURST`] packets): the lean packets' parses land in `lean`, and how
    /// their original tuple's walk ended in `ends`.
    pub(super) fn prefetch_chunk<'a>(
        &self,
        chunk: &[&'a [u8]],
        zone: u16,
        lean: &mut [Option<LeanTcp<'a>>; BURST],
        ends: &mut [Option<Step>; BURST],
    ) {
        let mut keys = [Tuple::default(); BURST];
        let mut mode = [0u8; BURST];
        let mut cur = [0u32; BURST];
        let mut going = 0;
        for (i, l3) in chunk.iter().enumerate().take(BURST) {
            let b = if let Some(p) = self.lean_parse(l3, zone) {
                keys[i] = p.t;
                lean[i] = Some(p);
                p.b as usize
            } else if let Some(t) = burst_tuple(l3) {
                keys[i] = t;
                self.bucket(&t, zone)
            } else {
                continue;
            };
            if let Some(h) = self.heads.get(b) {
                prefetch(h);
                mode[i] = HEAD;
                cur[i] = b as u32;
                going += 1;
            }
        }
        let n = chunk.len().min(BURST);
        for _ in 0..MAX_ROUNDS {
            if going == 0 {
                break;
            }
            going = 0;
            for i in 0..n {
                if mode[i] != 0 {
                    self.walk_step(&mut mode[i], &mut cur[i], &mut keys[i], zone, &mut ends[i]);
                    going += usize::from(mode[i] != 0);
                }
            }
        }
    }

    /// One step of a walk for `key` (see [`HEAD`]); `end` receives how the original tuple's walk ended when it
    /// does, and the key then becomes the reply tuple for the rest of the walk.
    #[inline(always)]
    fn walk_step(
        &self,
        mode: &mut u8,
        cur: &mut u32,
        key: &mut Tuple,
        zone: u16,
        end: &mut Option<Step>,
    ) {
        let reply = *mode & REPLY;
        let next = if *mode & HEAD != 0 {
            self.heads.get(*cur as usize).copied().unwrap_or(NONE_IDX)
        } else {
            match self.lean_step(*cur, key, zone) {
                Step::Next(next) => next,
                Step::Found(node, dir) => {
                    if reply == 0 {
                        *end = Some(Step::Found(node, dir));
                        // The entry's second line: the protocol state the tracker reads and writes.
                        if let Some(c) = self.conns.get(node as usize) {
                            prefetch(&c.l4);
                        }
                    }
                    *mode = 0;
                    return;
                }
                Step::Miss => NONE_IDX,
            }
        };
        if next != NONE_IDX {
            if let Some(c) = self.conns.get((next >> 1) as usize) {
                prefetch(c);
            }
            *mode = NODE | reply;
            *cur = next;
            return;
        }
        *mode = 0;
        if reply != 0 {
            return;
        }
        // A miss: the packet may create an entry, and confirm searches and links into the reply bucket.
        *end = Some(Step::Miss);
        *key = swapped(key);
        let b = self.bucket(key, zone);
        if let Some(h) = self.heads.get(b) {
            prefetch(h);
            *mode = HEAD | REPLY;
            *cur = b as u32;
        }
    }
}
