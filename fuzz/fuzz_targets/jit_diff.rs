//! Fuzz target `jit_diff`: the input steers `nfr_jit::testgen` to a random *valid* Program and
//! packets (each with every truncation); the JIT must compile it and agree with the interpreter
//! (the oracle) on the verdict, counters, limits, `PktState` and every `Effects` field.
//!
//! Byte 0 picks the options: bit 0 opt level none/speed, bit 1 tiny partitions (3 insns),
//! bits 2–3 `min_run` (0 = every rule unrolled, 1, 2, 4 = the default). The rest is the
//! generator's tape (each draw's low byte is the next input byte; a seed derived from the
//! whole input takes over when it runs out).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfr_jit::testgen::{Rng, compare, packet_set, random_program};
use nfr_jit::{JitOptions, JitProgram, OptLevel};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, tape)) = data.split_first() else {
        return;
    };
    let opts = JitOptions {
        opt_level: if flags & 1 == 0 {
            OptLevel::None
        } else {
            OptLevel::Speed
        },
        partition_insns: if flags & 2 != 0 { 3 } else { 2048 },
        verify_ir: true,
        min_run: [0, 1, 2, 4][usize::from((flags >> 2) & 3)],
    };
    let mut r = Rng::from_tape(tape);
    let prog = random_program(&mut r);
    let jit = match JitProgram::compile_with(&prog, &opts) {
        Ok(j) => j,
        Err(e) => panic!("a verified program does not compile: {e}"),
    };
    let pkts = packet_set(&mut r, 2);
    if let Err(e) = compare(&prog, &jit, &pkts) {
        panic!(
            "jit != interp: {e}\nprogram:\n{}",
            nfr_vm::print::print_program(prog.program())
        );
    }
});
