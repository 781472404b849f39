//! Differential tests: random valid Programs × random packets (every truncation of each),
//! JIT against the interpreter — verdict, counters, limits, PktState after, every Effects field.
//!
//! `NFC_JIT_PAIRS=1000000 cargo test -p nfr-jit --release --test diff -- --nocapture` runs the
//! seeded loop up to that many (program, packet) pairs (CI runs a small count).

mod common;
use common::*;
use nfr_jit::{JitOptions, JitProgram, OptLevel};
use proptest::prelude::{ProptestConfig, any, prop_assert, proptest};

/// Pairs compared and classified runs compiled for one seed (every other seed with
/// classifiers, compared with the interpreter walking rule by rule).
fn check_seed(seed: u64, opts: &JitOptions) -> Result<(usize, usize), String> {
    let mut r = Rng::new(seed);
    let prog = random_program(&mut r);
    let compiled = if seed % 2 == 1 {
        with_classifiers(&prog, &mut r)
    } else {
        prog.clone()
    };
    let jit = JitProgram::compile_with(&compiled, opts)
        .map_err(|e| format!("seed {seed}: compile failed: {e}"))?;
    let mut pkts = packet_set(&mut r, 4);
    if seed % 2 == 1 {
        aim_packets(&compiled, &mut pkts, &mut r);
        pkts.extend(aimed_set(&compiled, &mut r, 20));
    }
    compare(&prog, &jit, &pkts)
        .map(|n| (n, jit.runs()))
        .map_err(|e| {
            format!(
                "seed {seed}: {e}\nprogram:\n{}",
                nfr_vm::print::print_program(prog.program())
            )
        })
}

#[test]
fn seeded_jit_equals_interpreter() {
    let target: usize = std::env::var("NFC_JIT_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut pairs = 0usize;
    let mut programs = 0u64;
    let mut runs = 0usize;
    let mut opts = JitOptions::default();
    while pairs < target {
        // Alternate opt levels and tiny partitions (to exercise partition boundaries).
        opts.opt_level = if programs.is_multiple_of(2) {
            OptLevel::Speed
        } else {
            OptLevel::None
        };
        opts.partition_insns = if programs.is_multiple_of(3) { 3 } else { 2048 };
        match check_seed(programs, &opts) {
            Ok((n, r)) => {
                pairs += n;
                runs += r;
            }
            Err(e) => panic!("{e}"),
        }
        programs += 1;
    }
    println!(
        "jit == interp on {pairs} (program, packet) pairs over {programs} programs ({runs} classified runs)"
    );
    assert!(runs > 0, "the generator made no classified runs");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn prop_jit_equals_interpreter(seed in any::<u64>(), tiny in any::<bool>()) {
        let opts = JitOptions {
            partition_insns: if tiny { 2 } else { 2048 },
            ..JitOptions::default()
        };
        if let Err(e) = check_seed(seed ^ 0x5eed, &opts) {
            prop_assert!(false, "{}", e);
        }
    }
}
