//! Targeted tests: every instruction kind, every verdict path, and out-of-bounds loads at every
//! offset and length. Each case states the expected verdict and also checks JIT == interpreter
//! (counters, limits, PktState, Effects).

mod common;
use common::{Rng, compare, random_pkt_state};
use nfr_jit::{JitOptions, JitProgram, OptLevel};
use nfr_vm::insn::*;
use nfr_vm::pkt::{self, PktState, ct_state, ifname};
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::{
    ChainId, ChainVerdict, Effects, Hook, Program, Reg, Set, State, Verdict, VerifiedProgram,
};

const R0: Reg = Reg(0);
const R1: Reg = Reg(1);

fn accept() -> Insn {
    Insn::ImmVerdict(ChainVerdict::Accept)
}

fn both_opts() -> [JitOptions; 2] {
    [
        JitOptions::default(),
        JitOptions {
            opt_level: OptLevel::None,
            partition_insns: 1,
            verify_ir: true,
        },
    ]
}

/// Run `pkt` with `st` through both engines; assert equal outcomes and return the verdict.
fn run(prog: &VerifiedProgram, pkt: &[u8], st: &PktState) -> Verdict {
    let mut out = None;
    for o in both_opts() {
        let jit = JitProgram::compile_with(prog, &o).expect("compiles");
        compare(prog, &jit, &[(pkt.to_vec(), st.clone())]).unwrap_or_else(|e| panic!("{e}"));
        let mut s = State::new(prog);
        let mut st2 = st.clone();
        let v = jit.run(
            &mut s,
            ChainId(0),
            pkt,
            &mut st2,
            &mut Effects::default(),
        );
        out = Some(v);
    }
    out.unwrap()
}

/// One base chain (policy drop) with one rule.
fn one_rule(insns: Vec<Insn>) -> VerifiedProgram {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    p.add_rule(c, insns);
    p.verify().expect("valid")
}

fn tcp_state(len: usize) -> PktState {
    PktState {
        thoff: 20,
        has_th: true,
        l4proto: 6,
        len: len as u32,
        ..Default::default()
    }
}

#[test]
fn range_boundaries() {
    for (len, from, to) in [(1usize, 0x10u32, 0x20u32), (2, 1000, 2000), (4, 5, 0xfffffff0)] {
        let enc = |v: u32| Data::new(&v.to_be_bytes()[4 - len..]).unwrap();
        for op in [RangeOp::Eq, RangeOp::Neq] {
            let prog = one_rule(vec![
                Insn::payload(PayloadBase::Network, 0, len as u8, R0),
                Insn::Range {
                    op,
                    sreg: R0,
                    from: enc(from),
                    to: enc(to),
                },
                accept(),
            ]);
            for v in [from - 1, from, from + 1, to - 1, to, to + 1] {
                let pkt = v.to_be_bytes()[4 - len..].to_vec();
                let inside = from <= v && v <= to;
                let want = if inside == (op == RangeOp::Eq) {
                    Verdict::Accept
                } else {
                    Verdict::Drop
                };
                assert_eq!(run(&prog, &pkt, &tcp_state(len)), want, "{len} {op:?} {v:#x}");
            }
        }
    }
}
