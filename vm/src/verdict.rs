//! Netfilter hooks and verdicts: `Hook` (NF_INET_*), the final netfilter `Verdict` (NF_DROP,
//! NF_ACCEPT, NF_STOLEN, NF_QUEUE with a queue number, NF_REPEAT) that every engine returns,
//! and `ChainVerdict`, the nf_tables verdict register value inside a Program (adds
//! NFT_CONTINUE, NFT_BREAK, NFT_JUMP, NFT_GOTO, NFT_RETURN).

use crate::ids::ChainId;

pub use nfr_proto::Hook;

/// `NF_DROP`.
pub const NF_DROP: u32 = 0;
/// `NF_ACCEPT`.
pub const NF_ACCEPT: u32 = 1;
/// `NF_STOLEN`.
pub const NF_STOLEN: u32 = 2;
/// `NF_QUEUE`.
pub const NF_QUEUE: u32 = 3;
/// `NF_REPEAT`.
pub const NF_REPEAT: u32 = 4;
/// `NF_VERDICT_MASK`: the low byte holds the verdict.
pub const NF_VERDICT_MASK: u32 = 0xff;
/// `NF_VERDICT_FLAG_QUEUE_BYPASS`.
pub const NF_VERDICT_FLAG_QUEUE_BYPASS: u32 = 0x8000;
/// `NF_VERDICT_QBITS`: the queue number lives in the upper 16 bits.
pub const NF_VERDICT_QBITS: u32 = 16;

/// `NFT_CONTINUE` as the kernel's signed verdict code.
pub const NFT_CONTINUE: i32 = -1;
/// `NFT_BREAK`.
pub const NFT_BREAK: i32 = -2;
/// `NFT_JUMP`.
pub const NFT_JUMP: i32 = -3;
/// `NFT_GOTO`.
pub const NFT_GOTO: i32 = -4;
/// `NFT_RETURN`.
pub const NFT_RETURN: i32 = -5;

/// `NFT_JUMP_STACK_SIZE`.
pub const NFT_JUMP_STACK_SIZE: usize = 16;

/// The final netfilter verdict of a hook entry (what an engine returns for a packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `NF_DROP`.
    Drop,
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_STOLEN`.
    Stolen,
    /// `NF_QUEUE` to queue `num`; `bypass` = `NF_VERDICT_FLAG_QUEUE_BYPASS` (accept if no
    /// listener).
    Queue { num: u16, bypass: bool },
    /// `NF_REPEAT`.
    Repeat,
}

impl Verdict {
    /// The kernel's u32 encoding (`NF_QUEUE_NR(num)` etc.).
    pub fn to_u32(self) -> u32 {
        match self {
            Verdict::Drop => NF_DROP,
            Verdict::Accept => NF_ACCEPT,
            Verdict::Stolen => NF_STOLEN,
            Verdict::Queue { num, bypass } => {
                (u32::from(num) << NF_VERDICT_QBITS)
                    | NF_QUEUE
                    | if bypass {
                        NF_VERDICT_FLAG_QUEUE_BYPASS
                    } else {
                        0
                    }
            }
            Verdict::Repeat => NF_REPEAT,
        }
    }

    /// Decode the kernel's u32 encoding; unknown low bytes give `None`.
    pub fn from_u32(v: u32) -> Option<Verdict> {
        Some(match v & NF_VERDICT_MASK {
            NF_DROP => Verdict::Drop,
            NF_ACCEPT => Verdict::Accept,
            NF_STOLEN => Verdict::Stolen,
            NF_QUEUE => Verdict::Queue {
                num: (v >> NF_VERDICT_QBITS) as u16,
                bypass: v & NF_VERDICT_FLAG_QUEUE_BYPASS != 0,
            },
            NF_REPEAT => Verdict::Repeat,
            _ => return None,
        })
    }
}

/// The nf_tables verdict register (`struct nft_verdict`) as a Program sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainVerdict {
    /// `NFT_CONTINUE`: go on with the next expression / rule.
    Continue,
    /// `NFT_BREAK`: the rule did not match, go to the next rule.
    Break,
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_DROP`.
    Drop,
    /// `NF_STOLEN`.
    Stolen,
    /// `NF_QUEUE` with queue number and bypass flag.
    Queue { num: u16, bypass: bool },
    /// `NF_REPEAT`.
    Repeat,
    /// `NFT_JUMP` to a chain (returns here afterwards).
    Jump(ChainId),
    /// `NFT_GOTO` to a chain (no return point).
    Goto(ChainId),
    /// `NFT_RETURN`.
    Return,
}

impl ChainVerdict {
    /// The terminal netfilter verdict, if this is one.
    pub fn terminal(self) -> Option<Verdict> {
        match self {
            ChainVerdict::Accept => Some(Verdict::Accept),
            ChainVerdict::Drop => Some(Verdict::Drop),
            ChainVerdict::Stolen => Some(Verdict::Stolen),
            ChainVerdict::Queue { num, bypass } => Some(Verdict::Queue { num, bypass }),
            ChainVerdict::Repeat => Some(Verdict::Repeat),
            _ => None,
        }
    }
}

impl From<Verdict> for ChainVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Drop => ChainVerdict::Drop,
            Verdict::Accept => ChainVerdict::Accept,
            Verdict::Stolen => ChainVerdict::Stolen,
            Verdict::Queue { num, bypass } => ChainVerdict::Queue { num, bypass },
            Verdict::Repeat => ChainVerdict::Repeat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_encoding_roundtrips() {
        let v = Verdict::Queue {
            num: 7,
            bypass: true,
        };
        assert_eq!(v.to_u32(), (7 << 16) | 0x8000 | 3);
        assert_eq!(Verdict::from_u32(v.to_u32()), Some(v));
        assert_eq!(Verdict::from_u32(1), Some(Verdict::Accept));
        assert_eq!(Verdict::from_u32(9), None);
    }

    #[test]
    fn hook_numbers() {
        assert_eq!(Hook::Forward as u8, 2);
        assert_eq!(Hook::from_u32(4), Some(Hook::Postrouting));
        assert_eq!(Hook::from_u32(5), None);
    }
}
