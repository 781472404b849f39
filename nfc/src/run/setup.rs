//! What a replay needs from the ruleset, computed once: the checked Hir, the verified program, one
//! [`ChainSpec`] per base chain (`nfr_host::chain_specs`), the text of every rule (for traces), the
//! checker's listing of the ruleset (for the counter-annotated listing), and the path model parsed from the
//! command line.

use std::sync::Arc;

use nfr_compiler::check::Listing;
use nfr_compiler::hir::{Family, Hir, StmtKind};
use nfr_runtime::ct::Settings;
use nfr_runtime::engine::{ChainSpec, EngineKind};
use nfr_vm::VerifiedProgram;

use super::path::PathModel;
use super::{Args, EngineArg};
use crate::front;

/// One iptables table for `--engine ipt`: the model (for the listing), its blob, and what each entry is.
#[derive(Clone)]
pub struct IptTableSetup {
    pub table: nfr_ipt::Table,
    pub blob: Vec<u8>,
    pub labels: Vec<nfr_ipt::blob::EntryLabel>,
    /// Rule text per entry index (`-A CHAIN spec`), for traces.
    pub entry_text: Vec<String>,
}

/// Everything the workers and the report share.
pub struct Setup {
    pub hir: Hir,
    pub prog: Arc<VerifiedProgram>,
    pub specs: Vec<ChainSpec>,
    /// Per vm `RuleId`: (chain label, rule text as written, whitespace collapsed).
    pub rules: Vec<(String, String)>,
    /// The ruleset as checked (defines expanded, each rule tied to its Hir rule), for the listing (empty with
    /// `--no-listing`).
    pub listing: Listing,
    pub engine: EngineKind,
    pub path: PathModel,
    /// Conntrack settings: the kernel's defaults, `--ct-checksum`, `--ftp-ports`, then `--sysctl`s.
    pub ct_settings: Settings,
    pub gap_cap_ns: Option<u64>,
    pub notes: Vec<String>,
    pub threads: usize,
    /// `--seed`.
    pub seed: u64,
    /// `--engine ipt`: the lowered tables.
    pub ipt: Vec<IptTableSetup>,
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Setup {
    /// `Ok(Err(text))`: the ruleset has errors (rendered diagnostics, exit 1).
    pub fn build(args: &Args) -> anyhow::Result<Result<Setup, String>> {
        let mut checked = if args.no_listing {
            front::check_file(&args.rules)?
        } else {
            front::check_file_listed(&args.rules)?
        };
        let color = args.color.enabled();
        let Some(hir) = checked.hir.clone() else {
            return Ok(Err(checked.render(color)));
        };
        let listing = checked.listing.take().unwrap_or_default();
        if !checked.diagnostics.is_empty() {
            eprint!("{}", checked.render(color));
        }
        let mut notes = Vec::new();
        let prog = nfr_compiler::lower::lower_verified(&hir)
            .map_err(|e| anyhow::anyhow!("lowering to bytecode failed: {e}"))?;
        let (specs, ingress) = nfr_host::chain_specs(&hir);
        notes.extend(ingress);
        let mut rules = Vec::new();
        for chain in &hir.chains {
            let table = hir.table(chain.table);
            let (fam, tname) = table
                .map(|t| (t.family, t.name.as_str()))
                .unwrap_or((Family::Ip, "?"));
            let label = format!("{} {} {}", fam.name(), tname, chain.name);
            for r in &chain.rules {
                let text = checked
                    .sources
                    .text(r.span.file)
                    .get(r.span.range())
                    .map(collapse)
                    .unwrap_or_default();
                rules.push((label.clone(), text));
            }
        }
        let uses_nat = hir.chains.iter().any(|c| {
            c.rules
                .iter()
                .any(|r| r.stmts().any(|s| matches!(s.kind, StmtKind::Nat(_))))
        });
        let engine = match args.engine {
            EngineArg::Interp => EngineKind::Interp,
            EngineArg::Jit => EngineKind::Jit,
            EngineArg::Ipt => EngineKind::Ipt,
        };
        let mut ipt = Vec::new();
        if engine == EngineKind::Ipt {
            match nfr_compiler::lower::ipt::lower_ipt(&hir) {
                Err(diags) => {
                    let mut text = nfr_compiler::diag::render(&diags, &checked.sources, color);
                    text.push_str(&format!(
                        "{}: --engine ipt needs a ruleset that lowers to iptables (use --engine interp or jit)\n",
                        args.rules.display()
                    ));
                    return Ok(Err(text));
                }
                Ok(tables) => {
                    for (_, table) in tables {
                        let blob = nfr_ipt::blob::encode(&table).map_err(|e| {
                            anyhow::anyhow!("encoding the iptables {} table: {e:?}", table.name)
                        })?;
                        let labels = nfr_ipt::blob::entry_map(&table);
                        let entry_text = labels
                            .iter()
                            .map(|l| match l.role {
                                nfr_ipt::blob::EntryRole::Rule(i) => rule_of(&table, &l.chain, i)
                                    .map(|r| {
                                        format!("-A {} {}", l.chain, nfr_ipt::rule_spec(r).trim())
                                    })
                                    .unwrap_or_default(),
                                nfr_ipt::blob::EntryRole::Policy => format!("{} policy", l.chain),
                                nfr_ipt::blob::EntryRole::Return => format!("{} return", l.chain),
                                _ => String::new(),
                            })
                            .collect();
                        ipt.push(IptTableSetup {
                            table,
                            blob,
                            labels,
                            entry_text,
                        });
                    }
                }
            }
        }
        let path = PathModel::from_args(args)?;
        let ftp_ports = args
            .ftp_ports
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("--ftp-ports: `{s}` is not a port number"))
            })
            .collect::<anyhow::Result<Vec<u16>>>()?;
        // Accounting as the kernel's default (nf_conntrack_acct=0) unless `--sysctl nf_conntrack_acct=1`.
        let mut ct_settings = Settings {
            checksum: args.ct_checksum,
            ftp_ports,
            ..Settings::default()
        };
        for s in &args.sysctls {
            nfr_runtime::sysctl::apply(&mut ct_settings, s)
                .map_err(|e| anyhow::anyhow!("--sysctl: {e}"))?;
        }
        let gap_cap_ns = match args.gap_cap {
            Some(s) if s.is_finite() && s >= 0.0 => Some((s * 1e9) as u64),
            Some(s) => anyhow::bail!("--gap-cap: {s} is not a number of seconds"),
            None => None,
        };
        let mut threads = args.threads.max(1);
        if threads > 1 && !prog.program().limits.is_empty() {
            notes.push(format!(
                "the ruleset uses `limit`, whose token buckets are shared by all flows; running on 1 thread instead \
                 of {threads} so the result does not depend on the sharding"
            ));
            threads = 1;
        }
        let draws = prog.program().insns.iter().any(|i| {
            matches!(
                i,
                nfr_vm::Insn::Numgen { .. }
                    | nfr_vm::Insn::Meta {
                        key: nfr_vm::insn::MetaKey::Prandom,
                        ..
                    }
            )
        });
        if threads > 1 && draws {
            notes.push(format!(
                "the ruleset uses `numgen` or `meta random`, whose generator and counters are shared by all flows; \
                 running on 1 thread instead of {threads} so the result does not depend on the sharding"
            ));
            threads = 1;
        }
        if threads > 1 && prog.program().sets.iter().any(|s| s.dynamic.is_some()) {
            notes.push(format!(
                "the ruleset adds to sets from the packet path (`add`/`update`/`delete @set`), and those sets \
                 are shared by all flows; running on 1 thread instead of {threads} so the result does not \
                 depend on the sharding"
            ));
            threads = 1;
        }
        if threads > 1 && uses_nat {
            notes.push(format!(
                "the ruleset uses NAT, whose bindings are shared by all flows and change the addresses that shard \
                 them; running on 1 thread instead of {threads}"
            ));
            threads = 1;
        }
        if threads > 1 && ct_settings.max != Settings::default().max {
            notes.push(format!(
                "nf_conntrack_max limits one conntrack table; running on 1 thread instead of {threads} so \
                 early drop and \"table full\" happen as in the kernel"
            ));
            threads = 1;
        }
        Ok(Ok(Setup {
            hir,
            prog: Arc::new(prog),
            specs,
            rules,
            listing,
            engine,
            path,
            ct_settings,
            gap_cap_ns,
            notes,
            threads,
            seed: args.seed,
            ipt,
        }))
    }
}

/// Rule `i` of chain `chain` (built-in by its hook name, or a user chain) of an iptables table.
pub fn rule_of<'t>(t: &'t nfr_ipt::Table, chain: &str, i: usize) -> Option<&'t nfr_ipt::Rule> {
    t.builtins
        .iter()
        .find(|c| nfr_ipt::hook_chain_name(c.hook) == chain)
        .map(|c| &c.rules)
        .or_else(|| {
            t.user_chains
                .iter()
                .find(|u| u.name == chain)
                .map(|u| &u.rules)
        })
        .and_then(|r| r.get(i))
}
