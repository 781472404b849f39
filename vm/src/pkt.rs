//! The packet context every engine reads: `PktState`, nfc's equivalent of the kernel's
//! `struct nft_pktinfo` plus the skb/conntrack fields that `meta` and `ct` expressions look at.
//!
//! The packet *bytes* are passed separately as `&[u8]`. Convention (shared by the interpreter,
//! the JIT and the iptables executor):
//!
//! * the slice starts at the link-layer header if there is one (`has_ll == true`, link header at
//!   byte `lloff`, normally 0), otherwise it starts directly at the network header;
//! * the network (L3) header is at byte `nhoff` of the slice (`nhoff == 0` for raw IP captures);
//! * the transport (L4) header is at byte `thoff`, valid only when `has_th` is set (the kernel's
//!   `NFT_PKTINFO_L4PROTO` flag) and the packet is not a non-first fragment (`fragoff == 0`).
//!
//! The struct is `#[repr(C)]` with fixed-size fields only, so native (JIT) code can read it at
//! fixed offsets. Fields are only ever *added* (at the end) — build values with
//! `PktState { .., ..Default::default() }` so that additions stay source compatible.
//!
//! Byte-order convention: integer fields hold *host-order values*; the engines convert them the
//! way the kernel stores them in registers (e.g. `meta mark` is a host-order u32 in a register,
//! `meta protocol` / `ct proto-src` are network-order big-endian bytes).

pub use nfr_proto::desc::{NFPROTO_ARP, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_NETDEV};
/// `NFPROTO_BRIDGE`.
pub const NFPROTO_BRIDGE: u8 = 7;

/// `IFNAMSIZ`: interface names are NUL-padded to 16 bytes.
pub const IFNAMSIZ: usize = 16;
/// `NF_CT_HELPER_NAME_LEN`.
pub const NF_CT_HELPER_NAME_LEN: usize = 16;

/// nft `ct state` bits (`NF_CT_STATE_BIT(ctinfo)` and friends), as stored in `PktState::ct_state`.
pub mod ct_state {
    /// `NF_CT_STATE_INVALID_BIT`: no conntrack entry and not untracked.
    pub const INVALID: u32 = 1;
    /// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED)` (also for `IP_CT_ESTABLISHED_REPLY`).
    pub const ESTABLISHED: u32 = 2;
    /// `NF_CT_STATE_BIT(IP_CT_RELATED)` (also for `IP_CT_RELATED_REPLY`).
    pub const RELATED: u32 = 4;
    /// `NF_CT_STATE_BIT(IP_CT_NEW)`.
    pub const NEW: u32 = 8;
    /// `NF_CT_STATE_UNTRACKED_BIT`.
    pub const UNTRACKED: u32 = 64;

    /// `enum ip_conntrack_info` value `IP_CT_UNTRACKED`.
    pub const IP_CT_UNTRACKED: u8 = 7;

    /// The `ct state` bit of an `enum ip_conntrack_info` value (`NF_CT_STATE_BIT`):
    /// IP_CT_ESTABLISHED(0)/ESTABLISHED_REPLY(3) → ESTABLISHED, IP_CT_RELATED(1)/
    /// RELATED_REPLY(4) → RELATED, IP_CT_NEW(2) → NEW, IP_CT_UNTRACKED(7) → UNTRACKED.
    pub const fn from_ctinfo(ctinfo: u8) -> u32 {
        if ctinfo == IP_CT_UNTRACKED {
            UNTRACKED
        } else {
            1 << (ctinfo % 3 + 1)
        }
    }
}

/// `enum ip_conntrack_status` bits (`IPS_*`), as stored in `PktState::ct_status`.
pub mod ips {
    pub const EXPECTED: u32 = 1 << 0;
    pub const SEEN_REPLY: u32 = 1 << 1;
    pub const ASSURED: u32 = 1 << 2;
    pub const CONFIRMED: u32 = 1 << 3;
    pub const SRC_NAT: u32 = 1 << 4;
    pub const DST_NAT: u32 = 1 << 5;
    pub const NAT_MASK: u32 = DST_NAT | SRC_NAT;
    pub const SEQ_ADJUST: u32 = 1 << 6;
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    pub const DST_NAT_DONE: u32 = 1 << 8;
    pub const NAT_DONE_MASK: u32 = DST_NAT_DONE | SRC_NAT_DONE;
    pub const DYING: u32 = 1 << 9;
    pub const FIXED_TIMEOUT: u32 = 1 << 10;
    pub const TEMPLATE: u32 = 1 << 11;
    pub const UNTRACKED: u32 = 1 << 12;
    pub const NAT_CLASH: u32 = 1 << 12;
    pub const HELPER: u32 = 1 << 13;
    pub const OFFLOAD: u32 = 1 << 14;
    pub const HW_OFFLOAD: u32 = 1 << 15;
}

/// `PACKET_*` values for `PktState::pkttype` (`meta pkttype`).
pub mod pkttype {
    pub const PACKET_HOST: u8 = 0;
    pub const PACKET_BROADCAST: u8 = 1;
    pub const PACKET_MULTICAST: u8 = 2;
    pub const PACKET_OTHERHOST: u8 = 3;
    pub const PACKET_OUTGOING: u8 = 4;
}

/// `IP_CT_DIR_ORIGINAL` for `PktState::ct_direction`.
pub const IP_CT_DIR_ORIGINAL: u8 = 0;
/// `IP_CT_DIR_REPLY` for `PktState::ct_direction`.
pub const IP_CT_DIR_REPLY: u8 = 1;

/// `NF_CT_ZONE_DIR_ORIG` bit of `PktState::ct_zone_dir`.
pub const NF_CT_ZONE_DIR_ORIG: u8 = 1;
/// `NF_CT_ZONE_DIR_REPL` bit of `PktState::ct_zone_dir`.
pub const NF_CT_ZONE_DIR_REPL: u8 = 2;

/// One conntrack tuple direction (`struct nf_conntrack_tuple`, the parts nft reads).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtTuple {
    /// Source address, network byte order. IPv4 uses the first 4 bytes, the rest is zero
    /// (like `union nf_inet_addr`).
    pub src: [u8; 16],
    /// Destination address, same layout as `src`.
    pub dst: [u8; 16],
    /// `src.u.all` as a host-order value whose big-endian bytes are the wire bytes:
    /// TCP/UDP/SCTP/DCCP source port; ICMP echo id.
    pub src_port: u16,
    /// `dst.u.all` likewise: destination port; ICMP `type << 8 | code`.
    pub dst_port: u16,
}

/// The packet context (see the module docs for the byte conventions).
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PktState {
    // ---- layout of the packet bytes ----
    /// Offset of the link-layer header (valid when `has_ll`). Normally 0.
    pub lloff: u16,
    /// Offset of the network header (`skb_network_offset`).
    pub nhoff: u16,
    /// Offset of the transport header (`nft_pktinfo.thoff`), valid when `has_th`.
    pub thoff: u16,
    /// Fragment offset in bytes (`pkt->fragoff`); non-zero = a non-first fragment, whose
    /// transport-header loads break (NFT_BREAK).
    pub fragoff: u16,
    /// A link-layer header is present in the bytes (loads at `link header` break otherwise).
    pub has_ll: bool,
    /// The transport header was found (`NFT_PKTINFO_L4PROTO`).
    pub has_th: bool,
    /// The packet is a fragment (first or not): `IP_MF`/fragoff set, or an IPv6 fragment header.
    pub is_fragment: bool,
    /// `nft_pktinfo.tprot` (`meta l4proto`): the transport protocol number.
    pub l4proto: u8,
    /// `NFPROTO_IPV4` or `NFPROTO_IPV6` (`meta nfproto`).
    pub nfproto: u8,
    /// `skb->pkt_type` (`PACKET_*`, `meta pkttype`).
    pub pkttype: u8,
    /// `skb->protocol` as a host-order ethertype (`meta protocol`; 0x0800, 0x86dd, ...).
    pub protocol: u16,
    /// `skb->len` at the hook: bytes from the network header to the end (`meta len`; also the byte
    /// count added by counters).
    pub len: u32,

    // ---- devices ----
    /// Input interface index (`meta iif`); 0 = none.
    pub iif: u32,
    /// Output interface index (`meta oif`); 0 = none.
    pub oif: u32,
    /// Input interface name, NUL padded (`meta iifname`).
    pub iifname: [u8; IFNAMSIZ],
    /// Output interface name, NUL padded (`meta oifname`).
    pub oifname: [u8; IFNAMSIZ],
    /// Input device type (`ARPHRD_*`, `meta iiftype`); read only when `iif != 0`.
    pub iiftype: u16,
    /// Output device type (`meta oiftype`); read only when `oif != 0`.
    pub oiftype: u16,
    /// Route type (`RTN_*`) of the source address (`fib saddr type`), as the runtime's host
    /// addresses give it; 0 (`unspec`) when nobody filled it in.
    pub fib_saddr_type: u8,
    /// Route type of the destination address (`fib daddr type`).
    pub fib_daddr_type: u8,

    // ---- skb / socket ----
    /// `skb->mark` (`meta mark`).
    pub mark: u32,
    /// A local socket is attached (`meta skuid/skgid` break otherwise).
    pub has_sk: bool,
    /// Socket owner uid (`meta skuid`).
    pub sk_uid: u32,
    /// Socket owner gid (`meta skgid`).
    pub sk_gid: u32,
    /// Packet time in nanoseconds (virtual time: the capture timestamp). Drives `limit`.
    pub tstamp_ns: u64,

    // ---- conntrack ----
    /// A conntrack entry is attached (`nf_ct_get() != NULL`). When false every `ct` key except
    /// `state` breaks.
    pub ct_valid: bool,
    /// `ct state` bits (`ct_state::*`); must be `INVALID` or `UNTRACKED` when `!ct_valid`.
    pub ct_state: u32,
    /// `ct->status` (`ips::*`, `ct status`).
    pub ct_status: u32,
    /// `ct->mark` (`ct mark`).
    pub ct_mark: u32,
    /// This packet's direction (`IP_CT_DIR_ORIGINAL` / `IP_CT_DIR_REPLY`, `ct direction`).
    pub ct_direction: u8,
    /// Which directions the zone applies to (`NF_CT_ZONE_DIR_*`, usually both = 3).
    pub ct_zone_dir: u8,
    /// `nf_ct_zone(ct)->id` (`ct zone`).
    pub ct_zone: u16,
    /// Remaining lifetime in milliseconds (`ct expiration`).
    pub ct_expiration_ms: u32,
    /// `nf_ct_get_id(ct)` (`ct id`).
    pub ct_id: u32,
    /// Helper name of the master connection, NUL padded; empty = none (`ct helper` breaks).
    pub ct_helper: [u8; NF_CT_HELPER_NAME_LEN],
    /// `nf_ct_l3num(ct)` (`ct l3proto`): NFPROTO_IPV4 / NFPROTO_IPV6.
    pub ct_l3proto: u8,
    /// `nf_ct_protonum(ct)` (`ct protocol`).
    pub ct_protocol: u8,
    /// `ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple`.
    pub ct_orig: CtTuple,
    /// `ct->tuplehash[IP_CT_DIR_REPLY].tuple`.
    pub ct_reply: CtTuple,
}

impl Default for PktState {
    /// An IPv4 packet with no link layer, no devices and no conntrack entry (`ct state invalid`).
    #[inline]
    fn default() -> Self {
        PktState {
            lloff: 0,
            nhoff: 0,
            thoff: 0,
            fragoff: 0,
            has_ll: false,
            has_th: false,
            is_fragment: false,
            l4proto: 0,
            nfproto: NFPROTO_IPV4,
            pkttype: pkttype::PACKET_HOST,
            protocol: 0x0800,
            len: 0,
            iif: 0,
            oif: 0,
            iifname: [0; IFNAMSIZ],
            oifname: [0; IFNAMSIZ],
            iiftype: 0,
            oiftype: 0,
            fib_saddr_type: 0,
            fib_daddr_type: 0,
            mark: 0,
            has_sk: false,
            sk_uid: 0,
            sk_gid: 0,
            tstamp_ns: 0,
            ct_valid: false,
            ct_state: ct_state::INVALID,
            ct_status: 0,
            ct_mark: 0,
            ct_direction: IP_CT_DIR_ORIGINAL,
            ct_zone_dir: NF_CT_ZONE_DIR_ORIG | NF_CT_ZONE_DIR_REPL,
            ct_zone: 0,
            ct_expiration_ms: 0,
            ct_id: 0,
            ct_helper: [0; NF_CT_HELPER_NAME_LEN],
            ct_l3proto: 0,
            ct_protocol: 0,
            ct_orig: CtTuple::default(),
            ct_reply: CtTuple::default(),
        }
    }
}

/// Copy `name` into a NUL-padded `IFNAMSIZ` buffer (truncated to 15 bytes + NUL, like the
/// kernel's `strscpy_pad`).
pub fn ifname(name: &str) -> [u8; IFNAMSIZ] {
    let mut out = [0u8; IFNAMSIZ];
    for (d, s) in out.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
        *d = s;
    }
    out
}

impl PktState {
    /// The tuple of direction `dir` (`IP_CT_DIR_ORIGINAL` = 0, otherwise reply).
    pub fn ct_tuple(&self, dir: u8) -> &CtTuple {
        if dir == IP_CT_DIR_ORIGINAL {
            &self.ct_orig
        } else {
            &self.ct_reply
        }
    }

    /// True when transport-header loads are allowed (`has_th` and not a non-first fragment).
    #[inline]
    pub fn transport_ok(&self) -> bool {
        self.has_th && self.fragoff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_pads_and_truncates() {
        assert_eq!(&ifname("eth0")[..5], b"eth0\0");
        let long = ifname("abcdefghijklmnopqrstuvwxyz");
        assert_eq!(&long[..15], b"abcdefghijklmno");
        assert_eq!(long[15], 0);
    }

    #[test]
    fn ct_state_bits_from_ctinfo() {
        assert_eq!(ct_state::from_ctinfo(0), ct_state::ESTABLISHED);
        assert_eq!(ct_state::from_ctinfo(3), ct_state::ESTABLISHED);
        assert_eq!(ct_state::from_ctinfo(1), ct_state::RELATED);
        assert_eq!(ct_state::from_ctinfo(4), ct_state::RELATED);
        assert_eq!(ct_state::from_ctinfo(2), ct_state::NEW);
        assert_eq!(ct_state::from_ctinfo(7), ct_state::UNTRACKED);
    }

    #[test]
    fn default_is_invalid_ct() {
        let p = PktState::default();
        assert!(!p.ct_valid);
        assert_eq!(p.ct_state, ct_state::INVALID);
        assert!(!p.transport_ok());
    }
}
