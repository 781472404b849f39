//! The per-packet environment native code and its helper share (`Env`, `#[repr(C)]`), the
//! return codes of a compiled partition, and `h_insn`, the helper native code calls for rare or
//! complex instructions (limit, log, reject, notrack, NAT, payload writes, exthdr, large set
//! lookups, object-map lookups, meta/ct set). It runs the interpreter's own step
//! (`VerifiedProgram::eval`), so each instruction has one meaning. The helpers of classified
//! runs (`h_first`, `h_walk`, `h_rule`) call the classifier's shared key reader and walk and
//! the interpreter's rule step. They are ordinary safe `extern "C"` functions taking
//! references; native code passes them the pointers it was given by the one call site in
//! `native`.
//!
//! Register exchange: `Env::regs` is the interpreter's register file (`Regs`, words
//! `u32::from_le_bytes` of the register bytes). Before a call native code stores the words the
//! instruction reads there, and reloads the words it writes afterwards, converting from and to
//! its own big-endian domain in one place (`codegen`'s `Tx::helper`).

use nfr_vm::classify::Classifier;
use nfr_vm::interp::Regs;
use nfr_vm::pkt::PktState;
use nfr_vm::program::Counter;
use nfr_vm::{ChainVerdict, Effects, RuleId, State, VerifiedProgram};

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
/// `jump_chain` and `resume`, and uses `regs` at fixed offsets (`offset_of!`).
#[repr(C)]
pub(crate) struct Env<'a> {
    /// `State::counters.as_mut_ptr()` (length checked by `JitProgram::run`).
    pub counters: *mut Counter,
    pub jump_chain: u32,
    /// Position (in the chain) of the rule after the one that returned.
    pub resume: u32,
    /// The register file of helper calls, in the interpreter's domain (see the module docs).
    pub regs: Regs,
    pub prog: &'a VerifiedProgram,
    pub state: &'a mut State,
    pub fx: &'a mut Effects,
    pub pkt: &'a [u8],
}

/// Classifier `cls`'s first rule that can match at or after position `from` (its run's end
/// when none), with bit 31 set when a field that rule needs is missing (it must then run from
/// its first instruction); the key and the walk are the interpreter's
/// (`nfr_vm::classify`).
pub(crate) extern "C" fn h_first(env: &mut Env<'_>, st: &mut PktState, cls: u32, from: u32) -> u32 {
    let Some(c) = env.prog.program().classifiers.get(cls as usize) else {
        return from | (1 << 31);
    };
    let mut key = [0u32; nfr_vm::classify::MAX_DIMS];
    let present = nfr_vm::interp::classify_key(c, env.pkt, st, &mut key);
    let p = c.first(&key, from).unwrap_or(c.end);
    let need = c
        .rules
        .get(p.wrapping_sub(c.start) as usize)
        .map_or(0, |i| i.need);
    p | (u32::from(need & !present != 0) << 31)
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

/// Run instruction `idx` (one the code generator hands to Rust) of rule `rule` with the
/// interpreter's own `VerifiedProgram::eval` on `Env::regs`; returns a code (`C_CONTINUE`,
/// `C_BREAK`, a terminal verdict, `C_JUMP`/`C_GOTO` with `Env::jump_chain` set).
pub(crate) extern "C" fn h_insn(env: &mut Env<'_>, st: &mut PktState, idx: u32, rule: u32) -> u32 {
    let prog = env.prog;
    let Some(insn) = prog.program().insns.get(idx as usize) else {
        return C_BREAK;
    };
    let mut verdict = ChainVerdict::Continue;
    prog.eval(
        insn,
        &mut env.regs,
        &mut verdict,
        env.state,
        env.pkt,
        st,
        env.fx,
        RuleId(rule),
    );
    let (code, chain) = verdict_code(verdict);
    if let Some(c) = chain {
        env.jump_chain = c;
    }
    code
}
