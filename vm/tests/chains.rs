//! Chain traversal (nft_do_chain): continue/break, terminal verdicts, jump/goto/return, end of
//! chain, base policy, trace; and the verifier's errors.

mod common;
use common::*;
use nfr_vm::insn::*;
use nfr_vm::interp::TraceEvent;
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::verify::VerifyErrorKind;
use nfr_vm::{
    ChainId, ChainVerdict, Effects, Hook, Program, Reg, RuleId, Set, SetId, State, Verdict,
};

fn v(x: ChainVerdict) -> Insn {
    Insn::ImmVerdict(x)
}

/// A rule that matches only dport 22 then sets `x`.
fn if_ssh(x: ChainVerdict) -> Vec<Insn> {
    vec![
        Insn::payload(PayloadBase::Transport, 2, 2, R0),
        Insn::cmp_eq(R0, Data::be16(22)),
        v(x),
    ]
}

fn trace_run(p: Program) -> (Verdict, Vec<TraceEvent>) {
    let vp = p.verify().expect("verifies");
    let (pk, st) = tcp_syn();
    let mut state = State::new(&vp);
    let mut s = st.clone();
    let mut fx = Effects {
        trace_enabled: true,
        ..Default::default()
    };
    let verdict = vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx);
    (verdict, fx.trace)
}

fn rules_seen(t: &[TraceEvent]) -> Vec<u32> {
    t.iter()
        .filter_map(|e| match e {
            TraceEvent::Rule { rule, .. } => Some(rule.0),
            _ => None,
        })
        .collect()
}

#[test]
fn policy_accept_and_drop() {
    for (pol, want) in [
        (Policy::Accept, Verdict::Accept),
        (Policy::Drop, Verdict::Drop),
    ] {
        let mut p = Program::new();
        p.add_base_chain("c", Hook::Input, 0, pol);
        let (verdict, t) = trace_run(p);
        assert_eq!(verdict, want);
        assert_eq!(
            t,
            vec![TraceEvent::Policy {
                chain: ChainId(0),
                verdict: want
            }]
        );
    }
}

#[test]
fn break_and_continue_go_to_next_rule() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    p.add_rule(c, vec![v(ChainVerdict::Continue), v(ChainVerdict::Drop)]); // continue ends rule? no: continue keeps going
    p.add_rule(c, vec![v(ChainVerdict::Break), v(ChainVerdict::Drop)]);
    p.add_rule(c, vec![Insn::Counter(nfr_vm::CounterId(0))]);
    p.add_rule(c, vec![v(ChainVerdict::Accept)]);
    p.add_counter();
    let (verdict, t) = trace_run(p);
    // rule 0: CONTINUE is the running value, so the drop after it runs
    assert_eq!(verdict, Verdict::Drop);
    assert_eq!(rules_seen(&t), vec![0]);

    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    p.add_rule(c, vec![v(ChainVerdict::Break), v(ChainVerdict::Drop)]);
    p.add_rule(c, if_ssh(ChainVerdict::Continue));
    p.add_rule(c, vec![v(ChainVerdict::Accept)]);
    let (verdict, t) = trace_run(p);
    assert_eq!(verdict, Verdict::Accept);
    assert_eq!(rules_seen(&t), vec![0, 1, 2]);
}

#[test]
fn terminal_verdicts_stop_traversal() {
    for (x, want) in [
        (ChainVerdict::Accept, Verdict::Accept),
        (ChainVerdict::Drop, Verdict::Drop),
        (ChainVerdict::Stolen, Verdict::Stolen),
        (ChainVerdict::Repeat, Verdict::Repeat),
        (
            ChainVerdict::Queue {
                num: 3,
                bypass: false,
            },
            Verdict::Queue {
                num: 3,
                bypass: false,
            },
        ),
    ] {
        let mut p = Program::new();
        let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
        p.add_rule(c, if_ssh(x));
        p.add_rule(c, vec![v(ChainVerdict::Drop)]);
        let (verdict, t) = trace_run(p);
        assert_eq!(verdict, want);
        assert_eq!(rules_seen(&t), vec![0]);
    }
}

#[test]
fn jump_returns_to_next_rule_at_end_of_chain() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    let u = p.add_chain("u");
    p.add_rule(c, vec![v(ChainVerdict::Jump(u))]); // r0
    p.add_rule(c, vec![v(ChainVerdict::Accept)]); // r1
    p.add_rule(u, vec![Insn::payload(PayloadBase::Transport, 2, 2, R0)]); // r2 (continue)
    let (verdict, t) = trace_run(p);
    assert_eq!(verdict, Verdict::Accept);
    assert_eq!(rules_seen(&t), vec![0, 2, 1]);
}

#[test]
fn explicit_return_and_nested_jumps() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    let a = p.add_chain("a");
    let b = p.add_chain("b");
    p.add_rule(c, vec![v(ChainVerdict::Jump(a))]); // r0
    p.add_rule(c, vec![v(ChainVerdict::Accept)]); // r1
    p.add_rule(a, vec![v(ChainVerdict::Jump(b))]); // r2
    p.add_rule(a, vec![v(ChainVerdict::Return)]); // r3
    p.add_rule(a, vec![v(ChainVerdict::Drop)]); // r4 never
    p.add_rule(b, if_ssh(ChainVerdict::Return)); // r5
    p.add_rule(b, vec![v(ChainVerdict::Drop)]); // r6 never
    let (verdict, t) = trace_run(p);
    assert_eq!(verdict, Verdict::Accept);
    assert_eq!(rules_seen(&t), vec![0, 2, 5, 3, 1]);
}

#[test]
fn goto_does_not_return_to_caller_chain() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    let a = p.add_chain("a");
    let g = p.add_chain("g");
    p.add_rule(c, vec![v(ChainVerdict::Jump(a))]); // r0
    p.add_rule(c, vec![v(ChainVerdict::Accept)]); // r1
    p.add_rule(a, vec![v(ChainVerdict::Goto(g))]); // r2
    p.add_rule(a, vec![v(ChainVerdict::Drop)]); // r3 skipped: goto replaced chain a
    p.add_rule(g, vec![Insn::payload(PayloadBase::Network, 0, 1, R0)]); // r4, end of g → back to c r1
    let (verdict, t) = trace_run(p);
    assert_eq!(verdict, Verdict::Accept);
    assert_eq!(rules_seen(&t), vec![0, 2, 4, 1]);
}

#[test]
fn goto_from_base_then_end_applies_policy() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    let g = p.add_chain("g");
    p.add_rule(c, vec![v(ChainVerdict::Goto(g))]);
    p.add_rule(c, vec![v(ChainVerdict::Accept)]);
    p.add_rule(g, vec![]);
    let (verdict, t) = trace_run(p);
    assert_eq!(verdict, Verdict::Drop);
    assert_eq!(rules_seen(&t), vec![0, 2]);
    assert_eq!(
        t.last(),
        Some(&TraceEvent::Policy {
            chain: ChainId(0),
            verdict: Verdict::Drop
        })
    );
}

#[test]
fn return_in_base_chain_applies_policy() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    p.add_rule(c, vec![v(ChainVerdict::Return)]);
    p.add_rule(c, vec![v(ChainVerdict::Accept)]);
    let (verdict, t) = trace_run(p);
    assert_eq!(verdict, Verdict::Drop);
    assert_eq!(rules_seen(&t), vec![0]);
}

/// Chain of `n` user chains c0 → u1 → … → un via jump; the last one accepts.
fn jump_ladder(n: usize) -> Program {
    let mut p = Program::new();
    let base = p.add_base_chain("base", Hook::Input, 0, Policy::Drop);
    let mut prev = base;
    let mut ids = Vec::new();
    for i in 0..n {
        let u = p.add_chain(&format!("u{i}"));
        ids.push(u);
        p.add_rule(prev, vec![v(ChainVerdict::Jump(u))]);
        prev = u;
    }
    p.add_rule(prev, vec![v(ChainVerdict::Accept)]);
    p
}

#[test]
fn depth_15_runs_depth_16_is_rejected() {
    let (verdict, t) = trace_run(jump_ladder(15));
    assert_eq!(verdict, Verdict::Accept);
    assert_eq!(rules_seen(&t).len(), 16);
    let e = jump_ladder(16).verify().unwrap_err();
    assert_eq!(e.kind, VerifyErrorKind::TooDeep { depth: 16 });
    assert_eq!(e.chain.as_ref().map(|c| c.1.as_str()), Some("base"));
}

#[test]
fn deep_unreachable_user_chains_are_fine() {
    // 20 deep but not reachable from a base chain: the kernel validates from base chains only
    let mut p = jump_ladder(0);
    let mut prev = p.add_chain("top");
    for i in 0..20 {
        let u = p.add_chain(&format!("d{i}"));
        p.add_rule(prev, vec![v(ChainVerdict::Jump(u))]);
        prev = u;
    }
    assert!(p.verify().is_ok());
}

#[test]
fn verdict_map_edges_count_for_depth_and_loops() {
    let mut p = jump_ladder(15);
    // add a vmap in the deepest chain jumping one more level
    let extra = p.add_chain("extra");
    let mut s = Set::new("vm", 2, SetDataType::Verdict, SetKind::Hash);
    s.insert(&[0, 22], ElemData::Verdict(ChainVerdict::Jump(extra)));
    let sid = p.add_set(s);
    let deepest = p.chain_by_name("u14").unwrap();
    p.add_rule(
        deepest,
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            Insn::Lookup {
                sreg: R0,
                set: sid,
                dest: LookupDest::Verdict,
                invert: false,
            },
        ],
    );
    assert!(matches!(
        p.verify().unwrap_err().kind,
        VerifyErrorKind::TooDeep { .. }
    ));

    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    let a = p.add_chain("a");
    let mut s = Set::new("vm", 2, SetDataType::Verdict, SetKind::Hash);
    s.insert(&[0, 22], ElemData::Verdict(ChainVerdict::Goto(a)));
    let sid = p.add_set(s);
    p.add_rule(c, vec![v(ChainVerdict::Jump(a))]);
    p.add_rule(
        a,
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            Insn::Lookup {
                sreg: R0,
                set: sid,
                dest: LookupDest::Verdict,
                invert: false,
            },
        ],
    );
    assert_eq!(p.verify().unwrap_err().kind, VerifyErrorKind::Loop(a));
}

#[test]
fn loops_and_bad_targets_are_rejected() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    let a = p.add_chain("a");
    let b = p.add_chain("b");
    p.add_rule(c, vec![v(ChainVerdict::Jump(a))]);
    p.add_rule(a, vec![v(ChainVerdict::Goto(b))]);
    p.add_rule(b, vec![v(ChainVerdict::Jump(a))]);
    assert!(matches!(
        p.verify().unwrap_err().kind,
        VerifyErrorKind::Loop(_)
    ));

    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    let a = p.add_chain("a");
    p.add_rule(a, vec![v(ChainVerdict::Jump(a))]);
    let _ = c;
    assert_eq!(p.verify().unwrap_err().kind, VerifyErrorKind::Loop(a));

    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    let c2 = p.add_base_chain("c2", Hook::Output, 0, Policy::Accept);
    p.add_rule(c, vec![v(ChainVerdict::Jump(c2))]);
    let e = p.verify().unwrap_err();
    assert_eq!(e.kind, VerifyErrorKind::JumpToBaseChain(c2));
    assert_eq!(e.rule, Some(RuleId(0)));
    assert_eq!(e.insn, Some(nfr_vm::InsnIdx(0)));

    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    p.add_rule(c, vec![v(ChainVerdict::Goto(ChainId(9)))]);
    assert_eq!(
        p.verify().unwrap_err().kind,
        VerifyErrorKind::UnknownChain(ChainId(9))
    );
}

fn verify_one(insns: Vec<Insn>) -> Result<(), nfr_vm::VerifyError> {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    p.add_counter();
    let mut s = Set::new("s", 2, SetDataType::None, SetKind::Hash);
    s.insert(&[0, 1], ElemData::None);
    p.add_set(s);
    let mut m = Set::new("m", 4, SetDataType::Data(4), SetKind::Hash);
    m.insert(&[1, 2, 3, 4], ElemData::Data(Data::host32(1)));
    p.add_set(m);
    p.add_rule_spanned(c, insns, vec![Some((10, 20)); 8], Some((0, 99)));
    p.verify().map(|_| ())
}

#[test]
fn register_bounds_and_initialisation() {
    // 16 bytes at register 12 fits exactly; at 13 it does not
    assert!(verify_one(vec![Insn::payload(PayloadBase::Network, 0, 16, Reg(12))]).is_ok());
    let e = verify_one(vec![Insn::payload(PayloadBase::Network, 0, 16, Reg(13))]).unwrap_err();
    assert_eq!(
        e.kind,
        VerifyErrorKind::RegOutOfBounds {
            reg: Reg(13),
            len: 16
        }
    );
    assert_eq!(e.span, Some((10, 20)));
    assert_eq!(e.chain, Some((ChainId(0), "c".to_string())));
    assert!(verify_one(vec![Insn::meta(MetaKey::Mark, Reg(16))]).is_err());
    assert!(verify_one(vec![Insn::meta(MetaKey::Iifname, Reg(13))]).is_err());
    // read before write
    let e = verify_one(vec![Insn::cmp_eq(R0, Data::u8(1))]).unwrap_err();
    assert_eq!(e.kind, VerifyErrorKind::RegNotInit { reg: R0 });
    // partially written multi-register value: reg 1 missing
    let e = verify_one(vec![
        Insn::meta(MetaKey::Mark, R0),
        Insn::Cmp {
            op: CmpOp::Eq,
            sreg: R0,
            data: Data::new(&[0; 8]).unwrap(),
        },
    ])
    .unwrap_err();
    assert_eq!(e.kind, VerifyErrorKind::RegNotInit { reg: Reg(1) });
    // initialisation does not carry across rules
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    p.add_rule(c, vec![Insn::meta(MetaKey::Mark, R0)]);
    p.add_rule(c, vec![Insn::cmp_eq(R0, Data::u8(1))]);
    let e = p.verify().unwrap_err();
    assert_eq!(e.rule, Some(RuleId(1)));
    // sources of set statements, NAT registers, bitwise second operand
    assert!(
        verify_one(vec![Insn::MetaSet {
            key: MetaSetKey::Mark,
            sreg: R0
        }])
        .is_err()
    );
    assert!(
        verify_one(vec![
            Insn::meta(MetaKey::Mark, R0),
            Insn::Bitwise {
                sreg: R0,
                dreg: R0,
                len: 4,
                op: BitwiseOp::Or(Reg(1))
            }
        ])
        .is_err()
    );
    assert!(
        verify_one(vec![Insn::Nat(NatSpec {
            kind: NatKind::Snat,
            family: 2,
            addr_min: Some(R0),
            addr_max: None,
            proto_min: None,
            proto_max: None,
            flags: 0
        })])
        .is_err()
    );
}

#[test]
fn operand_checks() {
    let load = || Insn::meta(MetaKey::Mark, R0);
    let bad = |insns: Vec<Insn>| verify_one(insns).is_err();
    assert!(bad(vec![
        load(),
        Insn::Bitwise {
            sreg: R0,
            dreg: R0,
            len: 4,
            op: BitwiseOp::Lshift(32)
        }
    ]));
    assert!(!bad(vec![
        load(),
        Insn::Bitwise {
            sreg: R0,
            dreg: R0,
            len: 4,
            op: BitwiseOp::Lshift(31)
        }
    ]));
    assert!(bad(vec![
        load(),
        Insn::Bitwise {
            sreg: R0,
            dreg: R0,
            len: 4,
            op: BitwiseOp::mask_xor(Data::u8(1), Data::u8(0))
        }
    ]));
    assert!(bad(vec![
        load(),
        Insn::Byteorder {
            sreg: R0,
            dreg: R0,
            op: ByteorderOp::Ntoh,
            len: 4,
            size: 3
        }
    ]));
    assert!(bad(vec![
        load(),
        Insn::range(RangeOp::Eq, R0, Data::u8(1), Data::be16(2))
    ]));
    assert!(bad(vec![Insn::payload(PayloadBase::Network, 0, 0, R0)]));
    assert!(bad(vec![Insn::Ct {
        key: CtKey::SrcIp,
        dir: None,
        dreg: R0
    }]));
    assert!(bad(vec![Insn::Ct {
        key: CtKey::Mark,
        dir: Some(CtDir::Original),
        dreg: R0
    }]));
    assert!(bad(vec![Insn::Counter(nfr_vm::CounterId(1))]));
    assert!(bad(vec![Insn::Limit(nfr_vm::LimitId(0))]));
    // lookups: key width, unknown set, dest vs data type, inverted map
    let pay = || Insn::payload(PayloadBase::Transport, 2, 2, R0);
    let lk = |set, dest, invert| Insn::Lookup {
        sreg: R0,
        set: SetId(set),
        dest,
        invert,
    };
    assert!(!bad(vec![pay(), lk(0, LookupDest::None, true)]));
    assert!(bad(vec![pay(), lk(7, LookupDest::None, false)]));
    assert!(bad(vec![pay(), lk(0, LookupDest::Reg(Reg(1)), false)]));
    assert!(bad(vec![pay(), lk(0, LookupDest::Verdict, false)]));
    // a 2-byte load initialises the whole (zero-padded) word, so a 4-byte key may read it
    assert!(!bad(vec![pay(), lk(1, LookupDest::None, false)]));
    assert!(bad(vec![
        pay(),
        Insn::Lookup {
            sreg: Reg(1),
            set: SetId(1),
            dest: LookupDest::None,
            invert: false
        }
    ]));
    assert!(!bad(vec![load(), lk(1, LookupDest::Reg(Reg(15)), false)]));
    assert!(bad(vec![load(), lk(1, LookupDest::Reg(Reg(1)), true)]));
}

#[test]
fn set_element_checks() {
    let check = |s: Set| {
        let mut p = Program::new();
        p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
        p.add_set(s);
        p.verify().map(|_| ()).map_err(|e| e.kind)
    };
    let mut s = Set::new("s", 2, SetDataType::None, SetKind::Hash);
    s.insert(&[1, 2, 3], ElemData::None);
    assert!(matches!(check(s), Err(VerifyErrorKind::BadSetElem { .. })));
    let mut s = Set::new("s", 2, SetDataType::Data(4), SetKind::Hash);
    s.insert(&[1, 2], ElemData::None);
    assert!(check(s).is_err());
    let mut s = Set::new("s", 1, SetDataType::None, SetKind::Interval);
    s.insert_range(&[1], &[5], ElemData::None);
    s.insert_range(&[5], &[9], ElemData::None);
    assert!(check(s).is_err()); // overlap
    let mut s = Set::new("s", 1, SetDataType::None, SetKind::Interval);
    s.insert_range(&[6], &[5], ElemData::None);
    assert!(check(s).is_err());
    let s = Set::new(
        "s",
        8,
        SetDataType::None,
        SetKind::ConcatInterval {
            field_lens: vec![4, 4, 1],
        },
    );
    assert!(check(s).is_err());
    let mut s = Set::new("s", 2, SetDataType::Verdict, SetKind::Hash);
    s.insert(&[0, 1], ElemData::Verdict(ChainVerdict::Jump(ChainId(0))));
    assert_eq!(check(s), Err(VerifyErrorKind::JumpToBaseChain(ChainId(0))));
    assert!(check(Set::new("s", 0, SetDataType::None, SetKind::Hash)).is_err());
}

#[test]
fn inconsistent_rules_are_rejected() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    p.add_rule(c, vec![v(ChainVerdict::Accept)]);
    p.rules[0].end = nfr_vm::InsnIdx(5);
    assert_eq!(p.verify().unwrap_err().kind, VerifyErrorKind::BadRule);
    let mut p = Program::new();
    p.add_rule(ChainId(3), vec![]);
    assert_eq!(p.verify().unwrap_err().kind, VerifyErrorKind::BadRule);
}

#[test]
fn user_chain_entry_runs_off_the_end_to_accept() {
    let mut p = Program::new();
    let u = p.add_chain("u");
    p.add_rule(u, vec![]);
    let vp = p.verify().unwrap();
    let (pk, st) = tcp_syn();
    assert_eq!(run(&vp, &pk, &st), Verdict::Accept);
}

#[test]
fn many_chains_verify_without_recursion() {
    // 50k chains in one jump line (unreachable from the base chain), then closed into a loop
    let mut p = Program::new();
    p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    let first = p.add_chain("x0");
    let mut prev = first;
    for i in 1..50_000 {
        let u = p.add_chain(&format!("x{i}"));
        p.add_rule(prev, vec![v(ChainVerdict::Jump(u))]);
        prev = u;
    }
    assert!(p.clone().verify().is_ok());
    p.add_rule(prev, vec![v(ChainVerdict::Goto(first))]);
    assert!(matches!(
        p.verify().unwrap_err().kind,
        VerifyErrorKind::Loop(_)
    ));
}
