//! The per-packet environment native code and helpers share (`Env`, `#[repr(C)]`), the return
//! codes of a compiled partition, and the Rust helper functions native code calls for rare or
//! complex instructions (limit, log, reject, notrack, NAT, payload writes, exthdr, large set
//! lookups, object-map lookups, meta/ct set), for classifier lookups and for the rules of a
//! classified run that do not run from their row. Helpers are ordinary safe `extern "C"` functions
//! taking references; native code passes them the pointers it was given by the one call site
//! in `native`.
//!
//! Register exchange: before a helper call native code stores the register words the helper
//! reads into `Env::regs` (as bytes, register memory order, exactly the interpreter's
//! `reg_bytes`), and reloads the words it writes afterwards.

use nfr_vm::classify::Classifier;
use nfr_vm::insn::{CtSetKey, ExthdrOp, Insn, LookupDest, MetaSetKey, NatKind, PayloadBase};
use nfr_vm::interp::{LogRecord, NatRequest, PayloadWriteReq};
use nfr_vm::pkt::{self, PktState, ct_state};
use nfr_vm::program::{Counter, ElemData, Obj};
use nfr_vm::{ChainVerdict, Effects, Reg, RuleId, State, VerifiedProgram};
use nfr_vm::{ipv6_find_hdr, tcp_find_opt};

/// Return code: jump to `Env::jump_chain`, resume at `Env::resume` afterwards.
pub(crate) const C_JUMP: u32 = 0x10;
/// Return code: goto `Env::jump_chain`.
pub(crate) const C_GOTO: u32 = 0x11;
/// Return code: NFT_RETURN.
pub(crate) const C_RETURN: u32 = 0x12;
/// Return code: fell off the end of this partition (go on with the next one).
pub(crate) const C_END: u32 = 0x13;
/// Helper result: NFT_CONTINUE (go on with the next instruction).
pub(crate) const C_CONTINUE: u32 = 0x14;
/// Helper result: NFT_BREAK (next rule).
pub(crate) const C_BREAK: u32 = 0x15;
/// Objref helper result: count the packet in counter `Env::jump_chain` (a verified counter
/// id), then continue. Native code does the counting; it never leaves a partition.
pub(crate) const C_COUNT: u32 = 0x16;

/// A chain verdict as a return code (`None` for continue/break, which never leave a rule) and
/// the chain id to store in `Env::jump_chain` for jump/goto. Terminal verdicts are
/// `Verdict::to_u32` (low byte < 0x10).
pub(crate) fn verdict_code(v: ChainVerdict) -> (u32, Option<u32>) {
    match v {
        ChainVerdict::Continue => (C_CONTINUE, None),
        ChainVerdict::Break => (C_BREAK, None),
        ChainVerdict::Jump(c) => (C_JUMP, Some(c.0)),
        ChainVerdict::Goto(c) => (C_GOTO, Some(c.0)),
        ChainVerdict::Return => (C_RETURN, None),
        other => (other.terminal().map(|t| t.to_u32()).unwrap_or(0), None),
    }
}

/// Shared state of one traversal. Field order matters: native code reads `counters`, writes
/// `jump_chain` and `resume`, and uses `regs` and `zero` at fixed offsets (`offset_of!`).
#[repr(C)]
pub(crate) struct Env<'a> {
    /// `State::counters.as_mut_ptr()` (length checked by `JitProgram::run`).
    pub counters: *mut Counter,
    pub jump_chain: u32,
    /// Position (in the chain) of the rule after the one that returned.
    pub resume: u32,
    /// Register exchange area for helper calls (register memory order).
    pub regs: [u8; 64],
    /// All zero: target of clamped (failed) hoisted packet loads, see `bounds`.
    pub zero: [u8; 64],
    pub prog: &'a VerifiedProgram,
    pub state: &'a mut State,
    pub fx: &'a mut Effects,
    pub pkt: &'a [u8],
}

impl Env<'_> {
    fn reg_bytes(&self, reg: Reg, len: usize) -> &[u8] {
        let s = usize::from(reg.0) * 4;
        self.regs.get(s..s + len).unwrap_or(&[])
    }

    /// `store_bytes`: the bytes, zero-padded to whole words.
    fn store_bytes(&mut self, reg: Reg, bytes: &[u8]) {
        let s = usize::from(reg.0) * 4;
        let e = s + bytes.len().div_ceil(4) * 4;
        if let Some(d) = self.regs.get_mut(s..e) {
            d.fill(0);
            if let Some(d) = d.get_mut(..bytes.len()) {
                d.copy_from_slice(bytes);
            }
        }
    }

    fn word(&self, reg: Reg) -> u32 {
        let b = self.reg_bytes(reg, 4);
        match b {
            [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
            _ => 0,
        }
    }
}

/// Classifier `cls`'s first rule that can match at or after position `from` (its run's end
/// when none), `u32::MAX` when a key field is absent (walk the run rule by rule): the key and
/// the walk are the interpreter's (`nfr_vm::classify`).
pub(crate) extern "C" fn h_first(env: &mut Env<'_>, st: &mut PktState, cls: u32, from: u32) -> u32 {
    let Some(c) = env.prog.program().classifiers.get(cls as usize) else {
        return u32::MAX;
    };
    let mut key = [0u32; nfr_vm::classify::MAX_DIMS];
    if !nfr_vm::interp::classify_key(c, env.pkt, st, &mut key) {
        return u32::MAX;
    }
    c.first(&key, from).unwrap_or(c.end)
}

/// The classifier's walk on a key the native code read: the first rule at or after `from` that
/// can match, `u32::MAX` when none.
pub(crate) extern "C" fn h_walk(
    cls: &Classifier,
    key: &[u32; nfr_vm::classify::MAX_DIMS],
    from: u32,
    _: u32,
) -> u32 {
    cls.first(key, from).unwrap_or(u32::MAX)
}

/// Run rule `pos` of `chain` with the interpreter: `C_CONTINUE` when it ran to its end,
/// `C_BREAK` when it did not match, else its verdict's code (`Env::jump_chain` set for jump and
/// goto).
pub(crate) extern "C" fn h_rule(env: &mut Env<'_>, st: &mut PktState, chain: u32, pos: u32) -> u32 {
    let v = env
        .prog
        .run_rule(env.state, nfr_vm::ChainId(chain), pos, env.pkt, st, env.fx);
    let (code, ch) = verdict_code(v);
    if let Some(ch) = ch {
        env.jump_chain = ch;
    }
    code
}

/// Evaluate instruction `idx` (one the code generator hands to Rust) for rule `rule`; returns
/// a code (`C_CONTINUE`, `C_BREAK`, a terminal verdict, `C_JUMP`/`C_GOTO` with
/// `Env::jump_chain` set). Mirrors the interpreter's `eval` for these instructions.
pub(crate) extern "C" fn h_insn(env: &mut Env<'_>, st: &mut PktState, idx: u32, rule: u32) -> u32 {
    let prog = env.prog;
    let Some(insn) = prog.program().insns.get(idx as usize) else {
        return C_BREAK;
    };
    match insn {
        Insn::Lookup {
            sreg,
            set,
            dest,
            invert,
        } => {
            let Some(s) = prog.program().sets.get(set.0 as usize) else {
                return C_BREAK;
            };
            let key = env.reg_bytes(*sreg, usize::from(s.key_len));
            let found = s.lookup(key);
            if found.is_some() == *invert {
                return C_BREAK;
            }
            match (dest, found) {
                (LookupDest::Reg(d), Some(ElemData::Data(x))) => {
                    env.store_bytes(*d, x.bytes());
                    C_CONTINUE
                }
                (LookupDest::Verdict, Some(ElemData::Verdict(v))) => {
                    let (code, chain) = verdict_code(*v);
                    if let Some(c) = chain {
                        env.jump_chain = c;
                    }
                    code
                }
                _ => C_CONTINUE,
            }
        }
        Insn::Objref { sreg, set } => {
            // nft_objref_map_eval, as the interpreter does it.
            let Some(s) = prog.program().sets.get(set.0 as usize) else {
                return C_BREAK;
            };
            match s.lookup(env.reg_bytes(*sreg, usize::from(s.key_len))) {
                Some(ElemData::Object(Obj::Counter(c))) => {
                    env.jump_chain = c.0;
                    C_COUNT
                }
                Some(ElemData::Object(Obj::CtHelper(name))) => {
                    env.fx.ct_helper = Some(*name);
                    C_CONTINUE
                }
                _ => C_BREAK,
            }
        }
        Insn::Limit(l) => limit(env, st, l.0 as usize),
        Insn::MetaSet { key, sreg } => {
            let w = env.word(*sreg);
            match key {
                MetaSetKey::Mark => {
                    st.mark = w;
                    env.fx.mark_set = true;
                }
                MetaSetKey::Priority => env.fx.priority = Some(w),
                MetaSetKey::Pkttype => st.pkttype = w as u8,
                MetaSetKey::Nftrace => env.fx.nftrace = Some((w & 1) as u8),
            }
            C_CONTINUE
        }
        Insn::CtSet { key, sreg } => {
            let w = env.word(*sreg);
            match key {
                CtSetKey::Mark => {
                    if st.ct_valid && st.ct_mark != w {
                        st.ct_mark = w;
                        env.fx.ct_mark_set = true;
                    }
                }
                CtSetKey::Zone => env.fx.ct_zone = Some(w as u16),
                CtSetKey::Helper => {
                    env.fx.ct_helper = env.reg_bytes(*sreg, 16).first_chunk::<16>().copied();
                }
            }
            C_CONTINUE
        }
        Insn::Log(spec) => {
            env.fx.logs.push(LogRecord {
                rule: RuleId(rule),
                spec: (**spec).clone(),
            });
            C_CONTINUE
        }
        Insn::Reject { ty, code } => {
            env.fx.reject = Some((*ty, *code));
            nfr_vm::verdict::NF_DROP
        }
        Insn::Notrack => {
            if !st.ct_valid && st.ct_state != ct_state::UNTRACKED {
                st.ct_state = ct_state::UNTRACKED;
                env.fx.notrack = true;
            }
            C_CONTINUE
        }
        Insn::Nat(n) => {
            let alen = if n.family == pkt::NFPROTO_IPV6 { 16 } else { 4 };
            let addr = |r: Option<Reg>| {
                r.map(|r| {
                    let mut a = [0u8; 16];
                    let b = env.reg_bytes(r, alen);
                    if let Some(d) = a.get_mut(..b.len()) {
                        d.copy_from_slice(b);
                    }
                    a
                })
            };
            let port = |r: Option<Reg>| {
                r.map(|r| {
                    let b = env.word(r).to_le_bytes();
                    u16::from_be_bytes([b[0], b[1]])
                })
            };
            let req = NatRequest {
                kind: n.kind,
                family: n.family,
                addr_min: addr(n.addr_min),
                addr_max: addr(n.addr_max),
                proto_min: port(n.proto_min),
                proto_max: port(n.proto_max),
                flags: n.flags,
            };
            let _: NatKind = req.kind;
            env.fx.nat.push(req);
            nfr_vm::verdict::NF_ACCEPT
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
            let Some(start) = payload_base(*base, st).and_then(|b| b.checked_add(*offset as usize))
            else {
                return C_BREAK;
            };
            if start.saturating_add(len) > env.pkt.len() {
                return C_BREAK;
            }
            let bytes = env.reg_bytes(*sreg, len).to_vec();
            env.fx.payload_writes.push(PayloadWriteReq {
                offset: start,
                bytes,
                csum_type: *csum_type,
                csum_offset: *csum_offset,
                csum_flags: *csum_flags,
            });
            C_CONTINUE
        }
        Insn::Exthdr {
            op,
            ty,
            offset,
            len,
            dreg,
            present,
        } => {
            let pkt = env.pkt;
            let found = match op {
                ExthdrOp::Ipv6 => ipv6_find_hdr(pkt, st, *ty).map(|(off, _)| off),
                ExthdrOp::Tcpopt => tcp_find_opt(pkt, st, *ty, *offset, *len),
            };
            if *present {
                env.store_bytes(*dreg, &[u8::from(found.is_some()), 0, 0, 0]);
                return C_CONTINUE;
            }
            let start = match (op, found) {
                (ExthdrOp::Ipv6, Some(h)) => h.checked_add(*offset as usize),
                (ExthdrOp::Tcpopt, Some(o)) => Some(o),
                _ => None,
            };
            let len = usize::from(*len);
            match start.and_then(|s| pkt.get(s..s.checked_add(len)?)) {
                Some(bytes) => {
                    env.store_bytes(*dreg, bytes);
                    C_CONTINUE
                }
                None => C_BREAK,
            }
        }
        // Everything else is compiled natively; reaching here would be a code generator bug.
        _ => C_BREAK,
    }
}

/// `nft_limit` token bucket: the interpreter's own `LimitState::over_limit`.
fn limit(env: &mut Env<'_>, st: &PktState, l: usize) -> u32 {
    let (Some(p), Some(s)) = (env.prog.limit_params().get(l), env.state.limits.get_mut(l)) else {
        return C_CONTINUE;
    };
    if s.over_limit(p, st.tstamp_ns, st.len) {
        C_BREAK
    } else {
        C_CONTINUE
    }
}

fn payload_base(base: PayloadBase, st: &PktState) -> Option<usize> {
    match base {
        PayloadBase::Network => Some(usize::from(st.nhoff)),
        PayloadBase::Transport if st.transport_ok() => Some(usize::from(st.thoff)),
        PayloadBase::Link if st.has_ll => Some(usize::from(st.lloff)),
        _ => None,
    }
}
