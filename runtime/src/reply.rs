//! Packets the host sends in reaction to one it is processing: the answers of `reject` / `REJECT`
//! (`nf_send_reset`, `nf_send_unreach` and their IPv6 twins in nf_reject_ipv4.c / nf_reject_ipv6.c) and the ICMP
//! errors of the IP layer (`icmp_send` / `icmpv6_send`: time exceeded from `ip_forward`). They are built here as
//! the kernel builds them; [`crate::hook::Hooks`] sends them through OUTPUT and POSTROUTING.
//!
//! What the kernel never answers is never built: fragments other than the first, ICMP errors (an ICMP error
//! about an ICMP error, unknown ICMP types included), TCP resets, and packets to or from broadcast, multicast or
//! unspecified addresses.

use crate::wire::build::pseudo;
use crate::wire::checksum;

/// `ICMP_DEST_UNREACH`, `ICMP_TIME_EXCEEDED` and their IPv6 counterparts.
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_EXC_TTL: u8 = 0;
pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_TIME_EXCEED: u8 = 3;
pub const ICMPV6_EXC_HOPLIMIT: u8 = 0;

/// `INADDR_DUMMY` (192.0.0.8, RFC 7600): the source of an ICMP error when the host has no address to use.
pub const INADDR_DUMMY: [u8; 4] = [192, 0, 0, 8];
/// `sysctl_ip_default_ttl` / the IPv6 default hop limit of the host's own packets.
pub const DEFAULT_TTL: u8 = 64;
/// `NR_ICMP_TYPES`: ICMP types above it count as errors (`icmp_send` never answers them).
const NR_ICMP_TYPES: u8 = 18;
/// Size limits of an ICMP error: IPv4 576 bytes (`icmp_send`'s `room`), IPv6 the minimum MTU 1280.
const ICMP_MAX_V4: usize = 576;
const ICMP_MAX_V6: usize = 1280;
/// `IPTOS_PREC_INTERNETCONTROL`, `IPTOS_TOS_MASK`.
const IPTOS_PREC_INTERNETCONTROL: u8 = 0xc0;
const IPTOS_TOS_MASK: u8 = 0x1e;
/// `NFT_REJECT_*` (the `ty` of nft's reject expression).
pub const NFT_REJECT_ICMP_UNREACH: u8 = 0;
pub const NFT_REJECT_TCP_RST: u8 = 1;
pub const NFT_REJECT_ICMPX_UNREACH: u8 = 2;

/// What a reject answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectWith {
    /// A TCP reset (nothing for other protocols).
    TcpReset,
    /// ICMP destination unreachable with this code (IPv4), ICMPv6 destination unreachable (IPv6).
    Unreach { v4: u8, v6: u8 },
}

impl RejectWith {
    /// nft's `reject` expression: `NFT_REJECT_*` type and code. Codes of type `NFT_REJECT_ICMP_UNREACH` belong to
    /// the packet's family; `icmpx` codes map per family (`nft_reject_icmp_code`, `nft_reject_icmpv6_code`).
    pub fn from_nft(ty: u8, code: u8) -> Option<RejectWith> {
        match ty {
            NFT_REJECT_TCP_RST => Some(RejectWith::TcpReset),
            NFT_REJECT_ICMP_UNREACH => Some(RejectWith::Unreach { v4: code, v6: code }),
            NFT_REJECT_ICMPX_UNREACH => {
                // NFT_REJECT_ICMPX_{NO_ROUTE, PORT_UNREACH, HOST_UNREACH, ADMIN_PROHIBITED}
                let (v4, v6) = match code {
                    0 => (0, 0),
                    1 => (3, 4),
                    2 => (1, 3),
                    3 => (13, 1),
                    _ => return None,
                };
                Some(RejectWith::Unreach { v4, v6 })
            }
            _ => None,
        }
    }

    /// iptables' `REJECT --reject-with` (`IPT_ICMP_*`, `IPT_TCP_RESET`; `reject_tg`). `icmp-echo-reply` sends
    /// nothing.
    pub fn from_ipt(with: u32) -> Option<RejectWith> {
        let v4 = match with {
            0 => 0,  // net-unreachable: ICMP_NET_UNREACH
            1 => 1,  // host-unreachable: ICMP_HOST_UNREACH
            2 => 2,  // proto-unreachable: ICMP_PROT_UNREACH
            3 => 3,  // port-unreachable: ICMP_PORT_UNREACH
            5 => 9,  // net-prohibited: ICMP_NET_ANO
            6 => 10, // host-prohibited: ICMP_HOST_ANO
            7 => return Some(RejectWith::TcpReset),
            8 => 13, // admin-prohibited: ICMP_PKT_FILTERED
            _ => return None,
        };
        Some(RejectWith::Unreach { v4, v6: 0 })
    }
}

fn v6(l3: &[u8]) -> bool {
    l3.first().is_some_and(|b| b >> 4 == 6)
}

/// Source and destination address bytes.
fn addrs(l3: &[u8]) -> Option<(&[u8], &[u8])> {
    if v6(l3) {
        Some((l3.get(8..24)?, l3.get(24..40)?))
    } else {
        Some((l3.get(12..16)?, l3.get(16..20)?))
    }
}

/// Addresses nothing is answered to or about: multicast, broadcast, unspecified.
fn no_answers(a: &[u8]) -> bool {
    a.iter().all(|&b| b == 0)
        || match a.len() {
            4 => (224..=239).contains(&a[0]) || a == [255; 4],
            16 => a[0] == 0xff,
            _ => true,
        }
}

/// Transport protocol, its offset, and whether this is a non-first fragment (IPv6: after the extension headers).
fn l4(l3: &[u8]) -> Option<(u8, usize, bool)> {
    if v6(l3) {
        let ip = crate::wire::Ipv6Packet::new_checked(l3).ok()?;
        let e = ip.exthdrs().ok()?;
        Some((e.l4proto, e.thoff, e.frag_off != 0))
    } else {
        let ihl = usize::from(l3.first()? & 0xf) * 4;
        let fo = u16::from_be_bytes([*l3.get(6)?, *l3.get(7)?]) & 0x1fff;
        Some((*l3.get(9)?, ihl, fo != 0))
    }
}

/// An IP header for the host's own packet (`nf_reject_iphdr_put`, `ip_build_and_send_pkt`-like): IPv4 with id 0,
/// TTL 64, `df` and `tos` as given; IPv6 with traffic class 0, flow label 0, hop limit 64.
fn ip_header(src: &[u8], dst: &[u8], proto: u8, tos: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut h;
    if src.len() == 16 {
        h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(&[proto, DEFAULT_TTL]);
        h.extend_from_slice(src);
        h.extend_from_slice(dst);
    } else {
        h = vec![0x45, tos];
        h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0, if df { 0x40 } else { 0 }, 0, DEFAULT_TTL, proto, 0, 0]);
        h.extend_from_slice(src);
        h.extend_from_slice(dst);
        let c = checksum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    h.extend_from_slice(payload);
    h
}

/// `nf_send_reset` / `nf_send_reset6`: the reset answering TCP segment `l3`, from its destination to its source.
/// `None` when the kernel sends none (not TCP, a fragment, a reset, broadcast or multicast).
pub fn tcp_reset(l3: &[u8]) -> Option<Vec<u8>> {
    let (proto, thoff, later_frag) = l4(l3)?;
    let (s, d) = addrs(l3)?;
    if proto != 6 || later_frag || no_answers(d) || no_answers(s) {
        return None;
    }
    let oth = l3.get(thoff..thoff + 20)?;
    let flags = oth[13];
    if flags & 0x04 != 0 {
        return None; // never answer a reset
    }
    let doff = usize::from(oth[12] >> 4) * 4;
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&oth[2..4]);
    t[2..4].copy_from_slice(&oth[0..2]);
    t[12] = 5 << 4;
    if flags & 0x10 != 0 {
        t[4..8].copy_from_slice(&oth[8..12]); // seq = the segment's ack
        t[13] = 0x04;
    } else {
        // ack = seq + SYN + FIN + payload length
        let seq = u32::from_be_bytes([oth[4], oth[5], oth[6], oth[7]]);
        let payload = l3.len().saturating_sub(thoff + doff) as u32;
        let ack = seq
            .wrapping_add(u32::from(flags & 0x02 != 0))
            .wrapping_add(u32::from(flags & 0x01 != 0))
            .wrapping_add(payload);
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[13] = 0x14;
    }
    let c = checksum(&t, pseudo(d, s, 6, t.len()));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    Some(ip_header(d, s, 6, 0, true, &t))
}

/// `icmp_send` / `icmpv6_send`: the ICMP error `ty`/`code` (the family's numbering) about datagram `l3`, sent from
/// `src` (an address of `l3`'s family) to `l3`'s source, quoting as much of `l3` as fits. `None` when the kernel
/// sends none (a later fragment, an ICMP error, broadcast or multicast).
pub fn icmp_error(l3: &[u8], ty: u8, code: u8, src: &[u8]) -> Option<Vec<u8>> {
    let (proto, thoff, later_frag) = l4(l3)?;
    let (s, d) = addrs(l3)?;
    if later_frag || no_answers(d) || no_answers(s) || src.len() != s.len() {
        return None;
    }
    let is_v6 = v6(l3);
    if !is_v6 && proto == 1 {
        let t = *l3.get(thoff)?;
        if t > NR_ICMP_TYPES || crate::ct::icmp_is_err(t) {
            return None;
        }
    }
    if is_v6 && proto == 58 && l3.get(thoff).is_some_and(|t| *t < 128) {
        return None; // ICMPv6 errors are types 0-127
    }
    let max = if is_v6 { ICMP_MAX_V6 } else { ICMP_MAX_V4 };
    let hdr = if is_v6 { 40 } else { 20 };
    let quote = l3.get(..l3.len().min(max - hdr - 8)).unwrap_or(l3);
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quote);
    let (p, init) = if is_v6 {
        (58, pseudo(src, s, 58, m.len()))
    } else {
        (1, 0)
    };
    let c = checksum(&m, init);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let tos = if is_v6 {
        0
    } else {
        (l3[1] & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL
    };
    Some(ip_header(src, s, p, tos, false, &m))
}

/// The answer to `l3` rejected with `with`, sent from `src` for ICMP (the rejected packet's destination when it
/// was for the host). `None` when the kernel sends none.
pub fn reject(l3: &[u8], with: RejectWith, src: &[u8]) -> Option<Vec<u8>> {
    match with {
        RejectWith::TcpReset => tcp_reset(l3),
        RejectWith::Unreach { v4, v6: c6 } => {
            if v6(l3) {
                icmp_error(l3, ICMPV6_DEST_UNREACH, c6, src)
            } else {
                icmp_error(l3, ICMP_DEST_UNREACH, v4, src)
            }
        }
    }
}

/// `icmpv4_xrlim_allow`'s per-destination token bucket (`inet_peer_xrlim_allow`): one ICMP error a second
/// (`icmp_ratelimit`, 1000 ms) to each destination, in bursts of up to `XRLIM_BURST_FACTOR` (6); a new peer
/// starts with a full bucket. Applies to the types of `icmp_ratemask` (destination unreachable, source quench,
/// time exceeded, parameter problem): every error built here. IPv6 (whose interval depends on the route) is not
/// limited.
#[derive(Debug, Default)]
pub struct IcmpRateLimit {
    /// destination -> (tokens in ms, time of the last update in ns).
    peers: std::collections::HashMap<[u8; 4], (u64, u64)>,
}

const ICMP_RATELIMIT_MS: u64 = 1000;
const XRLIM_BURST_FACTOR: u64 = 6;
/// Peers remembered at most (the kernel's inet_peer cache is bounded too).
const MAX_PEERS: usize = 65_536;

impl IcmpRateLimit {
    /// Whether an ICMP error to the IPv4 address `dst` may go now (and takes its token).
    pub fn allow(&mut self, dst: &[u8], now_ns: u64) -> bool {
        let Ok(d) = <[u8; 4]>::try_from(dst) else {
            return true;
        };
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&d) {
            self.peers.clear();
        }
        let cap = XRLIM_BURST_FACTOR * ICMP_RATELIMIT_MS;
        let e = self.peers.entry(d).or_insert((cap, now_ns));
        let tokens = (e.0 + now_ns.saturating_sub(e.1) / 1_000_000).min(cap);
        e.1 = now_ns;
        if tokens >= ICMP_RATELIMIT_MS {
            e.0 = tokens - ICMP_RATELIMIT_MS;
            true
        } else {
            e.0 = tokens;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build;

    #[test]
    fn reset_answers_a_syn_and_an_ack() {
        let c = "10.0.0.1".parse().unwrap();
        let s = "10.0.0.2".parse().unwrap();
        let syn = build::tcp(c, s, 4000, 80, 1000, 0, 0x02, 100, &[], &[]);
        let r = tcp_reset(&syn).unwrap();
        assert_eq!(&r[12..16], &[10, 0, 0, 2]);
        assert_eq!(&r[16..20], &[10, 0, 0, 1]);
        assert_eq!((r[6], r[8], r[9]), (0x40, 64, 6));
        assert_eq!(&r[20..24], &[0, 80, 0x0f, 0xa0]);
        assert_eq!(&r[28..32], &1001u32.to_be_bytes(), "ack = seq + 1");
        assert_eq!(r[33], 0x14, "RST|ACK");
        assert_eq!(checksum(&r[..20], 0), 0);
        assert_eq!(checksum(&r[20..], pseudo(&r[12..16], &r[16..20], 6, 20)), 0);
        let ack = build::tcp(c, s, 4000, 80, 1001, 7777, 0x18, 100, &[], b"data");
        let r = tcp_reset(&ack).unwrap();
        assert_eq!(
            &r[24..28],
            &7777u32.to_be_bytes(),
            "seq = the segment's ack"
        );
        assert_eq!(r[33], 0x04, "RST alone");
        let rst = build::tcp(c, s, 4000, 80, 1, 0, 0x04, 0, &[], &[]);
        assert_eq!(tcp_reset(&rst), None);
        assert_eq!(tcp_reset(&build::udp(c, s, 1, 2, b"")), None);
    }

    #[test]
    fn icmp_errors_quote_the_packet_and_never_answer_errors() {
        let c = "10.0.0.1".parse().unwrap();
        let s = "10.0.0.2".parse().unwrap();
        let q = build::udp(c, s, 1, 53, &[7; 1000]);
        let e = icmp_error(&q, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, &INADDR_DUMMY).unwrap();
        assert_eq!(e.len(), ICMP_MAX_V4);
        assert_eq!(&e[12..16], &INADDR_DUMMY);
        assert_eq!(&e[16..20], &[10, 0, 0, 1]);
        assert_eq!((e[1], e[6], e[9]), (0xc0, 0, 1));
        assert_eq!(&e[28..48], &q[..20]);
        assert_eq!(checksum(&e[20..], 0), 0);
        assert_eq!(icmp_error(&e, ICMP_DEST_UNREACH, 3, &INADDR_DUMMY), None);
        let from_nowhere = build::udp("0.0.0.0".parse().unwrap(), s, 68, 67, b"");
        assert_eq!(
            icmp_error(&from_nowhere, ICMP_TIME_EXCEEDED, 0, &INADDR_DUMMY),
            None
        );
        let v6q = build::udp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            1,
            2,
            b"x",
        );
        let src: std::net::Ipv6Addr = "2001:db8::ff".parse().unwrap();
        let e6 = icmp_error(&v6q, ICMPV6_TIME_EXCEED, 0, &src.octets()).unwrap();
        assert_eq!((e6[6], e6[7], e6[40]), (58, 64, ICMPV6_TIME_EXCEED));
        assert_eq!(
            checksum(
                &e6[40..],
                pseudo(&e6[8..24], &e6[24..40], 58, e6.len() - 40)
            ),
            0
        );
    }

    #[test]
    fn rate_limit_bursts_six_then_one_a_second() {
        let mut r = IcmpRateLimit::default();
        let d = [10, 0, 0, 1];
        let allowed = (0..10).filter(|i| r.allow(&d, i * 1_000_000)).count();
        assert_eq!(allowed, 6);
        assert!(r.allow(&d, 1_010_000_000));
        assert!(!r.allow(&d, 1_020_000_000));
        assert!(r.allow(&[10, 0, 0, 2], 1_020_000_000));
    }
}
