//! The report of `nfc run pcap`: a [`Collector`] consumes frame records in frame order (streaming `--trace`
//! lines and conntrack events as they come, writing `--write-accepted/--write-dropped` pcaps) and prints the
//! totals, the ruleset with its counters (`nft list ruleset` form), the conntrack table and, with `--json`, all of
//! it as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use nfr_grammar::ast::{CommandKind, StmtKind, TableItem};
use nfr_runtime::ct::{CtEvent, CtEventKind};
use nfr_runtime::engine::TraceStep;
use nfr_runtime::hook::HookOutcome;
use nfr_runtime::replay::{Direction, Fate, SeenState};
use nfr_vm::interp::TraceEvent;
use nfr_vm::{ChainVerdict, CounterId, Hook, Insn, RuleId, Verdict};
use serde_json::{Value, json};

use super::pcapw::PcapWriter;
use super::progress::Progress;
use super::setup::Setup;
use super::worker::{Counted, FrameRecord, Rewritten, RunEnd};
use super::{Args, print};

/// A trace's rules (as [`Collector::trace_rules`] gives them), one line each: `chain rule R (verdict V)` or
/// `chain policy P`.
fn rule_lines(out: &mut String, indent: &str, rules: &[Value]) {
    for ru in rules {
        let chain = ru["chain"].as_str().unwrap_or("");
        if let Some(p) = ru["policy"].as_str() {
            let _ = writeln!(out, "{indent}{chain} policy {p}");
        } else {
            let _ = writeln!(
                out,
                "{indent}{chain} rule {} (verdict {})",
                ru["rule"].as_str().unwrap_or(""),
                ru["verdict"].as_str().unwrap_or("")
            );
        }
    }
}

/// A packet's NAT rewrites, one line each: `nat HOOK: BEFORE -> AFTER` (tcpdump-style summaries).
fn nat_lines(out: &mut String, indent: &str, rewrites: &[Rewritten]) {
    for w in rewrites {
        let _ = writeln!(
            out,
            "{indent}nat {}: {} -> {}",
            w.hook.name(),
            w.before,
            w.after
        );
    }
}

/// The same as JSON: `[{"hook", "before", "after"}]`.
fn nat_json(rewrites: &[Rewritten]) -> Value {
    rewrites
        .iter()
        .map(|w| json!({"hook": w.hook.name(), "before": w.before, "after": w.after}))
        .collect()
}

/// `--profile`: (stage, ns a frame) over the timed frames.
fn profile_stages(end: &RunEnd) -> Option<Vec<(&'static str, f64)>> {
    let p = end.profile?;
    let n = p.timed.max(1) as f64;
    let h = p.hooks;
    let c = p.clock_ns;
    // Every interval holds one clock read; the replay's also holds two for each hook entry timed inside it.
    let net = |(ns, k): (u64, u64)| ns.saturating_sub(k * c);
    let entries = h.defrag.1 + h.conntrack.1 + h.chains.1 + h.other.1;
    let inner = net(h.defrag) + net(h.conntrack) + net(h.chains) + net(h.other);
    let parse = p
        .replay_ns
        .saturating_sub(inner + (2 * entries + p.timed) * c);
    let per = |ns: u64| ns as f64 / n;
    Some(vec![
        ("read", per(net((p.read_ns, p.timed)))),
        ("parse, route, rest", per(parse)),
        ("defrag", per(net(h.defrag))),
        ("conntrack", per(net(h.conntrack))),
        ("chains", per(net(h.chains))),
        ("report", per(net((p.report_ns, p.timed)))),
    ])
}

/// Hooks a direction passes, in order.
pub fn path_hooks(d: Direction) -> &'static [Hook] {
    d.hooks()
}

/// Outcome names, indexed by [`outcome_index`].
const OUTCOMES: [&str; 5] = ["accept", "drop", "stolen", "queue", "ttl_exceeded"];

fn outcome_index(o: HookOutcome) -> usize {
    match o {
        HookOutcome::Accept => 0,
        HookOutcome::Drop => 1,
        HookOutcome::Stolen => 2,
        HookOutcome::Queued { .. } => 3,
        HookOutcome::TtlExceeded => 4,
    }
}

fn outcome_name(o: HookOutcome) -> &'static str {
    OUTCOMES[outcome_index(o)]
}

fn verdict_name(v: Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Stolen => "stolen".into(),
        Verdict::Repeat => "repeat".into(),
        Verdict::Queue { num, .. } => format!("queue {num}"),
    }
}

fn chain_verdict_name(v: ChainVerdict, names: &[String]) -> String {
    let chain = |c: nfr_vm::ChainId| names.get(c.0 as usize).cloned().unwrap_or_default();
    match v {
        ChainVerdict::Continue => "continue".into(),
        ChainVerdict::Break => "break".into(),
        ChainVerdict::Return => "return".into(),
        ChainVerdict::Jump(c) => format!("jump {}", chain(c)),
        ChainVerdict::Goto(c) => format!("goto {}", chain(c)),
        other => other.terminal().map(verdict_name).unwrap_or_default(),
    }
}

/// A packet's conntrack events as the kernel delivers them (`nf_ct_deliver_cached_events`): one per entry,
/// of the kernel's types only — `NEW` (a new entry, related ones included), `UPDATE` (state or status changes,
/// `ASSURED` among them), `DESTROY` — each with the entry as the packet left it.
pub fn kernel_events(events: &[CtEvent]) -> Vec<(&'static str, CtEvent)> {
    let mut out: Vec<(&'static str, CtEvent)> = Vec::new();
    for e in events {
        let destroy = e.kind == CtEventKind::Destroy;
        let new = matches!(e.kind, CtEventKind::New | CtEventKind::Related);
        match out
            .iter_mut()
            .find(|(t, o)| o.entry == e.entry && (*t == "DESTROY") == destroy)
        {
            Some(slot) => {
                if new {
                    slot.0 = "NEW";
                }
                slot.1 = *e;
            }
            None => out.push((
                if destroy {
                    "DESTROY"
                } else if new {
                    "NEW"
                } else {
                    "UPDATE"
                },
                *e,
            )),
        }
    }
    out
}

/// One event as `conntrack -E` (conntrack-tools 1.4.7) prints it:
/// `    [NEW] udp      17 30 src=... dport=53 [UNREPLIED] src=... dport=33000`, the type right-aligned in nine
/// columns, the timeout in seconds, the TCP state (not on `DESTROY`), both tuples, `[ASSURED]` last.
pub fn event_line(kind: &str, e: &CtEvent) -> String {
    use nfr_vm::pkt::ips;
    let mut l = format!(
        "{:>9} {:<8} {} ",
        format!("[{kind}]"),
        e.orig.proto_name(),
        e.orig.l4
    );
    let destroy = kind == "DESTROY";
    // A destroyed entry that timed out has no timeout left to print.
    if !(destroy && e.timeout_s == 0) {
        let _ = write!(l, "{} ", e.timeout_s);
    }
    if e.orig.l4 == 6 && e.tcp_state != 0 && !destroy {
        l.push_str(nfr_runtime::ct::tcp::state_name(e.tcp_state));
        l.push(' ');
    }
    l.push_str(&e.orig.fmt_conntrack());
    l.push(' ');
    if e.status & ips::SEEN_REPLY == 0 {
        l.push_str("[UNREPLIED] ");
    }
    l.push_str(&e.reply.fmt_conntrack());
    if e.status & ips::ASSURED != 0 {
        l.push_str(" [ASSURED]");
    }
    l
}

/// The machine names of ct states (JSON's `ct_state`, the kernel harness's) in the words nft prints, in the
/// order the report lists them: `ct state established` and, for the reply direction, `ct direction reply`.
const NFT_CT_STATES: [(&str, &str); 7] = [
    ("NEW", "new"),
    ("EST", "established"),
    ("EST_REPLY", "established ct direction reply"),
    ("REL", "related"),
    ("REL_REPLY", "related ct direction reply"),
    ("INVALID", "invalid"),
    ("UNTRACKED", "untracked"),
];

/// `ct state ...` as nft writes it for a machine name (see [`NFT_CT_STATES`]).
fn nft_ct_state(name: &str) -> String {
    NFT_CT_STATES.iter().find(|(m, _)| *m == name).map_or_else(
        || format!("ct state {name}"),
        |(_, t)| format!("ct state {t}"),
    )
}

/// ct state name as the kernel harness writes it, or None when the packet never reached conntrack.
fn ct_state_name(f: &Fate) -> Option<&'static str> {
    match f {
        Fate::Hooked { state, .. } => state.map(|s| s.name()),
        _ => None,
    }
}

/// What the report counts of every frame. Workers that replay their shard of a capture on their own keep one
/// each; the tallies are merged at the end.
#[derive(Debug, Default)]
pub struct Tally {
    frames: u64,
    bytes: u64,
    hooked: u64,
    hooked_bytes: u64,
    not_seen: u64,
    skipped: BTreeMap<&'static str, u64>,
    /// Frames skipped as not IP, by EtherType.
    skipped_ethertypes: BTreeMap<u16, u64>,
    /// Frames skipped for their link type, by LINKTYPE_* value.
    skipped_linktypes: BTreeMap<u16, u64>,
    /// Packets by hook (NF_INET_*) and outcome ([`outcome_index`]).
    verdicts: [[u64; OUTCOMES.len()]; Hook::ALL.len()],
    /// Packets by ct state at prerouting/output (`SeenState as usize`; the last: conntrack never saw it).
    states: [u64; SeenState::ALL.len() + 1],
    queued: u64,
    /// Packets the host sent in reaction (reject answers, ICMP errors): all, and those that left.
    generated: u64,
    generated_out: u64,
    event_count: u64,
}

impl Tally {
    /// Counts one frame and its `events` (as [`kernel_events`] reports them); returns its outcome's name and the
    /// hook where its traversal ended.
    pub fn add(&mut self, r: &FrameRecord, events: usize) -> (&'static str, Option<Hook>) {
        self.event_count += events as u64;
        let (sent, sent_out) = Counted::sent(r.sent.iter().map(|x| &x.sent));
        self.count(&Counted {
            orig_len: r.orig_len,
            linktype: r.linktype,
            fate: r.fate,
            ethertype: r.ethertype,
            sent,
            sent_out,
        })
    }

    /// Counts one frame of which nothing is printed or written; as [`Self::add`].
    pub fn count(&mut self, r: &Counted) -> (&'static str, Option<Hook>) {
        self.frames += 1;
        self.bytes += u64::from(r.orig_len);
        self.generated += u64::from(r.sent);
        self.generated_out += u64::from(r.sent_out);
        match r.fate {
            Fate::Skipped(m) => {
                *self.skipped.entry(m.name()).or_insert(0) += 1;
                if let Some(t) = r.ethertype {
                    *self.skipped_ethertypes.entry(t).or_insert(0) += 1;
                }
                if m == nfr_runtime::wire::Malformed::UnsupportedLinktype {
                    *self.skipped_linktypes.entry(r.linktype).or_insert(0) += 1;
                }
                ("skipped", None)
            }
            Fate::NotSeen => {
                self.not_seen += 1;
                ("not_seen", None)
            }
            Fate::Hooked {
                state,
                stopped_at,
                outcome,
                ..
            } => {
                self.hooked += 1;
                self.hooked_bytes += u64::from(r.orig_len);
                let o = outcome_index(outcome);
                if matches!(outcome, HookOutcome::Queued { .. }) {
                    self.queued += 1;
                }
                if let Some(h) = self.verdicts.get_mut(stopped_at as usize) {
                    h[o] += 1;
                }
                self.states[state.map_or(SeenState::ALL.len(), |s| s as usize)] += 1;
                (OUTCOMES[o], Some(stopped_at))
            }
        }
    }

    pub fn merge(&mut self, o: Tally) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.hooked += o.hooked;
        self.hooked_bytes += o.hooked_bytes;
        self.not_seen += o.not_seen;
        self.queued += o.queued;
        self.generated += o.generated;
        self.generated_out += o.generated_out;
        self.event_count += o.event_count;
        fn sum<K: Ord>(a: &mut BTreeMap<K, u64>, b: BTreeMap<K, u64>) {
            for (k, v) in b {
                *a.entry(k).or_insert(0) += v;
            }
        }
        sum(&mut self.skipped, o.skipped);
        sum(&mut self.skipped_ethertypes, o.skipped_ethertypes);
        sum(&mut self.skipped_linktypes, o.skipped_linktypes);
        for (a, b) in self.verdicts.iter_mut().zip(o.verdicts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (x, y) in self.states.iter_mut().zip(o.states) {
            *x += y;
        }
    }

    /// (hook, outcome) -> packets, for those that occurred.
    fn verdict_map(&self) -> BTreeMap<(u8, &'static str), u64> {
        let mut m = BTreeMap::new();
        for (h, row) in self.verdicts.iter().enumerate() {
            for (o, &n) in row.iter().enumerate() {
                if n != 0 {
                    m.insert((h as u8, OUTCOMES[o]), n);
                }
            }
        }
        m
    }

    /// ct state name -> packets, for those that occurred (`(none)`: conntrack never saw the packet).
    fn state_map(&self) -> BTreeMap<&'static str, u64> {
        let names = SeenState::ALL.iter().map(|s| s.name()).chain(["(none)"]);
        names.zip(self.states).filter(|&(_, n)| n != 0).collect()
    }
}

pub struct Collector {
    trace: bool,
    json: bool,
    events: bool,
    tally: Tally,
    event_json: Vec<Value>,
    accepted: Option<PcapWriter>,
    dropped: Option<PcapWriter>,
    /// Rule texts (trace): chain label and rule, per vm rule.
    rule_text: Vec<(String, String)>,
    /// nft rule handles (as `nft -a` shows them), per vm rule.
    handles: Vec<u64>,
    chain_labels: Vec<String>,
    chain_names: Vec<String>,
    /// `--engine ipt`: per table (index = trace spec), its name and entry offset -> rule text.
    ipt_entries: Vec<(String, BTreeMap<u32, String>)>,
    ct_list: bool,
    /// List the ruleset with this run's counters (not with `--no-listing`).
    listing: bool,
    out: String,
    /// The progress bar (stderr); output printed during the run goes around it.
    pub progress: Progress,
}

impl Collector {
    pub fn new(setup: &Setup, args: &Args) -> anyhow::Result<Collector> {
        let mut chain_labels = vec![String::new(); setup.prog.program().chains.len()];
        for (ci, c) in setup.hir.chains.iter().enumerate() {
            let (fam, t) = setup
                .hir
                .table(c.table)
                .map(|t| (t.family.name(), t.name.as_str()))
                .unwrap_or(("ip", "?"));
            if let Some(l) = chain_labels.get_mut(ci) {
                *l = format!("{fam} {t} {}", c.name);
            }
        }
        Ok(Collector {
            trace: args.trace,
            json: args.json,
            events: args.ct_events,
            tally: Tally::default(),
            event_json: Vec::new(),
            accepted: args
                .write_accepted
                .as_deref()
                .map(PcapWriter::create)
                .transpose()?,
            dropped: args
                .write_dropped
                .as_deref()
                .map(PcapWriter::create)
                .transpose()?,
            rule_text: setup.rules.clone(),
            handles: setup
                .prog
                .program()
                .rules
                .iter()
                .map(|r| r.handle)
                .collect(),
            chain_labels,
            chain_names: setup
                .prog
                .program()
                .chains
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            ipt_entries: setup
                .ipt
                .iter()
                .map(|t| {
                    (
                        t.table.name.clone(),
                        t.labels
                            .iter()
                            .zip(&t.entry_text)
                            .map(|(l, x)| (l.offset, x.clone()))
                            .collect(),
                    )
                })
                .collect(),
            ct_list: args.ct_list,
            listing: !args.no_listing,
            out: String::new(),
            progress: Progress::new(0, false),
        })
    }

    fn flush_out(&mut self) -> anyhow::Result<()> {
        if self.out.len() > 1 << 16 {
            self.progress.suspend(|| print(&self.out))?;
            self.out.clear();
        }
        Ok(())
    }

    /// The rules a packet's trace passed (rules that did not match are left out, as in `nft monitor trace`).
    fn trace_rules(&self, steps: &[TraceStep]) -> Vec<Value> {
        let mut v = Vec::new();
        for step in steps {
            if let Some((tname, texts)) = self.ipt_entries.get(step.spec)
                && step.events.is_empty()
            {
                let n = step.ipt_trail.len();
                for (k, off) in step.ipt_trail.iter().enumerate() {
                    let text = texts.get(off).cloned().unwrap_or_default();
                    let chain = format!("iptables {tname}");
                    if text.ends_with(" policy") {
                        v.push(json!({
                            "hook": step.hook.name(),
                            "chain": chain,
                            "policy": verdict_name(step.verdict),
                        }));
                    } else {
                        v.push(json!({
                            "hook": step.hook.name(),
                            "chain": chain,
                            "handle": off,
                            "rule": text,
                            "verdict": if k + 1 == n { verdict_name(step.verdict) } else { "continue".to_string() },
                        }));
                    }
                }
                continue;
            }
            for ev in &step.events {
                match *ev {
                    TraceEvent::Rule {
                        chain,
                        rule,
                        verdict,
                    } => {
                        if verdict == ChainVerdict::Break {
                            continue;
                        }
                        let (_, text) = self
                            .rule_text
                            .get(rule.0 as usize)
                            .cloned()
                            .unwrap_or_default();
                        v.push(json!({
                            "hook": step.hook.name(),
                            "chain": self.chain_labels.get(chain.0 as usize).cloned().unwrap_or_default(),
                            "handle": self.handles.get(rule.0 as usize).copied().unwrap_or_default(),
                            "rule": text,
                            "verdict": chain_verdict_name(verdict, &self.chain_names),
                        }));
                    }
                    TraceEvent::Policy { chain, verdict } => v.push(json!({
                        "hook": step.hook.name(),
                        "chain": self.chain_labels.get(chain.0 as usize).cloned().unwrap_or_default(),
                        "policy": verdict_name(verdict),
                    })),
                }
            }
        }
        v
    }

    /// Counts of frames replayed elsewhere (workers that read the capture themselves).
    pub fn add_tally(&mut self, t: Tally) {
        self.tally.merge(t);
    }

    /// A frame of which nothing is printed or written: only counted.
    pub fn count(&mut self, r: &Counted) {
        self.tally.count(r);
    }

    pub fn record(&mut self, r: &FrameRecord) -> anyhow::Result<()> {
        if r.events.is_empty() && r.data.is_none() && r.sent.is_empty() && !self.trace {
            // Nothing printed or written for this frame: only counted.
            self.tally.add(r, 0);
            return Ok(());
        }
        let events = kernel_events(&r.events);
        let (verdict, stopped) = self.tally.add(r, events.len());
        if let Some(d) = &r.data {
            let w = match verdict {
                "accept" => self.accepted.as_mut(),
                "drop" | "not_seen" | "ttl_exceeded" => self.dropped.as_mut(),
                _ => None,
            };
            if let Some(w) = w {
                w.write(r.linktype, r.ts_ns, r.orig_len.max(d.len() as u32), d)?;
            }
        }
        for s in &r.sent {
            let w = if s.sent.outcome == HookOutcome::Accept {
                self.accepted.as_mut()
            } else {
                self.dropped.as_mut()
            };
            if let (Some(w), Some(d)) = (w, &s.data) {
                w.write(r.linktype, r.ts_ns, d.len() as u32, d)?;
            }
        }
        if self.trace {
            self.trace_record(r, &events, verdict, stopped)?;
        } else if self.events {
            for (kind, e) in &events {
                if self.json {
                    self.event_json.push(event_json(kind, e, r.no));
                } else {
                    let _ = writeln!(self.out, "event frame {}: {}", r.no, event_line(kind, e));
                }
            }
        }
        self.flush_out()
    }

    fn trace_record(
        &mut self,
        r: &FrameRecord,
        events: &[(&'static str, CtEvent)],
        verdict: &str,
        stopped: Option<Hook>,
    ) -> anyhow::Result<()> {
        let rules = self.trace_rules(&r.trace);
        let sent: Vec<Value> = r
            .sent
            .iter()
            .map(|s| {
                json!({
                    "packet": s.summary,
                    "hooks": path_hooks(Direction::Send)
                        .iter()
                        .take(if s.sent.stopped_at == Hook::Output { 1 } else { 2 })
                        .map(|h| h.name())
                        .collect::<Vec<_>>(),
                    "verdict": outcome_name(s.sent.outcome),
                    "stopped_at": s.sent.stopped_at.name(),
                    "rules": self.trace_rules(&s.trace),
                    "nat": nat_json(&s.rewrites),
                })
            })
            .collect();
        let path: Vec<&str> = r
            .dir
            .map(|d| path_hooks(d).iter().map(|h| h.name()).collect())
            .unwrap_or_default();
        let hooks: Vec<&str> = match (r.dir, stopped) {
            (Some(d), Some(s)) => {
                let hs = path_hooks(d);
                let n = hs.iter().position(|&h| h == s).map_or(hs.len(), |i| i + 1);
                hs.iter().take(n).map(|h| h.name()).collect()
            }
            _ => Vec::new(),
        };
        let (reassembled, skipped) = match r.fate {
            Fate::Hooked { reassembled, .. } => (reassembled, None),
            Fate::Skipped(m) => (false, Some(m.name())),
            Fate::NotSeen => (false, None),
        };
        if self.json {
            let mut o = json!({
                "frame": r.no,
                "len": r.orig_len,
                "packet": r.summary,
                "path": path,
                "hooks": hooks,
                "ct_state": ct_state_name(&r.fate),
                "verdict": verdict,
                "stopped_at": stopped.map(|h| h.name()),
                "rules": rules,
            });
            if reassembled {
                o["reassembled"] = json!(true);
            }
            if let Some((i, out)) = &r.devs {
                let dev = |n: &String| if n.is_empty() { Value::Null } else { json!(n) };
                o["iif"] = dev(i);
                o["oif"] = dev(out);
            }
            if let Some(s) = skipped {
                o["skipped"] = json!(s);
            }
            if matches!(r.fate, Fate::Hooked { state: None, .. }) && stopped.is_none() {
                o["ct_state"] = Value::Null;
            }
            if !events.is_empty() {
                o["ct_events"] = events
                    .iter()
                    .map(|(kind, e)| event_json(kind, e, r.no))
                    .collect();
            }
            if !sent.is_empty() {
                o["sent"] = json!(sent);
            }
            if !r.rewrites.is_empty() {
                o["nat"] = nat_json(&r.rewrites);
            }
            let _ = writeln!(self.out, "{o}");
            return Ok(());
        }
        let _ = writeln!(
            self.out,
            "frame {} {}",
            r.no,
            r.summary.as_deref().unwrap_or("")
        );
        match skipped {
            Some(s) => {
                let _ = writeln!(self.out, "  skipped: {s}");
            }
            None if r.fate == Fate::NotSeen => {
                let _ = writeln!(self.out, "  dropped before the hooks (ip_rcv checks)");
            }
            None => {
                let mut devs = String::new();
                if let Some((i, o)) = &r.devs {
                    if !i.is_empty() {
                        let _ = write!(devs, ", iif \"{i}\"");
                    }
                    if !o.is_empty() {
                        let _ = write!(devs, ", oif \"{o}\"");
                    }
                }
                let _ = writeln!(
                    self.out,
                    "  hooks {}{}, {}{devs}",
                    hooks.join(" -> "),
                    if reassembled { " (reassembled)" } else { "" },
                    ct_state_name(&r.fate).map_or_else(|| "no conntrack".to_string(), nft_ct_state)
                );
            }
        }
        rule_lines(&mut self.out, "  ", &rules);
        nat_lines(&mut self.out, "  ", &r.rewrites);
        for (kind, e) in events {
            let _ = writeln!(self.out, "  event {}", event_line(kind, e));
        }
        if skipped.is_none() && r.fate != Fate::NotSeen {
            let _ = writeln!(
                self.out,
                "  verdict {verdict}{}",
                stopped
                    .map(|h| format!(" at {}", h.name()))
                    .unwrap_or_default()
            );
        }
        for s in &sent {
            let _ = writeln!(
                self.out,
                "  host sends {}: hooks {}",
                s["packet"].as_str().unwrap_or(""),
                s["hooks"]
                    .as_array()
                    .map(|h| h
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" -> "))
                    .unwrap_or_default()
            );
            rule_lines(
                &mut self.out,
                "    ",
                s["rules"].as_array().map_or(&[][..], Vec::as_slice),
            );
            for w in s["nat"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    self.out,
                    "    nat {}: {} -> {}",
                    w["hook"].as_str().unwrap_or(""),
                    w["before"].as_str().unwrap_or(""),
                    w["after"].as_str().unwrap_or("")
                );
            }
            let _ = writeln!(
                self.out,
                "    verdict {} at {}",
                s["verdict"].as_str().unwrap_or(""),
                s["stopped_at"].as_str().unwrap_or("")
            );
        }
        Ok(())
    }

    pub fn finish(mut self, setup: &Setup, end: RunEnd, elapsed: Duration) -> anyhow::Result<()> {
        let mut writes = Vec::new();
        for (name, w) in [
            ("accepted", self.accepted.take()),
            ("dropped", self.dropped.take()),
        ] {
            if let Some(w) = w {
                let (n, other) = w.finish()?;
                writes.push((name, n, other));
            }
        }
        let secs = elapsed.as_secs_f64();
        let pps = if secs > 0.0 {
            self.tally.frames as f64 / secs
        } else {
            0.0
        };
        let ruleset = if !self.listing {
            String::new()
        } else if setup.ipt.is_empty() {
            annotated_ruleset(setup, &end)
        } else {
            ipt_listing(setup, &end)
        };
        let kind = end.kind.map_or("interp", |k| k.name());
        if self.json {
            let mut verdicts = serde_json::Map::new();
            let states = self.tally.state_map();
            for ((h, v), n) in &self.tally.verdict_map() {
                let hook = Hook::from_u32(u32::from(*h)).map_or("?", |h| h.name());
                let e = verdicts.entry(hook).or_insert_with(|| json!({}));
                e[*v] = json!(n);
            }
            // Per CounterId: the rule whose `counter` statement it is.
            let mut owner = vec![None; end.counters.len()];
            for r in 0..setup.prog.program().rules.len() {
                for c in rule_counters(setup, RuleId(r as u32)) {
                    if let Some(o) = owner.get_mut(c.0 as usize) {
                        *o = Some(r);
                    }
                }
            }
            let counters: Vec<Value> = if !setup.ipt.is_empty() {
                ipt_counters_json(setup, &end)
            } else {
                end
                .counters
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if let Some(o) = setup.hir.counters.get(i) {
                        let table = setup.hir.table(o.table).map(|t| t.name.clone()).unwrap_or_default();
                        return json!({"object": o.name, "table": table, "packets": c.packets, "bytes": c.bytes});
                    }
                    let (chain, rule) = owner
                        .get(i)
                        .and_then(|&r| setup.rules.get(r?))
                        .cloned()
                        .unwrap_or_default();
                    json!({"chain": chain, "rule": rule, "packets": c.packets, "bytes": c.bytes})
                })
                .collect()
            };
            let doc = json!({
                "engine": kind,
                "engine_note": end.fallback,
                "notes": setup.notes,
                "path": setup.path.describe(),
                "frames": self.tally.frames,
                "bytes": self.tally.bytes,
                "packets": self.tally.hooked,
                "packet_bytes": self.tally.hooked_bytes,
                "not_seen": self.tally.not_seen,
                "skipped": self.tally.skipped,
                "skipped_ethertypes": self
                    .tally
                    .skipped_ethertypes
                    .iter()
                    .map(|(t, n)| (format!("0x{t:04x}"), *n))
                    .collect::<BTreeMap<_, _>>(),
                "skipped_linktypes": self
                    .tally.skipped_linktypes
                    .iter()
                    .map(|(t, n)| (t.to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
                "verdicts": verdicts,
                "ct_states": states,
                "invalid": {
                    "packets": states.get("INVALID").copied().unwrap_or(0),
                    "conntrack_invalid": end.ct_stats.invalid,
                    "conntrack_error": end.ct_stats.error,
                    "insert_failed": end.ct_stats.insert_failed,
                    "drop": end.ct_stats.drop,
                },
                "effects": {
                    "rejects": end.effects.rejects,
                    "nat": end.effects.nat,
                    "nat_failed": end.effects.nat_failed,
                    "logs": end.effects.logs,
                    "notrack": end.effects.notrack,
                    "ct_mark_writes": end.effects.ct_mark_writes,
                    "ct_helpers": end.effects.helpers,
                    "queued": self.tally.queued,
                },
                "host_sent": {"packets": self.tally.generated, "left": self.tally.generated_out},
                "counters": counters,
                "ruleset": if self.listing { json!(ruleset) } else { Value::Null },
                "conntrack": end.ct_lines,
                "conntrack_entries": end.ct_count,
                "events": if self.trace { Value::Null } else { json!(self.event_json) },
                "truncated": end.read_error.as_ref().map(|e| json!({"error": e.0, "offset": e.1, "frames": e.2})),
                "written": writes.iter().map(|(n, w, o)| json!({"file": n, "packets": w, "other_linktype": o})).collect::<Vec<_>>(),
                "time_s": secs,
                "packets_per_s": pps,
                "threads": end.threads,
                "profile_ns_per_frame": profile_stages(&end).map(|p| {
                    p.iter().map(|(n, ns)| (n.replace(' ', "_"), json!((ns * 10.0).round() / 10.0))).collect::<serde_json::Map<_, _>>()
                }),
            });
            if self.trace {
                let _ = writeln!(self.out, "{}", json!({ "report": doc }));
            } else {
                let _ = writeln!(self.out, "{}", serde_json::to_string_pretty(&doc)?);
            }
            return print(&self.out);
        }
        let o = &mut self.out;
        let _ = writeln!(
            o,
            "engine: {kind}{}",
            end.fallback
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "path: {}", setup.path.describe());
        let _ = writeln!(
            o,
            "frames: {} ({} bytes); through the hooks: {} ({} bytes); skipped: {}; dropped by ip_rcv: {}",
            self.tally.frames,
            self.tally.bytes,
            self.tally.hooked,
            self.tally.hooked_bytes,
            self.tally.skipped.values().sum::<u64>(),
            self.tally.not_seen
        );
        let _ = writeln!(o, "verdicts (hook where each packet's traversal ended):");
        let mut by_hook: BTreeMap<u8, Vec<String>> = BTreeMap::new();
        for ((h, v), n) in &self.tally.verdict_map() {
            by_hook.entry(*h).or_default().push(format!("{v} {n}"));
        }
        for (h, vs) in by_hook {
            let hook = Hook::from_u32(u32::from(h)).map_or("?", |h| h.name());
            let _ = writeln!(o, "  {hook:<12} {}", vs.join(", "));
        }
        let state_map = self.tally.state_map();
        let mut states: Vec<String> = NFT_CT_STATES
            .iter()
            .filter_map(|(m, t)| Some(format!("{t} {}", state_map.get(m)?)))
            .collect();
        states.extend(
            state_map
                .iter()
                .filter(|(k, _)| !NFT_CT_STATES.iter().any(|(m, _)| m == *k))
                .map(|(k, v)| format!("{k} {v}")),
        );
        let _ = writeln!(o, "ct state at prerouting/output: {}", states.join(", "));
        let _ = writeln!(
            o,
            "invalid: {} packet(s) with ct state invalid (conntrack: invalid {}, error {}, insert failed {}, drop {})",
            state_map.get("INVALID").copied().unwrap_or(0),
            end.ct_stats.invalid,
            end.ct_stats.error,
            end.ct_stats.insert_failed,
            end.ct_stats.drop
        );
        if !self.tally.skipped.is_empty() {
            let s: Vec<String> = self
                .tally
                .skipped
                .iter()
                .map(|(k, v)| {
                    if *k == "not-ip" && !self.tally.skipped_ethertypes.is_empty() {
                        let t: Vec<String> = self
                            .tally
                            .skipped_ethertypes
                            .iter()
                            .map(|(t, n)| format!("{} {n}", ethertype_name(*t)))
                            .collect();
                        format!("{k} {v} ({})", t.join(", "))
                    } else if *k == "unsupported-linktype"
                        && !self.tally.skipped_linktypes.is_empty()
                    {
                        let t: Vec<String> = self
                            .tally
                            .skipped_linktypes
                            .iter()
                            .map(|(t, n)| format!("linktype {t} {n}"))
                            .collect();
                        format!("{k} {v} ({})", t.join(", "))
                    } else {
                        format!("{k} {v}")
                    }
                })
                .collect();
            let _ = writeln!(o, "skipped by reason: {}", s.join(", "));
        }
        let e = end.effects;
        let _ = writeln!(
            o,
            "effects: reject {}, nat {}, nat failed {}, log {}, notrack {}, ct mark set {}, ct helper set {}, queued {}",
            e.rejects,
            e.nat,
            e.nat_failed,
            e.logs,
            e.notrack,
            e.ct_mark_writes,
            e.helpers,
            self.tally.queued
        );
        if self.tally.generated > 0 {
            let _ = writeln!(
                o,
                "sent by the host in reaction (reject answers, ICMP errors): {}, left {}, dropped {}",
                self.tally.generated,
                self.tally.generated_out,
                self.tally.generated - self.tally.generated_out
            );
        }
        if self.events {
            let _ = writeln!(o, "conntrack events: {}", self.tally.event_count);
        }
        let _ = writeln!(o, "conntrack entries at the end: {}", end.ct_count);
        for (n, w, other) in &writes {
            let _ = writeln!(
                o,
                "wrote {w} {n} packet(s){}",
                if *other > 0 {
                    format!(" ({other} left out: other link type)")
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            o,
            "time: {:.3} s, {:.0} packets/s, {} thread(s)",
            secs, pps, end.threads
        );
        if let Some(p) = profile_stages(&end) {
            let stages: Vec<String> = p.iter().map(|(n, ns)| format!("{n} {ns:.0} ns")).collect();
            let _ = writeln!(
                o,
                "profile (1 frame in {} timed), per frame: {}; sum {:.0} ns",
                super::worker::PROFILE_EVERY,
                stages.join(", "),
                p.iter().map(|(_, ns)| ns).sum::<f64>()
            );
        }
        if self.listing {
            let _ = writeln!(o);
            o.push_str(&ruleset);
        }
        if self.ct_list {
            let _ = writeln!(o, "\nconntrack table ({} entries):", end.ct_lines.len());
            for l in &end.ct_lines {
                let _ = writeln!(o, "{l}");
            }
        }
        print(&self.out)
    }
}

fn event_json(kind: &str, e: &CtEvent, frame: u64) -> Value {
    json!({
        "frame": frame,
        "type": kind,
        "event": event_line(kind, e),
    })
}

/// The ruleset as `nft list ruleset` prints it, with `counter packets N bytes M` from this run: the checker's
/// listing (defines expanded as the checker resolved them), each rule's `counter` statements given, in order,
/// the counters its program rule updates.
pub fn annotated_ruleset(setup: &Setup, end: &RunEnd) -> String {
    let prog = setup.prog.program();
    let mut listing = setup.listing.clone();
    for (rule, at) in listing.rules_mut() {
        let Some(id) = at.and_then(|(c, i)| prog.chains.get(c.0 as usize)?.rules.get(i).copied())
        else {
            continue;
        };
        let mut counters = rule_counters(setup, id);
        for s in &mut rule.stmts {
            if let StmtKind::Counter {
                packets,
                bytes,
                name: None,
            } = &mut s.kind
                && let Some(c) = counters.next().and_then(|c| end.counters.get(c.0 as usize))
            {
                *packets = Some(c.packets);
                *bytes = Some(c.bytes);
            }
        }
    }
    // A named counter object lists this run's totals in its body, as `nft list counters` does.
    let object = |family: &str, table: &str, name: &str| {
        setup.hir.counters.iter().enumerate().find_map(|(i, o)| {
            let t = setup.hir.table(o.table)?;
            (o.name == name && t.name == table && t.family.name() == family)
                .then(|| end.counters.get(i))
                .flatten()
        })
    };
    for c in &mut listing.file.commands {
        if let CommandKind::Table(t) = &mut c.kind {
            let family = t.family.map_or("ip", |f| f.as_str());
            for it in &mut t.items {
                if let TableItem::Object {
                    kind, name, body, ..
                } = it
                    && kind.name == "counter"
                    && let Some(c) = object(family, &t.name.name, &name.name)
                {
                    *body = vec![format!("packets {} bytes {}", c.packets, c.bytes)];
                }
                // A set the packet path updates lists the elements it holds at the end, with the
                // time each has left, as `nft list set` does.
                if let TableItem::Set(s) = it
                    && let Some(els) =
                        dynamic_elements(setup, end, family, &t.name.name, &s.name.name)
                {
                    s.elements = els.into();
                    s.has_body = true;
                }
            }
        }
    }
    nfr_grammar::print::format(&listing.file)
}

/// The elements of set `name` of table `family table` at the end of the run, if the packet path updates it:
/// keys (and a map's data) as values of their types, each with `expires` when it has a timeout.
fn dynamic_elements(
    setup: &Setup,
    end: &RunEnd,
    family: &str,
    table: &str,
    name: &str,
) -> Option<Vec<nfr_grammar::ast::Expr>> {
    use nfr_grammar::ast::{Expr, ExprKind, Span};
    let (i, hs) = setup.hir.sets.iter().enumerate().find(|(_, s)| {
        s.name == name
            && setup
                .hir
                .table(s.table)
                .is_some_and(|t| t.name == table && t.family.name() == family)
    })?;
    // Named sets are lowered first, in order: the program's set `i` is this one.
    let vs = setup.prog.program().sets.get(i)?;
    if vs.name != name || vs.dynamic.is_none() {
        return None;
    }
    let d = end.dynsets.get(i)?;
    let sp = Span::new(0, 0);
    let value = |ty: nfr_compiler::hir::Type, b: &[u8]| -> Expr {
        use nfr_compiler::hir::Type as T;
        let kind = match (ty, b.len()) {
            (T::Ipv4Addr, 4) => ExprKind::Ipv4(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            (T::Ipv6Addr, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                ExprKind::Ipv6(std::net::Ipv6Addr::from(a))
            }
            _ => {
                let host = ty.byteorder() == nfr_grammar::catalog::ByteOrder::Host;
                let value = if host {
                    b.iter().rev().fold(0u128, |v, &x| v << 8 | u128::from(x))
                } else {
                    b.iter().fold(0u128, |v, &x| v << 8 | u128::from(x))
                };
                ExprKind::Number { value, hex: false }
            }
        };
        Expr::new(kind, sp)
    };
    let fields = |tys: &[nfr_compiler::hir::Type], bytes: &[u8]| -> Expr {
        let mut parts = Vec::new();
        let mut off = 0usize;
        for ty in tys {
            let n = ty.byte_len() as usize;
            parts.push(value(*ty, bytes.get(off..off + n).unwrap_or(&[])));
            off += if tys.len() > 1 { n.div_ceil(4) * 4 } else { n };
        }
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::new(ExprKind::Concat(parts), sp)
        }
    };
    let mut out = Vec::new();
    for (key, data, expiry) in d.elements_with_data() {
        if expiry <= end.now {
            continue;
        }
        let mut e = fields(&hs.key, key);
        if expiry != nfr_vm::dynset::NEVER {
            e = Expr::new(
                ExprKind::Elem {
                    value: Box::new(e),
                    timeout: None,
                    expires: Some((expiry - end.now).div_ceil(1_000_000)),
                    comment: None,
                },
                sp,
            );
        }
        if let Some(dt) = &hs.data {
            e = Expr::new(
                ExprKind::MapElem {
                    key: Box::new(e),
                    value: Box::new(fields(dt, data)),
                },
                sp,
            );
        }
        out.push(e);
    }
    Some(out)
}

/// The counters of a rule's `counter` statements, in order: the rule's counter instructions, less the named
/// counter objects (object `i` is `CounterId(i)`).
fn rule_counters(setup: &Setup, rule: RuleId) -> impl Iterator<Item = CounterId> + '_ {
    let named = setup.hir.counters.len();
    setup
        .prog
        .program()
        .rule_insns(rule)
        .iter()
        .filter_map(move |i| match i {
            Insn::Counter(c) if c.0 as usize >= named => Some(*c),
            _ => None,
        })
}

/// The iptables tables with this run's counters, as `iptables-save -c` prints them (`:INPUT DROP [p:b]` for
/// policies, `[p:b] -A INPUT ...` for rules): one format, which `iptables-restore -c` reads back.
pub fn ipt_listing(setup: &Setup, end: &RunEnd) -> String {
    use nfr_ipt::blob::EntryRole;
    let mut out = String::new();
    for (ti, t) in setup.ipt.iter().enumerate() {
        let counters = end.ipt_counters.get(ti);
        let mut table = t.table.clone();
        for (i, l) in t.labels.iter().enumerate() {
            let c = counters.and_then(|c| c.get(i)).copied().unwrap_or_default();
            match l.role {
                EntryRole::Rule(k) => {
                    if let Some(r) = table.rules_mut(&l.chain).and_then(|r| r.get_mut(k)) {
                        r.counters = c;
                    }
                }
                EntryRole::Policy => {
                    if let Some(b) = table
                        .builtins
                        .iter_mut()
                        .find(|b| nfr_ipt::hook_chain_name(b.hook) == l.chain)
                    {
                        b.policy_counters = c;
                    }
                }
                _ => {}
            }
        }
        out.push_str(&nfr_ipt::save(&table, true));
    }
    out
}

fn ipt_counters_json(setup: &Setup, end: &RunEnd) -> Vec<Value> {
    use nfr_ipt::blob::EntryRole;
    let mut v = Vec::new();
    for (ti, t) in setup.ipt.iter().enumerate() {
        for (i, l) in t.labels.iter().enumerate() {
            if !matches!(l.role, EntryRole::Rule(_) | EntryRole::Policy) {
                continue;
            }
            let c = end
                .ipt_counters
                .get(ti)
                .and_then(|c| c.get(i))
                .copied()
                .unwrap_or_default();
            v.push(json!({
                "table": t.table.name,
                "chain": l.chain,
                "rule": t.entry_text.get(i).cloned().unwrap_or_default(),
                "packets": c.pcnt,
                "bytes": c.bcnt,
            }));
        }
    }
    v
}

/// `ethertype 0x0806 (ARP)`-style label of a link-layer protocol.
fn ethertype_name(t: u16) -> String {
    let name = match t {
        0x0806 => "ARP",
        0x8035 => "RARP",
        0x88cc => "LLDP",
        0x8863 => "PPPoE discovery",
        0x888e => "EAPOL",
        0x9000 => "loopback",
        0x88f7 => "PTP",
        0x8100 | 0x88a8 => "VLAN",
        0x8847 | 0x8848 => "MPLS",
        _ if t < 0x0600 => "802.3 length",
        _ => "",
    };
    if name.is_empty() {
        format!("ethertype 0x{t:04x}")
    } else {
        format!("ethertype 0x{t:04x} {name}")
    }
}
