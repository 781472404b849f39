//! `Program::verify`: the only way to a `VerifiedProgram` (what the interpreter and the JIT
//! run). Checks what the kernel checks at commit time: register bounds (multi-register values
//! included), no read of a register never written earlier in the same rule (`reg_inited`),
//! valid chain/set/counter/limit targets, set key and data lengths, no jump to a base chain,
//! an acyclic jump graph and a depth below `NFT_JUMP_STACK_SIZE` (16), like
//! `nft_chain_validate`.

use crate::ids::{ChainId, InsnIdx, NFT_REG32_COUNT, Reg, RuleId, SetId};
use crate::insn::{BitwiseOp, Insn, LimitType, LookupDest, NatKind, NumgenKind};
use crate::program::{ChainKind, ElemData, Obj, Program, SetDataType, SetKind};
use crate::verdict::{ChainVerdict, NFT_JUMP_STACK_SIZE};
use std::fmt;

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyErrorKind {
    /// `len` bytes starting at `reg` run past the 16 data registers.
    RegOutOfBounds {
        reg: Reg,
        len: usize,
    },
    /// The register is read before anything in this rule wrote it.
    RegNotInit {
        reg: Reg,
    },
    /// A length is 0 or too big for this instruction (`what` names the operand).
    BadLength {
        what: &'static str,
        len: usize,
    },
    /// The instruction's operands do not fit together (`what` says how).
    BadOperand {
        what: &'static str,
    },
    UnknownChain(ChainId),
    UnknownSet(SetId),
    UnknownCounter(u32),
    UnknownLimit(u32),
    /// jump/goto to a base chain (`-ELOOP`).
    JumpToBaseChain(ChainId),
    /// The jump graph has a cycle through this chain (`-ELOOP`).
    Loop(ChainId),
    /// This base chain reaches chains 16 or more jumps deep (`-EMLINK`).
    TooDeep {
        depth: usize,
    },
    /// Lookup register width vs set key, or dest vs set data type.
    SetMismatch {
        set: SetId,
        what: &'static str,
    },
    /// A set element is malformed.
    BadSetElem {
        set: SetId,
        what: &'static str,
    },
    /// A rule's instruction range or chain is inconsistent.
    BadRule,
    /// A classifier's run, dimensions or trees are malformed (`what` says how).
    BadClassifier {
        what: &'static str,
    },
}

/// A typed verification error naming the chain, rule and instruction where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Chain id and name, if the error is inside a chain.
    pub chain: Option<(ChainId, String)>,
    pub rule: Option<RuleId>,
    /// Instruction (global index) and its source span from the debug table.
    pub insn: Option<InsnIdx>,
    pub span: Option<(u32, u32)>,
    pub kind: VerifyErrorKind,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some((id, name)) = &self.chain {
            write!(f, " in chain {name} (#{})", id.0)?;
        }
        if let Some(r) = self.rule {
            write!(f, ", rule #{}", r.0)?;
        }
        if let Some(i) = self.insn {
            write!(f, ", insn #{}", i.0)?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyError {}

/// Precomputed token bucket parameters (nft_limit_init).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitParams {
    /// `unit * NSEC_PER_SEC`.
    pub nsecs: u64,
    pub rate: u64,
    /// Bucket size (and initial tokens).
    pub tokens_max: u64,
    /// Cost of one packet (packets mode).
    pub cost: u64,
    pub bytes: bool,
    pub invert: bool,
}

/// A rule as the interpreter walks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleDp {
    /// First instruction (index into `Program::insns`).
    pub start: u32,
    /// One past the last instruction.
    pub end: u32,
    pub id: RuleId,
    /// The rule's lowered fast-path ops (range in the private op array).
    pub(crate) op_start: u32,
    pub(crate) op_end: u32,
    /// 1 + the index of the classifier whose run holds this rule, or 0.
    pub(crate) class: u32,
}

/// A verified program: immutable, executable.
#[derive(Clone, Debug)]
pub struct VerifiedProgram {
    pub(crate) prog: Program,
    /// Per chain, its rules' instruction ranges.
    pub(crate) chain_rules: Vec<Vec<RuleDp>>,
    pub(crate) limits: Vec<LimitParams>,
    /// The first value of each `numgen inc` counter (`modulus - 1`, as `nft_ng_inc_init` sets it),
    /// per slot.
    pub(crate) numgen_init: Vec<u32>,
    /// Fast-path form of every rule (ranges in `RuleDp::op_start..op_end`).
    pub(crate) ops: Vec<crate::fast::Op>,
}

impl VerifiedProgram {
    /// The program.
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Give the program back (to edit and verify again).
    pub fn into_program(self) -> Program {
        self.prog
    }

    /// Limit parameters, per `LimitId`.
    pub fn limit_params(&self) -> &[LimitParams] {
        &self.limits
    }

    /// The same program with the interpreter's fast path turned off: every instruction is
    /// evaluated through the generic `Insn` path. For differential tests (fast path vs generic,
    /// later JIT vs interpreter); results must be identical.
    #[doc(hidden)]
    pub fn generic_only(mut self) -> Self {
        self.ops.clear();
        for rules in &mut self.chain_rules {
            for r in rules.iter_mut() {
                r.op_start = self.ops.len() as u32;
                self.ops
                    .extend((r.start..r.end).map(crate::fast::Op::Generic));
                r.op_end = self.ops.len() as u32;
            }
        }
        self
    }

    /// Rules of a chain in order (empty for an unknown chain).
    pub fn chain_rules(&self, chain: ChainId) -> &[RuleDp] {
        self.chain_rules
            .get(chain.0 as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

struct Ctx<'a> {
    prog: &'a Program,
    chain: Option<ChainId>,
    rule: Option<RuleId>,
    insn: Option<InsnIdx>,
}

impl Ctx<'_> {
    fn err(&self, kind: VerifyErrorKind) -> VerifyError {
        VerifyError {
            chain: self.chain.map(|c| {
                let name = self
                    .prog
                    .chains
                    .get(c.0 as usize)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                (c, name)
            }),
            rule: self.rule,
            insn: self.insn,
            span: self.insn.and_then(|i| self.prog.span(i)),
            kind,
        }
    }
}

/// Register initialisation state of one rule (bit n = 32-bit register n was written).
struct Regs(u32);

impl Regs {
    fn span(reg: Reg, len: usize) -> Result<u32, VerifyErrorKind> {
        let words = Reg::words(len);
        if len == 0 {
            return Err(VerifyErrorKind::BadLength {
                what: "register",
                len,
            });
        }
        if usize::from(reg.0) + words > NFT_REG32_COUNT {
            return Err(VerifyErrorKind::RegOutOfBounds { reg, len });
        }
        Ok((((1u64 << words) - 1) << reg.0) as u32)
    }
    fn load(&self, reg: Reg, len: usize) -> Result<(), VerifyErrorKind> {
        let m = Self::span(reg, len)?;
        if self.0 & m != m {
            let first = (!self.0 & m).trailing_zeros() as u8;
            return Err(VerifyErrorKind::RegNotInit { reg: Reg(first) });
        }
        Ok(())
    }
    fn store(&mut self, reg: Reg, len: usize) -> Result<(), VerifyErrorKind> {
        self.0 |= Self::span(reg, len)?;
        Ok(())
    }
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), VerifyErrorKind> {
    if len == 0 || len > max {
        Err(VerifyErrorKind::BadLength { what, len })
    } else {
        Ok(())
    }
}

/// The structure of a classifier over a chain of `nrules` rules: run bounds, dimensions, and
/// trees whose every pointer stays inside them, moves forward, and names rules of the run in
/// order (so every walk is finite and in bounds; what it finds is the builder's business).
fn check_classifier(cls: &crate::classify::Classifier, nrules: usize) -> Result<(), &'static str> {
    use crate::classify::{LEAF, MAX_DIMS, node_parts};
    if cls.start >= cls.end || cls.end as usize > nrules || cls.end >= crate::classify::NONE {
        return Err("run outside its chain");
    }
    if cls.rules.len() != cls.len() {
        return Err("rule table length");
    }
    if cls.dims.len() > MAX_DIMS
        || cls
            .dims
            .iter()
            .any(|d| d.field.is_empty() || d.mask > d.max())
    {
        return Err("dimensions");
    }
    let qw = crate::classify::quad_words(cls.dims.len());
    for t in &cls.trees {
        // Leaves, in order: each a count of quads, the quads' positions in the run and in
        // order (unused places `NONE`, last).
        let mut starts = vec![false; t.leaves.len() + 1];
        let mut off = 0usize;
        while off < t.leaves.len() {
            starts[off] = true;
            let g = t.leaves[off] as usize;
            let end = g
                .checked_mul(qw)
                .and_then(|x| x.checked_add(off + 1))
                .filter(|&e| e <= t.leaves.len())
                .ok_or("leaf past the end")?;
            let mut last = cls.start;
            let mut done = false;
            for q in t.leaves[off + 1..end].chunks_exact(qw) {
                for &p in &q[..crate::classify::QUAD] {
                    if p == crate::classify::NONE {
                        done = true;
                    } else if done || p < last || p >= cls.end {
                        return Err("leaf entry outside the run or out of order");
                    } else {
                        last = p;
                    }
                }
            }
            off = end;
        }
        let ok_ptr = |p: u64, after: Option<usize>| -> Result<(), &'static str> {
            if p & LEAF != 0 {
                let o = (p & !LEAF) as usize;
                if p & !LEAF > u64::from(u32::MAX) || !starts.get(o).copied().unwrap_or(false) {
                    return Err("leaf pointer");
                }
                return Ok(());
            }
            let (base, nb, shift, dim) = node_parts(p);
            let bits = cls.dims.get(dim).ok_or("cut dimension")?.bits();
            if p >> 52 != 0
                || (p >> 37) & 7 != 0
                || (p >> 45) & 7 != 0
                || !(1..=16).contains(&nb)
                || shift + nb > bits
                || base + (1usize << nb) > t.nodes.len()
                || after.is_some_and(|a| base <= a)
            {
                return Err("node pointer");
            }
            Ok(())
        };
        if t.root & LEAF != 0 && t.leaves.is_empty() {
            return Err("empty tree");
        }
        ok_ptr(t.root, None)?;
        for (i, &p) in t.nodes.iter().enumerate() {
            ok_ptr(p, Some(i))?;
        }
    }
    Ok(())
}

/// The jump edges of a verdict: target chain, if any.
fn verdict_target(v: &ChainVerdict) -> Option<ChainId> {
    match v {
        ChainVerdict::Jump(c) | ChainVerdict::Goto(c) => Some(*c),
        _ => None,
    }
}

impl Program {
    /// Verify and freeze the program. See the module docs for the checks.
    pub fn verify(self) -> Result<VerifiedProgram, VerifyError> {
        let mut cx = Ctx {
            prog: &self,
            chain: None,
            rule: None,
            insn: None,
        };
        let nchains = self.chains.len();
        let check_target = |cx: &Ctx, c: ChainId| -> Result<(), VerifyError> {
            match self.chains.get(c.0 as usize) {
                None => Err(cx.err(VerifyErrorKind::UnknownChain(c))),
                Some(ch) if matches!(ch.kind, ChainKind::Base { .. }) => {
                    Err(cx.err(VerifyErrorKind::JumpToBaseChain(c)))
                }
                Some(_) => Ok(()),
            }
        };

        // Sets: key lengths, elements, verdict targets.
        let mut set_edges: Vec<Vec<ChainId>> = Vec::with_capacity(self.sets.len());
        for (si, set) in self.sets.iter().enumerate() {
            let sid = SetId(si as u32);
            let bad = |what| cx.err(VerifyErrorKind::BadSetElem { set: sid, what });
            let klen = usize::from(set.key_len);
            check_len("set key", klen, NFT_REG32_COUNT * 4).map_err(|k| cx.err(k))?;
            if let SetDataType::Data(n) = set.data_type {
                check_len("map data", usize::from(n), 16).map_err(|k| cx.err(k))?;
            }
            if let SetKind::ConcatInterval { field_lens } = &set.kind {
                let total: usize = field_lens
                    .iter()
                    .map(|&l| usize::from(l).div_ceil(4) * 4)
                    .sum();
                if total != klen || field_lens.contains(&0) {
                    return Err(bad("concatenation field lengths do not add up to the key"));
                }
            }
            let mut edges = Vec::new();
            let mut check_data = |d: &ElemData| -> Result<(), VerifyError> {
                match (d, set.data_type) {
                    (ElemData::None, SetDataType::None) => Ok(()),
                    (ElemData::Data(x), SetDataType::Data(n)) if x.len() == usize::from(n) => {
                        Ok(())
                    }
                    (ElemData::Object(o), SetDataType::Object(t)) if o.ty() == t => match o {
                        Obj::Counter(c) if c.0 as usize >= self.counters.len() => {
                            Err(cx.err(VerifyErrorKind::UnknownCounter(c.0)))
                        }
                        _ => Ok(()),
                    },
                    (ElemData::Verdict(v), SetDataType::Verdict) => {
                        if let Some(c) = verdict_target(v) {
                            check_target(&cx, c)?;
                            edges.push(c);
                        }
                        Ok(())
                    }
                    _ => Err(bad("element data does not match the set's data type")),
                }
            };
            if set.bad_key_len {
                return Err(bad("key length"));
            }
            if set.dynamic.is_some()
                && !(matches!(set.kind, SetKind::Hash)
                    && matches!(set.data_type, SetDataType::None | SetDataType::Data(_)))
            {
                return Err(bad("a dynamic set must be a hash set or a data map"));
            }
            for (_, d) in set.hash_elems() {
                check_data(d)?;
            }
            for e in set.interval_elems() {
                if matches!(set.kind, SetKind::Interval) && e.from > e.to {
                    return Err(bad("interval start after end"));
                }
                check_data(e.data)?;
            }
            if let Some(d) = &set.catchall {
                check_data(d)?;
            }
            if matches!(set.kind, SetKind::Interval) {
                for (a, b) in set.interval_elems().zip(set.interval_elems().skip(1)) {
                    if b.from <= a.to {
                        return Err(bad("overlapping intervals"));
                    }
                }
            }
            set_edges.push(edges);
        }

        // Limits.
        let mut limits = Vec::with_capacity(self.limits.len());
        for l in &self.limits {
            let bad = || {
                cx.err(VerifyErrorKind::BadOperand {
                    what: "limit rate/unit/burst",
                })
            };
            let bytes = l.ty == LimitType::Bytes;
            if l.rate == 0 {
                return Err(bad());
            }
            let nsecs = l.unit.checked_mul(1_000_000_000).ok_or_else(bad)?;
            let burst = if !bytes && l.burst == 0 {
                5
            } else {
                u64::from(l.burst)
            };
            let rate_with_burst = l.rate.checked_add(burst).ok_or_else(bad)?;
            let tokens_max = if bytes {
                nsecs.checked_mul(rate_with_burst).ok_or_else(bad)? / l.rate
            } else {
                (nsecs / l.rate).checked_mul(burst).ok_or_else(bad)?
            };
            limits.push(LimitParams {
                nsecs,
                rate: l.rate,
                tokens_max,
                cost: nsecs / l.rate,
                bytes,
                invert: l.invert,
            });
        }

        // Rules and instructions.
        let mut edges: Vec<Vec<ChainId>> = vec![Vec::new(); nchains];
        let mut chain_rules = Vec::with_capacity(nchains);
        let mut ops = Vec::with_capacity(self.insns.len());
        let mut numgen_init: Vec<Option<u32>> = Vec::new();
        for (ci, chain) in self.chains.iter().enumerate() {
            let cid = ChainId(ci as u32);
            cx.chain = Some(cid);
            let mut dp = Vec::with_capacity(chain.rules.len());
            for &rid in &chain.rules {
                cx.rule = Some(rid);
                cx.insn = None;
                let rule = self
                    .rules
                    .get(rid.0 as usize)
                    .ok_or_else(|| cx.err(VerifyErrorKind::BadRule))?;
                if rule.chain != cid
                    || rule.start > rule.end
                    || rule.end.0 as usize > self.insns.len()
                {
                    return Err(cx.err(VerifyErrorKind::BadRule));
                }
                let mut regs = Regs(0);
                for i in rule.start.0..rule.end.0 {
                    cx.insn = Some(InsnIdx(i));
                    let insn = &self.insns[i as usize];
                    self.verify_insn(insn, &mut regs, &set_edges, &mut edges[ci])
                        .map_err(|k| cx.err(k))?;
                    if let Insn::Numgen {
                        kind: NumgenKind::Inc { slot },
                        modulus,
                        ..
                    } = insn
                    {
                        let bad = |what| cx.err(VerifyErrorKind::BadOperand { what });
                        let s = *slot as usize;
                        if s >= self.insns.len() {
                            return Err(bad("numgen counter slot out of range"));
                        }
                        if numgen_init.len() <= s {
                            numgen_init.resize(s + 1, None);
                        }
                        if numgen_init[s].replace(modulus.wrapping_sub(1)).is_some() {
                            return Err(bad("numgen counter slot used twice"));
                        }
                    }
                    if let Insn::ImmVerdict(v) = insn
                        && let Some(c) = verdict_target(v)
                    {
                        check_target(&cx, c)?;
                    }
                }
                let op_start = ops.len() as u32;
                crate::fast::lower_rule(
                    &self.insns[rule.start.0 as usize..rule.end.0 as usize],
                    rule.start.0,
                    &mut ops,
                );
                dp.push(RuleDp {
                    start: rule.start.0,
                    end: rule.end.0,
                    id: rid,
                    op_start,
                    op_end: ops.len() as u32,
                    class: 0,
                });
            }
            chain_rules.push(dp);
        }
        cx.rule = None;
        cx.insn = None;
        for r in &self.rules {
            cx.chain = Some(r.chain);
            if self.chains.get(r.chain.0 as usize).is_none() {
                return Err(cx.err(VerifyErrorKind::BadRule));
            }
        }

        // Classifiers: well-formed, over rules of their chain, not overlapping.
        cx.insn = None;
        for (k, cls) in self.classifiers.iter().enumerate() {
            cx.chain = Some(cls.chain);
            let bad = |what| cx.err(VerifyErrorKind::BadClassifier { what });
            let rules = chain_rules
                .get_mut(cls.chain.0 as usize)
                .ok_or_else(|| bad("unknown chain"))?;
            check_classifier(cls, rules.len()).map_err(bad)?;
            for r in &mut rules[cls.start as usize..cls.end as usize] {
                if r.class != 0 {
                    return Err(bad("runs overlap"));
                }
                r.class = k as u32 + 1;
            }
        }

        // Jump graph: cycles and depth (height = longest path in edges below a chain).
        let height = chain_heights(&edges).map_err(|c| {
            cx.chain = Some(c);
            cx.err(VerifyErrorKind::Loop(c))
        })?;
        for (ci, chain) in self.chains.iter().enumerate() {
            if let ChainKind::Base { .. } = chain.kind {
                let h = height.get(ci).copied().unwrap_or(0);
                if h >= NFT_JUMP_STACK_SIZE {
                    cx.chain = Some(ChainId(ci as u32));
                    return Err(cx.err(VerifyErrorKind::TooDeep { depth: h }));
                }
            }
        }

        Ok(VerifiedProgram {
            ops,
            prog: self,
            chain_rules,
            limits,
            numgen_init: numgen_init
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        })
    }

    fn verify_insn(
        &self,
        insn: &Insn,
        regs: &mut Regs,
        set_edges: &[Vec<ChainId>],
        edges: &mut Vec<ChainId>,
    ) -> Result<(), VerifyErrorKind> {
        use VerifyErrorKind as E;
        match insn {
            Insn::Payload { len, dreg, .. } => {
                check_len("payload", usize::from(*len), NFT_REG32_COUNT * 4)?;
                regs.store(*dreg, usize::from(*len))?;
            }
            Insn::PayloadWrite { len, sreg, .. } => {
                check_len("payload write", usize::from(*len), NFT_REG32_COUNT * 4)?;
                regs.load(*sreg, usize::from(*len))?;
            }
            Insn::Meta { key, dreg } => regs.store(*dreg, key.size())?,
            Insn::FibType { dreg, .. } => regs.store(*dreg, 4)?,
            Insn::Numgen {
                dreg,
                modulus,
                offset,
                ..
            } => {
                // nft_ng_inc_init / nft_ng_random_init: ERANGE, EOVERFLOW.
                if *modulus == 0 || offset.checked_add(modulus - 1).is_none() {
                    return Err(E::BadOperand {
                        what: "numgen modulus 0 or offset + modulus overflows",
                    });
                }
                regs.store(*dreg, 4)?;
            }
            Insn::MetaSet { key, sreg } => regs.load(*sreg, key.size())?,
            Insn::Ct { key, dir, dreg } => {
                if key.needs_dir() && dir.is_none() {
                    return Err(E::BadOperand {
                        what: "ct key needs a direction",
                    });
                }
                if !key.allows_dir() && dir.is_some() {
                    return Err(E::BadOperand {
                        what: "ct key takes no direction",
                    });
                }
                regs.store(*dreg, key.size())?;
            }
            Insn::CtSet { key, sreg } => regs.load(*sreg, key.size())?,
            Insn::Cmp { sreg, data, .. } => regs.load(*sreg, data.len())?,
            Insn::Range { sreg, bounds, .. } => {
                let (from, to) = (&bounds.from, &bounds.to);
                if from.len() != to.len() {
                    return Err(E::BadOperand {
                        what: "range bounds differ in length",
                    });
                }
                regs.load(*sreg, from.len())?;
            }
            Insn::Bitwise {
                sreg,
                dreg,
                len,
                op,
            } => {
                let len = usize::from(*len);
                match op {
                    BitwiseOp::MaskXor(mx) => {
                        let (mask, xor) = (&mx.mask, &mx.xor);
                        check_len("bitwise", len, 16)?;
                        if mask.len() != len || xor.len() != len {
                            return Err(E::BadOperand {
                                what: "bitwise mask/xor length differs from len",
                            });
                        }
                    }
                    BitwiseOp::Lshift(n) | BitwiseOp::Rshift(n) => {
                        check_len("bitwise", len, NFT_REG32_COUNT * 4)?;
                        if *n >= 32 {
                            return Err(E::BadOperand {
                                what: "shift of 32 bits or more",
                            });
                        }
                    }
                    BitwiseOp::And(r) | BitwiseOp::Or(r) | BitwiseOp::Xor(r) => {
                        check_len("bitwise", len, NFT_REG32_COUNT * 4)?;
                        regs.load(*r, len)?;
                    }
                }
                regs.load(*sreg, len)?;
                regs.store(*dreg, len)?;
            }
            Insn::Byteorder {
                sreg,
                dreg,
                len,
                size,
                ..
            } => {
                let (len, size) = (usize::from(*len), usize::from(*size));
                check_len("byteorder", len, NFT_REG32_COUNT * 4)?;
                if !matches!(size, 2 | 4 | 8) || len % size != 0 {
                    return Err(E::BadOperand {
                        what: "byteorder size must be 2, 4 or 8 and divide len",
                    });
                }
                regs.load(*sreg, len)?;
                regs.store(*dreg, len)?;
            }
            Insn::Lookup {
                sreg,
                set,
                dest,
                invert,
            } => {
                let s = self.sets.get(set.0 as usize).ok_or(E::UnknownSet(*set))?;
                regs.load(*sreg, usize::from(s.key_len))?;
                match (dest, s.data_type) {
                    (LookupDest::None, _) => {}
                    (LookupDest::Reg(d), SetDataType::Data(n)) => regs.store(*d, usize::from(n))?,
                    (LookupDest::Verdict, SetDataType::Verdict) => {
                        if let Some(e) = set_edges.get(set.0 as usize) {
                            edges.extend_from_slice(e);
                        }
                    }
                    _ => {
                        return Err(E::SetMismatch {
                            set: *set,
                            what: "lookup destination does not match the set's data type",
                        });
                    }
                }
                if *invert && *dest != LookupDest::None {
                    return Err(E::SetMismatch {
                        set: *set,
                        what: "inverted lookup cannot load data",
                    });
                }
            }
            Insn::Dynset {
                sreg,
                set,
                sreg_data,
                ..
            } => {
                let s = self.sets.get(set.0 as usize).ok_or(E::UnknownSet(*set))?;
                regs.load(*sreg, usize::from(s.key_len))?;
                if s.dynamic.is_none() {
                    return Err(E::SetMismatch {
                        set: *set,
                        what: "dynset needs a dynamic set",
                    });
                }
                match (s.data_type, sreg_data) {
                    (SetDataType::None, None) => {}
                    (SetDataType::Data(n), Some(d)) => regs.load(*d, usize::from(n))?,
                    _ => {
                        return Err(E::SetMismatch {
                            set: *set,
                            what: "dynset data register does not match the set's data type",
                        });
                    }
                }
            }
            Insn::Objref { sreg, set } => {
                let s = self.sets.get(set.0 as usize).ok_or(E::UnknownSet(*set))?;
                regs.load(*sreg, usize::from(s.key_len))?;
                if !matches!(s.data_type, SetDataType::Object(_)) {
                    return Err(E::SetMismatch {
                        set: *set,
                        what: "objref needs an object map",
                    });
                }
            }
            Insn::Immediate { dreg, data } => regs.store(*dreg, data.len())?,
            Insn::ImmVerdict(v) => {
                if let Some(c) = verdict_target(v) {
                    edges.push(c);
                }
            }
            Insn::Counter(c) => {
                if c.0 as usize >= self.counters.len() {
                    return Err(E::UnknownCounter(c.0));
                }
            }
            Insn::Limit(l) => {
                if l.0 as usize >= self.limits.len() {
                    return Err(E::UnknownLimit(l.0));
                }
            }
            Insn::Log(_) | Insn::Reject { .. } | Insn::Notrack | Insn::Queue { .. } => {}
            Insn::Exthdr {
                len, dreg, present, ..
            } => {
                check_len("exthdr", usize::from(*len), NFT_REG32_COUNT * 4)?;
                regs.store(*dreg, if *present { 1 } else { usize::from(*len) })?;
            }
            Insn::Nat(n) => {
                let alen = match n.family {
                    crate::pkt::NFPROTO_IPV4 => 4,
                    crate::pkt::NFPROTO_IPV6 => 16,
                    crate::pkt::NFPROTO_INET if n.addr_min.is_none() => 4,
                    _ => {
                        return Err(E::BadOperand {
                            what: "nat family must be ip or ip6 (inet without addresses)",
                        });
                    }
                };
                if matches!(n.kind, NatKind::Masquerade | NatKind::Redirect)
                    && (n.addr_min.is_some() || n.addr_max.is_some())
                {
                    return Err(E::BadOperand {
                        what: "masquerade/redirect take no addresses",
                    });
                }
                for r in [n.addr_min, n.addr_max].into_iter().flatten() {
                    regs.load(r, alen)?;
                }
                for r in [n.proto_min, n.proto_max].into_iter().flatten() {
                    regs.load(r, 2)?;
                }
            }
        }
        Ok(())
    }
}

/// Longest jump path (in edges) below every chain; `Err(chain)` on a cycle through `chain`.
/// Iterative depth-first search (no recursion: hostile programs with many chains cannot
/// overflow the stack).
fn chain_heights(edges: &[Vec<ChainId>]) -> Result<Vec<usize>, ChainId> {
    const NEW: u8 = 0;
    const ON_STACK: u8 = 1;
    const DONE: u8 = 2;
    let n = edges.len();
    let mut height = vec![0usize; n];
    let mut mark = vec![NEW; n];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if mark[root] != NEW {
            continue;
        }
        mark[root] = ON_STACK;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (c, next) = *top;
            if let Some(t) = edges[c].get(next) {
                top.1 += 1;
                let t = t.0 as usize;
                match mark.get(t) {
                    Some(&NEW) => {
                        mark[t] = ON_STACK;
                        stack.push((t, 0));
                    }
                    Some(&ON_STACK) => return Err(ChainId(t as u32)),
                    _ => {}
                }
            } else {
                height[c] = edges[c]
                    .iter()
                    .filter_map(|t| height.get(t.0 as usize).map(|h| h + 1))
                    .max()
                    .unwrap_or(0);
                mark[c] = DONE;
                stack.pop();
            }
        }
    }
    Ok(height)
}
