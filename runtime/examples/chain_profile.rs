//! Chain-call profiling driver for instruction counting (callgrind), `perf record` and quick
//! timings: K calls of `ProgramEngine::run_chain` on one case of `benches/chain_call.rs`
//! (engine `interp` or `jit`; case `empty`, `miss` or `hit`), timed in batches. Run twice with
//! different K and subtract to get instructions per call.
//!
//! `cargo run --release -p nfr-runtime --example chain_profile -- jit miss 1000000`

#[path = "../benches/common/chain.rs"]
mod chain;

use nfr_runtime::engine::{EngineKind, ProgramEngine};
use nfr_vm::ChainId;
use std::hint::black_box;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = match args.get(1).map_or("jit", String::as_str) {
        "interp" => EngineKind::Interp,
        _ => EngineKind::Jit,
    };
    let case = args.get(2).map_or("miss", String::as_str);
    let k: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let Some(&(_, rules, dport)) = chain::CASES.iter().find(|c| c.0 == case) else {
        eprintln!("unknown case {case} (empty, miss, hit)");
        std::process::exit(2);
    };
    let mut e = ProgramEngine::new(Arc::new(chain::program(rules)), kind);
    let (pkt, mut st) = chain::packet(dport);
    // Timed in batches of 10K calls: the median and the fastest batch (the machine is shared).
    let mut batches = Vec::new();
    let mut left = k;
    while left > 0 {
        let n = left.min(10_000);
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            black_box(e.run_chain(black_box(ChainId(0)), black_box(&pkt), &mut st));
        }
        batches.push(t0.elapsed().as_nanos() as f64 / n as f64);
        left -= n;
    }
    batches.sort_by(f64::total_cmp);
    let (median, min) = (batches[batches.len() / 2], batches[0]);
    println!(
        "{} {case}: {k} calls, median {median:.2} ns, min {min:.2} ns a call",
        e.kind().name()
    );
}
