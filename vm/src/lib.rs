//! nfr-vm: nfc's one executable IR. An nf_tables-like register bytecode (`Program`), its
//! verifier (`Program::verify` → `VerifiedProgram`, the only executable form), the reference
//! interpreter with `nft_do_chain` semantics, and a printer in nft `--debug=netlink` style.
//!
//! Shared with the other engines: the packet context `pkt::PktState` and the verdict types in
//! `verdict`.
//!
//! ```
//! use nfr_vm::insn::{Data, Insn, MetaKey, PayloadBase};
//! use nfr_vm::program::Policy;
//! use nfr_vm::{ChainId, ChainVerdict, Effects, Hook, PktState, Program, Reg, State, Verdict};
//!
//! // table inet filter { chain input { type filter hook input priority 0; policy drop;
//! //     tcp dport 22 accept } }
//! let mut p = Program::new();
//! let input = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
//! p.add_rule(input, vec![
//!     Insn::meta(MetaKey::L4proto, Reg(0)),
//!     Insn::cmp_eq(Reg(0), Data::u8(6)),
//!     Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
//!     Insn::cmp_eq(Reg(0), Data::be16(22)),
//!     Insn::ImmVerdict(ChainVerdict::Accept),
//! ]);
//! assert_eq!(
//!     nfr_vm::print::print_rule(&p, nfr_vm::RuleId(0)).lines().nth(2),
//!     Some("  [ payload load 2b @ transport header + 2 => reg 1 ]")
//! );
//! let prog = p.verify().expect("valid program");
//!
//! // A raw IPv4/TCP packet (no link layer) to port 22.
//! let mut pkt = vec![0u8; 40];
//! pkt[0] = 0x45;
//! pkt[9] = 6;
//! pkt[22..24].copy_from_slice(&22u16.to_be_bytes());
//! let mut st = PktState { nhoff: 0, thoff: 20, has_th: true, l4proto: 6, len: 40, ..Default::default() };
//! let mut state = State::new(&prog);
//! let mut fx = Effects::default();
//! assert_eq!(prog.run(&mut state, input, &pkt, &mut st, &mut fx), Verdict::Accept);
//! ```
#![forbid(unsafe_code)]

mod fast;
pub mod ids;
pub mod pkt;
pub mod verdict;

pub use ids::{ChainId, CounterId, InsnIdx, LimitId, Reg, RuleId, SetId};
pub use pkt::{CtTuple, PktState};
pub use verdict::{ChainVerdict, Hook, Verdict};

pub mod classify;
pub mod dynset;
pub mod insn;
pub mod interp;
pub mod prandom;
pub mod print;
pub mod program;
pub mod verify;

pub use insn::{Data, Insn};
pub use interp::{Effects, State, ipv6_find_hdr, tcp_find_opt};
pub use prandom::Prandom;
pub use program::{ChainKind, Policy, Program, Set};
pub use verify::{VerifiedProgram, VerifyError};
