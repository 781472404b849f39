//! Link-layer views: Ethernet II, 802.1Q / 802.1ad VLAN tags, Linux cooked capture v1 (SLL) and v2 (SLL2), and
//! BSD NULL / OpenBSD LOOP headers. Each view checks its length once in `new_checked`; accessors never panic.

use super::{Malformed, be16, be32};

/// `ETH_P_IP`.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// `ETH_P_8021Q`.
pub const ETH_P_8021Q: u16 = 0x8100;
/// `ETH_P_8021AD`.
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Old QinQ outer tag value still seen in captures.
pub const ETH_P_QINQ1: u16 = 0x9100;
/// `ETH_P_ARP`.
pub const ETH_P_ARP: u16 = 0x0806;

/// Ethernet II header (14 bytes).
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;

    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Malformed::ShortEthernet);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        if let Some(s) = self.buffer.as_ref().get(0..6) {
            a.copy_from_slice(s);
        }
        a
    }

    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        if let Some(s) = self.buffer.as_ref().get(6..12) {
            a.copy_from_slice(s);
        }
        a
    }

    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 12)
    }

    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }
}

/// One 802.1Q / 802.1ad tag as it follows the tag's TPID: TCI (2 bytes) then the next ethertype.
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const HEADER_LEN: usize = 4;

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Malformed::ShortVlan);
        }
        Ok(VlanTag { buffer })
    }

    pub fn pcp(&self) -> u8 {
        (be16(self.buffer.as_ref(), 0) >> 13) as u8
    }

    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), 0) & 0x0fff
    }

    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
}

/// Linux cooked capture v1 header (16 bytes).
#[derive(Debug, Clone, Copy)]
pub struct SllHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SllHeader<T> {
    pub const HEADER_LEN: usize = 16;

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Malformed::ShortSll);
        }
        Ok(SllHeader { buffer })
    }

    /// `PACKET_*` (0 host, 1 broadcast, 2 multicast, 3 otherhost, 4 outgoing).
    pub fn pkttype(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn hatype(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), 14)
    }
}

/// Linux cooked capture v2 header (20 bytes).
#[derive(Debug, Clone, Copy)]
pub struct Sll2Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Sll2Header<T> {
    pub const HEADER_LEN: usize = 20;

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Malformed::ShortSll2);
        }
        Ok(Sll2Header { buffer })
    }

    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn ifindex(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    pub fn hatype(&self) -> u16 {
        be16(self.buffer.as_ref(), 8)
    }

    pub fn pkttype(&self) -> u8 {
        self.buffer.as_ref().get(10).copied().unwrap_or(0)
    }
}

/// BSD NULL / OpenBSD LOOP header: a 4-byte address family (host order for NULL, network order for LOOP).
#[derive(Debug, Clone, Copy)]
pub struct NullHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NullHeader<T> {
    pub const HEADER_LEN: usize = 4;

    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Malformed::ShortNull);
        }
        Ok(NullHeader { buffer })
    }

    /// The family as an ethertype, whichever byte order the capturing host used: 2 = IPv4; 10 (Linux), 24
    /// (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS) = IPv6. `None` for anything else.
    pub fn ethertype(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        let le = u32::from_le_bytes([b.first().copied()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]);
        let fam = if le > 0xffff { le.swap_bytes() } else { le };
        match fam {
            2 => Some(ETH_P_IP),
            10 | 24 | 28 | 30 => Some(ETH_P_IPV6),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_and_vlan() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x20, 0x05, 0x08, 0x00]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.ethertype(), ETH_P_8021Q);
        let t = VlanTag::new_checked(e.payload()).unwrap();
        assert_eq!(t.vid(), 5);
        assert_eq!(t.pcp(), 1);
        assert_eq!(t.ethertype(), ETH_P_IP);
        assert_eq!(
            EthernetFrame::new_checked(&f[..13]).unwrap_err(),
            Malformed::ShortEthernet
        );
    }

    #[test]
    fn null_both_orders() {
        assert_eq!(
            NullHeader::new_checked(&[2u8, 0, 0, 0][..])
                .unwrap()
                .ethertype(),
            Some(ETH_P_IP)
        );
        assert_eq!(
            NullHeader::new_checked(&[0u8, 0, 0, 30][..])
                .unwrap()
                .ethertype(),
            Some(ETH_P_IPV6)
        );
        assert_eq!(
            NullHeader::new_checked(&[7u8, 0, 0, 0][..])
                .unwrap()
                .ethertype(),
            None
        );
    }

    #[test]
    fn sll_fields() {
        let mut h = vec![0u8, 4, 0, 1, 0, 6];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&[0x86, 0xdd]);
        let s = SllHeader::new_checked(&h[..]).unwrap();
        assert_eq!((s.pkttype(), s.hatype(), s.protocol()), (4, 1, ETH_P_IPV6));
        let mut h2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
        h2.extend_from_slice(&[0; 8]);
        let s2 = Sll2Header::new_checked(&h2[..]).unwrap();
        assert_eq!(
            (s2.protocol(), s2.ifindex(), s2.hatype(), s2.pkttype()),
            (ETH_P_IP, 3, 1, 0)
        );
    }
}
