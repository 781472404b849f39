//! Classified runs: every classifier of the program (`nfr_vm::classify`) compiles to a
//! partition of its own that looks up the first rule that can match and then runs only that
//! rule — natively from a row of constants when the rule's analysis is exact and its tail is at
//! most a counter and a verdict, else through the interpreter (`env::h_rule`). So code size and
//! Cranelift's time grow with the number of runs, not of rules.
//!
//! Row layout (`u32` words, one row per rule of the run): `[flags, counter + 1 (0 = none),
//! code, jump chain]`, `code` being the partition return code of the rule's verdict
//! (`env::verdict_code`; `C_CONTINUE` when it has none).

use crate::env::{self, verdict_code};
use nfr_vm::VerifiedProgram;

/// Row flag: the rule runs from its row (exact analysis, simple tail).
pub(crate) const FAST: u32 = 1;
/// Row flag: the rule may change what the key reads (look it up afresh afterwards).
pub(crate) const WRITES: u32 = 2;
/// Words per row.
pub(crate) const ROW: usize = 4;

/// One classifier's partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub chain: u32,
    /// Rule positions `start..end` of the chain.
    pub start: u32,
    pub end: u32,
    /// Index of the classifier in `Program::classifiers`.
    pub cls: u32,
    /// Offset of the run's first row in `Plan::table` (words).
    pub rows: usize,
}

/// Every run, and the row table the compiled code reads (owned by the `JitProgram`).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub runs: Vec<Run>,
    pub table: Box<[u32]>,
    /// Walk the trees in native code (else call the shared walk on the native key).
    pub native_walk: bool,
}

impl Plan {
    /// The run starting at rule `pos` of `chain`.
    pub fn run_at(&self, chain: u32, pos: u32) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.chain == chain && r.start == pos)
    }
}

/// The runs of a verified program: one per classifier.
pub(crate) fn plan(prog: &VerifiedProgram) -> Plan {
    let mut runs = Vec::new();
    let mut table = Vec::new();
    for (k, c) in prog.program().classifiers.iter().enumerate() {
        runs.push(Run {
            chain: c.chain.0,
            start: c.start,
            end: c.end,
            cls: k as u32,
            rows: table.len(),
        });
        for r in &c.rules {
            let (code, chain) = verdict_code(r.verdict);
            // A `break` verdict after the counter goes on with the next rule, as `continue`.
            let code = if code == env::C_BREAK {
                env::C_CONTINUE
            } else {
                code
            };
            let fast = r.exact && r.simple;
            table.extend([
                (u32::from(fast) * FAST) | (u32::from(r.writes) * WRITES),
                r.counter.map_or(0, |c| c + 1),
                code,
                chain.unwrap_or(0),
            ]);
        }
    }
    Plan {
        runs,
        table: table.into_boxed_slice(),
        native_walk: true,
    }
}
