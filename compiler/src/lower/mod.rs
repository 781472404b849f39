//! Lowerings from the checked ruleset ([`crate::hir::Hir`]) to executable forms.
//!
//! [`bytecode`] turns a Hir into a `vm::Program` the way nftables' `netlink_linearize.c`
//! does (same registers, same expressions, same constants), so that the printed Program is
//! nft's own `--debug=netlink` output. Entry points: [`bytecode::lower`] and
//! [`bytecode::lower_verified`]; [`bytecode::print_program`] prints the result per chain.

pub mod bytecode;
pub mod ipt;
pub mod ipt_mapping;

pub use bytecode::{
    LowerError, PrintNames, classify_verified, lower, lower_verified, print_program, write_program,
};
