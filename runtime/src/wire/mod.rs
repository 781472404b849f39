//! Zero-copy packet views (smoltcp style: `new_checked` validates lengths once, accessors never panic) and
//! [`parse_frame`], which turns one captured frame into a [`PktInfo`]: where the network and transport headers
//! are, the protocols, the fragment details — everything `vm::PktState` needs. Malformed input gives a
//! [`Malformed`] reason (a fieldless `Copy` enum, counted with [`MalformedCounters`]), never a panic.

pub mod build;
pub mod ip;
pub mod l4;
pub mod link;

pub use ip::{Ipv4Packet, Ipv6Exthdrs, Ipv6Packet, proto};
pub use l4::{IcmpPacket, TcpOption, TcpOptions, TcpPacket, UdpPacket, tcp_flags};
pub use link::{EthernetFrame, NullHeader, Sll2Header, SllHeader, VlanTag};

use crate::pcap::linktype;
use link::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, ETH_P_QINQ1};
use nfr_vm::PktState;

/// Why a frame (or header) could not be used. Reasons up to `NotIp` mean "never reaches an IP hook".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Malformed {
    UnsupportedLinktype,
    ShortEthernet,
    ShortVlan,
    TooManyVlanTags,
    ShortSll,
    ShortSll2,
    ShortNull,
    ShortPpp,
    ShortMpls,
    ShortPppoe,
    /// Not IPv4/IPv6 (ARP, unknown ethertype or address family).
    NotIp,
    ShortIpv4,
    BadIpVersion,
    BadIhl,
    BadTotalLength,
    ShortIpv6,
    BadPayloadLength,
    ShortExthdr,
    ExthdrChainTooLong,
    ShortTcp,
    BadTcpDataOffset,
    ShortUdp,
    BadUdpLength,
    ShortIcmp,
}

impl Malformed {
    /// Every reason, in discriminant order.
    pub const ALL: [Malformed; 24] = [
        Malformed::UnsupportedLinktype,
        Malformed::ShortEthernet,
        Malformed::ShortVlan,
        Malformed::TooManyVlanTags,
        Malformed::ShortSll,
        Malformed::ShortSll2,
        Malformed::ShortNull,
        Malformed::ShortPpp,
        Malformed::ShortMpls,
        Malformed::ShortPppoe,
        Malformed::NotIp,
        Malformed::ShortIpv4,
        Malformed::BadIpVersion,
        Malformed::BadIhl,
        Malformed::BadTotalLength,
        Malformed::ShortIpv6,
        Malformed::BadPayloadLength,
        Malformed::ShortExthdr,
        Malformed::ExthdrChainTooLong,
        Malformed::ShortTcp,
        Malformed::BadTcpDataOffset,
        Malformed::ShortUdp,
        Malformed::BadUdpLength,
        Malformed::ShortIcmp,
    ];

    /// Stable kebab-case name (for counters and traces).
    pub fn name(self) -> &'static str {
        match self {
            Malformed::UnsupportedLinktype => "unsupported-linktype",
            Malformed::ShortEthernet => "short-ethernet",
            Malformed::ShortVlan => "short-vlan",
            Malformed::TooManyVlanTags => "too-many-vlan-tags",
            Malformed::ShortSll => "short-sll",
            Malformed::ShortSll2 => "short-sll2",
            Malformed::ShortNull => "short-null",
            Malformed::ShortPpp => "short-ppp",
            Malformed::ShortMpls => "short-mpls",
            Malformed::ShortPppoe => "short-pppoe",
            Malformed::NotIp => "not-ip",
            Malformed::ShortIpv4 => "short-ipv4",
            Malformed::BadIpVersion => "bad-ip-version",
            Malformed::BadIhl => "bad-ihl",
            Malformed::BadTotalLength => "bad-total-length",
            Malformed::ShortIpv6 => "short-ipv6",
            Malformed::BadPayloadLength => "bad-payload-length",
            Malformed::ShortExthdr => "short-exthdr",
            Malformed::ExthdrChainTooLong => "exthdr-chain-too-long",
            Malformed::ShortTcp => "short-tcp",
            Malformed::BadTcpDataOffset => "bad-tcp-data-offset",
            Malformed::ShortUdp => "short-udp",
            Malformed::BadUdpLength => "bad-udp-length",
            Malformed::ShortIcmp => "short-icmp",
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Malformed {}

/// Per-reason counters for malformed / skipped frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MalformedCounters {
    counts: [u64; Malformed::ALL.len()],
}

impl MalformedCounters {
    pub fn record(&mut self, m: Malformed) {
        if let Some(c) = self.counts.get_mut(m as usize) {
            *c += 1;
        }
    }

    pub fn get(&self, m: Malformed) -> u64 {
        self.counts.get(m as usize).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Non-zero counters.
    pub fn iter(&self) -> impl Iterator<Item = (Malformed, u64)> + '_ {
        Malformed::ALL
            .iter()
            .zip(self.counts.iter())
            .filter(|(_, c)| **c != 0)
            .map(|(m, c)| (*m, *c))
    }
}

#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..off.saturating_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    b.get(off..off.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Internet checksum (RFC 1071) over `data`, starting from a partial sum `init`; returns the folded complement.
/// A correct header yields 0.
pub fn checksum(data: &[u8], init: u32) -> u16 {
    let mut sum = u64::from(init);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Incremental checksum update (RFC 1624 eqn. 3, `csum_replace4` / `inet_proto_csum_replace{2,4,16}` on a
/// packet whose checksum is not offloaded): the checksum `check` of data in which the 16-bit words `from` become
/// `to` (equal lengths, even). The kernel complements the old checksum as a 32-bit word (`~csum_unfold`), whose
/// upper half adds 0xffff: the sum is never zero, so an unchanged checksum of 0xffff comes back as 0, as there.
pub fn csum_replace(check: u16, from: &[u8], to: &[u8]) -> u16 {
    let mut sum = 0xffff + u64::from(!check);
    for (f, t) in from.chunks_exact(2).zip(to.chunks_exact(2)) {
        sum += u64::from(!u16::from_be_bytes([f[0], f[1]]));
        sum += u64::from(u16::from_be_bytes([t[0], t[1]]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What the link layer told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Offset of the network header.
    pub nhoff: u16,
    /// Ethertype of the network header (0x0800 / 0x86dd / anything else).
    pub ethertype: u16,
    /// `PACKET_*` from SLL/SLL2, else `PACKET_HOST`.
    pub pkttype: u8,
    /// The frame has a link-layer header.
    pub has_ll: bool,
    /// Number of VLAN tags skipped.
    pub vlan_tags: u8,
    /// Outermost VLAN id (0 if none).
    pub vlan_id: u16,
}

/// `ETH_P_MPLS_UC`.
pub const ETH_P_MPLS_UC: u16 = 0x8847;
/// `ETH_P_MPLS_MC`.
pub const ETH_P_MPLS_MC: u16 = 0x8848;
/// `ETH_P_PPP_SES` (PPPoE session).
pub const ETH_P_PPP_SES: u16 = 0x8864;

/// Skips an MPLS label stack at `off`; the payload's IP version is guessed from its first nibble.
fn mpls(frame: &[u8], mut off: usize) -> Result<(u16, usize), Malformed> {
    for _ in 0..16 {
        let e = frame.get(off..off + 4).ok_or(Malformed::ShortMpls)?;
        off += 4;
        if e.get(2).is_some_and(|b| b & 1 == 1) {
            let et = match frame.get(off).map(|b| b >> 4) {
                Some(4) => ETH_P_IP,
                Some(6) => ETH_P_IPV6,
                _ => 0,
            };
            return Ok((et, off));
        }
    }
    Err(Malformed::ShortMpls)
}

/// Maps a PPP protocol number to an ethertype and payload offset (`off` = first byte after the protocol).
fn ppp_proto(frame: &[u8], off: usize, p: u16) -> Result<(u16, usize), Malformed> {
    match p {
        0x0021 => Ok((ETH_P_IP, off)),
        0x0057 => Ok((ETH_P_IPV6, off)),
        0x0281 | 0x0283 => mpls(frame, off),
        _ => Ok((0, off)),
    }
}

/// Maximum stacked VLAN tags.
pub const MAX_VLAN_TAGS: u8 = 8;

/// Finds the network header of a frame of link type `lt` (LINKTYPE_*). Non-IP frames are *not* an error here.
pub fn parse_link(lt: u16, frame: &[u8]) -> Result<LinkInfo, Malformed> {
    let mut li = LinkInfo {
        nhoff: 0,
        ethertype: 0,
        pkttype: 0,
        has_ll: true,
        vlan_tags: 0,
        vlan_id: 0,
    };
    match lt {
        linktype::ETHERNET => {
            let e = EthernetFrame::new_checked(frame)?;
            let mut et = e.ethertype();
            let mut off = EthernetFrame::<&[u8]>::HEADER_LEN;
            while matches!(et, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1) {
                if li.vlan_tags >= MAX_VLAN_TAGS {
                    return Err(Malformed::TooManyVlanTags);
                }
                let t = VlanTag::new_checked(frame.get(off..).unwrap_or(&[]))?;
                if li.vlan_tags == 0 {
                    li.vlan_id = t.vid();
                }
                li.vlan_tags += 1;
                et = t.ethertype();
                off += VlanTag::<&[u8]>::HEADER_LEN;
            }
            let (et, off) = match et {
                ETH_P_MPLS_UC | ETH_P_MPLS_MC => mpls(frame, off)?,
                ETH_P_PPP_SES => {
                    if frame.len() < off + 8 {
                        return Err(Malformed::ShortPppoe);
                    }
                    ppp_proto(frame, off + 8, be16(frame, off + 6))?
                }
                _ => (et, off),
            };
            li.ethertype = et;
            li.nhoff = off as u16;
        }
        linktype::PPP => {
            let mut off = 0;
            if frame.first() == Some(&0xff) && frame.get(1) == Some(&0x03) {
                off = 2;
            }
            if frame.len() < off + 2 {
                return Err(Malformed::ShortPpp);
            }
            // Protocol-field compression: an odd first byte is a one-byte protocol.
            let (p, plen) = match frame.get(off) {
                Some(b) if b & 1 == 1 => (u16::from(*b), 1),
                _ => (be16(frame, off), 2),
            };
            let (et, o) = ppp_proto(frame, off + plen, p)?;
            li.ethertype = et;
            li.nhoff = o as u16;
        }
        linktype::LINUX_SLL => {
            let s = SllHeader::new_checked(frame)?;
            li.ethertype = s.protocol();
            li.pkttype = s.pkttype().min(255) as u8;
            li.nhoff = SllHeader::<&[u8]>::HEADER_LEN as u16;
        }
        linktype::LINUX_SLL2 => {
            let s = Sll2Header::new_checked(frame)?;
            li.ethertype = s.protocol();
            li.pkttype = s.pkttype();
            li.nhoff = Sll2Header::<&[u8]>::HEADER_LEN as u16;
        }
        linktype::NULL | linktype::LOOP => {
            let n = NullHeader::new_checked(frame)?;
            li.ethertype = n.ethertype().unwrap_or(0);
            li.nhoff = 4;
        }
        linktype::RAW | linktype::RAW_OPENBSD | linktype::RAW_BSDOS => {
            li.has_ll = false;
            li.ethertype = match frame.first().map(|b| b >> 4) {
                Some(4) => ETH_P_IP,
                Some(6) => ETH_P_IPV6,
                _ => 0,
            };
        }
        linktype::IPV4 => {
            li.has_ll = false;
            li.ethertype = ETH_P_IP;
        }
        linktype::IPV6 => {
            li.has_ll = false;
            li.ethertype = ETH_P_IPV6;
        }
        _ => return Err(Malformed::UnsupportedLinktype),
    }
    Ok(li)
}

/// Where everything is in one frame (offsets from the start of the frame bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PktInfo {
    pub link: LinkInfo,
    /// `NFPROTO_IPV4` (2) or `NFPROTO_IPV6` (10).
    pub nfproto: u8,
    /// Transport protocol (`IPPROTO_*`); for IPv6 after the extension headers (`FRAGMENT` for a non-first
    /// fragment).
    pub l4proto: u8,
    /// Offset of the network header (= `link.nhoff`).
    pub nhoff: u16,
    /// Offset of the transport header (valid when `has_th`).
    pub thoff: u16,
    /// The transport header position is known (not set when the IPv6 extension chain is broken).
    pub has_th: bool,
    /// IP datagram length from the header (`tot_len`, `40 + payload_len`): the packet's `skb->len`.
    pub ip_len: u32,
    /// Fragment offset in bytes.
    pub fragoff: u16,
    /// MF flag.
    pub more_frags: bool,
    /// The packet is a fragment (IPv4 MF/offset, or any IPv6 fragment header).
    pub is_fragment: bool,
    /// IPv4 ident / IPv6 fragment id.
    pub frag_id: u32,
    /// IPv6: offset of the fragment header (0 = none).
    pub frag_hdr_off: u16,
}

/// Parses a frame down to the transport header. L2/L3 problems are errors (the packet would never reach an IP
/// hook); the transport header itself is not validated here (conntrack's `*_error` functions do that).
pub fn parse_frame(lt: u16, frame: &[u8]) -> Result<PktInfo, Malformed> {
    let link = parse_link(lt, frame)?;
    let nh = usize::from(link.nhoff);
    let l3 = frame.get(nh..).unwrap_or(&[]);
    let mut pi = PktInfo {
        link,
        nfproto: 0,
        l4proto: 0,
        nhoff: link.nhoff,
        thoff: 0,
        has_th: false,
        ip_len: 0,
        fragoff: 0,
        more_frags: false,
        is_fragment: false,
        frag_id: 0,
        frag_hdr_off: 0,
    };
    match link.ethertype {
        ETH_P_IP => {
            let ip = Ipv4Packet::new_checked(l3)?;
            pi.nfproto = nfr_vm::pkt::NFPROTO_IPV4;
            pi.l4proto = ip.protocol();
            pi.thoff = (nh + ip.header_len()) as u16;
            pi.has_th = true;
            pi.ip_len = u32::from(ip.total_len());
            pi.fragoff = ip.frag_offset();
            pi.more_frags = ip.more_frags();
            pi.is_fragment = pi.more_frags || pi.fragoff != 0;
            pi.frag_id = u32::from(ip.ident());
        }
        ETH_P_IPV6 => {
            let ip = Ipv6Packet::new_checked(l3)?;
            pi.nfproto = nfr_vm::pkt::NFPROTO_IPV6;
            pi.ip_len = ip.datagram_len() as u32;
            if let Ok(e) = ip.exthdrs() {
                pi.l4proto = e.l4proto;
                pi.thoff = (nh + e.thoff) as u16;
                pi.has_th = e.l4proto != proto::NONE;
                if let Some(fh) = e.frag_hdr_off {
                    pi.is_fragment = true;
                    pi.frag_hdr_off = (nh + fh) as u16;
                    pi.fragoff = e.frag_off;
                    pi.more_frags = e.more_frags;
                    pi.frag_id = e.frag_id;
                }
            }
        }
        _ => return Err(Malformed::NotIp),
    }
    Ok(pi)
}

impl PktInfo {
    /// Copies the layout fields into an engine packet context (`len` = IP datagram length).
    pub fn fill(&self, p: &mut PktState) {
        p.lloff = 0;
        p.has_ll = self.link.has_ll;
        p.nhoff = self.nhoff;
        p.thoff = self.thoff;
        p.has_th = self.has_th;
        p.fragoff = self.fragoff;
        p.is_fragment = self.is_fragment;
        p.l4proto = self.l4proto;
        p.nfproto = self.nfproto;
        p.pkttype = self.link.pkttype;
        p.protocol = self.link.ethertype;
        p.len = self.ip_len;
    }

    /// The IP datagram (network header to `ip_len`) within `frame`.
    pub fn l3<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let s = usize::from(self.nhoff);
        frame
            .get(s..s + self.ip_len as usize)
            .or_else(|| frame.get(s..))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp() -> Vec<u8> {
        let mut tcp = vec![
            0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        tcp.extend_from_slice(b"xy");
        let tot = 20 + tcp.len();
        let mut h = vec![
            0x45, 0, 0, tot as u8, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        h.extend(tcp);
        h
    }

    #[test]
    fn checksum_known_value() {
        // RFC 1071 example words.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&d, 0), !0xddf2);
    }

    #[test]
    fn parse_every_linktype() {
        let ip = ipv4_tcp();
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        for (lt, f, nh) in [
            (linktype::ETHERNET, &eth, 22u16),
            (linktype::LINUX_SLL, &sll, 16),
            (linktype::LINUX_SLL2, &sll2, 20),
            (linktype::NULL, &null, 4),
            (linktype::RAW, &ip, 0),
            (linktype::RAW_OPENBSD, &ip, 0),
            (linktype::IPV4, &ip, 0),
        ] {
            let pi = parse_frame(lt, f).unwrap_or_else(|e| panic!("lt {lt}: {e}"));
            assert_eq!(pi.nhoff, nh, "lt {lt}");
            assert_eq!(pi.thoff, nh + 20);
            assert_eq!((pi.nfproto, pi.l4proto, pi.ip_len), (2, 6, 42));
            assert!(pi.has_th && !pi.is_fragment);
            let mut st = PktState::default();
            pi.fill(&mut st);
            assert_eq!(
                (st.nhoff, st.thoff, st.l4proto, st.len),
                (nh, nh + 20, 6, 42)
            );
        }
        let e = parse_frame(linktype::ETHERNET, &eth).unwrap();
        assert_eq!((e.link.vlan_tags, e.link.vlan_id), (2, 10));
        assert_eq!(
            parse_frame(linktype::LINUX_SLL2, &sll2)
                .unwrap()
                .link
                .pkttype,
            4
        );
    }

    #[test]
    fn ppp_mpls_pppoe() {
        let ip = ipv4_tcp();
        // PPP (HDLC framing) -> MPLS (two labels) -> IPv4
        let mut ppp = vec![0xff, 0x03, 0x02, 0x81, 0, 0, 0x10, 64, 0, 0, 0x21, 64];
        ppp.extend_from_slice(&ip);
        let pi = parse_frame(linktype::PPP, &ppp).unwrap();
        assert_eq!((pi.nhoff, pi.l4proto), (12, 6));
        // PPP with protocol-field compression.
        let mut pfc = vec![0x21];
        pfc.extend_from_slice(&ip);
        assert_eq!(parse_frame(linktype::PPP, &pfc).unwrap().nhoff, 1);
        // Ethernet -> PPPoE session -> IPv4
        let mut e = vec![0u8; 12];
        e.extend_from_slice(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 44, 0x00, 0x21]);
        e.extend_from_slice(&ip);
        assert_eq!(parse_frame(linktype::ETHERNET, &e).unwrap().nhoff, 22);
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0x88, 0x47, 0, 0, 0x10]);
        assert_eq!(
            parse_frame(linktype::ETHERNET, &m).unwrap_err(),
            Malformed::ShortMpls
        );
    }

    #[test]
    fn parse_errors_are_typed() {
        assert_eq!(
            parse_frame(147, &[0; 40]).unwrap_err(),
            Malformed::UnsupportedLinktype
        );
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(
            parse_frame(linktype::ETHERNET, &arp).unwrap_err(),
            Malformed::NotIp
        );
        assert_eq!(
            parse_frame(linktype::ETHERNET, &[0; 8]).unwrap_err(),
            Malformed::ShortEthernet
        );
        let ip = ipv4_tcp();
        assert_eq!(
            parse_frame(linktype::RAW, &ip[..30]).unwrap_err(),
            Malformed::BadTotalLength
        );
        let mut c = MalformedCounters::default();
        c.record(Malformed::NotIp);
        c.record(Malformed::NotIp);
        c.record(Malformed::BadIhl);
        assert_eq!(c.get(Malformed::NotIp), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.iter().count(), 2);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // Deterministic pseudo-random fuzzing of every linktype.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 96) as usize;
            let mut buf = Vec::with_capacity(len);
            let mut y = x;
            for _ in 0..len {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                buf.push((y >> 56) as u8);
            }
            if len > 0 {
                buf[0] = if x & 1 == 0 { 0x45 } else { 0x60 };
            }
            for lt in [0u16, 1, 9, 12, 101, 113, 228, 229, 276] {
                if let Ok(pi) = parse_frame(lt, &buf) {
                    let l3 = pi.l3(&buf);
                    let t = buf.get(usize::from(pi.thoff)..).unwrap_or(&[]);
                    let _ = TcpPacket::new_checked(t).map(|t| t.options().count());
                    let _ = UdpPacket::new_checked(t).map(|u| u.payload().len());
                    let _ = IcmpPacket::new_checked(t).map(|i| i.payload().len());
                    assert!(l3.len() <= buf.len());
                }
            }
        }
    }
}
