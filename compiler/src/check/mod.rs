//! The checker: Ast → Hir, collecting every diagnostic of a run.
//! Split by concern: `resolve` (defines, includes, names), `types` (selectors and values),
//! `deps` (implicit protocol dependencies), `hooks` (chain types, hooks, priorities,
//! iptables mapping), `loops` (the jump/goto graph).

pub mod hooks;
pub mod loops;
