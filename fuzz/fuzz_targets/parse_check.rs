//! Fuzz target `parse_check`: see `nfc_fuzz::parse_check` and fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfc_fuzz::parse_check(data));
