//! Packet bounds checks: the ONLY place where the JIT turns a payload load into a memory access.
//!
//! ┌────────────────────────────────────────────────────────────────────────────────────┐
//! │ Every change here needs a second reviewer. A mistake is an out-of-bounds read in   │
//! │ native code, which no Rust type can catch.                                         │
//! └────────────────────────────────────────────────────────────────────────────────────┘
//!
//! Semantics (the interpreter's `payload_base` + `pkt.get(start..start + n)`, i.e. the
//! kernel's `nft_payload_eval`, where a failed `skb_copy_bits` means NFT_BREAK):
//!
//! * the base must exist: network header always; transport header only when
//!   `PktState::has_th && PktState::fragoff == 0` (`transport_ok`); link header only when
//!   `PktState::has_ll`;
//! * `start = base_offset + off`, where `base_offset` is a `u16` field of `PktState` and `off` a
//!   `u32` constant of the instruction. Both are zero-extended to 64 bits, so `start < 2^33` and
//!   `start + n` (with `n <= 64`) cannot overflow an `i64`;
//! * the load is allowed iff `start + n <= len`, where `len` is the packet slice length passed
//!   to the native function (`pkt.len()`), so every byte read lies in `pkt[0..len]`;
//! * a failed check is "this rule does not match" (NFT_BREAK): control goes to the next rule,
//!   never a trap.
//!
//! Two ways to use a check:
//!
//! * [`checked_addr`] gives `(ok, addr)`; the caller branches on `ok` and only loads on the
//!   in-bounds edge (loads inside a rule);
//! * [`clamped_addr`] gives `(ok, addr')` where `addr'` is `pkt + start` when `ok` and otherwise
//!   the address of a 64-byte all-zero static ([`zero_addr`]), so the load can be done
//!   unconditionally (branch-free, hoisted to the function entry) and is still always in bounds
//!   of *some* valid memory; users must still branch on `ok` before using the value.
//!
//! Loads use [`pkt_flags`]: readonly (the packet never changes during a traversal: payload
//! writes are only recorded) and notrap (the check above proves the access valid). Never
//! `trusted()`: that also claims alignment, and packet fields are unaligned. Register words are
//! big-endian numbers (see `codegen`), but Cranelift 0.135's x86-64 and aarch64 backends do not
//! lower `big` MemFlags ("should be implemented in ISLE"), so the flags say `little` (the host
//! order; big-endian hosts are refused at compile time) and an explicit `bswap` follows.

use cranelift_codegen::ir::{
    Endianness, InstBuilder, MemFlagsData, Value, condcodes::IntCC, types,
};
use cranelift_frontend::FunctionBuilder;
use nfr_vm::PktState;
use nfr_vm::insn::PayloadBase;
use std::mem::offset_of;

/// Flags of every packet load: explicit host (little) endianness, readonly, notrap — never
/// `trusted()`.
pub(crate) fn pkt_flags() -> MemFlagsData {
    MemFlagsData::new()
        .with_endianness(Endianness::Little)
        .with_readonly()
        .with_notrap()
}

/// Flags for reads of `PktState` fields (our own, valid, possibly unaligned for byte arrays).
fn st_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// What a clamped load reads when its check fails ([`clamped_addr`]).
static ZERO: [u8; 64] = [0; 64];

/// The address of the 64 zero bytes clamped loads fall back to (a static, so the same for every
/// call and nothing to clear per packet).
pub(crate) fn zero_addr(b: &mut FunctionBuilder) -> Value {
    b.ins().iconst(types::I64, ZERO.as_ptr() as usize as i64)
}

/// The function parameters a check needs.
#[derive(Clone, Copy)]
pub(crate) struct PktArgs {
    /// `*const u8`: first byte of the packet slice.
    pub pkt: Value,
    /// `usize`: the slice length.
    pub len: Value,
    /// `*const PktState`.
    pub st: Value,
}

/// `(base_ok, base_offset)` for a payload base: a boolean (i8) saying whether the header exists
/// and its offset zero-extended to i64.
pub(crate) fn base(b: &mut FunctionBuilder, a: PktArgs, base: PayloadBase) -> (Value, Value) {
    let f = st_flags();
    let u16_field = |b: &mut FunctionBuilder, off: usize| {
        let v = b.ins().uload16(types::I32, f, a.st, off as i32);
        b.ins().uextend(types::I64, v)
    };
    match base {
        PayloadBase::Network => {
            let ok = b.ins().iconst(types::I8, 1);
            (ok, u16_field(b, offset_of!(PktState, nhoff)))
        }
        PayloadBase::Transport => {
            // transport_ok(): has_th && fragoff == 0
            let has_th = b
                .ins()
                .load(types::I8, f, a.st, offset_of!(PktState, has_th) as i32);
            let has_th = b.ins().icmp_imm_u(IntCC::NotEqual, has_th, 0);
            let frag = b
                .ins()
                .uload16(types::I32, f, a.st, offset_of!(PktState, fragoff) as i32);
            let nofrag = b.ins().icmp_imm_u(IntCC::Equal, frag, 0);
            let ok = b.ins().band(has_th, nofrag);
            (ok, u16_field(b, offset_of!(PktState, thoff)))
        }
        PayloadBase::Link => {
            let has_ll = b
                .ins()
                .load(types::I8, f, a.st, offset_of!(PktState, has_ll) as i32);
            let ok = b.ins().icmp_imm_u(IntCC::NotEqual, has_ll, 0);
            (ok, u16_field(b, offset_of!(PktState, lloff)))
        }
    }
}

/// Check `n` bytes at `base + off`: `(ok, pkt + start)`. Load only where `ok` is true.
/// `pbase` is what [`base`] returned for the payload base (computed once per function: the
/// offsets never change during a traversal).
pub(crate) fn checked_addr(
    b: &mut FunctionBuilder,
    a: PktArgs,
    pbase: (Value, Value),
    off: u32,
    n: u8,
) -> (Value, Value) {
    let (base_ok, boff) = pbase;
    // start = base_offset + off < 2^16 + 2^32: no overflow in i64.
    let start = b.ins().iadd_imm_u(boff, i64::from(off));
    // end = start + n with n <= 64: no overflow either.
    let end = b.ins().iadd_imm_u(start, i64::from(n));
    // in bounds iff end <= len (unsigned): every byte read is in pkt[0..len].
    let fits = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, a.len);
    let ok = b.ins().band(base_ok, fits);
    let addr = b.ins().iadd(a.pkt, start);
    (ok, addr)
}

/// Like [`checked_addr`], but when the check fails the address is `zero` ([`zero_addr`]) so
/// that a load of `n <= 64` bytes from the result is always valid.
pub(crate) fn clamped_addr(
    b: &mut FunctionBuilder,
    a: PktArgs,
    pbase: (Value, Value),
    off: u32,
    n: u8,
    zero: Value,
) -> (Value, Value) {
    debug_assert!(n <= 64);
    let (ok, addr) = checked_addr(b, a, pbase, off, n);
    let addr = b.ins().select(ok, addr, zero);
    (ok, addr)
}

/// Load `n` (1..=64) bytes at `addr` as register words in the JIT's big-endian word domain
/// (`codegen` module docs): word `i` holds bytes `4i..4i+4`, the first byte in the top bits,
/// missing bytes of the last word zero. `addr` must come from one of the checks above with
/// the same `n` (and `ok` true, or the clamped zero area).
pub(crate) fn load_words(b: &mut FunctionBuilder, addr: Value, n: u8) -> Vec<Value> {
    let f = pkt_flags();
    let n = usize::from(n);
    let mut out = Vec::with_capacity(n.div_ceil(4));
    for w in 0..n.div_ceil(4) {
        let at = (w * 4) as i32;
        let v = match n - w * 4 {
            1 => {
                let x = b.ins().uload8(types::I32, f, addr, at);
                b.ins().ishl_imm_u(x, 24)
            }
            2 => {
                let x = be16(b, f, addr, at);
                b.ins().ishl_imm_u(x, 16)
            }
            3 => {
                let hi = be16(b, f, addr, at);
                let lo = b.ins().uload8(types::I32, f, addr, at + 2);
                let hi = b.ins().ishl_imm_u(hi, 16);
                let lo = b.ins().ishl_imm_u(lo, 8);
                b.ins().bor(hi, lo)
            }
            _ => {
                let x = b.ins().load(types::I32, f, addr, at);
                b.ins().bswap(x)
            }
        };
        out.push(v);
    }
    out
}

/// A big-endian u16 at `addr + at`, zero-extended to i32.
fn be16(b: &mut FunctionBuilder, f: MemFlagsData, addr: Value, at: i32) -> Value {
    let x = b.ins().load(types::I16, f, addr, at);
    let x = b.ins().bswap(x);
    b.ins().uextend(types::I32, x)
}
