//! nfr-host: the filtering host a ruleset runs in — the runtime's hook registry with the ruleset
//! loaded the way committing it registers its hooks in the kernel: one `nf_hook_ops` per base chain
//! at the chain's (family, hook, priority) (`nf_tables_register_hook`; nat chains go to the family's
//! NAT hook, `nf_nat_register_fn`), or, for the ipt engine, one per valid hook of each iptables table
//! at the table's `NF_IP_PRI_*` (`xt_hook_ops_alloc`), beside defrag, conntrack and confirm.
//! `nfc run pcap` and the shared corpus (`nfr-testsuite`) both build their registries here, so the
//! corpus runs what users run; [`load`] does it from ruleset text in one call (for tests and fuzz
//! targets).
//!
//! The steps are apart because `nfc run pcap` lowers once and registers once per worker thread (the
//! engines are not `Send`): [`Lowered`] is the lowered ruleset (plain data), [`Lowered::register`]
//! makes the engines and their hook entries.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use nfr_compiler::hir::{ChainKind, ChainType, Family, Hir};
use nfr_runtime::engine::{
    self, ChainSpec, EngineKind, IptEngine, ProgramEngine, SharedIpt, SharedProgram,
};
use nfr_runtime::hook::Hooks;
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};
use nfr_vm::{ChainId, VerifiedProgram};

/// Why a ruleset could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The checker rejected it: its diagnostics, rendered with their source spans.
    Check(String),
    /// Lowering to bytecode failed (the error names the rule's span when it has one).
    Lower(String),
    /// `--engine ipt` and the ruleset does not lower to iptables: the lowering's diagnostics.
    Ipt(Vec<nfr_compiler::diag::Diagnostic>),
    /// An iptables table could not be encoded or does not run (`translate_table` refused the blob).
    Table { name: String, why: String },
    /// Registering a hook entry failed (too many entries on a hook).
    Register(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Check(d) => write!(f, "the ruleset has errors:\n{d}"),
            LoadError::Lower(e) => write!(f, "lowering to bytecode failed: {e}"),
            LoadError::Ipt(d) => write!(
                f,
                "the ruleset does not lower to iptables: {}",
                d.first().map_or("", |d| d.message.as_str())
            ),
            LoadError::Table { name, why } => write!(f, "the iptables {name} table: {why}"),
            LoadError::Register(e) => write!(f, "cannot register the ruleset's hooks: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// One base chain per [`ChainSpec`] (families from the table's family, the chain's hook and priority,
/// `type nat`), and a note for each chain on a hook a replay never passes (ingress).
pub fn chain_specs(hir: &Hir) -> (Vec<ChainSpec>, Vec<String>) {
    let mut specs = Vec::new();
    let mut notes = Vec::new();
    for (ci, chain) in hir.chains.iter().enumerate() {
        let ChainKind::Base(b) = &chain.kind else {
            continue;
        };
        let (fam, tname) = hir
            .table(chain.table)
            .map(|t| (t.family, t.name.as_str()))
            .unwrap_or((Family::Ip, "?"));
        let label = format!("{} {} {}", fam.name(), tname, chain.name);
        match b.hook.nf_hook() {
            Some(hook) => specs.push(ChainSpec {
                chain: ChainId(ci as u32),
                nfprotos: match fam {
                    Family::Ip => vec![NFPROTO_IPV4],
                    Family::Ip6 => vec![NFPROTO_IPV6],
                    Family::Inet => vec![NFPROTO_IPV4, NFPROTO_IPV6],
                },
                hook,
                priority: b.priority,
                nat: b.ty == ChainType::Nat,
                label,
            }),
            None => notes.push(format!(
                "chain {label} is on the ingress hook, which a capture replay does not pass; it never runs"
            )),
        }
    }
    (specs, notes)
}

/// One iptables table ready to run: its name, blob and `valid_hooks`.
#[derive(Debug, Clone)]
pub struct IptBlob {
    pub name: String,
    pub blob: Vec<u8>,
    pub valid_hooks: u32,
}

impl IptBlob {
    /// Encodes a table (`iptables-restore`'s `IPT_SO_SET_REPLACE` payload).
    pub fn encode(t: &nfr_ipt::Table) -> Result<IptBlob, LoadError> {
        let blob = nfr_ipt::encode(t).map_err(|e| LoadError::Table {
            name: t.name.clone(),
            why: format!("{e:?}"),
        })?;
        Ok(IptBlob {
            name: t.name.clone(),
            blob,
            valid_hooks: t.valid_hooks,
        })
    }
}

/// A ruleset lowered for one engine: what every registry is built from.
#[derive(Debug, Clone)]
pub enum Lowered {
    /// The bytecode program and its base chains, run by the interpreter or the JIT.
    Program {
        prog: Arc<VerifiedProgram>,
        specs: Vec<ChainSpec>,
        kind: EngineKind,
    },
    /// The iptables tables (IPv4), run by the blob executor.
    Ipt(Vec<IptBlob>),
}

/// What [`Lowered::register`] records besides running the packets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Per-packet traces (`ProgramEngine::trace`, `IptEngine::trace`).
    pub trace: bool,
    /// Per entry, its verdict and the effects it consumed (`effects_log`).
    pub effects: bool,
}

/// The engines behind a registry's entries (shared with them: counters, statistics, traces).
#[derive(Debug, Default)]
pub struct Loaded {
    pub prog: Option<SharedProgram>,
    /// One per iptables table, in [`Lowered::Ipt`] order.
    pub ipts: Vec<SharedIpt>,
}

impl Lowered {
    /// Lowers `hir` for `kind`: bytecode for the interpreter and the JIT, iptables tables for ipt.
    pub fn new(hir: &Hir, kind: EngineKind) -> Result<Lowered, LoadError> {
        if kind == EngineKind::Ipt {
            let tables = nfr_compiler::lower::ipt::lower_ipt(hir).map_err(LoadError::Ipt)?;
            return Ok(Lowered::Ipt(
                tables
                    .iter()
                    .map(|(_, t)| IptBlob::encode(t))
                    .collect::<Result<_, _>>()?,
            ));
        }
        let prog = nfr_compiler::lower::lower_verified(hir)
            .map_err(|e| LoadError::Lower(e.to_string()))?;
        Ok(Lowered::Program {
            prog: Arc::new(prog),
            specs: chain_specs(hir).0,
            kind,
        })
    }

    /// Makes the engines and registers their entries in `hooks` (the interpreter when the JIT cannot
    /// compile the program: `ProgramEngine::fallback_note` says why).
    pub fn register(&self, hooks: &mut Hooks, opts: Options) -> Result<Loaded, LoadError> {
        let mut loaded = Loaded::default();
        match self {
            Lowered::Program { prog, specs, kind } => {
                let mut e = ProgramEngine::new(prog.clone(), *kind);
                e.set_trace(opts.trace);
                e.effects_log = opts.effects.then(Vec::new);
                let p = Rc::new(RefCell::new(e));
                engine::register_program(hooks, &p, specs)
                    .map_err(|e| LoadError::Register(format!("{e:?}")))?;
                loaded.prog = Some(p);
            }
            Lowered::Ipt(tables) => {
                for (i, t) in tables.iter().enumerate() {
                    let table =
                        nfr_ipt::ExecTable::from_blob(&t.blob).map_err(|e| LoadError::Table {
                            name: t.name.clone(),
                            why: format!("it cannot run: {e}"),
                        })?;
                    let mut e = IptEngine::new(table, &t.name);
                    e.trace = opts.trace.then(Vec::new);
                    e.effects_log = opts.effects.then(Vec::new);
                    let e = Rc::new(RefCell::new(e));
                    let at = engine::ipt_table_hooks(&t.name, t.valid_hooks);
                    engine::register_ipt(hooks, &e, &at, i).map_err(|err| {
                        LoadError::Register(format!("the {} table: {err:?}", t.name))
                    })?;
                    loaded.ipts.push(e);
                }
            }
        }
        Ok(loaded)
    }
}

/// A host's registry before a ruleset is loaded, as `nfc run pcap` has it: defrag, conntrack and confirm
/// (`Hooks::with_conntrack`), and a listener on every queue that consumes what it gets (`queue_sink`).
pub fn hooks() -> Hooks {
    let mut hooks = Hooks::with_conntrack();
    hooks.queue_sink = true;
    hooks
}

/// A ruleset loaded into a host's hooks: the registry `nfc run pcap` runs ([`hooks`] and the
/// ruleset's entries), its engines and the checked ruleset.
pub struct Host {
    pub hooks: Hooks,
    pub loaded: Loaded,
    pub hir: Hir,
}

/// Checks `text` (named `name` in diagnostics), lowers it for `kind` and loads it into a new
/// registry with conntrack (see [`Host`]).
pub fn load(name: &str, text: &str, kind: EngineKind, opts: Options) -> Result<Host, LoadError> {
    let (sm, hir, diags) = nfr_compiler::check::check_source(name, text);
    let Some(hir) = hir else {
        return Err(LoadError::Check(nfr_compiler::diag::render_short(
            &diags, &sm,
        )));
    };
    let mut hooks = hooks();
    let loaded = Lowered::new(&hir, kind)?.register(&mut hooks, opts)?;
    Ok(Host { hooks, loaded, hir })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfr_runtime::ct::{Conntrack, Settings};
    use nfr_runtime::hook::{HookOutcome, Packet, Route};
    use nfr_runtime::pcap::linktype;
    use nfr_runtime::wire::build;
    use nfr_vm::Hook;

    const RULES: &str = "table ip t {\n\tchain a {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 counter drop\n\t}\n\n\tchain b {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n";

    /// Both base chains are entries of IPv4 INPUT beside confirm, the later one first
    /// (`nf_hook_entries_grow`); a packet to port 22 is dropped on every engine and counted.
    #[test]
    fn loads_a_ruleset_on_every_engine() {
        for kind in [EngineKind::Interp, EngineKind::Jit, EngineKind::Ipt] {
            // an iptables table has one chain per hook
            let rules = match kind {
                EngineKind::Ipt => RULES.split("\n\n").next().unwrap().to_string() + "\n}\n",
                _ => RULES.to_string(),
            };
            let mut host = load("t.nfr", &rules, kind, Options::default()).unwrap();
            let names: Vec<String> = host
                .hooks
                .entries(NFPROTO_IPV4, Hook::Input)
                .into_iter()
                .map(|e| e.0)
                .collect();
            let want: &[&str] = if kind == EngineKind::Ipt {
                &["iptables filter input", "nf_confirm"]
            } else {
                &["ip t b", "ip t a", "nf_confirm"]
            };
            assert_eq!(names, want, "{kind:?}");
            let mut ct = Conntrack::new(Settings::default());
            let a = "10.0.0.1".parse().unwrap();
            let b = "10.0.0.2".parse().unwrap();
            let ssh = build::tcp(a, b, 1000, 22, 1, 0, 2, 100, &[], b"");
            let mut p = Packet::from_frame(linktype::RAW, &ssh, 0).unwrap();
            assert_eq!(
                host.hooks.receive(&mut p, Route::Local, &mut ct, 0),
                (Hook::Input, HookOutcome::Drop),
                "{kind:?}"
            );
            if let Some(p) = &host.loaded.prog {
                assert_eq!(p.borrow().state.counters[0].packets, 1);
            }
        }
    }

    /// A ruleset with an error is refused with its diagnostic at its place; one that does not lower to
    /// iptables is refused for the ipt engine only.
    #[test]
    fn refusals_name_the_cause() {
        let e = load(
            "bad.nfr",
            "table ip t { chain c { tcp dport foo accept } }",
            EngineKind::Interp,
            Options::default(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(&e, LoadError::Check(d) if d.contains("bad.nfr:1:")),
            "{e}"
        );
        let inet = "table inet t {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t}\n}\n";
        assert!(load("i.nfr", inet, EngineKind::Interp, Options::default()).is_ok());
        assert!(matches!(
            load("i.nfr", inet, EngineKind::Ipt, Options::default()),
            Err(LoadError::Ipt(_))
        ));
    }
}
