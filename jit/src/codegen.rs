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
use crate::runs::{Field, Plan, Run};
use cranelift_codegen::ir::{
    AbiParam, Block, Function, InstBuilder, JumpTableData, MemFlagsData, SigRef, Signature, Value,
    condcodes::IntCC, types,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
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

    // Which payload bases are used, and which (base, off, len) fields by 2+ rules.
    let mut uses: HashMap<(PayloadBase, u32, u8), usize> = HashMap::new();
    let mut used_base = [false; 3];
    // Segments: a rule on its own, or a run (rules start..end, relative to the partition).
    let mut segs: Vec<(usize, usize, Option<&Run>)> = Vec::new();
    let mut i = 0usize;
    while i < rules.len() {
        match plan.run_at(part.chain, part.start + i as u32) {
            Some(run) => {
                let end = ((run.end - part.start) as usize).min(rules.len());
                for f in &run.fields {
                    if let Field::Payload { base, .. } = f {
                        used_base[base_ix(*base)] = true;
                    }
                }
                segs.push((i, end.max(i + 1), Some(run)));
                i = end.max(i + 1);
            }
            None => {
                segs.push((i, i + 1, None));
                i += 1;
            }
        }
    }
    for &(s, _, run) in &segs {
        if run.is_some() {
            continue;
        }
        let r = &rules[s];
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

    // One fall-in block per segment (the failing tests of the segment before jump there),
    // plus the end block; the br_table enters rule i at its segment's entry.
    let blocks: Vec<Block> = (0..=segs.len()).map(|_| b.create_block()).collect();
    let end = blocks[segs.len()];
    let mut entries = Vec::with_capacity(rules.len());
    let mut run_entries = Vec::with_capacity(segs.len());
    for (k, &(s, e, run)) in segs.iter().enumerate() {
        if run.is_some() {
            let enter = b.create_block();
            run_entries.push(Some(enter));
            entries.extend((s..e).map(|_| enter));
        } else {
            run_entries.push(None);
            entries.push(blocks[k]);
        }
    }
    let table: Vec<_> = entries
        .iter()
        .map(|&bl| b.func.dfg.block_call(bl, &[]))
        .collect();
    let only_run = match (segs.as_slice(), run_entries.as_slice()) {
        ([(_, _, Some(_))], [Some(enter)]) => Some(*enter),
        _ => None,
    };
    match only_run {
        // A run's own partition: `start` is its row.
        Some(enter) => {
            b.ins().jump(enter, &[]);
        }
        None => {
            let def = b.func.dfg.block_call(end, &[]);
            let jt = b.create_jump_table(JumpTableData::new(def, &table));
            b.ins().br_table(start, jt);
        }
    }

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
    for (k, &(s, _, run)) in segs.iter().enumerate() {
        let blk = blocks[k];
        let next = blocks[k + 1];
        match (run, run_entries[k]) {
            (Some(run), Some(enter)) => {
                let fall = if only_run.is_some() { None } else { Some(blk) };
                tx.run(plan, run, s as u32, start, fall, enter, next);
            }
            _ => {
                tx.b.switch_to_block(blk);
                tx.b.seal_block(blk);
                let r = &rules[s];
                let pos = part.start + s as u32;
                tx.rule(r.start, r.end, r.id.0, pos, next);
            }
        }
    }
    tx.b.switch_to_block(end);
    tx.b.seal_block(end);
    let c = tx.b.ins().iconst(types::I32, i64::from(env::C_END));
    tx.b.ins().return_(&[c]);
    tx.b.seal_all_blocks();
    tx.b.finalize(fe);
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
            Insn::Range { op, sreg, from, to } => {
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
                    BitwiseOp::MaskXor { mask, xor } => {
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

    /// A run of table-shaped rules (`runs`): one loop over its rows. `fall` (if any) is
    /// entered by the segment before (row 0), `enter` by the br_table or the entry block (row
    /// `start - first`, `first` = the run's first rule relative to the partition); `next`
    /// follows the run.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        plan: &Plan,
        run: &Run,
        first: u32,
        start: Value,
        fall: Option<Block>,
        enter: Block,
        next: Block,
    ) {
        let pre = self.b.create_block();
        let idx0 = self.b.append_block_param(pre, types::I32);
        let head = self.b.create_block();
        let i = self.b.append_block_param(head, types::I32);
        // Address of row i in column A (an induction variable: no multiply per row).
        let pa = self.b.append_block_param(head, types::I64);
        let body = self.b.create_block();
        let full = self.b.create_block();
        let hit = self.b.create_block();
        let count = self.b.create_block();
        let after = self.b.create_block();
        let leave = self.b.create_block();
        let step = self.b.create_block();

        if let Some(fall) = fall {
            self.b.switch_to_block(fall);
            self.b.seal_block(fall);
            let z = self.iconst(0);
            self.b.ins().jump(pre, &[z.into()]);
        }
        self.b.switch_to_block(enter);
        self.b.seal_block(enter);
        let ix = self.b.ins().iadd_imm_u(start, k(first.wrapping_neg()));
        self.b.ins().jump(pre, &[ix.into()]);

        // Preheader: every field once (branch-free), the mask of present fields.
        self.b.switch_to_block(pre);
        self.b.seal_block(pre);
        let mut okmask: Option<Value> = None;
        let mut always = 0u32;
        let mut vals = Vec::with_capacity(run.fields.len());
        for (j, f) in run.fields.iter().enumerate() {
            let (ok, v) = match *f {
                Field::Payload { base, off, len } => match self.bases[base_ix(base)] {
                    Some(bv) => {
                        let (ok, addr) =
                            bounds::clamped_addr(&mut self.b, self.a, bv, off, len, self.zero);
                        (Some(ok), bounds::load_words(&mut self.b, addr, len)[0])
                    }
                    None => {
                        let f = self.b.ins().iconst(types::I8, 0);
                        (Some(f), self.iconst(0))
                    }
                },
                Field::Meta(key) => self.meta_word(key),
            };
            vals.push(v);
            match ok {
                None => always |= 1 << j,
                Some(ok) => {
                    let w = self.b.ins().uextend(types::I32, ok);
                    let w = self.b.ins().ishl_imm_u(w, j as i64);
                    okmask = Some(match okmask {
                        Some(m) => self.b.ins().bor(m, w),
                        None => w,
                    });
                }
            }
        }
        // Bits of required fields that are missing (bit 31, NEVER, is always "missing").
        let notok = match okmask {
            Some(m) => {
                let m = self.b.ins().bor_imm_u(m, k(always));
                self.b.ins().bnot(m)
            }
            None => self.iconst(!always),
        };
        let tab = plan.table.as_ptr() as usize;
        let ta = self
            .b
            .ins()
            .iconst(types::I64, (tab + 4 * run.a_off) as i64);
        let tb = self
            .b
            .ins()
            .iconst(types::I64, (tab + 4 * run.b_off) as i64);
        let a_stride = 12 * run.pivots.len() as i64;
        let i0 = self.b.ins().uextend(types::I64, idx0);
        let i0 = self.b.ins().imul_imm_u(i0, a_stride);
        let pa0 = self.b.ins().iadd(ta, i0);
        self.b.ins().jump(head, &[idx0.into(), pa0.into()]);

        // head(i): past the last row → next segment.
        self.b.switch_to_block(head);
        let done = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, i, k(run.len()));
        self.b.ins().brif(done, next, &[], body, &[]);

        let tf = MemFlagsData::trusted().with_readonly();
        // One failing test: ((v & mask) - lo) > d, or <= d when negated.
        let slot_fails = |tx: &mut Self, base: Value, at: i32, v: Value, neq: bool| {
            let m = tx.b.ins().load(types::I32, tf, base, at);
            let lo = tx.b.ins().load(types::I32, tf, base, at + 4);
            let d = tx.b.ins().load(types::I32, tf, base, at + 8);
            let x = tx.b.ins().band(v, m);
            let x = tx.b.ins().isub(x, lo);
            let cc = if neq {
                IntCC::UnsignedLessThanOrEqual
            } else {
                IntCC::UnsignedGreaterThan
            };
            tx.b.ins().icmp(cc, x, d)
        };

        // body: the pivot tests from column A, branch-free, one branch.
        self.b.switch_to_block(body);
        self.b.seal_block(body);
        if run.pivots.is_empty() {
            self.b.ins().jump(full, &[]);
        } else {
            let mut fail: Option<Value> = None;
            for (n, &p) in run.pivots.iter().enumerate() {
                let (fj, neq) = run.slots[p];
                let f = slot_fails(self, pa, 12 * n as i32, vals[fj], neq);
                fail = Some(match fail {
                    Some(x) => self.b.ins().bor(x, f),
                    None => f,
                });
            }
            if let Some(fail) = fail {
                self.b.ins().brif(fail, step, &[], full, &[]);
            }
        }

        // full: required fields, then every other slot, one branch.
        self.b.switch_to_block(full);
        self.b.seal_block(full);
        let i64v = self.b.ins().uextend(types::I64, i);
        let off = self.b.ins().imul_imm_u(i64v, (4 * run.b_stride) as i64);
        let pb = self.b.ins().iadd(tb, off);
        let req = self.b.ins().load(types::I32, tf, pb, 0);
        let bad = self.b.ins().band(req, notok);
        let mut fail = self.b.ins().icmp_imm_u(IntCC::NotEqual, bad, 0);
        let mut at = 4;
        let others: Vec<(usize, bool)> = run.other_slots().collect();
        for (fj, neq) in others {
            let f = slot_fails(self, pb, at, vals[fj], neq);
            fail = self.b.ins().bor(fail, f);
            at += 12;
        }
        self.b.ins().brif(fail, step, &[], hit, &[]);

        // hit: counter (when the rule has one), then the verdict.
        self.b.switch_to_block(hit);
        self.b.seal_block(hit);
        let ctr = self.b.ins().load(types::I32, tf, pb, at);
        self.b.ins().brif(ctr, count, &[], after, &[]);
        self.b.switch_to_block(count);
        self.b.seal_block(count);
        {
            let t = MemFlagsData::trusted();
            let base = self.b.ins().load(types::I64, t, self.env, 0);
            let c = self.b.ins().uextend(types::I64, ctr);
            let c = self.b.ins().ishl_imm_u(c, 4);
            let addr = self.b.ins().iadd(base, c);
            // Counter id + 1 was stored: step back one 16-byte counter.
            self.bump_counter_at(addr, -16);
        }
        self.b.ins().jump(after, &[]);
        self.b.switch_to_block(after);
        self.b.seal_block(after);
        let code = self.b.ins().load(types::I32, tf, pb, at + 4);
        let cont = self
            .b
            .ins()
            .icmp_imm_u(IntCC::Equal, code, k(env::C_CONTINUE));
        self.b.ins().brif(cont, step, &[], leave, &[]);

        // leave: jump chain, resume = the rule after this row, return the code.
        self.b.switch_to_block(leave);
        self.b.seal_block(leave);
        let ch = self.b.ins().load(types::I32, tf, pb, at + 8);
        self.b.ins().store(
            MemFlagsData::trusted(),
            ch,
            self.env,
            offset_of!(Env, jump_chain) as i32,
        );
        let r = self.b.ins().iadd_imm_u(i, k(run.start + 1));
        self.b.ins().store(
            MemFlagsData::trusted(),
            r,
            self.env,
            offset_of!(Env, resume) as i32,
        );
        self.b.ins().return_(&[code]);

        // step: next row.
        self.b.switch_to_block(step);
        self.b.seal_block(step);
        let i1 = self.b.ins().iadd_imm_u(i, 1);
        let pa1 = self.b.ins().iadd_imm_u(pa, a_stride);
        self.b.ins().jump(head, &[i1.into(), pa1.into()]);
        self.b.seal_block(head);
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
        let inline = klen <= 4
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
                    .iter()
                    .map(|e| (key(&e.from), key(&e.to), e.data)),
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
