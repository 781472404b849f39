//! Interpreter throughput on a realistic hand-built 50-rule filter chain: ct state rules,
//! tcp/udp port matches, address prefixes and ranges, a port set lookup, an iifname match.
//! The packet mix has hits early, hits late and misses that walk the whole chain to the policy.
//! Prints ns per executed instruction (the instruction count is measured in setup).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nfr_vm::insn::*;
use nfr_vm::pkt::{NFPROTO_IPV4, PktState, ct_state, ifname};
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::{
    ChainId, ChainVerdict, Effects, Hook, Program, Reg, Set, State, Verdict, VerifiedProgram,
};
use std::hint::black_box;
use std::time::Instant;

const R0: Reg = Reg(0);

fn accept() -> Insn {
    Insn::ImmVerdict(ChainVerdict::Accept)
}

fn ruleset() -> VerifiedProgram {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    let drops = p.add_counter();
    // 0: ct state established,related accept
    p.add_rule(
        c,
        vec![
            Insn::Ct {
                key: CtKey::State,
                dir: None,
                dreg: R0,
            },
            Insn::Bitwise {
                sreg: R0,
                dreg: R0,
                len: 4,
                op: BitwiseOp::mask_xor(
                    Data::host32(ct_state::ESTABLISHED | ct_state::RELATED),
                    Data::host32(0),
                ),
            },
            Insn::Cmp {
                op: CmpOp::Neq,
                sreg: R0,
                data: Data::host32(0),
            },
            accept(),
        ],
    );
    // 1: ct state invalid drop
    p.add_rule(
        c,
        vec![
            Insn::Ct {
                key: CtKey::State,
                dir: None,
                dreg: R0,
            },
            Insn::Bitwise {
                sreg: R0,
                dreg: R0,
                len: 4,
                op: BitwiseOp::mask_xor(Data::host32(1), Data::host32(0)),
            },
            Insn::Cmp {
                op: CmpOp::Neq,
                sreg: R0,
                data: Data::host32(0),
            },
            Insn::ImmVerdict(ChainVerdict::Drop),
        ],
    );
    // 2: iifname "lo" accept
    p.add_rule(
        c,
        vec![
            Insn::meta(MetaKey::Iifname, R0),
            Insn::cmp_eq(R0, Data::name16("lo")),
            accept(),
        ],
    );
    // 3..=32: tcp dport N accept (30 rules)
    for i in 0..30u16 {
        p.add_rule(
            c,
            vec![
                Insn::meta(MetaKey::L4proto, R0),
                Insn::cmp_eq(R0, Data::u8(6)),
                Insn::payload(PayloadBase::Transport, 2, 2, R0),
                Insn::cmp_eq(R0, Data::be16(1000 + i * 7)),
                accept(),
            ],
        );
    }
    // 33..=42: ip saddr 10.i.0.0/16 udp dport 53 accept
    for i in 0..10u8 {
        p.add_rule(
            c,
            vec![
                Insn::payload(PayloadBase::Network, 12, 2, R0),
                Insn::cmp_eq(R0, Data::new(&[10, i]).unwrap()),
                Insn::meta(MetaKey::L4proto, R0),
                Insn::cmp_eq(R0, Data::u8(17)),
                Insn::payload(PayloadBase::Transport, 2, 2, R0),
                Insn::cmp_eq(R0, Data::be16(53)),
                accept(),
            ],
        );
    }
    // 43..=47: ip daddr ranges
    for i in 0..5u8 {
        p.add_rule(
            c,
            vec![
                Insn::payload(PayloadBase::Network, 16, 4, R0),
                Insn::range(
                    RangeOp::Eq,
                    R0,
                    Data::new(&[172, 16 + i, 0, 0]).unwrap(),
                    Data::new(&[172, 16 + i, 0, 255]).unwrap(),
                ),
                accept(),
            ],
        );
    }
    // 48: tcp dport { 64 ports } accept
    let mut s = Set::new("__set%d", 2, SetDataType::None, SetKind::Hash);
    for i in 0..64u16 {
        s.insert(&(20000 + i * 3).to_be_bytes(), ElemData::None);
    }
    let sid = p.add_set(s);
    p.add_rule(
        c,
        vec![
            Insn::meta(MetaKey::L4proto, R0),
            Insn::cmp_eq(R0, Data::u8(6)),
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            Insn::Lookup {
                sreg: R0,
                set: sid,
                dest: LookupDest::None,
                invert: false,
            },
            accept(),
        ],
    );
    // 49: counter (drops by policy)
    p.add_rule(c, vec![Insn::Counter(drops)]);
    p.verify().expect("bench ruleset verifies")
}

fn packet(proto: u8, src: [u8; 4], dst: [u8; 4], dport: u16, ct: u32) -> (Vec<u8>, PktState) {
    let mut b = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0];
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    b.extend_from_slice(&40000u16.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.resize(40, 0);
    let st = PktState {
        nhoff: 0,
        thoff: 20,
        has_th: true,
        l4proto: proto,
        nfproto: NFPROTO_IPV4,
        len: 40,
        iif: 2,
        iifname: ifname("eth0"),
        ct_valid: ct != ct_state::INVALID,
        ct_state: ct,
        ..Default::default()
    };
    (b, st)
}

fn packets() -> Vec<(Vec<u8>, PktState)> {
    let mut v = Vec::new();
    for i in 0..64u32 {
        let k = i as u16;
        v.push(match i % 8 {
            0 | 1 => packet(6, [1, 2, 3, 4], [5, 6, 7, 8], 443, ct_state::ESTABLISHED),
            2 => packet(
                6,
                [1, 2, 3, 4],
                [5, 6, 7, 8],
                1000 + (k % 30) * 7,
                ct_state::NEW,
            ),
            3 => packet(
                17,
                [10, (i % 10) as u8, 1, 1],
                [5, 6, 7, 8],
                53,
                ct_state::NEW,
            ),
            4 => packet(
                6,
                [1, 2, 3, 4],
                [5, 6, 7, 8],
                20000 + (k % 64) * 3,
                ct_state::NEW,
            ),
            5 => packet(
                6,
                [1, 2, 3, 4],
                [172, 16 + (i % 5) as u8, 0, 9],
                9,
                ct_state::NEW,
            ),
            6 => packet(17, [9, 9, 9, 9], [5, 6, 7, 8], 9999, ct_state::NEW), // miss
            _ => packet(6, [1, 2, 3, 4], [5, 6, 7, 8], 1001, ct_state::NEW),  // miss
        });
    }
    v
}

fn run_all(
    vp: &VerifiedProgram,
    state: &mut State,
    pk: &mut [(Vec<u8>, PktState)],
    fx: &mut Effects,
) -> u32 {
    let mut acc = 0;
    for (b, st) in pk.iter_mut() {
        let v = vp.run(state, ChainId(0), b, st, fx);
        acc += u32::from(v == Verdict::Accept);
    }
    acc
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn bench(c: &mut Criterion) {
    let vp = ruleset();
    let mut pk = packets();
    let mut state = State::new(&vp);
    let mut fx = Effects::default();
    let accepted = run_all(&vp, &mut state, &mut pk, &mut fx);
    let insns = state.insns_executed;
    assert_eq!(accepted, 48, "6 of every 8 packets are accepted");

    // Quick manual measurement for the printed figure.
    // On-CPU time of this thread (robust on a shared machine), else wall time.
    let iters = 20_000u64;
    let cpu0 = thread_cpu_ns();
    let t = Instant::now();
    for _ in 0..iters {
        black_box(run_all(&vp, &mut state, black_box(&mut pk), &mut fx));
    }
    let wall = t.elapsed().as_nanos() as f64;
    let ns = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64,
        _ => wall,
    };
    let per_insn = ns / (iters * insns) as f64;
    let per_pkt = ns / (iters * pk.len() as u64) as f64;
    println!(
        "interp: {} packets, {insns} instructions per pass ({:.1}/packet): \
         {per_insn:.2} ns/insn, {per_pkt:.1} ns/packet (on-CPU time; wall {:.2} ns/insn)",
        pk.len(),
        insns as f64 / pk.len() as f64,
        wall / (iters * insns) as f64
    );

    let mut g = c.benchmark_group("interp");
    g.throughput(Throughput::Elements(insns));
    g.bench_function("filter50_mix64", |b| {
        b.iter(|| black_box(run_all(&vp, &mut state, black_box(&mut pk), &mut fx)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
