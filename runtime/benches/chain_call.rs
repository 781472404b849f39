//! The fixed cost of one chain call: a base chain with no rule, and one with one rule
//! (`meta l4proto tcp tcp dport 22 counter accept`, policy accept) on a packet it misses
//! (dport 80: the policy) and one it hits, run in a loop through `ProgramEngine::run_chain`
//! (interpreter and JIT) and through the engines' own `run` (no `Effects::clear`).
//! `cargo bench -p nfr-runtime --bench chain_call`; instruction counts:
//! `examples/chain_profile.rs`.

#[path = "common/chain.rs"]
mod chain;

use criterion::{Criterion, criterion_group, criterion_main};
use nfr_runtime::engine::{EngineKind, ProgramEngine};
use nfr_vm::{ChainId, Effects, State};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain_call");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    for (name, rules, dport) in chain::CASES {
        let prog = Arc::new(chain::program(rules));
        let (pkt, st0) = chain::packet(dport);
        for kind in [EngineKind::Interp, EngineKind::Jit] {
            let mut e = ProgramEngine::new(prog.clone(), kind);
            assert_eq!(e.kind(), kind);
            let mut st = st0.clone();
            g.bench_function(format!("run_chain/{}/{name}", kind.name()), |b| {
                b.iter(|| e.run_chain(black_box(ChainId(0)), black_box(&pkt), &mut st))
            });
        }
        let mut state = State::new(&prog);
        let mut fx = Effects::default();
        let mut st = st0.clone();
        g.bench_function(format!("run/interp/{name}"), |b| {
            b.iter(|| {
                prog.run(
                    &mut state,
                    black_box(ChainId(0)),
                    black_box(&pkt),
                    &mut st,
                    &mut fx,
                )
            })
        });
        let jit = nfr_jit::JitProgram::compile(&prog).expect("compiles");
        g.bench_function(format!("run/jit/{name}"), |b| {
            b.iter(|| {
                jit.run(
                    &mut state,
                    black_box(ChainId(0)),
                    black_box(&pkt),
                    &mut st,
                    &mut fx,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
