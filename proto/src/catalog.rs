//! Static tables of the nftables vocabulary: datatypes (byte length, byte order, symbols),
//! payload fields (protocol, base, offset and length in bits), meta and ct keys and the built-in
//! service-name table. The parser uses them to recognise selectors, the printer to print values
//! the way `nft list ruleset` does, the checker to type-check and the lowerings to load them.
//!
//! Values are taken from nftables' `src/proto.c`, `src/meta.c`, `src/ct.c`, `src/datatype.c`,
//! `src/rule.c` (v1.1.x) and the kernel uapi headers.

use crate::ipproto::IP_PROTOCOLS;

/// Byte order of a datatype's value in registers (nft's `BYTEORDER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Network order (big endian): addresses, ports, payload fields.
    Big,
    /// Host order: marks, ct state/status, interface indexes.
    Host,
    /// Not applicable (strings, verdicts).
    Invalid,
}

/// nftables datatypes (the names in `type ...` declarations are in [`Datatype::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    Ipv4Addr,
    Ipv6Addr,
    EtherAddr,
    EtherType,
    /// `inet_service`: a port.
    InetService,
    /// `inet_proto`: an IP protocol number.
    InetProto,
    IcmpType,
    IcmpCode,
    Icmpv6Type,
    Icmpv6Code,
    IcmpxCode,
    CtState,
    CtStatus,
    CtDir,
    CtLabel,
    CtEvent,
    TcpFlag,
    /// `dccp_pkttype`: the DCCP packet type (4 bits).
    DccpPkttype,
    Mark,
    /// Interface name (16-byte string).
    Ifname,
    /// Interface index.
    Ifindex,
    /// ARP hardware type (`iiftype`).
    Arphrd,
    Pkttype,
    Nfproto,
    Dscp,
    Ecn,
    Uid,
    Gid,
    Realm,
    Devgroup,
    Boolean,
    /// A plain integer of the given width.
    Integer {
        bits: u16,
    },
    /// A string (ct helper name).
    String {
        bits: u16,
    },
    Verdict,
    /// A time (timeouts, ct expiration), milliseconds.
    Time,
    /// meta day.
    Day,
    /// meta hour.
    Hour,
    /// `fib_addrtype`: a route type (`RTN_*`), what `fib ... type` gives.
    FibAddrtype,
}

/// The three payload bases (`NFT_PAYLOAD_*_HEADER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    Link,
    Network,
    Transport,
}

/// One header field: `proto field` → base, offset and length in bits, datatype.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PayloadField {
    /// Protocol keyword (`ip`, `ip6`, `tcp`, `udp`, `th`, `icmp`, `icmpv6`, `ether`, ...).
    pub proto: &'static str,
    pub field: &'static str,
    pub base: PayloadBase,
    pub offset_bits: u32,
    pub len_bits: u32,
    pub dtype: Datatype,
    /// ICMP/ICMPv6 types the field exists in (nft's `icmp_dep`): matching it first fixes the type
    /// (`icmp id` needs an echo request or reply). Empty: any packet of the protocol.
    pub icmp_dep: &'static [u8],
}

/// One `meta` key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetaKey {
    pub name: &'static str,
    pub dtype: Datatype,
    pub len_bits: u32,
    /// Printed without `meta` (nft's `meta_key_is_unqualified`: iif, iifname, iifgroup, oif,
    /// oifname, oifgroup; `mark` is accepted unqualified but printed as `meta mark`).
    pub unqualified: bool,
    /// May be written without `meta` (the scanner knows it as a keyword of its own).
    pub may_be_unqualified: bool,
    /// What the engines load for it; `None`: nfc does not run it (the checker refuses it).
    pub load: Option<NftMetaKey>,
}

/// Direction qualifier of `ct original|reply KEY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtDir {
    Original,
    Reply,
}

impl CtDir {
    pub fn as_str(self) -> &'static str {
        match self {
            CtDir::Original => "original",
            CtDir::Reply => "reply",
        }
    }
}

/// Whether a ct key takes a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtDirUse {
    /// Never (`ct state`).
    No,
    /// Optional (`ct bytes`, `ct original bytes`).
    Optional,
    /// Required (`ct original saddr`).
    Required,
}

/// One `ct` key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub name: &'static str,
    /// Datatype; for `saddr`/`daddr` this is `Ipv4Addr` and the checker picks by family.
    pub dtype: Datatype,
    pub len_bits: u32,
    pub dir: CtDirUse,
    /// What the engines load for it (`saddr`/`daddr`: the whole tuple address; the lowering picks the
    /// IPv4 or IPv6 load by family); `None`: nfc does not run it.
    pub load: Option<NftCtKey>,
}

/// The `meta` loads the engines run (`enum nft_meta_keys`, the subset nfc runs); [`MetaKey::load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NftMetaKey {
    Len,
    Protocol,
    Nfproto,
    L4proto,
    Mark,
    Iif,
    Oif,
    Iifname,
    Oifname,
    Iiftype,
    Oiftype,
    Pkttype,
    Skuid,
    Skgid,
    /// `NFT_META_PRANDOM`: a pseudo-random number per evaluation.
    Prandom,
}

impl NftMetaKey {
    /// Bytes this key loads into registers.
    pub fn size(self) -> usize {
        match self {
            NftMetaKey::Nfproto | NftMetaKey::L4proto | NftMetaKey::Pkttype => 1,
            NftMetaKey::Protocol | NftMetaKey::Iiftype | NftMetaKey::Oiftype => 2,
            NftMetaKey::Iifname | NftMetaKey::Oifname => 16,
            _ => 4,
        }
    }

    /// libnftnl's name (`meta load <name> => reg N`).
    pub fn name(self) -> &'static str {
        match self {
            NftMetaKey::Len => "len",
            NftMetaKey::Protocol => "protocol",
            NftMetaKey::Nfproto => "nfproto",
            NftMetaKey::L4proto => "l4proto",
            NftMetaKey::Mark => "mark",
            NftMetaKey::Iif => "iif",
            NftMetaKey::Oif => "oif",
            NftMetaKey::Iifname => "iifname",
            NftMetaKey::Oifname => "oifname",
            NftMetaKey::Iiftype => "iiftype",
            NftMetaKey::Oiftype => "oiftype",
            NftMetaKey::Pkttype => "pkttype",
            NftMetaKey::Skuid => "skuid",
            NftMetaKey::Skgid => "skgid",
            NftMetaKey::Prandom => "prandom",
        }
    }
}

/// The `ct` loads the engines run (`enum nft_ct_keys`, the subset nfc runs); [`CtKey::load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NftCtKey {
    State,
    Direction,
    Status,
    Mark,
    Expiration,
    Helper,
    L3protocol,
    /// Address of the tuple, 16 bytes (IPv4 fills 4). Needs a direction.
    Src,
    Dst,
    Protocol,
    ProtoSrc,
    ProtoDst,
    Zone,
    Id,
    /// IPv4 address (breaks for IPv6 entries). Needs a direction.
    SrcIp,
    DstIp,
    /// IPv6 address (breaks for IPv4 entries). Needs a direction.
    SrcIp6,
    DstIp6,
}

impl NftCtKey {
    /// Bytes loaded.
    pub fn size(self) -> usize {
        match self {
            NftCtKey::Direction | NftCtKey::L3protocol | NftCtKey::Protocol => 1,
            NftCtKey::ProtoSrc | NftCtKey::ProtoDst | NftCtKey::Zone => 2,
            NftCtKey::Helper
            | NftCtKey::Src
            | NftCtKey::Dst
            | NftCtKey::SrcIp6
            | NftCtKey::DstIp6 => 16,
            _ => 4,
        }
    }

    /// True for keys that read a tuple and so require a direction (`nft_ct_get_init`).
    pub fn needs_dir(self) -> bool {
        matches!(
            self,
            NftCtKey::Src
                | NftCtKey::Dst
                | NftCtKey::ProtoSrc
                | NftCtKey::ProtoDst
                | NftCtKey::SrcIp
                | NftCtKey::DstIp
                | NftCtKey::SrcIp6
                | NftCtKey::DstIp6
        )
    }

    /// True for keys that accept an optional direction.
    pub fn allows_dir(self) -> bool {
        self.needs_dir()
            || matches!(
                self,
                NftCtKey::Zone | NftCtKey::L3protocol | NftCtKey::Protocol
            )
    }

    /// libnftnl's name.
    pub fn name(self) -> &'static str {
        match self {
            NftCtKey::State => "state",
            NftCtKey::Direction => "direction",
            NftCtKey::Status => "status",
            NftCtKey::Mark => "mark",
            NftCtKey::Expiration => "expiration",
            NftCtKey::Helper => "helper",
            NftCtKey::L3protocol => "l3protocol",
            NftCtKey::Src => "src",
            NftCtKey::Dst => "dst",
            NftCtKey::Protocol => "protocol",
            NftCtKey::ProtoSrc => "proto_src",
            NftCtKey::ProtoDst => "proto_dst",
            NftCtKey::Zone => "zone",
            NftCtKey::Id => "id",
            NftCtKey::SrcIp => "src_ip",
            NftCtKey::DstIp => "dst_ip",
            NftCtKey::SrcIp6 => "src_ip6",
            NftCtKey::DstIp6 => "dst_ip6",
        }
    }
}

impl Datatype {
    /// The name used in set declarations (`type ipv4_addr`).
    pub fn name(self) -> &'static str {
        use Datatype::*;
        match self {
            Ipv4Addr => "ipv4_addr",
            Ipv6Addr => "ipv6_addr",
            EtherAddr => "ether_addr",
            EtherType => "ether_type",
            InetService => "inet_service",
            InetProto => "inet_proto",
            IcmpType => "icmp_type",
            IcmpCode => "icmp_code",
            Icmpv6Type => "icmpv6_type",
            Icmpv6Code => "icmpv6_code",
            IcmpxCode => "icmpx_code",
            CtState => "ct_state",
            CtStatus => "ct_status",
            CtDir => "ct_dir",
            CtLabel => "ct_label",
            CtEvent => "ct_event",
            TcpFlag => "tcp_flag",
            DccpPkttype => "dccp_pkttype",
            Mark => "mark",
            Ifname => "ifname",
            Ifindex => "iface_index",
            Arphrd => "iface_type",
            Pkttype => "pkt_type",
            Nfproto => "nf_proto",
            Dscp => "dscp",
            Ecn => "ecn",
            Uid => "uid",
            Gid => "gid",
            Realm => "realm",
            Devgroup => "devgroup",
            Boolean => "boolean",
            Integer { .. } => "integer",
            String { .. } => "string",
            Verdict => "verdict",
            Time => "time",
            Day => "day",
            Hour => "hour",
            FibAddrtype => "fib_addrtype",
        }
    }

    /// Datatype named in a `type` declaration.
    pub fn from_name(s: &str) -> Option<Datatype> {
        use Datatype::*;
        Some(match s {
            "ipv4_addr" => Ipv4Addr,
            "ipv6_addr" => Ipv6Addr,
            "ether_addr" => EtherAddr,
            "ether_type" => EtherType,
            "inet_service" => InetService,
            "inet_proto" => InetProto,
            "icmp_type" => IcmpType,
            "icmp_code" => IcmpCode,
            "icmpv6_type" => Icmpv6Type,
            "icmpv6_code" => Icmpv6Code,
            "icmpx_code" => IcmpxCode,
            "ct_state" => CtState,
            "ct_status" => CtStatus,
            "ct_dir" => CtDir,
            "ct_label" => CtLabel,
            "ct_event" => CtEvent,
            "tcp_flag" => TcpFlag,
            "dccp_pkttype" => DccpPkttype,
            "mark" => Mark,
            "ifname" => Ifname,
            "iface_index" => Ifindex,
            "iface_type" => Arphrd,
            "pkt_type" => Pkttype,
            "nf_proto" => Nfproto,
            "dscp" => Dscp,
            "ecn" => Ecn,
            "uid" => Uid,
            "gid" => Gid,
            "realm" => Realm,
            "devgroup" => Devgroup,
            "boolean" => Boolean,
            "integer" => Integer { bits: 32 },
            "string" => String { bits: 128 },
            "verdict" => Verdict,
            "time" => Time,
            "day" => Day,
            "hour" => Hour,
            "fib_addrtype" => FibAddrtype,
            _ => return None,
        })
    }

    /// Size of a value in bits (nft's `dtype->size`; 0 for verdicts).
    pub fn bits(self) -> u32 {
        use Datatype::*;
        match self {
            Ipv4Addr => 32,
            Ipv6Addr => 128,
            EtherAddr => 48,
            EtherType => 16,
            InetService => 16,
            InetProto => 8,
            IcmpType | IcmpCode | Icmpv6Type | Icmpv6Code | IcmpxCode => 8,
            CtState | CtStatus => 32,
            CtDir => 8,
            CtLabel => 128,
            CtEvent => 32,
            TcpFlag => 8,
            DccpPkttype => 4,
            Mark => 32,
            Ifname => 128,
            Ifindex => 32,
            Arphrd => 16,
            Pkttype => 8,
            Nfproto => 8,
            Dscp => 6,
            Ecn => 2,
            Uid | Gid | Realm | Devgroup => 32,
            Boolean => 1,
            Integer { bits } | String { bits } => u32::from(bits),
            Verdict => 0,
            Time => 64,
            Day => 8,
            Hour => 32,
            FibAddrtype => 32,
        }
    }

    /// Size of a value in bytes (rounded up; what a register or set key holds).
    pub fn byte_len(self) -> u32 {
        self.bits().div_ceil(8)
    }

    pub fn byteorder(self) -> ByteOrder {
        use Datatype::*;
        match self {
            Ipv4Addr | Ipv6Addr | EtherAddr | EtherType | InetService | InetProto | IcmpType
            | IcmpCode | Icmpv6Type | Icmpv6Code | IcmpxCode | TcpFlag | DccpPkttype | Dscp
            | Ecn | CtLabel => ByteOrder::Big,
            CtState | CtStatus | CtDir | CtEvent | Mark | Ifindex | Arphrd | Pkttype | Nfproto
            | Uid | Gid | Realm | Devgroup | Boolean | Time | Day | Hour | FibAddrtype => {
                ByteOrder::Host
            }
            Integer { .. } => ByteOrder::Host,
            String { .. } | Verdict => ByteOrder::Invalid,
            Ifname => ByteOrder::Invalid,
        }
    }

    /// Bitmask datatypes: an implicit operator means "any of these bits" and a comma list is an
    /// OR of symbols (nft's `TYPE_BITMASK` datatypes).
    pub fn is_bitmask(self) -> bool {
        matches!(
            self,
            Datatype::CtState | Datatype::CtStatus | Datatype::TcpFlag | Datatype::CtEvent
        )
    }

    /// Symbol table of a datatype (name, value), in nft's print order.
    pub fn symbols(self) -> &'static [(&'static str, u64)] {
        use Datatype::*;
        match self {
            CtState => CT_STATE,
            CtStatus => CT_STATUS,
            CtDir => CT_DIR,
            CtEvent => CT_EVENT,
            TcpFlag => TCP_FLAGS,
            DccpPkttype => DCCP_PKTTYPE,
            InetProto => INET_PROTO,
            IcmpType => ICMP_TYPE,
            IcmpCode => ICMP_CODE,
            Icmpv6Type => ICMPV6_TYPE,
            Icmpv6Code => ICMPV6_CODE,
            IcmpxCode => ICMPX_CODE,
            Pkttype => PKTTYPE,
            Nfproto => NFPROTO,
            EtherType => ETHER_TYPE,
            Dscp => DSCP,
            Ecn => ECN,
            Arphrd => ARPHRD,
            Boolean => BOOLEAN,
            Day => DAY,
            FibAddrtype => FIB_ADDR_TYPE,
            _ => &[],
        }
    }

    /// Value of symbol `name` in this datatype (services for `inet_service`).
    pub fn symbol_value(self, name: &str) -> Option<u64> {
        if self == Datatype::InetService {
            return service_port(name).map(u64::from);
        }
        self.symbols()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// Name nft prints for `value` (first match in the table), if any.
    pub fn symbol_name(self, value: u64) -> Option<&'static str> {
        self.symbols()
            .iter()
            .find(|&&(_, v)| v == value)
            .map(|&(n, _)| n)
    }
}

/// nft's `log level` names and values (syslog's `LOG_*`, and nft's own `audit`, `NFT_LOGLEVEL_AUDIT`).
pub const LOG_LEVEL: &[(&str, u64)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
    ("audit", 8),
];

/// ct state bits (`NF_CT_STATE_*_BIT`).
pub const CT_STATE: &[(&str, u64)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];

/// ct status bits (`IPS_*`).
pub const CT_STATUS: &[(&str, u64)] = &[
    ("expected", 1),
    ("seen-reply", 2),
    ("assured", 4),
    ("confirmed", 8),
    ("snat", 16),
    ("dnat", 32),
    ("dying", 512),
];

pub const CT_DIR: &[(&str, u64)] = &[("original", 0), ("reply", 1)];

pub const CT_EVENT: &[(&str, u64)] = &[
    ("new", 1),
    ("related", 2),
    ("destroy", 4),
    ("reply", 8),
    ("assured", 16),
    ("protoinfo", 32),
    ("helper", 64),
    ("mark", 128),
    ("seqadj", 256),
    ("secmark", 512),
    ("label", 1024),
];

/// TCP flags (`TCP_FLAG_*`), in nft's print order.
pub const TCP_FLAGS: &[(&str, u64)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ecn", 0x40),
    ("cwr", 0x80),
];

/// DCCP packet types (`dccp_pkttype_tbl`, src/proto.c).
pub const DCCP_PKTTYPE: &[(&str, u64)] = &[
    ("request", 0),
    ("response", 1),
    ("data", 2),
    ("ack", 3),
    ("dataack", 4),
    ("closereq", 5),
    ("close", 6),
    ("reset", 7),
    ("sync", 8),
    ("syncack", 9),
];

/// IP protocol names nft prints: `/etc/protocols` ([`IP_PROTOCOLS`], shared with
/// iptables-save), then nft's keyword aliases, accepted on input and never printed (the
/// `/etc/protocols` name of the same number comes first and wins).
pub const INET_PROTO: &[(&str, u64)] = &inet_proto();

const INET_PROTO_ALIASES: [(&str, u64); 3] = [("icmpv6", 58), ("comp", 108), ("mh", 135)];

const INET_PROTO_LEN: usize = IP_PROTOCOLS.len() + INET_PROTO_ALIASES.len();

const fn inet_proto() -> [(&'static str, u64); INET_PROTO_LEN] {
    let mut out = [("", 0); INET_PROTO_LEN];
    let mut i = 0;
    while i < IP_PROTOCOLS.len() {
        out[i] = (IP_PROTOCOLS[i].0, IP_PROTOCOLS[i].1 as u64);
        i += 1;
    }
    let mut j = 0;
    while j < INET_PROTO_ALIASES.len() {
        out[i + j] = INET_PROTO_ALIASES[j];
        j += 1;
    }
    out
}

/// ICMP types (`icmp_type_tbl`, src/proto.c).
pub const ICMP_TYPE: &[(&str, u64)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

/// ICMP codes for `reject with icmp` (`icmp_code_tbl`).
pub const ICMP_CODE: &[(&str, u64)] = &[
    ("net-unreachable", 0),
    ("host-unreachable", 1),
    ("prot-unreachable", 2),
    ("port-unreachable", 3),
    ("frag-needed", 4),
    ("net-prohibited", 9),
    ("host-prohibited", 10),
    ("admin-prohibited", 13),
];

/// ICMPv6 types (`icmp6_type_tbl`).
pub const ICMPV6_TYPE: &[(&str, u64)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
];

/// ICMPv6 codes (`icmp6_code_tbl`).
pub const ICMPV6_CODE: &[(&str, u64)] = &[
    ("no-route", 0),
    ("admin-prohibited", 1),
    ("addr-unreachable", 3),
    ("port-unreachable", 4),
    ("policy-fail", 5),
    ("reject-route", 6),
];

/// ICMPx codes (`icmpx_code_tbl`).
pub const ICMPX_CODE: &[(&str, u64)] = &[
    ("port-unreachable", 1),
    ("admin-prohibited", 3),
    ("no-route", 0),
    ("host-unreachable", 2),
];

pub const PKTTYPE: &[(&str, u64)] = &[
    ("host", 0),
    ("broadcast", 1),
    ("multicast", 2),
    ("other", 3),
];

pub const NFPROTO: &[(&str, u64)] = &[("ipv4", 2), ("ipv6", 10)];

/// `RTN_UNICAST`, `RTN_LOCAL`, `RTN_BROADCAST`, `RTN_MULTICAST`: the route types a host's addresses give.
pub const RTN_UNICAST: u8 = 1;
pub const RTN_LOCAL: u8 = 2;
pub const RTN_BROADCAST: u8 = 3;
pub const RTN_MULTICAST: u8 = 5;

/// Route types (`RTN_*`, nft's `addrtype_tbl`): the values of `fib ... type`.
pub const FIB_ADDR_TYPE: &[(&str, u64)] = &[
    ("unspec", 0),
    ("unicast", RTN_UNICAST as u64),
    ("local", RTN_LOCAL as u64),
    ("broadcast", RTN_BROADCAST as u64),
    ("anycast", 4),
    ("multicast", RTN_MULTICAST as u64),
    ("blackhole", 6),
    ("unreachable", 7),
    ("prohibit", 8),
    ("throw", 9),
    ("nat", 10),
    ("xresolve", 11),
];

/// `fib` input flags (`enum nft_fib_flags`, `NFTA_FIB_F_*`) by the names nft writes them with.
pub const FIB_FLAGS: &[(&str, u32)] = &[
    ("saddr", 1),
    ("daddr", 2),
    ("mark", 4),
    ("iif", 8),
    ("oif", 16),
];

/// `NFT_FIB_RESULT_ADDRTYPE`.
pub const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;

/// `numgen` types (`enum nft_ng_types`, nft's `numgen_type`): the generator's name and
/// `NFTA_NG_TYPE`.
pub const NUMGEN_TYPE: &[(&str, u64)] = &[("inc", 0), ("random", 1)];

/// `NFT_NG_INCREMENTAL`.
pub const NFT_NG_INCREMENTAL: u32 = 0;
/// `NFT_NG_RANDOM`.
pub const NFT_NG_RANDOM: u32 = 1;

pub const ETHER_TYPE: &[(&str, u64)] = &[
    ("ip", 0x0800),
    ("arp", 0x0806),
    ("ip6", 0x86dd),
    ("8021q", 0x8100),
    ("8021ad", 0x88a8),
    ("vlan", 0x8100),
];

pub const DSCP: &[(&str, u64)] = &[
    ("cs0", 0x00),
    ("cs1", 0x08),
    ("cs2", 0x10),
    ("cs3", 0x18),
    ("cs4", 0x20),
    ("cs5", 0x28),
    ("cs6", 0x30),
    ("cs7", 0x38),
    ("df", 0x00),
    ("be", 0x00),
    ("lephb", 0x01),
    ("af11", 0x0a),
    ("af12", 0x0c),
    ("af13", 0x0e),
    ("af21", 0x12),
    ("af22", 0x14),
    ("af23", 0x16),
    ("af31", 0x1a),
    ("af32", 0x1c),
    ("af33", 0x1e),
    ("af41", 0x22),
    ("af42", 0x24),
    ("af43", 0x26),
    ("va", 0x2c),
    ("ef", 0x2e),
];

pub const ECN: &[(&str, u64)] = &[("not-ect", 0), ("ect1", 1), ("ect0", 2), ("ce", 3)];

pub const ARPHRD: &[(&str, u64)] = &[
    ("ether", crate::desc::ARPHRD_ETHER as u64),
    ("ppp", crate::desc::ARPHRD_PPP as u64),
    ("ipip", 768),
    ("ipip6", 769),
    ("loopback", crate::desc::ARPHRD_LOOPBACK as u64),
    ("sit", 776),
    ("ipgre", 778),
];

pub const BOOLEAN: &[(&str, u64)] = &[("exists", 1), ("missing", 0)];

pub const DAY: &[(&str, u64)] = &[
    ("Sunday", 0),
    ("Monday", 1),
    ("Tuesday", 2),
    ("Wednesday", 3),
    ("Thursday", 4),
    ("Friday", 5),
    ("Saturday", 6),
];

/// Built-in service names → port (the subset of /etc/services nft users rely on). nft prints
/// ports numerically, so this is only needed for input.
pub const SERVICES: &[(&str, u16)] = &[
    ("tcpmux", 1),
    ("echo", 7),
    ("discard", 9),
    ("daytime", 13),
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("whois", 43),
    ("tacacs", 49),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("www", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("epmap", 135),
    ("netbios-ns", 137),
    ("netbios-dgm", 138),
    ("netbios-ssn", 139),
    ("imap2", 143),
    ("imap", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("irc", 194),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("kpasswd", 464),
    ("submissions", 465),
    ("syslog", 514),
    ("printer", 515),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("ftps-data", 989),
    ("ftps", 990),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("l2tp", 1701),
    ("pptp", 1723),
    ("radius", 1812),
    ("radius-acct", 1813),
    ("nfs", 2049),
    ("mysql", 3306),
    ("svn", 3690),
    ("sip", 5060),
    ("sip-tls", 5061),
    ("postgresql", 5432),
    ("x11", 6000),
    ("http-alt", 8080),
];

/// Port of a service name.
pub fn service_port(name: &str) -> Option<u16> {
    SERVICES.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
}

macro_rules! pf {
    ($proto:literal, $field:literal, $base:ident, $off:expr, $len:expr, $dt:expr) => {
        pf!($proto, $field, $base, $off, $len, $dt, &[])
    };
    ($proto:literal, $field:literal, $base:ident, $off:expr, $len:expr, $dt:expr, $dep:expr) => {
        PayloadField {
            proto: $proto,
            field: $field,
            base: PayloadBase::$base,
            offset_bits: $off,
            len_bits: $len,
            dtype: $dt,
            icmp_dep: $dep,
        }
    };
}

/// `PROTO_ICMP_ECHO`: echo reply, echo request.
const ICMP_ECHO: &[u8] = &[0, 8];
/// `PROTO_ICMP6_ECHO`: echo request, echo reply.
const ICMP6_ECHO: &[u8] = &[128, 129];

use Datatype as D;

/// Every payload field the grammar knows (`src/proto.c`).
pub static PAYLOAD_FIELDS: &[PayloadField] = &[
    pf!("ether", "daddr", Link, 0, 48, D::EtherAddr),
    pf!("ether", "saddr", Link, 48, 48, D::EtherAddr),
    pf!("ether", "type", Link, 96, 16, D::EtherType),
    pf!("vlan", "pcp", Link, 0, 3, D::Integer { bits: 3 }),
    pf!("vlan", "dei", Link, 3, 1, D::Integer { bits: 1 }),
    pf!("vlan", "id", Link, 4, 12, D::Integer { bits: 12 }),
    pf!("vlan", "type", Link, 16, 16, D::EtherType),
    pf!("ip", "version", Network, 0, 4, D::Integer { bits: 4 }),
    pf!("ip", "hdrlength", Network, 4, 4, D::Integer { bits: 4 }),
    pf!("ip", "dscp", Network, 8, 6, D::Dscp),
    pf!("ip", "ecn", Network, 14, 2, D::Ecn),
    pf!("ip", "length", Network, 16, 16, D::Integer { bits: 16 }),
    pf!("ip", "id", Network, 32, 16, D::Integer { bits: 16 }),
    pf!("ip", "frag-off", Network, 48, 16, D::Integer { bits: 16 }),
    pf!("ip", "ttl", Network, 64, 8, D::Integer { bits: 8 }),
    pf!("ip", "protocol", Network, 72, 8, D::InetProto),
    pf!("ip", "checksum", Network, 80, 16, D::Integer { bits: 16 }),
    pf!("ip", "saddr", Network, 96, 32, D::Ipv4Addr),
    pf!("ip", "daddr", Network, 128, 32, D::Ipv4Addr),
    pf!("ip6", "version", Network, 0, 4, D::Integer { bits: 4 }),
    pf!("ip6", "dscp", Network, 4, 6, D::Dscp),
    pf!("ip6", "ecn", Network, 10, 2, D::Ecn),
    pf!("ip6", "flowlabel", Network, 12, 20, D::Integer { bits: 20 }),
    pf!("ip6", "length", Network, 32, 16, D::Integer { bits: 16 }),
    pf!("ip6", "nexthdr", Network, 48, 8, D::InetProto),
    pf!("ip6", "hoplimit", Network, 56, 8, D::Integer { bits: 8 }),
    pf!("ip6", "saddr", Network, 64, 128, D::Ipv6Addr),
    pf!("ip6", "daddr", Network, 192, 128, D::Ipv6Addr),
    pf!("tcp", "sport", Transport, 0, 16, D::InetService),
    pf!("tcp", "dport", Transport, 16, 16, D::InetService),
    pf!(
        "tcp",
        "sequence",
        Transport,
        32,
        32,
        D::Integer { bits: 32 }
    ),
    pf!("tcp", "ackseq", Transport, 64, 32, D::Integer { bits: 32 }),
    pf!("tcp", "doff", Transport, 96, 4, D::Integer { bits: 4 }),
    pf!("tcp", "reserved", Transport, 100, 4, D::Integer { bits: 4 }),
    pf!("tcp", "flags", Transport, 104, 8, D::TcpFlag),
    pf!("tcp", "window", Transport, 112, 16, D::Integer { bits: 16 }),
    pf!(
        "tcp",
        "checksum",
        Transport,
        128,
        16,
        D::Integer { bits: 16 }
    ),
    pf!("tcp", "urgptr", Transport, 144, 16, D::Integer { bits: 16 }),
    pf!("udp", "sport", Transport, 0, 16, D::InetService),
    pf!("udp", "dport", Transport, 16, 16, D::InetService),
    pf!("udp", "length", Transport, 32, 16, D::Integer { bits: 16 }),
    pf!(
        "udp",
        "checksum",
        Transport,
        48,
        16,
        D::Integer { bits: 16 }
    ),
    pf!("udplite", "sport", Transport, 0, 16, D::InetService),
    pf!("udplite", "dport", Transport, 16, 16, D::InetService),
    pf!(
        "udplite",
        "csumcov",
        Transport,
        32,
        16,
        D::Integer { bits: 16 }
    ),
    pf!(
        "udplite",
        "checksum",
        Transport,
        48,
        16,
        D::Integer { bits: 16 }
    ),
    pf!("th", "sport", Transport, 0, 16, D::InetService),
    pf!("th", "dport", Transport, 16, 16, D::InetService),
    pf!("icmp", "type", Transport, 0, 8, D::IcmpType),
    pf!("icmp", "code", Transport, 8, 8, D::IcmpCode),
    pf!(
        "icmp",
        "checksum",
        Transport,
        16,
        16,
        D::Integer { bits: 16 }
    ),
    pf!(
        "icmp",
        "id",
        Transport,
        32,
        16,
        D::Integer { bits: 16 },
        ICMP_ECHO
    ),
    pf!(
        "icmp",
        "sequence",
        Transport,
        48,
        16,
        D::Integer { bits: 16 },
        ICMP_ECHO
    ),
    pf!(
        "icmp",
        "gateway",
        Transport,
        32,
        32,
        D::Integer { bits: 32 },
        &[5]
    ),
    pf!(
        "icmp",
        "mtu",
        Transport,
        48,
        16,
        D::Integer { bits: 16 },
        &[3]
    ),
    pf!("icmpv6", "type", Transport, 0, 8, D::Icmpv6Type),
    pf!("icmpv6", "code", Transport, 8, 8, D::Icmpv6Code),
    pf!(
        "icmpv6",
        "checksum",
        Transport,
        16,
        16,
        D::Integer { bits: 16 }
    ),
    pf!(
        "icmpv6",
        "parameter-problem",
        Transport,
        32,
        32,
        D::Integer { bits: 32 }
    ),
    pf!(
        "icmpv6",
        "mtu",
        Transport,
        32,
        32,
        D::Integer { bits: 32 },
        &[2]
    ),
    pf!(
        "icmpv6",
        "id",
        Transport,
        32,
        16,
        D::Integer { bits: 16 },
        ICMP6_ECHO
    ),
    pf!(
        "icmpv6",
        "sequence",
        Transport,
        48,
        16,
        D::Integer { bits: 16 },
        ICMP6_ECHO
    ),
    pf!(
        "icmpv6",
        "max-delay",
        Transport,
        32,
        16,
        D::Integer { bits: 16 }
    ),
    pf!("icmpv6", "taddr", Transport, 64, 128, D::Ipv6Addr),
    pf!("icmpv6", "daddr", Transport, 192, 128, D::Ipv6Addr),
    pf!("ah", "nexthdr", Transport, 0, 8, D::InetProto),
    pf!("ah", "hdrlength", Transport, 8, 8, D::Integer { bits: 8 }),
    pf!("ah", "reserved", Transport, 16, 16, D::Integer { bits: 16 }),
    pf!("ah", "spi", Transport, 32, 32, D::Integer { bits: 32 }),
    pf!("ah", "sequence", Transport, 64, 32, D::Integer { bits: 32 }),
    pf!("esp", "spi", Transport, 0, 32, D::Integer { bits: 32 }),
    pf!(
        "esp",
        "sequence",
        Transport,
        32,
        32,
        D::Integer { bits: 32 }
    ),
    pf!("comp", "nexthdr", Transport, 0, 8, D::InetProto),
    pf!("comp", "flags", Transport, 8, 8, D::Integer { bits: 8 }),
    pf!("comp", "cpi", Transport, 16, 16, D::Integer { bits: 16 }),
    pf!("dccp", "sport", Transport, 0, 16, D::InetService),
    pf!("dccp", "dport", Transport, 16, 16, D::InetService),
    pf!("dccp", "type", Transport, 67, 4, D::DccpPkttype),
    pf!("sctp", "sport", Transport, 0, 16, D::InetService),
    pf!("sctp", "dport", Transport, 16, 16, D::InetService),
    pf!("sctp", "vtag", Transport, 32, 32, D::Integer { bits: 32 }),
    pf!(
        "sctp",
        "checksum",
        Transport,
        64,
        32,
        D::Integer { bits: 32 }
    ),
    pf!("arp", "htype", Network, 0, 16, D::Integer { bits: 16 }),
    pf!("arp", "ptype", Network, 16, 16, D::EtherType),
    pf!("arp", "hlen", Network, 32, 8, D::Integer { bits: 8 }),
    pf!("arp", "plen", Network, 40, 8, D::Integer { bits: 8 }),
    pf!("arp", "operation", Network, 48, 16, D::Integer { bits: 16 }),
];

/// Payload field `proto field`.
pub fn payload_field(proto: &str, field: &str) -> Option<&'static PayloadField> {
    PAYLOAD_FIELDS
        .iter()
        .find(|f| f.proto == proto && f.field == field)
}

/// Whether `word` starts a payload selector (`ip`, `tcp`, ...).
pub fn is_payload_proto(word: &str) -> bool {
    PAYLOAD_FIELDS.iter().any(|f| f.proto == word)
}

macro_rules! mk {
    ($name:literal, $dt:expr, $len:expr, $unq:expr, $may:expr $(, $load:ident)?) => {
        MetaKey {
            name: $name,
            dtype: $dt,
            len_bits: $len,
            unqualified: $unq,
            may_be_unqualified: $may,
            load: load!(NftMetaKey $(, $load)?),
        }
    };
}

/// `Some(Enum::Variant)`, or `None` without a variant.
macro_rules! load {
    ($e:ident) => {
        None
    };
    ($e:ident, $v:ident) => {
        Some($e::$v)
    };
}

/// `meta` keys (`meta_templates`, src/meta.c).
pub static META_KEYS: &[MetaKey] = &[
    mk!("length", D::Integer { bits: 32 }, 32, false, false, Len),
    mk!("protocol", D::EtherType, 16, false, false, Protocol),
    mk!("priority", D::Integer { bits: 32 }, 32, false, false),
    mk!("mark", D::Mark, 32, false, true, Mark),
    mk!("iif", D::Ifindex, 32, true, true, Iif),
    mk!("iifname", D::Ifname, 128, true, true, Iifname),
    mk!("iiftype", D::Arphrd, 16, false, true, Iiftype),
    mk!("oif", D::Ifindex, 32, true, true, Oif),
    mk!("oifname", D::Ifname, 128, true, true, Oifname),
    mk!("oiftype", D::Arphrd, 16, false, true, Oiftype),
    mk!("skuid", D::Uid, 32, false, true, Skuid),
    mk!("skgid", D::Gid, 32, false, true, Skgid),
    mk!("nftrace", D::Integer { bits: 1 }, 1, false, true),
    mk!("rtclassid", D::Realm, 32, false, true),
    mk!("secmark", D::Integer { bits: 32 }, 32, false, false),
    mk!("nfproto", D::Nfproto, 8, false, false, Nfproto),
    mk!("l4proto", D::InetProto, 8, false, false, L4proto),
    mk!("pkttype", D::Pkttype, 8, false, true, Pkttype),
    mk!("cpu", D::Integer { bits: 32 }, 32, false, true),
    mk!("iifgroup", D::Devgroup, 32, true, true),
    mk!("oifgroup", D::Devgroup, 32, true, true),
    mk!("cgroup", D::Integer { bits: 32 }, 32, false, true),
    mk!("random", D::Integer { bits: 32 }, 32, false, false, Prandom),
    mk!("ipsec", D::Boolean, 1, false, true),
    mk!("iifkind", D::Ifname, 128, false, false),
    mk!("oifkind", D::Ifname, 128, false, false),
    mk!("time", D::Time, 64, false, false),
    mk!("day", D::Day, 8, false, false),
    mk!("hour", D::Hour, 32, false, false),
    mk!("sdif", D::Ifindex, 32, false, false),
    mk!("sdifname", D::Ifname, 128, false, false),
    mk!("ibrname", D::Ifname, 128, false, true),
    mk!("obrname", D::Ifname, 128, false, true),
    mk!("ibrpvid", D::Integer { bits: 16 }, 16, false, false),
    mk!("ibrvproto", D::EtherType, 16, false, false),
];

/// Meta key `name`.
pub fn meta_key(name: &str) -> Option<&'static MetaKey> {
    META_KEYS.iter().find(|k| k.name == name)
}

macro_rules! ck {
    ($name:literal, $dt:expr, $len:expr, $dir:ident $(, $load:ident)?) => {
        CtKey {
            name: $name,
            dtype: $dt,
            len_bits: $len,
            dir: CtDirUse::$dir,
            load: load!(NftCtKey $(, $load)?),
        }
    };
}

/// `ct` keys (`ct_templates`, src/ct.c).
pub static CT_KEYS: &[CtKey] = &[
    ck!("state", D::CtState, 32, No, State),
    ck!("direction", D::CtDir, 8, No, Direction),
    ck!("status", D::CtStatus, 32, No, Status),
    ck!("mark", D::Mark, 32, No, Mark),
    ck!("secmark", D::Integer { bits: 32 }, 32, No),
    ck!("expiration", D::Time, 32, No, Expiration),
    ck!("helper", D::String { bits: 128 }, 128, No, Helper),
    ck!("l3proto", D::Nfproto, 8, Optional, L3protocol),
    ck!("protocol", D::InetProto, 8, Optional, Protocol),
    ck!("saddr", D::Ipv4Addr, 32, Required, Src),
    ck!("daddr", D::Ipv4Addr, 32, Required, Dst),
    ck!("proto-src", D::InetService, 16, Required, ProtoSrc),
    ck!("proto-dst", D::InetService, 16, Required, ProtoDst),
    ck!("label", D::CtLabel, 128, No),
    ck!("bytes", D::Integer { bits: 64 }, 64, Optional),
    ck!("packets", D::Integer { bits: 64 }, 64, Optional),
    ck!("avgpkt", D::Integer { bits: 64 }, 64, Optional),
    ck!("zone", D::Integer { bits: 16 }, 16, Optional, Zone),
    ck!("event", D::CtEvent, 32, No),
    ck!("id", D::Integer { bits: 32 }, 32, No, Id),
];

/// ct key `name`.
pub fn ct_key(name: &str) -> Option<&'static CtKey> {
    CT_KEYS.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_and_values() {
        assert_eq!(Datatype::CtState.symbol_value("established"), Some(2));
        assert_eq!(Datatype::CtState.symbol_value("untracked"), Some(64));
        assert_eq!(Datatype::TcpFlag.symbol_value("ack"), Some(0x10));
        assert_eq!(Datatype::TcpFlag.symbol_value("cwr"), Some(0x80));
        assert_eq!(Datatype::InetProto.symbol_value("ipv6-icmp"), Some(58));
        assert_eq!(Datatype::InetProto.symbol_value("icmpv6"), Some(58));
        assert_eq!(Datatype::InetProto.symbol_name(58), Some("ipv6-icmp"));
        assert_eq!(Datatype::InetService.symbol_value("ssh"), Some(22));
        assert_eq!(Datatype::InetService.symbol_value("https"), Some(443));
        assert_eq!(Datatype::IcmpType.symbol_value("echo-request"), Some(8));
        assert_eq!(
            Datatype::Icmpv6Type.symbol_value("nd-neighbor-solicit"),
            Some(135)
        );
        assert_eq!(
            Datatype::Icmpv6Type.symbol_name(132),
            Some("mld-listener-done")
        );
        assert_eq!(Datatype::CtStatus.symbol_value("dying"), Some(512));
        assert_eq!(Datatype::Pkttype.symbol_value("multicast"), Some(2));
        assert_eq!(Datatype::Nfproto.symbol_value("ipv6"), Some(10));
        assert_eq!(Datatype::Dscp.symbol_name(0x2e), Some("ef"));
        assert_eq!(Datatype::Mark.symbol_value("x"), None);
        assert!(Datatype::CtState.is_bitmask() && !Datatype::InetService.is_bitmask());
    }

    #[test]
    fn datatype_sizes_and_names() {
        for (dt, bytes, order) in [
            (Datatype::Ipv4Addr, 4, ByteOrder::Big),
            (Datatype::Ipv6Addr, 16, ByteOrder::Big),
            (Datatype::InetService, 2, ByteOrder::Big),
            (Datatype::Mark, 4, ByteOrder::Host),
            (Datatype::CtState, 4, ByteOrder::Host),
            (Datatype::Ifname, 16, ByteOrder::Invalid),
            (Datatype::EtherAddr, 6, ByteOrder::Big),
        ] {
            assert_eq!((dt.byte_len(), dt.byteorder()), (bytes, order), "{dt:?}");
            assert_eq!(Datatype::from_name(dt.name()), Some(dt));
        }
    }

    #[test]
    fn selectors() {
        let f = payload_field("ip", "saddr").unwrap();
        assert_eq!(
            (f.base, f.offset_bits, f.len_bits),
            (PayloadBase::Network, 96, 32)
        );
        let f = payload_field("tcp", "flags").unwrap();
        assert_eq!(
            (f.offset_bits, f.len_bits, f.dtype),
            (104, 8, Datatype::TcpFlag)
        );
        let f = payload_field("ip6", "flowlabel").unwrap();
        assert_eq!((f.offset_bits, f.len_bits), (12, 20));
        assert!(payload_field("tcp", "saddr").is_none());
        assert_eq!(meta_key("l4proto").unwrap().dtype, Datatype::InetProto);
        assert!(meta_key("iifname").unwrap().unqualified);
        assert!(
            !meta_key("mark").unwrap().unqualified && meta_key("mark").unwrap().may_be_unqualified
        );
        assert_eq!(ct_key("state").unwrap().dir, CtDirUse::No);
        assert_eq!(ct_key("saddr").unwrap().dir, CtDirUse::Required);
        // Every payload field fits its datatype.
        for f in PAYLOAD_FIELDS {
            assert!(f.len_bits <= f.dtype.bits().max(f.len_bits), "{f:?}");
            assert!(f.len_bits > 0);
        }
    }
}
