//! Packet builders for tests, benches and examples: IPv4 / IPv6 datagrams carrying TCP, UDP, ICMP or ICMPv6 with
//! correct lengths and checksums (network header first, no link layer); the pseudo-header sum the runtime's own
//! packets use too.

use super::checksum;
use std::net::IpAddr;

fn pseudo_ip(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => pseudo(&a.octets(), &b.octets(), proto, len),
        (IpAddr::V6(a), IpAddr::V6(b)) => pseudo(&a.octets(), &b.octets(), proto, len),
        _ => pseudo(&[], &[], proto, len),
    }
}

/// The pseudo-header sum of TCP/UDP/ICMPv6 checksums over address bytes (4 or 16 each), as [`checksum`]'s
/// `init`.
pub fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    let mut s: u32 = 0;
    for c in src.chunks_exact(2).chain(dst.chunks_exact(2)) {
        s = s.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    s.wrapping_add(u32::from(proto))
        .wrapping_add((len & 0xffff) as u32)
        .wrapping_add((len >> 16) as u32)
}

/// Recomputes the header checksum of the IPv4 datagram `b` (after a field of its header was changed).
pub fn refresh_ipv4_checksum(b: &mut [u8]) {
    if b.len() < 20 {
        return;
    }
    b[10] = 0;
    b[11] = 0;
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let c = checksum(b.get(..ihl).unwrap_or(&[]), 0);
    b[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Wraps an L4 segment into an IP header. Mixed address families give an IPv4 header with zero addresses.
pub fn ip(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h.extend_from_slice(l4);
            h
        }
        _ => {
            let (s, d) = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets(), d.octets()),
                _ => ([0; 4], [0; 4]),
            };
            let tot = (20 + l4.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&tot.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&s);
            h.extend_from_slice(&d);
            let c = checksum(&h, 0);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(l4);
            h
        }
    }
}

/// A TCP segment in an IP datagram. `opts` must be a multiple of 4 bytes.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let doff = (20 + opts.len()) / 4;
    let mut t = Vec::with_capacity(20 + opts.len() + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[(doff as u8) << 4, flags]);
    t.extend_from_slice(&win.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    let c = checksum(&t, pseudo_ip(&src, &dst, 6, t.len()));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ip(src, dst, 6, &t)
}

/// A UDP datagram.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut c = checksum(&u, pseudo_ip(&src, &dst, 17, u.len()));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    ip(src, dst, 17, &u)
}

/// An ICMP (IPv4 addresses) or ICMPv6 (IPv6 addresses) message: type, code, the 4 "rest of header" bytes
/// (id/seq, MTU, unused) and the body (for errors: the offending datagram).
pub fn icmp(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let (proto, init) = if v6 {
        (58, pseudo_ip(&src, &dst, 58, m.len()))
    } else {
        (1, 0)
    };
    let c = checksum(&m, init);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip(src, dst, proto, &m)
}

/// Echo id/seq as the 4 "rest" bytes.
pub fn echo(id: u16, seq: u16) -> [u8; 4] {
    let i = id.to_be_bytes();
    let s = seq.to_be_bytes();
    [i[0], i[1], s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

    #[test]
    fn checksums_verify() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p = tcp(a, b, 1, 2, 3, 4, 0x12, 100, &[2, 4, 5, 0xb4], b"hi");
        let ip4 = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert!(ip4.verify_checksum());
        let seg = ip4.payload();
        assert_eq!(checksum(seg, pseudo_ip(&a, &b, 6, seg.len())), 0);
        assert_eq!(TcpPacket::new_checked(seg).unwrap().payload(), b"hi");
        let a6: IpAddr = "2001:db8::1".parse().unwrap();
        let b6: IpAddr = "2001:db8::2".parse().unwrap();
        let u = udp(a6, b6, 53, 1000, b"x");
        let ip6 = Ipv6Packet::new_checked(&u[..]).unwrap();
        let seg = &u[40..];
        assert_eq!(ip6.payload_len(), 9);
        assert_eq!(checksum(seg, pseudo_ip(&a6, &b6, 17, seg.len())), 0);
        assert_eq!(UdpPacket::new_checked(seg).unwrap().dst_port(), 1000);
    }
}
