//! nfr-jit: compiles a verified nfr-vm `Program` to machine code with Cranelift, with exactly
//! the interpreter's results (verdict, counters, limits, marks, ct marks, every `Effects`
//! field) on every packet, including truncated ones.
//!
//! ```
//! use nfr_vm::insn::{Data, Insn, MetaKey, PayloadBase};
//! use nfr_vm::program::Policy;
//! use nfr_vm::{ChainVerdict, Effects, Hook, PktState, Program, Reg, State, Verdict};
//!
//! let mut p = Program::new();
//! let input = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
//! p.add_rule(input, vec![
//!     Insn::meta(MetaKey::L4proto, Reg(0)),
//!     Insn::cmp_eq(Reg(0), Data::u8(6)),
//!     Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
//!     Insn::cmp_eq(Reg(0), Data::be16(22)),
//!     Insn::ImmVerdict(ChainVerdict::Accept),
//! ]);
//! let prog = p.verify().unwrap();
//! let jit = nfr_jit::JitProgram::compile(&prog).unwrap();
//!
//! let mut pkt = vec![0u8; 40];
//! pkt[0] = 0x45;
//! pkt[22..24].copy_from_slice(&22u16.to_be_bytes());
//! let mut st = PktState { thoff: 20, has_th: true, l4proto: 6, len: 40, ..Default::default() };
//! let mut state = State::new(&prog);
//! let mut fx = Effects::default();
//! assert_eq!(jit.run(&mut state, input, &pkt, &mut st, &mut fx), Verdict::Accept);
//! // Truncated before the port: the rule does not match, the policy drops.
//! assert_eq!(jit.run(&mut state, input, &pkt[..23], &mut st, &mut fx), Verdict::Drop);
//! ```
//!
//! # Shape
//!
//! * `codegen`: one Cranelift function per *partition* (consecutive rules of a chain, at most
//!   `JitOptions::partition_insns` instructions) — compile time stays linear.
//! * `runs`: classified runs. Every classifier of the program (`nfr_vm::classify`, built at
//!   lowering) is a partition of its own: it asks the classifier for the first rule that can
//!   match and runs that rule from a row of constants (counter, verdict) when its analysis is
//!   exact, or through the interpreter otherwise, so code size and Cranelift time grow with
//!   the number of runs, not of rules.
//! * `bounds`: the one place where packet loads are bounds-checked (out of bounds = NFT_BREAK).
//! * `env`: the `#[repr(C)]` environment and the Rust helper that native code calls for rare
//!   instructions (limit, log, reject, notrack, NAT, payload write, exthdr, large set lookups,
//!   object maps, meta/ct set): it runs the interpreter's own step, `VerifiedProgram::eval`;
//!   and the helpers of classified runs (the shared key reader and walk, and the rules the
//!   interpreter runs).
//! * `native`: the only `unsafe` code — calling a compiled partition, freeing the code memory.
//! * `JitProgram::run` is `nft_do_chain`'s driver loop: partitions return a code (terminal
//!   verdict, jump, goto, return, end of partition); jumps use the interpreter's 16-deep
//!   `JumpStack`.
//!
//! # Compile time and the default options
//!
//! Cranelift's per-function work dominates compile time for unrolled rules (`define_function`
//! most of it), so rule runs that a classifier covers compile to one small function each,
//! and unrolled rules are split into partitions of `JitOptions::partition_insns`
//! instructions. The default is `OptLevel::Auto`: `Speed` when what is left outside
//! classified runs is small (classified runs are small functions it tightens), else `None`:
//! `Speed` ran no faster on unrolled rules
//! and compiles unrolled rules more slowly (measurements: docs/PERFORMANCE.md).
//!
//! Differences from the interpreter, all invisible in results: `State::insns_executed` is not
//! updated by native code; with `Effects::trace_enabled`, or a `State` that does not fit the
//! program, `run` runs the interpreter instead (so traces are the interpreter's).
#![deny(unsafe_code)]

mod bounds;
mod codegen;
mod env;
mod native;
mod runs;
#[doc(hidden)]
pub mod testgen;

use codegen::Part;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, ir::UserFuncName};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::Module;
use nfr_vm::ids::NFT_REG32_COUNT;
use nfr_vm::interp::JumpStack;
use nfr_vm::program::{ChainKind, Policy};
use nfr_vm::{ChainId, Effects, PktState, State, Verdict, VerifiedProgram};
use std::fmt;

/// Cranelift optimisation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptLevel {
    /// `opt_level=none`: fastest compile.
    None,
    /// `opt_level=speed`: e-graph optimisations (GVN, constant folding, LICM).
    Speed,
    /// `speed` when the code outside classified runs is small (at most [`AUTO_SPEED_INSNS`]
    /// unrolled instructions: classified runs are a few small functions that `speed` makes
    /// tighter at no real cost), else `none`.
    Auto,
}

/// Unrolled instructions up to which [`OptLevel::Auto`] compiles with `speed`.
pub const AUTO_SPEED_INSNS: usize = 4096;

/// Compilation options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitOptions {
    pub opt_level: OptLevel,
    /// Maximum instructions per compiled function (a partition always has at least one rule).
    pub partition_insns: usize,
    /// Run Cranelift's IR verifier on every function (on by default in debug builds).
    pub verify_ir: bool,
    /// Classified runs walk their trees in native code (else they call the interpreter's walk
    /// on the key they read natively).
    pub native_walk: bool,
}

impl Default for JitOptions {
    /// `auto`, 2048-instruction partitions: see "Compile time and the
    /// default options" in the crate docs (measurements in `tests/classbench.rs` and
    /// `benches/jit_vs_interp.rs`).
    fn default() -> Self {
        JitOptions {
            opt_level: OptLevel::Auto,
            partition_insns: 2048,
            verify_ir: cfg!(debug_assertions),
            native_walk: true,
        }
    }
}

/// Why a program could not be compiled (callers fall back to the interpreter).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JitError {
    /// The host is not supported (no Cranelift backend, or big-endian).
    UnsupportedHost(String),
    /// Cranelift rejected a function (verifier or codegen error).
    Codegen(String),
    /// Declaring, defining or finalizing in the JIT module failed.
    Module(String),
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::UnsupportedHost(s) => write!(f, "unsupported host: {s}"),
            JitError::Codegen(s) => write!(f, "cranelift: {s}"),
            JitError::Module(s) => write!(f, "jit module: {s}"),
        }
    }
}

impl std::error::Error for JitError {}

/// One chain: its partitions `(start, end, index into Code's functions)`, in rule order and
/// tiling its rules, and the verdict when it runs off its end with an empty jump stack (the
/// base chain policy; accept for a user chain entered directly, as the interpreter does).
#[derive(Debug)]
struct ChainCode {
    parts: Vec<(u32, u32, usize)>,
    policy: Verdict,
}

/// A compiled program: native code for every chain, plus the program itself (sets, log specs,
/// limit parameters for the helper; the interpreter fallback).
pub struct JitProgram {
    prog: VerifiedProgram,
    code: native::Code,
    chains: Vec<ChainCode>,
    /// The program's counters and limits: `run` needs a `State` with at least these.
    ncounters: usize,
    nlimits: usize,
    nfuncs: usize,
    nruns: usize,
}

impl fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JitProgram")
            .field("chains", &self.chains.len())
            .field("functions", &self.nfuncs)
            .field("runs", &self.nruns)
            .field("table_words", &self.code.table_words())
            .finish()
    }
}

fn isa(opts: &JitOptions) -> Result<OwnedTargetIsa, JitError> {
    if cfg!(target_endian = "big") {
        return Err(JitError::UnsupportedHost("big-endian".into()));
    }
    let mut fb = settings::builder();
    let set = |fb: &mut settings::Builder, k: &str, v: &str| {
        fb.set(k, v)
            .map_err(|e| JitError::UnsupportedHost(format!("{k}={v}: {e}")))
    };
    set(
        &mut fb,
        "opt_level",
        match opts.opt_level {
            OptLevel::None | OptLevel::Auto => "none",
            OptLevel::Speed => "speed",
        },
    )?;
    set(&mut fb, "is_pic", "false")?;
    set(
        &mut fb,
        "enable_verifier",
        if opts.verify_ir { "true" } else { "false" },
    )?;
    let ib = cranelift_native::builder().map_err(|e| JitError::UnsupportedHost(e.to_string()))?;
    ib.finish(settings::Flags::new(fb))
        .map_err(|e| JitError::UnsupportedHost(e.to_string()))
}

/// The options with [`OptLevel::Auto`] decided for `prog`.
fn resolve(prog: &VerifiedProgram, opts: &JitOptions) -> JitOptions {
    let mut o = opts.clone();
    if o.opt_level == OptLevel::Auto {
        let p = prog.program();
        let classified = |c: usize, pos: usize| {
            p.classifiers.iter().any(|k| {
                k.chain.0 as usize == c && (k.start as usize..k.end as usize).contains(&pos)
            })
        };
        let unrolled: usize = (0..p.chains.len())
            .flat_map(|c| {
                prog.chain_rules(ChainId(c as u32))
                    .iter()
                    .enumerate()
                    .filter(move |(i, _)| !classified(c, *i))
                    .map(|(_, r)| (r.end - r.start) as usize)
            })
            .sum();
        o.opt_level = if unrolled <= AUTO_SPEED_INSNS && !p.classifiers.is_empty() {
            OptLevel::Speed
        } else {
            OptLevel::None
        };
    }
    o
}

/// Build the IR of every partition and hand each function to `each`.
fn build_all(
    prog: &VerifiedProgram,
    plan: &runs::Plan,
    opts: &JitOptions,
    isa: &OwnedTargetIsa,
    mut each: impl FnMut(Part, &mut Function) -> Result<(), JitError>,
) -> Result<(), JitError> {
    let cc = isa.default_call_conv();
    let mut fctx = FunctionBuilderContext::new();
    for (i, part) in codegen::partition(prog, plan, opts.partition_insns.max(1))
        .into_iter()
        .enumerate()
    {
        let mut func = Function::with_name_signature(
            UserFuncName::user(0, i as u32),
            codegen::part_signature(cc),
        );
        codegen::build(
            &mut func,
            &mut fctx,
            prog,
            plan,
            part,
            cc,
            isa.frontend_config(),
        );
        each(part, &mut func)?;
    }
    Ok(())
}

impl JitProgram {
    /// Compile with the default options.
    pub fn compile(prog: &VerifiedProgram) -> Result<JitProgram, JitError> {
        Self::compile_with(prog, &JitOptions::default())
    }

    /// Compile with explicit options.
    pub fn compile_with(prog: &VerifiedProgram, opts: &JitOptions) -> Result<JitProgram, JitError> {
        // The code reads the classifiers' trees in place: compile against the copy we keep
        // (moving it later moves no heap buffer).
        let own = prog.clone();
        let prog = &own;
        let opts = &resolve(prog, opts);
        let isa = isa(opts)?;
        let mut module = JITModule::new(JITBuilder::with_isa(
            isa.clone(),
            cranelift_module::default_libcall_names(),
        ));
        let mut ctx = Context::new();
        let mut ids = Vec::new();
        let p = prog.program();
        let mut chains: Vec<ChainCode> = p
            .chains
            .iter()
            .map(|c| ChainCode {
                parts: Vec::new(),
                policy: match c.kind {
                    ChainKind::Base {
                        policy: Policy::Drop,
                        ..
                    } => Verdict::Drop,
                    _ => Verdict::Accept,
                },
            })
            .collect();
        let sig = codegen::part_signature(isa.default_call_conv());
        let mut plan = runs::plan(prog);
        plan.native_walk = opts.native_walk;
        build_all(prog, &plan, opts, &isa, |part, func| {
            let id = module
                .declare_anonymous_function(&sig)
                .map_err(|e| JitError::Module(e.to_string()))?;
            ctx.func = std::mem::replace(func, Function::new());
            module
                .define_function(id, &mut ctx)
                .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
            module.clear_context(&mut ctx);
            if let Some(c) = chains.get_mut(part.chain as usize) {
                c.parts.push((part.start, part.end, ids.len()));
            }
            ids.push(id);
            Ok(())
        })?;
        module
            .finalize_definitions()
            .map_err(|e| JitError::Module(e.to_string()))?;
        let nruns = plan.runs.len();
        let fns = ids
            .iter()
            .map(|id| module.get_finalized_function(*id))
            .collect();
        let (ncounters, nlimits) = (p.counters.len(), p.limits.len());
        Ok(JitProgram {
            prog: own,
            code: native::Code::new(module, fns, plan.table),
            chains,
            ncounters,
            nlimits,
            nfuncs: ids.len(),
            nruns,
        })
    }

    /// The program this was compiled from.
    pub fn program(&self) -> &VerifiedProgram {
        &self.prog
    }

    /// Number of native functions (partitions).
    pub fn functions(&self) -> usize {
        self.nfuncs
    }

    /// Number of classified runs (the program's classifiers), each a partition of its own.
    pub fn runs(&self) -> usize {
        self.nruns
    }

    /// Run `chain` on one packet: same contract and results as `VerifiedProgram::run`.
    /// Inlined: the checks and an empty chain cost no call.
    #[inline]
    pub fn run(
        &self,
        state: &mut State,
        chain: ChainId,
        pkt: &[u8],
        st: &mut PktState,
        fx: &mut Effects,
    ) -> Verdict {
        let c = match self.chains.get(chain.0 as usize) {
            Some(c)
                if !fx.trace_enabled
                    && state.counters.len() >= self.ncounters
                    && state.limits.len() >= self.nlimits =>
            {
                c
            }
            _ => return self.prog.run(state, chain, pkt, st, fx),
        };
        if c.parts.is_empty() {
            return c.policy;
        }
        self.drive(c, chain.0, state, pkt, st, fx)
    }

    /// `nft_do_chain`'s loop from the first rule of `c` (chain `chain`). Not inlined: it keeps
    /// `run`'s checks and an empty chain free of the loop's register saves.
    #[inline(never)]
    fn drive(
        &self,
        c: &ChainCode,
        chain: u32,
        state: &mut State,
        pkt: &[u8],
        st: &mut PktState,
        fx: &mut Effects,
    ) -> Verdict {
        let mut env = env::Env {
            counters: state.counters.as_mut_ptr(),
            jump_chain: 0,
            resume: 0,
            regs: [0; NFT_REG32_COUNT],
            prog: &self.prog,
            state,
            fx,
            pkt,
        };
        let mut stack = JumpStack::default();
        // The chain, its partitions, and the partition and rule in it (relative) to run next.
        let (mut cur, mut parts) = (chain, &c.parts[..]);
        let (mut i, mut rel) = (0usize, 0u32);
        loop {
            let code = match parts.get(i) {
                Some(&(_, _, f)) => self.code.call(f, &mut env, pkt, st, rel),
                // Past the last partition (resuming after a jump from the last rule).
                None => env::C_RETURN,
            };
            match code {
                env::C_END if i + 1 < parts.len() => (i, rel) = (i + 1, 0),
                // A return, or the end of the chain's last partition.
                env::C_END | env::C_RETURN => {
                    let Some((back, pos)) = stack.pop() else {
                        return c.policy;
                    };
                    (cur, parts) = (back.0, self.parts(back.0));
                    // The partition holding rule `pos` (past the end: none, a return).
                    i = parts.partition_point(|p| p.1 as usize <= pos);
                    rel = parts.get(i).map_or(0, |p| (pos as u32).saturating_sub(p.0));
                }
                env::C_JUMP => {
                    if !stack.push(ChainId(cur), env.resume as usize) {
                        return Verdict::Drop;
                    }
                    (cur, parts, i, rel) = (env.jump_chain, self.parts(env.jump_chain), 0, 0);
                }
                env::C_GOTO => {
                    (cur, parts, i, rel) = (env.jump_chain, self.parts(env.jump_chain), 0, 0);
                }
                c => return Verdict::from_u32(c).unwrap_or(Verdict::Drop),
            }
        }
    }

    fn parts(&self, chain: u32) -> &[(u32, u32, usize)] {
        self.chains
            .get(chain as usize)
            .map(|c| &c.parts[..])
            .unwrap_or(&[])
    }
}

/// The Cranelift IR of every partition as text (`nfc compile --emit clif`), before
/// optimisation, each function preceded by a `; chain NAME (#ID) rules A..B` line (plus
/// `, classified rules C..D` for a classified run).
pub fn clif(prog: &VerifiedProgram) -> Result<String, JitError> {
    let opts = JitOptions::default();
    let isa = isa(&opts)?;
    let plan = runs::plan(prog);
    let mut out = String::new();
    build_all(prog, &plan, &opts, &isa, |part, func| {
        let name = prog
            .program()
            .chains
            .get(part.chain as usize)
            .map(|c| c.name.as_str())
            .unwrap_or("?");
        let loops: Vec<String> = plan
            .runs
            .iter()
            .filter(|r| r.chain == part.chain && r.start >= part.start && r.end <= part.end)
            .map(|r| format!("{}..{}", r.start, r.end))
            .collect();
        let loops = if loops.is_empty() {
            String::new()
        } else {
            format!(", classified rules {}", loops.join(", "))
        };
        out.push_str(&format!(
            "; chain {name} (#{}) rules {}..{}{loops}\n{}\n",
            part.chain,
            part.start,
            part.end,
            func.display()
        ));
        cranelift_codegen::verify_function(func, isa.flags())
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        Ok(())
    })?;
    Ok(out)
}
