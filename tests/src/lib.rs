//! nfr-testsuite: the shared engine corpus (`testdata/cases/*.toml`, regex-automata's habit)
//! and the harness that runs every case on every engine.
//!
//! A case is a ruleset (inline `rules` or a `file` relative to the workspace root) plus
//! packets built from header fields (or raw hex) with the hook, devices, mark and conntrack
//! state they arrive with, the verdict each must get and the side effects it must leave
//! (mark, ct mark, log, reject, NAT request); after all packets, the per-rule counters. Or
//! a ruleset the checker must reject, with the diagnostic code and `line:col`.
//!
//! Engines implement [`Engine`]: `prepare` a checked ruleset (or [`Skip`] it), then `run`
//! packets. Every engine runs through the runtime's own hook path, as `nfc run pcap` does: the
//! ruleset is loaded by `nfr_host` into a `runtime::hook::Hooks` registry beside defrag,
//! conntrack and confirm, and a packet runs through every entry of its hook and family
//! (`Hooks::run`, `nf_hook_slow`: by priority, of equal priorities the later registration first,
//! as `nf_hook_entries_grow` orders them; nat chains inside the NAT hooks, for the first packet of
//! a connection only). The side effects are what the engine entries consumed (their effect logs).
//! [`Interp`] is the reference (nfc's bytecode interpreter); [`Jit`] and the iptables blob engine
//! ([`engine_ipt::Ipt`]) must agree with it, with [`SKIP`] listing what an engine cannot express.
//! The library never opens files: the test binary reads the corpus and hands over text.

#![forbid(unsafe_code)]

pub mod engine_ipt;
pub mod packet;

use nfr_compiler::check::check_source;
use nfr_compiler::hir::{Family, Hir};
use nfr_host::{Loaded, Lowered};
use nfr_runtime::ct::{Conntrack, CtInfo, Nfct, Settings};
use nfr_runtime::engine::{EngineKind, SharedProgram};
use nfr_runtime::hook::{HookOutcome, Hooks, Packet};
use nfr_vm::interp::NatRequest;
use nfr_vm::pkt::ct_state;
use nfr_vm::{Hook, Insn, PktState, Verdict};
use serde::Deserialize;
use std::borrow::Cow;

pub use packet::{BuiltPacket, PacketSpec};

/// Cases an engine cannot run, with the reason: `(engine, case name substring, why)`.
pub const SKIP: &[(&str, &str, &str)] = &[
    // The interpreter is the reference: it runs everything.
    // ("jit", "…", "…"), ("ipt", "sets/", "iptables has no sets without ipset"),
];

/// One corpus file: `[[case]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Inline ruleset.
    pub rules: Option<String>,
    /// Ruleset file relative to the workspace root (e.g. `examples/server.nfr`).
    pub file: Option<String>,
    /// Default hook for packets (`input` unless given).
    pub hook: Option<String>,
    /// Queue numbers with a listener (`nfnetlink_queue` bound); without the field every queue has
    /// one, as under `nfc run pcap`.
    pub queues: Option<Vec<u16>>,
    /// Expected diagnostic code (the ruleset must be rejected).
    pub error: Option<String>,
    /// `line:col` of the expected diagnostic's primary span.
    pub at: Option<String>,
    #[serde(rename = "packet", default)]
    pub packets: Vec<PacketSpec>,
    #[serde(rename = "counter", default)]
    pub counters: Vec<CounterSpec>,
    /// Expected totals of named counter objects (`counter NAME { }`) after all packets.
    #[serde(rename = "object", default)]
    pub objects: Vec<ObjectSpec>,
}

/// An expected named counter object total after all packets: object `name` (`name` or
/// `table/name`), including its declared start values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    pub name: String,
    pub packets: u64,
    pub bytes: Option<u64>,
}

/// An expected counter value after all packets: the `counter` of rule `rule` (0-based) of
/// chain `chain` (`name` or `table/name`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSpec {
    pub chain: String,
    pub rule: usize,
    pub packets: u64,
    pub bytes: Option<u64>,
}

impl Case {
    /// The host the case's packets meet.
    pub fn host(&self) -> HostSpec {
        HostSpec {
            queues: self.queues.clone(),
        }
    }
}

/// Parse a corpus file's text.
pub fn parse_corpus(text: &str) -> Result<CorpusFile, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// Why an engine does not run a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

/// What one packet came out with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// `skb->mark` after the traversal.
    pub mark: u32,
    /// `ct mark` after the traversal.
    pub ct_mark: u32,
    /// Log prefixes of the `log` statements that fired (empty string: no prefix).
    pub logs: Vec<String>,
    pub rejected: bool,
    pub notrack: bool,
    /// NAT requests as `kind addr[:port]` strings.
    pub nat: Vec<String>,
    /// Payload writes as `offset:hexbytes`.
    pub writes: Vec<String>,
    /// The ct helper type `ct helper set` recorded (`Effects::ct_helper`), if any.
    pub helper: Option<String>,
}

/// An engine prepared for one ruleset.
pub trait Prepared {
    /// Run one packet through its hook (every base chain of the hook and family, by
    /// priority) and report the verdict and side effects.
    fn run(&mut self, pkt: &BuiltPacket) -> Outcome;
    /// Counter of the rule `rule` of chain `chain` (`name` or `table/name`): (packets,
    /// bytes), `None` if that rule has no counter.
    fn counter(&self, chain: &str, rule: usize) -> Option<(u64, u64)>;
    /// Total of the named counter object `name` (`name` or `table/name`): (packets, bytes),
    /// `None` if the engine has no such object.
    fn object(&self, _name: &str) -> Option<(u64, u64)> {
        None
    }
}

/// What the host of a case has besides the ruleset.
#[derive(Debug, Clone, Default)]
pub struct HostSpec {
    /// Queue numbers with a listener; `None`: every queue (`Case::queues`).
    pub queues: Option<Vec<u16>>,
}

/// An execution engine.
pub trait Engine {
    fn name(&self) -> &'static str;
    fn prepare(&self, hir: &Hir, host: &HostSpec) -> Result<Box<dyn Prepared>, Skip>;
    /// Whether a ruleset this engine cannot express is a skip rather than a failure. Only the
    /// iptables engine says yes: the interpreter and the JIT must run every ruleset that checks.
    fn partial(&self) -> bool {
        false
    }
}

/// The reference engine: the bytecode program (`lower::lower_verified`) run by `vm::interp`, its base
/// chains hook entries (`runtime::engine::ChainEntry`) of the registry nfr-host builds.
pub struct Interp;

/// The Cranelift JIT (`nfr_jit`): the same program compiled to native code. It must give the
/// interpreter's results on every case, so a compile failure is a failure, not a skip.
pub struct Jit;

/// A case's host: the registry `nfc run pcap` runs (defrag, conntrack, confirm and the NAT hooks beside
/// the ruleset's entries, every queue with a listener; `nfr_host`), the addresses of its devices
/// ([`packet::host_addresses`]) and its conntrack table.
pub(crate) struct Host {
    hooks: Hooks,
    ct: Conntrack,
}

/// How a packet came out of its hook.
pub(crate) struct Ran {
    pub outcome: HookOutcome,
    /// The packet context after the traversal.
    pub state: PktState,
    /// `notrack` made it untracked (it arrived tracked or without an entry).
    pub notrack: bool,
}

impl Host {
    /// Loads `lowered` into a new registry with the listeners `spec` gives; the engines' effect logs
    /// are on.
    pub(crate) fn new(lowered: &Lowered, spec: &HostSpec) -> Result<(Host, Loaded), Skip> {
        let mut hooks = nfr_host::hooks();
        hooks.ifaddrs = packet::host_addresses();
        if let Some(q) = &spec.queues {
            hooks.queue_sink = false;
            for &n in q {
                hooks.listen_queue(n);
            }
        }
        let opts = nfr_host::Options {
            trace: false,
            effects: true,
        };
        let loaded = lowered
            .register(&mut hooks, opts)
            .map_err(|e| Skip(e.to_string()))?;
        let ct = Conntrack::new(Settings {
            checksum: false,
            ..Settings::default()
        });
        Ok((Host { hooks, ct }, loaded))
    }

    /// Runs `pkt` through every entry of its hook and family (`Hooks::run`, `nf_hook_slow`). It arrives
    /// with the conntrack state the case gives, as an entry attached to it (the engines read the
    /// state from the entry, as the kernel's do): a `new` packet at PREROUTING or OUTPUT meets
    /// conntrack's own entry (-200), which creates it; at the other hooks it has been through
    /// conntrack already, and `new`, `established` and `related` packets get their entry here
    /// ([`Host::attach`]); `untracked` is untracked, `invalid` has no entry.
    /// Each packet's state is its own: the conntrack table starts empty for every packet.
    pub(crate) fn run(&mut self, pkt: &BuiltPacket) -> Ran {
        let now = pkt.state.tstamp_ns;
        self.ct.flush(now);
        let mut p = Packet {
            data: Cow::Borrowed(&pkt.bytes),
            state: pkt.state.clone(),
            nfct: Nfct::None,
            reject: None,
            generated: false,
            mangled: false,
            rewrites: Vec::new(),
        };
        let st = &pkt.state;
        let reply = st.ct_direction == nfr_vm::pkt::IP_CT_DIR_REPLY;
        let ctinfo = match st.ct_state {
            _ if !st.ct_valid => None,
            ct_state::NEW => Some(CtInfo::New),
            ct_state::ESTABLISHED if reply => Some(CtInfo::EstablishedReply),
            ct_state::ESTABLISHED => Some(CtInfo::Established),
            ct_state::RELATED if reply => Some(CtInfo::RelatedReply),
            ct_state::RELATED => Some(CtInfo::Related),
            _ => None,
        };
        if st.ct_state == ct_state::UNTRACKED {
            p.nfct = Nfct::Untracked;
        } else if let Some(ci) = ctinfo
            && !(ci == CtInfo::New && matches!(pkt.hook, Hook::Prerouting | Hook::Output))
        {
            p.nfct = self.attach(pkt, ci, now);
            self.ct.fill_pkt(&p.nfct, now, &mut p.state);
        }
        let arrived_untracked = p.nfct == Nfct::Untracked;
        let outcome = self.hooks.run(pkt.hook, &mut p, &mut self.ct, now);
        self.hooks.queued.clear();
        let notrack = !arrived_untracked && p.nfct == Nfct::Untracked;
        // The packet's reference goes with it (`kfree_skb` / `consume_skb`; a queue's listener here
        // consumes what it gets).
        self.ct.release(&mut p.nfct);
        Ran {
            outcome,
            state: p.state,
            notrack,
        }
    }
}

impl Host {
    /// The conntrack entry a packet in state `ctinfo` carries: the connection's first packet (this
    /// one, or for a reply this one turned around; a TCP SYN) through `nf_conntrack_in`, confirmed
    /// and marked as having seen a reply unless the packet itself is new, with the case's status
    /// bits, mark and zone. `Nfct::None` when conntrack cannot track the packet (a cut header).
    fn attach(&mut self, pkt: &BuiltPacket, ctinfo: CtInfo, now: u64) -> Nfct {
        let st = &pkt.state;
        let first = packet::first_of_connection(&pkt.bytes, ctinfo.dir() == 1);
        let mut nfct = match st.ct_zone {
            0 => Nfct::None,
            zone => Nfct::Template { zone },
        };
        let _ = self
            .ct
            .conntrack_in(&first, Hook::Prerouting, now, &mut nfct);
        let Nfct::Ct { id, .. } = nfct else {
            return Nfct::None;
        };
        let mut status = st.ct_status;
        if ctinfo != CtInfo::New {
            let _ = self.ct.confirm(&first, now, &mut nfct);
            if matches!(ctinfo, CtInfo::Established | CtInfo::EstablishedReply) {
                status |= nfr_vm::pkt::ips::SEEN_REPLY;
            }
        }
        let nfct = Nfct::Ct { id, ctinfo };
        self.ct.set_status_bits(&nfct, status);
        if st.ct_mark != 0 {
            self.ct.set_mark(&nfct, st.ct_mark);
        }
        nfct
    }
}

impl Ran {
    /// The corpus outcome of the traversal, before the entries' effects are added: its verdict (how it
    /// ended, a queue with the verdict's own flags: `queued` is the verdict of the entry that queued it),
    /// the marks and notrack.
    pub(crate) fn outcome(&self, queued: Option<Verdict>) -> Outcome {
        let verdict = match self.outcome {
            HookOutcome::Accept => Verdict::Accept,
            HookOutcome::Drop | HookOutcome::TtlExceeded => Verdict::Drop,
            HookOutcome::Stolen => Verdict::Stolen,
            HookOutcome::Queued { num, .. } => match queued {
                Some(v @ Verdict::Queue { .. }) => v,
                _ => Verdict::Queue { num, bypass: false },
            },
        };
        Outcome {
            verdict,
            mark: self.state.mark,
            ct_mark: self.state.ct_mark,
            logs: Vec::new(),
            rejected: false,
            notrack: self.notrack,
            nat: Vec::new(),
            writes: Vec::new(),
            helper: None,
        }
    }
}

struct ProgramPrepared {
    host: Host,
    engine: SharedProgram,
    /// Per chain: (table family, table name).
    tables: Vec<(Family, String)>,
    /// Named counter objects as `table/name` (object `i` is `CounterId(i)`).
    objects: Vec<String>,
}

/// `table/name` of every named counter object, in `Hir::counters` order.
fn object_names(hir: &Hir) -> Vec<String> {
    hir.counters
        .iter()
        .map(|o| {
            let t = hir.table(o.table).map_or("", |t| t.name.as_str());
            format!("{t}/{}", o.name)
        })
        .collect()
}

/// The bytecode engines (`kind` interp or jit) loaded into a host.
fn prepare_program(
    hir: &Hir,
    host: &HostSpec,
    kind: EngineKind,
) -> Result<Box<dyn Prepared>, Skip> {
    let lowered = Lowered::new(hir, kind).map_err(|e| Skip(e.to_string()))?;
    let (host, loaded) = Host::new(&lowered, host)?;
    let engine = loaded
        .prog
        .ok_or_else(|| Skip("no program engine".into()))?;
    if engine.borrow().kind() != kind {
        let why = engine.borrow().fallback_note.clone().unwrap_or_default();
        return Err(Skip(format!("JIT: {why}")));
    }
    let tables = hir
        .chains
        .iter()
        .map(|c| {
            hir.table(c.table)
                .map(|t| (t.family, t.name.clone()))
                .unwrap_or((Family::Ip, String::new()))
        })
        .collect();
    Ok(Box::new(ProgramPrepared {
        host,
        engine,
        tables,
        objects: object_names(hir),
    }))
}

impl Engine for Interp {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn prepare(&self, hir: &Hir, host: &HostSpec) -> Result<Box<dyn Prepared>, Skip> {
        prepare_program(hir, host, EngineKind::Interp)
    }
}

impl Engine for Jit {
    fn name(&self) -> &'static str {
        "jit"
    }
    fn prepare(&self, hir: &Hir, host: &HostSpec) -> Result<Box<dyn Prepared>, Skip> {
        prepare_program(hir, host, EngineKind::Jit)
    }
}

/// `kind addr[:port]` of a NAT request.
pub fn nat_string(n: &NatRequest) -> String {
    use nfr_vm::insn::NatKind;
    let kind = match n.kind {
        NatKind::Snat => "snat",
        NatKind::Dnat => "dnat",
        NatKind::Masquerade => "masquerade",
        NatKind::Redirect => "redirect",
    };
    let mut s = kind.to_string();
    if let Some(a) = n.addr_min {
        let addr: std::net::IpAddr = if n.family == nfr_vm::pkt::NFPROTO_IPV6 {
            std::net::Ipv6Addr::from(a).into()
        } else {
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).into()
        };
        s.push(' ');
        s.push_str(&addr.to_string());
    }
    if let Some(p) = n.proto_min {
        s.push_str(&format!(":{p}"));
    }
    s
}

impl ProgramPrepared {
    fn chain_matches(&self, prog: &nfr_vm::Program, ci: usize, spec: &str) -> bool {
        let Some(c) = prog.chains.get(ci) else {
            return false;
        };
        match spec.split_once('/') {
            Some((t, n)) => n == c.name && self.tables.get(ci).is_some_and(|x| x.1 == t),
            None => spec == c.name,
        }
    }
}

impl Prepared for ProgramPrepared {
    fn run(&mut self, pkt: &BuiltPacket) -> Outcome {
        let ran = self.host.run(pkt);
        let log = self
            .engine
            .borrow_mut()
            .effects_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let queued = log.last().map(|(v, _)| *v);
        let mut out = ran.outcome(queued);
        for (_, fx) in &log {
            out.logs.extend(
                fx.logs
                    .iter()
                    .map(|l| l.spec.prefix.clone().unwrap_or_default()),
            );
            out.rejected |= fx.reject.is_some();
            out.nat.extend(fx.nat.iter().map(nat_string));
            out.writes.extend(fx.payload_writes.iter().map(|w| {
                let hex: String = w.bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}:{hex}", w.offset)
            }));
            if let Some(h) = fx.ct_helper {
                let end = h.iter().position(|&b| b == 0).unwrap_or(h.len());
                out.helper =
                    Some(String::from_utf8_lossy(h.get(..end).unwrap_or(&[])).into_owned());
            }
        }
        out
    }

    fn object(&self, name: &str) -> Option<(u64, u64)> {
        let i = self
            .objects
            .iter()
            .position(|o| o == name || o.split_once('/').is_some_and(|(_, n)| n == name))?;
        let e = self.engine.borrow();
        e.state.counters.get(i).map(|c| (c.packets, c.bytes))
    }

    fn counter(&self, chain: &str, rule: usize) -> Option<(u64, u64)> {
        let e = self.engine.borrow();
        let prog = e.program().program();
        let ci = (0..prog.chains.len()).find(|&i| self.chain_matches(prog, i, chain))?;
        let rid = *prog.chains.get(ci)?.rules.get(rule)?;
        prog.rule_insns(rid).iter().find_map(|i| match i {
            Insn::Counter(id) => e
                .state
                .counters
                .get(id.0 as usize)
                .map(|c| (c.packets, c.bytes)),
            _ => None,
        })
    }
}

/// The engines every case runs on.
pub fn engines() -> Vec<Box<dyn Engine>> {
    vec![Box::new(Interp), Box::new(Jit), Box::new(engine_ipt::Ipt)]
}

/// `NFR_TEST=a,-b`: run cases whose `file/name` contains `a` (any positive term, or all if
/// none) and none of the `-` terms.
pub fn selected(filter: Option<&str>, id: &str) -> bool {
    let Some(f) = filter else { return true };
    let terms: Vec<&str> = f
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let (neg, pos): (Vec<&str>, Vec<&str>) = terms.iter().partition(|t| t.starts_with('-'));
    if neg.iter().any(|n| id.contains(&n[1..])) {
        return false;
    }
    pos.is_empty() || pos.iter().any(|p| id.contains(p))
}

/// Whether `engine` skips case `id`, and why.
pub fn skipped(engine: &str, id: &str) -> Option<&'static str> {
    SKIP.iter()
        .find(|(e, c, _)| *e == engine && id.contains(c))
        .map(|(_, _, why)| *why)
}

/// Run one case (ruleset text already loaded) on one engine; every failure is pushed to
/// `fails` as one line. Returns the number of packets run, or a skip reason.
pub fn run_case(
    id: &str,
    case: &Case,
    source: &str,
    engine: &dyn Engine,
    fails: &mut Vec<String>,
) -> Result<usize, Skip> {
    let (sm, hir, diags) = check_source(id, source);
    if let Some(code) = &case.error {
        let hit = diags
            .iter()
            .find(|d| d.is_error() && d.code == code.as_str());
        match hit {
            None => fails.push(format!(
                "{id}: expected error {code}, got [{}]",
                diags.iter().map(|d| d.code).collect::<Vec<_>>().join(", ")
            )),
            Some(d) => {
                if let Some(at) = &case.at {
                    let (l, c) = sm.line_col(d.primary.file, d.primary.start);
                    let got = format!("{l}:{c}");
                    if got != *at {
                        fails.push(format!("{id}: {code} at {got}, expected at {at}"));
                    }
                }
                if hir.is_some() {
                    fails.push(format!("{id}: a Hir was produced despite {code}"));
                }
            }
        }
        return Ok(0);
    }
    let Some(hir) = hir else {
        fails.push(format!(
            "{id}: ruleset rejected: {}",
            diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{} {}", d.code, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        return Ok(0);
    };
    let mut prep = engine.prepare(&hir, &case.host())?;
    let default_hook = case.hook.as_deref().unwrap_or("input");
    for (i, p) in case.packets.iter().enumerate() {
        let built = match packet::build(p, default_hook) {
            Ok(b) => b,
            Err(e) => {
                fails.push(format!("{id} packet #{i}: bad packet spec: {e}"));
                continue;
            }
        };
        for rep in 0..p.count.unwrap_or(1).max(1) {
            let out = prep.run(&built);
            let what = if rep == 0 {
                p.label(i)
            } else {
                format!("{} (copy {})", p.label(i), rep + 1)
            };
            let want = p.expect.as_str();
            if verdict_name(out.verdict) != want {
                fails.push(format!(
                    "{id} [{}] {what}: verdict {}, expected {want}",
                    engine.name(),
                    verdict_name(out.verdict)
                ));
            }
            if let Some(m) = p.mark_after
                && out.mark != m
            {
                fails.push(format!(
                    "{id} [{}] {what}: mark {:#x}, expected {m:#x}",
                    engine.name(),
                    out.mark
                ));
            }
            if let Some(m) = p.ct_mark_after
                && out.ct_mark != m
            {
                fails.push(format!(
                    "{id} [{}] {what}: ct mark {:#x}, expected {m:#x}",
                    engine.name(),
                    out.ct_mark
                ));
            }
            if let Some(l) = &p.logged {
                let ok = match l {
                    Logged::Flag(b) => out.logs.is_empty() != *b,
                    Logged::Prefix(s) => out.logs.iter().any(|x| x == s),
                };
                if !ok {
                    fails.push(format!(
                        "{id} [{}] {what}: logs {:?}, expected {l:?}",
                        engine.name(),
                        out.logs
                    ));
                }
            }
            if let Some(r) = p.rejected
                && out.rejected != r
            {
                fails.push(format!(
                    "{id} [{}] {what}: rejected {}, expected {r}",
                    engine.name(),
                    out.rejected
                ));
            }
            if let Some(r) = p.notrack
                && out.notrack != r
            {
                fails.push(format!(
                    "{id} [{}] {what}: notrack {}, expected {r}",
                    engine.name(),
                    out.notrack
                ));
            }
            if let Some(w) = &p.writes
                && out.writes != *w
            {
                fails.push(format!(
                    "{id} [{}] {what}: writes {:?}, expected {w:?}",
                    engine.name(),
                    out.writes
                ));
            }
            if let Some(h) = &p.helper {
                let got = out.helper.as_deref().unwrap_or("");
                if got != h {
                    fails.push(format!(
                        "{id} [{}] {what}: ct helper {got:?}, expected {h:?}",
                        engine.name()
                    ));
                }
            }
            if let Some(n) = &p.nat {
                let ok = if n.is_empty() {
                    out.nat.is_empty()
                } else {
                    out.nat.iter().any(|x| x == n)
                };
                if !ok {
                    fails.push(format!(
                        "{id} [{}] {what}: nat {:?}, expected {n:?}",
                        engine.name(),
                        out.nat
                    ));
                }
            }
        }
    }
    for c in &case.counters {
        match prep.counter(&c.chain, c.rule) {
            None => fails.push(format!(
                "{id} [{}]: no counter in {} rule {}",
                engine.name(),
                c.chain,
                c.rule
            )),
            Some((p, b)) => {
                if p != c.packets || c.bytes.is_some_and(|x| x != b) {
                    fails.push(format!(
                        "{id} [{}]: counter {} rule {} = {p} packets {b} bytes, expected {} packets{}",
                        engine.name(),
                        c.chain,
                        c.rule,
                        c.packets,
                        c.bytes.map(|b| format!(" {b} bytes")).unwrap_or_default()
                    ));
                }
            }
        }
    }
    for o in &case.objects {
        match prep.object(&o.name) {
            None => fails.push(format!(
                "{id} [{}]: no counter object {}",
                engine.name(),
                o.name
            )),
            Some((p, b)) => {
                if p != o.packets || o.bytes.is_some_and(|x| x != b) {
                    fails.push(format!(
                        "{id} [{}]: counter object {} = {p} packets {b} bytes, expected {} packets{}",
                        engine.name(),
                        o.name,
                        o.packets,
                        o.bytes.map(|b| format!(" {b} bytes")).unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(case
        .packets
        .iter()
        .map(|p| p.count.unwrap_or(1).max(1))
        .sum())
}

/// `logged = true|false` or `logged = "prefix"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Logged {
    Flag(bool),
    Prefix(String),
}

/// The corpus name of a verdict: `accept`, `drop`, `stolen`, `repeat`, `queue` or
/// `queue:N` (with `:bypass`).
pub fn verdict_name(v: Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Stolen => "stolen".into(),
        Verdict::Repeat => "repeat".into(),
        Verdict::Queue { num, bypass } => {
            let mut s = if num == 0 {
                "queue".to_string()
            } else {
                format!("queue:{num}")
            };
            if bypass {
                s.push_str(":bypass");
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_terms() {
        assert!(selected(None, "a/b"));
        assert!(selected(Some("sets"), "sets.toml/x"));
        assert!(!selected(Some("sets"), "jumps.toml/x"));
        assert!(!selected(Some("-slow"), "x/slow-one"));
        assert!(selected(Some("x,-slow"), "x/fast"));
    }

    #[test]
    fn verdict_names() {
        assert_eq!(verdict_name(Verdict::Accept), "accept");
        assert_eq!(
            verdict_name(Verdict::Queue {
                num: 3,
                bypass: true
            }),
            "queue:3:bypass"
        );
    }
}
