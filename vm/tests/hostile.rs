//! Hostile programs and packets: random instructions with random (often invalid) operands must
//! never make `verify` panic, and every program that verifies must run on random packets
//! without panicking.

mod common;
use nfr_vm::insn::*;
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::{
    ChainId, ChainVerdict, CounterId, Effects, Hook, LimitId, PktState, Program, Reg, Set, SetId,
    State,
};

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
    fn reg(&mut self) -> Reg {
        Reg(if self.below(8) == 0 {
            self.below(40) as u8
        } else {
            self.below(4) as u8 * 4
        })
    }
    fn data(&mut self) -> Data {
        let n = 1 + self.below(16) as usize;
        let b: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
        Data::new(&b).unwrap()
    }
    fn base(&mut self) -> PayloadBase {
        [
            PayloadBase::Link,
            PayloadBase::Network,
            PayloadBase::Transport,
        ][self.below(3) as usize]
    }
    fn len(&mut self) -> u8 {
        if self.below(4) == 0 {
            self.next() as u8
        } else {
            1 + self.below(8) as u8
        }
    }
    fn verdict(&mut self) -> ChainVerdict {
        match self.below(8) {
            0 => ChainVerdict::Jump(ChainId(
                self.below(5) as u32 + u32::from(self.below(8) != 0),
            )),
            1 => ChainVerdict::Goto(ChainId(
                self.below(5) as u32 + u32::from(self.below(8) != 0),
            )),
            2 => ChainVerdict::Return,
            3 => ChainVerdict::Break,
            4 => ChainVerdict::Continue,
            5 => ChainVerdict::Drop,
            6 => ChainVerdict::Queue {
                num: 1,
                bypass: false,
            },
            _ => ChainVerdict::Accept,
        }
    }
    fn insn(&mut self) -> Insn {
        let metas = [
            MetaKey::Len,
            MetaKey::Protocol,
            MetaKey::L4proto,
            MetaKey::Mark,
            MetaKey::Iifname,
            MetaKey::Iiftype,
            MetaKey::Skuid,
        ];
        let cts = [
            CtKey::State,
            CtKey::Mark,
            CtKey::Src,
            CtKey::SrcIp6,
            CtKey::ProtoDst,
            CtKey::Helper,
            CtKey::Zone,
        ];
        match self.below(22) {
            0..=2 => Insn::Payload {
                base: self.base(),
                offset: self.below(80) as u32,
                len: self.len(),
                dreg: self.reg(),
            },
            3 => Insn::PayloadWrite {
                base: self.base(),
                offset: self.below(80) as u32,
                len: self.len(),
                sreg: self.reg(),
                csum_type: 0,
                csum_offset: 0,
                csum_flags: 0,
            },
            4 => Insn::Meta {
                key: metas[self.below(metas.len() as u64) as usize],
                dreg: self.reg(),
            },
            5 => Insn::Ct {
                key: cts[self.below(cts.len() as u64) as usize],
                dir: [None, Some(CtDir::Original), Some(CtDir::Reply)][self.below(3) as usize],
                dreg: self.reg(),
            },
            6 | 7 => {
                let op = [
                    CmpOp::Eq,
                    CmpOp::Neq,
                    CmpOp::Lt,
                    CmpOp::Lte,
                    CmpOp::Gt,
                    CmpOp::Gte,
                ][self.below(6) as usize];
                Insn::Cmp {
                    op,
                    sreg: self.reg(),
                    data: self.data(),
                }
            }
            8 => Insn::range(RangeOp::Eq, self.reg(), self.data(), self.data()),
            9 => {
                let len = self.len();
                let op = match self.below(4) {
                    0 => BitwiseOp::mask_xor(self.data(), self.data()),
                    1 => BitwiseOp::Lshift(self.below(40) as u32),
                    2 => BitwiseOp::Rshift(self.below(40) as u32),
                    _ => BitwiseOp::Xor(self.reg()),
                };
                Insn::Bitwise {
                    sreg: self.reg(),
                    dreg: self.reg(),
                    len,
                    op,
                }
            }
            10 => Insn::Byteorder {
                sreg: self.reg(),
                dreg: self.reg(),
                op: ByteorderOp::Hton,
                len: self.len(),
                size: self.below(9) as u8,
            },
            11 | 12 => Insn::Lookup {
                sreg: self.reg(),
                set: SetId(self.below(4) as u32),
                dest: [
                    LookupDest::None,
                    LookupDest::Verdict,
                    LookupDest::Reg(self.reg()),
                ][self.below(3) as usize],
                invert: self.below(3) == 0,
            },
            13 => Insn::Immediate {
                dreg: self.reg(),
                data: self.data(),
            },
            14 => Insn::ImmVerdict(self.verdict()),
            15 => Insn::Counter(CounterId(self.below(3) as u32)),
            16 => Insn::Limit(LimitId(self.below(2) as u32)),
            17 => Insn::MetaSet {
                key: MetaSetKey::Mark,
                sreg: self.reg(),
            },
            18 => Insn::Nat(NatSpec {
                kind: NatKind::Dnat,
                family: [2u8, 10, 1, 7][self.below(4) as usize],
                addr_min: Some(self.reg()),
                addr_max: None,
                proto_min: Some(self.reg()),
                proto_max: None,
                flags: 0,
            }),
            19 | 20 => Insn::Exthdr {
                op: if self.below(2) == 0 {
                    ExthdrOp::Ipv6
                } else {
                    ExthdrOp::Tcpopt
                },
                ty: [0u8, 2, 43, 44, 60, 1][self.below(6) as usize],
                offset: self.below(20) as u32,
                len: self.len(),
                dreg: self.reg(),
                present: self.below(2) == 0,
            },
            _ => Insn::Notrack,
        }
    }
}

#[test]
fn random_programs_never_panic() {
    let mut r = Rng::new(0x1234_5678_9abc_def1);
    let (mut verified, mut rejected, mut runs) = (0, 0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    for _ in 0..1500 {
        let lim = LimitSpec {
            rate: 1 + r.below(10),
            unit: 1,
            burst: r.below(3) as u32,
            ty: LimitType::Packets,
            invert: false,
        };
        let vset = match r.verdict() {
            ChainVerdict::Jump(c) | ChainVerdict::Goto(c) if c.0 == 0 || c.0 > 4 => {
                ChainVerdict::Accept
            }
            v => v,
        };
        let build = |rules: &[(ChainId, Vec<Insn>)]| {
            let mut p = Program::new();
            p.add_base_chain("b", Hook::Input, 0, Policy::Drop);
            for i in 0..4 {
                p.add_chain(&format!("u{i}"));
            }
            p.add_counter();
            p.add_counter();
            p.add_limit(lim);
            let mut s = Set::new("h", 2, SetDataType::None, SetKind::Hash);
            s.insert(&[0, 22], ElemData::None);
            p.add_set(s);
            let mut s = Set::new("v", 1, SetDataType::Verdict, SetKind::Interval);
            s.insert_range(&[0], &[6], ElemData::Verdict(vset));
            p.add_set(s);
            let mut s = Set::new("m", 4, SetDataType::Data(4), SetKind::Hash);
            s.insert(&[10, 0, 0, 1], ElemData::Data(Data::host32(5)));
            p.add_set(s);
            for (c, insns) in rules {
                p.add_rule(*c, insns.clone());
            }
            p
        };
        // Grow the program one random instruction at a time; an instruction that makes
        // verification fail is counted (by error kind) and dropped.
        let mut rules: Vec<(ChainId, Vec<Insn>)> = Vec::new();
        for _ in 0..1 + r.below(6) {
            rules.push((ChainId(r.below(5) as u32), Vec::new()));
            for _ in 0..1 + r.below(6) {
                let insn = r.insn();
                if let Some(last) = rules.last_mut() {
                    last.1.push(insn);
                }
                match build(&rules).verify() {
                    Ok(_) => verified += 1,
                    Err(e) => {
                        rejected += 1;
                        let k = format!("{:?}", e.kind);
                        *kinds
                            .entry(k.split([' ', '(']).next().unwrap_or("").to_string())
                            .or_insert(0) += 1;
                        if let Some(last) = rules.last_mut() {
                            last.1.pop();
                        }
                    }
                }
            }
        }
        let vp = build(&rules).verify().expect("grown program verifies");
        let mut state = State::new(&vp);
        for _ in 0..20 {
            let n = r.below(80) as usize;
            let pkt: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
            let mut st = PktState {
                has_ll: r.below(2) == 0,
                nhoff: r.below(20) as u16,
                thoff: r.below(60) as u16,
                has_th: r.below(2) == 0,
                fragoff: if r.below(4) == 0 { 8 } else { 0 },
                ct_valid: r.below(2) == 0,
                ct_l3proto: [2u8, 10][r.below(2) as usize],
                nfproto: [2u8, 10][r.below(2) as usize],
                l4proto: [6u8, 17][r.below(2) as usize],
                len: n as u32,
                tstamp_ns: r.next() >> 20,
                ..Default::default()
            };
            let mut fx = Effects {
                trace_enabled: r.below(2) == 0,
                ..Default::default()
            };
            let _ = vp.run(
                &mut state,
                ChainId(r.below(5) as u32),
                &pkt,
                &mut st,
                &mut fx,
            );
            runs += 1;
        }
    }
    eprintln!("hostile: {verified} verified, {rejected} rejected ({kinds:?}), {runs} runs");
    assert!(
        verified > 100 && rejected > 100,
        "{verified} verified / {rejected} rejected"
    );
}
