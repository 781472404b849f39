//! The routing step between PREROUTING and FORWARD (`ip_forward`, `ip6_forward`): a packet whose TTL (hop limit)
//! would run out is dropped there, before FORWARD, and answered with ICMP time exceeded; every other packet has its
//! TTL (hop limit) decremented, and the IPv4 header checksum fixed incrementally, before FORWARD sees it. So
//! FORWARD and POSTROUTING rules match the decremented value, and the packet leaves with it.

use crate::hook::Packet;

/// What the routing step decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// TTL (hop limit) decremented; on to FORWARD.
    Forward,
    /// TTL (hop limit) <= 1: dropped (`too_many_hops`), ICMP time exceeded is due.
    TimeExceeded,
}

/// `ip_forward` / `ip6_forward` on `pkt`: the hop check, then `ip_decrease_ttl` / `hop_limit--`.
pub fn ip_forward(pkt: &mut Packet<'_>) -> Forward {
    let nh = usize::from(pkt.state.nhoff);
    let v6 = pkt.data.get(nh).is_some_and(|b| b >> 4 == 6);
    // ttl at byte 8 (IPv4), hop limit at byte 7 (IPv6); ip_rcv already checked the header is there.
    let at = nh + if v6 { 7 } else { 8 };
    let Some(&ttl) = pkt.data.get(at) else {
        return Forward::TimeExceeded;
    };
    if ttl <= 1 {
        return Forward::TimeExceeded;
    }
    let d = pkt.data.to_mut();
    if let Some(b) = d.get_mut(at) {
        *b = ttl - 1;
    }
    if !v6 && let Some(c) = d.get_mut(nh + 10..nh + 12) {
        // ip_decrease_ttl: check += htons(0x0100), end-around carry.
        let check = u32::from(u16::from_be_bytes([c[0], c[1]])) + 0x0100;
        let check = (check + u32::from(check >= 0xffff)) as u16;
        c.copy_from_slice(&check.to_be_bytes());
    }
    Forward::Forward
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::linktype;
    use crate::wire::{build, checksum};

    #[test]
    fn decrements_ttl_and_keeps_the_checksum_right() {
        for ttl in [2u8, 64, 255] {
            let mut d = build::udp(
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                1,
                2,
                b"x",
            );
            d[8] = ttl;
            d[10..12].fill(0);
            let c = checksum(&d[..20], 0);
            d[10..12].copy_from_slice(&c.to_be_bytes());
            let mut p = Packet::from_frame(linktype::RAW, &d, 0).unwrap();
            assert_eq!(ip_forward(&mut p), Forward::Forward);
            assert_eq!(p.data[8], ttl - 1);
            assert_eq!(checksum(&p.data[..20], 0), 0, "ttl {ttl}");
        }
        for ttl in [0u8, 1] {
            let mut d = build::udp(
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
                1,
                2,
                b"",
            );
            d[7] = ttl;
            let mut p = Packet::from_frame(linktype::RAW, &d, 0).unwrap();
            assert_eq!(ip_forward(&mut p), Forward::TimeExceeded);
            assert_eq!(p.data[7], ttl, "unchanged");
        }
    }
}
