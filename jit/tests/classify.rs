//! Classifiers against the linear chain: random programs (with runs of classifiable rules of
//! random shapes) × random packets (every truncation), the interpreter walking the chain rule by
//! rule against the interpreter and against the JIT, both using classifiers built with random
//! options —
//! verdict, counters, limits, PktState after, every Effects field.
//!
//! `NFC_CLASSIFY_PAIRS=1000000 cargo test -p nfr-jit --release --test classify -- --nocapture`
//! runs the seeded loop up to that many pairs (each compared on both engines) (CI runs a small count).

mod common;
use common::*;

#[test]
fn classifiers_equal_the_linear_chain() {
    let target: usize = std::env::var("NFC_CLASSIFY_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let (mut pairs, mut programs, mut classifiers) = (0usize, 0u64, 0usize);
    while pairs < target {
        let mut r = Rng::new(0xc1a5_5000 + programs);
        let (prog, cls, pkts) = classified_case(&mut r, 4, 40);
        classifiers += cls.program().classifiers.len();
        let n = compare_classified(&prog, &cls, &pkts)
            .unwrap_or_else(|e| panic!("seed {programs}: {e}"));
        let opts = nfr_jit::JitOptions {
            opt_level: if programs % 2 == 0 {
                nfr_jit::OptLevel::None
            } else {
                nfr_jit::OptLevel::Speed
            },
            partition_insns: if programs % 3 == 0 { 3 } else { 2048 },
            native_walk: programs % 4 < 2,
            ..Default::default()
        };
        let jit = nfr_jit::JitProgram::compile_with(&cls, &opts)
            .unwrap_or_else(|e| panic!("seed {programs}: compile failed: {e}"));
        let m = compare(&prog, &jit, &pkts).unwrap_or_else(|e| {
            panic!(
                "seed {programs}: linear != jit: {e}\nprogram:\n{}",
                nfr_vm::print::print_program(prog.program())
            )
        });
        pairs += n.min(m);
        programs += 1;
    }
    println!(
        "linear == classified interpreter == classified JIT on {pairs} pairs over {programs} programs ({classifiers} classifiers)"
    );
    assert!(classifiers > 0);
}
