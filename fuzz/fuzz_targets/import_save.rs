//! Fuzz target `import_save`: iptables-save text through `nfc import iptables-save`'s path (see
//! `nfc_fuzz::import_save`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfc_fuzz::import_save(data));
