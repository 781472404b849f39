//! Transport-layer views: TCP (with an option iterator: MSS, window scale, SACK-permitted, SACK blocks,
//! timestamps), UDP, and ICMP / ICMPv6 (which share a layout; errors carry the offending packet after 8 bytes).

use super::{Malformed, be16, be32};

/// TCP flag bits (low byte of the flags word).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// TCP header view; `new_checked` requires 20 bytes and `20 <= doff*4 <= len` (`tcp_error`'s checks).
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let len = buffer.as_ref().len();
        if len < Self::MIN_HEADER_LEN {
            return Err(Malformed::ShortTcp);
        }
        let p = TcpPacket { buffer };
        let hl = p.header_len();
        if hl < Self::MIN_HEADER_LEN || hl > len {
            return Err(Malformed::BadTcpDataOffset);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        be16(self.b(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.b(), 2)
    }

    pub fn seq_number(&self) -> u32 {
        be32(self.b(), 4)
    }

    pub fn ack_number(&self) -> u32 {
        be32(self.b(), 8)
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.b().get(12).copied().unwrap_or(0) >> 4) * 4
    }

    /// Flags byte (FIN..CWR, see [`tcp_flags`]).
    pub fn flags(&self) -> u8 {
        self.b().get(13).copied().unwrap_or(0)
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags() & flag != 0
    }

    pub fn window_len(&self) -> u16 {
        be16(self.b(), 14)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.b(), 16)
    }

    pub fn urgent_at(&self) -> u16 {
        be16(self.b(), 18)
    }

    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions {
            data: self
                .b()
                .get(Self::MIN_HEADER_LEN..self.header_len())
                .unwrap_or(&[]),
        }
    }

    pub fn payload(&self) -> &[u8] {
        self.b().get(self.header_len()..).unwrap_or(&[])
    }
}

/// One parsed TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// Raw SACK blocks (8 bytes each: left edge, right edge).
    SackRange(&'a [u8]),
    Timestamp {
        tsval: u32,
        tsecr: u32,
    },
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterator over TCP options in the style of `tcp_parse_options` / conntrack's `tcp_options`: stops at EOL or at
/// the first option whose length is < 2 or runs past the header.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        let kind = *self.data.first()?;
        match kind {
            0 => {
                self.data = &[];
                Some(TcpOption::EndOfList)
            }
            1 => {
                self.data = self.data.get(1..).unwrap_or(&[]);
                Some(TcpOption::NoOperation)
            }
            _ => {
                let len = usize::from(*self.data.get(1)?);
                if len < 2 || len > self.data.len() {
                    self.data = &[];
                    return None;
                }
                let body = self.data.get(2..len).unwrap_or(&[]);
                self.data = self.data.get(len..).unwrap_or(&[]);
                Some(match (kind, len) {
                    (2, 4) => TcpOption::MaxSegmentSize(be16(body, 0)),
                    (3, 3) => TcpOption::WindowScale(body.first().copied().unwrap_or(0)),
                    (4, 2) => TcpOption::SackPermitted,
                    (5, _) if len >= 10 && (len - 2) % 8 == 0 => TcpOption::SackRange(body),
                    (8, 10) => TcpOption::Timestamp {
                        tsval: be32(body, 0),
                        tsecr: be32(body, 4),
                    },
                    _ => TcpOption::Unknown { kind, data: body },
                })
            }
        }
    }
}

/// UDP header view; `new_checked` requires 8 bytes, and `8 <= len field <= buffer` (`udp_error`).
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let len = buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Malformed::ShortUdp);
        }
        let p = UdpPacket { buffer };
        let l = usize::from(p.len());
        if l < Self::HEADER_LEN || l > len {
            return Err(Malformed::BadUdpLength);
        }
        Ok(p)
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn is_empty(&self) -> bool {
        self.len() <= 8
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(Self::HEADER_LEN..usize::from(self.len()))
            .unwrap_or(&[])
    }
}

/// ICMP / ICMPv6 header view (8 bytes: type, code, checksum, then id/seq or unused/MTU).
#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    pub fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Malformed::ShortIcmp);
        }
        Ok(IcmpPacket { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref().get(1).copied().unwrap_or(0)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Echo / timestamp / info identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Bytes after the 8-byte header; for error messages, the embedded (offending) packet.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_with_options() {
        let mut h = vec![
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        h.extend_from_slice(&[
            2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
        ]);
        h.extend_from_slice(b"data");
        let t = TcpPacket::new_checked(&h[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.seq_number()), (12345, 80, 1));
        assert!(t.has(tcp_flags::SYN) && !t.has(tcp_flags::ACK));
        assert_eq!(t.header_len(), 40);
        assert_eq!(t.payload(), b"data");
        let o: Vec<_> = t.options().collect();
        assert_eq!(
            o,
            vec![
                TcpOption::MaxSegmentSize(1460),
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
                TcpOption::SackPermitted,
                TcpOption::Timestamp { tsval: 1, tsecr: 0 },
            ]
        );
        assert_eq!(
            TcpPacket::new_checked(&h[..30]).unwrap_err(),
            Malformed::BadTcpDataOffset
        );
        let mut bad = h.clone();
        bad[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap_err(),
            Malformed::BadTcpDataOffset
        );
    }

    #[test]
    fn tcp_options_stop_on_bad_length() {
        let mut h = vec![0u8; 12];
        h.extend_from_slice(&[0x60, 0x10, 0, 0, 0, 0, 0, 0, 3, 1, 0, 0]);
        let t = TcpPacket::new_checked(&h[..]).unwrap();
        assert_eq!(t.options().count(), 0);
    }

    #[test]
    fn udp_and_icmp() {
        let u = [0, 53, 0x30, 0x39, 0, 10, 0, 0, 7, 8];
        let p = UdpPacket::new_checked(&u[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.payload()),
            (53, 12345, &[7u8, 8][..])
        );
        assert_eq!(
            UdpPacket::new_checked(&u[..9]).unwrap_err(),
            Malformed::BadUdpLength
        );
        let i = [8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xaa];
        let ic = IcmpPacket::new_checked(&i[..]).unwrap();
        assert_eq!(
            (
                ic.msg_type(),
                ic.echo_ident(),
                ic.echo_seq_no(),
                ic.payload()
            ),
            (8, 0x1234, 1, &[0xaa][..])
        );
        assert_eq!(
            IcmpPacket::new_checked(&i[..7]).unwrap_err(),
            Malformed::ShortIcmp
        );
    }
}
