//! Shared test support: the generator and comparison live in `nfr_jit::testgen` (shared with
//! the `jit_diff` fuzz target).
#![allow(unused_imports)]

pub use nfr_jit::testgen::*;
