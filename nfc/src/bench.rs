//! `nfc bench RULES.nfr CAPTURE`: rule-evaluation speed of the interpreter and the JIT, side by side, on the same
//! verified program and the same packets. The capture's IP packets are parsed once into memory (no conntrack:
//! every packet is `ct state invalid` to the rules); each pass runs every packet through every base chain of its
//! family; passes alternate between the engines; the report gives the median ns/packet of each, the ratio, and
//! whether both engines gave the same verdicts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nfr_runtime::engine::{EngineKind, ProgramEngine};
use nfr_runtime::wire;
use nfr_vm::program::ChainKind;
use nfr_vm::{ChainId, PktState, Verdict};

use crate::{ColorChoice, Outcome, front};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.nfr` ruleset.
    rules: PathBuf,
    /// The capture (pcap or pcapng) whose packets are replayed.
    capture: PathBuf,
    /// Timed passes per engine (the median is reported).
    #[arg(long, default_value_t = 15)]
    passes: usize,
    /// Use at most this many packets of the capture.
    #[arg(long, default_value_t = 1_000_000)]
    max_packets: usize,
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// Colours in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    color: ColorChoice,
}

struct Pkt {
    data: Vec<u8>,
    state: PktState,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One pass: every packet through its family's base chains; returns the elapsed ns and the verdicts.
fn pass(
    e: &mut ProgramEngine,
    chains: &[(ChainId, u8)],
    pkts: &[Pkt],
    out: &mut Vec<Verdict>,
) -> f64 {
    out.clear();
    let t = Instant::now();
    for p in pkts {
        let mut st = p.state.clone();
        let mut last = Verdict::Accept;
        for &(c, nf) in chains {
            if nf == 0 || nf == st.nfproto {
                last = e.run_chain(c, &p.data, &mut st);
                if last != Verdict::Accept {
                    break;
                }
            }
        }
        out.push(last);
    }
    t.elapsed().as_nanos() as f64
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let checked = front::check_file(&args.rules)?;
    let Some(hir) = checked.hir.as_ref() else {
        eprint!("{}", checked.render(args.color.enabled()));
        return Ok(Outcome::Diagnostics);
    };
    let prog = Arc::new(
        nfr_compiler::lower::lower_verified(hir)
            .map_err(|e| anyhow::anyhow!("lowering to bytecode failed: {e}"))?,
    );
    // Base chains in hook and priority order, with the family they see (0 = both).
    let mut chains: Vec<(u32, i32, ChainId, u8)> = Vec::new();
    for (ci, c) in prog.program().chains.iter().enumerate() {
        if let ChainKind::Base { hook, priority, .. } = c.kind {
            let fam = hir
                .chains
                .get(ci)
                .and_then(|hc| hir.table(hc.table))
                .map_or(0, |t| match t.family {
                    nfr_compiler::hir::Family::Ip => nfr_vm::pkt::NFPROTO_IPV4,
                    nfr_compiler::hir::Family::Ip6 => nfr_vm::pkt::NFPROTO_IPV6,
                    nfr_compiler::hir::Family::Inet => 0,
                });
            chains.push((hook as u32, priority, ChainId(ci as u32), fam));
        }
    }
    chains.sort_by_key(|c| (c.0, c.1));
    let chains: Vec<(ChainId, u8)> = chains.into_iter().map(|c| (c.2, c.3)).collect();

    let mut reader = crate::run::open_capture(&args.capture)?;
    let mut pkts = Vec::new();
    let mut skipped = 0u64;
    while pkts.len() < args.max_packets {
        match reader.next_frame() {
            Ok(Some(f)) => match wire::parse_frame(f.linktype, f.data) {
                Ok(pi) => {
                    let l3 = pi.l3(f.data).to_vec();
                    let mut st = PktState::default();
                    if let Ok(p2) = wire::parse_frame(nfr_runtime::pcap::linktype::RAW, &l3) {
                        p2.fill(&mut st);
                        st.tstamp_ns = f.ts_ns;
                        pkts.push(Pkt {
                            data: l3,
                            state: st,
                        });
                    } else {
                        skipped += 1;
                    }
                }
                Err(_) => skipped += 1,
            },
            Ok(None) => break,
            Err(e) => {
                eprintln!(
                    "nfc: warning: {}: capture ends early ({:?} at byte {})",
                    args.capture.display(),
                    e.kind,
                    e.offset
                );
                break;
            }
        }
    }
    if pkts.is_empty() {
        anyhow::bail!("{}: no IP packets to replay", args.capture.display());
    }
    let mut interp = ProgramEngine::new(prog.clone(), EngineKind::Interp);
    let mut jit = ProgramEngine::new(prog.clone(), EngineKind::Jit);
    if let Some(n) = &jit.fallback_note {
        eprintln!("nfc: note: {n}");
    }
    let (mut vi, mut vj) = (Vec::new(), Vec::new());
    // Warm-up pass each (page in code and data), also the agreement check.
    pass(&mut interp, &chains, &pkts, &mut vi);
    pass(&mut jit, &chains, &pkts, &mut vj);
    let disagree = vi.iter().zip(&vj).filter(|(a, b)| a != b).count();
    let counters_agree = interp.state.counters == jit.state.counters;
    let n = pkts.len() as f64;
    let (mut ti, mut tj) = (Vec::new(), Vec::new());
    for _ in 0..args.passes.max(1) {
        ti.push(pass(&mut interp, &chains, &pkts, &mut vi) / n);
        tj.push(pass(&mut jit, &chains, &pkts, &mut vj) / n);
    }
    let (mi, mj) = (median(&mut ti), median(&mut tj));
    let ratio = if mj > 0.0 { mi / mj } else { 0.0 };
    let jit_kind = jit.kind().name();
    if args.json {
        let doc = serde_json::json!({
            "packets": pkts.len(),
            "skipped": skipped,
            "base_chains": chains.len(),
            "passes": args.passes.max(1),
            "interp_ns_per_packet": mi,
            "jit_ns_per_packet": mj,
            "jit_engine": jit_kind,
            "speedup": ratio,
            "verdict_mismatches": disagree,
            "counters_agree": counters_agree,
        });
        front::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    } else {
        front::print_stdout(&format!(
            "{} packets ({} skipped: not IP), {} base chain(s), {} passes each, median:\n  interp {:>9.1} ns/packet\n  {:<6} {:>9.1} ns/packet\n  ratio  {:>9.2}x (interp / {jit_kind})\nverdicts: {}; counters: {}\n",
            pkts.len(),
            skipped,
            chains.len(),
            args.passes.max(1),
            mi,
            jit_kind,
            mj,
            ratio,
            if disagree == 0 {
                "identical".to_string()
            } else {
                format!("{disagree} packet(s) differ")
            },
            if counters_agree {
                "identical"
            } else {
                "differ"
            }
        ))?;
    }
    Ok(if disagree == 0 && counters_agree {
        Outcome::Ok
    } else {
        Outcome::Diagnostics
    })
}
