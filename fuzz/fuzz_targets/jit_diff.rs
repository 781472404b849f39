//! Fuzz target `jit_diff`: the input steers `nfr_jit::testgen` to a random *valid* Program and
//! packets (each with every truncation); the JIT must compile it and agree with the interpreter
//! (the oracle) on the verdict, counters, limits, `PktState` and every `Effects` field. See
//! `nfr_jit::testgen::diff_input` for the input format (byte 0: options; the rest: the
//! generator's tape). `jit/tests/fuzz_seeds.rs` replays `testdata/fuzz-seeds/jit_diff` and
//! `fuzz/regressions/jit_diff` on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nfr_jit::testgen::diff_input(data) {
        panic!("{e}");
    }
});
