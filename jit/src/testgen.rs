//! Test support shared by the crate's tests, benches and the `jit_diff` fuzz target (hidden from
//! the docs; not a stable API): a generator of random *valid* Programs and packet states, driven
//! by a seed or by fuzzer bytes, and the JIT-vs-interpreter comparison of (program, packet)
//! pairs. The generator sometimes writes runs of table-shaped rules (`runs`) so that both the
//! unrolled and the table-loop code are compared.

use crate::JitProgram;
use nfr_vm::insn::*;
use nfr_vm::pkt::{self, CtTuple, PktState, ct_state, ifname};
use nfr_vm::program::{ElemData, Obj, ObjType, Policy, SetDataType, SetKind};
use nfr_vm::{
    ChainId, ChainVerdict, CounterId, Effects, Hook, LimitId, Program, Reg, Set, SetId, State,
    Verdict, VerifiedProgram,
};

/// A xorshift generator; with a tape (fuzzer input), each draw takes its low byte from the
/// next tape byte, so small decisions follow the input bytes directly.
pub struct Rng {
    state: u64,
    tape: Vec<u8>,
    pos: usize,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            tape: Vec::new(),
            pos: 0,
        }
    }

    /// A generator whose draws follow `tape` (then the seed derived from it when it runs out).
    pub fn from_tape(tape: &[u8]) -> Rng {
        let seed = tape.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng {
            tape: tape.to_vec(),
            ..Rng::new(seed)
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        match self.tape.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                (x & !0xff) | u64::from(b)
            }
            None => x,
        }
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    /// A byte from a small alphabet (so constants and packets often agree).
    pub fn byte(&mut self) -> u8 {
        const A: [u8; 8] = [0, 1, 2, 6, 0x11, 0x45, 0x80, 0xff];
        if self.chance(1, 8) {
            self.next() as u8
        } else {
            A[self.below(8) as usize]
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    pub fn data(&mut self, n: usize) -> Data {
        Data::new(&self.bytes(n)).unwrap_or_default()
    }
}

/// Every meta key the generator (and the meta-key test) reads.
pub const METAS: [MetaKey; 14] = [
    MetaKey::Len,
    MetaKey::Protocol,
    MetaKey::Nfproto,
    MetaKey::L4proto,
    MetaKey::Mark,
    MetaKey::Iif,
    MetaKey::Oif,
    MetaKey::Iifname,
    MetaKey::Oifname,
    MetaKey::Iiftype,
    MetaKey::Oiftype,
    MetaKey::Pkttype,
    MetaKey::Skuid,
    MetaKey::Skgid,
];

const CTS: [CtKey; 18] = [
    CtKey::State,
    CtKey::Direction,
    CtKey::Status,
    CtKey::Mark,
    CtKey::Expiration,
    CtKey::Helper,
    CtKey::L3protocol,
    CtKey::Src,
    CtKey::Dst,
    CtKey::Protocol,
    CtKey::ProtoSrc,
    CtKey::ProtoDst,
    CtKey::Zone,
    CtKey::Id,
    CtKey::SrcIp,
    CtKey::DstIp,
    CtKey::SrcIp6,
    CtKey::DstIp6,
];

struct Gen<'r> {
    r: &'r mut Rng,
    p: Program,
    nchains: u32,
    /// (set, key_len, data type, has jumps to the last chain)
    sets: Vec<(SetId, u8, SetDataType, bool)>,
    counters: Vec<CounterId>,
    limits: Vec<LimitId>,
    /// Packet fields that classifiable runs draw their tests from (so dimensions repeat).
    pool: Vec<(PayloadBase, u32, u8)>,
}

impl Gen<'_> {
    fn reg(&mut self, words: usize) -> Reg {
        let max = 16 - words as u64;
        Reg(if self.r.chance(1, 2) {
            (self.r.below(max / 4 + 1) * 4).min(max) as u8
        } else {
            self.r.below(max + 1) as u8
        })
    }

    fn verdict(&mut self, chain: u32, terminal_only: bool) -> ChainVerdict {
        let later = chain + 1 < self.nchains;
        match self.r.below(12) {
            0 | 1 if later && !terminal_only => {
                let t = chain + 1 + self.r.below(u64::from(self.nchains - chain - 1)) as u32;
                if self.r.chance(1, 2) {
                    ChainVerdict::Jump(ChainId(t))
                } else {
                    ChainVerdict::Goto(ChainId(t))
                }
            }
            2 if !terminal_only => ChainVerdict::Return,
            3 if !terminal_only => ChainVerdict::Continue,
            4 if !terminal_only => ChainVerdict::Break,
            5 | 6 => ChainVerdict::Drop,
            7 => ChainVerdict::Queue {
                num: self.r.below(4) as u16,
                bypass: self.r.chance(1, 2),
            },
            8 => ChainVerdict::Stolen,
            9 => ChainVerdict::Repeat,
            _ => ChainVerdict::Accept,
        }
    }

    fn make_sets(&mut self) {
        for _ in 0..self.r.below(4) {
            let klen = [1u8, 2, 4, 4, 3, 8, 16][self.r.below(7) as usize];
            let kind = match self.r.below(5) {
                0 | 1 => SetKind::Hash,
                2 | 3 => SetKind::Interval,
                _ if klen == 8 => SetKind::ConcatInterval {
                    field_lens: vec![4, 4],
                },
                _ => SetKind::Hash,
            };
            let dt = match self.r.below(3) {
                0 => SetDataType::None,
                1 => SetDataType::Data([1u8, 4, 6][self.r.below(3) as usize]),
                _ if self.r.chance(1, 3) => SetDataType::Object(if self.r.chance(1, 2) {
                    ObjType::Counter
                } else {
                    ObjType::CtHelper
                }),
                _ => SetDataType::Verdict,
            };
            let mut s = Set::new("s", klen, dt, kind.clone());
            let mut jumps = false;
            let n = if self.r.chance(1, 4) {
                70 + self.r.below(60)
            } else {
                self.r.below(8)
            };
            let elem = |g: &mut Gen, jumps: &mut bool| match dt {
                SetDataType::None => ElemData::None,
                SetDataType::Data(n) => ElemData::Data(g.r.data(usize::from(n))),
                SetDataType::Object(ObjType::Counter) => {
                    let c = g.counters[g.r.below(g.counters.len() as u64) as usize];
                    ElemData::Object(Obj::Counter(c))
                }
                SetDataType::Object(ObjType::CtHelper) => ElemData::Object(Obj::CtHelper(ifname(
                    ["ftp", "sip", "tftp"][g.r.below(3) as usize],
                ))),
                SetDataType::Verdict => {
                    let last = g.nchains - 1;
                    let v = if last > 0 && g.r.chance(1, 4) {
                        *jumps = true;
                        if g.r.chance(1, 2) {
                            ChainVerdict::Jump(ChainId(last))
                        } else {
                            ChainVerdict::Goto(ChainId(last))
                        }
                    } else {
                        match g.r.below(5) {
                            0 => ChainVerdict::Continue,
                            1 => ChainVerdict::Break,
                            2 => ChainVerdict::Return,
                            3 => ChainVerdict::Drop,
                            _ => ChainVerdict::Accept,
                        }
                    };
                    ElemData::Verdict(v)
                }
            };
            match kind {
                SetKind::Hash => {
                    for _ in 0..n {
                        let k = self.r.bytes(usize::from(klen));
                        let d = elem(self, &mut jumps);
                        s.insert(&k, d);
                    }
                }
                SetKind::Interval => {
                    // Disjoint sorted ranges from random cut points.
                    let mut pts: Vec<Vec<u8>> = (0..2 * n)
                        .map(|_| self.r.bytes(usize::from(klen)))
                        .collect();
                    pts.sort();
                    pts.dedup();
                    for pair in pts.chunks_exact(2) {
                        let d = elem(self, &mut jumps);
                        s.insert_range(&pair[0], &pair[1], d);
                    }
                }
                SetKind::ConcatInterval { .. } => {
                    for _ in 0..n {
                        let a = self.r.bytes(8);
                        let mut b = a.clone();
                        for x in b.iter_mut() {
                            *x = x.saturating_add(self.r.below(3) as u8);
                        }
                        let d = elem(self, &mut jumps);
                        s.insert_range(&a, &b, d);
                    }
                }
            }
            if self.r.chance(1, 4) {
                s.catchall = Some(elem(self, &mut jumps));
            }
            let id = self.p.add_set(s);
            self.sets.push((id, klen, dt, jumps));
        }
    }

    /// A test on a loaded value of `len` bytes in `reg`.
    fn test(&mut self, v: &mut Vec<Insn>, reg: Reg, len: usize, chain: u32) {
        let len16 = len.min(16);
        match self.r.below(6) {
            0 | 1 => {
                let op = [
                    CmpOp::Eq,
                    CmpOp::Neq,
                    CmpOp::Lt,
                    CmpOp::Lte,
                    CmpOp::Gt,
                    CmpOp::Gte,
                ][self.r.below(6) as usize];
                let n = if self.r.chance(1, 4) {
                    1 + self.r.below(len16 as u64) as usize
                } else {
                    len16
                };
                let data = self.r.data(n);
                v.push(Insn::Cmp {
                    op,
                    sreg: reg,
                    data,
                });
            }
            2 => {
                // Bounds that share all but the last byte (so packet bytes from the same
                // alphabet land on them), usually ordered.
                let mut a = self.r.bytes(len16);
                let mut b = a.clone();
                if let Some(x) = b.last_mut() {
                    *x = self.r.byte();
                }
                if self.r.chance(1, 4) {
                    b = self.r.bytes(len16);
                }
                if a > b && self.r.chance(3, 4) {
                    std::mem::swap(&mut a, &mut b);
                }
                v.push(Insn::range(
                    if self.r.chance(1, 3) {
                        RangeOp::Neq
                    } else {
                        RangeOp::Eq
                    },
                    reg,
                    Data::new(&a).unwrap_or_default(),
                    Data::new(&b).unwrap_or_default(),
                ));
            }
            3 => {
                let l = len16;
                v.push(Insn::Bitwise {
                    sreg: reg,
                    dreg: reg,
                    len: l as u8,
                    op: BitwiseOp::mask_xor(
                        self.r.data(l),
                        if self.r.chance(1, 2) {
                            Data::new(&vec![0; l]).unwrap_or_default()
                        } else {
                            self.r.data(l)
                        },
                    ),
                });
                v.push(Insn::cmp_eq(reg, self.r.data(l)));
            }
            _ => {
                let cands: Vec<_> = self
                    .sets
                    .iter()
                    .filter(|s| usize::from(s.1) <= len && !(s.3 && chain + 1 >= self.nchains))
                    .copied()
                    .collect();
                if cands.is_empty() {
                    v.push(Insn::cmp_eq(reg, self.r.data(len16)));
                    return;
                }
                let (set, _, dt, _) = cands[self.r.below(cands.len() as u64) as usize];
                if matches!(dt, SetDataType::Object(_)) && self.r.chance(3, 4) {
                    // nft_objref_map: a miss breaks, a hit counts or records the helper.
                    v.push(Insn::Objref { sreg: reg, set });
                    return;
                }
                let invert = self.r.chance(1, 5);
                let dest = match dt {
                    _ if invert => LookupDest::None,
                    SetDataType::Data(n) if self.r.chance(3, 4) => {
                        LookupDest::Reg(self.reg(usize::from(n).div_ceil(4)))
                    }
                    SetDataType::Verdict if self.r.chance(3, 4) => LookupDest::Verdict,
                    _ => LookupDest::None,
                };
                v.push(Insn::Lookup {
                    sreg: reg,
                    set,
                    dest,
                    invert,
                });
                if let (LookupDest::Reg(d), SetDataType::Data(n)) = (dest, dt) {
                    v.push(Insn::cmp_eq(d, self.r.data(usize::from(n))));
                }
            }
        }
    }

    fn matcher(&mut self, v: &mut Vec<Insn>, chain: u32) {
        match self.r.below(10) {
            0..=3 => {
                let len = [1u8, 2, 4, 4, 2, 3, 6, 8, 16, 20][self.r.below(10) as usize];
                let reg = self.reg(usize::from(len).div_ceil(4));
                let base = [
                    PayloadBase::Network,
                    PayloadBase::Transport,
                    PayloadBase::Link,
                ][self.r.below(3) as usize];
                v.push(Insn::payload(base, self.r.below(48) as u32, len, reg));
                self.test(v, reg, usize::from(len), chain);
            }
            4 | 5 => {
                let key = METAS[self.r.below(METAS.len() as u64) as usize];
                let reg = self.reg(key.size().div_ceil(4));
                v.push(Insn::meta(key, reg));
                self.test(v, reg, key.size(), chain);
            }
            6 | 7 => {
                let key = CTS[self.r.below(CTS.len() as u64) as usize];
                let dir = if key.needs_dir() || (key.allows_dir() && self.r.chance(1, 2)) {
                    Some(if self.r.chance(1, 2) {
                        CtDir::Original
                    } else {
                        CtDir::Reply
                    })
                } else {
                    None
                };
                let reg = self.reg(key.size().div_ceil(4));
                v.push(Insn::Ct {
                    key,
                    dir,
                    dreg: reg,
                });
                self.test(v, reg, key.size(), chain);
            }
            8 => {
                // Immediate, then a register-to-register op.
                let len = 1 + self.r.below(12) as usize;
                let w = len.div_ceil(4);
                let a = self.reg(w);
                v.push(Insn::Immediate {
                    dreg: a,
                    data: self.r.data(len),
                });
                let d = self.reg(w);
                let op = match self.r.below(6) {
                    0 => Some(BitwiseOp::Lshift(self.r.below(32) as u32)),
                    1 => Some(BitwiseOp::Rshift(self.r.below(32) as u32)),
                    2 => Some(BitwiseOp::And(a)),
                    3 => Some(BitwiseOp::Or(a)),
                    4 => Some(BitwiseOp::Xor(a)),
                    _ => None,
                };
                match op {
                    Some(op) => v.push(Insn::Bitwise {
                        sreg: a,
                        dreg: d,
                        len: len as u8,
                        op,
                    }),
                    None => {
                        let size = [2u8, 4, 8][self.r.below(3) as usize];
                        let len = (len as u8).div_ceil(size) * size;
                        if usize::from(a.0) + usize::from(len).div_ceil(4) > 16
                            || usize::from(d.0) + usize::from(len).div_ceil(4) > 16
                        {
                            v.push(Insn::cmp_eq(a, self.r.data(1)));
                            return;
                        }
                        v.push(Insn::Immediate {
                            dreg: a,
                            data: self.r.data(usize::from(len).min(16)),
                        });
                        if len > 16 {
                            v.push(Insn::cmp_eq(a, self.r.data(1)));
                            return;
                        }
                        v.push(Insn::Byteorder {
                            sreg: a,
                            dreg: d,
                            op: ByteorderOp::Ntoh,
                            len,
                            size,
                        });
                    }
                }
                self.test(v, d, len, chain);
            }
            _ => {
                let reg = self.reg(2);
                let len = 1 + self.r.below(6) as u8;
                v.push(Insn::Exthdr {
                    op: if self.r.chance(1, 2) {
                        ExthdrOp::Ipv6
                    } else {
                        ExthdrOp::Tcpopt
                    },
                    ty: [0u8, 2, 3, 8, 43, 44, 60, 6][self.r.below(8) as usize],
                    offset: self.r.below(6) as u32,
                    len,
                    dreg: reg,
                    present: self.r.chance(1, 3),
                });
                self.test(v, reg, 1, chain);
            }
        }
    }

    /// A table-shaped rule (see `runs`): single-word payload/meta tests, maybe a counter,
    /// maybe a verdict.
    fn table_rule(&mut self, v: &mut Vec<Insn>, chain: u32) {
        for _ in 0..self.r.below(4) {
            let reg = Reg(self.r.below(16) as u8);
            let len = if self.r.chance(1, 3) {
                let key = [
                    MetaKey::L4proto,
                    MetaKey::Mark,
                    MetaKey::Len,
                    MetaKey::Iiftype,
                    MetaKey::Skuid,
                    MetaKey::Pkttype,
                    MetaKey::Protocol,
                ][self.r.below(7) as usize];
                v.push(Insn::meta(key, reg));
                key.size()
            } else {
                let len = 1 + self.r.below(4) as u8;
                let base = [
                    PayloadBase::Network,
                    PayloadBase::Transport,
                    PayloadBase::Link,
                ][self.r.below(3) as usize];
                v.push(Insn::payload(base, self.r.below(24) as u32, len, reg));
                usize::from(len)
            };
            match self.r.below(5) {
                0 => {
                    // A prefix-style mask (or a random one), then equality.
                    let mask = if self.r.chance(1, 2) {
                        let bits = self.r.below(8 * len as u64 + 1) as u32;
                        let m = if bits == 0 {
                            0
                        } else {
                            u32::MAX << (32 - bits)
                        };
                        Data::new(&m.to_be_bytes()[..len]).unwrap_or_default()
                    } else {
                        self.r.data(len)
                    };
                    v.push(Insn::Bitwise {
                        sreg: reg,
                        dreg: reg,
                        len: len as u8,
                        op: BitwiseOp::mask_xor(
                            mask,
                            if self.r.chance(1, 3) {
                                self.r.data(len)
                            } else {
                                Data::new(&vec![0; len]).unwrap_or_default()
                            },
                        ),
                    });
                    v.push(Insn::Cmp {
                        op: if self.r.chance(1, 4) {
                            CmpOp::Neq
                        } else {
                            CmpOp::Eq
                        },
                        sreg: reg,
                        data: self.r.data(len),
                    });
                }
                1 => {}
                _ => self.test(v, reg, len, chain),
            }
        }
        if self.r.chance(2, 3) {
            let c = self.counters[self.r.below(self.counters.len() as u64) as usize];
            v.push(Insn::Counter(c));
        }
        if self.r.chance(3, 4) {
            let vd = self.verdict(chain, false);
            v.push(Insn::ImmVerdict(vd));
        }
    }

    /// A rule of a classifiable run: one to four tests on fields of the program's pool (or a
    /// meta/ct key, or any matcher), then a simple tail, statements, or a verdict.
    fn class_rule(&mut self, v: &mut Vec<Insn>, chain: u32) {
        for _ in 0..1 + self.r.below(4) {
            let reg = self.reg(4);
            let len = match self.r.below(8) {
                0 => {
                    let key = [
                        MetaKey::L4proto,
                        MetaKey::Mark,
                        MetaKey::Iifname,
                        MetaKey::Len,
                    ][self.r.below(4) as usize];
                    v.push(Insn::meta(key, reg));
                    key.size()
                }
                1 => {
                    let key = [CtKey::State, CtKey::Mark, CtKey::Status, CtKey::ProtoDst]
                        [self.r.below(4) as usize];
                    v.push(Insn::Ct {
                        key,
                        dir: key.needs_dir().then_some(CtDir::Original),
                        dreg: reg,
                    });
                    key.size()
                }
                2 => {
                    self.matcher(v, chain);
                    continue;
                }
                _ => {
                    let (base, off, len) = self.pool[self.r.below(self.pool.len() as u64) as usize];
                    v.push(Insn::payload(base, off, len, reg));
                    usize::from(len)
                }
            };
            let len4 = len.min(4);
            match self.r.below(4) {
                0 => {
                    // A prefix of the first word, then (in)equality.
                    let bits = self.r.below(8 * len4 as u64 + 1) as u32;
                    let m = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    let mask = Data::new(&m.to_be_bytes()[..len4]).unwrap_or_default();
                    let mut w = [0u8; 4];
                    w[..len4].copy_from_slice(&self.r.bytes(len4));
                    let val = Data::new(&(u32::from_be_bytes(w) & m).to_be_bytes()[..len4])
                        .unwrap_or_default();
                    v.push(Insn::Bitwise {
                        sreg: reg,
                        dreg: reg,
                        len: len4 as u8,
                        op: BitwiseOp::mask_xor(
                            mask,
                            Data::new(&vec![0; len4]).unwrap_or_default(),
                        ),
                    });
                    v.push(Insn::Cmp {
                        op: if self.r.chance(1, 6) {
                            CmpOp::Neq
                        } else {
                            CmpOp::Eq
                        },
                        sreg: reg,
                        data: val,
                    });
                }
                1 => {
                    let a = self.r.bytes(len4);
                    let mut b = a.clone();
                    if let Some(x) = b.last_mut() {
                        *x = x.saturating_add(self.r.below(40) as u8);
                    }
                    if let (Some(from), Some(to)) = (Data::new(&a), Data::new(&b)) {
                        v.push(Insn::range(
                            if self.r.chance(1, 6) {
                                RangeOp::Neq
                            } else {
                                RangeOp::Eq
                            },
                            reg,
                            from,
                            to,
                        ));
                    }
                }
                _ => self.test(v, reg, len, chain),
            }
        }
        match self.r.below(4) {
            0 => {
                for _ in 0..1 + self.r.below(2) {
                    self.statement(v);
                }
            }
            1 => {}
            _ => {
                if self.r.chance(2, 3) {
                    let c = self.counters[self.r.below(self.counters.len() as u64) as usize];
                    v.push(Insn::Counter(c));
                }
            }
        }
        if self.r.chance(2, 3) {
            let vd = self.verdict(chain, false);
            v.push(Insn::ImmVerdict(vd));
        }
    }

    fn statement(&mut self, v: &mut Vec<Insn>) {
        match self.r.below(12) {
            0 | 1 => {
                let c = self.counters[self.r.below(self.counters.len() as u64) as usize];
                v.push(Insn::Counter(c));
            }
            2 => {
                let key = [
                    MetaSetKey::Mark,
                    MetaSetKey::Priority,
                    MetaSetKey::Pkttype,
                    MetaSetKey::Nftrace,
                ][self.r.below(4) as usize];
                let r = self.reg(1);
                v.push(Insn::Immediate {
                    dreg: r,
                    data: self.r.data(key.size()),
                });
                v.push(Insn::MetaSet { key, sreg: r });
            }
            3 => {
                let key = if self.r.chance(1, 2) {
                    CtSetKey::Mark
                } else {
                    CtSetKey::Zone
                };
                let r = self.reg(1);
                v.push(Insn::Immediate {
                    dreg: r,
                    data: self.r.data(key.size()),
                });
                v.push(Insn::CtSet { key, sreg: r });
            }
            4 => v.push(Insn::Log(Box::new(LogSpec {
                prefix: Some(format!("p{}", self.r.below(9))),
                ..Default::default()
            }))),
            5 => {
                let l = self.limits[self.r.below(self.limits.len() as u64) as usize];
                v.push(Insn::Limit(l));
            }
            6 => v.push(Insn::Notrack),
            7 => {
                let six = self.r.chance(1, 3);
                let a = self.reg(4);
                let pr = self.reg(1);
                v.push(Insn::Immediate {
                    dreg: a,
                    data: self.r.data(if six { 16 } else { 4 }),
                });
                v.push(Insn::Immediate {
                    dreg: pr,
                    data: self.r.data(2),
                });
                // `a` may have been overwritten by `pr`: re-immediate if they overlap.
                let overlap = pr.0 >= a.0 && pr.0 < a.0 + if six { 4 } else { 1 };
                if overlap {
                    v.pop();
                    v.push(Insn::cmp_eq(a, self.r.data(1)));
                    return;
                }
                v.push(Insn::Nat(NatSpec {
                    kind: [NatKind::Snat, NatKind::Dnat][self.r.below(2) as usize],
                    family: if six {
                        pkt::NFPROTO_IPV6
                    } else {
                        pkt::NFPROTO_IPV4
                    },
                    addr_min: Some(a),
                    addr_max: if self.r.chance(1, 2) { Some(a) } else { None },
                    proto_min: Some(pr),
                    proto_max: None,
                    flags: self.r.below(4) as u32,
                }));
            }
            8 => {
                let len = 1 + self.r.below(8) as u8;
                let r = self.reg(2);
                v.push(Insn::Immediate {
                    dreg: r,
                    data: self.r.data(usize::from(len)),
                });
                v.push(Insn::PayloadWrite {
                    base: [
                        PayloadBase::Network,
                        PayloadBase::Transport,
                        PayloadBase::Link,
                    ][self.r.below(3) as usize],
                    offset: self.r.below(60) as u32,
                    len,
                    sreg: r,
                    csum_type: 1,
                    csum_offset: 10,
                    csum_flags: 0,
                });
            }
            9 => v.push(Insn::Reject {
                ty: self.r.below(3) as u8,
                code: self.r.below(4) as u8,
            }),
            10 => v.push(Insn::Queue {
                num: self.r.below(5) as u16,
                total: 1,
                bypass: self.r.chance(1, 2),
                fanout: false,
            }),
            _ => v.push(Insn::Counter(self.counters[0])),
        }
    }
}

/// A random valid program (verification retried with fresh draws) and its base chain 0.
pub fn random_program(r: &mut Rng) -> VerifiedProgram {
    loop {
        let mut g = Gen {
            r: &mut *r,
            p: Program::new(),
            nchains: 0,
            sets: vec![],
            counters: vec![],
            limits: vec![],
            pool: vec![],
        };
        for _ in 0..1 + g.r.below(4) {
            let base = [
                PayloadBase::Network,
                PayloadBase::Transport,
                PayloadBase::Link,
            ][g.r.below(3) as usize];
            let len = [1u8, 2, 4, 4, 6, 16][g.r.below(6) as usize];
            g.pool.push((base, g.r.below(24) as u32, len));
        }
        let policy = if g.r.chance(1, 2) {
            Policy::Accept
        } else {
            Policy::Drop
        };
        g.p.add_base_chain("base", Hook::Input, 0, policy);
        let nuser = g.r.below(5) as u32;
        for i in 0..nuser {
            g.p.add_chain(&format!("u{i}"));
        }
        g.nchains = 1 + nuser;
        for _ in 0..4 {
            let c = g.p.add_counter();
            g.counters.push(c);
        }
        for _ in 0..2 {
            let bytes = g.r.chance(1, 3);
            let l = g.p.add_limit(LimitSpec {
                rate: 1 + g.r.below(5),
                unit: 1,
                burst: g.r.below(4) as u32,
                ty: if bytes {
                    LimitType::Bytes
                } else {
                    LimitType::Packets
                },
                invert: g.r.chance(1, 3),
            });
            g.limits.push(l);
        }
        g.make_sets();
        for c in 0..g.nchains {
            let nrules = g.r.below(9);
            for _ in 0..nrules {
                if g.r.chance(1, 5) {
                    // A run for a classifier.
                    for _ in 0..4 + g.r.below(40) {
                        let mut v = Vec::new();
                        g.class_rule(&mut v, c);
                        g.p.add_rule(ChainId(c), v);
                    }
                    continue;
                }
                if g.r.chance(1, 4) {
                    // A run of table-shaped rules.
                    for _ in 0..2 + g.r.below(8) {
                        let mut v = Vec::new();
                        g.table_rule(&mut v, c);
                        g.p.add_rule(ChainId(c), v);
                    }
                    continue;
                }
                let mut v = Vec::new();
                for _ in 0..g.r.below(3) {
                    g.matcher(&mut v, c);
                }
                for _ in 0..g.r.below(3) {
                    g.statement(&mut v);
                }
                if g.r.chance(2, 3) {
                    let vd = g.verdict(c, false);
                    v.push(Insn::ImmVerdict(vd));
                }
                g.p.add_rule(ChainId(c), v);
            }
        }
        if let Ok(p) = g.p.verify() {
            return p;
        }
    }
}

/// The same program with classifiers over every run of at least `min_rules` rules (default
/// options otherwise).
pub fn classified(prog: &VerifiedProgram, min_rules: usize) -> VerifiedProgram {
    let mut p = prog.program().clone();
    p.classify(&nfr_vm::classify::ClassifyOptions {
        min_rules,
        ..Default::default()
    });
    p.verify().expect("classifiers verify")
}

/// The same program with classifiers over its runs, built with random small options (so that
/// trees, groups, lists and the byte cap all get exercised).
pub fn with_classifiers(prog: &VerifiedProgram, r: &mut Rng) -> VerifiedProgram {
    let mut p = prog.program().clone();
    let opts = nfr_vm::classify::ClassifyOptions {
        min_rules: 1 + r.below(4) as usize,
        binth: 1 + r.below(8) as usize,
        spfac10: 10 + r.below(40) as u32,
        max_bytes: if r.chance(1, 4) {
            r.below(4096) as usize
        } else {
            1 << 24
        },
    };
    p.classify(&opts);
    p.verify().expect("classifiers verify")
}

/// Move half of the packets into the cube of a random entry of a random classifier of `prog`
/// (payload bytes, meta mark and l4proto, ct state, mark and status), so that lookups hit rules
/// and not only the policy.
pub fn aim_packets(prog: &VerifiedProgram, pkts: &mut [(Vec<u8>, PktState)], r: &mut Rng) {
    use nfr_vm::classify::Field;
    let cls = &prog.program().classifiers;
    if cls.is_empty() {
        return;
    }
    for (bytes, st) in pkts.iter_mut() {
        if r.chance(1, 2) {
            continue;
        }
        let c = &cls[r.below(cls.len() as u64) as usize];
        let Some(t) = c.trees.get(r.below(c.trees.len() as u64) as usize) else {
            continue;
        };
        let nd = c.dims.len();
        let qw = nfr_vm::classify::quad_words(nd);
        // A random leaf: walk the leaf array from leaf to leaf.
        let mut off = 0usize;
        let mut leaves = Vec::new();
        while off < t.leaves.len() {
            leaves.push(off);
            off += 1 + t.leaves[off] as usize * qw;
        }
        let lo = leaves[r.below(leaves.len() as u64) as usize];
        let g = t.leaves[lo] as usize;
        if g == 0 {
            continue;
        }
        let q = &t.leaves[lo + 1 + r.below(g as u64) as usize * qw..][..qw];
        let j = r.below(nfr_vm::classify::QUAD as u64) as usize;
        if q[j] == nfr_vm::classify::NONE {
            continue;
        }
        for (d, dim) in c.dims.iter().enumerate() {
            let at = nfr_vm::classify::QUAD * (1 + 2 * d);
            let (l, w) = (
                q[at + j],
                q[at + nfr_vm::classify::QUAD + j] ^ nfr_vm::classify::BIAS,
            );
            let v = match r.below(3) {
                0 => l,
                1 => l.wrapping_add(w),
                _ => l.wrapping_add((r.next() as u32) % w.saturating_add(1).max(1)),
            };
            let len = dim.field.len();
            let keep = |old: u32| (old & !dim.mask) | (v & dim.mask);
            match dim.field {
                Field::Payload { base, off, .. } => {
                    let b = match base {
                        PayloadBase::Network => usize::from(st.nhoff),
                        PayloadBase::Transport => usize::from(st.thoff),
                        PayloadBase::Link => usize::from(st.lloff),
                    } + off as usize;
                    if let Some(dst) = bytes.get_mut(b..b + len) {
                        let old = dst.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
                        let nv = keep(old);
                        for (i, x) in dst.iter_mut().enumerate() {
                            *x = (nv >> (8 * (len - 1 - i))) as u8;
                        }
                    }
                }
                Field::Meta {
                    key: MetaKey::Mark, ..
                } => {
                    st.mark = keep(st.mark.swap_bytes()).swap_bytes();
                }
                Field::Meta {
                    key: MetaKey::L4proto,
                    ..
                } => st.l4proto = keep(u32::from(st.l4proto)) as u8,
                Field::Ct {
                    key: CtKey::State, ..
                } => {
                    st.ct_state = keep(st.ct_state.swap_bytes()).swap_bytes();
                }
                Field::Ct {
                    key: CtKey::Mark, ..
                } => {
                    st.ct_mark = keep(st.ct_mark.swap_bytes()).swap_bytes();
                }
                Field::Ct {
                    key: CtKey::Status, ..
                } => {
                    st.ct_status = keep(st.ct_status.swap_bytes()).swap_bytes();
                }
                _ => {}
            }
        }
    }
}

/// `n` whole packets (60 to 120 bytes, no truncation) aimed at `prog`'s classifiers.
pub fn aimed_set(prog: &VerifiedProgram, r: &mut Rng, n: usize) -> Vec<(Vec<u8>, PktState)> {
    let mut out: Vec<_> = (0..n)
        .map(|_| {
            let len = 60 + r.below(61) as usize;
            (random_packet(r, len), random_pkt_state(r, len))
        })
        .collect();
    for _ in 0..3 {
        aim_packets(prog, &mut out, r);
    }
    out
}

/// A random packet state for a packet of `len` bytes.
pub fn random_pkt_state(r: &mut Rng, len: usize) -> PktState {
    let has_ll = r.chance(1, 3);
    let nhoff = if has_ll { 14 } else { 0 };
    let v6 = r.chance(1, 3);
    let mut st = PktState {
        lloff: 0,
        nhoff,
        thoff: nhoff + if v6 { 40 } else { 20 },
        fragoff: if r.chance(1, 8) { 8 } else { 0 },
        has_ll,
        has_th: r.chance(3, 4),
        is_fragment: false,
        l4proto: [6u8, 17, 1, 58][r.below(4) as usize],
        nfproto: if v6 {
            pkt::NFPROTO_IPV6
        } else {
            pkt::NFPROTO_IPV4
        },
        pkttype: r.below(4) as u8,
        protocol: if v6 { 0x86dd } else { 0x0800 },
        len: len as u32,
        iif: r.below(3) as u32,
        oif: r.below(3) as u32,
        iifname: ifname(["eth0", "lo", ""][r.below(3) as usize]),
        oifname: ifname(["eth1", "lo", ""][r.below(3) as usize]),
        iiftype: r.below(2) as u16,
        oiftype: 772,
        mark: [0u32, 1, 0x45, 0xff00_0000][r.below(4) as usize],
        has_sk: r.chance(1, 2),
        sk_uid: r.below(3) as u32,
        sk_gid: r.below(3) as u32,
        tstamp_ns: 0,
        ..Default::default()
    };
    if r.chance(2, 3) {
        st.ct_valid = true;
        st.ct_state =
            [ct_state::NEW, ct_state::ESTABLISHED, ct_state::RELATED][r.below(3) as usize];
        st.ct_status = r.below(16) as u32;
        st.ct_mark = r.below(3) as u32;
        st.ct_direction = r.below(2) as u8;
        st.ct_zone = r.below(3) as u16;
        st.ct_zone_dir = r.below(4) as u8;
        st.ct_expiration_ms = r.below(1000) as u32;
        st.ct_id = r.below(5) as u32;
        if r.chance(1, 2) {
            st.ct_helper = ifname("ftp");
        }
        st.ct_l3proto = [pkt::NFPROTO_IPV4, pkt::NFPROTO_IPV6, 0][r.below(3) as usize];
        st.ct_protocol = st.l4proto;
        let mut t = || CtTuple {
            src: std::array::from_fn(|_| r.byte()),
            dst: std::array::from_fn(|_| r.byte()),
            src_port: r.below(3) as u16 * 0x101,
            dst_port: 22,
        };
        st.ct_orig = t();
        st.ct_reply = t();
    } else if r.chance(1, 4) {
        st.ct_state = ct_state::UNTRACKED;
    }
    st
}

/// Random packet bytes of `len` (small alphabet, sometimes a real-looking IPv4/TCP head).
pub fn random_packet(r: &mut Rng, len: usize) -> Vec<u8> {
    let mut p = r.bytes(len);
    if r.chance(1, 2) && len > 34 {
        p[14] = 0x45;
        p[0] = 0x45;
        p[47.min(len - 1)] = 0x50;
    }
    p
}

/// Outcome of one run.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub st: PktState,
    pub fx: Effects,
}

/// Run a sequence of packets through both engines (state carried across packets, as a
/// runtime would), comparing after each. `Err` describes the first mismatch.
pub fn compare(
    prog: &VerifiedProgram,
    jit: &JitProgram,
    pkts: &[(Vec<u8>, PktState)],
) -> Result<usize, String> {
    compare_with(
        prog,
        |s, c, b, st, fx| prog.run(s, c, b, st, fx),
        |s, c, b, st, fx| jit.run(s, c, b, st, fx),
        pkts,
    )
}

/// One engine's `run`.
pub trait RunFn: Fn(&mut State, ChainId, &[u8], &mut PktState, &mut Effects) -> Verdict {}
impl<F: Fn(&mut State, ChainId, &[u8], &mut PktState, &mut Effects) -> Verdict> RunFn for F {}

/// [`compare`] for any two engines over programs with `prog`'s counters and limits (`a` is
/// reported as "interp", `b` as "jit").
pub fn compare_with(
    prog: &VerifiedProgram,
    a: impl RunFn,
    b: impl RunFn,
    pkts: &[(Vec<u8>, PktState)],
) -> Result<usize, String> {
    let mut si = State::new(prog);
    let mut sj = State::new(prog);
    for (n, (bytes, st0)) in pkts.iter().enumerate() {
        let (mut sti, mut stj) = (st0.clone(), st0.clone());
        let (mut fi, mut fj) = (Effects::default(), Effects::default());
        let vi = a(&mut si, ChainId(0), bytes, &mut sti, &mut fi);
        let vj = b(&mut sj, ChainId(0), bytes, &mut stj, &mut fj);
        let oi = Outcome {
            verdict: vi,
            st: sti,
            fx: fi,
        };
        let oj = Outcome {
            verdict: vj,
            st: stj,
            fx: fj,
        };
        if oi != oj
            || si.counters != sj.counters
            || si.limits != sj.limits
            || si.numgen != sj.numgen
            || si.prandom != sj.prandom
        {
            return Err(format!(
                "packet #{n} ({} bytes {:02x?}):\n interp {oi:?}\n jit    {oj:?}\n counters {:?} vs {:?}\n limits {:?} vs {:?}",
                bytes.len(),
                bytes,
                si.counters,
                sj.counters,
                si.limits,
                sj.limits
            ));
        }
    }
    Ok(pkts.len())
}

/// Packets for one program: a few base packets, each with every truncation.
pub fn packet_set(r: &mut Rng, nbase: usize) -> Vec<(Vec<u8>, PktState)> {
    let mut out = Vec::new();
    let mut t = 0u64;
    for _ in 0..nbase {
        let len = r.below(72) as usize;
        let full = random_packet(r, len);
        let st = random_pkt_state(r, len);
        for cut in 0..=len {
            let mut s = st.clone();
            s.len = cut as u32;
            t += r.below(400_000_000);
            s.tstamp_ns = t;
            out.push((full[..cut].to_vec(), s));
        }
    }
    out
}

/// One `jit_diff` fuzz input (also replayed by `tests/fuzz_seeds.rs`): byte 0 picks the
/// options — bit 0 opt level none/speed, bit 1 tiny partitions (3 insns), bit 2 classifiers
/// over the program's runs (built with random options, see [`with_classifiers`]), bit 3 the
/// shared walk instead of the native one — and the
/// rest is the generator's tape. Compiles the program (IR verifier on) and compares the JIT
/// with the interpreter walking the chains rule by rule, on six base packets with every
/// truncation (and, with classifiers, aimed packets). `Ok(pairs)`, or what went wrong (a
/// verified program that does not compile is an error too).
pub fn diff_input(data: &[u8]) -> Result<usize, String> {
    let Some((&flags, tape)) = data.split_first() else {
        return Ok(0);
    };
    let opts = crate::JitOptions {
        opt_level: if flags & 1 == 0 {
            crate::OptLevel::None
        } else {
            crate::OptLevel::Speed
        },
        partition_insns: if flags & 2 != 0 { 3 } else { 2048 },
        verify_ir: true,
        native_walk: flags & 8 == 0,
    };
    let mut r = Rng::from_tape(tape);
    let prog = random_program(&mut r);
    let compiled = if flags & 4 != 0 {
        with_classifiers(&prog, &mut r)
    } else {
        prog.clone()
    };
    let jit = JitProgram::compile_with(&compiled, &opts)
        .map_err(|e| format!("a verified program does not compile: {e}"))?;
    // Compiling dominates: give each program many packets.
    let mut pkts = packet_set(&mut r, 6);
    if flags & 4 != 0 {
        aim_packets(&compiled, &mut pkts, &mut r);
        pkts.extend(aimed_set(&compiled, &mut r, 32));
    }
    compare(&prog, &jit, &pkts).map_err(|e| {
        format!(
            "jit != interp: {e}\nprogram:\n{}",
            nfr_vm::print::print_program(prog.program())
        )
    })
}

/// A random program, the same program with classifiers built with random options, and packets
/// for them: `nbase` base packets with every truncation, some moved into classifier cubes, and
/// `naimed` more aimed at their leaves.
pub fn classified_case(
    r: &mut Rng,
    nbase: usize,
    naimed: usize,
) -> (VerifiedProgram, VerifiedProgram, Vec<(Vec<u8>, PktState)>) {
    let prog = random_program(r);
    let cls = with_classifiers(&prog, r);
    let mut pkts = packet_set(r, nbase);
    aim_packets(&cls, &mut pkts, r);
    pkts.extend(aimed_set(&cls, r, naimed));
    (prog, cls, pkts)
}

/// The interpreter's walk of `cls`'s classifiers against its rule-by-rule scan of `prog` on
/// `pkts` (see [`compare_with`]): `Ok(pairs)`, or the first difference with the program.
pub fn compare_classified(
    prog: &VerifiedProgram,
    cls: &VerifiedProgram,
    pkts: &[(Vec<u8>, PktState)],
) -> Result<usize, String> {
    compare_with(
        prog,
        |s, c, b, st, fx| prog.run(s, c, b, st, fx),
        |s, c, b, st, fx| cls.run(s, c, b, st, fx),
        pkts,
    )
    .map_err(|e| {
        format!(
            "linear != classified (\"jit\" below is the classified walk): {e}\nprogram:\n{}\nclassifiers: {:#?}",
            nfr_vm::print::print_program(prog.program()),
            cls.program().classifiers
        )
    })
}

/// One `classify` fuzz input (also replayed by `tests/fuzz_seeds.rs`): the whole input is the
/// generator's tape for [`classified_case`], compared by [`compare_classified`].
pub fn classify_input(data: &[u8]) -> Result<usize, String> {
    let (prog, cls, pkts) = classified_case(&mut Rng::from_tape(data), 2, 64);
    compare_classified(&prog, &cls, &pkts)
}
