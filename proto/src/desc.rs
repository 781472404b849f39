//! Protocol descriptors and their links, modelled on nftables' `struct proto_desc` (src/proto.c): each
//! header protocol has a payload base, the field that names the protocol above it (`protocol_key`) and
//! the upper-layer protocols by that field's value; `meta nfproto` (inet) and `meta l4proto` are the
//! pseudo-protocols `inet` and `inet-service` whose key is a meta key. Each table family starts at one
//! descriptor ([`family_start`]), a link-layer type selects the link header ([`link_desc`]). The
//! checker's dependency insertion, the printer's dependency stripping and the lowerings all read
//! these links.

use crate::catalog::PayloadBase;
use crate::ipproto::*;

/// `NFPROTO_INET` (a table family, never a packet's nfproto).
pub const NFPROTO_INET: u8 = 1;
/// `NFPROTO_IPV4`.
pub const NFPROTO_IPV4: u8 = 2;
/// `NFPROTO_ARP`.
pub const NFPROTO_ARP: u8 = 3;
/// `NFPROTO_NETDEV`.
pub const NFPROTO_NETDEV: u8 = 5;
/// `NFPROTO_BRIDGE`.
pub const NFPROTO_BRIDGE: u8 = 7;
/// `NFPROTO_IPV6`.
pub const NFPROTO_IPV6: u8 = 10;

/// `ETH_P_IP`.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_ARP`.
pub const ETH_P_ARP: u16 = 0x0806;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// `ETH_P_8021Q`.
pub const ETH_P_8021Q: u16 = 0x8100;
/// `ETH_P_8021AD`.
pub const ETH_P_8021AD: u16 = 0x88a8;

/// `ARPHRD_ETHER`: Ethernet devices.
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`: `lo`.
pub const ARPHRD_LOOPBACK: u16 = 772;
/// `ARPHRD_PPP`: PPP devices.
pub const ARPHRD_PPP: u16 = 512;

/// Where a descriptor's protocol key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoKey {
    /// No upper layer is named (transport headers).
    None,
    /// A header field of this protocol (`ip protocol`, `ip6 nexthdr`, `ether type`).
    Field(&'static str),
    /// A meta key (`meta nfproto` for inet, `meta l4proto` for inet-service, `meta protocol`
    /// for netdev).
    Meta(&'static str),
}

/// One protocol (`struct proto_desc`).
#[derive(Debug, PartialEq, Eq)]
pub struct ProtoDesc {
    /// nft's keyword (`ip`, `tcp`; `inet`, `inet-service` and `netdev` are pseudo-protocols).
    pub name: &'static str,
    pub base: PayloadBase,
    pub protocol_key: ProtoKey,
    /// Upper-layer protocols by the key's value (`PROTO_LINK`).
    pub upper: &'static [(u16, &'static str)],
    /// The Internet checksum a payload write must keep right (`checksum_key`, `NFT_PAYLOAD_CSUM_INET`): its
    /// offset in the header, in bytes.
    pub checksum_at: Option<u32>,
    /// Fields that are part of the transport checksum's pseudo-header: a write to them updates it too
    /// (`NFT_PAYLOAD_L4CSUM_PSEUDOHDR`); `&["*"]`: every field of the header (UDP, whose own checksum nft
    /// leaves to the pseudo-header update, as it may be 0).
    pub pseudo_fields: &'static [&'static str],
}

impl ProtoDesc {
    /// The upper-layer protocol the key value `n` selects.
    pub fn upper(&self, n: u16) -> Option<&'static str> {
        self.upper.iter().find(|(v, _)| *v == n).map(|(_, d)| *d)
    }

    /// Whether a write to `field` of this header changes the transport checksum's pseudo-header.
    pub fn in_pseudo_header(&self, field: &str) -> bool {
        self.pseudo_fields.iter().any(|f| *f == "*" || *f == field)
    }

    /// The key value that selects `upper` above this protocol.
    pub fn number_of(&self, upper: &str) -> Option<u16> {
        self.upper
            .iter()
            .find(|(_, d)| *d == upper)
            .map(|(v, _)| *v)
    }
}

const fn l4(n: u8, d: &'static str) -> (u16, &'static str) {
    (n as u16, d)
}

/// Transport protocols above both IPv4 and IPv6 (`proto_inet_service`'s common links).
macro_rules! inet_service_links {
    ($($extra:expr),*) => {
        &[
            l4(IPPROTO_ESP, "esp"),
            l4(IPPROTO_AH, "ah"),
            l4(IPPROTO_COMP, "comp"),
            l4(IPPROTO_UDP, "udp"),
            l4(IPPROTO_UDPLITE, "udplite"),
            l4(IPPROTO_TCP, "tcp"),
            l4(IPPROTO_DCCP, "dccp"),
            l4(IPPROTO_SCTP, "sctp"),
            $($extra),*
        ]
    };
}

const fn transport(name: &'static str) -> ProtoDesc {
    ProtoDesc {
        name,
        base: PayloadBase::Transport,
        protocol_key: ProtoKey::None,
        upper: &[],
        checksum_at: None,
        pseudo_fields: &[],
    }
}

/// A transport header with an Internet checksum at `at`.
const fn transport_csum(name: &'static str, at: u32) -> ProtoDesc {
    ProtoDesc {
        checksum_at: Some(at),
        ..transport(name)
    }
}

/// Every descriptor.
pub static PROTOS: &[ProtoDesc] = &[
    ProtoDesc {
        name: "ether",
        base: PayloadBase::Link,
        protocol_key: ProtoKey::Field("type"),
        upper: &[
            (ETH_P_IP, "ip"),
            (ETH_P_ARP, "arp"),
            (ETH_P_IPV6, "ip6"),
            (ETH_P_8021Q, "vlan"),
            (ETH_P_8021AD, "vlan"),
        ],
        checksum_at: None,
        pseudo_fields: &[],
    },
    ProtoDesc {
        name: "vlan",
        base: PayloadBase::Link,
        protocol_key: ProtoKey::Field("type"),
        upper: &[
            (ETH_P_IP, "ip"),
            (ETH_P_ARP, "arp"),
            (ETH_P_IPV6, "ip6"),
            (ETH_P_8021Q, "vlan"),
        ],
        checksum_at: None,
        pseudo_fields: &[],
    },
    ProtoDesc {
        name: "arp",
        base: PayloadBase::Network,
        protocol_key: ProtoKey::None,
        upper: &[],
        checksum_at: None,
        pseudo_fields: &[],
    },
    ProtoDesc {
        name: "ip",
        base: PayloadBase::Network,
        protocol_key: ProtoKey::Field("protocol"),
        upper: inet_service_links!(l4(IPPROTO_ICMP, "icmp"), l4(IPPROTO_IGMP, "igmp")),
        checksum_at: Some(10),
        pseudo_fields: &["saddr", "daddr", "protocol"],
    },
    ProtoDesc {
        name: "ip6",
        base: PayloadBase::Network,
        protocol_key: ProtoKey::Field("nexthdr"),
        upper: inet_service_links!(l4(IPPROTO_ICMPV6, "icmpv6")),
        checksum_at: None,
        pseudo_fields: &["saddr", "daddr"],
    },
    ProtoDesc {
        name: "inet",
        base: PayloadBase::Link,
        protocol_key: ProtoKey::Meta("nfproto"),
        upper: &[(NFPROTO_IPV4 as u16, "ip"), (NFPROTO_IPV6 as u16, "ip6")],
        checksum_at: None,
        pseudo_fields: &[],
    },
    ProtoDesc {
        name: "netdev",
        base: PayloadBase::Link,
        protocol_key: ProtoKey::Meta("protocol"),
        upper: &[(ETH_P_IP, "ip"), (ETH_P_ARP, "arp"), (ETH_P_IPV6, "ip6")],
        checksum_at: None,
        pseudo_fields: &[],
    },
    ProtoDesc {
        name: "inet-service",
        base: PayloadBase::Network,
        protocol_key: ProtoKey::Meta("l4proto"),
        upper: inet_service_links!(
            l4(IPPROTO_ICMP, "icmp"),
            l4(IPPROTO_IGMP, "igmp"),
            l4(IPPROTO_ICMPV6, "icmpv6")
        ),
        checksum_at: None,
        pseudo_fields: &[],
    },
    transport_csum("tcp", 16),
    ProtoDesc {
        pseudo_fields: &["*"],
        ..transport("udp")
    },
    transport("udplite"),
    transport("dccp"),
    transport("sctp"),
    transport("esp"),
    transport("ah"),
    transport("comp"),
    transport_csum("icmp", 2),
    transport("igmp"),
    transport_csum("icmpv6", 2),
    transport("th"),
];

/// The descriptor named `name`.
pub fn desc(name: &str) -> Option<&'static ProtoDesc> {
    PROTOS.iter().find(|d| d.name == name)
}

/// `proto_inet`: the upper layer of `meta nfproto` in inet tables.
pub fn inet() -> &'static ProtoDesc {
    desc("inet").unwrap_or(&PROTOS[0])
}

/// `proto_inet_service`: the upper layer of `meta l4proto`.
pub fn inet_service() -> &'static ProtoDesc {
    desc("inet-service").unwrap_or(&PROTOS[0])
}

/// The `IPPROTO_*` number of transport protocol `name` (`tcp` → 6), if it has one (`th` has not).
pub fn l4_number(name: &str) -> Option<u8> {
    inet_service()
        .number_of(name)
        .and_then(|n| u8::try_from(n).ok())
}

/// The packet family (`NFPROTO_IPV4`/`NFPROTO_IPV6`) that protocol `name` implies, and whether that is
/// only a soft requirement: a network protocol is an upper layer of `inet` (hard); a transport protocol
/// found above only one of `ip`/`ip6` (`icmp`, `igmp`, `icmpv6`) implies that family softly (nft accepts
/// `meta nfproto ipv4 icmpv6 type ...`).
pub fn implied_nfproto(name: &str) -> Option<(u8, bool)> {
    if let Some(n) = inet().number_of(name) {
        return u8::try_from(n).ok().map(|v| (v, false));
    }
    let above = |net: &str| desc(net).is_some_and(|d| d.number_of(name).is_some());
    match (above("ip"), above("ip6")) {
        (true, false) => Some((NFPROTO_IPV4, true)),
        (false, true) => Some((NFPROTO_IPV6, true)),
        _ => None,
    }
}

/// The nft table families (`NFPROTO_*`) and the descriptor each one's packets start at
/// (`hook_proto_desc`): ip and ip6 at their network header, inet at `meta nfproto`, bridge at the
/// Ethernet header, netdev at `meta protocol`, arp at the ARP header.
pub const FAMILY_START: &[(u8, &str)] = &[
    (NFPROTO_IPV4, "ip"),
    (NFPROTO_IPV6, "ip6"),
    (NFPROTO_INET, "inet"),
    (NFPROTO_BRIDGE, "ether"),
    (NFPROTO_NETDEV, "netdev"),
    (NFPROTO_ARP, "arp"),
];

/// The descriptor packets of table family `nfproto` start at.
pub fn family_start(nfproto: u8) -> Option<&'static ProtoDesc> {
    FAMILY_START
        .iter()
        .find(|(f, _)| *f == nfproto)
        .and_then(|(_, d)| desc(d))
}

/// The link-layer header of a device type (`dev_proto_desc`): Ethernet for `ARPHRD_ETHER`.
pub fn link_desc(arphrd: u16) -> Option<&'static ProtoDesc> {
    (arphrd == ARPHRD_ETHER).then(|| desc("ether")).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PAYLOAD_FIELDS;

    #[test]
    fn links() {
        assert_eq!(l4_number("tcp"), Some(6));
        assert_eq!(l4_number("icmpv6"), Some(58));
        assert_eq!(l4_number("igmp"), Some(2));
        assert_eq!(l4_number("th"), None);
        assert_eq!(implied_nfproto("ip6"), Some((NFPROTO_IPV6, false)));
        assert_eq!(implied_nfproto("icmp"), Some((NFPROTO_IPV4, true)));
        assert_eq!(implied_nfproto("igmp"), Some((NFPROTO_IPV4, true)));
        assert_eq!(implied_nfproto("icmpv6"), Some((NFPROTO_IPV6, true)));
        assert_eq!(implied_nfproto("tcp"), None);
        assert_eq!(desc("ip").unwrap().upper(58), None);
        assert_eq!(desc("ip6").unwrap().upper(58), Some("icmpv6"));
        assert_eq!(family_start(NFPROTO_BRIDGE).unwrap().name, "ether");
        assert_eq!(link_desc(ARPHRD_ETHER).unwrap().name, "ether");
        assert!(link_desc(ARPHRD_LOOPBACK).is_none());
    }

    #[test]
    fn every_link_and_field_has_a_descriptor() {
        for d in PROTOS {
            for (_, u) in d.upper {
                assert!(desc(u).is_some(), "{} -> {u}", d.name);
            }
            if let ProtoKey::Field(f) = d.protocol_key {
                assert!(
                    PAYLOAD_FIELDS
                        .iter()
                        .any(|p| p.proto == d.name && p.field == f),
                    "{}",
                    d.name
                );
            }
        }
        for f in PAYLOAD_FIELDS {
            let d = desc(f.proto).unwrap_or_else(|| panic!("no descriptor for {}", f.proto));
            assert_eq!(d.base, f.base, "{} {}", f.proto, f.field);
        }
        // the numbers agree with /etc/protocols' names where nft's keyword is the official name
        for (n, name) in inet_service().upper {
            let official = crate::ipproto::name(*n as u8).unwrap_or("");
            assert!(
                official == *name || *name == "icmpv6" || *name == "comp",
                "{name}"
            );
        }
    }
}
