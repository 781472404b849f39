//! The shadowing lint, run on the lowered program after a clean check: W0602, a rule that can
//! never match because earlier rules that end the chain take every packet it matches, and
//! W0603, a rule that repeats an earlier one (same match, same statements).
//!
//! Each rule is read through the classifier's rule analysis (`nfr_vm::classify`): the cubes
//! of the packets that reach its tail, whether they are exact, the fields its head loads, and
//! whether reaching the tail always ends the chain. Rule j is shadowed when earlier rules i of
//! its chain whose cubes are exact and whose tails are terminal, and whose loaded fields are
//! sure to be present whenever j's are (`cover::present_with`), hold every cube of j between
//! them (`cover::cover`). Rules that may change what later matches read (meta/ct set,
//! notrack, jumps, verdict maps, payload writes, object maps) close the window: rules before
//! one cover nothing after it, unless it is itself shadowed (then it never runs). A duplicate is
//! a rule whose instructions equal the closest earlier one's in the window, counters aside.
//!
//! A wrong "never matches" is worse than a missing one: every step errs towards silence, and
//! past the work caps the lint gives up without a word.

use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;

use hashbrown::HashMap;

use nfr_vm::classify::cover::{self, Budget, Canon, Cover, Found, Index, Walk};
use nfr_vm::classify::{Cube, Shape, Span as CubeSpan, rule_shapes, tail};
use nfr_vm::program::SetKind;
use nfr_vm::{ChainId, CounterId, Insn, Program, RuleId, Set, SetId};

use crate::diag::{Diagnostic, SourceMap, Span};
use crate::hir::{Hir, Item, Rule};

/// Steps (candidates looked at, pieces made) for the whole program.
const PROGRAM_STEPS: u64 = 20_000_000;
/// Steps for one rule.
const RULE_STEPS: u64 = 200_000;
/// Pieces kept at a time while subtracting.
const MAX_PIECES: usize = 1024;
/// Covering rules labelled in one warning.
const MAX_LABELS: usize = 4;
/// Earlier rules with the same instruction hash compared with a rule.
const DUP_SCAN: usize = 8;
/// Cubes of one rule on the canonical dimensions.
const MAX_RULE_CUBES: usize = 256;
/// Dimensions of one cube.
const MAX_SPANS: usize = 32;
/// Cubes of one chain on the canonical dimensions.
const MAX_CHAIN_CUBES: usize = 1 << 20;

/// The W0602 and W0603 warnings of a checked ruleset and its lowered program.
pub fn lint(hir: &Hir, prog: &Program, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut budget = Budget {
        steps: PROGRAM_STEPS,
    };
    let sets = set_classes(prog);
    for (ci, chain) in hir.chains.iter().enumerate() {
        let Some(pc) = prog.chains.get(ci) else {
            break;
        };
        if pc.rules.len() != chain.rules.len() {
            continue;
        }
        let shapes = rule_shapes(prog, ChainId(ci as u32));
        let ends = pc
            .rules
            .iter()
            .zip(&shapes)
            .map(|(&r, s)| {
                let t = tail(prog.rule_insns(r), s.tail as usize);
                End {
                    terminal: t.terminal,
                    writes: t.writes,
                }
            })
            .collect();
        let mut cx = Chain {
            hir: &chain.rules,
            prog,
            rules: &pc.rules,
            shapes,
            ends,
            every: Vec::new(),
            named_counters: hir.counters.len(),
            sets: &sets,
            sources,
        };
        if !cx.run(&mut budget, &mut out) {
            break;
        }
    }
    out
}

/// One chain's rules, their analysis and instructions.
struct Chain<'a> {
    hir: &'a [Rule],
    prog: &'a Program,
    /// The chain's rules in `prog`.
    rules: &'a [RuleId],
    /// The analysis of each rule; the lint puts its cubes on the canonical dimensions (none past the caps).
    shapes: Vec<Shape>,
    /// How each rule's tail ends.
    ends: Vec<End>,
    /// Per rule: every cube of its analysis was empty (the rule's head tests nothing).
    every: Vec<bool>,
    named_counters: usize,
    sets: &'a [u32],
    sources: &'a SourceMap,
}

/// What the lint reads of a rule's tail (`nfr_vm::classify::Tail`).
struct End {
    /// Reaching the tail always ends the chain's traversal.
    terminal: bool,
    /// The rule may change a value a later rule's match reads.
    writes: bool,
}

/// What was found about one rule.
enum Finding {
    Duplicate { of: usize, terminal: bool },
    Shadowed { by: Vec<usize> },
}

impl<'a> Chain<'a> {
    /// The instructions of rule `j`.
    fn insns(&self, j: usize) -> &'a [Insn] {
        self.rules.get(j).map_or(&[], |&r| self.prog.rule_insns(r))
    }

    /// Lint the chain; false when the program's budget ran out.
    fn run(&mut self, budget: &mut Budget, out: &mut Vec<Diagnostic>) -> bool {
        let n = self.shapes.len();
        // Each rule's previous one with the same instruction hash (`u32::MAX`: none), by sorting
        // the rules by hash (not a map of every rule). Rules the analysis finds no cube for take no part.
        let mut prev_same = vec![u32::MAX; n];
        let mut by_hash: Vec<(u64, u32)> = (0..n)
            .filter(|&j| !self.shapes[j].cubes.is_empty())
            .map(|j| (self.rule_hash(j), j as u32))
            .collect();
        by_hash.sort_unstable();
        for w in by_hash.windows(2) {
            if let [(a, i), (b, j)] = *w
                && a == b
                && let Some(p) = prev_same.get_mut(j as usize)
            {
                *p = i;
            }
        }
        drop(by_hash);
        let canon = Canon::new(self.shapes.iter().flat_map(|s| &s.cubes));
        // Each rule's cubes on the canonical dimensions, in place of the analysis' (kept when they are
        // already canonical); a rule past the caps takes no part (no cubes).
        let mut total = 0usize;
        let mut some = Vec::with_capacity(n);
        for s in &mut self.shapes {
            let raw = std::mem::take(&mut s.cubes);
            some.push(!raw.is_empty());
            self.every.push(raw.iter().all(|c| c.is_empty()));
            let mut all = Vec::new();
            for c in &raw {
                match canon.apply(c) {
                    Some(x) if all.len() + x.len() <= MAX_RULE_CUBES => all.extend(x),
                    _ => {
                        all.clear();
                        break;
                    }
                }
            }
            let ok = !all.is_empty() && all.iter().all(|c| c.len() <= MAX_SPANS);
            total += all.len();
            if total > MAX_CHAIN_CUBES || !budget.take(all.len() as u64) {
                return budget.steps > 0;
            }
            if ok {
                s.cubes = if all == raw { raw } else { all };
                s.shrink_to_fit();
            }
        }
        // Earlier rules that take what they match: exact cubes, terminal tail. Their cubes are indexed
        // (the index's id of each is its place in `rule_of`).
        let takes = |(s, t): &(&Shape, &End)| s.exact && t.terminal;
        let count = self
            .shapes
            .iter()
            .zip(&self.ends)
            .filter(takes)
            .map(|(s, _)| s.cubes.len())
            .sum();
        let mut rule_of: Vec<u32> = Vec::with_capacity(count);
        let mut indexed: Vec<&[CubeSpan]> = Vec::with_capacity(count);
        for (i, x) in self.shapes.iter().zip(&self.ends).enumerate() {
            if takes(&x) {
                for c in &x.0.cubes {
                    indexed.push(c);
                    rule_of.push(i as u32);
                }
            }
        }
        let index = Index::new(indexed);
        let mut window = 0usize;
        let prev = |i: usize| {
            prev_same
                .get(i)
                .filter(|&&p| p != u32::MAX)
                .map(|&p| p as usize)
        };
        for (j, (shape, end)) in self.shapes.iter().zip(&self.ends).enumerate() {
            if !some[j] {
                continue;
            }
            let target = Some(shape.cubes.as_slice()).filter(|c| !c.is_empty());
            let dup = if shape.exact {
                std::iter::successors(prev(j), |&i| prev(i))
                    .take(DUP_SCAN)
                    .find(|&i| i >= window && self.same_rule(i, j))
            } else {
                None
            };
            let finding = match dup {
                Some(i) if self.ends.get(i).is_some_and(|e| e.terminal) => {
                    Some(Finding::Duplicate {
                        of: i,
                        terminal: true,
                    })
                }
                _ => {
                    let mut rb = Budget {
                        steps: RULE_STEPS.min(budget.steps),
                    };
                    let before = rb.steps;
                    let by =
                        target.and_then(|t| self.covered(j, t, window, &index, &rule_of, &mut rb));
                    budget.take(before - rb.steps);
                    if budget.steps == 0 {
                        return false;
                    }
                    match (by, dup) {
                        (Some(by), _) => Some(Finding::Shadowed { by }),
                        (None, Some(i)) => Some(Finding::Duplicate {
                            of: i,
                            terminal: false,
                        }),
                        (None, None) => None,
                    }
                }
            };
            let shadowed = matches!(
                finding,
                Some(Finding::Shadowed { .. } | Finding::Duplicate { terminal: true, .. })
            );
            if let Some(f) = finding {
                out.push(self.diagnostic(j, f));
            }
            if !shadowed && self.writes(j, end) {
                window = j + 1;
            }
        }
        true
    }

    /// The earlier rules (positions, ascending) that together take every packet reaching rule
    /// `j`'s tail (`target`: its cubes on the canonical dimensions), if that can be shown.
    fn covered(
        &self,
        j: usize,
        target: &[Cube],
        window: usize,
        index: &Index,
        rule_of: &[u32],
        budget: &mut Budget,
    ) -> Option<Vec<usize>> {
        if target.is_empty() {
            return None;
        }
        let loads = &self.shapes[j].loads;
        let usable = |e: u32| {
            rule_of.get(e as usize).is_some_and(|&i| {
                let i = i as usize;
                i >= window
                    && i < j
                    && self.shapes[i]
                        .loads
                        .iter()
                        .all(|&f| cover::present_with(loads, f))
            })
        };
        // Cheap refusal first: the high corner of every cube must be taken.
        for t in target {
            let p = cover::corner(t, index.dims(), true);
            let mut found = false;
            let w = index.walk(&p, budget, |e, _| {
                if usable(e) {
                    found = true;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if w == Walk::OutOfBudget || !found {
                return None;
            }
        }
        // Then from low corners: the earliest usable cube holding the piece whole, else the
        // earliest holding its corner.
        let r = cover::cover_with(target, budget, MAX_PIECES, |piece, budget| {
            let p = cover::corner(piece, index.dims(), false);
            let mut best: Option<(bool, u32, &[CubeSpan])> = None;
            let w = index.walk(&p, budget, |e, c| {
                if usable(e) {
                    let whole = cover::contains(c, piece);
                    if best.is_none_or(|(w, b, _)| (!whole, e) < (!w, b)) {
                        best = Some((whole, e, c));
                    }
                }
                ControlFlow::Continue(())
            });
            match (w, best) {
                (Walk::OutOfBudget, _) => Found::OutOfBudget,
                (_, Some((_, e, c))) => Found::Cube(e, c),
                (_, None) => Found::Nothing,
            }
        });
        match r {
            Cover::Covered(used) => {
                let mut rules: Vec<usize> = used
                    .iter()
                    .filter_map(|&e| rule_of.get(e).map(|&i| i as usize))
                    .collect();
                rules.sort_unstable();
                rules.dedup();
                Some(rules)
            }
            Cover::Open | Cover::GaveUp => None,
        }
    }

    /// Running rule `j` may change what a later rule's match reads. Beyond the analysis'
    /// `writes`: payload writes (the kernel rewrites the packet at once) and object maps (a
    /// ct helper object attaches to the connection). A terminal rule's writes go with the
    /// packets it takes out of the chain.
    fn writes(&self, j: usize, end: &End) -> bool {
        let t = self
            .insns(j)
            .get(self.shapes[j].tail as usize..)
            .unwrap_or(&[]);
        !end.terminal
            && (end.writes
                || t.iter()
                    .any(|i| matches!(i, Insn::PayloadWrite { .. } | Insn::Objref { .. })))
    }

    /// Instruction `i` with what does not change its meaning taken out: anonymous counters
    /// are one counter, anonymous sets their first equal copy.
    fn norm(&self, i: &Insn) -> Insn {
        let set = |s: SetId| SetId(self.sets.get(s.0 as usize).copied().unwrap_or(s.0));
        match i {
            Insn::Counter(c) if c.0 as usize >= self.named_counters => {
                Insn::Counter(CounterId(u32::MAX))
            }
            Insn::Lookup {
                sreg,
                set: s,
                dest,
                invert,
            } => Insn::Lookup {
                sreg: *sreg,
                set: set(*s),
                dest: *dest,
                invert: *invert,
            },
            Insn::Objref { sreg, set: s } => Insn::Objref {
                sreg: *sreg,
                set: set(*s),
            },
            other => other.clone(),
        }
    }

    fn rule_hash(&self, j: usize) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        for i in self.insns(j) {
            self.norm(i).hash(&mut h);
        }
        h.finish()
    }

    fn same_rule(&self, a: usize, b: usize) -> bool {
        let (x, y) = (self.insns(a), self.insns(b));
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| self.norm(p) == self.norm(q))
    }

    fn diagnostic(&self, j: usize, f: Finding) -> Diagnostic {
        let span = self.hir[j].span;
        match f {
            Finding::Duplicate { of, terminal } => {
                let first = self.hir[of].span;
                let d = Diagnostic::warning(
                    "W0603",
                    span,
                    format!(
                        "this rule duplicates the rule at {}",
                        self.place(first, span)
                    ),
                )
                .with_primary_label("same match and statements")
                .with_label(first, "first written here")
                .with_help("remove one of them");
                if terminal {
                    d.with_note(
                        "the first one ends the chain for every packet it matches, so this one \
                         can never match",
                    )
                } else {
                    d.with_note(
                        "it runs on the same packets as the first one and repeats its statements",
                    )
                }
            }
            Finding::Shadowed { by } => {
                let mut d = Diagnostic::warning(
                    "W0602",
                    span,
                    "this rule can never match: earlier rules end the chain for every packet it \
                     matches",
                )
                .with_primary_label("never reached");
                for &i in by.iter().take(MAX_LABELS) {
                    let s = &self.shapes[i];
                    let every = self.every.get(i).copied().unwrap_or(false);
                    let text = if s.loads.is_empty() && every {
                        format!("this {} ends the chain before it", self.ending(i))
                    } else {
                        "covered by this rule".to_string()
                    };
                    d = d.with_label(self.hir[i].span, text);
                }
                if by.len() > MAX_LABELS {
                    d = d.with_note(format!(
                        "{} more earlier rules cover parts of it",
                        by.len() - MAX_LABELS
                    ));
                }
                d.with_help("remove it, or move it above the rules that cover it")
            }
        }
    }

    /// What ends the chain in rule `i`, as written: "`accept`", "`reject`", or "rule".
    fn ending(&self, i: usize) -> String {
        let r = &self.hir[i];
        let span = r.verdict.as_ref().map(|v| v.span).or_else(|| {
            r.items.iter().rev().find_map(|it| match it {
                Item::Stmt(s) => Some(s.span),
                _ => None,
            })
        });
        let text = span
            .and_then(|s| self.sources.text(s.file).get(s.range()))
            .map(str::trim)
            .unwrap_or("");
        if text.is_empty() || text.len() > 40 || text.contains('\n') {
            "rule".to_string()
        } else {
            format!("`{text}`")
        }
    }

    /// "line N" of `at`, with its file when it is not `from`'s.
    fn place(&self, at: Span, from: Span) -> String {
        let (line, _) = self.sources.line_col(at.file, at.start);
        if at.file == from.file {
            format!("line {line}")
        } else {
            format!("{}:{line}", self.sources.name(at.file))
        }
    }
}

/// Per set, the first set of the program that behaves the same: anonymous sets (`__set%d`,
/// `__map%d`, ...) with equal contents are one; named sets stay themselves.
fn set_classes(prog: &Program) -> Vec<u32> {
    let mut first: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut out = Vec::with_capacity(prog.sets.len());
    for (i, s) in prog.sets.iter().enumerate() {
        let i = i as u32;
        if !s.name.starts_with("__") {
            out.push(i);
            continue;
        }
        let h = set_hash(s);
        let same = first.get(&h).and_then(|v| {
            v.iter()
                .copied()
                .find(|&k| prog.sets.get(k as usize).is_some_and(|o| same_set(o, s)))
        });
        match same {
            Some(k) => out.push(k),
            None => {
                first.entry(h).or_default().push(i);
                out.push(i);
            }
        }
    }
    out
}

fn set_hash(s: &Set) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (s.key_len, s.data_type, s.flags, s.size, s.catchall).hash(&mut h);
    match &s.kind {
        SetKind::Hash => 0u8.hash(&mut h),
        SetKind::Interval => 1u8.hash(&mut h),
        SetKind::ConcatInterval { field_lens } => (2u8, field_lens).hash(&mut h),
    }
    for (k, d) in s.hash_elems() {
        (k, d).hash(&mut h);
    }
    for e in s.interval_elems() {
        e.hash(&mut h);
    }
    h.finish()
}

/// Equal contents, in the same order (concatenated intervals match in insertion order).
fn same_set(a: &Set, b: &Set) -> bool {
    (a.key_len, a.data_type, a.flags, a.size, a.catchall)
        == (b.key_len, b.data_type, b.flags, b.size, b.catchall)
        && a.kind == b.kind
        && a.hash_elems().eq(b.hash_elems())
        && a.interval_elems().eq(b.interval_elems())
}
