//! Fuzz target `run_pcap`: a ruleset and a capture through `nfc run pcap`'s host on every engine, which must
//! agree (see `nfc_fuzz::run_pcap`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nfc_fuzz::run_pcap(data);
});
