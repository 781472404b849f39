//! Targeted tests: every instruction kind, every verdict path, and out-of-bounds loads at every
//! offset and length. Each case states the expected verdict and also checks JIT == interpreter
//! (counters, limits, PktState, Effects).

mod common;
use common::{Rng, classified, compare, random_pkt_state};
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

/// Default options; tiny partitions; `speed`.
fn both_opts() -> [JitOptions; 3] {
    [
        JitOptions::default(),
        JitOptions {
            opt_level: OptLevel::None,
            partition_insns: 1,
            verify_ir: true,
            native_walk: false,
        },
        JitOptions {
            opt_level: OptLevel::Speed,
            verify_ir: true,
            ..JitOptions::default()
        },
    ]
}

/// Run `pkt` with `st` through both engines, the JIT also with classifiers over every run of
/// rules; assert equal outcomes and return the verdict.
fn run(prog: &VerifiedProgram, pkt: &[u8], st: &PktState) -> Verdict {
    let mut out = None;
    let cls = classified(prog, 1);
    for (o, p) in both_opts().into_iter().zip([prog, prog, &cls]) {
        let jit = JitProgram::compile_with(p, &o).expect("compiles");
        compare(prog, &jit, &[(pkt.to_vec(), st.clone())]).unwrap_or_else(|e| panic!("{e}"));
        let mut s = State::new(prog);
        let mut st2 = st.clone();
        let v = jit.run(&mut s, ChainId(0), pkt, &mut st2, &mut Effects::default());
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
    for (len, from, to) in [
        (1usize, 0x10u32, 0x20u32),
        (2, 1000, 2000),
        (4, 5, 0xfffffff0),
    ] {
        let enc = |v: u32| Data::new(&v.to_be_bytes()[4 - len..]).unwrap();
        for op in [RangeOp::Eq, RangeOp::Neq] {
            let prog = one_rule(vec![
                Insn::payload(PayloadBase::Network, 0, len as u8, R0),
                Insn::range(op, R0, enc(from), enc(to)),
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
                assert_eq!(
                    run(&prog, &pkt, &tcp_state(len)),
                    want,
                    "{len} {op:?} {v:#x}"
                );
            }
        }
    }
}

#[test]
fn oob_loads_at_every_offset_and_length_break() {
    // A 24-byte packet with a link header (lloff 0), network header at 4, transport at 12.
    let pkt: Vec<u8> = (1..=24).collect();
    for base in [
        PayloadBase::Link,
        PayloadBase::Network,
        PayloadBase::Transport,
    ] {
        let boff = match base {
            PayloadBase::Link => 0usize,
            PayloadBase::Network => 4,
            PayloadBase::Transport => 12,
        };
        for len in [1u8, 2, 3, 4, 5, 8, 16] {
            for off in 0..=26u32 {
                // Compare the loaded bytes with the packet's own bytes: in bounds → accept.
                let start = boff + off as usize;
                let end = start + usize::from(len);
                let expect_bytes: Vec<u8> = (0..usize::from(len))
                    .map(|i| (start + i + 1) as u8)
                    .collect();
                let prog = one_rule(vec![
                    Insn::payload(base, off, len, R0),
                    Insn::cmp_eq(R0, Data::new(&expect_bytes).unwrap()),
                    accept(),
                ]);
                for cut in [pkt.len(), end.saturating_sub(1), end, end + 1] {
                    let cut = cut.min(pkt.len());
                    let st = PktState {
                        lloff: 0,
                        nhoff: 4,
                        thoff: 12,
                        has_ll: true,
                        has_th: true,
                        len: cut as u32,
                        ..Default::default()
                    };
                    let want = if end <= cut {
                        Verdict::Accept
                    } else {
                        Verdict::Drop
                    };
                    assert_eq!(
                        run(&prog, &pkt[..cut], &st),
                        want,
                        "{base:?} off {off} len {len} cut {cut}"
                    );
                }
            }
        }
    }
}

#[test]
fn missing_headers_break() {
    let pkt = [0x45u8; 40];
    for (base, st) in [
        (PayloadBase::Link, PktState::default()),
        (PayloadBase::Transport, PktState::default()),
        (
            PayloadBase::Transport,
            PktState {
                has_th: true,
                thoff: 20,
                fragoff: 8,
                ..Default::default()
            },
        ),
    ] {
        let prog = one_rule(vec![
            Insn::payload(base, 0, 1, R0),
            Insn::cmp_eq(R0, Data::u8(0x45)),
            accept(),
        ]);
        assert_eq!(run(&prog, &pkt, &st), Verdict::Drop, "{base:?}");
    }
}

#[test]
fn every_terminal_verdict() {
    for (v, want) in [
        (ChainVerdict::Accept, Verdict::Accept),
        (ChainVerdict::Drop, Verdict::Drop),
        (ChainVerdict::Stolen, Verdict::Stolen),
        (ChainVerdict::Repeat, Verdict::Repeat),
        (
            ChainVerdict::Queue {
                num: 7,
                bypass: true,
            },
            Verdict::Queue {
                num: 7,
                bypass: true,
            },
        ),
        (ChainVerdict::Continue, Verdict::Drop),
        (ChainVerdict::Break, Verdict::Drop),
        (ChainVerdict::Return, Verdict::Drop),
    ] {
        let prog = one_rule(vec![Insn::ImmVerdict(v)]);
        assert_eq!(run(&prog, &[], &PktState::default()), want, "{v:?}");
    }
    let prog = one_rule(vec![Insn::Queue {
        num: 3,
        total: 1,
        bypass: false,
        fanout: false,
    }]);
    assert_eq!(
        run(&prog, &[], &PktState::default()),
        Verdict::Queue {
            num: 3,
            bypass: false
        }
    );
}

/// base: jump a; counter c0; accept. a: jump b; counter c1; return. b: goto d. d: counter c2.
#[test]
fn jump_goto_return_and_resume() {
    let mut p = Program::new();
    let base = p.add_base_chain("base", Hook::Input, 0, Policy::Drop);
    let a = p.add_chain("a");
    let b = p.add_chain("b");
    let d = p.add_chain("d");
    let c: Vec<_> = (0..3).map(|_| p.add_counter()).collect();
    p.add_rule(base, vec![Insn::ImmVerdict(ChainVerdict::Jump(a))]);
    p.add_rule(base, vec![Insn::Counter(c[0]), accept()]);
    p.add_rule(a, vec![Insn::ImmVerdict(ChainVerdict::Jump(b))]);
    p.add_rule(
        a,
        vec![Insn::Counter(c[1]), Insn::ImmVerdict(ChainVerdict::Return)],
    );
    p.add_rule(a, vec![Insn::ImmVerdict(ChainVerdict::Drop)]);
    p.add_rule(b, vec![Insn::ImmVerdict(ChainVerdict::Goto(d))]);
    p.add_rule(b, vec![Insn::ImmVerdict(ChainVerdict::Drop)]);
    p.add_rule(d, vec![Insn::Counter(c[2])]);
    let prog = p.verify().unwrap();
    for o in both_opts() {
        let jit = JitProgram::compile_with(&prog, &o).unwrap();
        let mut s = State::new(&prog);
        let mut st = PktState {
            len: 10,
            ..Default::default()
        };
        let v = jit.run(&mut s, base, &[], &mut st, &mut Effects::default());
        assert_eq!(v, Verdict::Accept);
        assert_eq!(
            s.counters
                .iter()
                .map(|c| (c.packets, c.bytes))
                .collect::<Vec<_>>(),
            vec![(1, 10), (1, 10), (1, 10)]
        );
        // Entering the user chain directly: runs off its end → accept.
        let v = jit.run(&mut s, d, &[], &mut st, &mut Effects::default());
        assert_eq!(v, Verdict::Accept);
    }
}

#[test]
fn meta_and_ct_keys_match_the_interpreter() {
    let mut r = Rng::new(7);
    let keys = nfr_jit::testgen::METAS;
    for _ in 0..40 {
        let st = random_pkt_state(&mut r, 30);
        let mut p = Program::new();
        let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
        // Each key: load, store into the mark via an exact compare against the true value,
        // so every rule must *match* on both engines.
        for key in keys {
            let mut s2 = st.clone();
            let mut probe = Program::new();
            let pc = probe.add_base_chain("p", Hook::Input, 0, Policy::Accept);
            probe.add_rule(pc, vec![Insn::meta(key, R0)]);
            let _ = probe.verify().unwrap().run(
                &mut State::default(),
                pc,
                &[],
                &mut s2,
                &mut Effects::default(),
            );
            let ctr = p.add_counter();
            p.add_rule(c, vec![Insn::meta(key, R0), Insn::Counter(ctr)]);
        }
        for key in [
            CtKey::State,
            CtKey::Direction,
            CtKey::Status,
            CtKey::Mark,
            CtKey::Expiration,
            CtKey::Helper,
            CtKey::L3protocol,
            CtKey::Protocol,
            CtKey::Zone,
            CtKey::Id,
        ] {
            let ctr = p.add_counter();
            p.add_rule(
                c,
                vec![
                    Insn::Ct {
                        key,
                        dir: None,
                        dreg: R0,
                    },
                    Insn::Counter(ctr),
                ],
            );
        }
        for key in [
            CtKey::Src,
            CtKey::Dst,
            CtKey::SrcIp,
            CtKey::DstIp,
            CtKey::SrcIp6,
            CtKey::DstIp6,
            CtKey::ProtoSrc,
            CtKey::ProtoDst,
            CtKey::Zone,
        ] {
            for dir in [CtDir::Original, CtDir::Reply] {
                let ctr = p.add_counter();
                p.add_rule(
                    c,
                    vec![
                        Insn::Ct {
                            key,
                            dir: Some(dir),
                            dreg: R0,
                        },
                        // Copy the value out through a payload write request (exact bytes).
                        Insn::PayloadWrite {
                            base: PayloadBase::Network,
                            offset: 0,
                            len: key.size() as u8,
                            sreg: R0,
                            csum_type: 0,
                            csum_offset: 0,
                            csum_flags: 0,
                        },
                        Insn::Counter(ctr),
                    ],
                );
            }
        }
        let prog = p.verify().unwrap();
        let _ = run(&prog, &[0u8; 30], &st);
    }
}

#[test]
fn statements_and_effects() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Accept);
    let lim = p.add_limit(LimitSpec {
        rate: 1,
        unit: 1,
        burst: 1,
        ty: LimitType::Packets,
        invert: false,
    });
    let ctr = p.add_counter();
    p.add_rule(
        c,
        vec![
            Insn::Immediate {
                dreg: R1,
                data: Data::host32(0x1234),
            },
            Insn::MetaSet {
                key: MetaSetKey::Mark,
                sreg: R1,
            },
            Insn::CtSet {
                key: CtSetKey::Mark,
                sreg: R1,
            },
            Insn::Log(Box::new(LogSpec {
                prefix: Some("x".into()),
                ..Default::default()
            })),
            Insn::Notrack,
            Insn::Limit(lim),
            Insn::Counter(ctr),
        ],
    );
    p.add_rule(c, vec![Insn::Reject { ty: 1, code: 3 }]);
    let prog = p.verify().unwrap();
    let st = PktState {
        ct_valid: true,
        ct_state: ct_state::NEW,
        len: 20,
        ..Default::default()
    };
    assert_eq!(run(&prog, &[0; 20], &st), Verdict::Drop);
    // Many packets at the same instant: the limit runs out, both engines agree each time.
    for o in both_opts() {
        let jit = JitProgram::compile_with(&prog, &o).unwrap();
        let pkts: Vec<_> = (0..8).map(|_| (vec![0u8; 20], st.clone())).collect();
        common::compare(&prog, &jit, &pkts).unwrap();
        let mut s = State::new(&prog);
        let mut fx = Effects::default();
        let mut st2 = st.clone();
        jit.run(&mut s, c, &[0; 20], &mut st2, &mut fx);
        assert_eq!(st2.mark, 0x1234);
        assert!(fx.mark_set && fx.ct_mark_set && fx.logs.len() == 1);
        assert_eq!(fx.reject, Some((1, 3)));
    }
}

#[test]
fn set_lookups_inline_and_helper_agree() {
    for n in [3usize, 200] {
        for kind in [SetKind::Hash, SetKind::Interval] {
            let mut p = Program::new();
            let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
            let mut s = Set::new("ports", 2, SetDataType::Verdict, kind.clone());
            for i in 0..n as u16 {
                let v = if i % 2 == 0 {
                    ChainVerdict::Accept
                } else {
                    ChainVerdict::Continue
                };
                s.insert(&(i * 3).to_be_bytes(), ElemData::Verdict(v));
            }
            let set = p.add_set(s);
            p.add_rule(
                c,
                vec![
                    Insn::payload(PayloadBase::Transport, 2, 2, R0),
                    Insn::Lookup {
                        sreg: R0,
                        set,
                        dest: LookupDest::Verdict,
                        invert: false,
                    },
                    Insn::ImmVerdict(ChainVerdict::Stolen),
                ],
            );
            let prog = p.verify().unwrap();
            for port in 0..(3 * n as u16 + 3) {
                let mut pkt = vec![0u8; 24];
                pkt[22..24].copy_from_slice(&port.to_be_bytes());
                let want = match (port % 3, (port / 3) % 2) {
                    _ if port >= 3 * n as u16 => Verdict::Drop,
                    (0, 0) => Verdict::Accept,
                    (0, _) => Verdict::Stolen,
                    _ => Verdict::Drop,
                };
                assert_eq!(
                    run(&prog, &pkt, &tcp_state(24)),
                    want,
                    "{n} {kind:?} {port}"
                );
            }
        }
    }
}

#[test]
fn rule_runs_first_match_counters_jump_and_resume() {
    // Six table-shaped rules (one run with the default options), a jump out of the middle of
    // the run and a return into it, rules without verdicts, and truncated packets.
    let mut p = Program::new();
    let base = p.add_base_chain("base", Hook::Input, 0, Policy::Drop);
    let u = p.add_chain("u");
    let c: Vec<_> = (0..5).map(|_| p.add_counter()).collect();
    let ld = |b, o, l| Insn::payload(b, o, l, R1);
    p.add_rule(
        base,
        vec![
            ld(PayloadBase::Network, 9, 1),
            Insn::cmp_eq(R1, Data::u8(17)),
            Insn::Counter(c[0]),
            accept(),
        ],
    );
    p.add_rule(
        base,
        vec![
            ld(PayloadBase::Transport, 2, 2),
            Insn::range(RangeOp::Eq, R1, Data::be16(1000), Data::be16(2000)),
            Insn::Counter(c[1]),
            Insn::ImmVerdict(ChainVerdict::Jump(u)),
        ],
    );
    p.add_rule(
        base,
        vec![
            ld(PayloadBase::Network, 12, 4),
            Insn::Bitwise {
                sreg: R1,
                dreg: R1,
                len: 4,
                op: BitwiseOp::mask_xor(Data::be32(0xffff_ff00), Data::be32(0)),
            },
            Insn::cmp_eq(R1, Data::be32(0x0a00_0100)),
            Insn::Counter(c[2]),
        ],
    );
    p.add_rule(
        base,
        vec![
            Insn::meta(MetaKey::Mark, R0),
            Insn::cmp_eq(R0, Data::host32(7)),
            Insn::ImmVerdict(ChainVerdict::Drop),
        ],
    );
    p.add_rule(
        base,
        vec![
            ld(PayloadBase::Transport, 2, 2),
            Insn::Cmp {
                op: CmpOp::Neq,
                sreg: R1,
                data: Data::be16(22),
            },
            Insn::Counter(c[3]),
        ],
    );
    p.add_rule(
        base,
        vec![
            ld(PayloadBase::Network, 16, 4),
            Insn::cmp_eq(R1, Data::be32(0xc000_0201)),
            accept(),
        ],
    );
    p.add_rule(u, vec![Insn::Counter(c[4])]);
    let prog = p.verify().unwrap();

    let mut pkt = vec![0u8; 24];
    pkt[0] = 0x45;
    pkt[9] = 6;
    pkt[12..16].copy_from_slice(&[10, 0, 1, 5]);
    pkt[16..20].copy_from_slice(&[192, 0, 2, 1]);
    pkt[22..24].copy_from_slice(&1500u16.to_be_bytes());
    let full = tcp_state(24);
    let cut = tcp_state(22);
    assert_eq!(run(&prog, &pkt, &full), Verdict::Accept);
    assert_eq!(run(&prog, &pkt[..22], &cut), Verdict::Accept);
    let mut mark7 = full.clone();
    mark7.mark = 7;
    assert_eq!(run(&prog, &pkt, &mark7), Verdict::Drop);
    // Source outside 10.0.1.0/24 and no daddr: only the policy.
    let mut other = pkt.clone();
    other[14] = 9;
    other[19] = 2;
    assert_eq!(run(&prog, &other[..22], &cut), Verdict::Drop);

    let cls = classified(&prog, 1);
    for (o, p) in both_opts().into_iter().zip([&prog, &prog, &cls]) {
        let jit = JitProgram::compile_with(p, &o).unwrap();
        let mut s = State::new(&prog);
        let mut st = full.clone();
        let v = jit.run(&mut s, base, &pkt, &mut st, &mut Effects::default());
        assert_eq!(v, Verdict::Accept);
        let mut st = cut.clone();
        let v = jit.run(&mut s, base, &pkt[..22], &mut st, &mut Effects::default());
        assert_eq!(v, Verdict::Accept);
        let counts: Vec<_> = s.counters.iter().map(|c| (c.packets, c.bytes)).collect();
        // Full packet: c1 (jump), c4 (in u), c2 and c3 after the return; truncated: c2 only.
        assert_eq!(
            counts,
            vec![(0, 0), (1, 24), (2, 46), (1, 24), (1, 24)],
            "{o:?}"
        );
    }
}

#[test]
fn clif_text_has_one_function_per_partition() {
    let prog = one_rule(vec![
        Insn::payload(PayloadBase::Network, 9, 1, R0),
        Insn::cmp_eq(R0, Data::u8(6)),
        accept(),
    ]);
    let text = nfr_jit::clif(&prog).unwrap();
    assert!(
        text.starts_with("; chain c (#0) rules 0..1\nfunction u0:0("),
        "{text}"
    );
    assert!(text.contains("br_table"));
    assert!(text.contains("uload8"));
    let _ = (pkt::NFPROTO_IPV4, ifname("x"));
}

#[test]
fn objref_maps_count_record_and_break_like_the_interpreter() {
    use nfr_vm::CounterId;
    use nfr_vm::program::{Obj, ObjType};
    for kind in [SetKind::Hash, SetKind::Interval] {
        for catchall in [false, true] {
            let mut p = Program::new();
            let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
            let cs: Vec<CounterId> = (0..3).map(|_| p.add_counter()).collect();
            let mut counters = Set::new(
                "cnt",
                2,
                SetDataType::Object(ObjType::Counter),
                kind.clone(),
            );
            counters.insert(&22u16.to_be_bytes(), ElemData::Object(Obj::Counter(cs[0])));
            counters.insert(&80u16.to_be_bytes(), ElemData::Object(Obj::Counter(cs[1])));
            if catchall {
                counters.catchall = Some(ElemData::Object(Obj::Counter(cs[1])));
            }
            let counters = p.add_set(counters);
            let mut helpers = Set::new(
                "hlp",
                2,
                SetDataType::Object(ObjType::CtHelper),
                kind.clone(),
            );
            helpers.insert(
                &21u16.to_be_bytes(),
                ElemData::Object(Obj::CtHelper(ifname("ftp"))),
            );
            let helpers = p.add_set(helpers);
            let dport = || Insn::payload(PayloadBase::Transport, 2, 2, R1);
            // A table-shaped rule (a rule run with min_run 1), then the two object maps.
            p.add_rule(
                c,
                vec![
                    Insn::payload(PayloadBase::Transport, 2, 2, R0),
                    Insn::cmp_eq(R0, Data::be16(443)),
                    Insn::Counter(cs[2]),
                    accept(),
                ],
            );
            p.add_rule(
                c,
                vec![
                    dport(),
                    Insn::Objref {
                        sreg: R1,
                        set: helpers,
                    },
                ],
            );
            p.add_rule(
                c,
                vec![
                    dport(),
                    Insn::Objref {
                        sreg: R1,
                        set: counters,
                    },
                    Insn::Counter(cs[2]),
                    Insn::ImmVerdict(ChainVerdict::Stolen),
                ],
            );
            let prog = p.verify().expect("valid");
            let mut pkts = Vec::new();
            for port in [21u16, 22, 80, 443, 8080, 22] {
                let mut pkt = vec![0u8; 24];
                pkt[22..24].copy_from_slice(&port.to_be_bytes());
                let miss = if catchall {
                    Verdict::Stolen
                } else {
                    Verdict::Drop
                };
                let want = match port {
                    22 | 80 => Verdict::Stolen,
                    443 => Verdict::Accept,
                    _ => miss,
                };
                assert_eq!(
                    run(&prog, &pkt, &tcp_state(24)),
                    want,
                    "{kind:?} {catchall} {port}"
                );
                pkts.push((pkt, tcp_state(24)));
            }
            // The whole sequence on one state: counters and the recorded helper agree.
            for o in both_opts() {
                let jit = JitProgram::compile_with(&prog, &o).expect("compiles");
                compare(&prog, &jit, &pkts).unwrap_or_else(|e| panic!("{e}"));
                let mut s = State::new(&prog);
                for (pkt, st) in &pkts {
                    let mut st = st.clone();
                    let mut fx = Effects::default();
                    jit.run(&mut s, ChainId(0), pkt, &mut st, &mut fx);
                    let port = u16::from_be_bytes([pkt[22], pkt[23]]);
                    assert_eq!(fx.ct_helper, (port == 21).then(|| ifname("ftp")));
                }
                let got: Vec<u64> = s.counters.iter().map(|c| c.packets).collect();
                // 22 twice; 80 (and the misses 21, 8080 with the catch-all); 443, then every
                // packet that went past the objref.
                let want = if catchall {
                    vec![2, 3, 6]
                } else {
                    vec![2, 1, 4]
                };
                assert_eq!(got, want, "{kind:?} {catchall}");
            }
        }
    }
}

#[test]
fn numgen_and_meta_random_follow_the_interpreter() {
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Input, 0, Policy::Drop);
    let inc = Insn::Numgen {
        dreg: R1,
        kind: NumgenKind::Inc { slot: 0 },
        modulus: 3,
        offset: 10,
    };
    p.add_rule(c, vec![inc, Insn::cmp_eq(R1, Data::host32(11)), accept()]);
    let rnd = Insn::Numgen {
        dreg: R0,
        kind: NumgenKind::Random,
        modulus: 4,
        offset: 0,
    };
    let cnt = p.add_counter();
    p.add_rule(
        c,
        vec![rnd, Insn::cmp_eq(R0, Data::host32(2)), Insn::Counter(cnt)],
    );
    p.add_rule(
        c,
        vec![
            Insn::meta(MetaKey::Prandom, R0),
            Insn::Bitwise {
                sreg: R0,
                dreg: R0,
                len: 4,
                op: BitwiseOp::mask_xor(Data::host32(0x7fff_ffff), Data::host32(0)),
            },
            Insn::Cmp {
                op: CmpOp::Lt,
                sreg: R0,
                data: Data::be32(0x4000_0000),
            },
            accept(),
        ],
    );
    let prog = p.verify().expect("valid");
    let pkts: Vec<_> = (0..60).map(|_| (vec![0u8; 40], tcp_state(40))).collect();
    for o in both_opts() {
        let jit = JitProgram::compile_with(&prog, &o).expect("compiles");
        compare(&prog, &jit, &pkts).unwrap_or_else(|e| panic!("{e}"));
    }
    // The counter: every third packet (the second of each round) is accepted by the first rule.
    let mut s = State::new(&prog);
    let accepted: Vec<bool> = (0..9)
        .map(|_| {
            let v = prog.run(
                &mut s,
                ChainId(0),
                &[0; 40],
                &mut tcp_state(40),
                &mut Effects::default(),
            );
            v == Verdict::Accept
        })
        .collect();
    assert!(accepted[1] && accepted[4] && accepted[7]);
    assert_eq!(s.numgen, vec![2]);
}
