//! nfr-compiler: the checker (Ast → [`hir::Hir`]), diagnostics, and (later) the lowerings
//! to bytecode and to the iptables blob.
//!
//! Entry point: [`check::check`]. Diagnostics are plain data ([`diag::Diagnostic`]) rendered
//! at the edge with [`diag::render`] or [`diag::to_json`].
#![forbid(unsafe_code)]

pub mod check;
pub mod diag;
pub mod hir;
pub mod lower;
pub mod nft_t;
