//! `nfc bench RULES CAPTURE [RULES CAPTURE ...]`: rule-evaluation speed of every engine, side by side, on the
//! same verified program and the same packets: the bytecode interpreter, the Cranelift JIT, the iptables blob
//! executor (when the ruleset lowers to iptables) and a slot for a native first-match baseline (not available
//! until the classifier's rule analysis is wired in). Each capture's IP packets are parsed once into memory (no
//! conntrack: every packet is `ct state invalid` to the rules); a pass runs every packet through every base chain
//! of its family, in hook and priority order, until a verdict other than accept. All rulesets and engines are set
//! up first, then timed in rounds, interleaved (the order rotates every round), with a harness-floor measurement
//! (the same pass loop without the engine call) beside them. The harness copies no packet state per packet: passes
//! run on the parsed states in place, unless the program can write them (marks, `notrack`), in which case every
//! pass starts from a fresh copy made outside the timed region. The report gives per engine the median, min and
//! max ns/packet over the rounds, Mpps, the ratios to the JIT, the time to build each engine, and whether every
//! engine gave the interpreter's verdicts and counters (exit 1 if not).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use nfr_compiler::hir::{self, Hir};
use nfr_runtime::engine::{EngineKind, ProgramEngine};
use nfr_runtime::wire;
use nfr_vm::insn::{CtSetKey, Insn, MetaSetKey};
use nfr_vm::program::ChainKind;
use nfr_vm::{ChainId, Hook, PktState, Verdict, VerifiedProgram};

use crate::{ColorChoice, Outcome, front};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// RULES CAPTURE pairs: a `.nfr` ruleset and the capture (pcap or pcapng) whose packets go through it.
    #[arg(required = true, num_args = 2.., value_names = ["RULES", "CAPTURE"])]
    inputs: Vec<PathBuf>,
    /// Rounds: in each, every engine of every ruleset is timed once, in turn (median, min, max over rounds).
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// Passes over the packets in one timed measurement (default: enough for about 20000 packets).
    #[arg(long)]
    passes: Option<usize>,
    /// Use at most this many packets of each capture.
    #[arg(long, default_value_t = 1_000_000)]
    max_packets: usize,
    /// One JSON document with every number of the report.
    #[arg(long)]
    json: bool,
    /// Draw ns/packet per engine against the rule count (log-log) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Time only these engines (comma-separated: interp, jit, ipt, native); all by default.
    #[arg(long, value_delimiter = ',', value_parser = ["interp", "jit", "ipt", "native"])]
    engines: Vec<String>,
    /// Colours in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    color: ColorChoice,
}

/// Packets per timed measurement that `--passes` defaults to.
const AUTO_PACKETS: usize = 20_000;

/// The engines, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eng {
    Interp,
    Jit,
    Ipt,
    Native,
}

const ENGINES: [Eng; 4] = [Eng::Interp, Eng::Jit, Eng::Ipt, Eng::Native];

impl Eng {
    fn name(self) -> &'static str {
        match self {
            Eng::Interp => "interp",
            Eng::Jit => "jit",
            Eng::Ipt => "ipt",
            Eng::Native => "native",
        }
    }
}

/// What the pass loop calls per base chain (a step) of a packet.
trait Runner {
    fn run(&mut self, step: u32, pkt: &[u8], st: &mut PktState) -> Verdict;
}

impl Runner for ProgramEngine {
    #[inline]
    fn run(&mut self, step: u32, pkt: &[u8], st: &mut PktState) -> Verdict {
        self.run_chain(ChainId(step), pkt, st)
    }
}

/// The harness floor: the pass loop with no engine behind the call.
struct Floor;

impl Runner for Floor {
    #[inline]
    fn run(&mut self, step: u32, pkt: &[u8], st: &mut PktState) -> Verdict {
        // Opaque to the optimiser, but no memory round trip of the verdict (a byte store then a word load
        // would stall store forwarding and bill the harness for it).
        black_box((step, pkt.as_ptr(), pkt.len(), std::ptr::from_mut(st)));
        if black_box(true) {
            Verdict::Accept
        } else {
            Verdict::Drop
        }
    }
}

/// A native first-match baseline: the ruleset's rules as boxes of per-field intervals, tested in order by a
/// plain loop, for the ns/packet a straightforward native classifier gets. The rule analysis that turns a
/// program into boxes belongs to the classifier work; [`native_baseline`] builds one once it is wired in.
pub trait NativeBaseline {
    /// Runs base chain `chain` on a packet, as [`ProgramEngine::run_chain`] does (verdicts must agree).
    fn run_chain(&mut self, chain: ChainId, pkt: &[u8], st: &mut PktState) -> Verdict;
}

impl Runner for Box<dyn NativeBaseline> {
    #[inline]
    fn run(&mut self, step: u32, pkt: &[u8], st: &mut PktState) -> Verdict {
        self.run_chain(ChainId(step), pkt, st)
    }
}

/// The native baseline: each base chain as a plain first-match loop over its rules' boxes (the classifier's
/// rule analysis, `nfr_vm::classify`), in Rust, with the rules' counters and verdicts — what a hand-written
/// classifier without a lookup structure does. Only for chains whose every rule is exact with a simple tail
/// (tests on at most `MAX_DIMS` packet facts, then a counter and a verdict).
struct Native {
    /// Per chain id: its loop, or `None` (not a base chain).
    chains: Vec<Option<NativeChain>>,
    counters: Vec<nfr_vm::program::Counter>,
}

struct NativeChain {
    dims: Vec<nfr_vm::classify::Dim>,
    /// Per box, in rule order: low and high bounds per dimension, the counter, the verdict.
    rows: Vec<NativeRow>,
    policy: Verdict,
}

struct NativeRow {
    lo: [u32; nfr_vm::classify::MAX_DIMS],
    hi: [u32; nfr_vm::classify::MAX_DIMS],
    /// Dimensions whose field the rule loads (it cannot match when one is absent).
    need: u32,
    counter: Option<u32>,
    verdict: Verdict,
}

impl NativeBaseline for Native {
    fn run_chain(&mut self, chain: ChainId, pkt: &[u8], st: &mut PktState) -> Verdict {
        let Some(Some(c)) = self.chains.get(chain.0 as usize) else {
            return Verdict::Accept;
        };
        let mut key = [0u32; nfr_vm::classify::MAX_DIMS];
        let present = nfr_vm::interp::key_of(&c.dims, pkt, st, &mut key);
        for r in &c.rows {
            if r.need & !present == 0
                && key
                    .iter()
                    .zip(&r.lo)
                    .zip(&r.hi)
                    .all(|((k, l), h)| l <= k && k <= h)
            {
                if let Some(n) = r.counter.and_then(|n| self.counters.get_mut(n as usize)) {
                    n.packets += 1;
                    n.bytes += u64::from(st.len);
                }
                return r.verdict;
            }
        }
        c.policy
    }
}

/// The native baseline for a program, or why there is none.
fn native_baseline(prog: &VerifiedProgram) -> Result<Box<dyn NativeBaseline>, String> {
    use nfr_vm::classify::{MAX_DIMS, chain_shapes};
    use nfr_vm::program::Policy;
    let p = prog.program();
    let mut chains = Vec::new();
    for (ci, c) in p.chains.iter().enumerate() {
        let ChainKind::Base { policy, .. } = c.kind else {
            chains.push(None);
            continue;
        };
        let shapes = chain_shapes(p, ChainId(ci as u32));
        let mut dims = Vec::new();
        let mut rows = Vec::new();
        for (ri, (s, t)) in shapes.iter().enumerate() {
            let verdict = t.verdict.terminal();
            let rule_dims: Vec<_> = s.cubes.iter().flatten().map(|sp| sp.dim).collect();
            let simple_field = s
                .loads
                .iter()
                .all(|f| nfr_vm::classify::needs(&rule_dims, f).is_some());
            let (true, true, true, Some(verdict)) = (s.exact, t.simple, simple_field, verdict)
            else {
                return Err(format!(
                    "chain {}: rule {} is not a plain match with a counter and a verdict",
                    c.name,
                    ri + 1
                ));
            };
            for cube in &s.cubes {
                let mut lo = [0u32; MAX_DIMS];
                let mut hi = [0u32; MAX_DIMS];
                for sp in cube {
                    let d = match dims.iter().position(|x| *x == sp.dim) {
                        Some(d) => d,
                        None if dims.len() < MAX_DIMS => {
                            dims.push(sp.dim);
                            dims.len() - 1
                        }
                        None => {
                            return Err(format!(
                                "chain {}: tests more than {MAX_DIMS} packet facts",
                                c.name
                            ));
                        }
                    };
                    lo[d] = sp.lo;
                    hi[d] = sp.hi;
                }
                let need = s.loads.iter().fold(0u32, |m, f| {
                    m | nfr_vm::classify::needs(&dims, f).unwrap_or(0)
                });
                rows.push((
                    lo,
                    hi,
                    need,
                    cube.iter().map(|sp| sp.dim).collect::<Vec<_>>(),
                    t.counter,
                    verdict,
                ));
            }
        }
        // Unconstrained dimensions of a box span their whole domain.
        let rows = rows
            .into_iter()
            .map(|(mut lo, mut hi, need, used, counter, verdict)| {
                for (d, dim) in dims.iter().enumerate() {
                    if !used.contains(dim) {
                        lo[d] = 0;
                        hi[d] = dim.max();
                    }
                }
                NativeRow {
                    lo,
                    hi,
                    need,
                    counter,
                    verdict,
                }
            })
            .collect();
        chains.push(Some(NativeChain {
            dims,
            rows,
            policy: if policy == Policy::Drop {
                Verdict::Drop
            } else {
                Verdict::Accept
            },
        }));
    }
    Ok(Box::new(Native {
        chains,
        counters: p.counters.clone(),
    }))
}

/// Memory of the compiled classification structure of a program (its classifiers' trees).
fn structure_bytes(prog: &VerifiedProgram) -> Option<usize> {
    Some(prog.program().classifier_bytes())
}

/// One iptables table as the blob executor runs it, and where its rules' entries are (for counters).
struct IptTable {
    exec: nfr_ipt::ExecTable,
    /// Offsets of the rule entries per iptables chain, in chain order.
    entries: Vec<(String, Vec<u32>)>,
    rules: Vec<nfr_compiler::lower::ipt::RuleEntries>,
}

/// The iptables executor over all tables of a ruleset; step `i` is `steps[i]` (table, hook).
struct IptRunner {
    tables: Vec<IptTable>,
    steps: Vec<(usize, Hook)>,
}

impl Runner for IptRunner {
    #[inline]
    fn run(&mut self, step: u32, pkt: &[u8], st: &mut PktState) -> Verdict {
        let Some(&(t, hook)) = self.steps.get(step as usize) else {
            return Verdict::Drop;
        };
        let Some(t) = self.tables.get_mut(t) else {
            return Verdict::Drop;
        };
        match t.exec.do_table(hook, pkt, st) {
            Ok(o) => {
                // Marks carry to the next table as in the kernel (only programs that can write them reset).
                if o.mark != st.mark || o.ct_mark != st.ct_mark {
                    st.mark = o.mark;
                    st.ct_mark = o.ct_mark;
                }
                o.verdict
            }
            Err(_) => Verdict::Drop,
        }
    }
}

impl IptRunner {
    /// Lowers every table to iptables, encodes, verifies and prepares it; `Err`: why the ruleset has no
    /// iptables form.
    fn build(hir: &Hir) -> Result<IptRunner, String> {
        let mut tables = Vec::new();
        let mut steps = Vec::new();
        for t in &hir.tables {
            let (table, rules) = nfr_compiler::lower::ipt::lower_ipt_table_mapped(hir, t.id)
                .map_err(|d| {
                    d.first().map_or("does not lower to iptables".into(), |d| {
                        format!("does not lower to iptables: {}", d.message)
                    })
                })?;
            let blob = nfr_ipt::encode(&table).map_err(|e| format!("encoding: {e}"))?;
            let exec = nfr_ipt::ExecTable::from_blob(&blob)
                .map_err(|e| format!("the blob executor cannot run it: {e}"))?;
            let mut entries: Vec<(String, Vec<u32>)> = Vec::new();
            for l in nfr_ipt::entry_map(&table) {
                if let nfr_ipt::EntryRole::Rule(_) = l.role {
                    match entries.iter_mut().find(|(c, _)| *c == l.chain) {
                        Some((_, v)) => v.push(l.offset),
                        None => entries.push((l.chain.clone(), vec![l.offset])),
                    }
                }
            }
            let idx = tables.len();
            for (h, prio) in
                nfr_runtime::engine::ipt_table_hooks(&table.name, exec.table().valid_hooks)
            {
                steps.push((h as u32, prio, idx, h));
            }
            tables.push(IptTable {
                exec,
                entries,
                rules,
            });
        }
        steps.sort_by_key(|s| (s.0, s.1));
        Ok(IptRunner {
            tables,
            steps: steps.into_iter().map(|s| (s.2, s.3)).collect(),
        })
    }

    /// The (packets, bytes) of hir rule `rule` of `chain`: the entries that carry its last action.
    fn rule_counter(&self, chain: hir::ChainId, rule: usize) -> Option<(u64, u64)> {
        self.tables.iter().find_map(|t| {
            let re = t
                .rules
                .iter()
                .find(|r| r.chain == chain && r.rule == rule)?;
            let offs = &t.entries.iter().find(|(c, _)| *c == re.ipt_chain)?.1;
            let start = re.first + re.count - re.last_action;
            let (mut p, mut b) = (0, 0);
            for off in offs.get(start..re.first + re.count)? {
                let c = t.exec.counters_at(*off)?;
                p += c.pcnt;
                b += c.bcnt;
            }
            Some((p, b))
        })
    }
}

/// A capture's packets in memory: the bytes of all packets in one buffer, and their states.
struct Packets {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// The states as parsed.
    pristine: Vec<PktState>,
    /// The states a pass runs on when the program can write them (reset from `pristine` before every pass,
    /// outside the timed region); `None`: passes run on `pristine` itself.
    work: Option<Vec<PktState>>,
    skipped: u64,
}

impl Packets {
    fn load(path: &Path, max: usize, writes: bool) -> anyhow::Result<Packets> {
        let mut reader = crate::run::open_capture(path)?;
        let (mut bytes, mut spans, mut pristine) = (Vec::new(), Vec::new(), Vec::new());
        let mut skipped = 0u64;
        while spans.len() < max {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    let Ok(pi) = wire::parse_frame(f.linktype, f.data) else {
                        skipped += 1;
                        continue;
                    };
                    let l3 = pi.l3(f.data);
                    let Ok(p2) = wire::parse_frame(nfr_runtime::pcap::linktype::RAW, l3) else {
                        skipped += 1;
                        continue;
                    };
                    let mut st = PktState::default();
                    p2.fill(&mut st);
                    st.tstamp_ns = f.ts_ns;
                    spans.push((bytes.len(), bytes.len() + l3.len()));
                    bytes.extend_from_slice(l3);
                    pristine.push(st);
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!(
                        "nfc: warning: {}: capture ends early ({} at byte {})",
                        path.display(),
                        e.kind,
                        e.offset
                    );
                    break;
                }
            }
        }
        if spans.is_empty() {
            bail!("{}: no IP packets to replay", path.display());
        }
        let work = writes.then(|| pristine.clone());
        Ok(Packets {
            bytes,
            spans,
            pristine,
            work,
            skipped,
        })
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// Whether any instruction of the program writes the packet state (`meta mark set`, `meta pkttype set`,
/// `ct mark set`, `notrack`): then every pass starts from fresh copies of the states.
fn program_writes_state(prog: &VerifiedProgram) -> bool {
    prog.program().insns.iter().any(|i| {
        matches!(
            i,
            Insn::MetaSet {
                key: MetaSetKey::Mark | MetaSetKey::Pkttype,
                ..
            } | Insn::CtSet {
                key: CtSetKey::Mark,
                ..
            } | Insn::Notrack
        )
    })
}

/// One pass: every packet through its steps (base chains of its family, in order) until a verdict other than
/// accept; the last verdict of each packet goes to `out`.
#[inline(never)]
fn pass<R: Runner + ?Sized>(
    r: &mut R,
    steps: &[(u32, u8)],
    bytes: &[u8],
    spans: &[(usize, usize)],
    states: &mut [PktState],
    out: &mut [Verdict],
) {
    for ((&(a, b), st), o) in spans.iter().zip(states.iter_mut()).zip(out.iter_mut()) {
        let data = bytes.get(a..b).unwrap_or_default();
        let mut last = Verdict::Accept;
        for &(id, nf) in steps {
            if nf == 0 || nf == st.nfproto {
                last = r.run(id, data, st);
                if last != Verdict::Accept {
                    break;
                }
            }
        }
        *o = last;
    }
}

/// `passes` passes; the mean ns per packet. With states to reset, each pass is timed alone so that the reset
/// stays outside the timed region.
fn measure<R: Runner + ?Sized>(
    r: &mut R,
    steps: &[(u32, u8)],
    pk: &mut Packets,
    out: &mut [Verdict],
    passes: usize,
) -> f64 {
    let mut ns = 0u128;
    match pk.work.as_mut() {
        Some(w) => {
            for _ in 0..passes {
                w.clone_from_slice(&pk.pristine);
                let t = Instant::now();
                pass(r, steps, &pk.bytes, &pk.spans, w, out);
                ns += t.elapsed().as_nanos();
            }
        }
        None => {
            let t = Instant::now();
            for _ in 0..passes {
                pass(r, steps, &pk.bytes, &pk.spans, &mut pk.pristine, out);
            }
            ns = t.elapsed().as_nanos();
        }
    }
    ns as f64 / (passes * pk.len()) as f64
}

/// Median, min and max of a sample.
fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return None;
    }
    let med = if n % 2 == 1 {
        *s.get(n / 2)?
    } else {
        (s.get(n / 2 - 1)? + s.get(n / 2)?) / 2.0
    };
    Some((med, *s.first()?, *s.last()?))
}

/// One ruleset and capture with all its engines.
struct Bench {
    rules_file: PathBuf,
    capture: PathBuf,
    prog: Arc<VerifiedProgram>,
    rules: usize,
    /// Program steps: (base chain, family or 0 for both), in hook and priority order.
    steps: Vec<(u32, u8)>,
    /// iptables steps: (index into `IptRunner::steps`, IPv4).
    ipt_steps: Vec<(u32, u8)>,
    pk: Packets,
    out: Vec<Verdict>,
    passes: usize,
    interp: ProgramEngine,
    jit: ProgramEngine,
    ipt: Result<IptRunner, String>,
    native: Result<Box<dyn NativeBaseline>, String>,
    /// Hir -> verified bytecode.
    lower_ms: f64,
    /// Per engine (`ENGINES` order): the time to build it.
    compile_ms: [f64; 4],
    /// Per engine: ns/packet of each round; the harness floor.
    samples: [Vec<f64>; 4],
    floor: Vec<f64>,
    /// Per engine: the verdicts of the first (untimed) pass.
    verdicts: [Vec<Verdict>; 4],
    /// `--engines`: the engines to time (empty: all).
    only: Vec<String>,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

impl Bench {
    /// Checks and lowers the ruleset, builds every engine (timed) and loads the packets. `Ok(Err(text))`: the
    /// ruleset has errors (rendered diagnostics).
    fn setup(
        rules_file: &Path,
        capture: &Path,
        args: &Args,
    ) -> anyhow::Result<Result<Bench, String>> {
        let checked = front::check_file(rules_file)?;
        let Some(hir) = checked.hir.clone() else {
            return Ok(Err(checked.render(args.color.enabled())));
        };
        let t = Instant::now();
        let prog = Arc::new(
            nfr_compiler::lower::lower_verified(&hir)
                .map_err(|e| anyhow::anyhow!("lowering to bytecode failed: {e}"))?,
        );
        let lower_ms = ms(t);
        let mut chains: Vec<(u32, i32, u32, u8)> = Vec::new();
        for (ci, c) in prog.program().chains.iter().enumerate() {
            if let ChainKind::Base { hook, priority, .. } = c.kind {
                let fam = hir
                    .chains
                    .get(ci)
                    .and_then(|hc| hir.table(hc.table))
                    .map_or(0, |t| match t.family {
                        hir::Family::Ip => nfr_vm::pkt::NFPROTO_IPV4,
                        hir::Family::Ip6 => nfr_vm::pkt::NFPROTO_IPV6,
                        hir::Family::Inet => 0,
                    });
                chains.push((hook as u32, priority, ci as u32, fam));
            }
        }
        chains.sort_by_key(|c| (c.0, c.1));
        let steps = chains.into_iter().map(|c| (c.2, c.3)).collect();
        let mut compile_ms = [0.0; 4];
        let t = Instant::now();
        let interp = ProgramEngine::new(prog.clone(), EngineKind::Interp);
        compile_ms[0] = ms(t);
        let t = Instant::now();
        let jit = ProgramEngine::new(prog.clone(), EngineKind::Jit);
        compile_ms[1] = ms(t);
        let t = Instant::now();
        let ipt = IptRunner::build(&hir);
        compile_ms[2] = ms(t);
        let t = Instant::now();
        let native = native_baseline(&prog);
        compile_ms[3] = ms(t);
        let ipt_steps = ipt.as_ref().map_or(Vec::new(), |r| {
            (0..r.steps.len() as u32)
                .map(|i| (i, nfr_vm::pkt::NFPROTO_IPV4))
                .collect()
        });
        let pk = Packets::load(capture, args.max_packets, program_writes_state(&prog))?;
        let passes = args
            .passes
            .unwrap_or_else(|| AUTO_PACKETS.div_ceil(pk.len()).max(1));
        Ok(Ok(Bench {
            rules_file: rules_file.to_path_buf(),
            capture: capture.to_path_buf(),
            rules: prog.program().rules.len(),
            prog,
            steps,
            ipt_steps,
            out: vec![Verdict::Accept; pk.len()],
            pk,
            passes,
            interp,
            jit,
            ipt,
            native,
            lower_ms,
            compile_ms,
            samples: Default::default(),
            floor: Vec::new(),
            verdicts: Default::default(),
            only: args.engines.clone(),
        }))
    }

    fn available(&self, e: Eng) -> bool {
        if !self.only.is_empty() && !self.only.iter().any(|n| n == e.name()) {
            return false;
        }
        match e {
            Eng::Interp | Eng::Jit => true,
            Eng::Ipt => self.ipt.is_ok(),
            Eng::Native => self.native.is_ok(),
        }
    }

    /// Why engine `e` is not available.
    fn missing(&self, e: Eng) -> Option<&str> {
        match e {
            Eng::Interp | Eng::Jit => None,
            Eng::Ipt => self.ipt.as_ref().err().map(String::as_str),
            Eng::Native => self.native.as_ref().err().map(String::as_str),
        }
    }

    /// Times `passes` passes of engine `e` (`None`: the harness floor); ns/packet.
    fn time(&mut self, e: Option<Eng>, passes: usize) -> Option<f64> {
        let Bench {
            steps,
            ipt_steps,
            pk,
            out,
            interp,
            jit,
            ipt,
            native,
            ..
        } = self;
        Some(match e {
            None => measure(&mut Floor, steps, pk, out, passes),
            Some(Eng::Interp) => measure(interp, steps, pk, out, passes),
            Some(Eng::Jit) => measure(jit, steps, pk, out, passes),
            Some(Eng::Ipt) => measure(ipt.as_mut().ok()?, ipt_steps, pk, out, passes),
            Some(Eng::Native) => measure(native.as_mut().ok()?, steps, pk, out, passes),
        })
    }

    /// The untimed first pass of every engine: pages code and data in, and records the verdicts.
    fn warm_up(&mut self) {
        self.time(None, 1);
        for (i, e) in ENGINES.into_iter().enumerate() {
            if self.time(Some(e), 1).is_some() {
                self.verdicts[i] = self.out.clone();
            }
        }
    }

    /// One round: the floor and every available engine, starting at a different one each round.
    fn round(&mut self, r: usize) {
        let mut order: Vec<Option<Eng>> = std::iter::once(None)
            .chain(ENGINES.into_iter().filter(|e| self.available(*e)).map(Some))
            .collect();
        let n = order.len();
        order.rotate_left(r % n);
        for e in order {
            if let Some(ns) = self.time(e, self.passes) {
                match e {
                    None => self.floor.push(ns),
                    Some(e) => {
                        if let Some(i) = ENGINES.iter().position(|x| *x == e) {
                            self.samples[i].push(ns);
                        }
                    }
                }
            }
        }
    }

    /// Packets whose verdict differs from the interpreter's, per engine (`None`: not available).
    fn mismatches(&self, e: Eng) -> Option<usize> {
        let i = ENGINES.iter().position(|x| *x == e)?;
        if !self.available(e) {
            return None;
        }
        Some(
            self.verdicts[0]
                .iter()
                .zip(&self.verdicts[i])
                .filter(|(a, b)| a != b)
                .count(),
        )
    }

    /// Whether the engine's counters equal the interpreter's (`None`: not available, or it keeps none).
    fn counters_agree(&self, e: Eng) -> Option<bool> {
        match e {
            Eng::Interp => Some(true),
            Eng::Jit => Some(self.jit.state.counters == self.interp.state.counters),
            Eng::Ipt => {
                let ipt = self.ipt.as_ref().ok()?;
                let prog = self.prog.program();
                let mut ok = true;
                for (ci, c) in prog.chains.iter().enumerate() {
                    for (ri, rid) in c.rules.iter().enumerate() {
                        let Some(cid) = prog.rule_insns(*rid).iter().find_map(|i| match i {
                            Insn::Counter(id) => Some(id.0 as usize),
                            _ => None,
                        }) else {
                            continue;
                        };
                        let want = self
                            .interp
                            .state
                            .counters
                            .get(cid)
                            .map(|c| (c.packets, c.bytes));
                        let got = ipt.rule_counter(hir::ChainId(ci as u32), ri);
                        ok &= want == got;
                    }
                }
                Some(ok)
            }
            Eng::Native => None,
        }
    }

    fn jit_note(&self) -> Option<&str> {
        self.jit.fallback_note.as_deref()
    }

    fn agree(&self) -> bool {
        ENGINES
            .into_iter()
            .all(|e| self.mismatches(e).unwrap_or(0) == 0 && self.counters_agree(e).unwrap_or(true))
    }

    fn median(&self, e: Eng) -> Option<f64> {
        let i = ENGINES.iter().position(|x| *x == e)?;
        stats(&self.samples[i]).map(|s| s.0)
    }

    fn base_chains(&self) -> usize {
        self.steps.len()
    }

    fn label(&self) -> String {
        format!("{} + {}", self.rules_file.display(), self.capture.display())
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn opt(v: Option<f64>, prec: usize, unit: &str) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.prec$}{unit}"))
}

/// The text report of one ruleset.
fn text(b: &Bench, rounds: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}\n  {} rules, {} packets ({} skipped: not IP), {} base chain(s); {rounds} rounds x {} pass(es){}",
        b.label(),
        b.rules,
        b.pk.len(),
        b.pk.skipped,
        b.base_chains(),
        b.passes,
        if b.pk.work.is_some() {
            "; states reset before every pass (the program writes marks)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "  {:<8} {:>12} {:>10} {:>10} {:>8} {:>11}",
        "engine", "ns/pkt med", "min", "max", "Mpps", "build ms"
    );
    for (i, e) in ENGINES.into_iter().enumerate() {
        if let Some(why) = b.missing(e) {
            let _ = writeln!(s, "  {:<8} {:>12}   {why}", e.name(), "n/a");
            continue;
        }
        let Some((med, min, max)) = stats(&b.samples[i]) else {
            continue;
        };
        let _ = writeln!(
            s,
            "  {:<8} {med:>12.1} {min:>10.1} {max:>10.1} {:>8.3} {:>11.3}{}",
            e.name(),
            if med > 0.0 { 1e3 / med } else { 0.0 },
            b.compile_ms[i],
            if e == Eng::Jit && b.jit_note().is_some() {
                "  (the interpreter: the JIT could not compile it)"
            } else {
                ""
            }
        );
    }
    if let Some((med, min, max)) = stats(&b.floor) {
        let _ = writeln!(
            s,
            "  {:<8} {med:>12.1} {min:>10.1} {max:>10.1}   (harness floor: the pass loop without an engine call)",
            "harness"
        );
    }
    let jit = b.median(Eng::Jit);
    let _ = writeln!(
        s,
        "  ratios: interp/jit {}, ipt/jit {}, native/jit {}",
        opt(ratio(b.median(Eng::Interp), jit), 2, "x"),
        opt(ratio(b.median(Eng::Ipt), jit), 2, "x"),
        opt(ratio(b.median(Eng::Native), jit), 2, "x"),
    );
    let _ = writeln!(
        s,
        "  bytecode lowering {:.3} ms; structure memory: {}",
        b.lower_ms,
        structure_bytes(&b.prog).map_or("n/a".to_string(), |n| format!("{n} bytes"))
    );
    let mut v = Vec::new();
    let mut c = Vec::new();
    for e in ENGINES {
        match b.mismatches(e) {
            Some(0) => v.push(format!("{} identical", e.name())),
            Some(n) => v.push(format!("{} {n} packet(s) differ", e.name())),
            None => {}
        }
        match b.counters_agree(e) {
            Some(true) => c.push(format!("{} identical", e.name())),
            Some(false) => c.push(format!("{} differ", e.name())),
            None => {}
        }
    }
    let _ = writeln!(
        s,
        "  verdicts vs interp: {}; counters vs interp: {}",
        v.get(1..).unwrap_or_default().join(", "),
        c.get(1..).unwrap_or_default().join(", ")
    );
    s
}

fn json_stats(v: &[f64]) -> serde_json::Value {
    match stats(v) {
        Some((med, min, max)) => serde_json::json!({
            "median_ns": med, "min_ns": min, "max_ns": max,
            "mpps": if med > 0.0 { 1e3 / med } else { 0.0 },
            "samples_ns": v,
        }),
        None => serde_json::json!({}),
    }
}

/// The JSON object of one ruleset.
fn json(b: &Bench) -> serde_json::Value {
    let mut engines = serde_json::Map::new();
    for (i, e) in ENGINES.into_iter().enumerate() {
        let mut o = serde_json::json!({ "available": b.available(e) });
        if let Some(why) = b.missing(e) {
            o["reason"] = why.into();
        } else {
            if let (serde_json::Value::Object(m), Some(x)) =
                (json_stats(&b.samples[i]), o.as_object_mut())
            {
                x.extend(m);
            }
            o["build_ms"] = b.compile_ms[i].into();
            o["verdict_mismatches"] = b.mismatches(e).into();
            o["counters_agree"] = b.counters_agree(e).into();
        }
        if e == Eng::Jit {
            o["backend"] = b.jit.kind().name().into();
            o["note"] = b.jit_note().into();
        }
        engines.insert(e.name().to_string(), o);
    }
    let jit = b.median(Eng::Jit);
    serde_json::json!({
        "rules_file": b.rules_file.display().to_string(),
        "capture": b.capture.display().to_string(),
        "rules": b.rules,
        "packets": b.pk.len(),
        "skipped": b.pk.skipped,
        "base_chains": b.base_chains(),
        "passes": b.passes,
        "states_reset": b.pk.work.is_some(),
        "harness_floor": json_stats(&b.floor),
        "engines": engines,
        "ratios": {
            "interp_jit": ratio(b.median(Eng::Interp), jit),
            "ipt_jit": ratio(b.median(Eng::Ipt), jit),
            "native_jit": ratio(b.median(Eng::Native), jit),
        },
        "lower_ms": b.lower_ms,
        "structure_bytes": structure_bytes(&b.prog),
        "agree": b.agree(),
    })
}

/// ns/packet per engine (and the harness floor) against the rule count, log-log, as SVG.
fn plot(path: &Path, benches: &[Bench]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    // (name, colour, points sorted by rule count).
    type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
    let mut series: Vec<Series> = Vec::new();
    let colours = [
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(31, 119, 180),
        RGBColor(148, 103, 189),
    ];
    let samples = ENGINES
        .into_iter()
        .enumerate()
        .map(|(i, e)| (e.name(), colours[i], i))
        .map(|(n, c, i)| (n, c, Some(i)))
        .chain(std::iter::once((
            "harness floor",
            RGBColor(127, 127, 127),
            None,
        )));
    for (name, colour, i) in samples {
        let mut pts: Vec<(f64, f64)> = benches
            .iter()
            .filter_map(|b| {
                let v = match i {
                    Some(i) => &b.samples[i],
                    None => &b.floor,
                };
                Some((b.rules.max(1) as f64, stats(v)?.0))
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !pts.is_empty() {
            series.push((name, colour, pts));
        }
    }
    let all = series.iter().flat_map(|s| s.2.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        bail!("nothing to plot");
    }
    let (x0, x1) = (x0 / 2.0, x1 * 2.0);
    let (y0, y1) = ((y0 / 2.0).max(1e-3), (y1 * 2.0).max(1e-2));
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("nfc bench: ns/packet against rules", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("rules")
            .y_desc("ns/packet (median over rounds)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v}"))
            .light_line_style(WHITE)
            .draw()?;
        for (name, colour, pts) in &series {
            let c = *colour;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if !args.inputs.len().is_multiple_of(2) {
        bail!("give RULES CAPTURE pairs (got {} paths)", args.inputs.len());
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.passes == Some(0) {
        bail!("--passes must be at least 1");
    }
    if args.max_packets == 0 {
        bail!("--max-packets must be at least 1");
    }
    let mut benches = Vec::new();
    for pair in args.inputs.chunks(2) {
        let [rules, capture] = pair else { continue };
        match Bench::setup(rules, capture, &args)? {
            Ok(b) => benches.push(b),
            Err(diags) => {
                eprint!("{diags}");
                return Ok(Outcome::Diagnostics);
            }
        }
    }
    for b in &benches {
        if let Some(n) = b.jit_note() {
            eprintln!("nfc: note: {}: {n}", b.rules_file.display());
        }
    }
    for b in &mut benches {
        b.warm_up();
    }
    for r in 0..args.rounds {
        for b in &mut benches {
            b.round(r);
        }
    }
    if let Some(p) = &args.plot {
        plot(p, &benches)?;
    }
    let agree = benches.iter().all(Bench::agree);
    if args.json {
        let doc = serde_json::json!({
            "rounds": args.rounds,
            "rulesets": benches.iter().map(json).collect::<Vec<_>>(),
            "plot": args.plot.as_ref().map(|p| p.display().to_string()),
            "agree": agree,
        });
        front::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    } else {
        let mut s = String::new();
        for b in &benches {
            s.push_str(&text(b, args.rounds));
        }
        if let Some(p) = &args.plot {
            let _ = writeln!(s, "plot: {}", p.display());
        }
        front::print_stdout(&s)?;
    }
    Ok(if agree {
        Outcome::Ok
    } else {
        Outcome::Diagnostics
    })
}
