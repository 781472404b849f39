//! ClassBench rule sets: the interpreter with classifiers and the JIT (classified, and every
//! rule unrolled) against the interpreter walking the linear chain, packet by packet (verdict
//! and every counter) over the whole trace; classifier build and compile times printed for 1K
//! and 10K rules (no timed assertions; run
//! `cargo test --release -p nfr-jit --test classbench -- --nocapture` to read them).
//! Skips (with a message) when `shared/corpus` is absent.

#[path = "common/classbench.rs"]
mod cb;
mod common;
use nfr_jit::{JitOptions, JitProgram, OptLevel};
use std::time::Instant;

#[test]
fn classbench_jit_equals_interpreter_and_compile_times() {
    let Some(dir) = cb::dir() else {
        println!("SKIP: shared/corpus/classbench not found");
        return;
    };
    let big = std::env::var("NFC_JIT_CLASSBENCH_10K").is_ok() || !cfg!(debug_assertions);
    for set in ["acl1", "fw1", "ipc1"] {
        for size in ["1K", "10K"] {
            if size == "10K" && !big {
                continue;
            }
            let rules = std::fs::read_to_string(dir.join(format!("{set}_{size}"))).unwrap();
            let trace = std::fs::read_to_string(dir.join(format!("{set}_{size}_trace"))).unwrap();
            let rules = cb::parse_rules(&rules);
            let trace = cb::parse_trace(&trace);
            assert!(rules.len() > 700 && !trace.is_empty());
            let prog = cb::program(&rules, rules.len());
            let pkts: Vec<_> = trace
                .iter()
                .step_by(if big { 1 } else { 10 })
                .map(|t| cb::packet(*t))
                .collect();
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
            .unwrap_or_else(|e| panic!("classified interpreter: {e}"));
            assert_eq!(n, pkts.len());
            // The JIT over the classified program at both levels, then every rule unrolled
            // (compared on every 10th packet only: the linear interpreter is slow).
            for (label, opt, p) in [
                ("classified/none", OptLevel::None, &cls),
                ("classified/speed", OptLevel::Speed, &cls),
                ("unrolled/none", OptLevel::None, &prog),
            ] {
                let opts = JitOptions {
                    opt_level: opt,
                    verify_ir: false,
                    ..JitOptions::default()
                };
                let t = Instant::now();
                let jit = JitProgram::compile_with(p, &opts).expect("compiles");
                times.push((label, t.elapsed(), jit.functions()));
                let unrolled = std::ptr::eq(p, &prog);
                let some: Vec<_> = pkts
                    .iter()
                    .step_by(if unrolled { 10 } else { 1 })
                    .cloned()
                    .collect();
                let n = common::compare(&prog, &jit, &some).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(n, some.len());
                if !unrolled {
                    assert!(jit.runs() >= 1, "{label}: no classified run");
                }
            }
            println!(
                "{set}_{size}: {} rules, {} insns, {} packets equal; compile {}",
                rules.len(),
                prog.program().insns.len(),
                pkts.len(),
                times
                    .iter()
                    .map(|(o, d, f)| format!("{o} {:.1} ms ({f} fns)", d.as_secs_f64() * 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}
