//! JIT vs interpreter on ClassBench acl1 linear chains of 10 / 100 / 1K / 10K rules, same
//! packets (the acl1_10K trace) for both engines. Prints, for each size, the medians of
//! side-by-side timing rounds (ns/packet for the interpreter walking the linear chain, the JIT
//! over the classified program — as lowering builds it — and the JIT with every rule unrolled;
//! interp/JIT ratios), then runs criterion groups. `NFC_JIT_BENCH_OPT=none` compiles both JIT variants with
//! `OptLevel::None` instead of the default.
//! Skips when `shared/corpus` is absent.

#[path = "../tests/common/classbench.rs"]
mod cb;

use criterion::{Criterion, criterion_group, criterion_main};
use nfr_jit::{JitOptions, JitProgram, OptLevel};
use nfr_vm::{ChainId, Effects, PktState, State, VerifiedProgram};
use std::hint::black_box;
use std::time::Instant;

struct Case {
    n: usize,
    prog: VerifiedProgram,
    jit: JitProgram,
    unrolled: JitProgram,
}

type Packets = Vec<(Vec<u8>, PktState)>;

fn load() -> Option<(Vec<Case>, Packets)> {
    let dir = cb::dir()?;
    let rules = cb::parse_rules(&std::fs::read_to_string(dir.join("acl1_10K")).ok()?);
    let trace = cb::parse_trace(&std::fs::read_to_string(dir.join("acl1_10K_trace")).ok()?);
    let pkts: Vec<_> = trace.iter().step_by(97).map(|t| cb::packet(*t)).collect();
    let cases = [10, 100, 1000, 10_000]
        .into_iter()
        .map(|n| {
            let prog = cb::program(&rules, n);
            let mut opts = JitOptions::default();
            if std::env::var("NFC_JIT_BENCH_OPT").is_ok_and(|v| v == "none") {
                opts.opt_level = OptLevel::None;
            }
            let cls = nfr_jit::testgen::classified(&prog, 4);
            let jit = JitProgram::compile_with(&cls, &opts).expect("compiles");
            let unrolled = JitProgram::compile_with(&prog, &opts).expect("compiles");
            Case {
                n,
                prog,
                jit,
                unrolled,
            }
        })
        .collect();
    Some((cases, pkts))
}

fn interp_pass(c: &Case, s: &mut State, pkts: &[(Vec<u8>, PktState)]) {
    let mut fx = Effects::default();
    for (b, st) in pkts {
        let mut st = st.clone();
        black_box(c.prog.run(s, ChainId(0), b, &mut st, &mut fx));
    }
}

fn jit_pass(jit: &JitProgram, s: &mut State, pkts: &[(Vec<u8>, PktState)]) {
    let mut fx = Effects::default();
    for (b, st) in pkts {
        let mut st = st.clone();
        black_box(jit.run(s, ChainId(0), b, &mut st, &mut fx));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench(cr: &mut Criterion) {
    let Some((cases, pkts)) = load() else {
        println!("SKIP: shared/corpus/classbench not found");
        return;
    };
    println!(
        "rules | interp ns/pkt | jit ns/pkt | unrolled ns/pkt | interp/jit | interp/unrolled  (medians of 15 alternating rounds, {} packets)",
        pkts.len()
    );
    for c in &cases {
        let mut s = State::new(&c.prog);
        let (mut ti, mut tj, mut tu) = (Vec::new(), Vec::new(), Vec::new());
        let reps = (20_000 / c.n).max(1);
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..reps {
                interp_pass(c, &mut s, &pkts);
            }
            ti.push(t.elapsed().as_nanos() as f64 / (reps * pkts.len()) as f64);
            let t = Instant::now();
            for _ in 0..reps {
                jit_pass(&c.jit, &mut s, &pkts);
            }
            tj.push(t.elapsed().as_nanos() as f64 / (reps * pkts.len()) as f64);
            let t = Instant::now();
            for _ in 0..reps {
                jit_pass(&c.unrolled, &mut s, &pkts);
            }
            tu.push(t.elapsed().as_nanos() as f64 / (reps * pkts.len()) as f64);
        }
        let (i, j, u) = (median(ti), median(tj), median(tu));
        println!(
            "{:>5} | {:>13.1} | {:>10.1} | {:>15.1} | {:>9.2}x | {:>14.2}x",
            c.n,
            i,
            j,
            u,
            i / j,
            i / u
        );
    }
    let mut g = cr.benchmark_group("acl1");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(2));
    for c in &cases {
        let mut s = State::new(&c.prog);
        g.bench_function(format!("interp/{}", c.n), |b| {
            b.iter(|| interp_pass(c, &mut s, &pkts))
        });
        g.bench_function(format!("jit/{}", c.n), |b| {
            b.iter(|| jit_pass(&c.jit, &mut s, &pkts))
        });
        g.bench_function(format!("unrolled/{}", c.n), |b| {
            b.iter(|| jit_pass(&c.unrolled, &mut s, &pkts))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
