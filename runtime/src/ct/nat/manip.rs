//! Packet rewriting for NAT bindings, after the kernel's nf_nat_proto.c: `nf_nat_ipv4_manip_pkt` /
//! `nf_nat_ipv6_manip_pkt` put a target tuple's source or destination into a datagram (address, then the
//! transport part through `l4proto_manip_pkt`: TCP/UDP/UDP-Lite/SCTP ports, the ICMP/ICMPv6 echo id, the GREv1
//! call id) with the kernel's incremental checksum updates (a UDP checksum of 0 stays 0, one that becomes 0 is
//! sent as 0xffff; SCTP's CRC32c is computed again), and `nf_nat_icmp_reply_translation` /
//! `nf_nat_icmpv6_reply_translation` rewrite an ICMP error about a NATed flow: the quoted datagram with the
//! inverse manipulation, the ICMP checksum computed again, then the outer header.
//!
//! Offsets follow the kernel's skb: `l3` is the whole datagram (`skb->len` is its length), `iphdroff` where the
//! header to rewrite starts (0, or the datagram quoted by an ICMP error). A packet too short for a header the
//! kernel must write (`skb_ensure_writable` fails) gives `false`: the hook drops it.

use super::Manip;
use crate::ct::Tuple;
use crate::wire::{Ipv6Packet, be16, checksum, csum_replace, proto};
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};

/// `CSUM_MANGLED_0`: a UDP checksum that comes out 0 is sent as all ones (0 means "no checksum").
const CSUM_MANGLED_0: u16 = 0xffff;

/// `nf_nat_ipv4_manip_pkt` / `nf_nat_ipv6_manip_pkt` by `target`'s family.
pub fn manip_pkt(l3: &mut [u8], iphdroff: usize, target: &Tuple, manip: Manip) -> bool {
    match target.l3 {
        NFPROTO_IPV4 => ipv4_manip_pkt(l3, iphdroff, target, manip),
        NFPROTO_IPV6 => ipv6_manip_pkt(l3, iphdroff, target, manip),
        _ => false,
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Where the manipulated address sits in the header at `iphdroff`, and its length.
fn addr_at(l3: &[u8], iphdroff: usize, manip: Manip) -> (usize, usize) {
    let v6 = l3.get(iphdroff).is_some_and(|b| b >> 4 == 6);
    match (v6, manip) {
        (false, Manip::Src) => (iphdroff + 12, 4),
        (false, Manip::Dst) => (iphdroff + 16, 4),
        (true, Manip::Src) => (iphdroff + 8, 16),
        (true, Manip::Dst) => (iphdroff + 24, 16),
    }
}

/// The target's address for `manip`, `len` bytes.
fn target_addr(target: &Tuple, manip: Manip, len: usize) -> &[u8] {
    let a = match manip {
        Manip::Src => &target.src,
        Manip::Dst => &target.dst,
    };
    &a[..len]
}

/// `nf_csum_update`: the transport checksum at `check_at` follows the address change of the header at
/// `iphdroff` (pseudo-header).
fn csum_update_addr(l3: &mut [u8], iphdroff: usize, check_at: usize, target: &Tuple, manip: Manip) {
    let (at, len) = addr_at(l3, iphdroff, manip);
    let Some(old) = l3.get(at..at + len) else {
        return;
    };
    let c = csum_replace(be16(l3, check_at), old, target_addr(target, manip, len));
    put16(l3, check_at, c);
}

fn ipv4_manip_pkt(l3: &mut [u8], iphdroff: usize, target: &Tuple, manip: Manip) -> bool {
    if l3.len() < iphdroff + 20 {
        return false;
    }
    let hdroff = iphdroff + usize::from(l3[iphdroff] & 0xf) * 4;
    ipv4_manip_ports(l3, iphdroff, hdroff, target, manip)
        || ipv4_manip_general(l3, iphdroff, hdroff, target, manip)
}

/// `ipv4_manip_pkt` step by step: the transport part, then the address and the header checksum.
fn ipv4_manip_general(
    l3: &mut [u8],
    iphdroff: usize,
    hdroff: usize,
    target: &Tuple,
    manip: Manip,
) -> bool {
    if !l4proto_manip_pkt(l3, iphdroff, hdroff, target, manip) {
        return false;
    }
    let (at, _) = addr_at(l3, iphdroff, manip);
    let new = target_addr(target, manip, 4);
    let c = csum_replace(be16(l3, iphdroff + 10), &l3[at..at + 4], new);
    put16(l3, iphdroff + 10, c);
    l3[at..at + 4].copy_from_slice(new);
    true
}

/// The common case of `ipv4_manip_pkt` in one pass: a TCP segment with its whole header, or a UDP/UDP-Lite
/// datagram. The address's checksum difference is summed once and folded into the IP header checksum and,
/// with the port's, into the transport checksum; the result is the one the step-by-step `csum_replace` calls
/// give (one's complement sums are associative). `false`: not such a packet, nothing written.
#[inline]
fn ipv4_manip_ports(
    l3: &mut [u8],
    iphdroff: usize,
    hdroff: usize,
    target: &Tuple,
    manip: Manip,
) -> bool {
    let (new, port) = v4_part(target, manip);
    ipv4_put_ports(l3, iphdroff, hdroff, target.l4, new, port, manip)
}

/// The IPv4 address and port of `t`'s source or destination (`side`).
fn v4_part(t: &Tuple, side: Manip) -> ([u8; 4], u16) {
    let a = target_addr(t, side, 4);
    let port = match side {
        Manip::Src => t.sport,
        Manip::Dst => t.dport,
    };
    ([a[0], a[1], a[2], a[3]], port)
}

/// `ipv4_manip_ports` of the address `new` and port `port`, for a datagram whose transport protocol is `l4`.
#[inline]
fn ipv4_put_ports(
    l3: &mut [u8],
    iphdroff: usize,
    hdroff: usize,
    l4: u8,
    new: [u8; 4],
    port: u16,
    manip: Manip,
) -> bool {
    let (check_at, need) = match l4 {
        proto::TCP => (hdroff + 16, hdroff + 20),
        proto::UDP | proto::UDPLITE => (hdroff + 6, hdroff + 8),
        _ => return false,
    };
    if l3.len() < need || hdroff < iphdroff + 20 {
        return false;
    }
    let (at, port_at) = match manip {
        Manip::Src => (iphdroff + 12, hdroff),
        Manip::Dst => (iphdroff + 16, hdroff + 2),
    };
    let word = |b: &[u8], i: usize| u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
    let fold = |mut sum: u32| {
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        !(sum as u16)
    };
    let addr =
        (0xffff ^ word(l3, at)) + (0xffff ^ word(l3, at + 2)) + word(&new, 0) + word(&new, 2);
    let ipc = word(l3, iphdroff + 10);
    put16(l3, iphdroff + 10, fold(0xffff + (0xffff ^ ipc) + addr));
    let l4c = word(l3, check_at);
    if l4 != proto::UDP || l4c != 0 {
        let ports = (0xffff ^ word(l3, port_at)) + u32::from(port);
        let mut c = fold(0xffff + (0xffff ^ l4c) + addr + ports);
        if c == 0 && l4 != proto::TCP {
            c = CSUM_MANGLED_0;
        }
        put16(l3, check_at, c);
    }
    put16(l3, port_at, port);
    l3[at..at + 4].copy_from_slice(&new);
    true
}

/// `nf_nat_ipv4_manip_pkt` of an IPv4 TCP/UDP/UDP-Lite datagram (header at 0) towards the inverse of `other`
/// (the connection's tuple of the other direction), without building the inverse: its source is `other`'s
/// destination and the other way round. `None`: not such a datagram; the caller takes the general path.
pub fn ipv4_manip_ports_of(l3: &mut [u8], other: &Tuple, manip: Manip) -> Option<bool> {
    if other.l3 != NFPROTO_IPV4 || !matches!(other.l4, proto::TCP | proto::UDP | proto::UDPLITE) {
        return None;
    }
    let hdroff = usize::from(*l3.first()? & 0xf) * 4;
    let side = match manip {
        Manip::Src => Manip::Dst,
        Manip::Dst => Manip::Src,
    };
    let (a, port) = v4_part(other, side);
    ipv4_put_ports(l3, 0, hdroff, other.l4, a, port, manip).then_some(true)
}

fn ipv6_manip_pkt(l3: &mut [u8], iphdroff: usize, target: &Tuple, manip: Manip) -> bool {
    if l3.len() < iphdroff + 40 {
        return false;
    }
    // ipv6_skip_exthdr; a non-first fragment has no transport header to rewrite.
    let e = Ipv6Packet::new_unchecked(&l3[iphdroff..]).exthdrs_lenient();
    if let Ok(e) = e
        && e.l4proto != proto::FRAGMENT
        && !l4proto_manip_pkt(l3, iphdroff, iphdroff + e.thoff, target, manip)
    {
        return false;
    }
    let (at, _) = addr_at(l3, iphdroff, manip);
    l3[at..at + 16].copy_from_slice(target_addr(target, manip, 16));
    true
}

/// ICMP types with an identifier the NAT rewrites (`icmp_manip_pkt`).
fn icmp_has_id(t: u8) -> bool {
    matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// Writes an ICMP or ICMPv6 echo's id (at `hdroff + 4`), updating its checksum.
fn set_echo_id(l3: &mut [u8], hdroff: usize, id: u16) {
    let old = be16(l3, hdroff + 4);
    let c = csum_replace(be16(l3, hdroff + 2), &old.to_be_bytes(), &id.to_be_bytes());
    put16(l3, hdroff + 2, c);
    put16(l3, hdroff + 4, id);
}

/// `l4proto_manip_pkt`, by the target's protocol; unknown protocols pass unmodified.
fn l4proto_manip_pkt(
    l3: &mut [u8],
    iphdroff: usize,
    hdroff: usize,
    target: &Tuple,
    manip: Manip,
) -> bool {
    let len = l3.len();
    let (port_at, newport) = match manip {
        Manip::Src => (hdroff, target.sport),
        Manip::Dst => (hdroff + 2, target.dport),
    };
    match target.l4 {
        proto::TCP => {
            // Only 8 bytes are sure for a datagram quoted by an ICMP error: the checksum may be cut off.
            let full = len >= hdroff + 20;
            if len < hdroff + 8 {
                return false;
            }
            let old = be16(l3, port_at);
            put16(l3, port_at, newport);
            if full {
                let check_at = hdroff + 16;
                csum_update_addr(l3, iphdroff, check_at, target, manip);
                let c = csum_replace(
                    be16(l3, check_at),
                    &old.to_be_bytes(),
                    &newport.to_be_bytes(),
                );
                put16(l3, check_at, c);
            }
            true
        }
        proto::UDP | proto::UDPLITE => {
            if len < hdroff + 8 {
                return false;
            }
            let check_at = hdroff + 6;
            if target.l4 == proto::UDPLITE || be16(l3, check_at) != 0 {
                csum_update_addr(l3, iphdroff, check_at, target, manip);
                let old = be16(l3, port_at);
                let mut c = csum_replace(
                    be16(l3, check_at),
                    &old.to_be_bytes(),
                    &newport.to_be_bytes(),
                );
                if c == 0 {
                    c = CSUM_MANGLED_0;
                }
                put16(l3, check_at, c);
            }
            put16(l3, port_at, newport);
            true
        }
        proto::SCTP => {
            if len < hdroff + 8 {
                return false;
            }
            put16(l3, port_at, newport);
            if len >= hdroff + 12 {
                let crc = sctp_crc32c(&l3[hdroff..]);
                l3[hdroff + 8..hdroff + 12].copy_from_slice(&crc.to_le_bytes());
            }
            true
        }
        proto::ICMP => {
            if len < hdroff + 8 {
                return false;
            }
            if icmp_has_id(l3[hdroff]) {
                set_echo_id(l3, hdroff, target.sport);
            }
            true
        }
        proto::ICMPV6 => {
            if len < hdroff + 8 {
                return false;
            }
            csum_update_addr(l3, iphdroff, hdroff + 2, target, manip);
            if matches!(l3[hdroff], 128 | 129) {
                set_echo_id(l3, hdroff, target.sport);
            }
            true
        }
        proto::GRE => {
            // The PPTP GRE header without its two optional words; only the destination (call id) is in the
            // packet.
            if len < hdroff + 8 {
                return false;
            }
            if manip != Manip::Dst {
                return true;
            }
            match l3[hdroff + 1] & 7 {
                0 => true,
                1 => {
                    put16(l3, hdroff + 6, target.dport);
                    true
                }
                _ => false,
            }
        }
        _ => true,
    }
}

/// CRC32c (Castagnoli, reflected) table.
const CRC32C: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// `sctp_compute_cksum`: CRC32c over the SCTP packet `seg` with its checksum field taken as zero.
fn sctp_crc32c(seg: &[u8]) -> u32 {
    let mut crc = !0u32;
    for (i, &b) in seg.iter().enumerate() {
        let b = if (8..12).contains(&i) { 0 } else { b };
        crc = CRC32C[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The checks `nf_nat_icmp_reply_translation` makes of every RELATED ICMP(v6) packet at a NAT hook, NATed flow
/// or not: the error holds its ICMP header and a quoted IP header, and its checksum is right (`nf_ip_checksum`
/// / `nf_ip6_checksum` on a packet whose checksum was not verified by a device).
pub fn icmp_error_ok(l3: &[u8], icmp_off: usize, v6: bool) -> bool {
    l3.len() >= icmp_off + 8 + if v6 { 40 } else { 20 } && icmp_sum(l3, icmp_off, v6) == 0
}

/// The ICMP(v6) checksum over `l3` from `icmp_off` (with IPv6's pseudo-header).
fn icmp_sum(l3: &[u8], icmp_off: usize, v6: bool) -> u16 {
    let seg = l3.get(icmp_off..).unwrap_or(&[]);
    let init = if v6 {
        crate::wire::build::pseudo(
            l3.get(8..24).unwrap_or(&[]),
            l3.get(24..40).unwrap_or(&[]),
            proto::ICMPV6,
            seg.len(),
        )
    } else {
        0
    };
    checksum(seg, init)
}

/// The rewrite of `nf_nat_icmp_reply_translation` / `nf_nat_icmpv6_reply_translation` (after [`icmp_error_ok`],
/// once the status says the flow is NATed for this manipulation): `other` is the flow's tuple in the direction
/// opposite to the error (`ct->tuplehash[!dir]`), `icmp_off` where the ICMP header starts. The quoted datagram
/// gets the inverse manipulation, the ICMP checksum is computed again, then the outer header is rewritten like
/// the reply to the flow's packet (an ICMP "tuple": error types have no id to rewrite).
pub fn icmp_reply_translation(l3: &mut [u8], icmp_off: usize, other: &Tuple, manip: Manip) -> bool {
    let v6 = other.l3 == NFPROTO_IPV6;
    let inverse = match manip {
        Manip::Src => Manip::Dst,
        Manip::Dst => Manip::Src,
    };
    if !manip_pkt(l3, icmp_off + 8, other, inverse) {
        return false;
    }
    put16(l3, icmp_off + 2, 0);
    let c = icmp_sum(l3, icmp_off, v6);
    put16(l3, icmp_off + 2, c);
    let Some(mut target) = other.invert() else {
        return false;
    };
    target.l4 = if v6 { proto::ICMPV6 } else { proto::ICMP };
    manip_pkt(l3, 0, &target, manip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build;

    fn tuple(src: &str, dst: &str, sport: u16, dport: u16, l4: u8) -> Tuple {
        let mut t = Tuple {
            l4,
            sport,
            dport,
            ..Tuple::default()
        };
        match (
            src.parse::<std::net::IpAddr>().unwrap(),
            dst.parse::<std::net::IpAddr>().unwrap(),
        ) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                t.l3 = NFPROTO_IPV4;
                t.src[..4].copy_from_slice(&a.octets());
                t.dst[..4].copy_from_slice(&b.octets());
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                t.l3 = NFPROTO_IPV6;
                t.src = a.octets();
                t.dst = b.octets();
            }
            _ => unreachable!(),
        }
        t
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    /// The one-pass IPv4 TCP/UDP rewrite writes the bytes the step-by-step one writes, for any header bytes and
    /// checksums (0 and 0xffff included), both manipulations, and UDP, UDP-Lite and TCP.
    #[test]
    fn one_pass_ipv4_rewrite_is_the_step_by_step_one() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut fast_taken = 0;
        for i in 0..20_000 {
            let l4 = [proto::TCP, proto::UDP, proto::UDPLITE][i % 3];
            let mut p: Vec<u8> = (0..48).map(|_| next() as u8).collect();
            p[0] = 0x45;
            p[9] = l4;
            let special = [0u16, 0xffff, 1, 0xfffe];
            if i % 4 == 0 {
                p[10..12].copy_from_slice(&special[(i / 4) % 4].to_be_bytes());
            }
            let check_at = if l4 == proto::TCP { 36 } else { 26 };
            if i % 5 == 0 {
                p[check_at..check_at + 2].copy_from_slice(&special[(i / 5) % 4].to_be_bytes());
            }
            let len = if l4 == proto::TCP && i % 7 == 0 {
                30
            } else {
                48
            };
            p.truncate(len);
            let mut t = Tuple {
                l3: NFPROTO_IPV4,
                l4,
                sport: next() as u16,
                dport: next() as u16,
                ..Tuple::default()
            };
            t.src[..4].copy_from_slice(&(next() as u32).to_be_bytes());
            t.dst[..4].copy_from_slice(&(next() as u32).to_be_bytes());
            let manip = if i % 2 == 0 { Manip::Src } else { Manip::Dst };
            if i % 11 == 0 {
                // All ones become all zeros: the one's complement sums reach their edge (0 vs 0xffff).
                let (at, port_at) = match manip {
                    Manip::Src => (12, 20),
                    Manip::Dst => (16, 22),
                };
                p[at..at + 4].fill(0xff);
                p[port_at..port_at + 2].fill(0xff);
                p[10..12].fill(0xff);
                if p.len() >= check_at + 2 {
                    p[check_at..check_at + 2].fill(0xff);
                }
                (t.src, t.dst, t.sport, t.dport) = ([0; 16], [0; 16], 0, 0);
            }
            let (mut a, mut b) = (p.clone(), p.clone());
            let fast = ipv4_manip_ports(&mut a, 0, 20, &t, manip);
            assert!(ipv4_manip_general(&mut b, 0, 20, &t, manip));
            let mut c = p.clone();
            let of = ipv4_manip_ports_of(&mut c, &t.invert().unwrap(), manip);
            assert_eq!(of == Some(true), fast, "case {i}");
            if fast {
                fast_taken += 1;
                assert_eq!(a, b, "case {i}: {l4} {manip:?}");
                assert_eq!(c, b, "case {i}: from the other direction's tuple");
            } else {
                assert_eq!(a, p, "case {i}: nothing written when not taken");
            }
        }
        assert!(fast_taken > 15_000, "{fast_taken}");
    }

    /// Rewriting a packet gives the bytes (checksums included) of the packet built with the new header.
    #[test]
    fn rewritten_packets_equal_freshly_built_ones() {
        for (c, s, n) in [
            ("10.0.0.2", "198.51.100.20", "192.0.2.77"),
            ("2001:db8::2", "2001:db8:1::20", "2001:db8:9::77"),
        ] {
            let (c, s, n) = (ip(c), ip(s), ip(n));
            let cases: Vec<(Vec<u8>, Vec<u8>, u8)> = vec![
                (
                    build::tcp(c, s, 40000, 80, 7, 9, 0x18, 500, &[], b"GET /"),
                    build::tcp(c, n, 40000, 8080, 7, 9, 0x18, 500, &[], b"GET /"),
                    proto::TCP,
                ),
                (
                    build::udp(c, s, 5353, 53, b"query"),
                    build::udp(c, n, 5353, 8053, b"query"),
                    proto::UDP,
                ),
            ];
            for (mut p, want, l4) in cases {
                let (sport, dport) = if l4 == proto::TCP {
                    (40000, 8080)
                } else {
                    (5353, 8053)
                };
                let t = tuple(&c.to_string(), &n.to_string(), sport, dport, l4);
                assert!(manip_pkt(&mut p, 0, &t, Manip::Dst));
                assert_eq!(p, want, "{l4} {n}");
            }
        }
        // SNAT of an echo request: address and id.
        let mut p = build::icmp(
            ip("10.0.0.2"),
            ip("203.0.113.9"),
            8,
            0,
            build::echo(7, 1),
            b"ping",
        );
        let want = build::icmp(
            ip("198.51.100.1"),
            ip("203.0.113.9"),
            8,
            0,
            build::echo(1234, 1),
            b"ping",
        );
        let t = tuple("198.51.100.1", "203.0.113.9", 1234, 8 << 8, proto::ICMP);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
        assert_eq!(p, want);
    }

    #[test]
    fn udp_checksum_zero_stays_zero_and_zero_results_are_mangled() {
        let mut p = build::udp(ip("10.0.0.2"), ip("203.0.113.9"), 1000, 53, b"q");
        p[26..28].fill(0);
        let t = tuple("198.51.100.1", "203.0.113.9", 2000, 53, proto::UDP);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
        assert_eq!(be16(&p, 26), 0);
        assert_eq!(&p[12..16], &[198, 51, 100, 1]);
        assert_eq!(be16(&p, 20), 2000);
        assert_eq!(checksum(&p[..20], 0), 0);
        // Find a new port whose checksum comes out 0: it is sent as 0xffff (which verifies as well).
        let base = build::udp(ip("10.0.0.2"), ip("203.0.113.9"), 1000, 53, b"q");
        let hit = (1..=u16::MAX).find_map(|port| {
            let mut p = base.clone();
            let t = tuple("10.0.0.2", "203.0.113.9", port, 53, proto::UDP);
            manip_pkt(&mut p, 0, &t, Manip::Src);
            (be16(&p, 26) == CSUM_MANGLED_0).then_some(p)
        });
        let p = hit.expect("some port gives a zero checksum");
        let init = build::pseudo(&p[12..16], &p[16..20], proto::UDP, p.len() - 20);
        assert_eq!(checksum(&p[20..], init), 0);
    }

    #[test]
    fn short_packets_are_refused_not_panicking() {
        let t = tuple("198.51.100.1", "203.0.113.9", 2000, 53, proto::UDP);
        for n in 0..28 {
            let mut p = build::udp(ip("10.0.0.2"), ip("203.0.113.9"), 1000, 53, b"")[..n].to_vec();
            assert!(!manip_pkt(&mut p, 0, &t, Manip::Src), "{n}");
        }
        let t6 = tuple("2001:db8::1", "2001:db8::2", 1, 2, proto::TCP);
        for n in 0..48 {
            let mut p = build::tcp(
                ip("2001:db8::5"),
                ip("2001:db8::2"),
                1,
                2,
                0,
                0,
                2,
                9,
                &[],
                b"",
            )[..n]
                .to_vec();
            let _ = manip_pkt(&mut p, 0, &t6, Manip::Src);
            if icmp_error_ok(&p, 40, true) {
                let _ = icmp_reply_translation(&mut p, 40, &t6, Manip::Dst);
            }
        }
    }

    #[test]
    fn crc32c_check_value() {
        // The CRC32c of "123456789" (RFC 3720's check value).
        let mut crc = !0u32;
        for &b in b"123456789" {
            crc = CRC32C[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        assert_eq!(!crc, 0xe306_9283);
    }
}
