//! ClassBench rule sets (acl1, fw1, ipc1 at 100, 1K and 10K rules): for every packet of the
//! set's trace, the interpreter with classifiers and the JIT over the classified program give
//! the verdict and every counter of the interpreter walking the linear chain (so the rule each
//! packet matched is the linear scan's); the JIT with every rule unrolled is checked on every
//! 10th packet. Classifier build and compile times are printed (no timed assertions; run
//! `cargo test --release -p nfr-jit --test classbench -- --nocapture` to read them).
//!
//! One test per set. Without `../shared/corpus/classbench` they are reported as ignored (a
//! custom harness, libtest-mimic, since libtest cannot ignore at run time), and fail with
//! `NFC_REQUIRE_ORACLE=1`. In a debug build the 10K sets check every 10th packet of the trace and
//! leave out the unrolled JIT (the linear interpreter they are compared with is slow there); a
//! release build or `NFC_JIT_CLASSBENCH_10K=1` checks them whole. `NFC_CLASSBENCH_DIR` points at another directory of
//! sets in the same format (e.g. ones made with ClassBench's `db_generator`, traces cut to six
//! columns) and `NFC_CLASSBENCH_SETS=acl3_10k,fw4_10k` names the sets to check there.

#[path = "common/classbench.rs"]
mod cb;
mod common;
use libtest_mimic::{Arguments, Failed, Trial};
use nfr_jit::{JitOptions, JitProgram, OptLevel};
use std::time::Instant;

fn main() {
    let args = Arguments::from_args();
    let dir = cb::dir();
    let require = std::env::var("NFC_REQUIRE_ORACLE").as_deref() == Ok("1");
    let big = std::env::var("NFC_JIT_CLASSBENCH_10K").is_ok() || !cfg!(debug_assertions);
    if dir.is_none() {
        eprintln!(
            "{}: ../shared/corpus/classbench/song-filterset not found",
            if require {
                "FAIL (NFC_REQUIRE_ORACLE=1)"
            } else {
                "SKIP"
            }
        );
    }
    // NFC_CLASSBENCH_SETS=a,b,...: other sets of the directory instead.
    let names: Vec<String> = match std::env::var("NFC_CLASSBENCH_SETS") {
        Ok(s) => s.split(',').map(str::to_string).collect(),
        Err(_) => ["acl1", "fw1", "ipc1"]
            .iter()
            .flat_map(|set| ["100", "1K", "10K"].map(|size| format!("{set}_{size}")))
            .collect(),
    };
    let mut trials = Vec::new();
    for name in names {
        let d = dir.clone();
        let large = name.ends_with("10K") || name.ends_with("k");
        let ignored = d.is_none() && !require;
        let step = if large && !big { 10 } else { 1 };
        trials.push(
            Trial::test(format!("classbench_{name}"), move || check(d, &name, step))
                .with_ignored_flag(ignored),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

/// `step`: check every `step`-th packet of the trace (and, above 1, not the unrolled JIT).
fn check(dir: Option<std::path::PathBuf>, name: &str, step: usize) -> Result<(), Failed> {
    let dir = dir.ok_or("the ClassBench corpus is required (NFC_REQUIRE_ORACLE=1) but missing")?;
    let read = |f: String| {
        std::fs::read_to_string(dir.join(&f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    let rules = cb::parse_rules(&read(name.to_string())?);
    let trace = cb::parse_trace(&read(format!("{name}_trace"))?);
    if rules.len() < 50 || trace.is_empty() {
        return Err(format!("{name}: {} rules, {} packets", rules.len(), trace.len()).into());
    }
    let prog = cb::program(&rules, rules.len());
    let pkts: Vec<_> = trace.iter().step_by(step).map(|t| cb::packet(*t)).collect();
    let mut times = Vec::new();
    // Classifiers: build time, then the interpreter with them against the linear chain.
    let t = Instant::now();
    let cls = common::classified(&prog, 4);
    times.push(("classify", t.elapsed(), cls.program().classifiers.len()));
    let n = common::compare_with(
        &prog,
        |s, c, b, st, fx| prog.run(s, c, b, st, fx),
        |s, c, b, st, fx| cls.run(s, c, b, st, fx),
        &pkts,
    )
    .map_err(|e| format!("{name}: classified interpreter: {e}"))?;
    assert_eq!(n, pkts.len());
    // The JIT over the classified program at both levels, then every rule unrolled (on every
    // 10th packet only: the linear interpreter is slow).
    for (label, opt, p) in [
        ("classified/none", OptLevel::None, &cls),
        ("classified/speed", OptLevel::Speed, &cls),
        ("unrolled/none", OptLevel::None, &prog),
    ] {
        if step > 1 && std::ptr::eq(p, &prog) {
            continue;
        }
        let opts = JitOptions {
            opt_level: opt,
            verify_ir: false,
            ..JitOptions::default()
        };
        let t = Instant::now();
        let jit = JitProgram::compile_with(p, &opts).map_err(|e| format!("{label}: {e}"))?;
        times.push((label, t.elapsed(), jit.functions()));
        let unrolled = std::ptr::eq(p, &prog);
        let some: Vec<_> = pkts
            .iter()
            .step_by(if unrolled { 10 } else { 1 })
            .cloned()
            .collect();
        common::compare(&prog, &jit, &some).map_err(|e| format!("{name} {label}: {e}"))?;
        if !unrolled && jit.runs() == 0 {
            return Err(format!("{name} {label}: no classified run").into());
        }
    }
    println!(
        "{name}: {} rules, {} insns, {} packets equal (1 in {step} of the trace); {} classifier bytes; compile {}",
        rules.len(),
        prog.program().insns.len(),
        pkts.len(),
        cls.program().classifier_bytes(),
        times
            .iter()
            .map(|(o, d, f)| format!("{o} {:.1} ms ({f})", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
