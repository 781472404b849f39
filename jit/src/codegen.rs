//! Program → Cranelift IR. One function per *partition* (a run of consecutive rules of one
//! chain, at most `JitOptions::partition_insns` instructions) so that compile time stays
//! linear in the ruleset size.
//!
//! Signature (the host's C convention): `(env, pkt, len, st, start) -> code`, see `native`.
//! Layout: the entry block loads the payload base offsets the partition needs and the packet
//! fields loaded by at least two rules (branch-free, `bounds::clamped_addr`), then a `br_table`
//! on `start` enters rule block `start` (resume after a jump) or the end block. Each rule is a
//! straight line of instruction blocks; every failing test (NFT_BREAK) branches to the next
//! rule's block; a verdict returns its code (after storing the resume position).
//!
//! Register domain: each of the 16 VM registers is one `Variable` of type i32 holding the
//! register's four bytes *as a big-endian number* (first byte in the top bits), i.e.
//! `u32::from_be_bytes(bytes)` where the interpreter keeps `u32::from_le_bytes(bytes)`. With
//! this, packet loads are plain big-endian loads, memcmp order is unsigned integer order (cmp,
//! range and set lookups compare words directly), and helper calls exchange words with the
//! interpreter's register file in `Env::regs` (`Tx::helper` converts). `verify` guarantees
//! that a rule reads only registers it wrote itself, so no value is live across rules.

use crate::bounds::{self, PktArgs};
use crate::env::{self, Env, verdict_code};
use crate::runs::{FAST, NEED_SHIFT, Plan, ROW, Run, WRITES};
use cranelift_codegen::ir::{
    AbiParam, Block, Function, InstBuilder, JumpTableData, MemFlagsData, SigRef, Signature,
    StackSlot, StackSlotData, StackSlotKind, Value, condcodes::IntCC, types,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use nfr_vm::classify::{BIAS, Classifier, Field, LEAF, MAX_DIMS, NONE, node_parts, quad_words};
use nfr_vm::insn::{
    BitwiseOp, CmpOp, CtDir, CtKey, Data, Insn, LookupDest, MetaKey, PayloadBase, RangeOp,
};
use nfr_vm::pkt::{self, CtTuple, PktState};
use nfr_vm::program::{ElemData, SetDataType, SetKind};
use nfr_vm::{ChainVerdict, Reg, VerifiedProgram};
use std::collections::HashMap;
use std::mem::offset_of;

/// A partition: rules `start..end` (positions in the chain's rule list) of `chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Part {
    pub chain: u32,
    pub start: u32,
    pub end: u32,
}

/// Split every chain into partitions of at most `max_insns` instructions (at least one rule);
/// every run of `plan` is a partition of its own.
pub(crate) fn partition(prog: &VerifiedProgram, plan: &Plan, max_insns: usize) -> Vec<Part> {
    let mut out = Vec::new();
    for c in 0..prog.program().chains.len() as u32 {
        let rules = prog.chain_rules(nfr_vm::ChainId(c));
        let mut start = 0usize;
        let mut n = 0usize;
        let mut i = 0usize;
        while i < rules.len() {
            if let Some(run) = plan.run_at(c, i as u32) {
                // A run is a partition of its own: entered at its row, no br_table (a jump
                // table with an entry per rule would cost Cranelift time per rule again).
                if i > start {
                    out.push(Part {
                        chain: c,
                        start: start as u32,
                        end: i as u32,
                    });
                }
                let end = (run.end as usize).clamp(i + 1, rules.len());
                out.push(Part {
                    chain: c,
                    start: i as u32,
                    end: end as u32,
                });
                (start, n, i) = (end, 0, end);
                continue;
            }
            let (k, next) = ((rules[i].end - rules[i].start) as usize, i + 1);
            if i > start && n + k > max_insns {
                out.push(Part {
                    chain: c,
                    start: start as u32,
                    end: i as u32,
                });
                start = i;
                n = 0;
            }
            n += k;
            i = next;
        }
        if start < rules.len() {
            out.push(Part {
                chain: c,
                start: start as u32,
                end: rules.len() as u32,
            });
        }
    }
    out
}

/// The partition signature.
pub(crate) fn part_signature(cc: CallConv) -> Signature {
    let mut s = Signature::new(cc);
    for t in [types::I64, types::I64, types::I64, types::I64, types::I32] {
        s.params.push(AbiParam::new(t));
    }
    s.returns.push(AbiParam::new(types::I32));
    s
}

fn helper_signature(cc: CallConv) -> Signature {
    let mut s = Signature::new(cc);
    for t in [types::I64, types::I64, types::I32, types::I32] {
        s.params.push(AbiParam::new(t));
    }
    s.returns.push(AbiParam::new(types::I32));
    s
}

/// Sets with at most this many elements (and keys of at most 4 bytes) become compare trees.
pub(crate) const INLINE_SET_MAX: usize = 64;
/// Tree steps a classified run's walk unrolls before its loop.
const UNROLL: usize = 6;
/// At most this many packet fields are hoisted into the entry block.
const MAX_HOISTED: usize = 16;

/// Fill `func` (whose signature is already set) with the code of partition `part`.
pub(crate) fn build(
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    prog: &VerifiedProgram,
    plan: &Plan,
    part: Part,
    cc: CallConv,
    fe: TargetFrontendConfig,
) {
    let hsig = func.import_signature(helper_signature(cc));
    let mut b = FunctionBuilder::new(func, fctx);
    let regs: [Variable; 16] = std::array::from_fn(|_| b.declare_var(types::I32));
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let p = b.block_params(entry).to_vec();
    let (env, a, start) = (
        p[0],
        PktArgs {
            pkt: p[1],
            len: p[2],
            st: p[3],
        },
        p[4],
    );
    let rules = prog
        .chain_rules(nfr_vm::ChainId(part.chain))
        .get(part.start as usize..part.end as usize)
        .unwrap_or(&[]);
    let insns = &prog.program().insns;

    if let Some(run) = plan
        .run_at(part.chain, part.start)
        .filter(|r| r.end == part.end)
    {
        // A classified run is a partition of its own.
        let zero = bounds::zero_addr(&mut b);
        let mut tx = Tx {
            b,
            prog,
            a,
            env,
            regs,
            bases: [None; 3],
            cache: HashMap::new(),
            hsig,
            zero,
        };
        tx.classified(plan, run, start);
        tx.b.seal_all_blocks();
        tx.b.finalize(fe);
        return;
    }

    // Which payload bases are used, and which (base, off, len) fields by 2+ rules.
    let mut uses: HashMap<(PayloadBase, u32, u8), usize> = HashMap::new();
    let mut used_base = [false; 3];
    for r in rules {
        let mut seen = Vec::new();
        for insn in insns.get(r.start as usize..r.end as usize).unwrap_or(&[]) {
            if let Insn::Payload {
                base, offset, len, ..
            } = insn
            {
                used_base[base_ix(*base)] = true;
                if matches!(len, 1 | 2 | 4) && !seen.contains(&(*base, *offset, *len)) {
                    seen.push((*base, *offset, *len));
                    *uses.entry((*base, *offset, *len)).or_default() += 1;
                }
            }
        }
    }
    let mut bases = [None; 3];
    for pb in [
        PayloadBase::Link,
        PayloadBase::Network,
        PayloadBase::Transport,
    ] {
        if used_base[base_ix(pb)] {
            bases[base_ix(pb)] = Some(bounds::base(&mut b, a, pb));
        }
    }
    let mut hot: Vec<_> = uses.into_iter().filter(|(_, n)| *n >= 2).collect();
    hot.sort_by(|x, y| y.1.cmp(&x.1).then(key_ord(&x.0).cmp(&key_ord(&y.0))));
    hot.truncate(MAX_HOISTED);
    let zero = bounds::zero_addr(&mut b);
    let mut cache = HashMap::new();
    for ((pb, off, len), _) in hot {
        if let Some(bv) = bases[base_ix(pb)] {
            let (ok, addr) = bounds::clamped_addr(&mut b, a, bv, off, len, zero);
            let w = bounds::load_words(&mut b, addr, len);
            cache.insert((pb, off, len), (ok, w[0]));
        }
    }

    // One block per rule plus the end block; the br_table enters rule `start`.
    let blocks: Vec<Block> = (0..=rules.len()).map(|_| b.create_block()).collect();
    let end = blocks[rules.len()];
    let table: Vec<_> = blocks[..rules.len()]
        .iter()
        .map(|&bl| b.func.dfg.block_call(bl, &[]))
        .collect();
    let def = b.func.dfg.block_call(end, &[]);
    let jt = b.create_jump_table(JumpTableData::new(def, &table));
    b.ins().br_table(start, jt);

    let mut tx = Tx {
        b,
        prog,
        a,
        env,
        regs,
        bases,
        cache,
        hsig,
        zero,
    };
    for (s, r) in rules.iter().enumerate() {
        let blk = blocks[s];
        tx.b.switch_to_block(blk);
        tx.b.seal_block(blk);
        let pos = part.start + s as u32;
        tx.rule(r.start, r.end, r.id.0, pos, blocks[s + 1]);
    }
    tx.b.switch_to_block(end);
    tx.b.seal_block(end);
    let c = tx.b.ins().iconst(types::I32, i64::from(env::C_END));
    tx.b.ins().return_(&[c]);
    tx.b.seal_all_blocks();
    tx.b.finalize(fe);
}

/// Fields whose word the code generator loads for a classifier key (the others go through the
/// interpreter's key reader, `env::h_first`).
fn native_field(f: Field) -> bool {
    match f {
        Field::Payload { .. } | Field::Meta { .. } => true,
        Field::Ct { key, .. } => matches!(
            key,
            CtKey::State
                | CtKey::Direction
                | CtKey::Status
                | CtKey::Mark
                | CtKey::Expiration
                | CtKey::L3protocol
                | CtKey::Protocol
                | CtKey::Id
                | CtKey::ProtoSrc
                | CtKey::ProtoDst
        ),
    }
}

fn base_ix(b: PayloadBase) -> usize {
    match b {
        PayloadBase::Link => 0,
        PayloadBase::Network => 1,
        PayloadBase::Transport => 2,
    }
}

fn key_ord(k: &(PayloadBase, u32, u8)) -> (usize, u32, u8) {
    (base_ix(k.0), k.1, k.2)
}

/// Register-domain words of constant data (zero-padded big-endian numbers).
fn dom(d: &Data) -> Vec<u32> {
    d.bytes()
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_be_bytes(w)
        })
        .collect()
}

/// Mask keeping the first `len` bytes (1..=4) of a domain word.
fn top_mask(len: usize) -> u32 {
    if len >= 4 {
        u32::MAX
    } else {
        !(u32::MAX >> (8 * len))
    }
}

/// An i32 immediate (zero-extended, the canonical form of a masked immediate).
fn k(v: u32) -> i64 {
    i64::from(v)
}

fn fl() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

struct Tx<'p, 'b> {
    b: FunctionBuilder<'b>,
    prog: &'p VerifiedProgram,
    a: PktArgs,
    env: Value,
    regs: [Variable; 16],
    bases: [Option<(Value, Value)>; 3],
    cache: HashMap<(PayloadBase, u32, u8), (Value, Value)>,
    hsig: SigRef,
    /// `bounds::zero_addr`: target of clamped loads.
    zero: Value,
}

/// Did the instruction end the rule (the current block is terminated)?
enum Flow {
    Go,
    Ended,
}

impl Tx<'_, '_> {
    fn rule(&mut self, start: u32, end: u32, rule_id: u32, pos: u32, next: Block) {
        for idx in start..end {
            let Some(insn) = self.prog.program().insns.get(idx as usize) else {
                break;
            };
            if let Flow::Ended = self.insn(insn, idx, rule_id, pos, next) {
                return;
            }
        }
        self.b.ins().jump(next, &[]);
    }

    /// Continue in a fresh block when `ok` is true, otherwise go to `next` (NFT_BREAK).
    fn guard(&mut self, ok: Value, next: Block) {
        let cont = self.b.create_block();
        self.b.ins().brif(ok, cont, &[], next, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    /// Leave the partition with `code` (resume position = the rule after `pos`).
    fn ret(&mut self, code: Value, pos: u32) {
        let r = self.b.ins().iconst(types::I32, i64::from(pos + 1));
        self.b.ins().store(
            MemFlagsData::trusted(),
            r,
            self.env,
            offset_of!(Env, resume) as i32,
        );
        self.b.ins().return_(&[code]);
    }

    /// A static verdict.
    fn verdict(&mut self, v: ChainVerdict, pos: u32, next: Block) -> Flow {
        match v {
            ChainVerdict::Continue => Flow::Go,
            ChainVerdict::Break => {
                self.b.ins().jump(next, &[]);
                Flow::Ended
            }
            v => {
                let (code, chain) = verdict_code(v);
                if let Some(c) = chain {
                    let c = self.b.ins().iconst(types::I32, k(c));
                    self.b.ins().store(
                        MemFlagsData::trusted(),
                        c,
                        self.env,
                        offset_of!(Env, jump_chain) as i32,
                    );
                }
                let code = self.b.ins().iconst(types::I32, k(code));
                self.ret(code, pos);
                Flow::Ended
            }
        }
    }

    /// A dynamic code (from a helper): continue, break, or leave.
    fn dispatch(&mut self, code: Value, pos: u32, next: Block) {
        let cont = self.b.create_block();
        let chk = self.b.create_block();
        let out = self.b.create_block();
        let is_cont = self
            .b
            .ins()
            .icmp_imm_u(IntCC::Equal, code, k(env::C_CONTINUE));
        self.b.ins().brif(is_cont, cont, &[], chk, &[]);
        self.b.switch_to_block(chk);
        self.b.seal_block(chk);
        let is_break = self.b.ins().icmp_imm_u(IntCC::Equal, code, k(env::C_BREAK));
        self.b.ins().brif(is_break, next, &[], out, &[]);
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.ret(code, pos);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    fn set_words(&mut self, reg: Reg, words: &[Value]) {
        for (i, w) in words.iter().enumerate() {
            if let Some(v) = self.regs.get(usize::from(reg.0) + i) {
                self.b.def_var(*v, *w);
            }
        }
    }

    /// The words of a `len`-byte value in `reg`, the last one masked to its bytes.
    fn get_words(&mut self, reg: Reg, len: usize) -> Vec<Value> {
        let n = len.div_ceil(4);
        (0..n)
            .map(|i| {
                let v = self.b.use_var(self.regs[(usize::from(reg.0) + i) & 15]);
                let m = top_mask(len - i * 4);
                if m == u32::MAX {
                    v
                } else {
                    self.b.ins().band_imm_u(v, k(m))
                }
            })
            .collect()
    }

    fn iconst(&mut self, v: u32) -> Value {
        self.b.ins().iconst(types::I32, k(v))
    }

    // ---- PktState field loads, converted to the register domain ----

    /// A host-order u32 field (the interpreter's word is the value: bytes `to_le_bytes`).
    fn host32(&mut self, off: usize) -> Value {
        let v = self.b.ins().load(types::I32, fl(), self.a.st, off as i32);
        self.b.ins().bswap(v)
    }

    /// A host-order u16 field stored as a word (bytes `to_le_bytes`, zero-padded).
    fn host16(&mut self, off: usize) -> Value {
        let v = self
            .b
            .ins()
            .uload16(types::I32, fl(), self.a.st, off as i32);
        self.b.ins().bswap(v)
    }

    /// A host-order u16 field whose *big-endian* bytes are the register bytes (ports, protocol).
    fn be16(&mut self, off: usize) -> Value {
        let v = self
            .b
            .ins()
            .uload16(types::I32, fl(), self.a.st, off as i32);
        self.b.ins().ishl_imm_u(v, 16)
    }

    fn u8f(&mut self, off: usize) -> Value {
        let v = self.b.ins().uload8(types::I32, fl(), self.a.st, off as i32);
        self.b.ins().ishl_imm_u(v, 24)
    }

    /// A non-zero test of a u8/bool field.
    fn flag(&mut self, off: usize) -> Value {
        let v = self.b.ins().uload8(types::I32, fl(), self.a.st, off as i32);
        self.b.ins().icmp_imm_u(IntCC::NotEqual, v, 0)
    }

    /// `n` words of a byte array field.
    fn bytes(&mut self, off: usize, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let v = self
                    .b
                    .ins()
                    .load(types::I32, fl(), self.a.st, (off + 4 * i) as i32);
                self.b.ins().bswap(v)
            })
            .collect()
    }

    // ---- instructions ----

    fn insn(&mut self, insn: &Insn, idx: u32, rule_id: u32, pos: u32, next: Block) -> Flow {
        match insn {
            Insn::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                if let Some(&(ok, w)) = self.cache.get(&(*base, *offset, *len)) {
                    self.guard(ok, next);
                    self.set_words(*dreg, &[w]);
                } else if let Some(bv) = self.bases[base_ix(*base)] {
                    let (ok, addr) = bounds::checked_addr(&mut self.b, self.a, bv, *offset, *len);
                    self.guard(ok, next);
                    let w = bounds::load_words(&mut self.b, addr, *len);
                    self.set_words(*dreg, &w);
                } else {
                    self.b.ins().jump(next, &[]);
                    return Flow::Ended;
                }
            }
            Insn::Cmp { op, sreg, data } => {
                let a = self.get_words(*sreg, data.len());
                let c = dom(data);
                let ok = match op {
                    CmpOp::Eq | CmpOp::Neq => {
                        let mut eq = None;
                        for (x, y) in a.iter().zip(&c) {
                            let e = self.b.ins().icmp_imm_u(IntCC::Equal, *x, k(*y));
                            eq = Some(match eq {
                                None => e,
                                Some(p) => self.b.ins().band(p, e),
                            });
                        }
                        let eq = eq.unwrap_or_else(|| self.b.ins().iconst(types::I8, 1));
                        if *op == CmpOp::Eq {
                            eq
                        } else {
                            self.b.ins().bxor_imm_u(eq, 1)
                        }
                    }
                    _ => {
                        let (lt, gt) = self.memcmp(&a, &c);
                        match op {
                            CmpOp::Lt => lt,
                            CmpOp::Gt => gt,
                            CmpOp::Lte => self.b.ins().bxor_imm_u(gt, 1),
                            _ => self.b.ins().bxor_imm_u(lt, 1),
                        }
                    }
                };
                self.guard(ok, next);
            }
            Insn::Range { op, sreg, bounds } => {
                let (from, to) = (&bounds.from, &bounds.to);
                let a = self.get_words(*sreg, from.len());
                let (f, t) = (dom(from), dom(to));
                let inside = if a.len() == 1 {
                    // from <= v <= to  ⇔  (v - from) <= (to - from), unsigned, when from <= to;
                    // when from > to nothing is inside.
                    if f[0] > t[0] {
                        self.b.ins().iconst(types::I8, 0)
                    } else {
                        let d = self.b.ins().iadd_imm_u(a[0], k(f[0].wrapping_neg()));
                        self.b
                            .ins()
                            .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, d, k(t[0] - f[0]))
                    }
                } else {
                    let (lt, _) = self.memcmp(&a, &f);
                    let (_, gt) = self.memcmp(&a, &t);
                    let out = self.b.ins().bor(lt, gt);
                    self.b.ins().bxor_imm_u(out, 1)
                };
                let ok = match op {
                    RangeOp::Eq => inside,
                    RangeOp::Neq => self.b.ins().bxor_imm_u(inside, 1),
                };
                self.guard(ok, next);
            }
            Insn::Bitwise {
                sreg,
                dreg,
                len,
                op,
            } => {
                let n = usize::from(*len).div_ceil(4);
                let src: Vec<Value> = (0..n)
                    .map(|i| self.b.use_var(self.regs[(usize::from(sreg.0) + i) & 15]))
                    .collect();
                let out: Vec<Value> = match op {
                    BitwiseOp::MaskXor(mx) => {
                        let (mask, xor) = (&mx.mask, &mx.xor);
                        let (m, x) = (dom(mask), dom(xor));
                        src.iter()
                            .enumerate()
                            .map(|(i, s)| {
                                let mi = m.get(i).copied().unwrap_or(0);
                                let xi = x.get(i).copied().unwrap_or(0);
                                let v = if mi == u32::MAX {
                                    *s
                                } else {
                                    self.b.ins().band_imm_u(*s, k(mi))
                                };
                                if xi == 0 {
                                    v
                                } else {
                                    self.b.ins().bxor_imm_u(v, k(xi))
                                }
                            })
                            .collect()
                    }
                    BitwiseOp::Lshift(sh) | BitwiseOp::Rshift(sh) => {
                        // Shifts work on the interpreter's (little-endian) word values.
                        let sh = i64::from(*sh);
                        let w: Vec<Value> = src.iter().map(|s| self.b.ins().bswap(*s)).collect();
                        let mut out = vec![w[0]; n];
                        let left = matches!(op, BitwiseOp::Lshift(_));
                        let mut carry: Option<Value> = None;
                        let order: Vec<usize> = if left {
                            (0..n).rev().collect()
                        } else {
                            (0..n).collect()
                        };
                        for i in order {
                            let s = if left {
                                self.b.ins().ishl_imm_u(w[i], sh)
                            } else {
                                self.b.ins().ushr_imm_u(w[i], sh)
                            };
                            let v = match carry {
                                Some(c) => self.b.ins().bor(s, c),
                                None => s,
                            };
                            out[i] = self.b.ins().bswap(v);
                            carry = if sh == 0 {
                                None
                            } else if left {
                                Some(self.b.ins().ushr_imm_u(w[i], 32 - sh))
                            } else {
                                Some(self.b.ins().ishl_imm_u(w[i], 32 - sh))
                            };
                        }
                        out
                    }
                    BitwiseOp::And(r) | BitwiseOp::Or(r) | BitwiseOp::Xor(r) => (0..n)
                        .map(|i| {
                            let x = self.b.use_var(self.regs[(usize::from(r.0) + i) & 15]);
                            match op {
                                BitwiseOp::And(_) => self.b.ins().band(src[i], x),
                                BitwiseOp::Or(_) => self.b.ins().bor(src[i], x),
                                _ => self.b.ins().bxor(src[i], x),
                            }
                        })
                        .collect(),
                };
                self.set_words(*dreg, &out);
            }
            Insn::Byteorder {
                sreg,
                dreg,
                len,
                size,
                ..
            } => {
                let (len, size) = (usize::from(*len), usize::from(*size));
                let n = len.div_ceil(4);
                let src: Vec<Value> = (0..n)
                    .map(|i| self.b.use_var(self.regs[(usize::from(sreg.0) + i) & 15]))
                    .collect();
                // Output byte j is input byte p(j): reversed within each `size` chunk.
                let mut out = Vec::with_capacity(n);
                for w in 0..n {
                    let mut acc: Option<Value> = None;
                    for j in w * 4..(w * 4 + 4).min(len) {
                        let chunk = j / size * size;
                        let p = chunk + (size - 1 - (j - chunk));
                        let x = src[p / 4];
                        let x = self.b.ins().ushr_imm_u(x, (24 - 8 * (p % 4)) as i64);
                        let x = self.b.ins().band_imm_u(x, 0xff);
                        let x = self.b.ins().ishl_imm_u(x, (24 - 8 * (j % 4)) as i64);
                        acc = Some(match acc {
                            Some(a) => self.b.ins().bor(a, x),
                            None => x,
                        });
                    }
                    let v = acc.unwrap_or_else(|| self.iconst(0));
                    out.push(v);
                }
                self.set_words(*dreg, &out);
            }
            Insn::Immediate { dreg, data } => {
                let w: Vec<Value> = dom(data).into_iter().map(|x| self.iconst(x)).collect();
                self.set_words(*dreg, &w);
            }
            Insn::ImmVerdict(v) => return self.verdict(*v, pos, next),
            Insn::Queue { num, bypass, .. } => {
                return self.verdict(
                    ChainVerdict::Queue {
                        num: *num,
                        bypass: *bypass,
                    },
                    pos,
                    next,
                );
            }
            Insn::Counter(c) => {
                let base = self
                    .b
                    .ins()
                    .load(types::I64, MemFlagsData::trusted(), self.env, 0);
                let at = (c.0 as i64) * 16;
                let addr = self.b.ins().iadd_imm_u(base, at);
                self.bump_counter(addr);
            }
            Insn::Meta {
                key: MetaKey::Prandom,
                dreg,
            } => {
                self.helper(idx, rule_id, &[], &[(*dreg, 4)]);
            }
            Insn::FibType { dreg, .. } => {
                self.helper(idx, rule_id, &[], &[(*dreg, 4)]);
            }
            Insn::Numgen { dreg, .. } => {
                let code = self.helper(idx, rule_id, &[], &[(*dreg, 4)]);
                self.dispatch(code, pos, next);
            }
            Insn::Meta { key, dreg } => self.meta(*key, *dreg, next),
            Insn::Ct { key, dir, dreg } => self.ct(*key, *dir, *dreg, next),
            Insn::Lookup {
                sreg,
                set,
                dest,
                invert,
            } => return self.lookup(idx, rule_id, *sreg, set.0, *dest, *invert, pos, next),
            Insn::Reject { .. } => {
                self.helper(idx, rule_id, &[], &[]);
                return self.verdict(ChainVerdict::Drop, pos, next);
            }
            Insn::Nat(n) => {
                let alen = if n.family == pkt::NFPROTO_IPV6 { 16 } else { 4 };
                let mut reads = Vec::new();
                for r in [n.addr_min, n.addr_max].into_iter().flatten() {
                    reads.push((r, alen));
                }
                for r in [n.proto_min, n.proto_max].into_iter().flatten() {
                    reads.push((r, 2));
                }
                self.helper(idx, rule_id, &reads, &[]);
                return self.verdict(ChainVerdict::Accept, pos, next);
            }
            Insn::Log(_) | Insn::Notrack => {
                self.helper(idx, rule_id, &[], &[]);
            }
            Insn::MetaSet { key, sreg } => {
                self.helper(idx, rule_id, &[(*sreg, key.size())], &[]);
            }
            Insn::CtSet { key, sreg } => {
                self.helper(idx, rule_id, &[(*sreg, key.size())], &[]);
            }
            Insn::Limit(_) => {
                let code = self.helper(idx, rule_id, &[], &[]);
                self.dispatch(code, pos, next);
            }
            Insn::Objref { sreg, set } => {
                let klen = prog_set_key_len(self.prog, set.0);
                let code = self.helper(idx, rule_id, &[(*sreg, klen)], &[]);
                self.dispatch(code, pos, next);
            }
            Insn::Dynset {
                sreg,
                set,
                sreg_data,
                ..
            } => {
                // The set's elements live in `State`: the interpreter's step (`env::h_insn`).
                let klen = prog_set_key_len(self.prog, set.0);
                let mut reads = vec![(*sreg, klen)];
                if let Some(d) = sreg_data {
                    let n = match self
                        .prog
                        .program()
                        .sets
                        .get(set.0 as usize)
                        .map(|s| s.data_type)
                    {
                        Some(SetDataType::Data(n)) => usize::from(n),
                        _ => 0,
                    };
                    reads.push((*d, n));
                }
                let code = self.helper(idx, rule_id, &reads, &[]);
                self.dispatch(code, pos, next);
            }
            Insn::PayloadWrite { len, sreg, .. } => {
                let code = self.helper(idx, rule_id, &[(*sreg, usize::from(*len))], &[]);
                self.dispatch(code, pos, next);
            }
            Insn::Exthdr {
                len, dreg, present, ..
            } => {
                let n = if *present { 1 } else { usize::from(*len) };
                let code = self.helper(idx, rule_id, &[], &[(*dreg, n)]);
                self.dispatch(code, pos, next);
            }
        }
        Flow::Go
    }

    /// `nft_counter_eval` on the counter at `addr` (a `*mut Counter` of `Env::counters`): one
    /// packet and `PktState::len` bytes.
    fn bump_counter(&mut self, addr: Value) {
        self.bump_counter_at(addr, 0);
    }

    /// [`Self::bump_counter`] for the counter at `addr + off`.
    fn bump_counter_at(&mut self, addr: Value, off: i32) {
        let t = MemFlagsData::trusted();
        let pk = self.b.ins().load(types::I64, t, addr, off);
        let pk = self.b.ins().iadd_imm_u(pk, 1);
        self.b.ins().store(t, pk, addr, off);
        let by = self.b.ins().load(types::I64, t, addr, off + 8);
        let l = self.b.ins().load(
            types::I32,
            fl(),
            self.a.st,
            offset_of!(PktState, len) as i32,
        );
        let l = self.b.ins().uextend(types::I64, l);
        let by = self.b.ins().iadd(by, l);
        self.b.ins().store(t, by, addr, off + 8);
    }

    /// Call `env::h_insn` for instruction `idx`: store the words it reads into `Env::regs`,
    /// reload the ones it writes. Returns its code. The one conversion between the register
    /// domains: `Env::regs` holds the interpreter's words (`from_le_bytes` of the register
    /// bytes), ours are `from_be_bytes`, so each word is byte-swapped (little-endian host).
    fn helper(
        &mut self,
        idx: u32,
        rule_id: u32,
        reads: &[(Reg, usize)],
        writes: &[(Reg, usize)],
    ) -> Value {
        let base = offset_of!(Env, regs) as i32;
        for &(r, len) in reads {
            for i in 0..len.div_ceil(4) {
                let ri = (usize::from(r.0) + i) & 15;
                let v = self.b.use_var(self.regs[ri]);
                let v = self.b.ins().bswap(v);
                self.b.ins().store(fl(), v, self.env, base + 4 * ri as i32);
            }
        }
        let f = self
            .b
            .ins()
            .iconst(types::I64, env::h_insn as *const () as usize as i64);
        let i = self.iconst(idx);
        let r = self.iconst(rule_id);
        let call = self
            .b
            .ins()
            .call_indirect(self.hsig, f, &[self.env, self.a.st, i, r]);
        let code = self.b.inst_results(call)[0];
        for &(r, len) in writes {
            for i in 0..len.div_ceil(4) {
                let ri = (usize::from(r.0) + i) & 15;
                let v = self
                    .b
                    .ins()
                    .load(types::I32, fl(), self.env, base + 4 * ri as i32);
                let v = self.b.ins().bswap(v);
                self.b.def_var(self.regs[ri], v);
            }
        }
        code
    }

    /// Lexicographic (memcmp) comparison of words with constants: `(a < c, a > c)`.
    fn memcmp(&mut self, a: &[Value], c: &[u32]) -> (Value, Value) {
        let mut acc: Option<(Value, Value)> = None;
        for (x, y) in a.iter().zip(c).rev() {
            let lt = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, *x, k(*y));
            let gt = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThan, *x, k(*y));
            acc = Some(match acc {
                None => (lt, gt),
                Some((lt2, gt2)) => {
                    let eq = self.b.ins().icmp_imm_u(IntCC::Equal, *x, k(*y));
                    let l = self.b.ins().band(eq, lt2);
                    let g = self.b.ins().band(eq, gt2);
                    (self.b.ins().bor(lt, l), self.b.ins().bor(gt, g))
                }
            });
        }
        acc.unwrap_or_else(|| {
            let z = self.b.ins().iconst(types::I8, 0);
            (z, z)
        })
    }

    fn meta(&mut self, key: MetaKey, dreg: Reg, next: Block) {
        if let MetaKey::Iifname | MetaKey::Oifname = key {
            let off = if key == MetaKey::Iifname {
                offset_of!(PktState, iifname)
            } else {
                offset_of!(PktState, oifname)
            };
            let w = self.bytes(off, 4);
            self.set_words(dreg, &w);
            return;
        }
        let (ok, w) = self.meta_word(key);
        if let Some(ok) = ok {
            self.guard(ok, next);
        }
        self.set_words(dreg, &[w]);
    }

    /// A one-word meta key: `(presence test if the key can be missing, value)`. Both are
    /// plain `PktState` reads, valid whether or not the key is present (`meta_get` breaks
    /// when the test is false). Iifname/Oifname (four words) give the first word.
    fn meta_word(&mut self, key: MetaKey) -> (Option<Value>, Value) {
        match key {
            MetaKey::Len => (None, self.host32(offset_of!(PktState, len))),
            MetaKey::Protocol => (None, self.be16(offset_of!(PktState, protocol))),
            MetaKey::Nfproto => (None, self.u8f(offset_of!(PktState, nfproto))),
            MetaKey::L4proto => {
                let ok = self.flag(offset_of!(PktState, has_th));
                (Some(ok), self.u8f(offset_of!(PktState, l4proto)))
            }
            MetaKey::Mark => (None, self.host32(offset_of!(PktState, mark))),
            MetaKey::Iif => (None, self.host32(offset_of!(PktState, iif))),
            MetaKey::Oif => (None, self.host32(offset_of!(PktState, oif))),
            MetaKey::Iifname => (None, self.bytes(offset_of!(PktState, iifname), 1)[0]),
            MetaKey::Oifname => (None, self.bytes(offset_of!(PktState, oifname), 1)[0]),
            MetaKey::Iiftype | MetaKey::Oiftype => {
                let (dev, f) = if key == MetaKey::Iiftype {
                    (offset_of!(PktState, iif), offset_of!(PktState, iiftype))
                } else {
                    (offset_of!(PktState, oif), offset_of!(PktState, oiftype))
                };
                let d = self.b.ins().load(types::I32, fl(), self.a.st, dev as i32);
                let ok = self.b.ins().icmp_imm_u(IntCC::NotEqual, d, 0);
                (Some(ok), self.host16(f))
            }
            MetaKey::Pkttype => (None, self.u8f(offset_of!(PktState, pkttype))),
            // Not a packet fact (`meta` and `Insn::Meta` call the helper): absent, as in `meta_get`.
            MetaKey::Prandom => {
                let no = self.b.ins().iconst(types::I8, 0);
                (Some(no), self.iconst(0))
            }
            MetaKey::Skuid | MetaKey::Skgid => {
                let ok = self.flag(offset_of!(PktState, has_sk));
                let off = if key == MetaKey::Skuid {
                    offset_of!(PktState, sk_uid)
                } else {
                    offset_of!(PktState, sk_gid)
                };
                (Some(ok), self.host32(off))
            }
        }
    }

    /// A classified run (`runs`), the whole partition: look the first rule that can match up
    /// (the classifier's walk, in native code on a key read natively, or `env::h_first`),
    /// run it from its row or through the interpreter (`env::h_rule`), and look again from the
    /// next rule while none ends the traversal (reading the key again after a rule that may
    /// change it). `start` is the entry position relative to the run.
    fn classified(&mut self, plan: &Plan, run: &Run, start: Value) {
        let look = self.b.create_block();
        let from = self.b.append_block_param(look, types::I32);
        let found = self.b.create_block();
        let pos = self.b.append_block_param(found, types::I32);
        // Bits of the dimensions present, shifted as a row's needed dimensions are.
        let present = self.b.append_block_param(found, types::I32);
        let fast = self.b.create_block();
        let count = self.b.create_block();
        let after = self.b.create_block();
        let slow = self.b.create_block();
        let next = self.b.create_block();
        let np = self.b.append_block_param(next, types::I32);
        let nflags = self.b.append_block_param(next, types::I32);
        let leave = self.b.create_block();
        let lcode = self.b.append_block_param(leave, types::I32);
        let lpos = self.b.append_block_param(leave, types::I32);
        let shared = self.b.create_block();
        let sfrom = self.b.append_block_param(shared, types::I32);
        let end = self.b.create_block();

        let cls = self.prog.program().classifiers.get(run.cls as usize);
        let native = cls.is_some_and(|c| c.dims.iter().all(|d| native_field(d.field)));
        // rekey(from): the key, natively (values, exact, a field partly present).
        let rekey = self.b.create_block();
        let kfrom = self.b.append_block_param(rekey, types::I32);
        let from0 = self.b.ins().iadd_imm_u(start, k(run.start));
        self.b.ins().jump(rekey, &[from0.into()]);
        self.b.switch_to_block(rekey);
        let key = match cls {
            Some(c) if native => Some(self.key(c)),
            _ => None,
        };
        self.b.ins().jump(look, &[kfrom.into()]);

        // look(from): the first rule at or after `from` that can match (or none).
        self.b.switch_to_block(look);
        match (cls, key) {
            (Some(c), Some((vals, kpresent, partial, slot))) => {
                // A field with only some of its bytes: the shared reader zero-fills them.
                let go = self.b.create_block();
                self.b.ins().brif(partial, shared, &[from.into()], go, &[]);
                self.b.switch_to_block(go);
                self.b.seal_block(go);
                let p = if plan.native_walk {
                    self.walk(c, &vals, slot, from)
                } else {
                    // The shared walk, on the key read natively.
                    let h = self
                        .b
                        .ins()
                        .iconst(types::I64, env::h_walk as *const () as usize as i64);
                    let cp = self
                        .b
                        .ins()
                        .iconst(types::I64, c as *const Classifier as usize as i64);
                    let kp = self.b.ins().stack_addr(types::I64, slot, 0);
                    let z = self.iconst(0);
                    let call = self.b.ins().call_indirect(self.hsig, h, &[cp, kp, from, z]);
                    self.b.inst_results(call)[0]
                };
                self.check(p, kpresent, run, found, end);
            }
            _ => {
                self.b.ins().jump(shared, &[from.into()]);
            }
        }

        // shared(from): the key and the walk in Rust (`env::h_first`): the position, bit 31
        // set when the key is not exact.
        self.b.switch_to_block(shared);
        let h = self
            .b
            .ins()
            .iconst(types::I64, env::h_first as *const () as usize as i64);
        let c = self.iconst(run.cls);
        let call = self
            .b
            .ins()
            .call_indirect(self.hsig, h, &[self.env, self.a.st, c, sfrom]);
        let r = self.b.inst_results(call)[0];
        let p = self.b.ins().band_imm_u(r, 0x7fff_ffff);
        // Bit 31 clear: all it needs is present (every dimension, as far as the row can tell).
        let inexact = self.b.ins().ushr_imm_u(r, 31);
        let all = self.b.ins().iadd_imm_u(inexact, -1);
        self.check(p, all, run, found, end);

        // found(pos, exact): its row.
        self.b.switch_to_block(found);
        self.b.seal_block(found);
        let tab = plan.table.as_ptr() as usize + 4 * run.rows;
        let tf = MemFlagsData::trusted().with_readonly();
        let rel = self.b.ins().iadd_imm_u(pos, k(run.start.wrapping_neg()));
        let rel = self.b.ins().uextend(types::I64, rel);
        let off = self.b.ins().imul_imm_u(rel, (4 * ROW) as i64);
        let base = self.b.ins().iconst(types::I64, tab as i64);
        let row = self.b.ins().iadd(base, off);
        let flags = self.b.ins().load(types::I32, tf, row, 0);
        // Fast when the row says so and no dimension it needs is missing.
        let missing = self.b.ins().band_not(flags, present);
        let missing = self.b.ins().ushr_imm_u(missing, i64::from(NEED_SHIFT));
        let none = self.b.ins().icmp_imm_u(IntCC::Equal, missing, 0);
        let none = self.b.ins().uextend(types::I32, none);
        let is_fast = self.b.ins().band_imm_u(flags, k(FAST));
        let is_fast = self.b.ins().band(is_fast, none);
        self.b.ins().brif(is_fast, fast, &[], slow, &[]);

        // fast: counter, then the row's verdict.
        self.b.switch_to_block(fast);
        self.b.seal_block(fast);
        let ctr = self.b.ins().load(types::I32, tf, row, 4);
        self.b.ins().brif(ctr, count, &[], after, &[]);
        self.b.switch_to_block(count);
        self.b.seal_block(count);
        {
            let t = MemFlagsData::trusted();
            let cbase = self.b.ins().load(types::I64, t, self.env, 0);
            let c = self.b.ins().uextend(types::I64, ctr);
            let c = self.b.ins().ishl_imm_u(c, 4);
            let addr = self.b.ins().iadd(cbase, c);
            // Counter id + 1 was stored: step back one 16-byte counter.
            self.bump_counter_at(addr, -16);
        }
        self.b.ins().jump(after, &[]);
        self.b.switch_to_block(after);
        self.b.seal_block(after);
        let code = self.b.ins().load(types::I32, tf, row, 8);
        let ch = self.b.ins().load(types::I32, tf, row, 12);
        let goes_on = self
            .b
            .ins()
            .icmp_imm_u(IntCC::Equal, code, k(env::C_CONTINUE));
        let store_ch = self.b.create_block();
        self.b
            .ins()
            .brif(goes_on, next, &[pos.into(), flags.into()], store_ch, &[]);
        self.b.switch_to_block(store_ch);
        self.b.seal_block(store_ch);
        self.b.ins().store(
            MemFlagsData::trusted(),
            ch,
            self.env,
            offset_of!(Env, jump_chain) as i32,
        );
        self.b.ins().jump(leave, &[code.into(), pos.into()]);

        // slow: the interpreter runs the rule (and sets `jump_chain` itself).
        self.b.switch_to_block(slow);
        self.b.seal_block(slow);
        let code = self.rule_call(run.chain, pos);
        let on = self.goes_on(code);
        self.b.ins().brif(
            on,
            next,
            &[pos.into(), flags.into()],
            leave,
            &[code.into(), pos.into()],
        );

        // next(pos, flags): look again from the rule after (reading the key again when the
        // rule may have changed it).
        self.b.switch_to_block(next);
        self.b.seal_block(next);
        let n1 = self.b.ins().iadd_imm_u(np, 1);
        let w = self.b.ins().band_imm_u(nflags, k(WRITES));
        self.b
            .ins()
            .brif(w, rekey, &[n1.into()], look, &[n1.into()]);
        self.b.seal_block(look);
        self.b.seal_block(rekey);
        self.b.seal_block(shared);

        // leave(code, pos): resume after the rule, return the code.
        self.b.switch_to_block(leave);
        self.b.seal_block(leave);
        let r = self.b.ins().iadd_imm_u(lpos, 1);
        self.b.ins().store(
            MemFlagsData::trusted(),
            r,
            self.env,
            offset_of!(Env, resume) as i32,
        );
        self.b.ins().return_(&[lcode]);

        self.b.switch_to_block(end);
        self.b.seal_block(end);
        let c = self.iconst(env::C_END);
        self.b.ins().return_(&[c]);
    }

    /// Go to `found(p, present)`, or to `end` when `p` is past the run (no rule can match).
    fn check(&mut self, p: Value, present: Value, run: &Run, found: Block, end: Block) {
        let past = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, p, k(run.end));
        self.b
            .ins()
            .brif(past, end, &[], found, &[p.into(), present.into()]);
    }

    /// `env::h_rule` on rule `pos` of `chain`: its code.
    fn rule_call(&mut self, chain: u32, pos: Value) -> Value {
        let h = self
            .b
            .ins()
            .iconst(types::I64, env::h_rule as *const () as usize as i64);
        let c = self.iconst(chain);
        let call = self
            .b
            .ins()
            .call_indirect(self.hsig, h, &[self.env, self.a.st, c, pos]);
        self.b.inst_results(call)[0]
    }

    /// A classifier's key, read natively (every dimension a [`native_field`]): one natural
    /// value per dimension (zero for a missing field), the bits of the present dimensions (at
    /// `NEED_SHIFT`, as rows keep the dimensions a rule needs), whether some payload field is
    /// only partly there (its first byte but not its last: then the shared reader must
    /// zero-fill it byte by byte), and a stack slot holding the values (the tree walk indexes
    /// it by a node's dimension).
    fn key(&mut self, c: &Classifier) -> (Vec<Value>, Value, Value, StackSlot) {
        let mut vals = Vec::with_capacity(c.dims.len());
        // Bits of the present dimensions, at NEED_SHIFT (as rows keep the needed ones).
        let mut present = self.iconst(0);
        let mut always = 0u32;
        let mut partial: Option<Value> = None;
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            4 * MAX_DIMS as u32,
            4,
        ));
        for (d, dim) in c.dims.iter().enumerate() {
            let len = dim.field.len() as i64;
            let (ok, part, w) = self.field_word(dim.field);
            // Register domain (field bytes on top) to the natural value, through the mask.
            let v = if len < 4 {
                self.b.ins().ushr_imm_u(w, 32 - 8 * len)
            } else {
                w
            };
            let v = if dim.mask != dim.max() {
                self.b.ins().band_imm_u(v, k(dim.mask))
            } else {
                v
            };
            self.b.ins().stack_store(types::I64, v, slot, 4 * d as i32);
            vals.push(v);
            let bit = NEED_SHIFT as i64 + d as i64;
            match ok {
                Some(o) => {
                    let o = self.b.ins().uextend(types::I32, o);
                    let o = self.b.ins().ishl_imm_u(o, bit);
                    present = self.b.ins().bor(present, o);
                }
                None => always |= 1 << bit,
            }
            if let Some(p) = part {
                partial = Some(match partial {
                    Some(o) => self.b.ins().bor(o, p),
                    None => p,
                });
            }
        }
        let present = self.b.ins().bor_imm_u(present, k(always));
        let partial = match partial {
            Some(o) => o,
            None => self.b.ins().iconst(types::I8, 0),
        };
        (vals, present, partial, slot)
    }

    /// One field's register word (first byte in the top bits; zero when the field is
    /// missing), whether it is present (unless always), and for payload wider than a byte
    /// whether it is only partly there — branch-free, with the interpreter's presence rules.
    fn field_word(&mut self, f: Field) -> (Option<Value>, Option<Value>, Value) {
        match f {
            Field::Payload { base, off, len } => {
                let bv = match self.bases[base_ix(base)] {
                    Some(bv) => bv,
                    None => {
                        let bv = bounds::base(&mut self.b, self.a, base);
                        self.bases[base_ix(base)] = Some(bv);
                        bv
                    }
                };
                let (ok, addr) = bounds::clamped_addr(&mut self.b, self.a, bv, off, len, self.zero);
                let w = bounds::load_words(&mut self.b, addr, len)[0];
                let part = (len > 1).then(|| {
                    let (first, _) = bounds::checked_addr(&mut self.b, self.a, bv, off, 1);
                    let notall = self.b.ins().bxor_imm_u(ok, 1);
                    self.b.ins().band(first, notall)
                });
                (Some(ok), part, w)
            }
            Field::Meta { key, word } => match key {
                MetaKey::Iifname | MetaKey::Oifname => {
                    let off = if key == MetaKey::Iifname {
                        offset_of!(PktState, iifname)
                    } else {
                        offset_of!(PktState, oifname)
                    };
                    (None, None, self.bytes(off + 4 * usize::from(word), 1)[0])
                }
                _ => {
                    let (ok, w) = self.meta_word(key);
                    let w = match ok {
                        Some(o) => {
                            let z = self.iconst(0);
                            self.b.ins().select(o, w, z)
                        }
                        None => w,
                    };
                    (ok, None, w)
                }
            },
            Field::Ct { key, dir, .. } => {
                let tuple = match dir {
                    Some(CtDir::Reply) => offset_of!(PktState, ct_reply),
                    _ => offset_of!(PktState, ct_orig),
                };
                let w = match key {
                    CtKey::State => {
                        return (None, None, self.host32(offset_of!(PktState, ct_state)));
                    }
                    CtKey::Direction => self.u8f(offset_of!(PktState, ct_direction)),
                    CtKey::Status => self.host32(offset_of!(PktState, ct_status)),
                    CtKey::Mark => self.host32(offset_of!(PktState, ct_mark)),
                    CtKey::Expiration => self.host32(offset_of!(PktState, ct_expiration_ms)),
                    CtKey::L3protocol => self.u8f(offset_of!(PktState, ct_l3proto)),
                    CtKey::Protocol => self.u8f(offset_of!(PktState, ct_protocol)),
                    CtKey::Id => self.host32(offset_of!(PktState, ct_id)),
                    CtKey::ProtoSrc => self.be16(tuple + offset_of!(CtTuple, src_port)),
                    _ => self.be16(tuple + offset_of!(CtTuple, dst_port)),
                };
                let ok = self.flag(offset_of!(PktState, ct_valid));
                let z = self.iconst(0);
                let w = self.b.ins().select(ok, w, z);
                (Some(ok), None, w)
            }
        }
    }

    /// The classifier's walk, natively (the same as `Classifier::first`): each tree in turn
    /// while its smallest rule can beat the best found, its root cut on the key's value, the
    /// rest of the descent through the node table, then the leaf scan. The first rule at or
    /// after `from` that can match, or `NONE`.
    fn walk(&mut self, c: &Classifier, vals: &[Value], slot: StackSlot, from: Value) -> Value {
        let nd = c.dims.len();
        let qw = quad_words(nd) as i64;
        let tf = MemFlagsData::trusted().with_readonly();
        // Quad rows are 4-byte aligned only.
        let vf = MemFlagsData::new().with_notrap().with_readonly();
        let done = self.b.create_block();
        let best_out = self.b.append_block_param(done, types::I32);
        // Each key value in every lane (one row of a quad is one dimension of four entries).
        let ksplat: Vec<Value> = vals
            .iter()
            .map(|&v| self.b.ins().splat(types::I32X4, v))
            .collect();
        let fromv = self.b.ins().splat(types::I32X4, from);
        let bias = self.iconst(BIAS);
        let bias = self.b.ins().splat(types::I32X4, bias);
        let mut best = self.iconst(NONE);
        for t in &c.trees {
            let next_tree = self.b.create_block();
            let nb_best = self.b.append_block_param(next_tree, types::I32);
            // Skip this tree and the rest when none of their rules can beat `best`.
            let go = self.b.create_block();
            let beat = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThan, best, k(t.min_pos));
            self.b.ins().brif(beat, go, &[], done, &[best.into()]);
            self.b.switch_to_block(go);
            self.b.seal_block(go);
            let nodes = self
                .b
                .ins()
                .iconst(types::I64, t.nodes.as_ptr() as usize as i64);
            let leaves = self
                .b
                .ins()
                .iconst(types::I64, t.leaves.as_ptr() as usize as i64);
            let scan = self.b.create_block();
            let leaf_off = self.b.append_block_param(scan, types::I64);
            let descend = self.b.create_block();
            let p = self.b.append_block_param(descend, types::I64);
            if t.root & LEAF != 0 {
                let off = self.b.ins().iconst(types::I64, (t.root & !LEAF) as i64);
                self.b.ins().jump(scan, &[off.into()]);
            } else {
                let (base, nb, shift, dim) = node_parts(t.root);
                let v = vals.get(dim).copied().unwrap_or_else(|| self.iconst(0));
                let idx = self.b.ins().ushr_imm_u(v, i64::from(shift));
                let idx = self.b.ins().band_imm_u(idx, (1i64 << nb) - 1);
                let idx = self.b.ins().uextend(types::I64, idx);
                let at = self.b.ins().iadd_imm_u(idx, base as i64);
                let at = self.b.ins().ishl_imm_u(at, 3);
                let addr = self.b.ins().iadd(nodes, at);
                let child = self.b.ins().load(types::I64, tf, addr, 0);
                self.b.ins().jump(descend, &[child.into()]);
            }
            // descend(p): a leaf → scan it; else one more cut. The first UNROLL steps are
            // copies, each with its own branch (and so its own prediction), then a loop.
            self.b.switch_to_block(descend);
            let mut p = p;
            for step in 0..=UNROLL {
                let is_leaf = self.b.ins().icmp_imm_u(IntCC::SignedLessThan, p, 0);
                let cut = self.b.create_block();
                let off = self.b.ins().band_imm_u(p, 0xffff_ffff);
                self.b.ins().brif(is_leaf, scan, &[off.into()], cut, &[]);
                self.b.switch_to_block(cut);
                self.b.seal_block(cut);
                let dim = self.b.ins().ushr_imm_u(p, 48);
                let dim = self.b.ins().band_imm_u(dim, 15);
                let dim4 = self.b.ins().ishl_imm_u(dim, 2);
                let kaddr = self.b.ins().stack_addr(types::I64, slot, 0);
                let kaddr = self.b.ins().iadd(kaddr, dim4);
                let kv = self
                    .b
                    .ins()
                    .load(types::I32, MemFlagsData::trusted(), kaddr, 0);
                let sh = self.b.ins().ushr_imm_u(p, 40);
                let sh = self.b.ins().band_imm_u(sh, 31);
                let sh = self.b.ins().ireduce(types::I32, sh);
                let nbv = self.b.ins().ushr_imm_u(p, 32);
                let nbv = self.b.ins().band_imm_u(nbv, 31);
                let one = self.b.ins().iconst(types::I64, 1);
                let m = self.b.ins().ishl(one, nbv);
                let m = self.b.ins().iadd_imm_u(m, -1);
                let idx = self.b.ins().ushr(kv, sh);
                let idx = self.b.ins().uextend(types::I64, idx);
                let idx = self.b.ins().band(idx, m);
                let base = self.b.ins().band_imm_u(p, 0xffff_ffff);
                let at = self.b.ins().iadd(base, idx);
                let at = self.b.ins().ishl_imm_u(at, 3);
                let addr = self.b.ins().iadd(nodes, at);
                let child = self.b.ins().load(types::I64, tf, addr, 0);
                if step == UNROLL {
                    self.b.ins().jump(descend, &[child.into()]);
                } else {
                    p = child;
                }
            }
            self.b.seal_block(descend);

            // scan(off): quad by quad, in rule order: the entries at or after `from`, before
            // `best`, whose cube holds the key — all four checked at once, row by row.
            self.b.switch_to_block(scan);
            self.b.seal_block(scan);
            let at = self.b.ins().ishl_imm_u(leaf_off, 2);
            let q0 = self.b.ins().iadd(leaves, at);
            let n = self.b.ins().load(types::I32, tf, q0, 0);
            let q0 = self.b.ins().iadd_imm_u(q0, 4);
            let bestv = self.b.ins().splat(types::I32X4, best);
            let sloop = self.b.create_block();
            let q = self.b.append_block_param(sloop, types::I64);
            let left = self.b.append_block_param(sloop, types::I32);
            self.b.ins().jump(sloop, &[q0.into(), n.into()]);
            self.b.switch_to_block(sloop);
            let body = self.b.create_block();
            let hit = self.b.create_block();
            let step = self.b.create_block();
            self.b
                .ins()
                .brif(left, body, &[], next_tree, &[best.into()]);
            self.b.switch_to_block(body);
            self.b.seal_block(body);
            let pos = self.b.ins().load(types::I32X4, vf, q, 0);
            // Positions are below NONE (2^31 - 1): signed compares, one instruction each.
            // `miss`: lanes out of [from, best) or whose cube does not hold the key.
            let ok = self.b.ins().icmp(IntCC::SignedGreaterThan, bestv, pos);
            let mut miss = self.b.ins().icmp(IntCC::SignedGreaterThan, fromv, pos);
            for (d, &kd) in ksplat.iter().enumerate() {
                let lo = self.b.ins().load(types::I32X4, vf, q, 16 + 32 * d as i32);
                let w = self.b.ins().load(types::I32X4, vf, q, 32 + 32 * d as i32);
                let x = self.b.ins().isub(kd, lo);
                let x = self.b.ins().bxor(x, bias);
                let o = self.b.ins().icmp(IntCC::SignedGreaterThan, x, w);
                miss = self.b.ins().bor(miss, o);
            }
            let ok = self.b.ins().band_not(ok, miss);
            let bits = self.b.ins().vhigh_bits(types::I32, ok);
            self.b.ins().brif(bits, hit, &[], step, &[]);
            // hit: the first entry of the quad that holds the key.
            self.b.switch_to_block(hit);
            self.b.seal_block(hit);
            let j = self.b.ins().ctz(bits);
            let j = self.b.ins().uextend(types::I64, j);
            let j4 = self.b.ins().ishl_imm_u(j, 2);
            let pa = self.b.ins().iadd(q, j4);
            let found = self.b.ins().load(types::I32, tf, pa, 0);
            self.b.ins().jump(next_tree, &[found.into()]);
            // step: the next quad, unless this one already reached `best`.
            self.b.switch_to_block(step);
            self.b.seal_block(step);
            let last = self.b.ins().load(types::I32, tf, q, 12);
            let late = self
                .b
                .ins()
                .icmp(IntCC::UnsignedGreaterThanOrEqual, last, best);
            let more = self.b.create_block();
            self.b
                .ins()
                .brif(late, next_tree, &[best.into()], more, &[]);
            self.b.switch_to_block(more);
            self.b.seal_block(more);
            let q1 = self.b.ins().iadd_imm_u(q, 4 * qw);
            let l1 = self.b.ins().iadd_imm_u(left, -1);
            self.b.ins().jump(sloop, &[q1.into(), l1.into()]);
            self.b.seal_block(sloop);

            self.b.switch_to_block(next_tree);
            self.b.seal_block(next_tree);
            best = nb_best;
        }
        self.b.ins().jump(done, &[best.into()]);
        self.b.switch_to_block(done);
        self.b.seal_block(done);
        best_out
    }

    /// The code says "next rule" (continue or break).
    fn goes_on(&mut self, code: Value) -> Value {
        let c = self
            .b
            .ins()
            .icmp_imm_u(IntCC::Equal, code, k(env::C_CONTINUE));
        let b = self.b.ins().icmp_imm_u(IntCC::Equal, code, k(env::C_BREAK));
        self.b.ins().bor(c, b)
    }

    fn ct(&mut self, key: CtKey, dir: Option<CtDir>, dreg: Reg, next: Block) {
        if key == CtKey::State {
            let w = self.host32(offset_of!(PktState, ct_state));
            self.set_words(dreg, &[w]);
            return;
        }
        let ok = self.flag(offset_of!(PktState, ct_valid));
        self.guard(ok, next);
        let tuple = match dir {
            Some(CtDir::Reply) => offset_of!(PktState, ct_reply),
            _ => offset_of!(PktState, ct_orig),
        };
        let l3 = offset_of!(PktState, ct_l3proto);
        let w = match key {
            CtKey::State => self.host32(offset_of!(PktState, ct_state)),
            CtKey::Direction => self.u8f(offset_of!(PktState, ct_direction)),
            CtKey::Status => self.host32(offset_of!(PktState, ct_status)),
            CtKey::Mark => self.host32(offset_of!(PktState, ct_mark)),
            CtKey::Expiration => self.host32(offset_of!(PktState, ct_expiration_ms)),
            CtKey::Helper => {
                let off = offset_of!(PktState, ct_helper);
                let h0 = self.flag(off);
                self.guard(h0, next);
                let w = self.bytes(off, 4);
                self.set_words(dreg, &w);
                return;
            }
            CtKey::L3protocol => self.u8f(l3),
            CtKey::Protocol => self.u8f(offset_of!(PktState, ct_protocol)),
            CtKey::Zone => {
                let z = self.host16(offset_of!(PktState, ct_zone));
                match dir {
                    None => z,
                    Some(d) => {
                        let bit = if d == CtDir::Original {
                            pkt::NF_CT_ZONE_DIR_ORIG
                        } else {
                            pkt::NF_CT_ZONE_DIR_REPL
                        };
                        let zd = self.b.ins().uload8(
                            types::I32,
                            fl(),
                            self.a.st,
                            offset_of!(PktState, ct_zone_dir) as i32,
                        );
                        let m = self.b.ins().band_imm_u(zd, i64::from(bit));
                        let zero = self.iconst(0);
                        self.b.ins().select(m, z, zero)
                    }
                }
            }
            CtKey::Id => self.host32(offset_of!(PktState, ct_id)),
            CtKey::Src | CtKey::Dst => {
                let f = if key == CtKey::Src {
                    offset_of!(CtTuple, src)
                } else {
                    offset_of!(CtTuple, dst)
                };
                let l = self.b.ins().uload8(types::I32, fl(), self.a.st, l3 as i32);
                let v4 = self
                    .b
                    .ins()
                    .icmp_imm_u(IntCC::Equal, l, i64::from(pkt::NFPROTO_IPV4));
                let mut w = self.bytes(tuple + f, 4);
                let zero = self.iconst(0);
                for x in w.iter_mut().skip(1) {
                    *x = self.b.ins().select(v4, zero, *x);
                }
                self.set_words(dreg, &w);
                return;
            }
            CtKey::SrcIp | CtKey::DstIp | CtKey::SrcIp6 | CtKey::DstIp6 => {
                let v6 = matches!(key, CtKey::SrcIp6 | CtKey::DstIp6);
                let l = self.b.ins().uload8(types::I32, fl(), self.a.st, l3 as i32);
                let want = if v6 {
                    pkt::NFPROTO_IPV6
                } else {
                    pkt::NFPROTO_IPV4
                };
                let ok = self.b.ins().icmp_imm_u(IntCC::Equal, l, i64::from(want));
                self.guard(ok, next);
                let f = if matches!(key, CtKey::SrcIp | CtKey::SrcIp6) {
                    offset_of!(CtTuple, src)
                } else {
                    offset_of!(CtTuple, dst)
                };
                let w = self.bytes(tuple + f, if v6 { 4 } else { 1 });
                self.set_words(dreg, &w);
                return;
            }
            CtKey::ProtoSrc => self.be16(tuple + offset_of!(CtTuple, src_port)),
            CtKey::ProtoDst => self.be16(tuple + offset_of!(CtTuple, dst_port)),
        };
        self.set_words(dreg, &[w]);
    }

    #[allow(clippy::too_many_arguments)]
    fn lookup(
        &mut self,
        idx: u32,
        rule_id: u32,
        sreg: Reg,
        set: u32,
        dest: LookupDest,
        invert: bool,
        pos: u32,
        next: Block,
    ) -> Flow {
        let prog = self.prog;
        let Some(s) = prog.program().sets.get(set as usize) else {
            self.b.ins().jump(next, &[]);
            return Flow::Ended;
        };
        let klen = usize::from(s.key_len);
        // A dynamic set's elements are in `State::dynsets`: looked up by the helper.
        let inline = klen <= 4
            && s.dynamic.is_none()
            && matches!(s.kind, SetKind::Hash | SetKind::Interval)
            && s.len() <= INLINE_SET_MAX;
        if !inline {
            let writes: Vec<(Reg, usize)> = match (dest, s.data_type) {
                (LookupDest::Reg(d), SetDataType::Data(n)) => vec![(d, usize::from(n))],
                _ => vec![],
            };
            let code = self.helper(idx, rule_id, &[(sreg, klen)], &writes);
            self.dispatch(code, pos, next);
            return Flow::Go;
        }
        // Elements as (from, to, data) in the register domain, sorted by `from`.
        let key = |b: &[u8]| {
            let mut w = [0u8; 4];
            for (d, s) in w.iter_mut().zip(b) {
                *d = *s;
            }
            u32::from_be_bytes(w)
        };
        let mut elems: Vec<(u32, u32, ElemData)> = s
            .hash_elems()
            .map(|(k, d)| (key(k), key(k), *d))
            .chain(
                s.interval_elems()
                    .map(|e| (key(e.from), key(e.to), *e.data)),
            )
            .collect();
        elems.sort_by_key(|e| e.0);
        let v = self.get_words(sreg, klen)[0];
        let miss = self.b.create_block();
        let join = self.b.create_block();
        let hits: Vec<Block> = elems.iter().map(|_| self.b.create_block()).collect();
        let ranges: Vec<(u32, u32)> = elems.iter().map(|e| (e.0, e.1)).collect();
        self.tree(v, &ranges, &hits, 0, miss);
        // Hit paths.
        let mut outcomes: Vec<(Block, Option<ElemData>)> = hits
            .iter()
            .zip(&elems)
            .map(|(b, e)| (*b, Some(e.2)))
            .collect();
        outcomes.push((miss, s.catchall));
        for (blk, found) in outcomes {
            self.b.switch_to_block(blk);
            self.b.seal_block(blk);
            if found.is_some() == invert {
                self.b.ins().jump(next, &[]);
                continue;
            }
            match (dest, found) {
                (LookupDest::Reg(d), Some(ElemData::Data(x))) => {
                    let w: Vec<Value> = dom(&x).into_iter().map(|x| self.iconst(x)).collect();
                    self.set_words(d, &w);
                }
                (LookupDest::Verdict, Some(ElemData::Verdict(v))) => {
                    if let Flow::Ended = self.verdict(v, pos, next) {
                        continue;
                    }
                }
                _ => {}
            }
            self.b.ins().jump(join, &[]);
        }
        self.b.switch_to_block(join);
        self.b.seal_block(join);
        Flow::Go
    }

    /// Binary search over sorted disjoint ranges: jump to `hits[i]` if `v` is in range `i`,
    /// else to `miss`. The current block is terminated.
    fn tree(&mut self, v: Value, r: &[(u32, u32)], hits: &[Block], first: usize, miss: Block) {
        if r.is_empty() {
            self.b.ins().jump(miss, &[]);
            return;
        }
        let mid = r.len() / 2;
        let (lo, hi) = r[mid];
        let left = self.b.create_block();
        let chk = self.b.create_block();
        let lt = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, v, k(lo));
        self.b.ins().brif(lt, left, &[], chk, &[]);
        self.b.switch_to_block(chk);
        self.b.seal_block(chk);
        let right = self.b.create_block();
        let gt = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThan, v, k(hi));
        self.b.ins().brif(gt, right, &[], hits[first + mid], &[]);
        self.b.switch_to_block(left);
        self.b.seal_block(left);
        self.tree(v, &r[..mid], hits, first, miss);
        self.b.switch_to_block(right);
        self.b.seal_block(right);
        self.tree(v, &r[mid + 1..], hits, first + mid + 1, miss);
    }
}

/// Key length of set `set` (0 for an unknown set, which `verify` never lets through).
fn prog_set_key_len(prog: &VerifiedProgram, set: u32) -> usize {
    prog.program()
        .sets
        .get(set as usize)
        .map_or(0, |s| usize::from(s.key_len))
}
