//! `Insn::Objref` (`nft_objref_map`): the object an object-map element names is evaluated on a
//! hit (a named counter counts the packet, a ct helper object is recorded), a miss without a
//! catch-all breaks the rule; `verify` refuses object maps that do not fit; the printer shows
//! libnftnl's `objref sreg N set NAME`.

mod common;

use common::*;
use nfr_vm::insn::*;
use nfr_vm::pkt::ifname;
use nfr_vm::program::{ElemData, Obj, ObjType, Policy, SetDataType, SetKind};
use nfr_vm::verify::VerifyErrorKind;
use nfr_vm::{
    ChainId, ChainVerdict, CounterId, Effects, Hook, Program, Set, SetId, State, Verdict,
};

/// Chain `input` (policy drop): `tcp dport` → objref in `set`, rule counter #2, accept.
fn prog(set: Set) -> Program {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    for _ in 0..3 {
        p.add_counter();
    }
    let sid = p.add_set(set);
    p.add_rule(
        c,
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            Insn::Objref { sreg: R0, set: sid },
            Insn::Counter(CounterId(2)),
            Insn::ImmVerdict(ChainVerdict::Accept),
        ],
    );
    p
}

fn counter_map() -> Set {
    let mut s = Set::new("m", 2, SetDataType::Object(ObjType::Counter), SetKind::Hash);
    s.insert(
        &22u16.to_be_bytes(),
        ElemData::Object(Obj::Counter(CounterId(0))),
    );
    s.insert(
        &80u16.to_be_bytes(),
        ElemData::Object(Obj::Counter(CounterId(1))),
    );
    s
}

fn send(vp: &nfr_vm::VerifiedProgram, state: &mut State, dport: u16) -> (Verdict, Effects) {
    let (p, st) = ipv4_l4(6, [10, 0, 0, 1], [10, 0, 0, 2], 1234, dport);
    let mut st = st;
    let mut fx = Effects::default();
    let v = vp.run(state, ChainId(0), &p, &mut st, &mut fx);
    (v, fx)
}

#[test]
fn hit_counts_the_named_counter_and_miss_breaks() {
    let vp = prog(counter_map()).verify().expect("verifies");
    let mut state = State::new(&vp);
    assert_eq!(send(&vp, &mut state, 22).0, Verdict::Accept);
    assert_eq!(send(&vp, &mut state, 80).0, Verdict::Accept);
    assert_eq!(send(&vp, &mut state, 80).0, Verdict::Accept);
    assert_eq!(send(&vp, &mut state, 8080).0, Verdict::Drop);
    let c: Vec<(u64, u64)> = state
        .counters
        .iter()
        .map(|c| (c.packets, c.bytes))
        .collect();
    // 40-byte IPv4+TCP packets; the miss ran neither the rule counter nor the verdict.
    assert_eq!(c, vec![(1, 40), (2, 80), (3, 120)]);
}

#[test]
fn catchall_element_is_used_on_a_miss() {
    let mut s = counter_map();
    s.catchall = Some(ElemData::Object(Obj::Counter(CounterId(1))));
    let vp = prog(s).verify().expect("verifies");
    let mut state = State::new(&vp);
    assert_eq!(send(&vp, &mut state, 8080).0, Verdict::Accept);
    assert_eq!(state.counters[1].packets, 1);
    assert_eq!(state.counters[0].packets, 0);
}

#[test]
fn ct_helper_objects_are_recorded() {
    let mut s = Set::new(
        "h",
        2,
        SetDataType::Object(ObjType::CtHelper),
        SetKind::Interval,
    );
    s.insert_range(
        &21u16.to_be_bytes(),
        &21u16.to_be_bytes(),
        ElemData::Object(Obj::CtHelper(ifname("ftp"))),
    );
    s.insert_range(
        &2000u16.to_be_bytes(),
        &2100u16.to_be_bytes(),
        ElemData::Object(Obj::CtHelper(ifname("sip"))),
    );
    let vp = prog(s).verify().expect("verifies");
    let mut state = State::new(&vp);
    let (v, fx) = send(&vp, &mut state, 21);
    assert_eq!((v, fx.ct_helper), (Verdict::Accept, Some(ifname("ftp"))));
    let (v, fx) = send(&vp, &mut state, 2050);
    assert_eq!((v, fx.ct_helper), (Verdict::Accept, Some(ifname("sip"))));
    let (v, fx) = send(&vp, &mut state, 22);
    assert_eq!((v, fx.ct_helper), (Verdict::Drop, None));
}

fn verify_kind(p: Program) -> VerifyErrorKind {
    p.verify().expect_err("must not verify").kind
}

#[test]
fn verify_refuses_bad_object_maps() {
    // Objref on a plain set.
    let mut s = Set::new("s", 2, SetDataType::None, SetKind::Hash);
    s.insert(&22u16.to_be_bytes(), ElemData::None);
    assert!(matches!(
        verify_kind(prog(s)),
        VerifyErrorKind::SetMismatch { set: SetId(0), .. }
    ));
    // A counter that does not exist.
    let mut s = counter_map();
    s.insert(
        &443u16.to_be_bytes(),
        ElemData::Object(Obj::Counter(CounterId(9))),
    );
    assert_eq!(verify_kind(prog(s)), VerifyErrorKind::UnknownCounter(9));
    // An object of another kind than the map's.
    let mut s = counter_map();
    s.insert(
        &21u16.to_be_bytes(),
        ElemData::Object(Obj::CtHelper(ifname("ftp"))),
    );
    assert!(matches!(
        verify_kind(prog(s)),
        VerifyErrorKind::BadSetElem { .. }
    ));
    // The key register must have been written in the rule.
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    p.add_counter();
    p.add_counter();
    let sid = p.add_set(counter_map());
    p.add_rule(c, vec![Insn::Objref { sreg: R0, set: sid }]);
    assert!(matches!(verify_kind(p), VerifyErrorKind::RegNotInit { .. }));
}

#[test]
fn prints_like_libnftnl() {
    let p = prog(counter_map());
    let text = nfr_vm::print::print_insn(
        &p,
        &Insn::Objref {
            sreg: R0,
            set: SetId(0),
        },
    );
    assert_eq!(text, "[ objref sreg 1 set m ]");
    assert_eq!(
        nfr_vm::print::print_set_elements(&p, SetId(0)),
        "\telement 00001600  : 0 [end]\telement 00005000  : 0 [end]"
    );
}
