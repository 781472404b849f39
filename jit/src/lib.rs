//! Cranelift JIT for nfr-vm Programs (being written).
