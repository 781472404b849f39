//! Netfilter hooks: per (family, hook) entry lists ordered by priority with `nf_hook_entries_grow`'s insertion
//! rule, `nf_hook_slow`'s traversal, the [`Engine`] trait that table engines (interpreter, JIT, ipt blob)
//! implement, the built-in defrag (-400), conntrack (-200), NAT ([`NatHook`]: -100 and 100, holding the nat
//! chains) and confirm (INT_MAX) entries, and the `NF_HOOK` paths a packet takes (local delivery, forwarding,
//! local output; the routing decision comes after PREROUTING, so a DNATed packet goes where its new destination
//! is), and the output path of the packets the host sends in reaction (reject answers, ICMP errors; see
//! [`crate::reply`]).
//!
//! Insertion rule (kernel, `nf_hook_entries_grow`): a new entry goes before the first existing entry whose
//! priority is >= its own. So among equal priorities the *most recently registered* entry runs first.
//!
//! Traversal (`nf_hook_slow`): ACCEPT continues with the next entry, DROP and STOLEN end the traversal, QUEUE
//! hands the packet to a registered queue (`Queued`), or continues when nobody listens and the verdict carries the
//! bypass flag, else drops. REPEAT re-invokes the same entry (pre-4.16 `nf_iterate` semantics), at most
//! [`MAX_REPEAT`] times, after which the packet is dropped.

use crate::ct::nat::{Manip, NatVerdict};
use crate::ct::{Conntrack, CtInfo, Nfct};
use crate::defrag::{Defrag, Defragmenter};
use crate::forward::{Forward, ip_forward};
use crate::pcap::linktype;
use crate::reply::{self, IcmpRateLimit, RejectWith};
use crate::wire;
use nfr_proto::hook::path;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};
use nfr_vm::{Hook, PktState, Verdict};
use std::borrow::Cow;

/// `NF_IP_PRI_*` / `NF_IP6_PRI_*` values.
pub use nfr_proto::hook::priority;

/// `MAX_HOOK_COUNT`.
pub const MAX_HOOK_COUNT: usize = 1024;
/// Bound on NF_REPEAT re-invocations of one entry.
pub const MAX_REPEAT: u32 = 16;

/// A packet on its way through the hooks (`struct sk_buff` + `nft_pktinfo`).
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    /// Bytes; `state.nhoff` is the network header, `state.len` the datagram length.
    pub data: Cow<'a, [u8]>,
    pub state: PktState,
    /// Attached conntrack entry (`skb->_nfct`).
    pub nfct: Nfct,
    /// A `reject` / `REJECT` fired: the answer the host sends once the traversal ends.
    pub reject: Option<RejectWith>,
    /// Built by the host itself in reaction to another packet (a reject answer, an ICMP error).
    pub generated: bool,
    /// The NAT rewrites it went through, while [`Hooks::trace_nat`] is on.
    pub rewrites: Vec<Rewrite>,
    /// NAT or a payload write rewrote the datagram (`nf_nat_packet`, an ICMP error's translation,
    /// `nft_payload_set_eval`): its addresses may have changed.
    pub mangled: bool,
}

/// One NAT rewrite of a packet (`nf_nat_packet`, or the translation of an ICMP error about a NATed flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub hook: Hook,
    /// The IP datagram before and after.
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

impl<'a> Packet<'a> {
    /// Parses a captured frame; an error when it is not an IP packet the hooks can see.
    pub fn from_frame(linktype: u16, data: &'a [u8], ts_ns: u64) -> Result<Self, wire::Malformed> {
        let pi = wire::parse_frame(linktype, data)?;
        let mut state = PktState {
            tstamp_ns: ts_ns,
            ..PktState::default()
        };
        pi.fill(&mut state);
        Ok(Packet {
            data: Cow::Borrowed(data),
            state,
            nfct: Nfct::None,
            reject: None,
            generated: false,
            rewrites: Vec::new(),
            mangled: false,
        })
    }

    /// Like [`Self::from_frame`], owning `data` (given back in the error).
    pub fn from_owned(
        linktype: u16,
        data: Vec<u8>,
        ts_ns: u64,
    ) -> Result<Packet<'static>, Vec<u8>> {
        let mut state = PktState {
            tstamp_ns: ts_ns,
            ..PktState::default()
        };
        match wire::parse_frame(linktype, &data) {
            Ok(pi) => pi.fill(&mut state),
            Err(_) => return Err(data),
        }
        Ok(Packet {
            data: Cow::Owned(data),
            state,
            nfct: Nfct::None,
            reject: None,
            generated: false,
            rewrites: Vec::new(),
            mangled: false,
        })
    }

    /// Makes this packet the one whose bytes `data` now holds, as [`Self::from_owned`] would, in place: the
    /// allocations (bytes, rewrites) are kept for the next. False when the bytes do not parse (the packet's state
    /// is then meaningless until the next refill).
    pub fn refill(&mut self, linktype: u16, ts_ns: u64) -> bool {
        self.state = PktState {
            tstamp_ns: ts_ns,
            ..PktState::default()
        };
        match wire::parse_frame(linktype, &self.data) {
            Ok(pi) => pi.fill(&mut self.state),
            Err(_) => return false,
        }
        self.reset();
        true
    }

    /// Forgets what the last walk attached to the packet (conntrack reference, reject, NAT rewrites) for a new
    /// packet in its place; the bytes and the context are the caller's.
    pub fn reset(&mut self) {
        self.nfct = Nfct::None;
        self.reject = None;
        self.generated = false;
        self.rewrites.clear();
        self.mangled = false;
    }

    /// The IP datagram (network header to `state.len`).
    pub fn l3(&self) -> &[u8] {
        let s = usize::from(self.state.nhoff);
        let e = s.saturating_add(self.state.len as usize);
        self.data
            .get(s..e)
            .or_else(|| self.data.get(s..))
            .unwrap_or(&[])
    }

    /// Replaces the IP datagram by `d`, which may be longer or shorter (a NAT helper's rewrite).
    pub fn replace_l3(&mut self, d: &[u8]) {
        let s = usize::from(self.state.nhoff);
        let e = s.saturating_add(self.state.len as usize);
        let buf = self.data.to_mut();
        let e = e.min(buf.len());
        let s = s.min(e);
        buf.splice(s..e, d.iter().copied());
        self.state.len = d.len() as u32;
        self.mangled = true;
    }

    /// The IP datagram, writable (copied out of the capture's buffer the first time).
    pub fn l3_mut(&mut self) -> &mut [u8] {
        let s = usize::from(self.state.nhoff);
        let e = s.saturating_add(self.state.len as usize);
        let d = self.data.to_mut();
        let e = e.min(d.len());
        d.get_mut(s.min(e)..e).unwrap_or_default()
    }
}

/// Per-call context given to entries (`struct nf_hook_state` plus the conntrack table).
#[derive(Debug)]
pub struct HookCtx<'c> {
    pub hook: Hook,
    pub nfproto: u8,
    /// Virtual time (ns).
    pub now: u64,
    pub ct: &'c mut Conntrack,
    /// The host's interface addresses (masquerade, redirect).
    pub ifaddrs: &'c IfAddrs,
    /// Record NAT rewrites in [`Packet::rewrites`].
    pub trace_nat: bool,
}

/// One address of an interface (`ip addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub ifindex: u32,
    /// Network order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    pub nfproto: u8,
    pub prefix_len: u8,
}

impl IfAddr {
    /// Whether `a` is in the address's subnet (`inet_ifa_match`).
    fn on_link(&self, a: &[u8; 16]) -> bool {
        let bits = usize::from(self.prefix_len).min(if self.nfproto == NFPROTO_IPV4 {
            32
        } else {
            128
        });
        let (full, rest) = (bits / 8, bits % 8);
        self.addr[..full] == a[..full]
            && (rest == 0 || (self.addr[full] ^ a[full]) & (0xffu8 << (8 - rest)) == 0)
    }
}

/// The host's interface addresses, in the order they were added (an interface's first address of a family is its
/// primary one), and its other addresses (`lo`'s, for a host whose output interface has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfAddrs {
    pub addrs: Vec<IfAddr>,
    /// Addresses of the host on no interface of `addrs` (on `lo`), by family: what `inet_select_addr` falls back
    /// to.
    pub host: Vec<(u8, [u8; 16])>,
}

impl IfAddrs {
    /// The route type (`RTN_*`) the host's routing gives `a` (`inet_addr_type` / `ipv6_addr_type`,
    /// for `fib ... type` and iptables' addrtype): multicast and the limited broadcast by their form, the
    /// host's addresses and loopback local, an interface subnet's broadcast address broadcast, the rest
    /// unicast.
    pub fn addr_type(&self, nfproto: u8, a: &[u8; 16]) -> u8 {
        use nfr_proto::catalog::{RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST, RTN_UNICAST};
        let v4 = nfproto == NFPROTO_IPV4;
        let mine = self
            .addrs
            .iter()
            .any(|x| x.nfproto == nfproto && x.addr == *a)
            || self.host.iter().any(|(f, x)| *f == nfproto && x == a);
        if v4 {
            if a[0] & 0xf0 == 0xe0 {
                return RTN_MULTICAST;
            }
            if a[..4] == [255; 4] {
                return RTN_BROADCAST;
            }
            if mine || a[0] == 127 {
                return RTN_LOCAL;
            }
            let bcast = self.addrs.iter().any(|x| {
                x.nfproto == nfproto && x.prefix_len < 31 && x.on_link(a) && {
                    let host = u32::MAX >> x.prefix_len;
                    u32::from_be_bytes([a[0], a[1], a[2], a[3]]) & host == host
                }
            });
            return if bcast { RTN_BROADCAST } else { RTN_UNICAST };
        }
        if a[0] == 0xff {
            RTN_MULTICAST
        } else if mine || *a == std::net::Ipv6Addr::LOCALHOST.octets() {
            RTN_LOCAL
        } else {
            RTN_UNICAST
        }
    }

    /// Sets `PktState::fib_saddr_type` / `fib_daddr_type` from the packet's addresses.
    pub fn set_fib_types(&self, pkt: &mut Packet<'_>) {
        let nfproto = pkt.state.nfproto;
        let l3 = pkt.l3();
        let (s, d) = match nfproto {
            NFPROTO_IPV4 if l3.len() >= 20 => (12..16, 16..20),
            NFPROTO_IPV6 if l3.len() >= 40 => (8..24, 24..40),
            _ => return,
        };
        let addr = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 16];
            a[..r.len()].copy_from_slice(&l3[r]);
            a
        };
        let (sa, da) = (addr(s), addr(d));
        pkt.state.fib_saddr_type = self.addr_type(nfproto, &sa);
        pkt.state.fib_daddr_type = self.addr_type(nfproto, &da);
    }

    /// The source masquerade takes (`inet_select_addr(out, daddr)` / IPv6 source selection, simplified): the
    /// output interface's first address whose subnet holds the destination, else its first address, else the
    /// first address the host has elsewhere; `None` when it has none (the kernel drops the packet).
    pub fn masquerade_source(&self, oif: u32, nfproto: u8, daddr: &[u8; 16]) -> Option<[u8; 16]> {
        self.device_addr(oif, nfproto, daddr).or_else(|| {
            self.host
                .iter()
                .find(|(f, _)| *f == nfproto)
                .map(|(_, a)| *a)
                .or_else(|| {
                    self.addrs
                        .iter()
                        .find(|a| a.nfproto == nfproto)
                        .map(|a| a.addr)
                })
        })
    }

    /// `inet_select_addr` on interface `ifindex` alone: its first address of the family whose subnet holds
    /// `daddr`, else its first one; `None` when it has none.
    pub fn device_addr(&self, ifindex: u32, nfproto: u8, daddr: &[u8; 16]) -> Option<[u8; 16]> {
        let mine = || {
            self.addrs
                .iter()
                .filter(move |a| a.ifindex == ifindex && a.nfproto == nfproto)
        };
        mine()
            .find(|a| a.on_link(daddr))
            .or_else(|| mine().next())
            .map(|a| a.addr)
    }

    /// The destination redirect takes (`nf_nat_redirect_ipv4/6`): the loopback address for the host's own
    /// packets (OUTPUT), else the input interface's first address (IPv6: of the destination's scope); `None`
    /// when it has none (the kernel drops the packet).
    pub fn redirect_target(
        &self,
        hook: Hook,
        iif: u32,
        nfproto: u8,
        daddr: &[u8; 16],
    ) -> Option<[u8; 16]> {
        let mut a = [0u8; 16];
        if hook == Hook::Output {
            if nfproto == NFPROTO_IPV4 {
                a[..4].copy_from_slice(&[127, 0, 0, 1]);
            } else {
                a[15] = 1;
            }
            return Some(a);
        }
        let link_local = |x: &[u8; 16]| x[0] == 0xfe && x[1] & 0xc0 == 0x80;
        self.addrs
            .iter()
            .filter(|x| x.ifindex == iif && x.nfproto == nfproto)
            .find(|x| nfproto == NFPROTO_IPV4 || link_local(&x.addr) == link_local(daddr))
            .map(|x| x.addr)
    }
}

/// A hook function: a table engine or a built-in.
pub trait Engine {
    /// Runs on one packet; `Verdict::Accept` lets the traversal continue.
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict;

    /// Name for listings and traces.
    fn name(&self) -> &str {
        "engine"
    }

    /// What `--profile` counts this entry's time as.
    fn stage(&self) -> Stage {
        Stage::Chains
    }

    /// The NAT hook, for the registry to add nat chains to it.
    fn nat_hook(&mut self) -> Option<&mut NatHook> {
        None
    }
}

/// The kinds of hook entry `--profile` tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Defrag,
    Conntrack,
    /// The rulesets' chains (and any other engine).
    Chains,
    /// Bookkeeping entries that are not part of the packet's path (the replay's observer).
    Other,
}

/// `nf_conntrack_in` as a hook entry.
#[derive(Debug, Default)]
pub struct ConntrackIn;

impl Engine for ConntrackIn {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        let mut nfct = pkt.nfct;
        let l3 = pkt.l3();
        let v = cx.ct.conntrack_in(l3, cx.hook, cx.now, &mut nfct);
        pkt.nfct = nfct;
        cx.ct.fill_pkt_state(&pkt.nfct, &mut pkt.state);
        v
    }

    fn name(&self) -> &str {
        "nf_conntrack_in"
    }

    fn stage(&self) -> Stage {
        Stage::Conntrack
    }
}

/// `nf_confirm` as a hook entry.
#[derive(Debug, Default)]
pub struct ConntrackConfirm;

impl Engine for ConntrackConfirm {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        if let Some(v) = cx.ct.confirmed(&pkt.nfct, &mut pkt.state) {
            return v;
        }
        let mut nfct = pkt.nfct;
        let (v, mangled) = cx.ct.confirm_mangled(pkt.l3(), cx.now, &mut nfct);
        if let Some(d) = mangled {
            // The FTP NAT helper's rewrite and the sequence adjustment, shown as a rewrite at this hook.
            if cx.trace_nat {
                let before = pkt.l3().to_vec();
                pkt.rewrites.push(Rewrite {
                    hook: cx.hook,
                    before,
                    after: d.clone(),
                });
            }
            pkt.replace_l3(&d);
        }
        pkt.nfct = nfct;
        cx.ct.fill_pkt_state(&pkt.nfct, &mut pkt.state);
        v
    }

    fn name(&self) -> &str {
        "nf_confirm"
    }

    fn stage(&self) -> Stage {
        Stage::Conntrack
    }
}

/// `nf_defrag_ipv4` / `nf_defrag_ipv6`: fragments are STOLEN until the datagram is complete, which then replaces
/// the packet (network header at offset 0, no link layer).
#[derive(Debug, Default)]
pub struct DefragEntry {
    pub defrag: Defragmenter,
}

impl Engine for DefragEntry {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        if !pkt.state.is_fragment {
            return Verdict::Accept;
        }
        match self.defrag.offer(pkt.l3(), cx.now) {
            Defrag::NotFragment => Verdict::Accept,
            Defrag::Consumed => Verdict::Stolen,
            Defrag::Reassembled(d) => match wire::parse_frame(linktype::RAW, &d) {
                Ok(pi) => {
                    pi.fill(&mut pkt.state);
                    pkt.data = Cow::Owned(d);
                    Verdict::Accept
                }
                Err(_) => Verdict::Drop,
            },
        }
    }

    fn name(&self) -> &str {
        "nf_defrag"
    }

    fn stage(&self) -> Stage {
        Stage::Defrag
    }
}

/// The NAT hook of one family at one hook (`nf_nat_ipv4_ops` / `nf_nat_ipv6_ops`): at `NF_IP_PRI_NAT_DST` on
/// PREROUTING and OUTPUT, `NF_IP_PRI_NAT_SRC` on INPUT and POSTROUTING, registered on all four with the family's
/// first nat chain (`nf_nat_register_fn`). The nat chains are its entries, in their own priority order (a nat
/// chain's priority orders it among the nat chains only). For a connection without a binding for the hook's
/// manipulation (its first packet) they run until one binds it, else it gets a null binding
/// (`nf_nat_inet_fn`); then every packet of a NATed connection is rewritten (`nf_nat_packet`), and an ICMP error
/// RELATED to a flow has its quoted datagram translated instead (`nf_nat_icmp_reply_translation`).
#[derive(Debug, Default)]
pub struct NatHook {
    entries: Vec<Entry>,
}

impl NatHook {
    /// `nf_nat_ipv4_fn` / `nf_nat_ipv6_fn` past the ICMP errors (`nf_nat_inet_fn`).
    fn bind_and_rewrite(
        &mut self,
        pkt: &mut Packet<'_>,
        cx: &mut HookCtx<'_>,
        ctinfo: CtInfo,
    ) -> Verdict {
        let manip = Manip::of_hook(cx.hook);
        if matches!(ctinfo, CtInfo::New | CtInfo::Related | CtInfo::RelatedReply)
            && !cx.ct.nat_initialized(&pkt.nfct, manip)
        {
            let mut bound = false;
            for e in &mut self.entries {
                let v = e.engine.hook(pkt, cx);
                if v != Verdict::Accept {
                    return v;
                }
                if cx.ct.nat_initialized(&pkt.nfct, manip) {
                    bound = true;
                    break;
                }
            }
            if !bound {
                // Fails only without an entry to bind (nothing to do then).
                let _ = cx.ct.nf_nat_alloc_null_binding(&pkt.nfct, manip, cx.now);
            }
            cx.ct.fill_pkt(&pkt.nfct, cx.now, &mut pkt.state);
        } else if pkt.state.ct_valid
            && pkt.state.ct_status & Conntrack::nat_status_bit(manip, ctinfo.dir()) == 0
        {
            // Not NATed this way (the bits never change once confirmed): nothing to look up.
            return Verdict::Accept;
        }
        self.rewrite(pkt, cx, |ct, nfct, hook, l3| {
            ct.nf_nat_packet(nfct, hook, l3)
        })
    }

    /// Runs `f` on the packet's datagram, recording the rewrite when asked.
    fn rewrite(
        &mut self,
        pkt: &mut Packet<'_>,
        cx: &mut HookCtx<'_>,
        f: impl FnOnce(&Conntrack, &Nfct, Hook, &mut [u8]) -> NatVerdict,
    ) -> Verdict {
        let before = cx.trace_nat.then(|| pkt.l3().to_vec());
        let nfct = pkt.nfct;
        match f(cx.ct, &nfct, cx.hook, pkt.l3_mut()) {
            NatVerdict::Untouched => Verdict::Accept,
            NatVerdict::Drop => Verdict::Drop,
            NatVerdict::Rewritten => {
                pkt.mangled = true;
                if let Some(before) = before {
                    let after = pkt.l3().to_vec();
                    pkt.rewrites.push(Rewrite {
                        hook: cx.hook,
                        before,
                        after,
                    });
                }
                Verdict::Accept
            }
        }
    }
}

impl Engine for NatHook {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        let Nfct::Ct { ctinfo, .. } = pkt.nfct else {
            return Verdict::Accept;
        };
        // The common case, kept small: a packet of a confirmed connection not NATed this way.
        if !matches!(ctinfo, CtInfo::New | CtInfo::Related | CtInfo::RelatedReply)
            && pkt.state.ct_valid
            && pkt.state.ct_status
                & Conntrack::nat_status_bit(Manip::of_hook(cx.hook), ctinfo.dir())
                == 0
        {
            return Verdict::Accept;
        }
        self.nf_nat_inet_fn(pkt, cx, ctinfo)
    }

    fn name(&self) -> &str {
        "nf_nat"
    }

    fn nat_hook(&mut self) -> Option<&mut NatHook> {
        Some(self)
    }
}

impl NatHook {
    /// `nf_nat_inet_fn` for a packet that may need a binding or a rewrite.
    #[inline(never)]
    fn nf_nat_inet_fn(
        &mut self,
        pkt: &mut Packet<'_>,
        cx: &mut HookCtx<'_>,
        ctinfo: CtInfo,
    ) -> Verdict {
        if !matches!(ctinfo, CtInfo::New | CtInfo::Related | CtInfo::RelatedReply) && !cx.trace_nat
        {
            // A confirmed connection NATed this way: `nf_nat_packet` alone.
            let nfct = pkt.nfct;
            return match cx.ct.nf_nat_packet(&nfct, cx.hook, pkt.l3_mut()) {
                NatVerdict::Untouched => Verdict::Accept,
                NatVerdict::Drop => Verdict::Drop,
                NatVerdict::Rewritten => {
                    pkt.mangled = true;
                    Verdict::Accept
                }
            };
        }
        let icmp = if cx.nfproto == NFPROTO_IPV6 { 58 } else { 1 };
        if matches!(ctinfo, CtInfo::Related | CtInfo::RelatedReply)
            && pkt.state.has_th
            && pkt.state.l4proto == icmp
        {
            let off = usize::from(pkt.state.thoff.saturating_sub(pkt.state.nhoff));
            return self.rewrite(pkt, cx, |ct, nfct, hook, l3| {
                ct.nf_nat_icmp_reply_translation(nfct, hook, l3, off)
            });
        }
        self.bind_and_rewrite(pkt, cx, ctinfo)
    }
}

/// Identifies a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(u32);

struct Entry {
    id: HookId,
    priority: i32,
    engine: Box<dyn Engine>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.engine.name(), self.priority)
    }
}

/// Registration errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookError {
    /// More than `MAX_HOOK_COUNT` entries on one hook (`-E2BIG`).
    TooManyEntries,
    /// Not `NFPROTO_IPV4` / `NFPROTO_IPV6`.
    UnsupportedFamily,
}

/// How a traversal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// Every entry accepted (`nf_hook_slow` returned 1: `okfn` runs).
    Accept,
    /// An entry dropped the packet (or a queue without listener and without bypass).
    Drop,
    /// An entry took the packet (defrag queue, ...).
    Stolen,
    /// Handed to a userspace queue; `entry` is the index to resume after (`nf_reinject`).
    Queued { num: u16, entry: usize },
    /// Dropped by the routing step before FORWARD (`ip_forward` / `ip6_forward`): the TTL (hop limit) was at
    /// most 1. No hook after PREROUTING ran; the host answers with ICMP time exceeded.
    TtlExceeded,
}

/// A packet the host sent in reaction to another one (see [`crate::reply`]), after its way through OUTPUT and
/// POSTROUTING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The IP datagram, as it left (or as it was when dropped).
    pub data: Vec<u8>,
    /// Where its traversal ended, and how (`Accept` at POSTROUTING: it left).
    pub stopped_at: Hook,
    pub outcome: HookOutcome,
    /// Its NAT rewrites (with [`Hooks::trace_nat`]).
    pub rewrites: Vec<Rewrite>,
}

/// `nf_ct_attach` (`nf_conntrack_attach`), as `nf_send_reset` and `icmp_send` (`icmp_glue_bits`) call it: the
/// host's answer belongs to the flow of the packet it answers, in the other direction (RELATED).
fn attached(nfct: Nfct) -> Option<Nfct> {
    let Nfct::Ct { id, ctinfo } = nfct else {
        return None;
    };
    let ctinfo = if ctinfo.dir() == 0 {
        CtInfo::RelatedReply
    } else {
        CtInfo::Related
    };
    Some(Nfct::Ct { id, ctinfo })
}

/// The source addresses of the ICMP errors the host sends about packets that were not addressed to it when the
/// interface the error leaves by (the one the packet came in by) has no address of its own (the kernel routes
/// the answer and takes the address of the way out, `inet_select_addr`: else the host's own address;
/// `INADDR_DUMMY` when it has none). Errors about packets addressed to the host come from that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpSource {
    pub v4: [u8; 4],
    /// `None`: no IPv6 address, no ICMPv6 errors about forwarded packets (the kernel finds no source).
    pub v6: Option<[u8; 16]>,
}

impl Default for IcmpSource {
    fn default() -> Self {
        IcmpSource {
            v4: reply::INADDR_DUMMY,
            v6: None,
        }
    }
}

/// The hook registry of one network namespace.
#[derive(Debug, Default)]
pub struct Hooks {
    /// `[family][hook]`, family 0 = IPv4, 1 = IPv6.
    entries: [[Vec<Entry>; 5]; 2],
    next_id: u32,
    /// Queue numbers with a listener.
    queues: Vec<u16>,
    /// Packets handed to queues (not recorded when `queue_sink` is on).
    pub queued: Vec<(u16, Hook)>,
    /// Every queue has a listener that consumes what it gets and never reinjects it (`nfc run`'s queue sink):
    /// queued packets are counted by the caller, not recorded here, and their conntrack reference is released.
    pub queue_sink: bool,
    /// Packets the host sent in reaction to the packets walked so far (drained by the caller).
    pub sent: Vec<Sent>,
    /// Where the host's ICMP errors come from.
    pub icmp_source: IcmpSource,
    /// The host's interface addresses (masquerade, redirect, `fib ... type`).
    pub ifaddrs: IfAddrs,
    /// Give each entry the route types of the packet's addresses (`PktState::fib_saddr_type`): on when
    /// a ruleset asks for them (`fib ... type`).
    pub fib_types: bool,
    /// Record each packet's NAT rewrites ([`Packet::rewrites`], [`Sent::rewrites`]).
    pub trace_nat: bool,
    icmp_limit: IcmpRateLimit,
    /// Time spent in hook entries, by kind, while [`HookProfile::timing`] is on (`nfc run pcap --profile`).
    pub profile: Option<HookProfile>,
}

/// Nanoseconds spent in hook entries, by kind, over the packets that were timed.
#[derive(Debug, Default, Clone, Copy)]
pub struct HookProfile {
    /// Time the entries the hooks run next.
    pub timing: bool,
    /// (nanoseconds, entries timed) of defrag, of conntrack (`nf_conntrack_in` and `nf_confirm`), of the
    /// rulesets' chains and of other entries.
    pub defrag: (u64, u64),
    pub conntrack: (u64, u64),
    pub chains: (u64, u64),
    pub other: (u64, u64),
}

impl HookProfile {
    fn add(&mut self, stage: Stage, ns: u64) {
        let k = match stage {
            Stage::Defrag => &mut self.defrag,
            Stage::Conntrack => &mut self.conntrack,
            Stage::Chains => &mut self.chains,
            Stage::Other => &mut self.other,
        };
        k.0 += ns;
        k.1 += 1;
    }

    pub fn merge(&mut self, o: &HookProfile) {
        for (a, b) in [
            (&mut self.defrag, o.defrag),
            (&mut self.conntrack, o.conntrack),
            (&mut self.chains, o.chains),
            (&mut self.other, o.other),
        ] {
            a.0 += b.0;
            a.1 += b.1;
        }
    }
}

/// `nf_hook_entries_grow`'s insertion: before the first entry whose priority is greater or equal.
fn insert_entry(list: &mut Vec<Entry>, e: Entry) {
    let pos = list
        .iter()
        .position(|x| e.priority <= x.priority)
        .unwrap_or(list.len());
    list.insert(pos, e);
}

fn fam(nfproto: u8) -> Result<usize, HookError> {
    match nfproto {
        NFPROTO_IPV4 => Ok(0),
        NFPROTO_IPV6 => Ok(1),
        _ => Err(HookError::UnsupportedFamily),
    }
}

/// Which way a packet goes after PREROUTING (the routing decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// PREROUTING -> INPUT.
    Local,
    /// PREROUTING -> FORWARD -> POSTROUTING.
    Forward,
    /// Dropped by routing after PREROUTING (no route, martian, unjoined multicast).
    Blackhole,
}

impl Hooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers defrag (-400 on PREROUTING/OUTPUT), conntrack (-200 on PREROUTING/OUTPUT) and confirm (INT_MAX on
    /// POSTROUTING and INPUT; INT_MAX - 1 on IPv6 INPUT) for both families, as loading nf_conntrack does.
    pub fn with_conntrack() -> Self {
        let mut h = Self::new();
        for nf in [NFPROTO_IPV4, NFPROTO_IPV6] {
            for hook in [Hook::Prerouting, Hook::Output] {
                let _ = h.register(
                    nf,
                    hook,
                    priority::CONNTRACK_DEFRAG,
                    Box::new(DefragEntry::default()),
                );
                let _ = h.register(nf, hook, priority::CONNTRACK, Box::new(ConntrackIn));
            }
            let _ = h.register(
                nf,
                Hook::Postrouting,
                priority::CONNTRACK_CONFIRM,
                Box::new(ConntrackConfirm),
            );
            let input_prio = if nf == NFPROTO_IPV6 {
                priority::LAST - 1
            } else {
                priority::CONNTRACK_CONFIRM
            };
            let _ = h.register(nf, Hook::Input, input_prio, Box::new(ConntrackConfirm));
        }
        h
    }

    /// `nf_register_net_hook` with `nf_hook_entries_grow`'s ordering.
    pub fn register(
        &mut self,
        nfproto: u8,
        hook: Hook,
        priority: i32,
        engine: Box<dyn Engine>,
    ) -> Result<HookId, HookError> {
        let f = fam(nfproto)?;
        let id = HookId(self.next_id);
        let list = &mut self.entries[f][hook as usize];
        if list.len() >= MAX_HOOK_COUNT {
            return Err(HookError::TooManyEntries);
        }
        self.next_id += 1;
        insert_entry(
            list,
            Entry {
                id,
                priority,
                engine,
            },
        );
        Ok(id)
    }

    /// A nat chain (`nf_nat_ipv4_register_fn` / `nf_nat_ipv6_register_fn`): added to the family's [`NatHook`]
    /// at `hook`, at `priority` among the nat chains there; the family's first nat chain registers the NAT hooks
    /// on PREROUTING, INPUT, OUTPUT and POSTROUTING. (FORWARD has no NAT hook: an entry there is registered as
    /// is.)
    pub fn register_nat(
        &mut self,
        nfproto: u8,
        hook: Hook,
        priority: i32,
        engine: Box<dyn Engine>,
    ) -> Result<HookId, HookError> {
        let f = fam(nfproto)?;
        if hook == Hook::Forward {
            return self.register(nfproto, hook, priority, engine);
        }
        let has = |l: &mut Vec<Entry>| l.iter_mut().any(|e| e.engine.nat_hook().is_some());
        if !has(&mut self.entries[f][hook as usize]) {
            for h in [
                Hook::Prerouting,
                Hook::Input,
                Hook::Output,
                Hook::Postrouting,
            ] {
                let p = match Manip::of_hook(h) {
                    Manip::Dst => priority::NAT_DST,
                    Manip::Src => priority::NAT_SRC,
                };
                self.register(nfproto, h, p, Box::new(NatHook::default()))?;
            }
        }
        let id = HookId(self.next_id);
        let Some(nat) = self.entries[f][hook as usize]
            .iter_mut()
            .find_map(|e| e.engine.nat_hook())
        else {
            return Err(HookError::UnsupportedFamily);
        };
        if nat.entries.len() >= MAX_HOOK_COUNT {
            return Err(HookError::TooManyEntries);
        }
        self.next_id += 1;
        insert_entry(
            &mut nat.entries,
            Entry {
                id,
                priority,
                engine,
            },
        );
        Ok(id)
    }

    /// `nf_unregister_net_hook`: returns the engine.
    pub fn unregister(&mut self, id: HookId) -> Option<Box<dyn Engine>> {
        for fl in self.entries.iter_mut() {
            for list in fl.iter_mut() {
                if let Some(p) = list.iter().position(|e| e.id == id) {
                    return Some(list.remove(p).engine);
                }
                for e in list.iter_mut() {
                    if let Some(nat) = e.engine.nat_hook()
                        && let Some(p) = nat.entries.iter().position(|e| e.id == id)
                    {
                        return Some(nat.entries.remove(p).engine);
                    }
                }
            }
        }
        None
    }

    /// (name, priority) of the entries of one hook, in traversal order.
    pub fn entries(&self, nfproto: u8, hook: Hook) -> Vec<(String, i32)> {
        fam(nfproto)
            .map(|f| {
                self.entries[f][hook as usize]
                    .iter()
                    .map(|e| (e.engine.name().to_string(), e.priority))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Declares a listener on queue `num`.
    pub fn listen_queue(&mut self, num: u16) {
        if !self.queues.contains(&num) {
            self.queues.push(num);
        }
    }

    /// `nf_hook_slow` from entry `start`.
    pub fn run_from(
        &mut self,
        hook: Hook,
        pkt: &mut Packet<'_>,
        ct: &mut Conntrack,
        now: u64,
        start: usize,
    ) -> HookOutcome {
        let nfproto = pkt.state.nfproto;
        let Ok(f) = fam(nfproto) else {
            return HookOutcome::Drop;
        };
        // Disjoint borrows: the entries walked, and what the walk reads beside them.
        let Hooks {
            entries,
            ifaddrs,
            profile,
            fib_types,
            trace_nat,
            queue_sink,
            queues,
            queued,
            ..
        } = self;
        let entries = &mut entries[f][hook as usize][..];
        let mut cx = HookCtx {
            hook,
            nfproto,
            now,
            ct,
            ifaddrs,
            trace_nat: *trace_nat,
        };
        let timing = profile.is_some_and(|p| p.timing);
        let fib_types = *fib_types;
        let mut invoke = |e: &mut Entry, pkt: &mut Packet<'_>, first: bool| {
            let t = timing.then(std::time::Instant::now);
            // The addresses' route types: once a traversal, and again after NAT or a payload write.
            if fib_types && (first || pkt.mangled) {
                cx.ifaddrs.set_fib_types(pkt);
            }
            let v = e.engine.hook(pkt, &mut cx);
            if let (Some(t), Some(p)) = (t, profile.as_mut()) {
                p.add(e.engine.stage(), t.elapsed().as_nanos() as u64);
            }
            v
        };
        for (s, e) in entries.iter_mut().enumerate().skip(start) {
            let mut verdict = invoke(e, pkt, s == start);
            if verdict == Verdict::Accept {
                continue;
            }
            let mut repeats = 0;
            while verdict == Verdict::Repeat {
                repeats += 1;
                if repeats > MAX_REPEAT {
                    return HookOutcome::Drop;
                }
                verdict = invoke(e, pkt, s == start);
            }
            match verdict {
                Verdict::Accept => {}
                Verdict::Drop | Verdict::Repeat => return HookOutcome::Drop,
                Verdict::Stolen => return HookOutcome::Stolen,
                Verdict::Queue { num, bypass } => {
                    if *queue_sink {
                        return HookOutcome::Queued { num, entry: s };
                    }
                    if queues.contains(&num) {
                        queued.push((num, hook));
                        return HookOutcome::Queued { num, entry: s };
                    }
                    if !bypass {
                        return HookOutcome::Drop;
                    }
                }
            }
        }
        HookOutcome::Accept
    }

    /// `nf_hook_slow` over every entry of `hook`.
    pub fn run(
        &mut self,
        hook: Hook,
        pkt: &mut Packet<'_>,
        ct: &mut Conntrack,
        now: u64,
    ) -> HookOutcome {
        self.run_from(hook, pkt, ct, now, 0)
    }

    /// A received packet: PREROUTING, then INPUT, or the routing step ([`ip_forward`]: TTL check and decrement)
    /// and FORWARD + POSTROUTING, per `route`. The packet's conntrack reference is released at the end
    /// (`kfree_skb` / `consume_skb`), after the host's answers (reject, ICMP time exceeded) have gone out. Returns
    /// the hook where the traversal stopped and how.
    pub fn receive(
        &mut self,
        pkt: &mut Packet<'_>,
        route: Route,
        ct: &mut Conntrack,
        now: u64,
    ) -> (Hook, HookOutcome) {
        self.receive_routed(pkt, ct, now, &mut |_| route)
    }

    /// [`Self::receive`] with the routing decision made after PREROUTING (`ip_rcv_finish`), on the packet as NAT
    /// left it: `route` may also set its output device.
    pub fn receive_routed(
        &mut self,
        pkt: &mut Packet<'_>,
        ct: &mut Conntrack,
        now: u64,
        route: &mut dyn FnMut(&mut Packet<'_>) -> Route,
    ) -> (Hook, HookOutcome) {
        let o = self.run(Hook::Prerouting, pkt, ct, now);
        if o != HookOutcome::Accept {
            // A reject's ICMP error comes from the rejected packet's destination when that is the host's.
            let to_host = pkt.reject.is_some() && route(pkt) == Route::Local;
            return self.end(pkt, (Hook::Prerouting, o), ct, now, to_host);
        }
        match route(pkt) {
            Route::Local => self.walk(&path::LOCAL_IN[1..], pkt, ct, now, true),
            Route::Blackhole => self.end(pkt, (Hook::Prerouting, o), ct, now, false),
            Route::Forward => {
                if ip_forward(pkt) == Forward::TimeExceeded {
                    let (ty, code) = if pkt.state.nfproto == NFPROTO_IPV6 {
                        (reply::ICMPV6_TIME_EXCEED, reply::ICMPV6_EXC_HOPLIMIT)
                    } else {
                        (reply::ICMP_TIME_EXCEEDED, reply::ICMP_EXC_TTL)
                    };
                    if let Some(src) = self.icmp_src(pkt, false) {
                        let e = reply::icmp_error(pkt.l3(), ty, code, &src);
                        self.send_icmp(e, attached(pkt.nfct), ct, now);
                    }
                    return self.end(
                        pkt,
                        (Hook::Prerouting, HookOutcome::TtlExceeded),
                        ct,
                        now,
                        false,
                    );
                }
                self.walk(&path::FORWARD[1..], pkt, ct, now, false)
            }
        }
    }

    /// A locally generated packet: OUTPUT then POSTROUTING.
    pub fn send(
        &mut self,
        pkt: &mut Packet<'_>,
        ct: &mut Conntrack,
        now: u64,
    ) -> (Hook, HookOutcome) {
        self.send_routed(pkt, ct, now, &mut |_| {})
    }

    /// [`Self::send`] with `reroute` called between OUTPUT and POSTROUTING (`ip_route_me_harder` after a DNAT in
    /// OUTPUT: it may set the output device POSTROUTING sees).
    pub fn send_routed(
        &mut self,
        pkt: &mut Packet<'_>,
        ct: &mut Conntrack,
        now: u64,
        reroute: &mut dyn FnMut(&mut Packet<'_>),
    ) -> (Hook, HookOutcome) {
        let o = self.run(Hook::Output, pkt, ct, now);
        if o != HookOutcome::Accept {
            return self.end(pkt, (Hook::Output, o), ct, now, false);
        }
        reroute(pkt);
        self.walk(&path::LOCAL_OUT[1..], pkt, ct, now, false)
    }

    /// Runs `path` until a hook does not accept, then [`Self::end`]s the packet; `to_host`: it was addressed to
    /// the host.
    fn walk(
        &mut self,
        path: &[Hook],
        pkt: &mut Packet<'_>,
        ct: &mut Conntrack,
        now: u64,
        to_host: bool,
    ) -> (Hook, HookOutcome) {
        let mut last = (Hook::Prerouting, HookOutcome::Accept);
        for &h in path {
            let o = self.run(h, pkt, ct, now);
            last = (h, o);
            if o != HookOutcome::Accept {
                break;
            }
        }
        self.end(pkt, last, ct, now, to_host)
    }

    /// The end of a traversal: a reject's answer goes out (`nf_send_reset` also moves a TCP entry to CLOSE,
    /// `nf_ct_set_closing`), then the packet releases its conntrack reference (queued packets keep it until
    /// reinjected).
    fn end(
        &mut self,
        pkt: &mut Packet<'_>,
        last: (Hook, HookOutcome),
        ct: &mut Conntrack,
        now: u64,
        to_host: bool,
    ) -> (Hook, HookOutcome) {
        if let Some(with) = pkt.reject.take()
            && !pkt.generated
        {
            match with {
                RejectWith::TcpReset => {
                    if let Some(r) = reply::tcp_reset(pkt.l3()) {
                        ct.set_closing(&pkt.nfct, now);
                        self.send_generated(r, attached(pkt.nfct), ct, now);
                    }
                }
                RejectWith::Unreach { .. } => {
                    if let Some(src) = self.icmp_src(pkt, to_host) {
                        let e = reply::reject(pkt.l3(), with, &src);
                        self.send_icmp(e, attached(pkt.nfct), ct, now);
                    }
                }
            }
        }
        if self.queue_sink || !matches!(last.1, HookOutcome::Queued { .. }) {
            ct.release(&mut pkt.nfct);
        }
        last
    }

    /// The source of an ICMP error about `pkt` (see [`IcmpSource`]); `None` when the host has none.
    fn icmp_src(&self, pkt: &Packet<'_>, to_host: bool) -> Option<Vec<u8>> {
        let l3 = pkt.l3();
        let v6 = pkt.state.nfproto == NFPROTO_IPV6;
        let d = if v6 { l3.get(24..40)? } else { l3.get(16..20)? };
        let s = if v6 { l3.get(8..24)? } else { l3.get(12..16)? };
        let mut src = [0u8; 16];
        src[..s.len()].copy_from_slice(s);
        if to_host {
            Some(d.to_vec())
        } else if let Some(a) = self
            .ifaddrs
            .device_addr(pkt.state.iif, pkt.state.nfproto, &src)
        {
            // icmp_send routes the error back to the source and takes the address of the way out
            // (`inet_select_addr`): the interface the packet came in by, when that has one.
            Some(a[..s.len()].to_vec())
        } else if v6 {
            self.icmp_source.v6.map(|a| a.to_vec())
        } else {
            Some(self.icmp_source.v4.to_vec())
        }
    }

    /// Sends an ICMP error the per-destination rate limit lets through.
    fn send_icmp(
        &mut self,
        e: Option<Vec<u8>>,
        attach: Option<Nfct>,
        ct: &mut Conntrack,
        now: u64,
    ) {
        // IPv4 errors only (`icmpv4_xrlim_allow`); the destination is at bytes 16..20.
        if let Some(e) = e
            && (e.first().is_some_and(|b| b >> 4 == 6)
                || self.icmp_limit.allow(e.get(16..20).unwrap_or(&[]), now))
        {
            self.send_generated(e, attach, ct, now);
        }
    }

    /// `ip_local_out` of a packet the host built: OUTPUT, then POSTROUTING, recorded in
    /// [`Self::sent`]. `attach` is the conntrack entry it belongs to ([`attached`]; conntrack leaves such a packet
    /// alone); the reference stays the answered packet's.
    fn send_generated(
        &mut self,
        data: Vec<u8>,
        attach: Option<Nfct>,
        ct: &mut Conntrack,
        now: u64,
    ) {
        let Ok(mut p) = Packet::from_frame(linktype::RAW, &data, now) else {
            return;
        };
        p.generated = true;
        let attached = attach.is_some();
        if let Some(n) = attach {
            p.nfct = n;
            ct.fill_pkt(&p.nfct, now, &mut p.state);
        }
        let mut last = (Hook::Output, HookOutcome::Accept);
        for h in [Hook::Output, Hook::Postrouting] {
            let o = self.run(h, &mut p, ct, now);
            last = (h, o);
            if o != HookOutcome::Accept {
                break;
            }
        }
        if attached {
            p.nfct = Nfct::None;
        } else {
            ct.release(&mut p.nfct);
        }
        self.sent.push(Sent {
            data: p.l3().to_vec(),
            stopped_at: last.0,
            outcome: last.1,
            rewrites: std::mem::take(&mut p.rewrites),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct::Settings;
    use crate::wire::build;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Test entry: records its name into a shared log and returns scripted verdicts.
    struct Probe {
        name: String,
        log: Rc<RefCell<Vec<String>>>,
        script: Vec<Verdict>,
    }

    impl Engine for Probe {
        fn hook(&mut self, _pkt: &mut Packet<'_>, _cx: &mut HookCtx<'_>) -> Verdict {
            self.log.borrow_mut().push(self.name.clone());
            if self.script.is_empty() {
                Verdict::Accept
            } else {
                self.script.remove(0)
            }
        }
        fn name(&self) -> &str {
            &self.name
        }
    }

    fn probe(name: &str, log: &Rc<RefCell<Vec<String>>>, script: Vec<Verdict>) -> Box<dyn Engine> {
        Box::new(Probe {
            name: name.into(),
            log: log.clone(),
            script,
        })
    }

    fn pkt() -> Packet<'static> {
        let d = build::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            b"",
        );
        let pi = wire::parse_frame(linktype::RAW, &d).unwrap();
        let mut state = PktState::default();
        pi.fill(&mut state);
        Packet {
            data: Cow::Owned(d),
            state,
            nfct: Nfct::None,
            reject: None,
            generated: false,
            rewrites: Vec::new(),
            mangled: false,
        }
    }

    #[test]
    fn addr_types_follow_the_host_addresses() {
        use nfr_proto::catalog::{RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST, RTN_UNICAST};
        let v4 = |a: [u8; 4]| {
            let mut x = [0u8; 16];
            x[..4].copy_from_slice(&a);
            x
        };
        let ifa = IfAddrs {
            addrs: vec![IfAddr {
                ifindex: 2,
                addr: v4([192, 168, 0, 10]),
                nfproto: NFPROTO_IPV4,
                prefix_len: 24,
            }],
            host: vec![(NFPROTO_IPV4, v4([10, 244, 0, 1]))],
        };
        let t = |a| ifa.addr_type(NFPROTO_IPV4, &v4(a));
        assert_eq!(t([192, 168, 0, 10]), RTN_LOCAL);
        assert_eq!(t([10, 244, 0, 1]), RTN_LOCAL);
        assert_eq!(t([127, 0, 0, 1]), RTN_LOCAL);
        assert_eq!(t([192, 168, 0, 255]), RTN_BROADCAST);
        assert_eq!(t([255, 255, 255, 255]), RTN_BROADCAST);
        assert_eq!(t([224, 0, 0, 1]), RTN_MULTICAST);
        assert_eq!(t([192, 168, 0, 11]), RTN_UNICAST);
        assert_eq!(t([10, 244, 0, 255]), RTN_UNICAST);
        let mut p = pkt();
        p.state.fib_daddr_type = 0;
        ifa.set_fib_types(&mut p);
        assert_ne!(p.state.fib_daddr_type, 0);
    }

    #[test]
    fn entries_grow_ordering() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut h = Hooks::new();
        for (n, p) in [
            ("filter", 0),
            ("raw", -300),
            ("mangle", -150),
            ("filter2", 0),
            ("last", i32::MAX),
        ] {
            h.register(2, Hook::Input, p, probe(n, &log, vec![]))
                .unwrap();
        }
        let names: Vec<String> = h.entries(2, Hook::Input).into_iter().map(|e| e.0).collect();
        // Equal priority: the later registration is inserted before the earlier one (kernel rule).
        assert_eq!(names, ["raw", "mangle", "filter2", "filter", "last"]);
        let mut ct = Conntrack::new(Settings::default());
        assert_eq!(
            h.run(Hook::Input, &mut pkt(), &mut ct, 0),
            HookOutcome::Accept
        );
        assert_eq!(
            *log.borrow(),
            ["raw", "mangle", "filter2", "filter", "last"]
        );
        assert_eq!(
            h.register(3, Hook::Input, 0, probe("x", &log, vec![])),
            Err(HookError::UnsupportedFamily)
        );
    }

    #[test]
    fn unregister_and_limit() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut h = Hooks::new();
        let a = h
            .register(10, Hook::Forward, 5, probe("a", &log, vec![]))
            .unwrap();
        h.register(10, Hook::Forward, 1, probe("b", &log, vec![]))
            .unwrap();
        assert!(h.unregister(a).is_some());
        assert!(h.unregister(a).is_none());
        assert_eq!(h.entries(10, Hook::Forward), vec![("b".to_string(), 1)]);
        for i in 1..MAX_HOOK_COUNT {
            h.register(10, Hook::Forward, i as i32, probe("n", &log, vec![]))
                .unwrap();
        }
        assert_eq!(
            h.register(10, Hook::Forward, 0, probe("n", &log, vec![])),
            Err(HookError::TooManyEntries)
        );
    }

    #[test]
    fn slow_path_verdicts() {
        let mut ct = Conntrack::new(Settings::default());
        let cases: Vec<(Vec<Verdict>, HookOutcome, Vec<&str>)> = vec![
            (vec![Verdict::Drop], HookOutcome::Drop, vec!["a"]),
            (vec![Verdict::Stolen], HookOutcome::Stolen, vec!["a"]),
            (
                vec![Verdict::Repeat, Verdict::Repeat, Verdict::Accept],
                HookOutcome::Accept,
                vec!["a", "a", "a", "b"],
            ),
            (
                vec![Verdict::Repeat; 40],
                HookOutcome::Drop,
                vec!["a"; MAX_REPEAT as usize + 1],
            ),
            (
                vec![Verdict::Queue {
                    num: 3,
                    bypass: true,
                }],
                HookOutcome::Accept,
                vec!["a", "b"],
            ),
            (
                vec![Verdict::Queue {
                    num: 3,
                    bypass: false,
                }],
                HookOutcome::Drop,
                vec!["a"],
            ),
            (
                vec![Verdict::Queue {
                    num: 7,
                    bypass: false,
                }],
                HookOutcome::Queued { num: 7, entry: 0 },
                vec!["a"],
            ),
        ];
        for (script, outcome, trace) in cases {
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut h = Hooks::new();
            h.listen_queue(7);
            h.register(2, Hook::Prerouting, 0, probe("a", &log, script.clone()))
                .unwrap();
            h.register(2, Hook::Prerouting, 10, probe("b", &log, vec![]))
                .unwrap();
            assert_eq!(
                h.run(Hook::Prerouting, &mut pkt(), &mut ct, 0),
                outcome,
                "{script:?}"
            );
            assert_eq!(*log.borrow(), trace, "{script:?}");
        }
        // Resume after a queue (nf_reinject with ACCEPT continues at the next entry).
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut h = Hooks::new();
        h.register(2, Hook::Prerouting, 0, probe("a", &log, vec![]))
            .unwrap();
        h.register(2, Hook::Prerouting, 10, probe("b", &log, vec![]))
            .unwrap();
        assert_eq!(
            h.run_from(Hook::Prerouting, &mut pkt(), &mut ct, 0, 1),
            HookOutcome::Accept
        );
        assert_eq!(*log.borrow(), ["b"]);
    }

    #[test]
    fn conntrack_path_local_and_forward() {
        let mut ct = Conntrack::new(Settings {
            checksum: false,
            ..Settings::default()
        });
        let mut h = Hooks::with_conntrack();
        let names: Vec<(String, i32)> = h.entries(2, Hook::Prerouting);
        assert_eq!(
            names,
            vec![("nf_defrag".into(), -400), ("nf_conntrack_in".into(), -200)]
        );
        assert_eq!(
            h.entries(10, Hook::Input),
            vec![("nf_confirm".to_string(), i32::MAX - 1)]
        );
        // A filter-like entry at 0 that records the ct state it sees.
        struct Seen(Rc<RefCell<Vec<u32>>>);
        impl Engine for Seen {
            fn hook(&mut self, p: &mut Packet<'_>, _: &mut HookCtx<'_>) -> Verdict {
                self.0.borrow_mut().push(p.state.ct_state);
                Verdict::Accept
            }
        }
        let seen = Rc::new(RefCell::new(Vec::new()));
        h.register(2, Hook::Input, 0, Box::new(Seen(seen.clone())))
            .unwrap();
        let q = build::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            b"",
        );
        let r = build::udp(
            "10.0.0.2".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            2,
            1,
            b"",
        );
        let mut p = Packet::from_frame(linktype::RAW, &q, 0).unwrap();
        assert_eq!(
            h.receive(&mut p, Route::Local, &mut ct, 0),
            (Hook::Input, HookOutcome::Accept)
        );
        assert_eq!(p.nfct, Nfct::None, "reference released");
        let mut p = Packet::from_frame(linktype::RAW, &r, 0).unwrap();
        h.receive(&mut p, Route::Forward, &mut ct, 0);
        assert_eq!(*seen.borrow(), vec![nfr_vm::pkt::ct_state::NEW]);
        assert_eq!(ct.len(0), 1);
        assert!(ct.listing(0).contains("udp      17 30 "));
        // Blackholed new flow: never confirmed, nothing left behind.
        let o = build::udp(
            "10.0.0.7".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            b"",
        );
        let mut p = Packet::from_frame(linktype::RAW, &o, 0).unwrap();
        h.receive(&mut p, Route::Blackhole, &mut ct, 0);
        assert_eq!((ct.len(0), ct.count()), (1, 1));
    }

    #[test]
    fn defrag_entry_reassembles_before_conntrack() {
        let mut ct = Conntrack::new(Settings {
            checksum: false,
            ..Settings::default()
        });
        let mut h = Hooks::with_conntrack();
        let full = build::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            &[7u8; 40],
        );
        // Split the 48-byte UDP payload area into 24 + 24.
        let mk = |off: usize, mf: bool, part: &[u8]| {
            let mut h = full[..20].to_vec();
            let tot = (20 + part.len()) as u16;
            h[2..4].copy_from_slice(&tot.to_be_bytes());
            let fo = (off / 8) as u16 | if mf { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&fo.to_be_bytes());
            h.extend_from_slice(part);
            h
        };
        let f1 = mk(0, true, &full[20..44]);
        let f2 = mk(24, false, &full[44..]);
        let mut p1 = Packet::from_frame(linktype::RAW, &f1, 0).unwrap();
        assert_eq!(
            h.receive(&mut p1, Route::Local, &mut ct, 0),
            (Hook::Prerouting, HookOutcome::Stolen)
        );
        let mut p2 = Packet::from_frame(linktype::RAW, &f2, 0).unwrap();
        assert_eq!(
            h.receive(&mut p2, Route::Local, &mut ct, 0),
            (Hook::Input, HookOutcome::Accept)
        );
        assert_eq!(p2.state.len, 68);
        assert!(ct.listing(0).contains("sport=1 dport=2 [UNREPLIED]"));
    }

    /// A nat chain binding every new connection to one mapping (`dnat to` / `snat to`).
    struct Bind(crate::ct::nat::NatRange);

    impl Engine for Bind {
        fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
            let m = Manip::of_hook(cx.hook);
            let _ = cx.ct.nf_nat_setup_info(&pkt.nfct, &self.0, m, cx.now);
            Verdict::Accept
        }
    }

    fn a16(s: &str) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&s.parse::<std::net::Ipv4Addr>().unwrap().octets());
        a
    }

    fn csum_ok(p: &[u8]) -> bool {
        let ihl = usize::from(p[0] & 15) * 4;
        let init = if p[9] == 1 {
            0
        } else {
            build::pseudo(&p[12..16], &p[16..20], p[9], p.len() - ihl)
        };
        crate::wire::checksum(&p[..ihl], 0) == 0 && crate::wire::checksum(&p[ihl..], init) == 0
    }

    /// DNAT of a port forward: the first packet is rewritten before the routing decision (so it is forwarded),
    /// the answer gets the router's address and port back, and an ICMP error about the flow from the outside
    /// has its quoted datagram and outer destination rewritten; checksums stay right.
    #[test]
    fn nat_hook_rewrites_both_directions_and_icmp_errors() {
        use crate::ct::nat::NatRange;
        use crate::wire::checksum;
        let mut h = Hooks::with_conntrack();
        h.trace_nat = true;
        let to = a16("192.168.1.10");
        let dnat = NatRange {
            flags: 0,
            addr: Some((to, to)),
            proto: Some((8080, 8080)),
        };
        h.register_nat(NFPROTO_IPV4, Hook::Prerouting, -100, Box::new(Bind(dnat)))
            .unwrap();
        assert_eq!(
            h.entries(NFPROTO_IPV4, Hook::Postrouting).len(),
            2,
            "NAT hooks on all four"
        );
        let mut ct = Conntrack::new(Settings::default());
        let (c, r, l) = ("203.0.113.9", "198.51.100.1", "192.168.1.10");
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let route = |p: &mut Packet<'_>| {
            if p.l3()[16..20] == [198, 51, 100, 1] {
                Route::Local
            } else {
                Route::Forward
            }
        };
        let syn = build::tcp(ip(c), ip(r), 51001, 80, 1, 0, 0x02, 100, &[], &[]);
        let mut p = Packet::from_frame(linktype::RAW, &syn, 0).unwrap();
        assert_eq!(
            h.receive_routed(&mut p, &mut ct, 0, &mut |p| route(p)),
            (Hook::Postrouting, HookOutcome::Accept)
        );
        let want = build::tcp(ip(c), ip(l), 51001, 8080, 1, 0, 0x02, 100, &[], &[]);
        assert_eq!(&p.l3()[12..], &want[12..], "rewritten (TTL aside)");
        assert!(csum_ok(p.l3()));
        assert_eq!(p.rewrites.len(), 1);
        assert_eq!(p.rewrites[0].hook, Hook::Prerouting);
        let synack = build::tcp(ip(l), ip(c), 8080, 51001, 9, 2, 0x12, 100, &[], &[]);
        let mut p = Packet::from_frame(linktype::RAW, &synack, 0).unwrap();
        h.receive_routed(&mut p, &mut ct, 0, &mut |p| route(p));
        let want = build::tcp(ip(r), ip(c), 80, 51001, 9, 2, 0x12, 100, &[], &[]);
        assert_eq!(&p.l3()[12..], &want[12..]);
        assert!(csum_ok(p.l3()));
        assert_eq!(p.rewrites[0].hook, Hook::Postrouting);
        // A router on the way to the client says the answer could not be delivered.
        let quoted = &want[..28];
        let err = build::icmp(ip("172.16.0.1"), ip(r), 3, 1, [0; 4], quoted);
        let mut p = Packet::from_frame(linktype::RAW, &err, 0).unwrap();
        h.receive_routed(&mut p, &mut ct, 0, &mut |p| route(p));
        let q = p.l3();
        assert_eq!(
            (&q[12..16], &q[16..20]),
            (&[172, 16, 0, 1][..], &[192, 168, 1, 10][..])
        );
        assert_eq!(&q[28 + 12..28 + 16], &[192, 168, 1, 10], "quoted source");
        assert_eq!(be(&q[48..50]), 8080, "quoted source port");
        assert!(csum_ok(q));
        assert_eq!(checksum(&q[28..48], 0), 0, "quoted header checksum");
        assert_eq!(ct.len(0), 1);
    }

    /// Masquerade takes the output interface's address in the destination's subnet, else its first, else the
    /// host's; redirect the input interface's first (IPv6: of the destination's scope), 127.0.0.1 / ::1 for
    /// the host's own packets; none when there is none.
    #[test]
    fn interface_addresses_for_masquerade_and_redirect() {
        let v4 = |s: &str| a16(s);
        let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        let at = |ifindex, addr, nfproto, prefix_len| IfAddr {
            ifindex,
            addr,
            nfproto,
            prefix_len,
        };
        let mut t = IfAddrs {
            addrs: vec![
                at(2, v4("198.51.100.1"), NFPROTO_IPV4, 24),
                at(2, v4("203.0.113.1"), NFPROTO_IPV4, 24),
                at(3, v6("fe80::1"), NFPROTO_IPV6, 64),
                at(3, v6("2001:db8::1"), NFPROTO_IPV6, 64),
            ],
            host: vec![],
        };
        let m = |t: &IfAddrs, oif, nf, d| t.masquerade_source(oif, nf, &d);
        assert_eq!(
            m(&t, 2, NFPROTO_IPV4, v4("203.0.113.77")),
            Some(v4("203.0.113.1"))
        );
        assert_eq!(
            m(&t, 2, NFPROTO_IPV4, v4("8.8.8.8")),
            Some(v4("198.51.100.1"))
        );
        assert_eq!(
            m(&t, 4, NFPROTO_IPV4, v4("8.8.8.8")),
            Some(v4("198.51.100.1")),
            "another interface's"
        );
        t.host.push((NFPROTO_IPV4, v4("192.0.0.8")));
        assert_eq!(
            m(&t, 4, NFPROTO_IPV4, v4("8.8.8.8")),
            Some(v4("192.0.0.8")),
            "the host's first"
        );
        let r = |hook, iif, nf, d| t.redirect_target(hook, iif, nf, &d);
        assert_eq!(
            r(Hook::Prerouting, 2, NFPROTO_IPV4, v4("9.9.9.9")),
            Some(v4("198.51.100.1"))
        );
        assert_eq!(
            r(Hook::Output, 0, NFPROTO_IPV4, v4("9.9.9.9")),
            Some(v4("127.0.0.1"))
        );
        assert_eq!(r(Hook::Prerouting, 5, NFPROTO_IPV4, v4("9.9.9.9")), None);
        assert_eq!(
            r(Hook::Prerouting, 3, NFPROTO_IPV6, v6("2001:db8:5::5")),
            Some(v6("2001:db8::1"))
        );
        assert_eq!(
            r(Hook::Prerouting, 3, NFPROTO_IPV6, v6("fe80::9")),
            Some(v6("fe80::1"))
        );
        assert_eq!(
            r(Hook::Output, 0, NFPROTO_IPV6, v6("fe80::9")),
            Some(v6("::1"))
        );
    }

    fn be(b: &[u8]) -> u16 {
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Rejects every packet it sees with `with`.
    struct Rejector(RejectWith);

    impl Engine for Rejector {
        fn hook(&mut self, pkt: &mut Packet<'_>, _cx: &mut HookCtx<'_>) -> Verdict {
            pkt.reject = Some(self.0);
            Verdict::Drop
        }
    }

    #[test]
    fn ipv6_hop_limit_and_reset_answers_go_through_output() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut h = Hooks::with_conntrack();
        h.register(NFPROTO_IPV6, Hook::Output, 0, probe("out", &log, vec![]))
            .unwrap();
        let mut ct = Conntrack::new(Settings::default());
        let c: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let s: std::net::IpAddr = "2001:db8:1::5".parse().unwrap();
        let mut d = build::udp(c, s, 1, 53, b"q");
        d[7] = 1;
        // No IPv6 address: no source for the time exceeded, nothing is sent.
        let mut p = Packet::from_frame(linktype::RAW, &d, 0).unwrap();
        assert_eq!(
            h.receive(&mut p, Route::Forward, &mut ct, 0),
            (Hook::Prerouting, HookOutcome::TtlExceeded)
        );
        assert!(h.sent.is_empty());
        let host: std::net::Ipv6Addr = "2001:db8::fe".parse().unwrap();
        h.icmp_source.v6 = Some(host.octets());
        let mut p = Packet::from_frame(linktype::RAW, &d, 0).unwrap();
        h.receive(&mut p, Route::Forward, &mut ct, 0);
        let sent = std::mem::take(&mut h.sent);
        assert_eq!(sent.len(), 1);
        let e = &sent[0];
        assert_eq!(
            (e.stopped_at, e.outcome),
            (Hook::Postrouting, HookOutcome::Accept)
        );
        assert_eq!(&e.data[8..24], &host.octets());
        assert_eq!((e.data[6], e.data[40]), (58, reply::ICMPV6_TIME_EXCEED));
        assert_eq!(*log.borrow(), ["out"]);
        assert_eq!(ct.len(0), 0, "the unconfirmed entry went with the packet");
        // ICMPv6 errors have no per-destination limit here (IPv4's lets 6 through at once).
        for _ in 0..8 {
            let mut p = Packet::from_frame(linktype::RAW, &d, 0).unwrap();
            h.receive(&mut p, Route::Forward, &mut ct, 0);
        }
        assert_eq!(std::mem::take(&mut h.sent).len(), 8);
        let mut d4 = build::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            b"",
        );
        d4[8] = 1;
        for _ in 0..8 {
            let mut p = Packet::from_frame(linktype::RAW, &d4, 0).unwrap();
            h.receive(&mut p, Route::Forward, &mut ct, 0);
        }
        assert_eq!(std::mem::take(&mut h.sent).len(), 6);
        // A reset answers a SYN rejected in FORWARD, from the SYN's destination.
        h.register(
            NFPROTO_IPV6,
            Hook::Forward,
            0,
            Box::new(Rejector(RejectWith::TcpReset)),
        )
        .unwrap();
        let syn = build::tcp(c, s, 4000, 80, 7, 0, 0x02, 100, &[], &[]);
        let mut p = Packet::from_frame(linktype::RAW, &syn, 0).unwrap();
        assert_eq!(
            h.receive(&mut p, Route::Forward, &mut ct, 0),
            (Hook::Forward, HookOutcome::Drop)
        );
        let rst = &h.sent[0].data;
        assert_eq!((&rst[8..24], &rst[24..40]), (&syn[24..40], &syn[8..24]));
        assert_eq!((rst[6], rst[7], rst[40 + 13]), (6, 64, 0x14));
    }
}
