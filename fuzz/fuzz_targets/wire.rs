//! Fuzz target `wire`: see `nfc_fuzz::wire` and fuzz/README.md. The conntrack table and the virtual clock
//! persist across inputs, so sequences of packets build connections, expectations and timeouts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfr_runtime::ct::Conntrack;
use std::sync::{LazyLock, Mutex};

static CT: LazyLock<Mutex<(Conntrack, u64)>> =
    LazyLock::new(|| Mutex::new((Conntrack::new(nfc_fuzz::wire_settings()), 0)));

fuzz_target!(|data: &[u8]| {
    let mut guard = CT.lock().unwrap_or_else(|e| e.into_inner());
    let (ct, clock) = &mut *guard;
    nfc_fuzz::wire(ct, clock, data);
});
