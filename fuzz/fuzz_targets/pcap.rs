//! Fuzz target `pcap`: see `nfc_fuzz::pcap` and fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nfc_fuzz::pcap(data));
