//! The reference interpreter: `VerifiedProgram::run`, with `nft_do_chain`'s exact semantics
//! (NFTABLES.md §3). Per rule the verdict register starts as NFT_CONTINUE and evaluation stops
//! at the first expression that changes it; BREAK or CONTINUE at rule end go to the next rule;
//! accept/drop/queue/stolen/repeat are returned; JUMP pushes the return point on a 16-deep
//! stack (a full stack drops, like the kernel's WARN path) and continues as GOTO; RETURN or the
//! end of a chain pops, and an empty stack returns the base chain's policy.
//!
//! Out-of-bounds payload loads, transport loads without a transport header or on a non-first
//! fragment, and keys the packet lacks (no conntrack entry, no socket, no device) all give
//! NFT_BREAK — never a panic.
//!
//! Side effects go to three places so a JIT can reproduce them exactly: `State` (counters,
//! limit buckets: persistent across packets), `PktState` (mark, pkttype, ct mark, ct state after
//! notrack: visible to later expressions, like skb fields) and `Effects` (per packet records:
//! logs, reject, NAT requests, payload writes, trace).

use crate::classify::{Classifier, Dim, Field, MAX_DIMS};
use crate::dynset::DynSet;
use crate::fast::Op;
use crate::ids::{ChainId, NFT_REG32_COUNT, Reg, RuleId, SetId};
use crate::insn::{
    BitwiseOp, CmpOp, CtDir, CtKey, CtSetKey, Data, DynsetOp, ExthdrOp, Insn, LogSpec, LookupDest,
    MetaKey, MetaSetKey, NatKind, NumgenKind, PayloadBase, RangeOp,
};
use crate::pkt::{self, PktState, ct_state};
use crate::prandom::Prandom;
use crate::program::{ChainKind, Counter, ElemData, Obj, Policy};
use crate::verdict::{ChainVerdict, NFT_JUMP_STACK_SIZE, Verdict};
use crate::verify::{LimitParams, RuleDp, VerifiedProgram};
use std::cmp::Ordering;

/// Token bucket state of one `limit`; `repr(C)` so native code can update it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitState {
    pub tokens: u64,
    /// Time of the last update (ns, packet time).
    pub last: u64,
    /// False until the first packet: the bucket starts full at that packet's time.
    pub started: bool,
}

impl LimitState {
    /// `nft_limit_eval` for one packet at time `now` (ns) of `len` bytes: refill the bucket by
    /// the time elapsed (capped at `tokens_max`), take the packet's cost if there are enough
    /// tokens. True when the rule must break (over the limit, or under it with `invert`).
    pub fn over_limit(&mut self, p: &LimitParams, now: u64, len: u32) -> bool {
        if !self.started {
            self.started = true;
            self.last = now;
        }
        // `verify` refuses rate 0; `max(1)` only keeps this function panic-free on its own.
        let cost = if p.bytes {
            (u128::from(p.nsecs) * u128::from(len) / u128::from(p.rate.max(1))) as u64
        } else {
            p.cost
        };
        let tokens = self
            .tokens
            .saturating_add(now.saturating_sub(self.last))
            .min(p.tokens_max);
        self.last = self.last.max(now);
        if let Some(left) = tokens.checked_sub(cost) {
            self.tokens = left;
            p.invert
        } else {
            self.tokens = tokens;
            !p.invert
        }
    }
}

/// Persistent mutable state of a program across packets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Per `CounterId`.
    pub counters: Vec<Counter>,
    /// Per `LimitId`.
    pub limits: Vec<LimitState>,
    /// Total instructions executed (for benchmarks and traces).
    pub insns_executed: u64,
    /// Per `numgen inc` slot, its counter.
    pub numgen: Vec<u32>,
    /// The generator of `numgen random` and `meta random`.
    pub prandom: Prandom,
    /// Per `SetId`, the run-time elements of a dynamic set (`Set::dynamic`; empty for the others).
    pub dynsets: Vec<DynSet>,
}

impl State {
    /// Fresh state for a program (counters at their initial values, buckets full).
    pub fn new(prog: &VerifiedProgram) -> State {
        State {
            counters: prog.prog.counters.clone(),
            limits: prog
                .limits
                .iter()
                .map(|l| LimitState {
                    tokens: l.tokens_max,
                    last: 0,
                    started: false,
                })
                .collect(),
            insns_executed: 0,
            numgen: prog.numgen_init.clone(),
            prandom: Prandom::default(),
            dynsets: dynsets(prog),
        }
    }

    /// Fresh state whose random numbers come from `seed`.
    pub fn with_seed(prog: &VerifiedProgram, seed: u64) -> State {
        State {
            prandom: Prandom::new(seed),
            ..State::new(prog)
        }
    }
}

/// The run-time elements of the program's dynamic sets (none when it has none).
fn dynsets(prog: &VerifiedProgram) -> Vec<DynSet> {
    let sets = &prog.prog.sets;
    if sets.iter().all(|s| s.dynamic.is_none()) {
        return Vec::new();
    }
    sets.iter()
        .map(|s| match &s.dynamic {
            Some(spec) => DynSet::new(s, spec),
            None => DynSet::default(),
        })
        .collect()
}

/// A `log` statement that fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub rule: RuleId,
    pub spec: LogSpec,
}

/// A NAT request: what the runtime must set up (`nf_nat_setup_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatRequest {
    pub kind: NatKind,
    pub family: u8,
    /// Addresses (network order; IPv4 in the first 4 bytes), if given.
    pub addr_min: Option<[u8; 16]>,
    pub addr_max: Option<[u8; 16]>,
    /// Ports (host-order values), if given.
    pub proto_min: Option<u16>,
    pub proto_max: Option<u16>,
    pub flags: u32,
}

/// A payload write request (applied by the runtime when the chain returns; later loads in the same
/// chain still see the original bytes — a documented difference from the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadWriteReq {
    /// Absolute offset in the packet bytes.
    pub offset: usize,
    pub bytes: Vec<u8>,
    /// Absolute offset of the checksum the write updates (`NFT_PAYLOAD_CSUM_INET`: base + `csum_offset`).
    pub csum_at: Option<usize>,
    pub csum_type: u8,
    pub csum_offset: u32,
    pub csum_flags: u32,
}

/// One trace event (with `Effects::trace_enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A rule was evaluated and ended with this verdict register value.
    Rule {
        chain: ChainId,
        rule: RuleId,
        verdict: ChainVerdict,
    },
    /// The base chain policy was applied.
    Policy { chain: ChainId, verdict: Verdict },
}

/// Per-packet side-effect records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// `meta mark` was set (the value is in `PktState::mark`).
    pub mark_set: bool,
    /// `ct mark` was set (the value is in `PktState::ct_mark`; the runtime copies it back).
    pub ct_mark_set: bool,
    /// `ct zone set` value.
    pub ct_zone: Option<u16>,
    /// `ct helper set`: the helper type name, NUL-padded (see `CtSetKey::Helper`).
    pub ct_helper: Option<[u8; 16]>,
    /// `meta priority set` value.
    pub priority: Option<u32>,
    /// `meta nftrace set` value.
    pub nftrace: Option<u8>,
    /// `notrack` made the packet untracked.
    pub notrack: bool,
    /// `reject` (type, code) — the verdict is drop.
    pub reject: Option<(u8, u8)>,
    pub logs: Vec<LogRecord>,
    pub nat: Vec<NatRequest>,
    pub payload_writes: Vec<PayloadWriteReq>,
    /// Record `trace` events.
    pub trace_enabled: bool,
    pub trace: Vec<TraceEvent>,
}

impl Effects {
    /// Clear the records, keeping `trace_enabled` and the allocations. Inlined: when the lists
    /// are empty (most packets) this is a few stores and four length tests.
    #[inline]
    pub fn clear(&mut self) {
        self.mark_set = false;
        self.ct_mark_set = false;
        self.ct_zone = None;
        self.ct_helper = None;
        self.priority = None;
        self.nftrace = None;
        self.notrack = false;
        self.reject = None;
        if !(self.logs.is_empty()
            && self.nat.is_empty()
            && self.payload_writes.is_empty()
            && self.trace.is_empty())
        {
            self.clear_lists();
        }
    }

    /// Nothing for the hook to apply: no reject, log, NAT, payload write or conntrack change
    /// (`mark`, `priority` and `nftrace` are in the packet already).
    #[inline]
    pub fn is_quiet(&self) -> bool {
        !self.ct_mark_set
            && !self.notrack
            && self.ct_zone.is_none()
            && self.ct_helper.is_none()
            && self.reject.is_none()
            && self.logs.is_empty()
            && self.nat.is_empty()
            && self.payload_writes.is_empty()
    }

    #[cold]
    #[inline(never)]
    fn clear_lists(&mut self) {
        self.logs.clear();
        self.nat.clear();
        self.payload_writes.clear();
        self.trace.clear();
    }
}

/// `nft_do_chain`'s jump stack (the interpreter's and the JIT's driver loop's): (chain, rule
/// position) return points, 16 deep. The frames are made (zeroed) at the first jump rather than
/// on every call: most packets never jump.
#[derive(Debug, Default)]
pub struct JumpStack {
    frames: Option<[(ChainId, u32); NFT_JUMP_STACK_SIZE]>,
    sp: usize,
}

impl JumpStack {
    /// Push a return point; false when the stack is full (the kernel WARNs and drops).
    #[inline]
    pub fn push(&mut self, chain: ChainId, pos: usize) -> bool {
        let frames = self
            .frames
            .get_or_insert([(ChainId(0), 0); NFT_JUMP_STACK_SIZE]);
        let Some(f) = frames.get_mut(self.sp) else {
            return false;
        };
        *f = (chain, pos as u32);
        self.sp += 1;
        true
    }

    /// Pop the last return point (`None`: the stack is empty).
    #[inline]
    pub fn pop(&mut self) -> Option<(ChainId, usize)> {
        self.sp = self.sp.checked_sub(1)?;
        let (c, p) = *self.frames.as_ref()?.get(self.sp)?;
        Some((c, p as usize))
    }
}

/// The register file: 16 words; word bytes are `to_le_bytes()` (see `insn` module docs).
pub type Regs = [u32; NFT_REG32_COUNT];

#[inline]
fn reg_bytes(regs: &Regs, reg: Reg, len: usize, out: &mut [u8; 64]) -> usize {
    let start = usize::from(reg.0);
    let words = Reg::words(len);
    for (i, w) in regs.iter().skip(start).take(words).enumerate() {
        if let Some(d) = out.get_mut(i * 4..i * 4 + 4) {
            d.copy_from_slice(&w.to_le_bytes());
        }
    }
    len.min(64)
}

#[inline]
fn store_bytes(regs: &mut Regs, reg: Reg, bytes: &[u8]) {
    let start = usize::from(reg.0);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        if let Some(r) = regs.get_mut(start + i) {
            *r = u32::from_le_bytes(w);
        }
    }
}

#[inline]
fn store_word(regs: &mut Regs, reg: Reg, v: u32) {
    if let Some(r) = regs.get_mut(usize::from(reg.0)) {
        *r = v;
    }
}

#[inline]
fn load_word(regs: &Regs, reg: Reg) -> u32 {
    regs.get(usize::from(reg.0)).copied().unwrap_or(0)
}

/// memcmp of the register bytes against `data`.
#[inline]
fn reg_cmp(regs: &Regs, reg: Reg, data: &Data) -> Ordering {
    let len = data.len();
    if len <= 4 {
        let mask = if len == 4 {
            u32::MAX
        } else {
            (1u32 << (len * 8)) - 1
        };
        let a = (load_word(regs, reg) & mask).swap_bytes();
        let b = data.words().next().unwrap_or(0).swap_bytes();
        return a.cmp(&b);
    }
    let mut buf = [0u8; 64];
    reg_bytes(regs, reg, len, &mut buf);
    buf[..len].cmp(data.bytes())
}

impl VerifiedProgram {
    /// Run `chain` on one packet (`pkt` bytes per the `PktState` docs) and return the final
    /// netfilter verdict. `st` receives skb/ct field writes; `state` counters and limits;
    /// `fx` the per-packet records (cleared by the caller, see `Effects::clear`).
    ///
    /// Entering a user chain directly returns `Verdict::Accept` when it runs off its end.
    pub fn run(
        &self,
        state: &mut State,
        chain: ChainId,
        pkt: &[u8],
        st: &mut PktState,
        fx: &mut Effects,
    ) -> Verdict {
        let prog = &self.prog;
        let mut regs: Regs = [0; NFT_REG32_COUNT];
        let mut stack = JumpStack::default();
        let mut cur = chain;
        let mut pos = 0usize;
        let mut executed = 0u64;
        let mut rules = self.chain_rules(cur);
        let trace = fx.trace_enabled;
        // The key of the classifier `key_for` (u32::MAX: none read), complete or not.
        let mut key = [0u32; MAX_DIMS];
        let (mut key_for, mut present) = (u32::MAX, 0u32);
        let out = loop {
            // A rule the classifier found, exact with a simple tail: its counter and verdict
            // without running its head.
            let mut row = None;
            if let Some(r) = rules.get(pos)
                && r.class != 0
                && !trace
                && let Some(cls) = prog.classifiers.get(r.class as usize - 1)
            {
                if key_for != r.class {
                    present = classify_key(cls, pkt, st, &mut key);
                    key_for = r.class;
                }
                // Skip to the first rule that can match (none: past the run).
                match cls.first(&key, pos as u32) {
                    Some(p) => {
                        pos = p as usize;
                        row = cls
                            .rules
                            .get((p - cls.start) as usize)
                            .filter(|i| i.exact && i.simple && i.need & !present == 0);
                    }
                    None => {
                        pos = cls.end as usize;
                        continue;
                    }
                }
            }
            let Some(rule) = rules.get(pos) else {
                // End of chain: like NFT_RETURN.
                let Some(back) = stack.pop() else {
                    break self.policy(chain, fx);
                };
                (cur, pos) = back;
                rules = self.chain_rules(cur);
                key_for = u32::MAX;
                continue;
            };
            pos += 1;
            let verdict = match row {
                Some(i) => {
                    if let Some(c) = i.counter {
                        count(state, c, st);
                    }
                    i.verdict
                }
                None => self.exec_rule(rule, &mut regs, &mut executed, state, pkt, st, fx),
            };
            if trace {
                fx.trace.push(TraceEvent::Rule {
                    chain: cur,
                    rule: rule.id,
                    verdict,
                });
            }
            if rule.class != 0
                && prog
                    .classifiers
                    .get(rule.class as usize - 1)
                    .and_then(|c| c.rules.get(pos - 1 - c.start as usize))
                    .is_some_and(|i| i.writes)
            {
                key_for = u32::MAX;
            }
            if matches!(verdict, ChainVerdict::Break | ChainVerdict::Continue) {
                continue;
            }
            match verdict {
                ChainVerdict::Continue | ChainVerdict::Break => {}
                ChainVerdict::Accept => break Verdict::Accept,
                ChainVerdict::Drop => break Verdict::Drop,
                ChainVerdict::Stolen => break Verdict::Stolen,
                ChainVerdict::Repeat => break Verdict::Repeat,
                ChainVerdict::Queue { num, bypass } => break Verdict::Queue { num, bypass },
                ChainVerdict::Jump(c) => {
                    if !stack.push(cur, pos) {
                        // The kernel WARNs and drops; verify() makes this unreachable.
                        break Verdict::Drop;
                    }
                    cur = c;
                    pos = 0;
                    rules = self.chain_rules(cur);
                    key_for = u32::MAX;
                }
                ChainVerdict::Goto(c) => {
                    cur = c;
                    pos = 0;
                    rules = self.chain_rules(cur);
                    key_for = u32::MAX;
                }
                ChainVerdict::Return => {
                    let Some(back) = stack.pop() else {
                        break self.policy(chain, fx);
                    };
                    (cur, pos) = back;
                    rules = self.chain_rules(cur);
                    key_for = u32::MAX;
                }
            }
        };
        state.insns_executed += executed;
        out
    }

    /// Evaluate one rule (its fast-path ops) on `regs`: the rule's verdict (`Break` when it
    /// did not match, `Continue` when it ran to its end). Counts executed instructions.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn exec_rule(
        &self,
        rule: &RuleDp,
        regs: &mut Regs,
        executed: &mut u64,
        state: &mut State,
        pkt: &[u8],
        st: &mut PktState,
        fx: &mut Effects,
    ) -> ChainVerdict {
        let insns = self.prog.insns.as_slice();
        let mut verdict = ChainVerdict::Continue;
        let ops = self
            .ops
            .get(rule.op_start as usize..rule.op_end as usize)
            .unwrap_or(&[]);
        for op in ops {
            *executed += 1;
            match *op {
                Op::LoadNh { off, len, dreg } => {
                    if !load_fast(regs, pkt, usize::from(st.nhoff), off, len, dreg) {
                        verdict = ChainVerdict::Break;
                    }
                }
                Op::LoadTh { off, len, dreg } => {
                    if !st.transport_ok()
                        || !load_fast(regs, pkt, usize::from(st.thoff), off, len, dreg)
                    {
                        verdict = ChainVerdict::Break;
                    }
                }
                Op::LoadNhCmp {
                    off,
                    len,
                    dreg,
                    neq,
                    mask,
                    data,
                } => {
                    if !load_fast(regs, pkt, usize::from(st.nhoff), off, len, dreg) {
                        verdict = ChainVerdict::Break;
                    } else {
                        *executed += 1;
                        if ((regs[usize::from(dreg & 15)] & mask) == data) == neq {
                            verdict = ChainVerdict::Break;
                        }
                    }
                }
                Op::LoadThCmp {
                    off,
                    len,
                    dreg,
                    neq,
                    mask,
                    data,
                } => {
                    if !st.transport_ok()
                        || !load_fast(regs, pkt, usize::from(st.thoff), off, len, dreg)
                    {
                        verdict = ChainVerdict::Break;
                    } else {
                        *executed += 1;
                        if ((regs[usize::from(dreg & 15)] & mask) == data) == neq {
                            verdict = ChainVerdict::Break;
                        }
                    }
                }
                Op::L4protoCmp { dreg, neq, data } => {
                    if !st.has_th {
                        verdict = ChainVerdict::Break;
                    } else {
                        *executed += 1;
                        let v = u32::from(st.l4proto);
                        regs[usize::from(dreg & 15)] = v;
                        if (v == data) == neq {
                            verdict = ChainVerdict::Break;
                        }
                    }
                }
                Op::CmpEq {
                    sreg,
                    neq,
                    mask,
                    data,
                } => {
                    if ((regs[usize::from(sreg & 15)] & mask) == data) == neq {
                        verdict = ChainVerdict::Break;
                    }
                }
                Op::Range32 {
                    sreg,
                    neq,
                    mask,
                    from_be,
                    to_be,
                } => {
                    let v = (regs[usize::from(sreg & 15)] & mask).swap_bytes();
                    if (from_be <= v && v <= to_be) == neq {
                        verdict = ChainVerdict::Break;
                    }
                }
                Op::MaskXor32 {
                    sreg,
                    dreg,
                    mask,
                    xor,
                } => {
                    regs[usize::from(dreg & 15)] = (regs[usize::from(sreg & 15)] & mask) ^ xor;
                }
                Op::Imm32 { dreg, v } => regs[usize::from(dreg & 15)] = v,
                Op::CtState { dreg } => regs[usize::from(dreg & 15)] = st.ct_state,
                Op::Meta { key, dreg } => {
                    if !meta_get(key, Reg(dreg), regs, st) {
                        verdict = ChainVerdict::Break;
                    }
                }
                Op::Verdict(v) => verdict = v,
                Op::Generic(i) => {
                    if let Some(insn) = insns.get(i as usize) {
                        self.eval(insn, regs, &mut verdict, state, pkt, st, fx, rule.id);
                    }
                }
            }
            if verdict != ChainVerdict::Continue {
                break;
            }
        }
        verdict
    }

    /// Evaluate rule `pos` of `chain` alone, with fresh registers (as a traversal reaching it
    /// would: `verify` guarantees a rule reads only registers it wrote). For the JIT, which
    /// hands the rules it does not compile to the interpreter.
    #[doc(hidden)]
    pub fn run_rule(
        &self,
        state: &mut State,
        chain: ChainId,
        pos: u32,
        pkt: &[u8],
        st: &mut PktState,
        fx: &mut Effects,
    ) -> ChainVerdict {
        let Some(rule) = self.chain_rules(chain).get(pos as usize) else {
            return ChainVerdict::Break;
        };
        let mut regs: Regs = [0; NFT_REG32_COUNT];
        let mut executed = 0u64;
        let v = self.exec_rule(rule, &mut regs, &mut executed, state, pkt, st, fx);
        state.insns_executed += executed;
        v
    }

    fn policy(&self, chain: ChainId, fx: &mut Effects) -> Verdict {
        let v = match self.prog.chains.get(chain.0 as usize).map(|c| c.kind) {
            Some(ChainKind::Base {
                policy: Policy::Drop,
                ..
            }) => Verdict::Drop,
            _ => Verdict::Accept,
        };
        if fx.trace_enabled {
            fx.trace.push(TraceEvent::Policy { chain, verdict: v });
        }
        v
    }

    /// One instruction of rule `rule` (an instruction of this program): the interpreter's step,
    /// also the JIT's for the instructions it hands to Rust. Reads and writes `regs`, sets
    /// `verdict` when the instruction ends the rule (BREAK, a verdict), and records its effects
    /// in `state`, `st` and `fx` (see the module docs).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub fn eval(
        &self,
        insn: &Insn,
        regs: &mut Regs,
        verdict: &mut ChainVerdict,
        state: &mut State,
        pkt: &[u8],
        st: &mut PktState,
        fx: &mut Effects,
        rule: RuleId,
    ) {
        match insn {
            Insn::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                let Some(b) = payload_base(*base, st) else {
                    *verdict = ChainVerdict::Break;
                    return;
                };
                let Some(start) = b.checked_add(*offset as usize) else {
                    *verdict = ChainVerdict::Break;
                    return;
                };
                let len = usize::from(*len);
                let Some(bytes) = pkt.get(start..start.saturating_add(len)) else {
                    *verdict = ChainVerdict::Break;
                    return;
                };
                match bytes {
                    [a] => store_word(regs, *dreg, u32::from(*a)),
                    [a, b] => store_word(regs, *dreg, u32::from_le_bytes([*a, *b, 0, 0])),
                    [a, b, c, d] => store_word(regs, *dreg, u32::from_le_bytes([*a, *b, *c, *d])),
                    _ => store_bytes(regs, *dreg, bytes),
                }
            }
            Insn::Cmp { op, sreg, data } => {
                let ok = if *op == CmpOp::Eq || *op == CmpOp::Neq {
                    let eq = if data.len() <= 4 {
                        let len = data.len();
                        let mask = if len == 4 {
                            u32::MAX
                        } else {
                            (1u32 << (len * 8)) - 1
                        };
                        load_word(regs, *sreg) & mask == data.words().next().unwrap_or(0)
                    } else {
                        reg_cmp(regs, *sreg, data) == Ordering::Equal
                    };
                    eq == (*op == CmpOp::Eq)
                } else {
                    let d = reg_cmp(regs, *sreg, data);
                    match op {
                        CmpOp::Lt => d == Ordering::Less,
                        CmpOp::Lte => d != Ordering::Greater,
                        CmpOp::Gt => d == Ordering::Greater,
                        _ => d != Ordering::Less,
                    }
                };
                if !ok {
                    *verdict = ChainVerdict::Break;
                }
            }
            Insn::Meta {
                key: MetaKey::Prandom,
                dreg,
            } => store_word(regs, *dreg, state.prandom.next_u32()),
            Insn::FibType { dreg, daddr } => {
                let t = if *daddr {
                    st.fib_daddr_type
                } else {
                    st.fib_saddr_type
                };
                store_word(regs, *dreg, u32::from(t));
            }
            Insn::Numgen {
                dreg,
                kind,
                modulus,
                offset,
            } => {
                let v = match kind {
                    // nft_ng_inc_gen
                    NumgenKind::Inc { slot } => {
                        let Some(c) = state.numgen.get_mut(*slot as usize) else {
                            *verdict = ChainVerdict::Break;
                            return;
                        };
                        *c = if c.wrapping_add(1) < *modulus {
                            *c + 1
                        } else {
                            0
                        };
                        *c
                    }
                    NumgenKind::Random => state.prandom.below(*modulus),
                };
                store_word(regs, *dreg, v.wrapping_add(*offset));
            }
            Insn::Meta { key, dreg } => {
                if !meta_get(*key, *dreg, regs, st) {
                    *verdict = ChainVerdict::Break;
                }
            }
            Insn::Ct { key, dir, dreg } => {
                if !ct_get(*key, *dir, *dreg, regs, st) {
                    *verdict = ChainVerdict::Break;
                }
            }
            Insn::Range { op, sreg, bounds } => {
                let (from, to) = (&bounds.from, &bounds.to);
                let d1 = reg_cmp(regs, *sreg, from);
                let d2 = reg_cmp(regs, *sreg, to);
                let mismatch = match op {
                    RangeOp::Eq => d1 == Ordering::Less || d2 == Ordering::Greater,
                    RangeOp::Neq => d1 != Ordering::Less && d2 != Ordering::Greater,
                };
                if mismatch {
                    *verdict = ChainVerdict::Break;
                }
            }
            Insn::Bitwise {
                sreg,
                dreg,
                len,
                op,
            } => bitwise(regs, *sreg, *dreg, *len, op),
            Insn::Byteorder {
                sreg,
                dreg,
                op: _,
                len,
                size,
            } => {
                // On a little-endian "host" ntoh and hton both reverse each element.
                let len = usize::from(*len);
                let mut buf = [0u8; 64];
                reg_bytes(regs, *sreg, len, &mut buf);
                for chunk in buf[..len].chunks_mut(usize::from(*size)) {
                    chunk.reverse();
                }
                store_bytes(regs, *dreg, &buf[..len]);
            }
            Insn::Lookup {
                sreg,
                set,
                dest,
                invert,
            } => self.lookup(state, st, regs, verdict, *sreg, *set, *dest, *invert),
            Insn::Dynset {
                op,
                sreg,
                set,
                sreg_data,
                timeout_ms,
            } => {
                // nft_dynset_eval
                let (Some(s), Some(d)) = (
                    self.prog.sets.get(set.0 as usize),
                    state.dynsets.get_mut(set.0 as usize),
                ) else {
                    *verdict = ChainVerdict::Break;
                    return;
                };
                let mut key = [0u8; 64];
                let klen = reg_bytes(regs, *sreg, usize::from(s.key_len), &mut key);
                let key = &key[..klen];
                let now = st.tstamp_ns;
                let ok = match op {
                    DynsetOp::Delete => {
                        d.delete(key, now);
                        true
                    }
                    DynsetOp::Add | DynsetOp::Update => {
                        let timeout = match *timeout_ms {
                            0 => s.dynamic.map_or(0, |x| x.timeout_ms),
                            t => t,
                        };
                        let mut data = [0u8; 64];
                        let dlen = match (sreg_data, s.data_type) {
                            (Some(r), crate::program::SetDataType::Data(n)) => {
                                reg_bytes(regs, *r, usize::from(n), &mut data)
                            }
                            _ => 0,
                        };
                        d.update(key, &data[..dlen], now, *op == DynsetOp::Update, timeout)
                    }
                };
                if !ok {
                    *verdict = ChainVerdict::Break;
                }
            }
            Insn::Objref { sreg, set } => {
                // nft_objref_map_eval: a miss (no catch-all either) is NFT_BREAK.
                let found = self.prog.sets.get(set.0 as usize).and_then(|s| {
                    let mut key = [0u8; 64];
                    let klen = reg_bytes(regs, *sreg, usize::from(s.key_len), &mut key);
                    s.lookup(key.get(..klen)?).copied()
                });
                match found {
                    Some(ElemData::Object(Obj::Counter(c))) => {
                        if let Some(c) = state.counters.get_mut(c.0 as usize) {
                            c.packets += 1;
                            c.bytes += u64::from(st.len);
                        }
                    }
                    Some(ElemData::Object(Obj::CtHelper(name))) => fx.ct_helper = Some(name),
                    _ => *verdict = ChainVerdict::Break,
                }
            }
            Insn::Immediate { dreg, data } => store_bytes(regs, *dreg, data.bytes()),
            Insn::ImmVerdict(v) => *verdict = *v,
            Insn::Counter(c) => count(state, c.0, st),
            Insn::Limit(l) => {
                let (Some(p), Some(s)) = (
                    self.limits.get(l.0 as usize),
                    state.limits.get_mut(l.0 as usize),
                ) else {
                    return;
                };
                if s.over_limit(p, st.tstamp_ns, st.len) {
                    *verdict = ChainVerdict::Break;
                }
            }
            Insn::MetaSet { key, sreg } => {
                let w = load_word(regs, *sreg);
                match key {
                    MetaSetKey::Mark => {
                        st.mark = w;
                        fx.mark_set = true;
                    }
                    MetaSetKey::Priority => fx.priority = Some(w),
                    MetaSetKey::Pkttype => st.pkttype = w as u8,
                    MetaSetKey::Nftrace => fx.nftrace = Some((w & 1) as u8),
                }
            }
            Insn::CtSet { key, sreg } => {
                let w = load_word(regs, *sreg);
                match key {
                    CtSetKey::Mark => {
                        if st.ct_valid && st.ct_mark != w {
                            st.ct_mark = w;
                            fx.ct_mark_set = true;
                        }
                    }
                    CtSetKey::Zone => fx.ct_zone = Some(w as u16),
                    CtSetKey::Helper => {
                        let mut b = [0u8; 64];
                        reg_bytes(regs, *sreg, 16, &mut b);
                        fx.ct_helper = b.first_chunk::<16>().copied();
                    }
                }
            }
            Insn::Log(spec) => fx.logs.push(LogRecord {
                rule,
                spec: (**spec).clone(),
            }),
            Insn::Reject { ty, code } => {
                fx.reject = Some((*ty, *code));
                *verdict = ChainVerdict::Drop;
            }
            Insn::Exthdr {
                op,
                ty,
                offset,
                len,
                dreg,
                present,
            } => {
                let found = match op {
                    ExthdrOp::Ipv6 => ipv6_find_hdr(pkt, st, *ty).map(|(off, _)| off),
                    ExthdrOp::Tcpopt => tcp_find_opt(pkt, st, *ty, *offset, *len),
                };
                if *present {
                    store_word(regs, *dreg, u32::from(found.is_some()));
                    return;
                }
                let start = match (op, found) {
                    (ExthdrOp::Ipv6, Some(h)) => h.checked_add(*offset as usize),
                    (ExthdrOp::Tcpopt, Some(o)) => Some(o),
                    _ => None,
                };
                let len = usize::from(*len);
                match start.and_then(|s| pkt.get(s..s.checked_add(len)?)) {
                    Some(bytes) => store_bytes(regs, *dreg, bytes),
                    None => *verdict = ChainVerdict::Break,
                }
            }
            Insn::Notrack => {
                if !st.ct_valid && st.ct_state != ct_state::UNTRACKED {
                    st.ct_state = ct_state::UNTRACKED;
                    fx.notrack = true;
                }
            }
            Insn::Queue { num, bypass, .. } => {
                *verdict = ChainVerdict::Queue {
                    num: *num,
                    bypass: *bypass,
                }
            }
            Insn::Nat(n) => {
                let alen = if n.family == pkt::NFPROTO_IPV6 { 16 } else { 4 };
                let addr = |r: Option<Reg>| {
                    r.map(|r| {
                        let mut buf = [0u8; 64];
                        reg_bytes(regs, r, alen, &mut buf);
                        let mut a = [0u8; 16];
                        a[..alen].copy_from_slice(&buf[..alen]);
                        a
                    })
                };
                let port = |r: Option<Reg>| {
                    r.map(|r| {
                        let b = load_word(regs, r).to_le_bytes();
                        u16::from_be_bytes([b[0], b[1]])
                    })
                };
                fx.nat.push(NatRequest {
                    kind: n.kind,
                    family: n.family,
                    addr_min: addr(n.addr_min),
                    addr_max: addr(n.addr_max),
                    proto_min: port(n.proto_min),
                    proto_max: port(n.proto_max),
                    flags: n.flags,
                });
                *verdict = ChainVerdict::Accept;
            }
            Insn::PayloadWrite {
                base,
                offset,
                len,
                sreg,
                csum_type,
                csum_offset,
                csum_flags,
            } => {
                let len = usize::from(*len);
                let Some(b) = payload_base(*base, st) else {
                    *verdict = ChainVerdict::Break;
                    return;
                };
                let Some(start) = b.checked_add(*offset as usize) else {
                    *verdict = ChainVerdict::Break;
                    return;
                };
                if start.saturating_add(len) > pkt.len() {
                    *verdict = ChainVerdict::Break;
                    return;
                }
                let mut buf = [0u8; 64];
                reg_bytes(regs, *sreg, len, &mut buf);
                fx.payload_writes.push(PayloadWriteReq {
                    offset: start,
                    bytes: buf[..len].to_vec(),
                    csum_at: (*csum_type == crate::insn::NFT_PAYLOAD_CSUM_INET)
                        .then(|| b.saturating_add(*csum_offset as usize)),
                    csum_type: *csum_type,
                    csum_offset: *csum_offset,
                    csum_flags: *csum_flags,
                });
            }
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn lookup(
        &self,
        state: &mut State,
        st: &PktState,
        regs: &mut Regs,
        verdict: &mut ChainVerdict,
        sreg: Reg,
        set: SetId,
        dest: LookupDest,
        invert: bool,
    ) {
        let Some(s) = self.prog.sets.get(set.0 as usize) else {
            *verdict = ChainVerdict::Break;
            return;
        };
        let mut key = [0u8; 64];
        let klen = reg_bytes(regs, sreg, usize::from(s.key_len), &mut key);
        if let (Some(_), Some(d)) = (&s.dynamic, state.dynsets.get_mut(set.0 as usize)) {
            // A dynamic set's elements are the run-time ones (a plain set or a data map).
            let found = d.get(&key[..klen], st.tstamp_ns);
            let hit = found.is_some() || s.catchall.is_some();
            if hit == invert {
                *verdict = ChainVerdict::Break;
                return;
            }
            if let LookupDest::Reg(r) = dest {
                match (found, &s.catchall) {
                    (Some(bytes), _) => store_bytes(regs, r, bytes),
                    (None, Some(ElemData::Data(x))) => store_bytes(regs, r, x.bytes()),
                    _ => {}
                }
            }
            return;
        }
        let found = s.lookup(&key[..klen]);
        if found.is_some() == invert {
            *verdict = ChainVerdict::Break;
            return;
        }
        match (dest, found) {
            (LookupDest::Reg(d), Some(ElemData::Data(x))) => store_bytes(regs, d, x.bytes()),
            (LookupDest::Verdict, Some(ElemData::Verdict(v))) => *verdict = *v,
            _ => {}
        }
    }
}

/// Load 1, 2 or 4 bytes at `base + off` into `dreg` (zero-padded); false when out of bounds.
#[inline(always)]
fn load_fast(regs: &mut Regs, pkt: &[u8], base: usize, off: u32, len: u8, dreg: u8) -> bool {
    let start = base.saturating_add(off as usize);
    let w = match len {
        1 => match pkt.get(start) {
            Some(a) => u32::from(*a),
            None => return false,
        },
        2 => match pkt.get(start..start.saturating_add(2)) {
            Some(&[a, b]) => u32::from_le_bytes([a, b, 0, 0]),
            _ => return false,
        },
        _ => match pkt.get(start..start.saturating_add(4)) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => return false,
        },
    };
    regs[usize::from(dreg & 15)] = w;
    true
}

/// IPv6 extension header lookup like the kernel's `ipv6_find_hdr` (without a start offset):
/// walk the chain of extension headers after the fixed header; return the offset of header
/// `target` and its length, or `None` (`-ENOENT`) when the chain ends, a non-extension header
/// comes first, or (for any target other than the fragment header) a non-first fragment hides
/// the rest.
pub fn ipv6_find_hdr(pkt: &[u8], st: &PktState, target: u8) -> Option<(usize, usize)> {
    const HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTH: u8 = 51;
    const NONE: u8 = 59;
    const DEST: u8 = 60;
    const MOBILITY: u8 = 135;
    if st.nfproto != pkt::NFPROTO_IPV6 {
        return None;
    }
    let nh = usize::from(st.nhoff);
    if pkt.get(nh).map(|b| b >> 4) != Some(6) {
        return None;
    }
    let mut next = *pkt.get(nh + 6)?;
    let mut off = nh + 40;
    loop {
        if next == target && target != NONE {
            let len = match next {
                FRAGMENT => 8,
                AUTH => (usize::from(*pkt.get(off + 1)?) + 2) << 2,
                HOP | ROUTING | DEST | MOBILITY => (usize::from(*pkt.get(off + 1)?) + 1) << 3,
                _ => 0,
            };
            return Some((off, len));
        }
        // `ipv6_ext_hdr()`: the headers the walk can pass through (not MH: it is only found
        // as a target).
        if !matches!(next, HOP | ROUTING | FRAGMENT | AUTH | DEST) {
            return None;
        }
        let hdr = pkt.get(off..off + 2)?;
        let (nexthdr, hlen) = match next {
            FRAGMENT => {
                let fo = pkt.get(off + 2..off + 4)?;
                if u16::from_be_bytes([fo[0], fo[1]]) & !0x7 != 0 {
                    // not the first fragment: the following headers are not here
                    return None;
                }
                (hdr[0], 8)
            }
            AUTH => (hdr[0], (usize::from(hdr[1]) + 2) << 2),
            _ => (hdr[0], (usize::from(hdr[1]) + 1) << 3),
        };
        next = nexthdr;
        off += hlen;
    }
}

/// TCP option lookup like `nft_exthdr_tcp_eval`: the absolute offset of `offset` bytes into
/// option `kind`, if the option exists and `offset + len` fits in it. Needs a TCP header that
/// is not in a non-first fragment.
pub fn tcp_find_opt(pkt: &[u8], st: &PktState, kind: u8, offset: u32, len: u8) -> Option<usize> {
    if !st.transport_ok() || st.l4proto != 6 {
        return None;
    }
    let th = usize::from(st.thoff);
    let doff = usize::from(*pkt.get(th + 12)? >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let hdr = pkt.get(th..th + doff)?;
    let mut i = 20;
    while i + 1 < doff {
        let k = *hdr.get(i)?;
        let optl = if k <= 1 || *hdr.get(i + 1)? == 0 {
            1
        } else {
            usize::from(*hdr.get(i + 1)?)
        };
        if k == kind {
            if i + optl > doff || usize::from(len) + offset as usize > optl {
                return None;
            }
            return Some(th + i + offset as usize);
        }
        i += optl;
    }
    None
}

/// `nft_counter`: one packet of `PktState::len` bytes.
#[inline]
fn count(state: &mut State, c: u32, st: &PktState) {
    if let Some(c) = state.counters.get_mut(c as usize) {
        c.packets += 1;
        c.bytes += u64::from(st.len);
    }
}

/// Read a classifier's key: one natural value per dimension (`classify` module docs), with
/// the interpreter's own loads. Bytes the packet lacks read as zero; the result has bit `d` set
/// when every byte of dimension `d` is present.
pub fn classify_key(cls: &Classifier, pkt: &[u8], st: &PktState, key: &mut [u32; MAX_DIMS]) -> u32 {
    key_of(&cls.dims, pkt, st, key)
}

/// The values of `dims` (at most `MAX_DIMS`) for a packet, as [`classify_key`] reads them.
pub fn key_of(dims: &[Dim], pkt: &[u8], st: &PktState, key: &mut [u32; MAX_DIMS]) -> u32 {
    let mut present = 0u32;
    for (i, (k, d)) in key.iter_mut().zip(dims).enumerate() {
        let (v, all) = field_value(d.field, pkt, st);
        *k = v & d.mask;
        present |= u32::from(all) << i;
    }
    present
}

/// The natural value of a field (its bytes, big-endian), missing bytes zero, and whether none
/// was missing (else a load of the field would break).
fn field_value(f: Field, pkt: &[u8], st: &PktState) -> (u32, bool) {
    let len = f.len();
    let word = |regs: &Regs, w: u8| {
        let b = regs.get(usize::from(w)).copied().unwrap_or(0).to_le_bytes();
        u32::from_be_bytes(b) >> (8 * (4 - len))
    };
    match f {
        Field::Payload { base, off, .. } => {
            let Some(start) = payload_base(base, st).and_then(|b| b.checked_add(off as usize))
            else {
                return (0, false);
            };
            let mut all = true;
            let v = (0..len).fold(0u32, |a, i| {
                let b = pkt.get(start.saturating_add(i)).copied();
                all &= b.is_some();
                (a << 8) | u32::from(b.unwrap_or(0))
            });
            (v, all)
        }
        Field::Meta { key, word: w } => {
            let mut regs: Regs = [0; NFT_REG32_COUNT];
            if meta_get(key, Reg(0), &mut regs, st) {
                (word(&regs, w), true)
            } else {
                (0, false)
            }
        }
        Field::Ct { key, dir, word: w } => {
            let mut regs: Regs = [0; NFT_REG32_COUNT];
            if ct_get(key, dir, Reg(0), &mut regs, st) {
                (word(&regs, w), true)
            } else {
                (0, false)
            }
        }
    }
}

/// Byte offset of a payload base, or `None` (→ NFT_BREAK) when the header is absent.
#[inline]
fn payload_base(base: PayloadBase, st: &PktState) -> Option<usize> {
    match base {
        PayloadBase::Network => Some(usize::from(st.nhoff)),
        PayloadBase::Transport if st.transport_ok() => Some(usize::from(st.thoff)),
        PayloadBase::Link if st.has_ll => Some(usize::from(st.lloff)),
        _ => None,
    }
}

fn bitwise(regs: &mut Regs, sreg: Reg, dreg: Reg, len: u8, op: &BitwiseOp) {
    let words = Reg::words(usize::from(len));
    let s = usize::from(sreg.0);
    let d = usize::from(dreg.0);
    let mut src = [0u32; NFT_REG32_COUNT];
    for (i, w) in src.iter_mut().take(words).enumerate() {
        *w = regs.get(s + i).copied().unwrap_or(0);
    }
    let mut dst = [0u32; NFT_REG32_COUNT];
    match op {
        BitwiseOp::MaskXor(mx) => {
            let (mask, xor) = (&mx.mask, &mx.xor);
            for ((o, (m, x)), sw) in dst.iter_mut().zip(mask.words().zip(xor.words())).zip(src) {
                *o = (sw & m) ^ x;
            }
        }
        BitwiseOp::Lshift(n) => {
            let mut carry = 0u32;
            for i in (0..words).rev() {
                dst[i] = (src[i] << n) | carry;
                carry = src[i].checked_shr(32 - n).unwrap_or(0);
            }
        }
        BitwiseOp::Rshift(n) => {
            let mut carry = 0u32;
            for i in 0..words {
                dst[i] = carry | (src[i] >> n);
                carry = src[i].checked_shl(32 - n).unwrap_or(0);
            }
        }
        BitwiseOp::And(r) | BitwiseOp::Or(r) | BitwiseOp::Xor(r) => {
            let r = usize::from(r.0);
            for i in 0..words {
                let b = regs.get(r + i).copied().unwrap_or(0);
                dst[i] = match op {
                    BitwiseOp::And(_) => src[i] & b,
                    BitwiseOp::Or(_) => src[i] | b,
                    _ => src[i] ^ b,
                };
            }
        }
    }
    for (i, w) in dst.iter().take(words).enumerate() {
        if let Some(r) = regs.get_mut(d + i) {
            *r = *w;
        }
    }
}

#[inline]
fn meta_get(key: MetaKey, dreg: Reg, regs: &mut Regs, st: &PktState) -> bool {
    let w = match key {
        MetaKey::Len => st.len,
        MetaKey::Protocol => u32::from(u16::from_le_bytes(st.protocol.to_be_bytes())),
        MetaKey::Nfproto => u32::from(st.nfproto),
        MetaKey::L4proto => {
            if !st.has_th {
                return false;
            }
            u32::from(st.l4proto)
        }
        MetaKey::Mark => st.mark,
        MetaKey::Iif => st.iif,
        MetaKey::Oif => st.oif,
        MetaKey::Iifname => {
            store_bytes(regs, dreg, &st.iifname);
            return true;
        }
        MetaKey::Oifname => {
            store_bytes(regs, dreg, &st.oifname);
            return true;
        }
        MetaKey::Iiftype => {
            if st.iif == 0 {
                return false;
            }
            u32::from(st.iiftype)
        }
        MetaKey::Oiftype => {
            if st.oif == 0 {
                return false;
            }
            u32::from(st.oiftype)
        }
        MetaKey::Pkttype => u32::from(st.pkttype),
        // Not a packet fact: `eval` draws it from the state's generator.
        MetaKey::Prandom => return false,
        MetaKey::Skuid | MetaKey::Skgid => {
            if !st.has_sk {
                return false;
            }
            if key == MetaKey::Skuid {
                st.sk_uid
            } else {
                st.sk_gid
            }
        }
    };
    store_word(regs, dreg, w);
    true
}

/// Host-order u16 whose big-endian bytes go into a register (ports, protocol).
#[inline]
fn be16_word(v: u16) -> u32 {
    u32::from(u16::from_le_bytes(v.to_be_bytes()))
}

fn ct_get(key: CtKey, dir: Option<CtDir>, dreg: Reg, regs: &mut Regs, st: &PktState) -> bool {
    if key == CtKey::State {
        store_word(regs, dreg, st.ct_state);
        return true;
    }
    if !st.ct_valid {
        return false;
    }
    let tuple = match dir {
        Some(CtDir::Reply) => &st.ct_reply,
        _ => &st.ct_orig,
    };
    let v4 = st.ct_l3proto == pkt::NFPROTO_IPV4;
    let w = match key {
        CtKey::State => st.ct_state,
        CtKey::Direction => u32::from(st.ct_direction),
        CtKey::Status => st.ct_status,
        CtKey::Mark => st.ct_mark,
        CtKey::Expiration => st.ct_expiration_ms,
        CtKey::Helper => {
            if st.ct_helper[0] == 0 {
                return false;
            }
            store_bytes(regs, dreg, &st.ct_helper);
            return true;
        }
        CtKey::L3protocol => u32::from(st.ct_l3proto),
        CtKey::Protocol => u32::from(st.ct_protocol),
        CtKey::Zone => {
            let applies = match dir {
                None => true,
                Some(CtDir::Original) => st.ct_zone_dir & pkt::NF_CT_ZONE_DIR_ORIG != 0,
                Some(CtDir::Reply) => st.ct_zone_dir & pkt::NF_CT_ZONE_DIR_REPL != 0,
            };
            u32::from(if applies { st.ct_zone } else { 0 })
        }
        CtKey::Id => st.ct_id,
        CtKey::Src | CtKey::Dst => {
            let a = if key == CtKey::Src {
                &tuple.src
            } else {
                &tuple.dst
            };
            let mut b = [0u8; 16];
            let n = if v4 { 4 } else { 16 };
            b[..n].copy_from_slice(&a[..n]);
            store_bytes(regs, dreg, &b);
            return true;
        }
        CtKey::SrcIp | CtKey::DstIp => {
            if !v4 {
                return false;
            }
            let a = if key == CtKey::SrcIp {
                &tuple.src
            } else {
                &tuple.dst
            };
            store_bytes(regs, dreg, &a[..4]);
            return true;
        }
        CtKey::SrcIp6 | CtKey::DstIp6 => {
            if st.ct_l3proto != pkt::NFPROTO_IPV6 {
                return false;
            }
            let a = if key == CtKey::SrcIp6 {
                &tuple.src
            } else {
                &tuple.dst
            };
            store_bytes(regs, dreg, a);
            return true;
        }
        CtKey::ProtoSrc => be16_word(tuple.src_port),
        CtKey::ProtoDst => be16_word(tuple.dst_port),
    };
    store_word(regs, dreg, w);
    true
}
