//! Interpreter fast path: at verification time each rule's instructions are also lowered to
//! small `Op`s (16 bytes) with precomputed operands for the hot cases — like the kernel's
//! `nft_cmp_fast_ops`, `nft_payload_fast_ops` and `nft_bitwise_fast_ops` — plus two fused
//! pairs ("superinstructions": payload load + cmp, `meta l4proto` + cmp) that halve dispatches
//! on the most common rule shape. `Op::Generic(i)` evaluates the full `Insn` `i`. The
//! semantics are exactly those of the instructions: a fused op still writes the loaded
//! register, and counts as one executed instruction if its first half breaks, two otherwise.

use crate::insn::{BitwiseOp, CmpOp, Data, Insn, MetaKey, PayloadBase, RangeOp};
use crate::verdict::ChainVerdict;

/// A lowered instruction (see the module docs). Register numbers are verified `< 16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Load 1, 2 or 4 bytes at the network header.
    LoadNh { off: u32, len: u8, dreg: u8 },
    /// Load 1, 2 or 4 bytes at the transport header.
    LoadTh { off: u32, len: u8, dreg: u8 },
    /// `LoadNh` then `CmpEq` on the loaded register.
    LoadNhCmp {
        off: u32,
        len: u8,
        dreg: u8,
        neq: bool,
        mask: u32,
        data: u32,
    },
    /// `LoadTh` then `CmpEq` on the loaded register.
    LoadThCmp {
        off: u32,
        len: u8,
        dreg: u8,
        neq: bool,
        mask: u32,
        data: u32,
    },
    /// `meta load l4proto` then `cmp eq|neq` of one byte.
    L4protoCmp { dreg: u8, neq: bool, data: u32 },
    /// `(reg & mask) == data` (xor `neq`) on a ≤ 4-byte value.
    CmpEq {
        sreg: u8,
        neq: bool,
        mask: u32,
        data: u32,
    },
    /// ≤ 4-byte range: `from_be <= swap(reg & mask) <= to_be` (xor `neq`).
    Range32 {
        sreg: u8,
        neq: bool,
        mask: u32,
        from_be: u32,
        to_be: u32,
    },
    /// `dst = (src & mask) ^ xor` on one word.
    MaskXor32 {
        sreg: u8,
        dreg: u8,
        mask: u32,
        xor: u32,
    },
    /// Immediate word.
    Imm32 { dreg: u8, v: u32 },
    /// `ct load state` (defined with or without a conntrack entry).
    CtState { dreg: u8 },
    /// `meta load <key>` (single-word keys; ifnames go through `Generic`).
    Meta { key: MetaKey, dreg: u8 },
    /// Verdict immediate.
    Verdict(ChainVerdict),
    /// Evaluate the full instruction at this index of `Program::insns`.
    Generic(u32),
}

fn word(d: &Data) -> u32 {
    d.words().next().unwrap_or(0)
}

fn mask(len: usize) -> u32 {
    if len >= 4 {
        u32::MAX
    } else {
        (1u32 << (len * 8)) - 1
    }
}

/// `Some((neq, mask, data))` for a ≤ 4-byte eq/neq compare of `reg`.
fn cmp_fast(insn: Option<&Insn>, reg: u8) -> Option<(bool, u32, u32)> {
    match insn {
        Some(Insn::Cmp {
            op: op @ (CmpOp::Eq | CmpOp::Neq),
            sreg,
            data,
        }) if data.len() <= 4 && sreg.0 == reg => {
            Some((*op == CmpOp::Neq, mask(data.len()), word(data)))
        }
        _ => None,
    }
}

/// Lower the instructions of one rule (`insns[k]` is `Program::insns[first + k]`).
pub(crate) fn lower_rule(insns: &[Insn], first: u32, out: &mut Vec<Op>) {
    let mut k = 0;
    while let Some(insn) = insns.get(k) {
        let next = insns.get(k + 1);
        let fused = match insn {
            Insn::Payload {
                base: base @ (PayloadBase::Network | PayloadBase::Transport),
                offset,
                len: len @ (1 | 2 | 4),
                dreg,
            } => cmp_fast(next, dreg.0).map(|(neq, mask, data)| {
                if *base == PayloadBase::Network {
                    Op::LoadNhCmp {
                        off: *offset,
                        len: *len,
                        dreg: dreg.0,
                        neq,
                        mask,
                        data,
                    }
                } else {
                    Op::LoadThCmp {
                        off: *offset,
                        len: *len,
                        dreg: dreg.0,
                        neq,
                        mask,
                        data,
                    }
                }
            }),
            Insn::Meta {
                key: MetaKey::L4proto,
                dreg,
            } => cmp_fast(next, dreg.0).and_then(|(neq, mask, data)| {
                (mask == 0xff).then_some(Op::L4protoCmp {
                    dreg: dreg.0,
                    neq,
                    data,
                })
            }),
            _ => None,
        };
        if let Some(op) = fused {
            out.push(op);
            k += 2;
        } else {
            out.push(lower(insn, first + k as u32));
            k += 1;
        }
    }
}

/// Lower one instruction (index `idx` in `Program::insns`).
fn lower(insn: &Insn, idx: u32) -> Op {
    match insn {
        Insn::Payload {
            base,
            offset,
            len,
            dreg,
        } if matches!(len, 1 | 2 | 4) => match base {
            PayloadBase::Network => Op::LoadNh {
                off: *offset,
                len: *len,
                dreg: dreg.0,
            },
            PayloadBase::Transport => Op::LoadTh {
                off: *offset,
                len: *len,
                dreg: dreg.0,
            },
            PayloadBase::Link => Op::Generic(idx),
        },
        Insn::Cmp { sreg, .. } => match cmp_fast(Some(insn), sreg.0) {
            Some((neq, mask, data)) => Op::CmpEq {
                sreg: sreg.0,
                neq,
                mask,
                data,
            },
            None => Op::Generic(idx),
        },
        Insn::Range { op, sreg, bounds } if bounds.from.len() <= 4 => Op::Range32 {
            sreg: sreg.0,
            neq: *op == RangeOp::Neq,
            mask: mask(bounds.from.len()),
            from_be: word(&bounds.from).swap_bytes(),
            to_be: word(&bounds.to).swap_bytes(),
        },
        Insn::Bitwise {
            sreg,
            dreg,
            len,
            op: BitwiseOp::MaskXor(mx),
        } if *len <= 4 => Op::MaskXor32 {
            sreg: sreg.0,
            dreg: dreg.0,
            mask: word(&mx.mask),
            xor: word(&mx.xor),
        },
        Insn::Immediate { dreg, data } if data.len() <= 4 => Op::Imm32 {
            dreg: dreg.0,
            v: word(data),
        },
        Insn::ImmVerdict(v) => Op::Verdict(*v),
        Insn::Ct {
            key: crate::insn::CtKey::State,
            dreg,
            ..
        } => Op::CtState { dreg: dreg.0 },
        Insn::Meta { key, dreg } if key.size() <= 4 && *key != MetaKey::Prandom => Op::Meta {
            key: *key,
            dreg: dreg.0,
        },
        _ => Op::Generic(idx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Reg;

    #[test]
    fn fuses_load_cmp_and_l4proto_cmp_only_on_the_same_register() {
        let insns = vec![
            Insn::meta(MetaKey::L4proto, Reg(0)),
            Insn::cmp_eq(Reg(0), Data::u8(6)),
            Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
            Insn::cmp_eq(Reg(0), Data::be16(22)),
            Insn::payload(PayloadBase::Network, 12, 4, Reg(1)),
            Insn::cmp_eq(Reg(0), Data::be16(22)),
            Insn::ImmVerdict(ChainVerdict::Accept),
        ];
        let mut out = Vec::new();
        lower_rule(&insns, 10, &mut out);
        assert_eq!(out.len(), 5);
        assert!(matches!(out[0], Op::L4protoCmp { data: 6, .. }));
        assert!(matches!(
            out[1],
            Op::LoadThCmp {
                off: 2,
                data: 0x1600,
                ..
            }
        ));
        assert!(matches!(
            out[2],
            Op::LoadNh {
                off: 12,
                dreg: 1,
                ..
            }
        ));
        assert!(matches!(out[3], Op::CmpEq { sreg: 0, .. }));
        assert_eq!(out[4], Op::Verdict(ChainVerdict::Accept));
        assert_eq!(std::mem::size_of::<Op>(), 16);
    }
}
