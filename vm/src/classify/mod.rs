//! Compiled classification: runs of consecutive rules whose matches are tests on packet facts
//! become one lookup structure that returns the first rule of the run that can match a packet.
//!
//! A [`Classifier`] is data in the [`Program`] (built by [`Program::classify`], checked by
//! `verify`), searched the same way by every engine: the interpreter walks it here, the JIT
//! extracts the key natively and calls the same walk. It only ever *skips* rules: the engine
//! still runs the rule it returns, from its first instruction (or, when the rule's analysis is
//! exact and every key field is present, from its tail), and asks again from the next position
//! when that rule does not end the traversal. So counters, named counters, verdicts and every
//! side effect are those of the linear chain; the structure only has to be *sound*: it never
//! skips a rule that would reach its first side effect (see `analyze`).
//!
//! The key is one 32-bit value per dimension ([`Dim`]: a packet fact through a mask), read by
//! the interpreter's own loads. Bytes a packet lacks (a truncated header, no transport header,
//! no conntrack entry) read as zero and leave their dimension out of the key's *present* set:
//! the lookup is still sound (a rule that loads a missing byte cannot match, one that does not
//! load it does not see it), but a rule it returns runs from its row only when every
//! dimension it needs ([`RuleInfo::need`]) is present, else from its first instruction.

mod analyze;
pub mod cover;
mod tree;

pub use analyze::{
    Cube, Dim, Field, MAX_CUBES, Shape, Span, Tail, analyze, ends_chain, holds, intersect, needs,
    tail, widen_fields,
};
pub use tree::{BIAS, LEAF, NONE, QUAD, Tree, WalkStats, node_parts, quad_words};

use crate::ids::ChainId;
use crate::program::Program;
use crate::verdict::ChainVerdict;

/// Most dimensions a classifier keys on (rules testing others become inexact there).
pub const MAX_DIMS: usize = 8;

/// How classifiers are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifyOptions {
    /// Shortest run of rules that gets a classifier.
    pub min_rules: usize,
    /// Entries a leaf may hold when a cut could still separate them.
    pub binth: usize,
    /// Copies of entries a cut may make, as a factor of its entries, × 10.
    pub spfac10: u32,
    /// Cap on the bytes of one classifier's trees; past it, groups become plain lists.
    pub max_bytes: usize,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            min_rules: 4,
            binth: 4,
            spfac10: 40,
            max_bytes: 256 << 20,
        }
    }
}

/// What the engines need to know of one rule of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// A packet whose key fields are all present and whose key lies in one of the rule's cubes
    /// reaches the rule's tail: the engine may skip the head.
    pub exact: bool,
    /// Index within the rule of the first tail instruction.
    pub tail: u32,
    /// The tail is at most one counter then at most one immediate verdict (see [`Tail`]).
    pub simple: bool,
    pub counter: Option<u32>,
    pub verdict: ChainVerdict,
    /// Running the rule may change what the key reads: look the key up again afterwards.
    pub writes: bool,
    /// The dimensions (bit `d` for `dims[d]`) whose fields hold what the rule loads: with
    /// all of them present in the packet, `exact` holds for it.
    pub need: u32,
}

/// A classifier over rules `start..end` (positions in `chain`'s rule list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classifier {
    pub chain: ChainId,
    pub start: u32,
    pub end: u32,
    /// The key: one value per dimension.
    pub dims: Vec<Dim>,
    /// Per rule of the run (`pos - start`).
    pub rules: Vec<RuleInfo>,
    /// Searched in order (by their smallest rule position).
    pub trees: Vec<Tree>,
}

impl Classifier {
    /// The first rule position at or after `from` (and before `end`) whose cubes hold `key`.
    #[inline]
    pub fn first(&self, key: &[u32; MAX_DIMS], from: u32) -> Option<u32> {
        let nd = self.dims.len().min(MAX_DIMS);
        let mut best = tree::NONE;
        for t in &self.trees {
            if t.min_pos >= best {
                break;
            }
            best = t.first(key, nd, from, best);
        }
        (best < self.end).then_some(best)
    }

    /// [`Classifier::first`], counting what it touches into `s`.
    #[doc(hidden)]
    pub fn first_stats(&self, key: &[u32; MAX_DIMS], from: u32, s: &mut WalkStats) -> Option<u32> {
        let nd = self.dims.len().min(MAX_DIMS);
        let mut best = tree::NONE;
        for t in &self.trees {
            if t.min_pos >= best {
                break;
            }
            best = t.first_stats(key, nd, from, best, s);
        }
        (best < self.end).then_some(best)
    }

    /// Bytes of the lookup structure (trees; rule table included).
    pub fn bytes(&self) -> usize {
        self.trees.iter().map(Tree::bytes).sum::<usize>()
            + self.rules.len() * std::mem::size_of::<RuleInfo>()
    }

    /// Number of rules in the run.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Always false: a run has at least one rule.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Analyse every rule of `chain`: the shape (over widened payload words, see
/// [`widen_fields`]) and the tail reading.
pub fn chain_shapes(prog: &Program, chain: ChainId) -> Vec<(Shape, Tail)> {
    let Some(c) = prog.chains.get(chain.0 as usize) else {
        return Vec::new();
    };
    rule_shapes(prog, chain)
        .into_iter()
        .zip(&c.rules)
        .map(|(s, &r)| {
            let t = tail(prog.rule_insns(r), s.tail as usize);
            (s, t)
        })
        .collect()
}

/// The shapes of [`chain_shapes`] without the tails.
pub fn rule_shapes(prog: &Program, chain: ChainId) -> Vec<Shape> {
    let Some(c) = prog.chains.get(chain.0 as usize) else {
        return Vec::new();
    };
    let mut shapes: Vec<Shape> = c
        .rules
        .iter()
        .map(|&r| analyze(prog, prog.rule_insns(r)))
        .collect();
    widen_fields(&mut shapes, |s| s);
    shapes
}

/// Worth a place in a run: the rule tests something (or can never match).
fn classifiable(s: &Shape) -> bool {
    !s.cubes.iter().any(|c| c.is_empty())
}

/// Build the classifier of rules `start..end` of `chain`.
/// The run's shapes give up their cubes to the tree's entries (so both are not alive while it is built).
fn build_run(
    chain: ChainId,
    start: usize,
    shapes: &mut [(Shape, Tail)],
    opts: &ClassifyOptions,
) -> Classifier {
    // Dimensions by the number of rules that constrain them.
    let mut dims: Vec<(Dim, usize)> = Vec::new();
    for (s, _) in shapes.iter() {
        let mut seen: Vec<Dim> = Vec::new();
        for sp in s.cubes.iter().flatten() {
            if !seen.contains(&sp.dim) {
                seen.push(sp.dim);
            }
        }
        for d in seen {
            match dims.iter_mut().find(|x| x.0 == d) {
                Some(x) => x.1 += 1,
                None => dims.push((d, 1)),
            }
        }
    }
    let mut order: Vec<usize> = (0..dims.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(dims[i].1));
    order.truncate(MAX_DIMS);
    order.sort_unstable();
    let dims: Vec<Dim> = order.iter().map(|&i| dims[i].0).collect();
    let mut entries = Vec::new();
    let mut rules = Vec::with_capacity(shapes.len());
    let run = shapes.len();
    for (k, (s, t)) in shapes.iter_mut().enumerate() {
        let pos = (start + k) as u32;
        let covered = s.cubes.iter().flatten().all(|sp| dims.contains(&sp.dim))
            && s.loads.iter().all(|f| needs(&dims, f).is_some());
        let exact = s.exact && covered;
        let need = s
            .loads
            .iter()
            .fold(0u32, |m, f| m | needs(&dims, f).unwrap_or(0));
        rules.push(RuleInfo {
            exact,
            tail: s.tail,
            simple: t.simple,
            counter: t.counter,
            verdict: t.verdict,
            writes: t.writes,
            need,
        });
        for c in std::mem::take(&mut s.cubes) {
            let mut lo = vec![0u32; dims.len()];
            let mut hi: Vec<u32> = dims.iter().map(Dim::max).collect();
            for sp in &c {
                if let Some(d) = dims.iter().position(|d| *d == sp.dim) {
                    lo[d] = sp.lo;
                    hi[d] = sp.hi;
                }
            }
            entries.push(tree::Entry { pos, lo, hi });
        }
    }
    let bits: Vec<u32> = dims.iter().map(Dim::bits).collect();
    let params = tree::Params {
        binth: opts.binth.max(1),
        spfac10: opts.spfac10.max(10),
    };
    let trees = tree::build(&entries, &bits, params, opts.max_bytes);
    Classifier {
        chain,
        start: start as u32,
        end: (start + run) as u32,
        dims,
        rules,
        trees,
    }
}

/// Most leading rules of a run left to the linear walk by [`ct_only`].
pub const MAX_CT_LEAD: usize = 4;

/// The rule tests conntrack facts only, exactly (`ct state established,related accept`). Leading
/// rules of this kind stay out of their run's classifier: in a stateful ruleset most packets end
/// at them, and testing one costs a few instructions where the run's key reads every dimension.
fn ct_only(s: &Shape) -> bool {
    s.exact && !s.loads.is_empty() && s.loads.iter().all(|f| matches!(f, Field::Ct { .. }))
}

/// The classifiers of one chain: one per run of at least `min_rules` classifiable rules, less
/// its leading [`ct_only`] rules (at most [`MAX_CT_LEAD`]).
pub fn build_chain(prog: &Program, chain: ChainId, opts: &ClassifyOptions) -> Vec<Classifier> {
    let mut shapes = chain_shapes(prog, chain);
    let mut out = Vec::new();
    let mut i = 0;
    while i < shapes.len() {
        if !classifiable(&shapes[i].0) {
            i += 1;
            continue;
        }
        let j = (i..shapes.len())
            .find(|&j| !classifiable(&shapes[j].0))
            .unwrap_or(shapes.len());
        let lead = shapes[i..j]
            .iter()
            .take(MAX_CT_LEAD)
            .take_while(|s| ct_only(&s.0))
            .count();
        i += lead;
        if j - i >= opts.min_rules.max(1) {
            out.push(build_run(chain, i, &mut shapes[i..j], opts));
        }
        i = j;
    }
    out
}

impl Program {
    /// Build the classifiers of every chain (replacing any), see the module docs.
    pub fn classify(&mut self, opts: &ClassifyOptions) {
        let mut all = Vec::new();
        for c in 0..self.chains.len() {
            all.extend(build_chain(self, ChainId(c as u32), opts));
        }
        self.classifiers = all;
    }

    /// Bytes of every classifier's lookup structure.
    pub fn classifier_bytes(&self) -> usize {
        self.classifiers.iter().map(Classifier::bytes).sum()
    }
}
