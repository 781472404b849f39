//! The fixed cost of one chain call: a base chain with no rule, and one with one rule
//! (`meta l4proto tcp tcp dport 22 counter accept`, policy accept) on a packet it misses
//! (dport 80: the policy) and one it hits, run in a loop through `ProgramEngine::run_chain`
//! (interpreter and JIT) and through the engines' own `run` (no `Effects::clear`).
//! `cargo bench -p nfr-runtime --bench chain_call`.

use criterion::{Criterion, criterion_group, criterion_main};
use nfr_runtime::engine::{EngineKind, ProgramEngine};
use nfr_vm::insn::{Data, Insn, MetaKey, PayloadBase};
use nfr_vm::program::Policy;
use nfr_vm::{
    ChainId, ChainVerdict, Effects, Hook, PktState, Program, Reg, State, VerifiedProgram,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn program(rules: usize) -> VerifiedProgram {
    let mut p = Program::new();
    let input = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    for _ in 0..rules {
        let c = p.add_counter();
        p.add_rule(
            input,
            vec![
                Insn::meta(MetaKey::L4proto, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::u8(6)),
                Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::be16(22)),
                Insn::Counter(c),
                Insn::ImmVerdict(ChainVerdict::Accept),
            ],
        );
    }
    p.verify().expect("valid program")
}

/// A raw IPv4/TCP packet to `dport`.
fn packet(dport: u16) -> (Vec<u8>, PktState) {
    let mut pkt = vec![0u8; 40];
    pkt[0] = 0x45;
    pkt[9] = 6;
    pkt[22..24].copy_from_slice(&dport.to_be_bytes());
    let st = PktState {
        thoff: 20,
        has_th: true,
        l4proto: 6,
        len: 40,
        nfproto: nfr_vm::pkt::NFPROTO_IPV4,
        ..Default::default()
    };
    (pkt, st)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain_call");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    for (name, rules, dport) in [("empty", 0, 80), ("miss", 1, 80), ("hit", 1, 22)] {
        let prog = Arc::new(program(rules));
        let (pkt, st0) = packet(dport);
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
