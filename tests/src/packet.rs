//! Packets of the corpus: a [`PacketSpec`] (header fields, or raw hex, plus the hook, devices,
//! mark and conntrack state it arrives with, and what must come out) and [`build`], which makes
//! real bytes with `nfr_runtime::wire::build`, parses them back with
//! `nfr_runtime::wire::parse_frame` into a `PktState`, then applies fragment offsets and
//! truncation the way a snaplen-limited capture would (the `PktState` still describes the
//! whole datagram; loads past the truncated end must break).

use crate::Logged;
use nfr_runtime::hook::{IfAddr, IfAddrs};
use nfr_runtime::pcap::linktype;
use nfr_runtime::replay::device_type;
use nfr_runtime::wire::{build as wb, parse_frame};
use nfr_vm::pkt::{self, PktState, ct_state, ips};
use nfr_vm::{CtTuple, Hook};
use serde::Deserialize;
use std::net::IpAddr;

/// One packet of a case (all fields optional except `expect`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PacketSpec {
    /// Label in failure messages.
    pub name: Option<String>,
    /// `ip` (default) or `ip6`; implied by the addresses.
    pub family: Option<String>,
    /// `tcp` (default), `udp`, `icmp`, `icmpv6`, `other` (with `proto_num`).
    pub proto: Option<String>,
    pub proto_num: Option<u8>,
    pub saddr: Option<String>,
    pub daddr: Option<String>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// TCP flags: `syn,ack`, `fin`, ... (default `syn`).
    pub flags: Option<String>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub ttl: Option<u8>,
    pub dscp: Option<u8>,
    /// Transport payload bytes (zeros).
    pub payload: Option<usize>,
    /// Fragment offset in bytes (a multiple of 8); non-zero = non-first fragment.
    pub frag_offset: Option<u16>,
    pub more_frags: Option<bool>,
    /// Keep only the first N bytes (a truncated capture).
    pub truncate: Option<usize>,
    /// Raw IP datagram in hex instead of fields.
    pub hex: Option<String>,
    /// Hook (default: the case's).
    pub hook: Option<String>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub mark: Option<u32>,
    pub skuid: Option<u32>,
    pub skgid: Option<u32>,
    /// `host`, `broadcast`, `multicast`, `other`.
    pub pkttype: Option<String>,
    /// `new`, `established`, `related`, `invalid` (default), `untracked`: the state the packet has
    /// when it reaches its hook, as a conntrack entry attached to it (each packet its own
    /// connection). A `new` packet at PREROUTING or OUTPUT gets it from conntrack's entry (-200);
    /// elsewhere a `new` packet is the first of its connection (the one nat chains see).
    pub ct_state: Option<String>,
    /// `IPS_*` names: `seen-reply`, `assured`, `confirmed`, `snat`, `dnat`, ...
    pub ct_status: Option<Vec<String>>,
    /// `original` (default) or `reply`.
    pub ct_direction: Option<String>,
    pub ct_mark: Option<u32>,
    pub ct_zone: Option<u16>,
    /// Packet time in milliseconds (drives `limit`).
    pub time_ms: Option<u64>,
    /// Send the packet this many times (each must give the same outcome).
    pub count: Option<usize>,

    /// Expected verdict: `accept`, `drop`, `queue`, `queue:N`, ...
    pub expect: String,
    pub mark_after: Option<u32>,
    pub ct_mark_after: Option<u32>,
    pub logged: Option<Logged>,
    pub rejected: Option<bool>,
    pub notrack: Option<bool>,
    /// `kind addr[:port]` (e.g. `dnat 192.168.1.10:8080`, `masquerade`); `""` = none.
    pub nat: Option<String>,
    /// Packet rewrites requested (`ip ttl set 1`, `tcp dport set 8080`), as
    /// `offset:hexbytes` from the start of the packet bytes, in order.
    pub writes: Option<Vec<String>>,
    /// The ct helper type the traversal asked to attach (`ct helper set`), e.g. `"ftp"`;
    /// `""` = none.
    pub helper: Option<String>,
}

impl PacketSpec {
    /// A short label for messages.
    pub fn label(&self, i: usize) -> String {
        match &self.name {
            Some(n) => format!("packet #{i} ({n})"),
            None => format!(
                "packet #{i} ({} {} {}:{} -> {}:{})",
                self.family.as_deref().unwrap_or(""),
                self.proto.as_deref().unwrap_or("tcp"),
                self.saddr.as_deref().unwrap_or("-"),
                self.sport.unwrap_or(0),
                self.daddr.as_deref().unwrap_or("-"),
                self.dport.unwrap_or(0)
            ),
        }
    }
}

/// Bytes, context and hook of one packet.
#[derive(Debug, Clone)]
pub struct BuiltPacket {
    pub bytes: Vec<u8>,
    pub state: PktState,
    pub hook: Hook,
}

fn hook(name: &str) -> Result<Hook, String> {
    Hook::ALL
        .into_iter()
        .find(|h| h.name() == name)
        .ok_or_else(|| format!("unknown hook {name}"))
}

/// The devices of the harness's host: name, ifindex and IPv4 address/prefix length (`eth0` also has
/// 2001:db8::2/64). The defaults of a packet are to and from `eth0`'s subnets: 198.51.100.1 is the
/// host's own address. Masquerade and redirect map to these (`IfAddrs`).
const DEVICES: &[(&str, u32, [u8; 4], u8)] = &[
    ("lo", 1, [127, 0, 0, 1], 8),
    ("eth0", 2, [198, 51, 100, 1], 24),
    ("eth1", 3, [192, 168, 1, 1], 24),
    ("eth2", 4, [203, 0, 113, 1], 24),
    ("wlan0", 5, [192, 168, 2, 1], 24),
    ("ppp0", 6, [100, 64, 0, 1], 32),
];

/// Interface index and type of a device name: the index from [`DEVICES`] (another name gets one from
/// its hash, 10 to 1009), the type as `nfc run pcap` gives its devices (`replay::device_type`: `lo`
/// loopback, every other device Ethernet).
pub fn ifindex(name: &str) -> (u32, u16) {
    let index = match DEVICES.iter().find(|d| d.0 == name) {
        Some(d) => d.1,
        None => {
            10 + name
                .bytes()
                .fold(0u32, |a, b| a.wrapping_mul(31) ^ u32::from(b))
                % 1000
        }
    };
    (index, device_type(&pkt::ifname(name)))
}

/// The addresses of the harness's host, per device of [`DEVICES`].
pub fn host_addresses() -> IfAddrs {
    let mut addrs: Vec<IfAddr> = DEVICES
        .iter()
        .map(|&(_, ifindex, a, prefix_len)| {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&a);
            IfAddr {
                ifindex,
                addr,
                nfproto: pkt::NFPROTO_IPV4,
                prefix_len,
            }
        })
        .collect();
    addrs.push(IfAddr {
        ifindex: 2,
        addr: std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets(),
        nfproto: pkt::NFPROTO_IPV6,
        prefix_len: 64,
    });
    IfAddrs {
        addrs,
        host: Vec::new(),
    }
}

fn tcp_flags(s: &str) -> Result<u8, String> {
    let mut f = 0u8;
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        f |= match w {
            "fin" => 0x01,
            "syn" => 0x02,
            "rst" => 0x04,
            "psh" => 0x08,
            "ack" => 0x10,
            "urg" => 0x20,
            "ecn" => 0x40,
            "cwr" => 0x80,
            "none" => 0,
            o => return Err(format!("unknown tcp flag {o}")),
        };
    }
    Ok(f)
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return Err("odd hex length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// The first packet of the connection an IP datagram belongs to: the datagram itself, turned around
/// when it goes in the reply direction (addresses and ports swapped), a TCP segment made a SYN, any
/// ICMP or ICMPv6 message an echo request.
pub fn first_of_connection(l3: &[u8], reply: bool) -> Vec<u8> {
    let mut d = l3.to_vec();
    let Ok(info) = parse_frame(linktype::RAW, l3) else {
        return d;
    };
    let mut st = PktState::default();
    info.fill(&mut st);
    let (src, dst, alen) = if st.nfproto == pkt::NFPROTO_IPV6 {
        (8, 24, 16)
    } else {
        (12, 16, 4)
    };
    let th = usize::from(st.thoff);
    if reply && d.len() >= dst + alen {
        let (a, b) = d.split_at_mut(dst);
        a[src..src + alen].swap_with_slice(&mut b[..alen]);
        if matches!(st.l4proto, 6 | 17) && d.len() >= th + 4 {
            let (p, q) = d[th..th + 4].split_at_mut(2);
            p.swap_with_slice(q);
        }
    }
    match (st.l4proto, d.get_mut(th)) {
        (6, _) => {
            if let Some(f) = d.get_mut(th + 13) {
                *f = 0x02;
            }
        }
        // an echo reply or an error (conntrack would look up the connection it quotes): an echo
        // request (ICMP 8, ICMPv6 128)
        (1, Some(t)) if *t != 8 => {
            *t = 8;
            if let Some(c) = d.get_mut(th + 1) {
                *c = 0;
            }
        }
        (58, Some(t)) if *t != 128 => {
            *t = 128;
            if let Some(c) = d.get_mut(th + 1) {
                *c = 0;
            }
        }
        _ => {}
    }
    d
}

/// Build the packet.
pub fn build(p: &PacketSpec, default_hook: &str) -> Result<BuiltPacket, String> {
    let v6 = match p.family.as_deref() {
        Some("ip6") => true,
        Some("ip") | None => p
            .saddr
            .as_deref()
            .or(p.daddr.as_deref())
            .is_some_and(|a| a.contains(':')),
        Some(o) => return Err(format!("unknown family {o}")),
    };
    let addr = |a: Option<&str>, d4: &str, d6: &str| -> Result<IpAddr, String> {
        a.unwrap_or(if v6 { d6 } else { d4 })
            .parse::<IpAddr>()
            .map_err(|e| e.to_string())
    };
    let src = addr(p.saddr.as_deref(), "192.0.2.1", "2001:db8::1")?;
    let dst = addr(p.daddr.as_deref(), "198.51.100.1", "2001:db8::2")?;
    let payload = vec![0u8; p.payload.unwrap_or(0)];
    let proto = p.proto.as_deref().unwrap_or("tcp");
    let mut bytes = if let Some(h) = &p.hex {
        hex(h)?
    } else {
        match proto {
            "tcp" => wb::tcp(
                src,
                dst,
                p.sport.unwrap_or(40000),
                p.dport.unwrap_or(80),
                1,
                0,
                tcp_flags(p.flags.as_deref().unwrap_or("syn"))?,
                1024,
                &[],
                &payload,
            ),
            "udp" => wb::udp(
                src,
                dst,
                p.sport.unwrap_or(40000),
                p.dport.unwrap_or(53),
                &payload,
            ),
            "icmp" | "icmpv6" => wb::icmp(
                src,
                dst,
                p.icmp_type.unwrap_or(if v6 { 128 } else { 8 }),
                p.icmp_code.unwrap_or(0),
                wb::echo(1, 1),
                &payload,
            ),
            "other" => wb::ip(src, dst, p.proto_num.unwrap_or(47), &payload),
            o => return Err(format!("unknown proto {o}")),
        }
    };
    if p.hex.is_none() {
        if v6 {
            if let Some(t) = p.ttl
                && let Some(b) = bytes.get_mut(7)
            {
                *b = t;
            }
            if let Some(d) = p.dscp
                && bytes.len() > 2
            {
                let tc = d << 2;
                bytes[0] = 0x60 | (tc >> 4);
                bytes[1] = (bytes[1] & 0x0f) | (tc << 4);
            }
            if p.frag_offset.is_some() || p.more_frags.is_some() {
                let next = bytes.get(6).copied().unwrap_or(0);
                let off = p.frag_offset.unwrap_or(0) & !7;
                let m = u16::from(p.more_frags.unwrap_or(false));
                let fo = (off | m).to_be_bytes();
                let fh = [next, 0, fo[0], fo[1], 0, 0, 0x12, 0x34];
                bytes.splice(40..40, fh);
                bytes[6] = 44;
                let plen = (bytes.len() - 40) as u16;
                bytes[4..6].copy_from_slice(&plen.to_be_bytes());
            }
        } else {
            if let Some(t) = p.ttl {
                bytes[8] = t;
            }
            if let Some(d) = p.dscp {
                bytes[1] = d << 2;
            }
            if p.frag_offset.is_some() || p.more_frags.is_some() {
                let off = p.frag_offset.unwrap_or(0) / 8;
                let v = (u16::from(p.more_frags.unwrap_or(false)) << 13) | (off & 0x1fff);
                bytes[6..8].copy_from_slice(&v.to_be_bytes());
            }
            wb::refresh_ipv4_checksum(&mut bytes);
        }
    }
    let mut st = PktState::default();
    let info = parse_frame(linktype::RAW, &bytes).map_err(|e| e.to_string())?;
    info.fill(&mut st);
    if let Some(n) = p.truncate {
        bytes.truncate(n);
    }
    let hk = hook(p.hook.as_deref().unwrap_or(default_hook))?;
    if let Some(i) = &p.iif {
        let (idx, ty) = ifindex(i);
        st.iif = idx;
        st.iiftype = ty;
        st.iifname = pkt::ifname(i);
    }
    if let Some(o) = &p.oif {
        let (idx, ty) = ifindex(o);
        st.oif = idx;
        st.oiftype = ty;
        st.oifname = pkt::ifname(o);
    }
    st.mark = p.mark.unwrap_or(0);
    if let Some(u) = p.skuid {
        st.has_sk = true;
        st.sk_uid = u;
    }
    if let Some(g) = p.skgid {
        st.has_sk = true;
        st.sk_gid = g;
    }
    if let Some(t) = &p.pkttype {
        st.pkttype = match t.as_str() {
            "host" => pkt::pkttype::PACKET_HOST,
            "broadcast" => pkt::pkttype::PACKET_BROADCAST,
            "multicast" => pkt::pkttype::PACKET_MULTICAST,
            "other" => pkt::pkttype::PACKET_OTHERHOST,
            o => return Err(format!("unknown pkttype {o}")),
        };
    }
    st.tstamp_ns = p.time_ms.unwrap_or(0) * 1_000_000;
    let state = p.ct_state.as_deref().unwrap_or("invalid");
    let (valid, bits) = match state {
        "invalid" => (false, ct_state::INVALID),
        "untracked" => (false, ct_state::UNTRACKED),
        "new" => (true, ct_state::NEW),
        "established" => (true, ct_state::ESTABLISHED),
        "related" => (true, ct_state::RELATED),
        o => return Err(format!("unknown ct state {o}")),
    };
    st.ct_valid = valid;
    st.ct_state = bits;
    if valid {
        for s in p.ct_status.iter().flatten() {
            st.ct_status |= match s.as_str() {
                "expected" => ips::EXPECTED,
                "seen-reply" => ips::SEEN_REPLY,
                "assured" => ips::ASSURED,
                "confirmed" => ips::CONFIRMED,
                "snat" => ips::SRC_NAT,
                "dnat" => ips::DST_NAT,
                "dying" => ips::DYING,
                o => return Err(format!("unknown ct status {o}")),
            };
        }
        st.ct_direction = match p.ct_direction.as_deref().unwrap_or("original") {
            "original" => pkt::IP_CT_DIR_ORIGINAL,
            "reply" => pkt::IP_CT_DIR_REPLY,
            o => return Err(format!("unknown ct direction {o}")),
        };
        st.ct_mark = p.ct_mark.unwrap_or(0);
        st.ct_zone = p.ct_zone.unwrap_or(0);
        st.ct_l3proto = st.nfproto;
        st.ct_protocol = st.l4proto;
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                a[..4].copy_from_slice(&s.octets());
                b[..4].copy_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                a = s.octets();
                b = d.octets();
            }
            _ => {}
        }
        let (sp, dp) = (p.sport.unwrap_or(40000), p.dport.unwrap_or(80));
        let fwd = CtTuple {
            src: a,
            dst: b,
            src_port: sp,
            dst_port: dp,
        };
        let rev = CtTuple {
            src: b,
            dst: a,
            src_port: dp,
            dst_port: sp,
        };
        if st.ct_direction == pkt::IP_CT_DIR_ORIGINAL {
            st.ct_orig = fwd;
            st.ct_reply = rev;
        } else {
            st.ct_orig = rev;
            st.ct_reply = fwd;
        }
    }
    Ok(BuiltPacket {
        bytes,
        state: st,
        hook: hk,
    })
}
