//! Table engines as hook entries: the bridge between the rule executors (the bytecode interpreter, the Cranelift
//! JIT, the iptables blob executor) and [`crate::hook::Hooks`].
//!
//! A ruleset becomes one [`ProgramEngine`] (the program, its counters and limit buckets, the backend that runs
//! it) shared by one [`ChainEntry`] per base chain, registered at the chain's (family, hook, priority), exactly
//! as nf_tables registers one `nf_hook_ops` per base chain. An iptables table becomes one [`IptEngine`] shared by
//! one [`IptEntry`] per valid hook, at the table's `NF_IP_PRI_*`.
//!
//! After an engine has run, its side effects are applied the way the kernel applies them: a `meta mark set`
//! stays in the packet context for the later hooks; `ct mark set` writes the conntrack entry; `notrack` makes a
//! packet that has no entry yet untracked (so it must run before conntrack: raw priority -300 < -200);
//! `ct zone set` attaches a template; `reject` is a drop (counted) whose answer the hooks send once the traversal
//! ends (`Packet::reject`); `queue` is the verdict (the hooks decide
//! whether someone listens); `snat` / `dnat` statements set up the entry's NAT binding
//! (`Conntrack::nf_nat_setup_info`: the mapping becomes its reply tuple; a range with no free tuple keeps a
//! clashing one, and confirm drops the packet, `insert_failed`), `masquerade` maps to the output interface's
//! address and `redirect` to the input interface's (`nf_nat_masquerade_ipv4`, `nf_nat_redirect_ipv4`: none there
//! drops the packet, counted as a NAT failure).
//!
//! NAT chains (`type nat`) are entries of the family's [`crate::hook::NatHook`] (`nf_nat_inet_fn`): they run
//! only for a packet that has a conntrack entry in state NEW or RELATED whose NAT binding for this hook's
//! manipulation is not set up yet, i.e. the first packet of each connection, until one binds it (a null binding
//! when none does); the NAT hook then rewrites that packet and every later one of the connection.

use crate::ct::nat::{Manip, NatRange};
use crate::ct::{CtInfo, Helper, Nfct};
use crate::hook::{Engine, HookCtx, HookError, Hooks, Packet};
use nfr_vm::insn::NatKind;
use nfr_vm::interp::TraceEvent;
use nfr_vm::pkt::{NFPROTO_IPV4, ct_state, ips};
use nfr_vm::{ChainId, Effects, Hook, PktState, State, Verdict, VerifiedProgram};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// Which executor runs a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// The reference interpreter.
    Interp,
    /// Native code from nfr-jit.
    Jit,
    /// The iptables blob executor (`ipt_do_table`).
    Ipt,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Interp => "interp",
            EngineKind::Jit => "jit",
            EngineKind::Ipt => "ipt",
        }
    }
}

/// A base chain to register: which program chain, on which families, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub chain: ChainId,
    /// `NFPROTO_IPV4` and/or `NFPROTO_IPV6` (an inet table registers on both).
    pub nfprotos: Vec<u8>,
    pub hook: Hook,
    pub priority: i32,
    /// `type nat`: runs only for the first packet of a connection (see the module docs).
    pub nat: bool,
    /// How traces and listings name the chain, e.g. `ip filter input`.
    pub label: String,
}

/// Counts of side effects that have no other visible trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EffectStats {
    /// `reject` statements / REJECT targets that fired (the packet was dropped).
    pub rejects: u64,
    /// NAT statements / targets that fired.
    pub nat: u64,
    /// NAT statements that found no binding: masquerade / redirect with no interface address. The packet was
    /// dropped. (A range with no unique tuple left is no failure here: confirm drops the packet,
    /// `insert_failed`.)
    pub nat_failed: u64,
    /// `log` statements / LOG targets that fired.
    pub logs: u64,
    /// Packets made untracked by `notrack`.
    pub notrack: u64,
    /// `ct mark set` writes to an entry.
    pub ct_mark_writes: u64,
    /// `ct helper set` that attached a helper to a new entry.
    pub helpers: u64,
}

impl EffectStats {
    /// Adds another shard's counts.
    pub fn add(&mut self, o: &EffectStats) {
        self.rejects += o.rejects;
        self.nat += o.nat;
        self.nat_failed += o.nat_failed;
        self.logs += o.logs;
        self.notrack += o.notrack;
        self.ct_mark_writes += o.ct_mark_writes;
        self.helpers += o.helpers;
    }
}

/// One engine invocation recorded for `--trace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    pub hook: Hook,
    /// Index into the registered [`ChainSpec`]s (or the ipt table's hook for [`IptEngine`]).
    pub spec: usize,
    /// Rules evaluated (interpreter trace events); for the ipt engine, the entry offsets that counted.
    pub events: Vec<TraceEvent>,
    /// ipt: offsets of the entries whose counters went up.
    pub ipt_trail: Vec<u32>,
    pub verdict: Verdict,
    /// Position among all steps recorded in this process (orders the steps of several engines of one packet).
    pub order: u64,
    /// The step ran for a packet the host built in reaction (a reject answer, an ICMP error).
    pub generated: bool,
}

static TRACE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_order() -> u64 {
    TRACE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

enum Backend {
    Interp,
    #[cfg(feature = "jit")]
    Jit(Box<nfr_jit::JitProgram>),
}

/// One ruleset's executable state, shared by its chain entries.
pub struct ProgramEngine {
    prog: Arc<VerifiedProgram>,
    backend: Backend,
    /// Counters and limit buckets.
    pub state: State,
    fx: Effects,
    pub stats: EffectStats,
    /// Recorded steps of the current packet when tracing (drained by the caller).
    pub trace: Option<Vec<TraceStep>>,
    /// While on: per chain entry that ran, its verdict and the effects it consumed (drained by the caller;
    /// the shared corpus reads logs, NAT requests and payload writes from it).
    pub effects_log: Option<Vec<(Verdict, Effects)>>,
    /// Why the JIT was not used, when it was asked for.
    pub fallback_note: Option<String>,
}

impl std::fmt::Debug for ProgramEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramEngine")
            .field("kind", &self.kind())
            .finish()
    }
}

/// Shared handle on a [`ProgramEngine`].
pub type SharedProgram = Rc<RefCell<ProgramEngine>>;

impl ProgramEngine {
    /// An engine of `kind` (`Interp` or `Jit`; `Jit` falls back to the interpreter with a note when the JIT is
    /// not built in or cannot compile the program; `Ipt` is not a program engine and gives the interpreter).
    pub fn new(prog: Arc<VerifiedProgram>, kind: EngineKind) -> ProgramEngine {
        let state = State::new(&prog);
        let (backend, fallback_note) = match kind {
            EngineKind::Jit => Self::jit_backend(&prog),
            _ => (Backend::Interp, None),
        };
        ProgramEngine {
            prog,
            backend,
            state,
            fx: Effects::default(),
            stats: EffectStats::default(),
            trace: None,
            effects_log: None,
            fallback_note,
        }
    }

    #[cfg(feature = "jit")]
    fn jit_backend(prog: &VerifiedProgram) -> (Backend, Option<String>) {
        match nfr_jit::JitProgram::compile(prog) {
            Ok(j) => (Backend::Jit(Box::new(j)), None),
            Err(e) => (
                Backend::Interp,
                Some(format!(
                    "the JIT could not compile this ruleset ({e}); using the interpreter"
                )),
            ),
        }
    }

    #[cfg(not(feature = "jit"))]
    fn jit_backend(_prog: &VerifiedProgram) -> (Backend, Option<String>) {
        (
            Backend::Interp,
            Some("this build has no JIT (feature `jit` off); using the interpreter".to_string()),
        )
    }

    /// The executor actually in use.
    pub fn kind(&self) -> EngineKind {
        match self.backend {
            Backend::Interp => EngineKind::Interp,
            #[cfg(feature = "jit")]
            Backend::Jit(_) => EngineKind::Jit,
        }
    }

    /// The program.
    pub fn program(&self) -> &VerifiedProgram {
        &self.prog
    }

    /// Turns per-packet tracing on or off.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
        self.fx.trace_enabled = on;
    }

    /// Runs one chain on a packet (no effects applied).
    #[inline]
    pub fn run_chain(&mut self, chain: ChainId, pkt: &[u8], st: &mut PktState) -> Verdict {
        self.fx.clear();
        match &self.backend {
            Backend::Interp => self.prog.run(&mut self.state, chain, pkt, st, &mut self.fx),
            #[cfg(feature = "jit")]
            Backend::Jit(j) => j.run(&mut self.state, chain, pkt, st, &mut self.fx),
        }
    }

    /// The effects of the last [`Self::run_chain`].
    pub fn effects(&self) -> &Effects {
        &self.fx
    }
}

/// One base chain as a hook entry.
pub struct ChainEntry {
    shared: SharedProgram,
    spec: usize,
    chain: ChainId,
    nat: bool,
    label: String,
    /// The program reads conntrack facts past [`crate::ct::Conntrack::fill_pkt_state`]'s.
    ct_facts: bool,
}

impl std::fmt::Debug for ChainEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainEntry({})", self.label)
    }
}

/// Whether NAT for this hook's manipulation is due (`nf_nat_inet_fn`): NEW/RELATED with an entry, binding not
/// done. Prerouting/output manipulate the destination, input/postrouting the source.
fn nat_due(pkt: &Packet<'_>, hook: Hook) -> bool {
    let Nfct::Ct { ctinfo, .. } = pkt.nfct else {
        return false;
    };
    if !matches!(ctinfo, CtInfo::New | CtInfo::Related | CtInfo::RelatedReply) {
        return false;
    }
    pkt.state.ct_status & nat_done_bit(hook) == 0
}

/// The `nf_nat_range2` of a NAT request: snat/dnat's own addresses (`addr`; none: ports only); masquerade's the
/// output interface's address (`nf_nat_masquerade_ipv4/6`), redirect's the input interface's
/// (`nf_nat_redirect_ipv4/6`). `None`: the interface has no address, the kernel drops the packet.
fn nat_range(
    kind: NatKind,
    addr: Option<([u8; 16], [u8; 16])>,
    proto: Option<(u16, u16)>,
    flags: u32,
    pkt: &Packet<'_>,
    cx: &HookCtx<'_>,
) -> Option<NatRange> {
    let v4 = cx.nfproto == NFPROTO_IPV4;
    let daddr = || {
        let l3 = pkt.l3();
        let mut a = [0u8; 16];
        let d = if v4 { l3.get(16..20) } else { l3.get(24..40) };
        if let Some(d) = d {
            a[..d.len()].copy_from_slice(d);
        }
        a
    };
    let addr = match kind {
        NatKind::Snat | NatKind::Dnat => addr,
        NatKind::Masquerade => {
            let a = cx
                .ifaddrs
                .masquerade_source(pkt.state.oif, cx.nfproto, &daddr())?;
            Some((a, a))
        }
        NatKind::Redirect => {
            let a = cx
                .ifaddrs
                .redirect_target(cx.hook, pkt.state.iif, cx.nfproto, &daddr())?;
            Some((a, a))
        }
    };
    Some(NatRange { addr, proto, flags })
}

/// `nf_nat_setup_info` for one NAT request at this hook (the mapping becomes the entry's reply tuple, the
/// binding is done); false when masquerade or redirect found no address (counted): the packet is dropped.
fn setup_nat(
    kind: NatKind,
    addr: Option<([u8; 16], [u8; 16])>,
    proto: Option<(u16, u16)>,
    flags: u32,
    pkt: &Packet<'_>,
    cx: &mut HookCtx<'_>,
    stats: &mut EffectStats,
) -> bool {
    let manip = if dst_manip(cx.hook) {
        Manip::Dst
    } else {
        Manip::Src
    };
    let Some(range) = nat_range(kind, addr, proto, flags, pkt, cx) else {
        stats.nat_failed += 1;
        return false;
    };
    // Fails only without an unconfirmed entry to bind (nothing to do then).
    let _ = cx.ct.nf_nat_setup_info(&pkt.nfct, &range, manip, cx.now);
    true
}

fn dst_manip(hook: Hook) -> bool {
    matches!(hook, Hook::Prerouting | Hook::Output)
}

fn nat_done_bit(hook: Hook) -> u32 {
    if dst_manip(hook) {
        ips::DST_NAT_DONE
    } else {
        ips::SRC_NAT_DONE
    }
}

/// Applies the conntrack-side effects shared by every engine.
fn apply_ct_effects(
    pkt: &mut Packet<'_>,
    cx: &mut HookCtx<'_>,
    notrack: bool,
    zone: Option<u16>,
    ct_mark: Option<u32>,
    helper: Option<[u8; 16]>,
    stats: &mut EffectStats,
) {
    if notrack && matches!(pkt.nfct, Nfct::None | Nfct::Template { .. }) {
        // nft_notrack_eval: only a packet without an entry becomes untracked.
        pkt.nfct = Nfct::Untracked;
        pkt.state.ct_state = ct_state::UNTRACKED;
        pkt.state.ct_valid = false;
        stats.notrack += 1;
    } else if let Some(z) = zone
        && matches!(pkt.nfct, Nfct::None | Nfct::Template { .. })
    {
        pkt.nfct = Nfct::Template { zone: z };
    }
    if let Some(m) = ct_mark
        && matches!(pkt.nfct, Nfct::Ct { .. })
    {
        cx.ct.set_mark(&pkt.nfct, m);
        stats.ct_mark_writes += 1;
    }
    // nft_ct_helper_obj_eval: only an unconfirmed entry of the helper's protocol without a helper
    // gets one (`Conntrack::set_helper` checks the entry); FTP, the one helper, tracks TCP.
    if let Some(name) = helper
        && helper_by_name(&name) == Some(Helper::Ftp)
        && pkt.state.l4proto == 6
        && cx.ct.set_helper(&pkt.nfct, Helper::Ftp)
    {
        stats.helpers += 1;
    }
}

/// `nft_payload_set_eval` for the writes a chain asked for, in order: the checksum at `csum_at` follows the
/// change (`nft_payload_csum_inet`), and with `NFT_PAYLOAD_L4CSUM_PSEUDOHDR` the transport checksum too
/// (`nft_payload_l4csum_update`: TCP, UDP with a checksum and not a fragment, UDP-Lite, ICMPv6). A write past
/// the packet's end was refused by the chain already. The datagram is marked rewritten (its route is asked
/// again).
fn apply_payload_writes(pkt: &mut Packet<'_>, writes: &[nfr_vm::interp::PayloadWriteReq]) {
    use crate::wire::{be16, csum_replace, proto};
    let st = &pkt.state;
    let l4 = st
        .has_th
        .then_some((usize::from(st.thoff), st.l4proto, st.is_fragment));
    let data = pkt.data.to_mut();
    for w in writes {
        let end = w.offset.saturating_add(w.bytes.len());
        let Some(old) = data.get(w.offset..end).map(<[u8]>::to_vec) else {
            continue;
        };
        let mut fix = |at: usize, zero_means_none: bool| {
            if at.saturating_add(2) > data.len() {
                return;
            }
            let c = be16(data, at);
            if zero_means_none && c == 0 {
                return;
            }
            let mut n = csum_replace(c, &old, &w.bytes);
            if n == 0 {
                n = 0xffff; // CSUM_MANGLED_0
            }
            data[at..at + 2].copy_from_slice(&n.to_be_bytes());
        };
        if let Some(at) = w.csum_at {
            fix(at, false);
        }
        if w.csum_flags & nfr_vm::insn::NFT_PAYLOAD_L4CSUM_PSEUDOHDR != 0
            && let Some((thoff, l4proto, frag)) = l4
        {
            match l4proto {
                proto::TCP => fix(thoff + 16, false),
                proto::UDP if !frag => fix(thoff + 6, true),
                proto::UDPLITE => fix(thoff + 6, false),
                proto::ICMPV6 => fix(thoff + 2, false),
                _ => {}
            }
        }
        if let Some(dst) = data.get_mut(w.offset..end) {
            dst.copy_from_slice(&w.bytes);
        }
    }
    pkt.mangled = true;
}

/// The runtime's helper for a NUL-padded helper type name (`nf_conntrack_helper_try_module_get`).
fn helper_by_name(name: &[u8; 16]) -> Option<Helper> {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    match name.get(..end)? {
        b"ftp" => Some(Helper::Ftp),
        _ => None,
    }
}

impl Engine for ChainEntry {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        if self.nat && !nat_due(pkt, cx.hook) {
            return Verdict::Accept;
        }
        if self.ct_facts {
            cx.ct.fill_pkt(&pkt.nfct, cx.now, &mut pkt.state);
        }
        let mut e = self.shared.borrow_mut();
        let v = {
            let data: &[u8] = &pkt.data;
            e.run_chain(self.chain, data, &mut pkt.state)
        };
        // Most packets: a verdict and nothing else to apply or record.
        if !self.nat && e.fx.is_quiet() && e.trace.is_none() && e.effects_log.is_none() {
            return v;
        }
        self.apply(v, &mut e, pkt, cx)
    }

    fn name(&self) -> &str {
        &self.label
    }
}

impl ChainEntry {
    /// What the chain asked for besides its verdict (rejects, logs, NAT, payload writes, conntrack
    /// changes), applied to the packet, counted, traced; returns the verdict.
    #[inline(never)]
    fn apply(
        &self,
        v: Verdict,
        e: &mut ProgramEngine,
        pkt: &mut Packet<'_>,
        cx: &mut HookCtx<'_>,
    ) -> Verdict {
        let fx = std::mem::take(&mut e.fx);
        let mut stats = e.stats;
        if let Some((ty, code)) = fx.reject {
            stats.rejects += 1;
            pkt.reject = crate::reply::RejectWith::from_nft(ty, code);
        }
        stats.logs += fx.logs.len() as u64;
        stats.nat += fx.nat.len() as u64;
        if !fx.payload_writes.is_empty() {
            apply_payload_writes(pkt, &fx.payload_writes);
        }
        apply_ct_effects(
            pkt,
            cx,
            fx.notrack,
            fx.ct_zone,
            fx.ct_mark_set.then_some(pkt.state.ct_mark),
            fx.ct_helper,
            &mut stats,
        );
        let mut v = v;
        if self.nat && v == Verdict::Accept {
            for n in &fx.nat {
                let fix = |a: [u8; 16]| {
                    let mut a = a;
                    if n.family == NFPROTO_IPV4 {
                        a[4..].fill(0);
                    }
                    a
                };
                let addr = n
                    .addr_min
                    .map(|min| (fix(min), fix(n.addr_max.unwrap_or(min))));
                let proto = n.proto_min.map(|lo| (lo, n.proto_max.unwrap_or(lo)));
                if !setup_nat(n.kind, addr, proto, n.flags, pkt, cx, &mut stats) {
                    v = Verdict::Drop;
                }
            }
            cx.ct.fill_pkt(&pkt.nfct, cx.now, &mut pkt.state);
        }
        if let Some(t) = e.trace.as_mut() {
            t.push(TraceStep {
                hook: cx.hook,
                spec: self.spec,
                events: fx.trace.clone(),
                ipt_trail: Vec::new(),
                verdict: v,
                order: next_order(),
                generated: pkt.generated,
            });
        }
        if let Some(l) = e.effects_log.as_mut() {
            l.push((v, fx.clone()));
        }
        e.stats = stats;
        e.fx = fx;
        v
    }
}

/// Registers one [`ChainEntry`] per spec and family.
pub fn register_program(
    hooks: &mut Hooks,
    shared: &SharedProgram,
    specs: &[ChainSpec],
) -> Result<(), HookError> {
    let ct_facts = crate::ct::reads_ct_facts(shared.borrow().prog.program());
    for (i, s) in specs.iter().enumerate() {
        for &nf in &s.nfprotos {
            let entry = Box::new(ChainEntry {
                shared: shared.clone(),
                spec: i,
                chain: s.chain,
                nat: s.nat,
                label: s.label.clone(),
                ct_facts,
            });
            if s.nat {
                hooks.register_nat(nf, s.hook, s.priority, entry)?;
            } else {
                hooks.register(nf, s.hook, s.priority, entry)?;
            }
        }
    }
    Ok(())
}

/// One iptables table (IPv4) and its counters, shared by its hook entries.
#[derive(Debug)]
pub struct IptEngine {
    pub table: nfr_ipt::exec::ExecTable,
    /// `filter`, `nat`, ...: NAT tables run like NAT chains (first packet of a connection only).
    pub name: String,
    pub stats: EffectStats,
    pub trace: Option<Vec<TraceStep>>,
    /// While on: per hook entry that ran, its verdict and the table's effects (drained by the caller).
    pub effects_log: Option<Vec<(Verdict, Vec<nfr_ipt::exec::Effect>)>>,
}

impl IptEngine {
    /// A table's engine, no tracing.
    pub fn new(table: nfr_ipt::exec::ExecTable, name: &str) -> IptEngine {
        IptEngine {
            table,
            name: name.to_string(),
            stats: EffectStats::default(),
            trace: None,
            effects_log: None,
        }
    }
}

/// Shared handle on an [`IptEngine`].
pub type SharedIpt = Rc<RefCell<IptEngine>>;

/// One hook of an iptables table.
#[derive(Debug)]
pub struct IptEntry {
    shared: SharedIpt,
    spec: usize,
    nat: bool,
    label: String,
}

impl Engine for IptEntry {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        if self.nat && !nat_due(pkt, cx.hook) {
            return Verdict::Accept;
        }
        cx.ct.fill_pkt(&pkt.nfct, cx.now, &mut pkt.state);
        let mut e = self.shared.borrow_mut();
        let out = {
            let data: &[u8] = &pkt.data;
            e.table.do_table(cx.hook, data, &pkt.state)
        };
        let Ok(out) = out else {
            return Verdict::Accept;
        };
        let mut stats = e.stats;
        let mut notrack = false;
        let mut zone = None;
        let mut nat = Vec::new();
        use nfr_ipt::exec::Effect;
        for fx in &out.effects {
            match fx {
                Effect::Log { .. } => stats.logs += 1,
                Effect::Reject { with } => {
                    stats.rejects += 1;
                    pkt.reject = crate::reply::RejectWith::from_ipt(*with);
                }
                Effect::Nat { kind, range } => {
                    stats.nat += 1;
                    nat.push((*kind, *range));
                }
                Effect::Notrack => notrack = true,
                // A template's helper would attach when conntrack creates the entry (nfc lowers no
                // rule to `CT --helper`; `ct helper set` acts after conntrack).
                Effect::CtTemplate { zone: z, .. } => zone = Some(*z),
                _ => {}
            }
        }
        pkt.state.mark = out.mark;
        let ct_mark = (out.ct_mark != pkt.state.ct_mark).then_some(out.ct_mark);
        pkt.state.ct_mark = out.ct_mark;
        apply_ct_effects(pkt, cx, notrack, zone, ct_mark, None, &mut stats);
        let mut verdict = out.verdict;
        if self.nat && verdict == Verdict::Accept {
            use nfr_ipt::layout::{NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED};
            use nfr_ipt::model::NatKind as K;
            for (kind, r) in nat {
                let kind = match kind {
                    K::Snat => NatKind::Snat,
                    K::Dnat => NatKind::Dnat,
                    K::Masquerade => NatKind::Masquerade,
                    K::Redirect => NatKind::Redirect,
                };
                let a16 = |a: [u8; 4]| {
                    let mut x = [0u8; 16];
                    x[..4].copy_from_slice(&a);
                    x
                };
                let addr = (r.flags & NF_NAT_RANGE_MAP_IPS != 0)
                    .then(|| (a16(r.min_addr), a16(r.max_addr)));
                let proto = (r.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0)
                    .then_some((r.min_proto, r.max_proto));
                if !setup_nat(kind, addr, proto, r.flags, pkt, cx, &mut stats) {
                    verdict = Verdict::Drop;
                }
            }
            cx.ct.fill_pkt(&pkt.nfct, cx.now, &mut pkt.state);
        }
        e.stats = stats;
        if let Some(t) = e.trace.as_mut() {
            t.push(TraceStep {
                hook: cx.hook,
                spec: self.spec,
                events: Vec::new(),
                ipt_trail: out.trail.clone(),
                verdict,
                order: next_order(),
                generated: pkt.generated,
            });
        }
        if let Some(l) = e.effects_log.as_mut() {
            l.push((verdict, out.effects.clone()));
        }
        verdict
    }

    fn name(&self) -> &str {
        &self.label
    }
}

/// Registers an iptables table (IPv4) on each of its hooks at the given priorities (`NF_IP_PRI_*` of the table;
/// nat uses dstnat on PREROUTING/OUTPUT and srcnat on INPUT/POSTROUTING). `spec` is an index the caller uses to
/// name the table in traces.
pub fn register_ipt(
    hooks: &mut Hooks,
    shared: &SharedIpt,
    at: &[(Hook, i32)],
    spec: usize,
) -> Result<(), HookError> {
    let (nat, name) = {
        let e = shared.borrow();
        (e.name == "nat", e.name.clone())
    };
    for &(h, priority) in at {
        let entry = Box::new(IptEntry {
            shared: shared.clone(),
            spec,
            nat,
            label: format!("iptables {name} {}", h.name()),
        });
        if nat {
            hooks.register_nat(nfr_vm::pkt::NFPROTO_IPV4, h, priority, entry)?;
        } else {
            hooks.register(nfr_vm::pkt::NFPROTO_IPV4, h, priority, entry)?;
        }
    }
    Ok(())
}

/// The hooks and priorities of an iptables table (`nfr_proto::hook::IPT_TABLES`), by name and `valid_hooks`
/// mask (an unknown name registers at the filter priority).
pub fn ipt_table_hooks(name: &str, valid_hooks: u32) -> Vec<(Hook, i32)> {
    let t = nfr_proto::hook::IptTable::by_name(name).copied();
    let t = t.unwrap_or(nfr_proto::hook::IptTable {
        name: "filter",
        valid_hooks,
    });
    Hook::ALL
        .into_iter()
        .filter(|h| valid_hooks & (1 << (*h as u32)) != 0)
        .map(|h| (h, t.priority(h)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct::{Conntrack, Settings};
    use crate::hook::Route;
    use crate::pcap::linktype;
    use crate::wire::build;
    use nfr_vm::insn::{Data, Insn, MetaKey, PayloadBase};
    use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};
    use nfr_vm::program::Policy;
    use nfr_vm::{ChainVerdict, Program, Reg};

    /// raw prerouting: notrack udp dport 53; filter input: tcp dport 22 counter accept, policy drop.
    fn prog() -> (Arc<VerifiedProgram>, Vec<ChainSpec>) {
        let mut p = Program::new();
        let raw = p.add_base_chain("raw", Hook::Prerouting, -300, Policy::Accept);
        p.add_rule(
            raw,
            vec![
                Insn::meta(MetaKey::L4proto, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::u8(17)),
                Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::be16(53)),
                Insn::Notrack,
            ],
        );
        let input = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
        let c = p.add_counter();
        p.add_rule(
            input,
            vec![
                Insn::meta(MetaKey::L4proto, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::u8(6)),
                Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::be16(22)),
                Insn::Counter(c),
                Insn::ImmVerdict(ChainVerdict::Accept),
            ],
        );
        let specs = vec![
            ChainSpec {
                chain: raw,
                nfprotos: vec![NFPROTO_IPV4, NFPROTO_IPV6],
                hook: Hook::Prerouting,
                priority: -300,
                nat: false,
                label: "inet raw prerouting".into(),
            },
            ChainSpec {
                chain: input,
                nfprotos: vec![NFPROTO_IPV4],
                hook: Hook::Input,
                priority: 0,
                nat: false,
                label: "ip filter input".into(),
            },
        ];
        (Arc::new(p.verify().unwrap()), specs)
    }

    #[test]
    fn chains_at_their_hooks_with_effects() {
        let (p, specs) = prog();
        let shared = Rc::new(RefCell::new(ProgramEngine::new(p, EngineKind::Interp)));
        let mut h = Hooks::with_conntrack();
        register_program(&mut h, &shared, &specs).unwrap();
        let names: Vec<String> = h
            .entries(NFPROTO_IPV4, Hook::Prerouting)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(
            names,
            ["nf_defrag", "inet raw prerouting", "nf_conntrack_in"]
        );
        let mut ct = Conntrack::new(Settings {
            checksum: false,
            ..Settings::default()
        });
        let a = "10.0.0.1".parse().unwrap();
        let b = "10.0.0.2".parse().unwrap();
        let ssh = build::tcp(a, b, 1000, 22, 1, 0, 2, 100, &[], b"");
        let dns = build::udp(a, b, 1000, 53, b"x");
        let other = build::udp(a, b, 1000, 54, b"x");
        let mut p = Packet::from_frame(linktype::RAW, &ssh, 0).unwrap();
        assert_eq!(
            h.receive(&mut p, Route::Local, &mut ct, 0).1,
            crate::hook::HookOutcome::Accept
        );
        let mut p = Packet::from_frame(linktype::RAW, &dns, 0).unwrap();
        assert_eq!(
            h.receive(&mut p, Route::Local, &mut ct, 0),
            (Hook::Input, crate::hook::HookOutcome::Drop)
        );
        assert_eq!(p.state.ct_state, ct_state::UNTRACKED);
        let mut p = Packet::from_frame(linktype::RAW, &other, 0).unwrap();
        h.receive(&mut p, Route::Local, &mut ct, 0);
        // Only the ssh flow is confirmed (dns untracked, the other one dropped before confirm).
        assert_eq!(ct.len(0), 1);
        let e = shared.borrow();
        assert_eq!(e.stats.notrack, 1);
        assert_eq!(e.state.counters[0].packets, 1);
        assert_eq!(e.state.counters[0].bytes, ssh.len() as u64);
    }

    #[test]
    fn jit_request_reports_its_backend() {
        let (p, _) = prog();
        let e = ProgramEngine::new(p, EngineKind::Jit);
        // Either the JIT compiled it, or the fallback says why.
        assert!(e.kind() == EngineKind::Jit || e.fallback_note.is_some());
    }
}
