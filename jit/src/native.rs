//! The only module with `unsafe` code: it owns the executable memory (`JITModule`), calls
//! compiled partitions, and frees the memory when the program is dropped. Everything else in
//! the crate is safe Rust; the code generator's job is to make the native code uphold the
//! contract written at [`Code::call`].

use crate::env::Env;
use cranelift_jit::JITModule;
use nfr_vm::PktState;

/// The native signature of a compiled partition (see `codegen`): environment, packet pointer,
/// packet length, packet state, start index within the partition → return code.
type PartFn = unsafe extern "C" fn(*mut u8, *const u8, usize, *mut PktState, u32) -> u32;

/// Finalized machine code: the module that owns it, one entry pointer per partition, and the
/// rule-run row tables the code reads (`runs`; a boxed slice never moves, so the addresses
/// baked into the code stay valid as long as `Code` lives).
pub(crate) struct Code {
    module: Option<JITModule>,
    fns: Vec<*const u8>,
    table: Box<[u32]>,
}

impl Code {
    /// Take ownership of a finalized module and its partitions' entry points
    /// (`JITModule::get_finalized_function` results, in partition order), and the row tables
    /// whose address the code was compiled with.
    pub(crate) fn new(module: JITModule, fns: Vec<*const u8>, table: Box<[u32]>) -> Code {
        Code {
            module: Some(module),
            fns,
            table,
        }
    }

    /// Words in the rule-run tables.
    pub(crate) fn table_words(&self) -> usize {
        self.table.len()
    }

    /// Run partition `f` from its rule `start` (relative). Unknown `f` gives NF_DROP.
    #[allow(unsafe_code)]
    pub(crate) fn call(
        &self,
        f: usize,
        env: &mut Env<'_>,
        pkt: &[u8],
        st: &mut PktState,
        start: u32,
    ) -> u32 {
        let Some(&ptr) = self.fns.get(f) else {
            return nfr_vm::verdict::NF_DROP;
        };
        let env: *mut Env<'_> = env;
        // # Safety
        //
        // * `ptr` is the entry of a function that `codegen` defined with exactly the `PartFn`
        //   signature (`module.make_signature()`, the host's C calling convention) and that
        //   `finalize_definitions` made executable; `self.module` keeps that memory alive and
        //   is only freed in `drop`, after which no `Code` method can run.
        // * The function reads only: `pkt[0..pkt.len()]`, and only after the checks in
        //   `bounds` (or from the static `bounds::ZERO`); fields of `*st` at `offset_of!`
        //   offsets; `env`'s `#[repr(C)]` head (`counters`, `jump_chain`, `resume`, `regs`);
        //   its own stack slot (a classified run's key, `MAX_DIMS` words); rows `start..end`
        //   of a classified run's table inside `self.table` (`runs::plan` laid out one row per
        //   rule of the run, and the row index is a position the walk returned, which is
        //   inside the run or leaves it); and the node and leaf arrays of the classifiers of
        //   the program the `JitProgram` owns, at the addresses the code was compiled with
        //   (the `JitProgram` keeps that program, never mutates it, and moving it moves no heap
        //   buffer), only at offsets `verify` checked: node pointers inside `nodes` with child
        //   tables inside it, leaf pointers at leaf starts, every leaf's quads inside `leaves`
        //   (`check_classifier`).
        // * It writes only: `env.jump_chain`, `env.resume`, `env.regs`, its own stack slot, and
        //   counters at `env.counters + id` for counter ids that `verify` checked against the
        //   program and that `JitProgram::run` checked against `State::counters.len()` (for
        //   classified runs: the row's `counter + 1` word, copied from the verified
        //   instruction).
        // * It calls only safe Rust functions of `env` (`h_insn`, `h_first`, `h_rule`, and
        //   `h_walk` with a reference to one of those classifiers and to its stack slot),
        //   passing `env` and `st` unchanged; no reference derived from `env`/`st` is used by
        //   Rust code during the call, so the helpers' `&mut` references are unique while they
        //   run. The helpers may count packets in `State::counters` (an object map's named
        //   counter, a rule the interpreter runs) but never resize it, so `env.counters` (from
        //   `as_mut_ptr`, which makes no reference to the elements) stays valid, and their
        //   writes and native code's never overlap in time.
        // * It contains no traps. Its loops: a tree descent (each step moves to a child table
        //   at a higher offset, so it ends at a leaf), a leaf scan (bounded by the leaf's quad
        //   count), and a classified run's lookups (each from a position after the last rule
        //   run, so at most one per rule of the run).
        unsafe {
            let f: PartFn = std::mem::transmute::<*const u8, PartFn>(ptr);
            f(env.cast::<u8>(), pkt.as_ptr(), pkt.len(), st, start)
        }
    }
}

impl Drop for Code {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            self.fns.clear();
            // # Safety
            //
            // `free_memory` invalidates the function pointers. They live only in `self.fns`
            // (just cleared) and are called only through `Code::call` on `&self`, which cannot
            // run concurrently with `drop(&mut self)`; no compiled code is executing.
            unsafe { m.free_memory() };
        }
    }
}
