//! `ipt_do_table` over a verified blob: per-hook start at `hook_entry`, `ip_packet_match`
//! (addresses/masks, interfaces with masks, protocol, fragment flag), the supported matches
//! evaluated natively (tcp, udp, icmp, conntrack, multiport, mark, comment, limit), standard
//! verdicts, jumps with a jump stack bounded by `stacksize`, RETURN (empty stack → the hook's
//! underflow), goto (`IPT_F_GOTO`: no push), per-entry packet/byte counters, and the targets:
//! MARK/CONNMARK/LOG/CT continue (XT_CONTINUE), REJECT drops (recorded), NAT targets record the
//! mapping and accept, ERROR drops.
//!
//! Input: the packet bytes plus vm's `PktState` (network header at `nhoff`; devices, mark and
//! conntrack fields). Output: the netfilter `Verdict` plus side effects (new skb mark, ct mark,
//! log/reject/nat records) and the trail of entries whose counters went up.
//!
//! Like the kernel, the executor reads the IPv4 header itself (addresses, protocol, fragment
//! offset, `ihl` for the transport header); `PktState` supplies devices, `len` (skb->len for
//! byte counters; 0 = bytes after `nhoff`), mark, timestamp and the conntrack view (`ct_valid`,
//! `ct_state`, `ct_status`, `ct_direction`, tuples, expiration). It does not do the work of the
//! targets: REJECT sends nothing, NAT rewrites nothing (the caller applies the recorded
//! mapping), LOG logs nothing, CT only changes what later matches in the same traversal see.
//! `limit` counts jiffies (HZ 250) from `tstamp_ns`, its bucket full at the first packet the rule
//! sees (the kernel fills it at table load). `recent` keeps xt_recent's lists per table
//! (`crate::recent`), by packet time in jiffies too. Checked against the kernel's counters and verdicts
//! on the OUTPUT path (160 mixed packets, ClassBench acl1_1K with 9361 trace packets), on the
//! ingress path across raw/mangle/filter, and for conntrack/state matches on a scripted flow.
#![forbid(unsafe_code)]

use crate::layout::*;
use crate::model::{Match, NatKind, Target};
use crate::verify::{
    CREDITS_PER_JIFFY, HZ, VEntry, VTarget, VerifiedTable, VerifyError, user2credits, verify,
};
use nfr_vm::pkt::{IP_CT_DIR_ORIGINAL, ct_state};
use nfr_vm::{Hook, PktState, Verdict};
use std::fmt;

/// A side effect of a traversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// LOG target (prefix, level, flags).
    Log {
        prefix: Vec<u8>,
        level: u8,
        logflags: u8,
    },
    /// REJECT target (`IPT_ICMP_*` / `IPT_TCP_RESET`); the packet is dropped.
    Reject { with: u32 },
    /// A NAT target's mapping (SNAT/DNAT/MASQUERADE/REDIRECT); the packet is accepted.
    Nat { kind: NatKind, range: NatRange },
    /// CT --notrack / NOTRACK: the packet becomes untracked.
    Notrack,
    /// CT with a template (helper name, zone).
    CtTemplate { helper: Vec<u8>, zone: u16 },
    /// An ERROR target was reached (a jump to a chain head, or a table without policy).
    ErrorTarget { name: Vec<u8> },
    /// A match asked to drop the packet (hotdrop: truncated transport header, TCP offset 1).
    Hotdrop,
}

/// The result of `do_table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// `skb->mark` after the traversal.
    pub mark: u32,
    /// `ct->mark` after the traversal (unchanged when there is no conntrack entry).
    pub ct_mark: u32,
    pub effects: Vec<Effect>,
    /// Offsets of the entries whose counters were incremented, in order.
    pub trail: Vec<u32>,
}

/// Why a table cannot be executed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecError {
    /// The blob failed verification.
    Verify(VerifyError),
    /// An entry uses an extension the executor does not evaluate (offset, name).
    Unsupported { offset: u32, name: String },
    /// The table has no entry point for this hook.
    HookNotValid(Hook),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Verify(e) => write!(f, "{e}"),
            ExecError::Unsupported { offset, name } => write!(
                f,
                "entry at {offset}: `{name}` is not supported by the executor"
            ),
            ExecError::HookNotValid(h) => write!(f, "table has no {h:?} hook"),
        }
    }
}
impl std::error::Error for ExecError {}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MatchPriv {
    /// `-m statistic --mode nth`: `master->count`; `-m recent`: the index of its list.
    count: u32,
    prev: u64,
    credit: u32,
    credit_cap: u32,
    cost: u32,
    init: bool,
}

/// A verified table ready to run, with its counters and `limit` state.
#[derive(Debug, Clone)]
pub struct ExecTable {
    table: VerifiedTable,
    counters: Vec<Counters>,
    /// Per entry, per match: the kernel-private state of `limit` and `statistic`.
    limits: Vec<Vec<MatchPriv>>,
    /// The generator of `-m statistic --mode random` (`get_random_u32`).
    pub prandom: nfr_vm::Prandom,
    /// `-m recent`'s lists.
    pub recent: crate::recent::Recent,
    /// Index of each entry's successor (`ipt_next_entry`).
    next: Vec<Option<usize>>,
    /// Index of each standard target's jump destination (verdict ≥ 0).
    jump: Vec<Option<usize>>,
    /// Safety net: maximum entries visited per packet (a verified table never needs it).
    pub max_steps: usize,
}

/// Per-entry counters.
pub use crate::model::Counters;

impl ExecTable {
    /// Verify a blob and prepare it.
    pub fn from_blob(blob: &[u8]) -> Result<Self, ExecError> {
        Self::new(verify(blob).map_err(ExecError::Verify)?)
    }

    /// Prepare a verified table; fails on extensions the executor cannot evaluate.
    pub fn new(table: VerifiedTable) -> Result<Self, ExecError> {
        for e in &table.entries {
            for m in &e.matches {
                if let Match::Addrtype(at) = m
                    && at.flags & (XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT) != 0
                {
                    return Err(ExecError::Unsupported {
                        offset: e.offset,
                        name: "addrtype --limit-iface-in/out".into(),
                    });
                }
                if let Match::Other { name, .. } = m {
                    return Err(ExecError::Unsupported {
                        offset: e.offset,
                        name: name.clone(),
                    });
                }
            }
            if let VTarget::Ext(Target::Other { name, .. }) = &e.target
                && name != "NOTRACK"
            {
                return Err(ExecError::Unsupported {
                    offset: e.offset,
                    name: name.clone(),
                });
            }
        }
        let counters = vec![Counters::default(); table.entries.len()];
        let mut recent = crate::recent::Recent::default();
        let limits = table
            .entries
            .iter()
            .map(|e| {
                e.matches
                    .iter()
                    .map(|m| MatchPriv {
                        // statistic_mt_check: master->count = u.nth.count; recent_mt_check
                        count: match m {
                            Match::Statistic(st) => st.count,
                            Match::Recent(r) => recent.check(r),
                            _ => 0,
                        },
                        ..MatchPriv::default()
                    })
                    .collect()
            })
            .collect();
        let next = table
            .entries
            .iter()
            .map(|e| table.index_of(e.offset + e.next_offset))
            .collect();
        let jump = table
            .entries
            .iter()
            .map(|e| match e.target {
                VTarget::Standard(v) if v >= 0 => table.index_of(v as u32),
                _ => None,
            })
            .collect();
        Ok(ExecTable {
            table,
            counters,
            limits,
            prandom: nfr_vm::Prandom::default(),
            recent,
            next,
            jump,
            max_steps: 1 << 20,
        })
    }

    /// The verified table.
    pub fn table(&self) -> &VerifiedTable {
        &self.table
    }

    /// Counters per entry (blob order).
    pub fn counters(&self) -> &[Counters] {
        &self.counters
    }

    /// Counters of the entry at `offset`.
    pub fn counters_at(&self, offset: u32) -> Option<Counters> {
        self.table
            .index_of(offset)
            .and_then(|i| self.counters.get(i).copied())
    }

    /// Run one packet through the table at `hook` (`ipt_do_table`).
    pub fn do_table(
        &mut self,
        hook: Hook,
        pkt: &[u8],
        st: &PktState,
    ) -> Result<Outcome, ExecError> {
        let h = hook as usize;
        if self.table.valid_hooks & (1 << h) == 0 {
            return Err(ExecError::HookNotValid(hook));
        }
        let mut out = Outcome {
            verdict: Verdict::Drop,
            mark: st.mark,
            ct_mark: st.ct_mark,
            effects: Vec::new(),
            trail: Vec::new(),
        };
        let nh = st.nhoff as usize;
        let Some(iph) = IpView::new(pkt, nh) else {
            out.effects.push(Effect::Hotdrop);
            return Ok(out);
        };
        let skb_len = if st.len != 0 {
            st.len as u64
        } else {
            pkt.len().saturating_sub(nh) as u64
        };
        let mut ctx = Ctx {
            pkt,
            st,
            ip: iph,
            mark: st.mark,
            ct_mark: st.ct_mark,
            untracked: false,
            hotdrop: false,
        };
        let mut stack: Vec<usize> = Vec::new();
        let stacksize = self.table.stacksize as usize;
        let mut e = match self.table.index_of(self.table.hook_entry[h]) {
            Some(i) => i,
            None => return Ok(out),
        };
        let mut steps = 0usize;
        let verdict = loop {
            steps += 1;
            if steps > self.max_steps {
                break Verdict::Drop;
            }
            let Some(ent) = self.table.entries.get(e) else {
                break Verdict::Drop;
            };
            let next = self.next.get(e).copied().flatten();
            let mut matched = ip_packet_match(&ctx, &ent.ip);
            if matched {
                for (mi, m) in ent.matches.iter().enumerate() {
                    let lp = self.limits.get_mut(e).and_then(|v| v.get_mut(mi));
                    let ok = match (m, lp) {
                        (Match::Recent(r), Some(lp)) => {
                            self.recent.eval(lp.count, r, &recent_pkt(&ctx, hook))
                        }
                        (m, lp) => match_one(&mut ctx, m, lp, &mut self.prandom),
                    };
                    if !ok {
                        matched = false;
                        break;
                    }
                }
            }
            if !matched {
                if ctx.hotdrop {
                    out.effects.push(Effect::Hotdrop);
                    break Verdict::Drop;
                }
                match next {
                    Some(n) => {
                        e = n;
                        continue;
                    }
                    None => break Verdict::Drop,
                }
            }
            if let Some(c) = self.counters.get_mut(e) {
                c.pcnt += 1;
                c.bcnt += skb_len;
            }
            out.trail.push(ent.offset);
            match &ent.target {
                VTarget::Standard(v) => {
                    let v = *v;
                    if v < 0 {
                        if v != XT_RETURN {
                            break nf_verdict((-(v as i64) - 1) as u32);
                        }
                        let to = match stack.pop() {
                            None => self.table.index_of(self.table.underflow[h]),
                            Some(from) => self.next.get(from).copied().flatten(),
                        };
                        match to {
                            Some(t) => e = t,
                            None => break Verdict::Drop,
                        }
                        continue;
                    }
                    if v as u32 != ent.offset + ent.next_offset && ent.ip.flags & IPT_F_GOTO == 0 {
                        if stack.len() >= stacksize {
                            break Verdict::Drop;
                        }
                        stack.push(e);
                    }
                    match self.jump.get(e).copied().flatten() {
                        Some(t) => e = t,
                        None => break Verdict::Drop,
                    }
                }
                VTarget::Error(name) => {
                    out.effects.push(Effect::ErrorTarget { name: name.clone() });
                    break Verdict::Drop;
                }
                VTarget::Ext(t) => match run_target(&mut ctx, t, &mut out.effects) {
                    None => match next {
                        Some(n) => e = n,
                        None => break Verdict::Drop,
                    },
                    Some(v) => break v,
                },
            }
        };
        out.verdict = verdict;
        out.mark = ctx.mark;
        out.ct_mark = ctx.ct_mark;
        Ok(out)
    }
}

/// What `recent_mt` reads of the packet: the TTL as before forwarding (one more when the packet
/// leaves through a device and no local socket sent it), the time in jiffies (HZ 250).
fn recent_pkt(c: &Ctx, hook: Hook) -> crate::recent::RecentPkt {
    let out = matches!(hook, Hook::Forward | Hook::Output | Hook::Postrouting);
    crate::recent::RecentPkt {
        saddr: c.ip.saddr,
        daddr: c.ip.daddr,
        ttl: if out && !c.st.has_sk {
            c.ip.ttl.wrapping_add(1)
        } else {
            c.ip.ttl
        },
        now: c.st.tstamp_ns / (1_000_000_000 / HZ),
    }
}

fn nf_verdict(v: u32) -> Verdict {
    Verdict::from_u32(v).unwrap_or(Verdict::Drop)
}

/// The fields of the IPv4 header `ipt_do_table` reads.
#[derive(Debug, Clone, Copy)]
struct IpView {
    saddr: [u8; 4],
    daddr: [u8; 4],
    protocol: u8,
    /// `ntohs(frag_off) & IP_OFFSET` (8-byte units; non-zero = not the first fragment).
    fragoff: u16,
    /// Transport header offset in the packet bytes (`nhoff + ip_hdrlen`).
    thoff: usize,
    /// `ntohs(tot_len)`.
    tot_len: u16,
    ttl: u8,
    tos: u8,
}

impl IpView {
    fn new(p: &[u8], nh: usize) -> Option<Self> {
        let vihl = u8_at(p, nh)?;
        let ihl = (vihl & 0x0f) as usize * 4;
        if vihl >> 4 != 4 || ihl < 20 {
            return None;
        }
        Some(IpView {
            saddr: arr(p, nh + 12)?,
            daddr: arr(p, nh + 16)?,
            protocol: u8_at(p, nh + 9)?,
            fragoff: be16(p, nh + 6)? & 0x1fff,
            thoff: nh + ihl,
            tot_len: be16(p, nh + 2)?,
            ttl: u8_at(p, nh + 8)?,
            tos: u8_at(p, nh + 1)?,
        })
    }
}

struct Ctx<'a> {
    pkt: &'a [u8],
    st: &'a PktState,
    ip: IpView,
    mark: u32,
    ct_mark: u32,
    untracked: bool,
    hotdrop: bool,
}

fn ifname_match(dev: &[u8; 16], name: &[u8; 16], mask: &[u8; 16]) -> bool {
    (0..16).all(|i| (dev[i] ^ name[i]) & mask[i] == 0)
}

fn masked_eq(a: [u8; 4], m: [u8; 4], want: [u8; 4]) -> bool {
    (0..4).all(|i| a[i] & m[i] == want[i])
}

/// `ip_packet_match`.
fn ip_packet_match(c: &Ctx, ip: &IptIp) -> bool {
    let inv = |b: u8| ip.invflags & b != 0;
    if !masked_eq(c.ip.saddr, ip.smsk, ip.src) ^ inv(IPT_INV_SRCIP)
        || !masked_eq(c.ip.daddr, ip.dmsk, ip.dst) ^ inv(IPT_INV_DSTIP)
    {
        return false;
    }
    if !ifname_match(&c.st.iifname, &ip.iniface, &ip.iniface_mask) ^ inv(IPT_INV_VIA_IN) {
        return false;
    }
    if !ifname_match(&c.st.oifname, &ip.outiface, &ip.outiface_mask) ^ inv(IPT_INV_VIA_OUT) {
        return false;
    }
    if ip.proto != 0 && (c.ip.protocol as u16 != ip.proto) ^ inv(IPT_INV_PROTO) {
        return false;
    }
    if (ip.flags & IPT_F_FRAG != 0 && c.ip.fragoff == 0) ^ inv(IPT_INV_FRAG) {
        return false;
    }
    true
}

fn port_match(min: u16, max: u16, port: u16, invert: bool) -> bool {
    (port >= min && port <= max) ^ invert
}

/// Transport header bytes, or hotdrop when they are missing.
fn header<'a>(c: &mut Ctx<'a>, n: usize) -> Option<&'a [u8]> {
    let r = bytes(c.pkt, c.ip.thoff, n);
    if r.is_none() {
        c.hotdrop = true;
    }
    r
}

fn match_one(
    c: &mut Ctx,
    m: &Match,
    lp: Option<&mut MatchPriv>,
    prandom: &mut nfr_vm::Prandom,
) -> bool {
    match m {
        // addrtype_mt_v1, from the route types the runtime gives the packet's addresses
        // (`PktState::fib_saddr_type`; `ExecTable::new` refuses --limit-iface-in/out)
        Match::Addrtype(at) => {
            let is = |mask: u16, t: u8| mask & 1u16.checked_shl(u32::from(t)).unwrap_or(0) != 0;
            (at.source == 0
                || is(at.source, c.st.fib_saddr_type) ^ (at.flags & XT_ADDRTYPE_INVERT_SOURCE != 0))
                && (at.dest == 0
                    || is(at.dest, c.st.fib_daddr_type) ^ (at.flags & XT_ADDRTYPE_INVERT_DEST != 0))
        }
        // statistic_mt
        Match::Statistic(st) => {
            let hit = if st.mode == XT_STATISTIC_MODE_NTH {
                let Some(p) = lp else { return false };
                p.count = if p.count == st.every {
                    0
                } else {
                    p.count.wrapping_add(1)
                };
                p.count == 0
            } else {
                (prandom.next_u32() & 0x7fff_ffff) < st.every
            };
            hit ^ (st.flags & XT_STATISTIC_INVERT != 0)
        }
        Match::Tcp(t) => {
            if c.ip.fragoff != 0 {
                if c.ip.fragoff == 1 {
                    c.hotdrop = true;
                }
                return false;
            }
            let Some(th) = header(c, 20) else {
                return false;
            };
            let sp = be16(th, 0).unwrap_or(0);
            let dp = be16(th, 2).unwrap_or(0);
            if !port_match(t.spts[0], t.spts[1], sp, t.invflags & XT_TCP_INV_SRCPT != 0) {
                return false;
            }
            if !port_match(t.dpts[0], t.dpts[1], dp, t.invflags & XT_TCP_INV_DSTPT != 0) {
                return false;
            }
            let flags = u8_at(th, 13).unwrap_or(0);
            if !(((flags & t.flg_mask) == t.flg_cmp) ^ (t.invflags & XT_TCP_INV_FLAGS != 0)) {
                return false;
            }
            if t.option != 0 {
                let doff = (u8_at(th, 12).unwrap_or(0) >> 4) as usize * 4;
                if doff < 20 {
                    c.hotdrop = true;
                    return false;
                }
                return tcp_find_option(
                    c,
                    t.option,
                    doff - 20,
                    t.invflags & XT_TCP_INV_OPTION != 0,
                );
            }
            true
        }
        Match::Udp(u) => {
            if c.ip.fragoff != 0 {
                return false;
            }
            let Some(uh) = header(c, 8) else { return false };
            let sp = be16(uh, 0).unwrap_or(0);
            let dp = be16(uh, 2).unwrap_or(0);
            port_match(u.spts[0], u.spts[1], sp, u.invflags & XT_UDP_INV_SRCPT != 0)
                && port_match(u.dpts[0], u.dpts[1], dp, u.invflags & XT_UDP_INV_DSTPT != 0)
        }
        Match::Icmp(i) => {
            if c.ip.fragoff != 0 {
                return false;
            }
            let Some(ic) = header(c, 8) else { return false };
            let (ty, code) = (u8_at(ic, 0).unwrap_or(0), u8_at(ic, 1).unwrap_or(0));
            ((i.icmp_type == 0xFF) || (ty == i.icmp_type && code >= i.code[0] && code <= i.code[1]))
                ^ (i.invflags & IPT_ICMP_INV != 0)
        }
        Match::Conntrack(ci) => conntrack_mt(c, ci),
        Match::Multiport(mp) => {
            if c.ip.fragoff != 0 {
                return false;
            }
            let Some(ph) = header(c, 4) else { return false };
            let src = be16(ph, 0).unwrap_or(0);
            let dst = be16(ph, 2).unwrap_or(0);
            multiport_v1(mp, src, dst)
        }
        Match::Mark(mk) => ((c.mark & mk.mask) == mk.mark) ^ (mk.invert != 0),
        Match::Comment(_) => true,
        Match::Limit(r) => match lp {
            Some(p) => limit_mt(c, r, p),
            None => false,
        },
        Match::Length(l) => (c.ip.tot_len >= l.min && c.ip.tot_len <= l.max) ^ (l.invert != 0),
        Match::Iprange(r) => {
            let ip = |a: [u8; 4]| u32::from_be_bytes(a);
            if r.flags & IPRANGE_SRC != 0 {
                let out = ip(c.ip.saddr) < ip(r.src_min) || ip(c.ip.saddr) > ip(r.src_max);
                if out ^ (r.flags & IPRANGE_SRC_INV != 0) {
                    return false;
                }
            }
            if r.flags & IPRANGE_DST != 0 {
                let out = ip(c.ip.daddr) < ip(r.dst_min) || ip(c.ip.daddr) > ip(r.dst_max);
                if out ^ (r.flags & IPRANGE_DST_INV != 0) {
                    return false;
                }
            }
            true
        }
        Match::Ttl(t) => match t.mode {
            IPT_TTL_EQ => c.ip.ttl == t.ttl,
            IPT_TTL_NE => c.ip.ttl != t.ttl,
            IPT_TTL_LT => c.ip.ttl < t.ttl,
            IPT_TTL_GT => c.ip.ttl > t.ttl,
            _ => false,
        },
        Match::Pkttype(p) => {
            // PACKET_LOOPBACK (5) is reported as multicast/broadcast by destination.
            let ty = if c.st.pkttype != 5 {
                u32::from(c.st.pkttype)
            } else if c.ip.daddr[0] & 0xf0 == 0xe0 {
                2
            } else {
                1
            };
            (ty == p.pkttype) ^ (p.invert != 0)
        }
        Match::Connmark(m) => {
            if !c.st.ct_valid || c.untracked {
                return false;
            }
            ((c.ct_mark & m.mask) == m.mark) ^ (m.invert != 0)
        }
        Match::Dscp(d) => ((c.ip.tos >> 2) == d.dscp) ^ (d.invert != 0),
        Match::Mac(m) => {
            // mac_mt: an Ethernet input device and a MAC header in front of the network header.
            let st = c.st;
            if st.iif == 0 && st.iifname[0] == 0 || st.iiftype != 1 || !st.has_ll {
                return false;
            }
            let src: Option<[u8; 6]> = arr(c.pkt, st.lloff as usize + 6);
            if st.lloff as usize + 14 > st.nhoff as usize {
                return false;
            }
            src.is_some_and(|s| s == m.srcaddr) ^ (m.invert != 0)
        }
        Match::Owner(o) => {
            let st = c.st;
            if !st.has_sk {
                return (o.match_flags ^ o.invert) == 0;
            }
            if o.match_flags & o.invert & XT_OWNER_SOCKET != 0 {
                return false;
            }
            if o.match_flags & XT_OWNER_UID != 0 {
                let inr = st.sk_uid >= o.uid_min && st.sk_uid <= o.uid_max;
                if inr ^ (o.invert & XT_OWNER_UID == 0) {
                    return false;
                }
            }
            if o.match_flags & XT_OWNER_GID != 0 {
                // Supplementary groups are not modelled: only the primary gid is compared.
                let inr = st.sk_gid >= o.gid_min && st.sk_gid <= o.gid_max;
                if inr ^ (o.invert & XT_OWNER_GID == 0) {
                    return false;
                }
            }
            true
        }
        // evaluated by the table (its lists are shared by rules)
        Match::Other { .. } | Match::Recent(_) => false,
    }
}

fn tcp_find_option(c: &mut Ctx, option: u8, optlen: usize, invert: bool) -> bool {
    if optlen == 0 {
        return invert;
    }
    let Some(op) = bytes(c.pkt, c.ip.thoff + 20, optlen) else {
        c.hotdrop = true;
        return false;
    };
    let mut i = 0;
    while i < optlen {
        if op[i] == option {
            return !invert;
        }
        if op[i] < 2 {
            i += 1;
        } else {
            i += (op.get(i + 1).copied().unwrap_or(1) as usize).max(1);
        }
    }
    invert
}

/// `ports_match_v1`, reading ports from the wire layout like the kernel (index may run into
/// the pflags array for a malformed count).
fn multiport_v1(mp: &MultiportV1, src: u16, dst: u16) -> bool {
    let raw = mp.encode();
    let port = |i: usize| le16(&raw, 2 + 2 * i).unwrap_or(0);
    let pflag = |i: usize| u8_at(&raw, 32 + i).unwrap_or(0);
    let inv = mp.invert != 0;
    let mut i = 0usize;
    while i < mp.count as usize {
        let s = port(i);
        if pflag(i) != 0 {
            i += 1;
            let e = port(i);
            let hit = match mp.flags {
                XT_MULTIPORT_SOURCE => src >= s && src <= e,
                XT_MULTIPORT_DESTINATION => dst >= s && dst <= e,
                XT_MULTIPORT_EITHER => (dst >= s && dst <= e) || (src >= s && src <= e),
                _ => false,
            };
            if hit {
                return !inv;
            }
        } else {
            let hit = match mp.flags {
                XT_MULTIPORT_SOURCE => src == s,
                XT_MULTIPORT_DESTINATION => dst == s,
                XT_MULTIPORT_EITHER => src == s || dst == s,
                _ => false,
            };
            if hit {
                return !inv;
            }
        }
        i += 1;
    }
    inv
}

fn conntrack_mt(c: &Ctx, info: &ConntrackMtInfo3) -> bool {
    let st = c.st;
    let has_ct = st.ct_valid && !c.untracked;
    let mut statebit: u16 = if has_ct {
        (st.ct_state & (ct_state::ESTABLISHED | ct_state::RELATED | ct_state::NEW)) as u16
    } else if c.untracked || st.ct_state & ct_state::UNTRACKED != 0 {
        XT_CONNTRACK_STATE_UNTRACKED
    } else {
        XT_CONNTRACK_STATE_INVALID
    };
    let f = info.match_flags;
    let inv = |b: u16| info.invert_flags & b != 0;
    if f & XT_CONNTRACK_STATE != 0 {
        if has_ct {
            if st.ct_status & nfr_vm::pkt::ips::SRC_NAT != 0 {
                statebit |= XT_CONNTRACK_STATE_SNAT;
            }
            if st.ct_status & nfr_vm::pkt::ips::DST_NAT != 0 {
                statebit |= XT_CONNTRACK_STATE_DNAT;
            }
        }
        if (info.state_mask & statebit != 0) ^ !inv(XT_CONNTRACK_STATE) {
            return false;
        }
    }
    if !has_ct {
        return f & XT_CONNTRACK_STATE != 0;
    }
    if f & XT_CONNTRACK_DIRECTION != 0
        && (st.ct_direction == IP_CT_DIR_ORIGINAL) ^ !inv(XT_CONNTRACK_DIRECTION)
    {
        return false;
    }
    let addr_eq =
        |k: &[u8; 16], a: &[u8; 16], m: &[u8; 16]| (0..4).all(|i| (k[i] ^ a[i]) & m[i] == 0);
    let checks = [
        (
            XT_CONNTRACK_ORIGSRC,
            &st.ct_orig.src,
            &info.origsrc_addr,
            &info.origsrc_mask,
        ),
        (
            XT_CONNTRACK_ORIGDST,
            &st.ct_orig.dst,
            &info.origdst_addr,
            &info.origdst_mask,
        ),
        (
            XT_CONNTRACK_REPLSRC,
            &st.ct_reply.src,
            &info.replsrc_addr,
            &info.replsrc_mask,
        ),
        (
            XT_CONNTRACK_REPLDST,
            &st.ct_reply.dst,
            &info.repldst_addr,
            &info.repldst_mask,
        ),
    ];
    for (b, k, a, m) in checks {
        if f & b != 0 && addr_eq(k, a, m) ^ !inv(b) {
            return false;
        }
    }
    if f & XT_CONNTRACK_PROTO != 0
        && (st.ct_protocol as u16 == info.l4proto) ^ !inv(XT_CONNTRACK_PROTO)
    {
        return false;
    }
    let ports = [
        (
            XT_CONNTRACK_ORIGSRC_PORT,
            info.origsrc_port,
            info.origsrc_port_high,
            st.ct_orig.src_port,
        ),
        (
            XT_CONNTRACK_ORIGDST_PORT,
            info.origdst_port,
            info.origdst_port_high,
            st.ct_orig.dst_port,
        ),
        (
            XT_CONNTRACK_REPLSRC_PORT,
            info.replsrc_port,
            info.replsrc_port_high,
            st.ct_reply.src_port,
        ),
        (
            XT_CONNTRACK_REPLDST_PORT,
            info.repldst_port,
            info.repldst_port_high,
            st.ct_reply.dst_port,
        ),
    ];
    for (b, lo, hi, p) in ports {
        if f & b != 0 && !port_match(lo, hi, p, inv(b)) {
            return false;
        }
    }
    if f & XT_CONNTRACK_STATUS != 0
        && ((info.status_mask as u32 & st.ct_status) != 0) ^ !inv(XT_CONNTRACK_STATUS)
    {
        return false;
    }
    if f & XT_CONNTRACK_EXPIRES != 0 {
        let expires = st.ct_expiration_ms / 1000;
        if (expires >= info.expires_min && expires <= info.expires_max) ^ !inv(XT_CONNTRACK_EXPIRES)
        {
            return false;
        }
    }
    true
}

/// `limit_mt` with jiffies derived from `PktState::tstamp_ns` (HZ = 250); the bucket starts
/// full at the first packet the rule sees.
fn limit_mt(c: &Ctx, r: &RateInfo, p: &mut MatchPriv) -> bool {
    let now = c.st.tstamp_ns / (1_000_000_000 / HZ);
    if !p.init {
        p.init = true;
        p.prev = now;
        p.credit = user2credits(r.avg.wrapping_mul(r.burst));
        p.credit_cap = p.credit;
        p.cost = user2credits(r.avg);
    }
    if p.credit < p.cost && p.prev == now {
        return false;
    }
    let inc = (now.wrapping_sub(p.prev)).wrapping_mul(CREDITS_PER_JIFFY) as u32;
    p.prev = now;
    let mut credit = p.credit.wrapping_add(inc);
    if credit > p.credit_cap {
        credit = p.credit_cap;
    }
    let ok = credit >= p.cost;
    if ok {
        credit -= p.cost;
    }
    p.credit = credit;
    ok
}

fn shift(v: u32, dir: u8, bits: u8) -> u32 {
    if dir == 1 {
        v.checked_shr(bits as u32).unwrap_or(0)
    } else {
        v.checked_shl(bits as u32).unwrap_or(0)
    }
}

/// Run an extension target: `None` = XT_CONTINUE, `Some(verdict)` = stop.
fn run_target(c: &mut Ctx, t: &Target, fx: &mut Vec<Effect>) -> Option<Verdict> {
    match t {
        Target::Log(l) => {
            fx.push(Effect::Log {
                prefix: l.prefix.clone(),
                level: l.level,
                logflags: l.logflags,
            });
            None
        }
        Target::Reject(with) => {
            fx.push(Effect::Reject { with: *with });
            Some(Verdict::Drop)
        }
        Target::Mark(m) => {
            c.mark = (c.mark & !m.mask) ^ m.mark;
            None
        }
        Target::Connmark { info, .. } => {
            if !c.st.ct_valid || c.untracked {
                return None;
            }
            match info.mode {
                XT_CONNMARK_SET => {
                    c.ct_mark = shift(
                        (c.ct_mark & !info.ctmask) ^ info.ctmark,
                        info.shift_dir,
                        info.shift_bits,
                    );
                }
                XT_CONNMARK_SAVE => {
                    let v = shift(c.mark & info.nfmask, info.shift_dir, info.shift_bits);
                    c.ct_mark = (c.ct_mark & !info.ctmask) ^ v;
                }
                XT_CONNMARK_RESTORE => {
                    let v = shift(c.ct_mark & info.ctmask, info.shift_dir, info.shift_bits);
                    c.mark = (c.mark & !info.nfmask) ^ v;
                }
                _ => {}
            }
            None
        }
        Target::Ct { info, .. } => {
            // xt_ct_target: only a packet without conntrack gets a template.
            if c.st.ct_valid || c.untracked {
                return None;
            }
            if info.flags & XT_CT_NOTRACK != 0 {
                c.untracked = true;
                fx.push(Effect::Notrack);
            } else {
                fx.push(Effect::CtTemplate {
                    helper: info.helper.clone(),
                    zone: info.zone,
                });
            }
            None
        }
        Target::Nfqueue(q) => {
            // nfqueue_tg_v3: with several queues the kernel hashes the flow (random seed) or
            // uses the CPU; we take the first queue of the range.
            Some(Verdict::Queue {
                num: q.queuenum,
                bypass: q.flags & NFQ_FLAG_BYPASS != 0,
            })
        }
        Target::Nat { kind, range, .. } => {
            fx.push(Effect::Nat {
                kind: *kind,
                range: *range,
            });
            Some(Verdict::Accept)
        }
        Target::Other { name, .. } if name == "NOTRACK" => {
            if !c.st.ct_valid && !c.untracked {
                c.untracked = true;
                fx.push(Effect::Notrack);
            }
            None
        }
        _ => Some(Verdict::Drop),
    }
}

/// The verified entry at `offset`.
pub fn entry_at(t: &VerifiedTable, offset: u32) -> Option<&VEntry> {
    t.index_of(offset).and_then(|i| t.entries.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, parse_save};
    use nfr_vm::pkt::ifname;

    /// An IPv4 packet (no options) with `l4` as payload.
    pub(crate) fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag_off: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        let tot = (20 + l4.len()) as u16;
        p[2..4].copy_from_slice(&tot.to_be_bytes());
        p[6..8].copy_from_slice(&frag_off.to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }
    pub(crate) fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }
    pub(crate) fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut t = vec![0u8; 8];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t
    }

    fn table(text: &str) -> ExecTable {
        let t = parse_save(text).unwrap().remove(0);
        ExecTable::from_blob(&encode(&t).unwrap()).unwrap()
    }

    const RULES: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:TCP_IN - [0:0]\n:G - [0:0]\n\
        -A INPUT -i lo -j ACCEPT\n\
        -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A INPUT -p tcp -j TCP_IN\n\
        -A INPUT -p udp -m multiport --dports 53,60:70 -j ACCEPT\n\
        -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
        -A INPUT -m mark --mark 0x7/0xf -g G\n\
        -A INPUT -f -j REJECT\n\
        -A TCP_IN -p tcp -m tcp --dport 22 --tcp-flags SYN,ACK SYN -j ACCEPT\n\
        -A TCP_IN -s 10.0.0.0/8 -j RETURN\n\
        -A TCP_IN -p tcp -m tcp --dport 25 -j REJECT --reject-with tcp-reset\n\
        -A G -j MARK --set-xmark 0x100/0x100\n\
        -A G -j LOG --log-prefix g\n\
        -A G -m mark --mark 0x100/0x100 -j ACCEPT\nCOMMIT\n";

    fn st(iif: &str) -> PktState {
        PktState {
            iifname: ifname(iif),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_and_trail() {
        let mut t = table(RULES);
        let a = [10, 1, 1, 1];
        let b = [192, 0, 2, 1];
        let run =
            |t: &mut ExecTable, p: &[u8], s: &PktState| t.do_table(Hook::Input, p, s).unwrap();
        // SYN to 22 from outside: accepted by TCP_IN rule 1.
        let o = run(&mut t, &ipv4(b, a, 6, 0, &tcp(1000, 22, 0x02)), &st("eth0"));
        assert_eq!(o.verdict, Verdict::Accept);
        assert_eq!(o.trail.len(), 2);
        // SYN+ACK to 22 from 10/8: RETURN to INPUT, then no more match -> policy DROP.
        let o = run(&mut t, &ipv4(a, b, 6, 0, &tcp(1000, 22, 0x12)), &st("eth0"));
        assert_eq!(o.verdict, Verdict::Drop);
        assert_eq!(o.trail.len(), 3, "jump, RETURN, policy");
        // tcp 25 from outside: REJECT recorded.
        let o = run(&mut t, &ipv4(b, a, 6, 0, &tcp(1, 25, 0x02)), &st("eth0"));
        assert_eq!(
            (o.verdict, o.effects.clone()),
            (
                Verdict::Drop,
                vec![Effect::Reject {
                    with: IPT_TCP_RESET
                }]
            )
        );
        // loopback accepted by the first rule.
        assert_eq!(
            run(&mut t, &ipv4(b, a, 17, 0, &udp(1, 2)), &st("lo")).verdict,
            Verdict::Accept
        );
        // udp 65 via multiport range.
        assert_eq!(
            run(&mut t, &ipv4(b, a, 17, 0, &udp(1, 65)), &st("eth0")).verdict,
            Verdict::Accept
        );
        assert_eq!(
            run(&mut t, &ipv4(b, a, 17, 0, &udp(1, 71)), &st("eth0")).verdict,
            Verdict::Drop
        );
        // icmp echo.
        assert_eq!(
            run(
                &mut t,
                &ipv4(b, a, 1, 0, &[8, 0, 0, 0, 0, 0, 0, 0]),
                &st("eth0")
            )
            .verdict,
            Verdict::Accept
        );
        assert_eq!(
            run(
                &mut t,
                &ipv4(b, a, 1, 0, &[0, 0, 0, 0, 0, 0, 0, 0]),
                &st("eth0")
            )
            .verdict,
            Verdict::Drop
        );
        // mark 0x7 -> goto G: MARK, LOG continue; mark match sees the new mark; ACCEPT.
        let s = PktState {
            mark: 0x17,
            ..st("eth0")
        };
        let o = run(&mut t, &ipv4(b, a, 47, 0, &[]), &s);
        assert_eq!(o.verdict, Verdict::Accept);
        assert_eq!(o.mark, 0x117);
        assert_eq!(
            o.effects,
            vec![Effect::Log {
                prefix: b"g".to_vec(),
                level: 4,
                logflags: 0
            }]
        );
        // established conntrack state.
        let s = PktState {
            ct_valid: true,
            ct_state: ct_state::ESTABLISHED,
            ..st("eth0")
        };
        assert_eq!(
            run(&mut t, &ipv4(b, a, 47, 0, &[]), &s).verdict,
            Verdict::Accept
        );
        // a non-first fragment hits -f (and never the tcp match).
        let o = run(&mut t, &ipv4(b, a, 6, 100, &[0; 8]), &st("eth0"));
        assert_eq!(
            o.effects,
            vec![Effect::Reject {
                with: IPT_ICMP_PORT_UNREACHABLE
            }]
        );
        // truncated tcp header: hotdrop.
        let o = run(&mut t, &ipv4(b, a, 6, 0, &[0; 4]), &st("eth0"));
        assert_eq!(
            (o.verdict, o.effects),
            (Verdict::Drop, vec![Effect::Hotdrop])
        );
        // counters: the INPUT policy counted three packets (SYN+ACK from 10/8, udp 71, icmp 0).
        let pol = t.table().underflow[1];
        assert_eq!(t.counters_at(pol).unwrap().pcnt, 3);
    }

    #[test]
    fn goto_returns_to_the_callers_caller() {
        // INPUT -j A; A -g B; B -j RETURN -> back to INPUT after the jump to A.
        let mut t = table(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n\
             -A INPUT -j A\n-A INPUT -j DROP\n-A A -g B\n-A A -j ACCEPT\n-A B -j RETURN\nCOMMIT\n",
        );
        let o = t
            .do_table(
                Hook::Input,
                &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 6, 0, &tcp(1, 2, 0)),
                &PktState::default(),
            )
            .unwrap();
        assert_eq!(
            o.verdict,
            Verdict::Drop,
            "RETURN from B skips the rest of A"
        );
        assert_eq!(o.trail.len(), 4);
    }

    #[test]
    fn limit_token_bucket() {
        let mut t = table(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -m limit --limit 1/sec --limit-burst 2 -j ACCEPT\nCOMMIT\n",
        );
        let p = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 0, &udp(1, 2));
        let mut at = |ns: u64| {
            t.do_table(
                Hook::Input,
                &p,
                &PktState {
                    tstamp_ns: ns,
                    ..Default::default()
                },
            )
            .unwrap()
            .verdict
        };
        assert_eq!(at(0), Verdict::Accept);
        assert_eq!(at(1), Verdict::Accept);
        assert_eq!(at(2), Verdict::Drop, "burst of 2 used up");
        assert_eq!(at(1_100_000_000), Verdict::Accept, "one token per second");
        assert_eq!(at(1_200_000_000), Verdict::Drop);
    }

    #[test]
    fn nat_records_and_accepts() {
        let mut t = table(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080\nCOMMIT\n",
        );
        let o = t
            .do_table(
                Hook::Prerouting,
                &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 6, 0, &tcp(1, 80, 2)),
                &PktState::default(),
            )
            .unwrap();
        assert_eq!(o.verdict, Verdict::Accept);
        assert!(
            matches!(&o.effects[..], [Effect::Nat { kind: NatKind::Dnat, range }] if range.min_proto == 8080 && range.min_addr == [10, 0, 0, 1])
        );
        assert!(matches!(
            t.do_table(Hook::Forward, &[], &PktState::default()),
            Err(ExecError::HookNotValid(Hook::Forward))
        ));
    }

    #[test]
    fn statistic_nth_counts_and_random_draws_from_the_seeded_generator() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A INPUT -p udp -m statistic --mode nth --every 3 --packet 1 -j DROP\n\
             -A INPUT -p udp -m statistic --mode nth ! --every 2 --packet 0 -j ACCEPT\n\
             -A INPUT -p udp -j REJECT\n\
             -A INPUT -m statistic --mode random --probability 0.25 -j DROP\nCOMMIT\n";
        let mut t = table(text);
        let p = ipv4([10, 0, 0, 7], [10, 0, 0, 1], 17, 0, &udp(1, 2));
        let s = PktState::default();
        // Packet k is dropped when k % 3 == 1; the others count in the second rule's own
        // counter: its 0th, 2nd, ... (every second of them) are not accepted there.
        let got: Vec<Verdict> = (0..6)
            .map(|_| t.do_table(Hook::Input, &p, &s).unwrap().verdict)
            .collect();
        // Rule 1 (count from every - packet = 1) drops packets 1 and 4; rule 2 sees 0, 2, 3, 5
        // and, inverted, accepts the odd ones of those (2 and 5); the rest are rejected.
        let (d, a) = (Verdict::Drop, Verdict::Accept);
        assert_eq!(got, [d, d, a, d, d, a]);
        // Random: about a quarter of tcp packets dropped, the same ones for the same seed.
        let tcp = ipv4([10, 0, 0, 7], [10, 0, 0, 1], 6, 0, &[0u8; 20]);
        let run = |seed: u64| {
            let mut t = table(text);
            t.prandom = nfr_vm::Prandom::new(seed);
            (0..4000)
                .map(|_| t.do_table(Hook::Input, &tcp, &s).unwrap().verdict == Verdict::Drop)
                .collect::<Vec<bool>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let n = a.iter().filter(|&&d| d).count();
        assert!((850..1150).contains(&n), "{n} of 4000 dropped");
    }

    #[test]
    fn length_ttl_iprange_pkttype_and_nfqueue() {
        let mut t = table(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A INPUT -m pkttype --pkt-type multicast -j DROP\n\
             -A INPUT -m iprange --src-range 10.0.0.5-10.0.0.9 -m ttl --ttl-lt 10 -j NFQUEUE --queue-num 7 --queue-bypass\n\
             -A INPUT -m length --length 0:30 -j NFQUEUE --queue-balance 3:4\n\
             -A INPUT -m ttl ! --ttl-eq 64 -j DROP\nCOMMIT\n",
        );
        let mut p = ipv4([10, 0, 0, 7], [10, 0, 0, 1], 17, 0, &udp(1, 2));
        let s = PktState::default();
        // ttl 64, length 28: the balance rule queues to the first queue of 3:4.
        let o = t.do_table(Hook::Input, &p, &s).unwrap();
        assert_eq!(
            o.verdict,
            Verdict::Queue {
                num: 3,
                bypass: false
            }
        );
        p[8] = 5; // ttl 5: iprange + ttl-lt 10
        let o = t.do_table(Hook::Input, &p, &s).unwrap();
        assert_eq!(
            o.verdict,
            Verdict::Queue {
                num: 7,
                bypass: true
            }
        );
        p[12..16].copy_from_slice(&[10, 0, 0, 10]); // outside the range; length 28 again → 3
        assert_eq!(
            t.do_table(Hook::Input, &p, &s).unwrap().verdict,
            Verdict::Queue {
                num: 3,
                bypass: false
            }
        );
        let big = ipv4([10, 0, 0, 10], [10, 0, 0, 1], 17, 0, &[0u8; 40]);
        assert_eq!(
            t.do_table(Hook::Input, &big, &s).unwrap().verdict,
            Verdict::Accept,
            "ttl 64, len 60"
        );
        let mut big5 = big.clone();
        big5[8] = 5;
        assert_eq!(
            t.do_table(Hook::Input, &big5, &s).unwrap().verdict,
            Verdict::Drop,
            "ttl != 64"
        );
        // A looped-back packet counts as multicast when its destination is.
        let mc = ipv4([10, 0, 0, 10], [224, 0, 0, 1], 17, 0, &[0u8; 40]);
        let lo = PktState {
            pkttype: 5,
            ..Default::default()
        };
        assert_eq!(
            t.do_table(Hook::Input, &mc, &lo).unwrap().verdict,
            Verdict::Drop
        );
        assert_eq!(
            t.do_table(Hook::Input, &big, &lo).unwrap().verdict,
            Verdict::Accept,
            "loopback unicast → broadcast"
        );
    }

    #[test]
    fn connmark_dscp_mac_owner() {
        let mut t = table(
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
             -A PREROUTING -m mac --mac-source 00:11:22:33:44:55 -j MARK --set-xmark 0x1/0x1\n\
             -A PREROUTING -m dscp --dscp-class EF -j MARK --set-xmark 0x2/0x2\n\
             -A PREROUTING -m connmark --mark 0x10/0xf0 -j MARK --set-xmark 0x4/0x4\n\
             -A OUTPUT -m owner --uid-owner 1000-2000 ! --gid-owner 0 -j MARK --set-xmark 0x8/0x8\n\
             -A OUTPUT -m owner ! --socket-exists -j MARK --set-xmark 0x10/0x10\nCOMMIT\n",
        );
        let mut ip = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 0, &udp(1, 2));
        ip[1] = 0x2e << 2; // DSCP EF
        let mut frame = vec![0xaa; 6];
        frame.extend_from_slice(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x00]);
        frame.extend_from_slice(&ip);
        let st = PktState {
            has_ll: true,
            nhoff: 14,
            iif: 2,
            iiftype: 1,
            ct_valid: true,
            ct_state: ct_state::ESTABLISHED,
            ct_mark: 0x13,
            ..Default::default()
        };
        assert_eq!(t.do_table(Hook::Prerouting, &frame, &st).unwrap().mark, 0x7);
        // No link layer (or a non-Ethernet device): the mac match never matches.
        let o = t
            .do_table(
                Hook::Prerouting,
                &frame,
                &PktState {
                    iiftype: 772,
                    ..st.clone()
                },
            )
            .unwrap();
        assert_eq!(o.mark, 0x6);
        // No conntrack entry: connmark does not match.
        let o = t
            .do_table(
                Hook::Prerouting,
                &frame,
                &PktState {
                    ct_valid: false,
                    ct_state: ct_state::INVALID,
                    ..st.clone()
                },
            )
            .unwrap();
        assert_eq!(o.mark, 0x3);
        let sock = PktState {
            has_sk: true,
            sk_uid: 1500,
            sk_gid: 100,
            ..Default::default()
        };
        assert_eq!(t.do_table(Hook::Output, &ip, &sock).unwrap().mark, 0x8);
        assert_eq!(
            t.do_table(Hook::Output, &ip, &PktState { sk_gid: 0, ..sock })
                .unwrap()
                .mark,
            0x0
        );
        assert_eq!(
            t.do_table(Hook::Output, &ip, &PktState::default())
                .unwrap()
                .mark,
            0x10,
            "no socket"
        );
    }

    #[test]
    fn hostile_packets_never_panic() {
        let mut t = table(RULES);
        let full = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 6, 0, &tcp(1, 22, 2));
        for n in 0..full.len() {
            let _ = t.do_table(Hook::Input, &full[..n], &PktState::default());
        }
        let s = PktState {
            nhoff: 60000,
            ..Default::default()
        };
        assert_eq!(
            t.do_table(Hook::Input, &full, &s).unwrap().verdict,
            Verdict::Drop
        );
    }
}
