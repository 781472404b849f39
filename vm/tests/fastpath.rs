//! Differential test: the interpreter's fast path (lowered and fused ops) must agree with the
//! generic instruction path on verdict, executed-instruction count, counters, marks and
//! effects, over pseudo-random rules and packets (truncated, fragmented, no transport header).

mod common;
use common::*;
use nfr_vm::insn::*;
use nfr_vm::pkt::ct_state;
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::{ChainId, ChainVerdict, Effects, Hook, Program, Reg, Set, State};

/// Random numbers from proptest's ChaCha generator, seeded, so that runs are reproducible.
struct Rng(proptest::test_runner::TestRng);
impl Rng {
    fn new(seed: u64) -> Rng {
        use proptest::test_runner::{RngAlgorithm, TestRng};
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        Rng(TestRng::from_seed(RngAlgorithm::ChaCha, &key))
    }
    fn next(&mut self) -> u64 {
        proptest::prelude::Rng::next_u64(&mut self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        // small alphabet so that compares hit sometimes
        (0..n)
            .map(|_| [0u8, 6, 17, 22, 64, 0x45][self.below(6) as usize])
            .collect()
    }
}

fn random_rule(r: &mut Rng, sid: nfr_vm::SetId, cnt: nfr_vm::CounterId) -> Vec<Insn> {
    let mut v = Vec::new();
    let reg = Reg(r.below(3) as u8 * 4);
    for _ in 0..1 + r.below(4) {
        let len = [1u8, 2, 3, 4, 6, 8][r.below(6) as usize];
        let base = [
            PayloadBase::Network,
            PayloadBase::Transport,
            PayloadBase::Link,
        ][r.below(3) as usize];
        match r.below(7) {
            0 | 1 => {
                v.push(Insn::payload(base, r.below(40) as u32, len, reg));
                let op = [CmpOp::Eq, CmpOp::Neq, CmpOp::Lt, CmpOp::Gte][r.below(4) as usize];
                v.push(Insn::Cmp {
                    op,
                    sreg: reg,
                    data: Data::new(&r.bytes(len as usize)).unwrap(),
                });
            }
            2 => {
                v.push(Insn::meta(MetaKey::L4proto, reg));
                v.push(Insn::Cmp {
                    op: if r.below(2) == 0 {
                        CmpOp::Eq
                    } else {
                        CmpOp::Neq
                    },
                    sreg: reg,
                    data: Data::u8([6u8, 17, 1][r.below(3) as usize]),
                });
            }
            3 => {
                v.push(Insn::Ct {
                    key: CtKey::State,
                    dir: None,
                    dreg: reg,
                });
                v.push(Insn::Bitwise {
                    sreg: reg,
                    dreg: reg,
                    len: 4,
                    op: BitwiseOp::mask_xor(Data::host32(r.below(16) as u32), Data::host32(0)),
                });
                v.push(Insn::Cmp {
                    op: CmpOp::Neq,
                    sreg: reg,
                    data: Data::host32(0),
                });
            }
            4 => {
                v.push(Insn::payload(base, r.below(40) as u32, 2, reg));
                let a = r.below(0x2000) as u16;
                v.push(Insn::range(
                    if r.below(2) == 0 {
                        RangeOp::Eq
                    } else {
                        RangeOp::Neq
                    },
                    reg,
                    Data::be16(a),
                    Data::be16(a.saturating_add(r.below(0x4000) as u16)),
                ));
            }
            5 => {
                v.push(Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)));
                v.push(Insn::Lookup {
                    sreg: Reg(0),
                    set: sid,
                    dest: LookupDest::None,
                    invert: r.below(2) == 0,
                });
            }
            _ => {
                v.push(Insn::Immediate {
                    dreg: reg,
                    data: Data::host32(r.below(4) as u32),
                });
                v.push(Insn::MetaSet {
                    key: MetaSetKey::Mark,
                    sreg: reg,
                });
            }
        }
    }
    v.push(Insn::Counter(cnt));
    let verdict = match r.below(5) {
        0 => ChainVerdict::Accept,
        1 => ChainVerdict::Drop,
        2 => ChainVerdict::Continue,
        3 => ChainVerdict::Break,
        _ => ChainVerdict::Jump(ChainId(1)),
    };
    v.push(Insn::ImmVerdict(verdict));
    v
}

#[test]
fn fast_path_agrees_with_generic_path() {
    let mut r = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for _prog in 0..60 {
        let mut p = Program::new();
        let c = p.add_base_chain(
            "c",
            Hook::Input,
            0,
            if r.below(2) == 0 {
                Policy::Accept
            } else {
                Policy::Drop
            },
        );
        let u = p.add_chain("u");
        let mut s = Set::new("s", 2, SetDataType::None, SetKind::Hash);
        s.insert(&22u16.to_be_bytes(), ElemData::None);
        let sid = p.add_set(s);
        let mut counters = Vec::new();
        for _ in 0..8 {
            counters.push(p.add_counter());
        }
        for &cnt in &counters[..6] {
            let rule = random_rule(&mut r, sid, cnt);
            p.add_rule(c, rule);
        }
        for &cnt in &counters[6..] {
            let mut rule = random_rule(&mut r, sid, cnt);
            if let Some(Insn::ImmVerdict(ChainVerdict::Jump(_))) = rule.last() {
                rule.pop();
                rule.push(Insn::ImmVerdict(ChainVerdict::Return));
            }
            p.add_rule(u, rule);
        }
        let fast = p.clone().verify().expect("random program verifies");
        let slow = p.verify().unwrap().generic_only();
        let mut sf = State::new(&fast);
        let mut ss = State::new(&slow);
        for _pkt in 0..40 {
            let (mut bytes, mut st) = ipv4_l4(
                if r.below(2) == 0 { 6 } else { 17 },
                [10, 0, 0, r.below(3) as u8],
                [10, 0, 0, 2],
                1234,
                [22u16, 53, 80][r.below(3) as usize],
            );
            match r.below(5) {
                0 => bytes.truncate(r.below(bytes.len() as u64) as usize),
                1 => st.fragoff = 8,
                2 => st.has_th = false,
                3 => st.has_ll = false,
                _ => {}
            }
            st.ct_state =
                [ct_state::NEW, ct_state::ESTABLISHED, ct_state::INVALID][r.below(3) as usize];
            st.ct_valid = st.ct_state != ct_state::INVALID;
            let (mut a, mut b) = (st.clone(), st.clone());
            let (mut fa, mut fb) = (Effects::default(), Effects::default());
            let va = fast.run(&mut sf, ChainId(0), &bytes, &mut a, &mut fa);
            let vb = slow.run(&mut ss, ChainId(0), &bytes, &mut b, &mut fb);
            assert_eq!(va, vb);
            assert_eq!(a, b);
            assert_eq!(fa, fb);
            assert_eq!(sf, ss);
            compared += 1;
        }
    }
    assert_eq!(compared, 60 * 40);
}

#[test]
fn fused_l4proto_cmp_breaks_without_transport_header() {
    let (p, mut st) = tcp_syn();
    let rule = || {
        vec![
            Insn::meta(MetaKey::L4proto, R0),
            Insn::cmp_eq(R0, Data::u8(6)),
        ]
    };
    assert!(matches(rule(), &p, &st));
    let neq = || {
        vec![
            Insn::meta(MetaKey::L4proto, R0),
            Insn::Cmp {
                op: CmpOp::Neq,
                sreg: R0,
                data: Data::u8(6),
            },
        ]
    };
    assert!(!matches(neq(), &p, &st));
    st.has_th = false;
    assert!(!matches(rule(), &p, &st));
    assert!(!matches(neq(), &p, &st));
}
