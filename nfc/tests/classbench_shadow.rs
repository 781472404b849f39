//! The shadowing lint (W0602, W0603) on the public ClassBench filter sets
//! (`../shared/corpus/classbench/song-filterset`): each set is imported with `nfc import classbench` and
//! checked as it is, and in a harder order: its rules reversed (the broad rules, which ClassBench puts last, come
//! first; rules with no match left out) with every 10th rule repeated at the end. Every rule reported as never
//! matching is then tried by brute force: packets are sampled inside the rule's cubes (both corners and random
//! points of each), each must match the rule on its own (the rule is exact), and the linear interpreter must
//! never reach it in its chain: its counter stays 0. The counts and the lint's time are printed (a few seconds a
//! 10K set in a debug build); without the corpus the tests are reported as ignored, and fail with
//! `NFC_REQUIRE_ORACLE=1`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::gate;
use libtest_mimic::Failed;
use nfr_compiler::check::{check_source, shadow};
use nfr_compiler::diag::Severity;
use nfr_vm::classify::{Dim, Field, Span, analyze, tail};
use nfr_vm::insn::{MetaKey, PayloadBase};
use nfr_vm::{ChainId, ChainVerdict, Effects, PktState, State};

const SETS: &[&str] = &["acl1", "fw1", "ipc1"];

fn main() {
    let mut trials = Vec::new();
    for size in ["1K", "10K"] {
        for set in SETS {
            let name = format!("{set}_{size}");
            trials.push(gate::needs(
                format!("{name}_shadowed_rules_are_never_reached"),
                || gate::corpus("classbench/song-filterset"),
                move |dir| shadowed(&dir, &name).unwrap_or_else(|e| panic!("{e:?}")),
            ));
        }
    }
    gate::run(trials);
}

/// Random numbers from proptest's ChaCha generator, seeded, so that runs are reproducible.
struct Rng(proptest::test_runner::TestRng);
impl Rng {
    fn new(seed: u64) -> Rng {
        use proptest::test_runner::{RngAlgorithm, TestRng};
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        Rng(TestRng::from_seed(RngAlgorithm::ChaCha, &key))
    }
    fn next(&mut self) -> u64 {
        proptest::prelude::Rng::next_u64(&mut self.0)
    }
    fn within(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % (u64::from(hi - lo) + 1)) as u32
    }
}

/// An IPv4 packet of 40 bytes (a 20-byte transport header of zeros) and its context.
fn packet(proto: u8) -> (Vec<u8>, PktState) {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    let st = PktState {
        nhoff: 0,
        thoff: 20,
        has_th: true,
        l4proto: proto,
        len: 40,
        ..Default::default()
    };
    (p, st)
}

/// The packet's value of a dimension (natural domain: the bytes big-endian), if the sampler models its field.
fn value(d: Dim, p: &[u8], st: &PktState) -> Option<u32> {
    let v = match d.field {
        Field::Payload { base, off, len } => {
            let at = match base {
                PayloadBase::Network => 0,
                PayloadBase::Transport => 20,
                PayloadBase::Link => return None,
            } + off as usize;
            p.get(at..at + usize::from(len))?
                .iter()
                .fold(0u32, |a, &b| (a << 8) | u32::from(b))
        }
        Field::Meta {
            key: MetaKey::L4proto,
            ..
        } => u32::from(st.l4proto),
        _ => return None,
    };
    Some(v & d.mask)
}

/// Put a field's value `v` into the packet.
fn write(d: Dim, v: u32, p: &mut [u8], st: &mut PktState) {
    match d.field {
        Field::Payload { base, off, len } => {
            let at = if base == PayloadBase::Network { 0 } else { 20 } + off as usize;
            let l = usize::from(len);
            let b = v.to_be_bytes();
            if let Some(dst) = p.get_mut(at..at + l) {
                dst.copy_from_slice(&b[4 - l..]);
            }
        }
        Field::Meta { .. } => {
            st.l4proto = v as u8;
            p[9] = v as u8;
        }
        Field::Ct { .. } => {}
    }
}

/// A packet inside `cube` (`mode` 0: low corner, 1: high corner, else random), or `None` when the sampler cannot
/// make one (a field it does not model, or masks it did not satisfy).
fn sample(cube: &[Span], mode: u32, rng: &mut Rng) -> Option<(Vec<u8>, PktState)> {
    let (mut p, mut st) = packet(6);
    for s in cube {
        let full = s.dim.field.max();
        for _ in 0..16 {
            let t = match mode {
                0 => s.lo,
                1 => s.hi,
                _ => rng.within(s.lo, s.hi),
            };
            let v = if s.dim.mask == full {
                t
            } else {
                (t & s.dim.mask) | (rng.next() as u32 & !s.dim.mask & full)
            };
            write(s.dim, v, &mut p, &mut st);
            if value(s.dim, &p, &st).is_some_and(|x| s.lo <= x && x <= s.hi) {
                break;
            }
        }
    }
    cube.iter()
        .all(|s| value(s.dim, &p, &st).is_some_and(|x| s.lo <= x && x <= s.hi))
        .then_some((p, st))
}

fn shadowed(dir: &Path, name: &str) -> Result<(), Failed> {
    let rules = dir.join(name);
    if !rules.is_file() {
        return Err(format!(
            "the ClassBench corpus is required but {} is missing",
            rules.display()
        )
        .into());
    }
    let d = common::tmp_dir(&format!("cb-shadow-{name}"));
    let out: PathBuf = d.join(format!("{name}.nfr"));
    let o = common::nfc(&[
        "import",
        "classbench",
        rules.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    if !o.status.success() {
        return Err(format!("import failed: {o:?}").into());
    }
    let text = std::fs::read_to_string(&out)?;
    check(name, &text)?;
    check(&format!("{name} reversed"), &reversed(&text))
}

/// The ruleset with its rules in reverse order, those with no match left out, and every 10th rule repeated at
/// the end.
fn reversed(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_rule = |l: &&str| l.starts_with("\t\t") && l.trim_end().ends_with("accept");
    let first = lines.iter().position(is_rule).unwrap_or(lines.len());
    let rules: Vec<&str> = lines.iter().copied().filter(is_rule).collect();
    let mut order: Vec<&str> = rules
        .iter()
        .rev()
        .copied()
        .filter(|r| r.trim() != "counter accept")
        .collect();
    order.extend(rules.iter().step_by(10).copied());
    let mut out: Vec<&str> = lines[..first].to_vec();
    out.extend(order);
    out.extend(lines.iter().skip(first).copied().filter(|l| !is_rule(l)));
    out.join("\n") + "\n"
}

/// Check one ruleset: count the warnings, time the lint, try every rule said never to match.
fn check(name: &str, text: &str) -> Result<(), Failed> {
    let (sources, hir, diags) = check_source(&format!("{name}.nfr"), text);
    let hir = hir.ok_or("the imported set has errors")?;
    let t = Instant::now();
    let prog = nfr_compiler::lower::lower(&hir)?;
    let lower_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let again = shadow::lint(&hir, &prog, &sources);
    let lint_ms = t.elapsed().as_secs_f64() * 1e3;
    let warned: Vec<_> = diags
        .iter()
        .filter(|d| d.code.starts_with("W060"))
        .collect();
    if warned.len() != again.len() || diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(format!(
            "{} warnings from the checker, {} from the lint alone",
            warned.len(),
            again.len()
        )
        .into());
    }
    let count = |code: &str| warned.iter().filter(|d| d.code == code).count();
    let (w0602, w0603) = (count("W0602"), count("W0603"));
    let chain = hir.chains.first().ok_or("no chain")?;
    let vp = prog.clone().verify()?;
    // the chain's counters (a reported rule's stays 0), and a scratch copy for rules run alone
    let mut state = State::new(&vp);
    let mut scratch = State::new(&vp);
    let mut fx = Effects::default();
    let mut rng = Rng::new(0x5eed_0000 ^ name.len() as u64);
    let (mut packets, mut skipped, mut checked_rules) = (0usize, 0usize, 0usize);
    for w in &warned {
        // W0603 on these sets is always of a terminal rule (every rule is `counter accept`): never matches too.
        let j = chain
            .rules
            .iter()
            .position(|r| r.span == w.primary)
            .ok_or("a warning on no rule")?;
        let rid = *prog.chains[0].rules.get(j).ok_or("no such rule")?;
        let insns = prog.rule_insns(rid);
        let shape = analyze(&prog, insns);
        let counter = tail(insns, shape.tail as usize)
            .counter
            .ok_or("no counter")?;
        if !shape.exact {
            return Err(format!("rule {} is not exact", j + 1).into());
        }
        let mut tried = 0;
        for c in &shape.cubes {
            for mode in 0..12 {
                let Some((pkt, mut st)) = sample(c, mode, &mut rng) else {
                    skipped += 1;
                    continue;
                };
                fx.clear();
                let alone = vp.run_rule(
                    &mut scratch,
                    ChainId(0),
                    j as u32,
                    &pkt,
                    &mut st.clone(),
                    &mut fx,
                );
                if alone != ChainVerdict::Accept {
                    return Err(
                        format!("rule {} does not match its own sample {pkt:02x?}", j + 1).into(),
                    );
                }
                fx.clear();
                vp.run(&mut state, ChainId(0), &pkt, &mut st, &mut fx);
                if state
                    .counters
                    .get(counter as usize)
                    .is_none_or(|c| c.packets != 0)
                {
                    return Err(format!(
                        "{name}: rule {} ({}) is reported as never matching, but {pkt:02x?} reaches it",
                        j + 1,
                        w.code
                    )
                    .into());
                }
                packets += 1;
                tried += 1;
            }
        }
        if tried == 0 {
            return Err(format!("no packet could be made for rule {}", j + 1).into());
        }
        checked_rules += 1;
    }
    println!(
        "{name}: {} rules; W0602 never matches: {w0602}; W0603 duplicates: {w0603}; lint {lint_ms:.1} ms (lowering \
         {lower_ms:.1} ms); {checked_rules} rules checked with {packets} packets ({skipped} samples skipped)",
        chain.rules.len()
    );
    Ok(())
}
