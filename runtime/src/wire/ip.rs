//! Network-layer views: IPv4 (with options) and IPv6 with its extension-header chain (hop-by-hop, routing,
//! fragment, destination options, AH), checked the way `ip_rcv_core` / `ipv6_rcv` and `ipv6_skip_exthdr` do.

use super::{Malformed, be16, be32};

/// `IPPROTO_*` numbers used by the runtime (`nfr_proto::ipproto`).
pub mod proto {
    pub use nfr_proto::ipproto::{
        IPPROTO_AH as AH, IPPROTO_DSTOPTS as DSTOPTS, IPPROTO_ESP as ESP,
        IPPROTO_FRAGMENT as FRAGMENT, IPPROTO_GRE as GRE, IPPROTO_HOPOPTS as HOPOPTS,
        IPPROTO_ICMP as ICMP, IPPROTO_ICMPV6 as ICMPV6, IPPROTO_IGMP as IGMP, IPPROTO_NONE as NONE,
        IPPROTO_ROUTING as ROUTING, IPPROTO_SCTP as SCTP, IPPROTO_TCP as TCP, IPPROTO_UDP as UDP,
        IPPROTO_UDPLITE as UDPLITE,
    };
}

/// IPv4 header view. `new_checked` applies `ip_rcv_core`'s checks except the header checksum: version 4,
/// IHL >= 5, header and `tot_len` within the buffer, `tot_len >= ihl*4`.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let p = Ipv4Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Malformed> {
        let len = self.buffer.as_ref().len();
        if len < Self::MIN_HEADER_LEN {
            return Err(Malformed::ShortIpv4);
        }
        if self.version() != 4 {
            return Err(Malformed::BadIpVersion);
        }
        let hl = self.header_len();
        if hl < Self::MIN_HEADER_LEN || hl > len {
            return Err(Malformed::BadIhl);
        }
        let tot = usize::from(self.total_len());
        if tot < hl || tot > len {
            return Err(Malformed::BadTotalLength);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.b().first().copied().unwrap_or(0) >> 4
    }

    /// IHL in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.b().first().copied().unwrap_or(0) & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.b().get(1).copied().unwrap_or(0)
    }

    pub fn total_len(&self) -> u16 {
        be16(self.b(), 2)
    }

    pub fn ident(&self) -> u16 {
        be16(self.b(), 4)
    }

    pub fn dont_frag(&self) -> bool {
        be16(self.b(), 6) & 0x4000 != 0
    }

    pub fn more_frags(&self) -> bool {
        be16(self.b(), 6) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.b(), 6) & 0x1fff).wrapping_mul(8)
    }

    pub fn ttl(&self) -> u8 {
        self.b().get(8).copied().unwrap_or(0)
    }

    pub fn protocol(&self) -> u8 {
        self.b().get(9).copied().unwrap_or(0)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.b(), 10)
    }

    pub fn src_addr(&self) -> [u8; 4] {
        be32(self.b(), 12).to_be_bytes()
    }

    pub fn dst_addr(&self) -> [u8; 4] {
        be32(self.b(), 16).to_be_bytes()
    }

    /// Header options (bytes between 20 and IHL).
    pub fn options(&self) -> &[u8] {
        self.b()
            .get(Self::MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// Bytes between the header and `tot_len`.
    pub fn payload(&self) -> &[u8] {
        self.b()
            .get(self.header_len()..usize::from(self.total_len()))
            .unwrap_or(&[])
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        self.b()
            .get(..self.header_len())
            .is_some_and(|h| super::checksum(h, 0) == 0)
    }
}

/// IPv6 fixed header view. `new_checked` applies `ipv6_rcv`'s checks: version 6 and `40 + payload_len` within
/// the buffer (payload length 0 with a hop-by-hop header is a jumbogram and takes the whole buffer).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const HEADER_LEN: usize = 40;

    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let p = Ipv6Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Malformed> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Malformed::ShortIpv6);
        }
        if self.version() != 6 {
            return Err(Malformed::BadIpVersion);
        }
        if Self::HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Malformed::BadPayloadLength);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.b().first().copied().unwrap_or(0) >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        ((be16(self.b(), 0) >> 4) & 0xff) as u8
    }

    pub fn flow_label(&self) -> u32 {
        be32(self.b(), 0) & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.b(), 4)
    }

    pub fn next_header(&self) -> u8 {
        self.b().get(6).copied().unwrap_or(0)
    }

    pub fn hop_limit(&self) -> u8 {
        self.b().get(7).copied().unwrap_or(0)
    }

    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        if let Some(s) = self.b().get(8..24) {
            a.copy_from_slice(s);
        }
        a
    }

    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        if let Some(s) = self.b().get(24..40) {
            a.copy_from_slice(s);
        }
        a
    }

    /// Length of the datagram (header + payload), or the whole buffer for a jumbogram.
    pub fn datagram_len(&self) -> usize {
        if self.payload_len() == 0 && self.next_header() == proto::HOPOPTS {
            self.b().len()
        } else {
            Self::HEADER_LEN + usize::from(self.payload_len())
        }
    }

    /// Walks the extension-header chain (see [`Ipv6Exthdrs`]).
    pub fn exthdrs(&self) -> Result<Ipv6Exthdrs, Malformed> {
        let data = self.b().get(..self.datagram_len()).unwrap_or(self.b());
        walk_exthdrs(data, Self::HEADER_LEN, self.next_header())
    }

    /// Like [`Self::exthdrs`] but over the whole buffer, ignoring `payload_len` (for the datagram embedded in
    /// an ICMPv6 error, which is usually cut short).
    pub fn exthdrs_lenient(&self) -> Result<Ipv6Exthdrs, Malformed> {
        walk_exthdrs(self.b(), Self::HEADER_LEN, self.next_header())
    }
}

/// Result of walking an IPv6 extension-header chain, like `ipv6_skip_exthdr` plus the fragment header details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ipv6Exthdrs {
    /// Upper-layer protocol (or `FRAGMENT` when the walk stopped at a non-first fragment, `NONE` for no next
    /// header).
    pub l4proto: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub thoff: usize,
    /// Offset of the fragment header, if there is one.
    pub frag_hdr_off: Option<usize>,
    /// Offset of the header preceding the fragment header's "next header" field (the byte to patch on
    /// reassembly): 6 for the fixed header, else the start of the previous extension header.
    pub frag_prev_nh_off: usize,
    /// Fragment offset in bytes (0 for the first fragment).
    pub frag_off: u16,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment identification.
    pub frag_id: u32,
    /// Number of extension headers walked.
    pub count: u8,
}

/// Maximum number of extension headers walked (a longer chain is malformed).
pub const MAX_EXTHDRS: u8 = 32;

fn walk_exthdrs(data: &[u8], mut off: usize, mut nh: u8) -> Result<Ipv6Exthdrs, Malformed> {
    let mut r = Ipv6Exthdrs {
        frag_prev_nh_off: 6,
        ..Default::default()
    };
    let mut prev_nh_off = 6usize;
    loop {
        match nh {
            proto::HOPOPTS | proto::ROUTING | proto::FRAGMENT | proto::AH | proto::DSTOPTS => {}
            _ => {
                r.l4proto = nh;
                r.thoff = off;
                return Ok(r);
            }
        }
        if r.count >= MAX_EXTHDRS {
            return Err(Malformed::ExthdrChainTooLong);
        }
        let h = data.get(off..off + 8).ok_or(Malformed::ShortExthdr)?;
        let next = h.first().copied().unwrap_or(0);
        let hlen = match nh {
            proto::FRAGMENT => {
                let fo = be16(h, 2);
                r.frag_hdr_off = Some(off);
                r.frag_prev_nh_off = prev_nh_off;
                r.frag_off = fo & 0xfff8;
                r.more_frags = fo & 1 != 0;
                r.frag_id = be32(h, 4);
                if r.frag_off != 0 {
                    // Non-first fragment: the upper-layer header is not here (ipv6_skip_exthdr stops).
                    r.l4proto = proto::FRAGMENT;
                    r.thoff = off;
                    r.count += 1;
                    return Ok(r);
                }
                8
            }
            proto::AH => (usize::from(h.get(1).copied().unwrap_or(0)) + 2) * 4,
            _ => (usize::from(h.get(1).copied().unwrap_or(0)) + 1) * 8,
        };
        if off + hlen > data.len() {
            return Err(Malformed::ShortExthdr);
        }
        prev_nh_off = off;
        off += hlen;
        nh = next;
        r.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn v4(proto_: u8, payload: &[u8]) -> Vec<u8> {
        let tot = 20 + payload.len();
        let mut h = vec![
            0x45,
            0,
            (tot >> 8) as u8,
            tot as u8,
            0x12,
            0x34,
            0x40,
            0,
            64,
            proto_,
            0,
            0,
        ];
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let c = crate::wire::checksum(&h, 0);
        h[10] = (c >> 8) as u8;
        h[11] = c as u8;
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn ipv4_checks() {
        let p = v4(proto::UDP, &[0; 8]);
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), 17);
        assert_eq!(ip.src_addr(), [10, 0, 0, 1]);
        assert!(ip.dont_frag());
        assert_eq!(ip.payload().len(), 8);
        assert_eq!(
            Ipv4Packet::new_checked(&p[..27]).unwrap_err(),
            Malformed::BadTotalLength
        );
        let mut bad = p.clone();
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Malformed::BadIhl
        );
        bad[0] = 0x55;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Malformed::BadIpVersion
        );
        assert_eq!(
            Ipv4Packet::new_checked(&p[..10]).unwrap_err(),
            Malformed::ShortIpv4
        );
    }

    #[test]
    fn ipv4_options_and_fragments() {
        let mut p = v4(proto::TCP, &[0; 24]);
        // Turn 4 payload bytes into an options word: IHL 6, NOP NOP NOP EOL.
        p[0] = 0x46;
        p[20..24].copy_from_slice(&[1, 1, 1, 0]);
        p[6] = 0x20; // MF
        p[7] = 3; // offset 24 bytes
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.options(), &[1, 1, 1, 0]);
        assert!(ip.more_frags());
        assert_eq!(ip.frag_offset(), 24);
        assert_eq!(ip.payload().len(), 20);
    }

    fn v6(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x60,
            0,
            0,
            0,
            (payload.len() >> 8) as u8,
            payload.len() as u8,
            nh,
            64,
        ];
        h.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn ipv6_exthdr_chain() {
        // HBH (8) -> DSTOPTS (16) -> FRAGMENT (first, MF) -> TCP
        let mut pl = vec![proto::DSTOPTS, 0, 0, 0, 0, 0, 0, 0];
        pl.extend_from_slice(&[proto::FRAGMENT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[proto::TCP, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        pl.extend_from_slice(&[0; 20]);
        let p = v6(proto::HOPOPTS, &pl);
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        let e = ip.exthdrs().unwrap();
        assert_eq!(e.l4proto, proto::TCP);
        assert_eq!(e.thoff, 40 + 8 + 16 + 8);
        assert_eq!(e.frag_hdr_off, Some(64));
        assert_eq!(e.frag_prev_nh_off, 48);
        assert!(e.more_frags);
        assert_eq!(e.frag_id, 0xdeadbeef);
        assert_eq!(e.count, 3);
    }

    #[test]
    fn ipv6_non_first_fragment_and_errors() {
        let pl = [proto::UDP, 0, 0x05, 0x90, 0, 0, 0, 9, 1, 2, 3, 4];
        let p = v6(proto::FRAGMENT, &pl);
        let e = Ipv6Packet::new_checked(&p[..]).unwrap().exthdrs().unwrap();
        assert_eq!(
            (e.l4proto, e.frag_off, e.more_frags),
            (proto::FRAGMENT, 0x590, false)
        );
        let short = v6(proto::ROUTING, &[6, 1, 0, 0]);
        assert_eq!(
            Ipv6Packet::new_checked(&short[..])
                .unwrap()
                .exthdrs()
                .unwrap_err(),
            Malformed::ShortExthdr
        );
        let mut bad = v6(proto::UDP, &[0; 8]);
        bad[5] = 9;
        assert_eq!(
            Ipv6Packet::new_checked(&bad[..]).unwrap_err(),
            Malformed::BadPayloadLength
        );
    }
}
