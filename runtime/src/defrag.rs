//! IPv4 / IPv6 reassembly as the defrag hooks do it before conntrack (priority -400): fragments are consumed
//! (the caller sees nothing) until a datagram is complete, which is then returned whole. IPv6 atomic fragments
//! are re-emitted without their fragment header. Fragments are kept in runs as `inet_frag_queue_insert` keeps
//! them (a fragment that starts where the last one ends extends its run): one that lies inside a run is a
//! duplicate and is dropped alone (`IPFRAG_DUP`, RFC 5722 errata 3089); one that overlaps received data any other
//! way discards the whole datagram (`IPFRAG_OVERLAP`).
//! Queues expire after `ipfrag_time` (30 s for IPv4, 60 s for IPv6) of virtual time; the number of queues is
//! bounded.

use crate::wire::{Ipv4Packet, Ipv6Packet, checksum};

/// Result of offering a datagram to the defragmenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defrag {
    /// Not a fragment: process the packet as is.
    NotFragment,
    /// Consumed (queued, duplicate, or discarded).
    Consumed,
    /// A datagram was completed: the reassembled packet (network header first).
    Reassembled(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
}

#[derive(Debug)]
struct Queue {
    key: Key,
    /// (offset, payload bytes) sorted by offset.
    frags: Vec<(u32, Vec<u8>)>,
    /// The runs of contiguous fragments (`frag_run_len`), (start, end) sorted; the last one holds the tail.
    runs: Vec<(u32, u32)>,
    /// Header of the first fragment (IPv4 header / IPv6 unfragmentable part) once seen.
    first_hdr: Option<Vec<u8>>,
    /// IPv6: offset of the "next header" byte to patch in `first_hdr`, and the fragment's next header.
    v6_patch: Option<(usize, u8)>,
    total: Option<u32>,
    expires: u64,
}

/// Per-family reassembly state.
#[derive(Debug, Default)]
pub struct Defragmenter {
    queues: Vec<Queue>,
    /// Discarded datagrams (overlap, timeout, too big).
    pub discarded: u64,
}

/// Maximum concurrent reassembly queues.
pub const MAX_QUEUES: usize = 1024;
const IPV4_TIMEOUT_NS: u64 = 30_000_000_000;
const IPV6_TIMEOUT_NS: u64 = 60_000_000_000;

impl Defragmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers one IP datagram (network header first, already trimmed to its length).
    pub fn offer(&mut self, l3: &[u8], now: u64) -> Defrag {
        let before = self.queues.len();
        self.queues.retain(|q| q.expires > now);
        self.discarded += (before - self.queues.len()) as u64;
        match l3.first().map(|b| b >> 4) {
            Some(4) => self.offer_v4(l3, now),
            Some(6) => self.offer_v6(l3, now),
            _ => Defrag::NotFragment,
        }
    }

    fn offer_v4(&mut self, l3: &[u8], now: u64) -> Defrag {
        let Ok(ip) = Ipv4Packet::new_checked(l3) else {
            return Defrag::NotFragment;
        };
        if !ip.more_frags() && ip.frag_offset() == 0 {
            return Defrag::NotFragment;
        }
        let mut src = [0; 16];
        let mut dst = [0; 16];
        src[..4].copy_from_slice(&ip.src_addr());
        dst[..4].copy_from_slice(&ip.dst_addr());
        let key = Key {
            v6: false,
            src,
            dst,
            id: u32::from(ip.ident()),
            proto: ip.protocol(),
        };
        let hdr = l3.get(..ip.header_len()).map(<[u8]>::to_vec);
        let off = u32::from(ip.frag_offset());
        let last = !ip.more_frags();
        let payload = ip.payload().to_vec();
        self.add(
            key,
            off,
            last,
            payload,
            if off == 0 { hdr } else { None },
            None,
            now + IPV4_TIMEOUT_NS,
        )
    }

    fn offer_v6(&mut self, l3: &[u8], now: u64) -> Defrag {
        let Ok(ip) = Ipv6Packet::new_checked(l3) else {
            return Defrag::NotFragment;
        };
        let Ok(e) = ip.exthdrs() else {
            return Defrag::NotFragment;
        };
        let Some(fh) = e.frag_hdr_off else {
            return Defrag::NotFragment;
        };
        // An atomic fragment (offset 0, no M flag) goes through the queue too and completes at once, as in
        // nf_ct_frag6_gather: the caller sees it "reassembled" without its fragment header.
        let data = l3.get(..ip.datagram_len()).unwrap_or(l3);
        let nh = data.get(fh).copied().unwrap_or(0);
        let key = Key {
            v6: true,
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            id: e.frag_id,
            proto: 0,
        };
        let payload = data.get(fh + 8..).unwrap_or(&[]).to_vec();
        let (hdr, patch) = if e.frag_off == 0 {
            let nh_byte = if e.frag_prev_nh_off == 6 {
                6
            } else {
                e.frag_prev_nh_off
            };
            (data.get(..fh).map(<[u8]>::to_vec), Some((nh_byte, nh)))
        } else {
            (None, None)
        };
        self.add(
            key,
            u32::from(e.frag_off),
            !e.more_frags,
            payload,
            hdr,
            patch,
            now + IPV6_TIMEOUT_NS,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        key: Key,
        off: u32,
        last: bool,
        payload: Vec<u8>,
        hdr: Option<Vec<u8>>,
        patch: Option<(usize, u8)>,
        expires: u64,
    ) -> Defrag {
        let end = off + payload.len() as u32;
        if end > 65535 {
            self.discarded += 1;
            return Defrag::Consumed;
        }
        let qi = match self.queues.iter().position(|q| q.key == key) {
            Some(i) => i,
            None => {
                if self.queues.len() >= MAX_QUEUES {
                    self.queues.remove(0);
                    self.discarded += 1;
                }
                self.queues.push(Queue {
                    key,
                    frags: Vec::new(),
                    runs: Vec::new(),
                    first_hdr: None,
                    v6_patch: None,
                    total: None,
                    expires,
                });
                self.queues.len() - 1
            }
        };
        let Some(q) = self.queues.get_mut(qi) else {
            return Defrag::Consumed;
        };
        match frag_insert(&mut q.runs, off, end) {
            FragInsert::Queued => {}
            FragInsert::Duplicate => return Defrag::Consumed,
            FragInsert::Overlap => {
                self.queues.remove(qi);
                self.discarded += 1;
                return Defrag::Consumed;
            }
        }
        if last {
            if q.total.is_some_and(|t| t != end)
                || q.frags.iter().any(|(o, d)| *o + d.len() as u32 > end)
            {
                self.queues.remove(qi);
                self.discarded += 1;
                return Defrag::Consumed;
            }
            q.total = Some(end);
        }
        if hdr.is_some() {
            q.first_hdr = hdr;
            q.v6_patch = patch;
        }
        let pos = q.frags.partition_point(|(o, _)| *o < off);
        q.frags.insert(pos, (off, payload));
        // Complete?
        let Some(total) = q.total else {
            return Defrag::Consumed;
        };
        let Some(h) = q.first_hdr.as_ref() else {
            return Defrag::Consumed;
        };
        let mut at = 0u32;
        for (o, d) in &q.frags {
            if *o != at {
                return Defrag::Consumed;
            }
            at += d.len() as u32;
        }
        if at != total {
            return Defrag::Consumed;
        }
        let mut out = h.clone();
        for (_, d) in &q.frags {
            out.extend_from_slice(d);
        }
        let v6 = q.key.v6;
        let patch = q.v6_patch;
        self.queues.remove(qi);
        if v6 {
            if let Some((b, nh)) = patch
                && let Some(x) = out.get_mut(b)
            {
                *x = nh;
            }
            let pl = (out.len() - 40) as u16;
            if let Some(s) = out.get_mut(4..6) {
                s.copy_from_slice(&pl.to_be_bytes());
            }
        } else {
            let tot = out.len() as u16;
            if let Some(s) = out.get_mut(2..4) {
                s.copy_from_slice(&tot.to_be_bytes());
            }
            if let Some(s) = out.get_mut(6..8) {
                s.copy_from_slice(&[0, 0]);
            }
            if let Some(s) = out.get_mut(10..12) {
                s.copy_from_slice(&[0, 0]);
            }
            let hl = usize::from(out.first().copied().unwrap_or(0x45) & 0x0f) * 4;
            let c = checksum(out.get(..hl).unwrap_or(&[]), 0);
            if let Some(s) = out.get_mut(10..12) {
                s.copy_from_slice(&c.to_be_bytes());
            }
        }
        Defrag::Reassembled(out)
    }
}

/// How `inet_frag_queue_insert` takes a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FragInsert {
    Queued,
    /// Inside a run: dropped, the queue kept.
    Duplicate,
    /// Overlaps received data otherwise: the queue is discarded.
    Overlap,
}

/// `inet_frag_queue_insert` over the runs: past the tail it extends the last run (or starts one), overlapping
/// the tail is an overlap; anything else is looked up among the runs.
fn frag_insert(runs: &mut Vec<(u32, u32)>, off: u32, end: u32) -> FragInsert {
    match runs.last_mut() {
        None => runs.push((off, end)),
        Some(last) if last.1 < end => {
            if off < last.1 {
                return FragInsert::Overlap;
            }
            if off == last.1 {
                last.1 = end;
            } else {
                runs.push((off, end));
            }
        }
        Some(_) => {
            if let Some(&(s, e)) = runs.iter().find(|&&(s, e)| off < e && s < end) {
                return if off >= s && end <= e {
                    FragInsert::Duplicate
                } else {
                    FragInsert::Overlap
                };
            }
            let pos = runs.partition_point(|&(s, _)| s < off);
            runs.insert(pos, (off, end));
        }
    }
    FragInsert::Queued
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4frag(id: u16, off: u16, mf: bool, payload: &[u8]) -> Vec<u8> {
        let tot = 20 + payload.len();
        let fo = (off / 8) | if mf { 0x2000 } else { 0 };
        let mut h = vec![
            0x45,
            0,
            (tot >> 8) as u8,
            tot as u8,
            (id >> 8) as u8,
            id as u8,
            (fo >> 8) as u8,
            fo as u8,
        ];
        h.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn ipv4_in_and_out_of_order() {
        let data: Vec<u8> = (0..40u8).collect();
        let mut d = Defragmenter::new();
        assert_eq!(
            d.offer(&v4frag(7, 24, false, &data[24..]), 0),
            Defrag::Consumed
        );
        let Defrag::Reassembled(p) = d.offer(&v4frag(7, 0, true, &data[..24]), 1) else {
            panic!()
        };
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.total_len(), 60);
        assert!(!ip.more_frags() && ip.frag_offset() == 0);
        assert!(ip.verify_checksum());
        assert_eq!(ip.payload(), &data[..]);
        assert_eq!(d.offer(&v4frag(0, 0, false, &data), 2), Defrag::NotFragment);
    }

    #[test]
    fn overlap_discards_and_timeout() {
        let data = [1u8; 64];
        let mut d = Defragmenter::new();
        d.offer(&v4frag(1, 0, true, &data[..56]), 0);
        assert_eq!(
            d.offer(&v4frag(1, 48, false, &data[..16]), 0),
            Defrag::Consumed
        );
        assert_eq!(d.discarded, 1);
        d.offer(&v4frag(2, 0, true, &data[..16]), 0);
        assert_eq!(
            d.offer(&v4frag(2, 16, false, &data[..8]), 31_000_000_000),
            Defrag::Consumed
        );
        assert_eq!(d.discarded, 2);
    }

    #[test]
    fn duplicates_inside_a_run_are_ignored_overlaps_discard() {
        let data: Vec<u8> = (0..120u8).collect();
        let mut d = Defragmenter::new();
        assert_eq!(
            d.offer(&v4frag(3, 0, true, &data[..48]), 0),
            Defrag::Consumed
        );
        assert_eq!(
            d.offer(&v4frag(3, 48, true, &data[48..96]), 0),
            Defrag::Consumed
        );
        // Inside the run 0..96 received so far: a duplicate.
        assert_eq!(
            d.offer(&v4frag(3, 40, true, &data[40..88]), 0),
            Defrag::Consumed
        );
        let Defrag::Reassembled(p) = d.offer(&v4frag(3, 96, false, &data[96..]), 0) else {
            panic!("the duplicate must not discard the datagram")
        };
        assert_eq!(&p[20..], &data[..]);
        assert_eq!(d.discarded, 0);
        // Past the data received: an overlap.
        d.offer(&v4frag(4, 0, true, &data[..48]), 0);
        d.offer(&v4frag(4, 40, true, &data[40..96]), 0);
        assert_eq!(d.discarded, 1);
        // Out of order, the runs stay apart: 40..88 straddles 0..48 and 48..96.
        d.offer(&v4frag(5, 48, true, &data[48..96]), 0);
        d.offer(&v4frag(5, 0, true, &data[..48]), 0);
        d.offer(&v4frag(5, 40, true, &data[40..88]), 0);
        assert_eq!(d.discarded, 2);
    }

    #[test]
    fn ipv6_fragments() {
        let body: Vec<u8> = (0..32u8).collect();
        let mk = |off: u16, m: bool, part: &[u8]| {
            let pl = 8 + part.len();
            let mut h = vec![0x60, 0, 0, 0, (pl >> 8) as u8, pl as u8, 44, 64];
            h.extend_from_slice(&[0xfe; 16]);
            h.extend_from_slice(&[0xfd; 16]);
            let fo = off | u16::from(m);
            h.extend_from_slice(&[17, 0, (fo >> 8) as u8, fo as u8, 0, 0, 0, 5]);
            h.extend_from_slice(part);
            h
        };
        let mut d = Defragmenter::new();
        assert_eq!(d.offer(&mk(16, false, &body[16..]), 0), Defrag::Consumed);
        let Defrag::Reassembled(p) = d.offer(&mk(0, true, &body[..16]), 0) else {
            panic!()
        };
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!((ip.next_header(), ip.payload_len()), (17, 32));
        assert_eq!(&p[40..], &body[..]);
    }
}
