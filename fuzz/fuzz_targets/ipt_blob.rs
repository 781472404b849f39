//! Fuzz target `ipt_blob`: see `nfc_fuzz::ipt_blob` and fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfc_fuzz::ipt_blob(data));
