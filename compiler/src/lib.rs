//! nfr-compiler: the checker (Ast → [`hir::Hir`]), diagnostics, and (later) the lowerings
//! to bytecode and to the iptables blob.
//!
//! # Pipeline
//! [`check::check`] takes a [`diag::SourceMap`] with the root file and a [`check::Loader`] for
//! includes (the compiler never opens files). It parses every file with `nfr_grammar::parse`,
//! flattens includes, collects defines, declares tables/chains/sets, types sets, checks base
//! chains, then every rule; finally the jump graph (loops, depth, reachability) and statement
//! placement. It returns every diagnostic of the run, and a `Hir` only when none is an error.
//!
//! # Invariants of a `Hir`
//! - names are ids (`ChainId`, `SetId`, `TableId`) that index `Hir::chains/sets/tables`;
//! - jumps/gotos target user chains of the same table; the graph has no loop and no path of
//!   16 jumps from a base chain;
//! - every value is big-endian bytes of its type's width (sub-byte fields right-aligned;
//!   `Expr::load_window` gives byte window, mask and shift), with the text it was written as;
//! - nft's implicit protocol dependencies are explicit `Match { implicit: true }` items, in
//!   the order nft's bytecode has them (checked against nftables' `.t.payload` files); a rule
//!   keeps them compact (`hir::Dep`) and `Rule::items_with_deps` puts them in place;
//! - every node keeps its source [`diag::Span`].
//!
//! Diagnostics are plain data ([`diag::Diagnostic`], codes in [`diag::CODES`]) rendered at the
//! edge with [`diag::render`] (ariadne) or [`diag::to_json`].
#![forbid(unsafe_code)]

pub mod check;
pub mod diag;
pub mod hir;
pub mod lower;
pub mod nft_t;
pub mod raise;
