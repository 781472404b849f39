//! Fuzz target `classify`: the input steers `nfr_jit::testgen` to a random valid Program, builds
//! its classifiers with random options and aims packets at their leaves; the interpreter's tree
//! walk must equal its rule-by-rule scan (`nfr_jit::testgen::classify_input`).
//! `jit/tests/fuzz_seeds.rs` replays `testdata/fuzz-seeds/classify` on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nfr_jit::testgen::classify_input(data) {
        panic!("{e}");
    }
});
