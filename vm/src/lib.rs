//! nfr-vm: nfc's one executable IR. An nf_tables-like register bytecode (`Program`), its
//! verifier (`Program::verify` → `VerifiedProgram`, the only executable form), the reference
//! interpreter with `nft_do_chain` semantics, and a printer in nft `--debug=netlink` style.
//!
//! Shared with the other engines: the packet context `pkt::PktState` and the verdict types in
//! `verdict`.
#![forbid(unsafe_code)]

mod fast;
pub mod ids;
pub mod pkt;
pub mod verdict;

pub use ids::{ChainId, CounterId, InsnIdx, LimitId, Reg, RuleId, SetId};
pub use pkt::{CtTuple, PktState};
pub use verdict::{ChainVerdict, Hook, Verdict};

pub mod insn;
pub mod interp;
pub mod print;
pub mod program;
pub mod verify;

pub use insn::{Data, Insn};
pub use interp::{Effects, State};
pub use program::{ChainKind, Policy, Program, Set};
pub use verify::{VerifiedProgram, VerifyError};
