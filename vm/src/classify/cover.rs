//! Coverage of cubes by unions of cubes, for the shadowing lint: does the union of earlier
//! rules' cubes hold every cube of a later rule? Box subtraction ([`subtract`]: a cube minus a
//! cube is at most two pieces per dimension), the coverage test under a work cap ([`cover`]
//! over given cubes, [`cover_with`] asking for the cube at one point at a time; both give up
//! rather than grow without bound), an [`Index`] that finds the cubes meeting a query cube
//! without looking at all of them, [`Canon`], one set of payload dimensions per
//! chain (so that `ip saddr 10.0.0.0/8`, a 1-byte load, and `ip saddr 10.1.2.3`, a 4-byte load,
//! are compared on one dimension), and [`present_with`]: which fields a packet surely has when
//! the fields a rule loaded are present (a cube only holds packets whose loads succeed).
//!
//! Cubes are read as boxes in the product of their dimensions, each dimension independent:
//! a dimension a cube does not constrain spans its whole domain. Two dimensions over the same
//! bytes (a field and the same field through a mask) are not related, which can only make a
//! cover go unnoticed, never claim one that does not hold.

use std::ops::ControlFlow;

use hashbrown::HashMap;

use super::analyze::{Cube, Dim, Field, Span, intersect};
use crate::insn::{CtKey, MetaKey, PayloadBase};

/// `c`'s interval on `d` (the whole domain when `c` does not constrain `d`).
pub fn span_on(c: &[Span], d: Dim) -> (u32, u32) {
    c.iter()
        .find(|s| s.dim == d)
        .map_or((0, d.max()), |s| (s.lo, s.hi))
}

/// The two cubes share a point.
pub fn meets(a: &[Span], b: &[Span]) -> bool {
    b.iter().all(|s| {
        let (lo, hi) = span_on(a, s.dim);
        lo <= s.hi && s.lo <= hi
    })
}

/// `inner` lies inside `outer`.
pub fn contains(outer: &[Span], inner: &[Span]) -> bool {
    outer.iter().all(|s| {
        let (lo, hi) = span_on(inner, s.dim);
        s.lo <= lo && hi <= s.hi
    })
}

/// Set `c`'s interval on `d`, dropping the span when it is the whole domain.
fn set_span(c: &mut Cube, d: Dim, lo: u32, hi: u32) {
    let full = lo == 0 && hi == d.max();
    match c.iter().position(|s| s.dim == d) {
        Some(i) if full => {
            c.remove(i);
        }
        Some(i) => {
            c[i].lo = lo;
            c[i].hi = hi;
        }
        None if full => {}
        None => c.push(Span { dim: d, lo, hi }),
    }
}

/// `a` minus `b`, as disjoint pieces appended to `out`: `a` itself when they do not meet,
/// otherwise at most two pieces per dimension `b` constrains (below and above `b` on it).
pub fn subtract(a: &[Span], b: &[Span], out: &mut Vec<Cube>) {
    if !meets(a, b) {
        out.push(a.to_vec());
        return;
    }
    let mut rest = a.to_vec();
    for s in b {
        let (lo, hi) = span_on(&rest, s.dim);
        if lo < s.lo {
            let mut p = rest.clone();
            set_span(&mut p, s.dim, lo, s.lo - 1);
            out.push(p);
        }
        if hi > s.hi {
            let mut p = rest.clone();
            set_span(&mut p, s.dim, s.hi + 1, hi);
            out.push(p);
        }
        set_span(&mut rest, s.dim, lo.max(s.lo), hi.min(s.hi));
    }
}

/// Work left for the coverage tests: every candidate looked at and every piece made costs a
/// step. Once spent, the tests answer [`Cover::GaveUp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub steps: u64,
}

impl Budget {
    /// Take `n` steps; false (taking nothing) when fewer are left.
    pub fn take(&mut self, n: u64) -> bool {
        match self.steps.checked_sub(n) {
            Some(left) => {
                self.steps = left;
                true
            }
            None => {
                self.steps = 0;
                false
            }
        }
    }
}

/// What [`cover`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cover {
    /// Covered; the indexes (into `by`, ascending) of the cubes that took part.
    Covered(Vec<usize>),
    /// Some point of the target is in none of the cubes.
    Open,
    /// The budget or the piece cap ran out first: no answer.
    GaveUp,
}

/// Whether the union of `by` holds every cube of `target`. A target cube inside one cube of
/// `by` is credited to the first such cube alone; otherwise the cubes of `by` are subtracted
/// in order until nothing is left, each one that cut something taking part; then the cubes
/// the others do without are dropped, latest first (as far as the budget goes). At most
/// `max_pieces` pieces are kept at a time.
pub fn cover(target: &[Cube], by: &[&[Span]], budget: &mut Budget, max_pieces: usize) -> Cover {
    let mut used = match cover_all(target, by, budget, max_pieces) {
        Cover::Covered(used) => used,
        other => return other,
    };
    let mut k = used.len();
    while k > 0 && used.len() > 1 {
        k -= 1;
        let rest: Vec<&[Span]> = used
            .iter()
            .enumerate()
            .filter(|&(x, _)| x != k)
            .filter_map(|(_, &i)| by.get(i).copied())
            .collect();
        match cover_all(target, &rest, budget, max_pieces) {
            Cover::Covered(_) => {
                used.remove(k);
            }
            Cover::Open => {}
            Cover::GaveUp => break,
        }
    }
    Cover::Covered(used)
}

/// [`cover`] without dropping the cubes the others do without.
fn cover_all(target: &[Cube], by: &[&[Span]], budget: &mut Budget, max_pieces: usize) -> Cover {
    let mut used: Vec<usize> = Vec::new();
    for t in target {
        if !budget.take(by.len() as u64) {
            return Cover::GaveUp;
        }
        if let Some(i) = by.iter().position(|b| contains(b, t)) {
            used.push(i);
            continue;
        }
        let mut pieces: Vec<Cube> = vec![t.clone()];
        let mut next: Vec<Cube> = Vec::new();
        for (i, b) in by.iter().enumerate() {
            if !budget.take(pieces.len() as u64) {
                return Cover::GaveUp;
            }
            if !pieces.iter().any(|p| meets(p, b)) {
                continue;
            }
            used.push(i);
            next.clear();
            for p in &pieces {
                subtract(p, b, &mut next);
            }
            if next.len() > max_pieces || !budget.take(1 + next.len() as u64) {
                return Cover::GaveUp;
            }
            std::mem::swap(&mut pieces, &mut next);
            if pieces.is_empty() {
                break;
            }
        }
        if !pieces.is_empty() {
            return Cover::Open;
        }
    }
    used.sort_unstable();
    used.dedup();
    Cover::Covered(used)
}

/// What a search for a cube holding a piece's low corner found.
pub enum Found<'a> {
    /// A cube (with its id) holding the corner.
    Cube(u32, &'a [Span]),
    /// No cube holds it.
    Nothing,
    /// The budget ran out.
    OutOfBudget,
}

/// Cubes already taken that a piece's corner is tried against before asking again.
const MAX_RETAKE: usize = 16;
/// Most cubes taken that are trimmed to those the others do not do without.
const MAX_TRIM: usize = 64;

/// Whether cubes that `find` knows cover `target`, asking only for points: each piece left
/// (at first, each target cube) asks `find` for a cube holding its low corner (unless one of
/// the first cubes taken holds it), and loses what that cube holds; a corner no cube holds
/// answers [`Cover::Open`]. The ids of the cubes taken are returned ascending, the ones the
/// others do without dropped (see [`cover`]) when there are not too many. This never looks at
/// cubes far from the target, which a union over every cube meeting it would.
pub fn cover_with<'a>(
    target: &[Cube],
    budget: &mut Budget,
    max_pieces: usize,
    mut find: impl FnMut(&[Span], &mut Budget) -> Found<'a>,
) -> Cover {
    let mut taken: Vec<(u32, &'a [Span])> = Vec::new();
    let mut stack: Vec<Cube> = target.to_vec();
    let mut next: Vec<Cube> = Vec::new();
    while let Some(p) = stack.pop() {
        if !budget.take(1 + taken.len().min(MAX_RETAKE) as u64) {
            return Cover::GaveUp;
        }
        let lo: Cube = p.iter().map(|s| Span { hi: s.lo, ..*s }).collect();
        let again = taken
            .iter()
            .take(MAX_RETAKE)
            .find(|(_, c)| meets(c, &lo))
            .map(|&(_, c)| c);
        let c = match again {
            Some(c) => c,
            None => match find(&p, budget) {
                Found::Cube(id, c) => {
                    if !taken.iter().any(|t| t.0 == id) {
                        taken.push((id, c));
                    }
                    c
                }
                Found::Nothing => return Cover::Open,
                Found::OutOfBudget => return Cover::GaveUp,
            },
        };
        next.clear();
        subtract(&p, c, &mut next);
        if stack.len() + next.len() > max_pieces || !budget.take(next.len() as u64) {
            return Cover::GaveUp;
        }
        stack.append(&mut next);
    }
    taken.sort_unstable_by_key(|t| t.0);
    if taken.len() > MAX_TRIM {
        return Cover::Covered(taken.iter().map(|t| t.0 as usize).collect());
    }
    let by: Vec<&[Span]> = taken.iter().map(|t| t.1).collect();
    match cover(target, &by, budget, max_pieces) {
        Cover::Covered(used) => Cover::Covered(
            used.iter()
                .filter_map(|&i| taken.get(i).map(|t| t.0 as usize))
                .collect(),
        ),
        // the cubes taken cover the target: only the budget can stop the trimming
        _ => Cover::Covered(taken.iter().map(|t| t.0 as usize).collect()),
    }
}

/// How a walk over an [`Index`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Every cube meeting the query was visited.
    Done,
    /// The visitor stopped it.
    Stopped,
    /// The budget ran out.
    OutOfBudget,
}

/// The cube is narrow in `d`: it fixes at least 4 bits (at most 1/16 of the domain).
fn narrow(lo: u32, hi: u32, d: Dim) -> bool {
    u64::from(hi.saturating_sub(lo)) < (u64::from(d.max()) + 1) >> 4
}

/// The smallest aligned block of a `bits`-bit domain that holds `[lo, hi]`: (prefix length,
/// prefix).
fn block(lo: u32, hi: u32, bits: u32) -> (u8, u32) {
    let free = 32 - (lo ^ hi).leading_zeros();
    let plen = bits.saturating_sub(free);
    (plen as u8, lo.checked_shr(bits - plen).unwrap_or(0))
}

/// The cubes of one dimension's level: those narrow in it (and in no earlier level's).
struct Level {
    dim: Dim,
    /// (low end, entry), by low end.
    by_lo: Vec<(u32, u32)>,
    /// (prefix length, prefix, entry) of the smallest aligned block holding each entry's interval,
    /// sorted (a flat list: a map of vectors cost ~100 B an entry).
    blocks: Vec<(u8, u32, u32)>,
    /// Bit `p` set: some block has prefix length `p`.
    plens: u64,
}

/// Most levels an index has (the other cubes are scanned in a list).
const MAX_LEVELS: usize = 8;

/// Cubes (borrowed; each one's id is its position), indexed for "which cubes meet this one". Each cube sits in the
/// level of the first dimension (by how many distinct narrow intervals the cubes have in it)
/// it is narrow in, or in a list when it is narrow in none; a level finds the cubes whose
/// interval meets the query's by a binary search (low ends inside the query's interval) and
/// one lookup per prefix length (intervals holding the query's low end).
pub struct Index<'a> {
    cubes: Vec<&'a [Span]>,
    levels: Vec<Level>,
    rest: Vec<u32>,
    dims: Vec<Dim>,
}

impl<'a> Index<'a> {
    pub fn new(cubes: Vec<&'a [Span]>) -> Index<'a> {
        // Distinct narrow intervals per dimension (dimensions in first-seen order).
        let mut order: Vec<Dim> = Vec::new();
        let mut distinct: HashMap<Dim, hashbrown::HashSet<(u32, u32)>> = HashMap::new();
        for s in cubes.iter().copied().flatten() {
            if narrow(s.lo, s.hi, s.dim) {
                let set = distinct.entry(s.dim).or_insert_with(|| {
                    order.push(s.dim);
                    hashbrown::HashSet::new()
                });
                set.insert((s.lo, s.hi));
            }
        }
        order.sort_by_key(|d| std::cmp::Reverse(distinct.get(d).map_or(0, |s| s.len())));
        order.truncate(MAX_LEVELS);
        drop(distinct);
        let level_of = |c: &[Span]| {
            order.iter().position(|&d| {
                let (lo, hi) = span_on(c, d);
                narrow(lo, hi, d)
            })
        };
        // The levels' vectors at their final sizes (one pass to count them).
        let mut sizes = vec![0usize; order.len()];
        for &c in &cubes {
            if let Some(n) = level_of(c).and_then(|i| sizes.get_mut(i)) {
                *n += 1;
            }
        }
        let mut levels: Vec<Level> = order
            .iter()
            .zip(sizes)
            .map(|(&dim, n)| Level {
                dim,
                by_lo: Vec::with_capacity(n),
                blocks: Vec::with_capacity(n),
                plens: 0,
            })
            .collect();
        let mut rest = Vec::new();
        for (e, &c) in cubes.iter().enumerate() {
            let e = e as u32;
            let Some(l) = level_of(c).and_then(|i| levels.get_mut(i)) else {
                rest.push(e);
                continue;
            };
            let (lo, hi) = span_on(c, l.dim);
            let (plen, prefix) = block(lo, hi, l.dim.bits());
            l.by_lo.push((lo, e));
            l.blocks.push((plen, prefix, e));
            l.plens |= 1 << plen;
        }
        for l in &mut levels {
            l.by_lo.sort_unstable();
            l.blocks.sort_unstable();
        }
        let dims = levels.iter().map(|l| l.dim).collect();
        Index {
            cubes,
            levels,
            rest,
            dims,
        }
    }

    /// The dimensions the index sorts cubes by (at most 8): a query that fixes these finds
    /// few cubes.
    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    /// Visit (id, cube) of every cube meeting `q` (in no particular order; a cube once),
    /// one budget step per cube looked at.
    pub fn walk(
        &self,
        q: &[Span],
        budget: &mut Budget,
        mut visit: impl FnMut(u32, &'a [Span]) -> ControlFlow<()>,
    ) -> Walk {
        let mut look = |e: u32| -> ControlFlow<Walk> {
            if !budget.take(1) {
                return ControlFlow::Break(Walk::OutOfBudget);
            }
            let Some(&c) = self.cubes.get(e as usize) else {
                return ControlFlow::Continue(());
            };
            if meets(c, q) && visit(e, c).is_break() {
                return ControlFlow::Break(Walk::Stopped);
            }
            ControlFlow::Continue(())
        };
        for l in &self.levels {
            let (a, b) = span_on(q, l.dim);
            let from = l.by_lo.partition_point(|&(lo, _)| lo < a);
            for &(lo, e) in &l.by_lo[from..] {
                if lo > b {
                    break;
                }
                if let ControlFlow::Break(w) = look(e) {
                    return w;
                }
            }
            if a == 0 {
                continue;
            }
            // Intervals starting below `a` that reach it: in a block holding `a`.
            let bits = l.dim.bits();
            let mut plens = l.plens;
            while plens != 0 {
                let plen = plens.trailing_zeros();
                plens &= plens - 1;
                let key = (plen as u8, a.checked_shr(bits - plen).unwrap_or(0));
                let from = l.blocks.partition_point(|&(p, x, _)| (p, x) < key);
                let block = l.blocks.get(from..).unwrap_or(&[]);
                for &(_, _, e) in block.iter().take_while(|&&(p, x, _)| (p, x) == key) {
                    let below = self
                        .cubes
                        .get(e as usize)
                        .is_some_and(|&c| span_on(c, l.dim).0 < a);
                    if below && let ControlFlow::Break(w) = look(e) {
                        return w;
                    }
                }
            }
        }
        for &e in &self.rest {
            if let ControlFlow::Break(w) = look(e) {
                return w;
            }
        }
        Walk::Done
    }
}

/// The point of `c` at its low (`high == false`) or high corner, over `dims` and `c`'s own
/// dimensions: one single-value span per dimension (other dimensions stay whole: the box of
/// those points).
pub fn corner(c: &[Span], dims: &[Dim], high: bool) -> Cube {
    let mut p: Cube = Vec::with_capacity(dims.len() + c.len());
    for &d in dims.iter().chain(c.iter().map(|s| &s.dim)) {
        if p.iter().any(|s| s.dim == d) {
            continue;
        }
        let (lo, hi) = span_on(c, d);
        let v = if high { hi } else { lo };
        p.push(Span {
            dim: d,
            lo: v,
            hi: v,
        });
    }
    p
}

/// Most cubes one cube becomes on the canonical dimensions.
const MAX_CANON: usize = 256;

/// One set of payload dimensions for a set of cubes. Payload fields of different lengths may
/// share bytes (`ip saddr 10.0.0.0/8` loads one byte at network header + 12, `ip saddr
/// 10.1.2.3` four; `udp sport 53 udp dport 53` loads both ports as one word): every byte where
/// some field starts begins a canonical field, which runs to the next such start (or the end
/// of the longest field over it). A field's interval then becomes the same packets over the
/// canonical fields: its part on each is a prefix of that field (the interval is widened
/// exactly), and an interval over several parts splits into at most `2 × parts - 1` boxes.
/// Spans through other masks than whole bytes stay as they are.
pub struct Canon {
    /// (base, start, length) of the canonical fields, sorted.
    fields: Vec<(PayloadBase, u32, u32)>,
}

fn base_key(b: PayloadBase) -> u8 {
    match b {
        PayloadBase::Link => 0,
        PayloadBase::Network => 1,
        PayloadBase::Transport => 2,
    }
}

/// The payload bytes a span tests, whole: (base, offset, length, low, high). A field through
/// a mask of whole adjacent bytes (what `classify::widen_fields` makes of a narrower field
/// inside a wider one) is those bytes: `field & mask` in `[lo, hi]` is their value in
/// `[ceil(lo / 2^r), hi / 2^r]`, `r` the bits below the mask. An empty interval comes back
/// with `low > high`.
fn raw_payload(s: &Span) -> Option<(PayloadBase, u32, u32, u64, u64)> {
    let Field::Payload { base, off, len } = s.dim.field else {
        return None;
    };
    let m = s.dim.mask & s.dim.field.max();
    let r = m.trailing_zeros();
    let k = m.checked_shr(r).unwrap_or(0).trailing_ones();
    // whole bytes, one run of them
    if m == 0
        || !r.is_multiple_of(8)
        || !k.is_multiple_of(8)
        || m.checked_shr(r + k).unwrap_or(0) != 0
    {
        return None;
    }
    let start = off + (8 * u32::from(len)).checked_sub(r + k)? / 8;
    let lo = u64::from(s.lo).div_ceil(1u64 << r);
    let hi = u64::from(s.hi) >> r;
    Some((base, start, k / 8, lo, hi))
}

impl Canon {
    pub fn new<'a>(cubes: impl IntoIterator<Item = &'a Cube>) -> Canon {
        let mut seen: hashbrown::HashSet<(u8, u32, u32)> = hashbrown::HashSet::new();
        let mut raw: Vec<(u8, u32, u32, PayloadBase)> = Vec::new();
        for s in cubes.into_iter().flatten() {
            if let Some((base, off, len, ..)) = raw_payload(s)
                && seen.insert((base_key(base), off, len))
            {
                raw.push((base_key(base), off, len, base));
            }
        }
        raw.sort_unstable_by_key(|r| (r.0, r.1, r.2));
        // Per start: it runs to the next start, at most to the end of the longest field
        // starting at or before it (fields sorted by start: a running maximum).
        let mut fields = Vec::new();
        let mut reach: Option<(u8, u32)> = None;
        for (i, &(bk, start, len, base)) in raw.iter().enumerate() {
            let end = start.saturating_add(len);
            reach = match reach {
                Some((b, e)) if b == bk => Some((b, e.max(end))),
                _ => Some((bk, end)),
            };
            if raw.get(i + 1).is_some_and(|n| n.0 == bk && n.1 == start) {
                continue;
            }
            let far = reach.map_or(end, |r| r.1);
            let next = raw.get(i + 1).filter(|n| n.0 == bk).map(|n| n.1);
            let to = next.map_or(far, |n| n.min(far));
            fields.push((base, start, to - start));
        }
        Canon { fields }
    }

    /// The canonical fields inside `[off, off + len)` of `base`, each with the part of the
    /// field it holds: (start, canonical length, part length).
    fn parts(&self, base: PayloadBase, off: u32, len: u32) -> Vec<(u32, u32, u32)> {
        let end = off.saturating_add(len);
        let bk = base_key(base);
        let from = self
            .fields
            .partition_point(|&(b, s, _)| (base_key(b), s) < (bk, off));
        let starts: Vec<(u32, u32)> = self.fields[from..]
            .iter()
            .take_while(|&&(b, s, _)| base_key(b) == bk && s < end)
            .map(|&(_, s, l)| (s, l))
            .collect();
        if starts.first().is_none_or(|&(s, _)| s != off) {
            // Not built from this field: keep it whole.
            return vec![(off, len, len)];
        }
        let mut out = Vec::with_capacity(starts.len());
        for i in 0..starts.len() {
            let (s, l) = starts[i];
            let e = starts.get(i + 1).map_or(end, |n| n.0);
            out.push((s, l.max(e - s), e - s));
        }
        out
    }

    /// `c` over the canonical dimensions (the same points), or `None` past a size cap.
    pub fn apply(&self, c: &[Span]) -> Option<Vec<Cube>> {
        let mut out: Vec<Cube> = vec![Cube::new()];
        for s in c {
            let alts: Vec<Cube> = match raw_payload(s) {
                None => vec![vec![*s]],
                Some((.., lo, hi)) if lo > hi => Vec::new(),
                Some((base, off, len, lo, hi)) => {
                    let parts = self.parts(base, off, len);
                    let bits: Vec<u32> = parts.iter().map(|p| 8 * p.2).collect();
                    let mut boxes = Vec::new();
                    split(&bits, lo, hi, &mut Vec::new(), &mut boxes);
                    boxes
                        .into_iter()
                        .map(|b| {
                            let mut cube = Cube::new();
                            for (&(start, clen, plen), (lo, hi)) in parts.iter().zip(b) {
                                let f = Field::Payload {
                                    base,
                                    off: start,
                                    len: clen as u8,
                                };
                                let d = Dim::raw(f);
                                let sh = 8 * (clen - plen);
                                let lo = (lo << sh) as u32;
                                let hi = ((hi << sh) | ((1u64 << sh) - 1)) as u32;
                                set_span(&mut cube, d, lo, hi);
                            }
                            cube
                        })
                        .collect()
                }
            };
            let mut next = Vec::with_capacity(out.len() * alts.len());
            for a in &out {
                for b in &alts {
                    if let Some(x) = intersect(a, b) {
                        next.push(x);
                    }
                }
            }
            if next.len() > MAX_CANON {
                return None;
            }
            out = next;
        }
        for c in &mut out {
            c.retain(|s| !(s.lo == 0 && s.hi == s.dim.max()));
        }
        Some(out)
    }
}

/// `[lo, hi]` over a number made of parts of `bits` bits each (most significant first), as
/// boxes of per-part intervals: at most `2 × parts - 1`.
fn split(
    bits: &[u32],
    lo: u64,
    hi: u64,
    pre: &mut Vec<(u64, u64)>,
    out: &mut Vec<Vec<(u64, u64)>>,
) {
    let Some((_, rest)) = bits.split_first() else {
        out.push(pre.clone());
        return;
    };
    if rest.is_empty() {
        pre.push((lo, hi));
        out.push(pre.clone());
        pre.pop();
        return;
    }
    let rb: u32 = rest.iter().sum();
    let rmax = (1u64 << rb) - 1;
    let full = |pre: &mut Vec<(u64, u64)>, out: &mut Vec<Vec<(u64, u64)>>| {
        let mut b = pre.clone();
        b.extend(rest.iter().map(|&w| (0, (1u64 << w) - 1)));
        out.push(b);
    };
    let (tl, rl, th, rh) = (lo >> rb, lo & rmax, hi >> rb, hi & rmax);
    if tl == th {
        pre.push((tl, tl));
        split(rest, rl, rh, pre, out);
        pre.pop();
        return;
    }
    let mut mid_lo = tl;
    if rl != 0 {
        pre.push((tl, tl));
        split(rest, rl, rmax, pre, out);
        pre.pop();
        mid_lo = tl + 1;
    }
    let mut mid_hi = th;
    if rh != rmax {
        mid_hi = th - 1;
    }
    if mid_lo <= mid_hi {
        pre.push((mid_lo, mid_hi));
        full(pre, out);
        pre.pop();
    }
    if rh != rmax {
        pre.push((th, th));
        split(rest, 0, rh, pre, out);
        pre.pop();
    }
}

/// `f` is present (its load does not break) on every packet on which every field of `loads`
/// is: the interpreter's `payload_base`, `meta_get` and `ct_get`, read backwards.
///
/// - payload: a load of the same header that reaches as far (the header's offset is the
///   packet's; only the packet's length decides). The first 20 bytes of the network header
///   are always there: `ip_rcv` and `ipv6_rcv` (and the runtime's `ip_rcv_ok`) drop shorter
///   packets before any hook.
/// - meta: the packet's own facts always; `l4proto` with a transport header (any transport
///   load has one); device types, socket owner with the same key (or the other owner key).
/// - ct: `state` always; the rest with a conntrack entry (any ct load but `state` has one);
///   the helper, and IPv4 / IPv6 tuple addresses, with the same kind of key.
pub fn present_with(loads: &[Field], f: Field) -> bool {
    if loads.contains(&f) {
        return true;
    }
    match f {
        Field::Payload { base, off, len } => {
            let end = u64::from(off) + u64::from(len);
            (base == PayloadBase::Network && end <= 20)
                || loads.iter().any(|l| match *l {
                    Field::Payload { base: b, off, len } => {
                        b == base && u64::from(off) + u64::from(len) >= end
                    }
                    _ => false,
                })
        }
        Field::Meta { key, .. } => {
            let loads_meta = |ok: &dyn Fn(MetaKey) -> bool| {
                loads
                    .iter()
                    .any(|l| matches!(*l, Field::Meta { key, .. } if ok(key)))
            };
            match key {
                MetaKey::Len
                | MetaKey::Protocol
                | MetaKey::Nfproto
                | MetaKey::Mark
                | MetaKey::Iif
                | MetaKey::Oif
                | MetaKey::Iifname
                | MetaKey::Oifname
                | MetaKey::Pkttype => true,
                MetaKey::L4proto => {
                    loads_meta(&|k| k == MetaKey::L4proto)
                        || loads.iter().any(|l| {
                            matches!(
                                l,
                                Field::Payload {
                                    base: PayloadBase::Transport,
                                    ..
                                }
                            )
                        })
                }
                MetaKey::Iiftype | MetaKey::Oiftype => loads_meta(&|k| k == key),
                MetaKey::Prandom => false,
                MetaKey::Skuid | MetaKey::Skgid => {
                    loads_meta(&|k| matches!(k, MetaKey::Skuid | MetaKey::Skgid))
                }
            }
        }
        Field::Ct { key, .. } => {
            let loads_ct = |ok: &dyn Fn(CtKey) -> bool| {
                loads
                    .iter()
                    .any(|l| matches!(*l, Field::Ct { key, .. } if ok(key)))
            };
            match key {
                CtKey::State => true,
                CtKey::Helper => loads_ct(&|k| k == CtKey::Helper),
                CtKey::SrcIp | CtKey::DstIp => {
                    loads_ct(&|k| matches!(k, CtKey::SrcIp | CtKey::DstIp))
                }
                CtKey::SrcIp6 | CtKey::DstIp6 => {
                    loads_ct(&|k| matches!(k, CtKey::SrcIp6 | CtKey::DstIp6))
                }
                CtKey::Direction
                | CtKey::Status
                | CtKey::Mark
                | CtKey::Expiration
                | CtKey::L3protocol
                | CtKey::Src
                | CtKey::Dst
                | CtKey::Protocol
                | CtKey::ProtoSrc
                | CtKey::ProtoDst
                | CtKey::Zone
                | CtKey::Id => loads_ct(&|k| k != CtKey::State),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MAX_DIMS;
    use crate::pkt::PktState;

    /// A one-byte payload dimension at network header + `off` (256 values: brute force).
    fn d(off: u32) -> Dim {
        Dim::raw(Field::Payload {
            base: PayloadBase::Network,
            off,
            len: 1,
        })
    }

    fn sp(dim: Dim, lo: u32, hi: u32) -> Span {
        Span { dim, lo, hi }
    }

    /// Deterministic xorshift.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// A random cube over `dims`, each dimension constrained or not.
        fn cube(&mut self, dims: &[Dim], max: u32) -> Cube {
            let mut c = Cube::new();
            for &dim in dims {
                if self.below(3) == 0 {
                    continue;
                }
                let a = self.below(u64::from(max) + 1) as u32;
                let b = self.below(u64::from(max) + 1) as u32;
                c.push(sp(dim, a.min(b), a.max(b)));
            }
            c
        }
    }

    fn holds(c: &[Span], x: u32, y: u32) -> bool {
        c.iter().all(|s| {
            let v = if s.dim == d(0) { x } else { y };
            s.lo <= v && v <= s.hi
        })
    }

    #[test]
    fn subtraction_leaves_disjoint_pieces_outside_b() {
        let mut r = Rng(7);
        let dims = [d(0), d(1)];
        for _ in 0..200 {
            let (a, b) = (r.cube(&dims, 255), r.cube(&dims, 255));
            let mut out = Vec::new();
            subtract(&a, &b, &mut out);
            assert!(out.len() <= 2 * b.len().max(1), "{a:?} - {b:?}: {out:?}");
            for x in (0..256).step_by(5) {
                for y in (0..256).step_by(3) {
                    let n = out.iter().filter(|p| holds(p, x, y)).count();
                    let want = holds(&a, x, y) && !holds(&b, x, y);
                    assert_eq!(n, usize::from(want), "({x},{y}) {a:?} - {b:?}: {out:?}");
                }
            }
        }
    }

    #[test]
    fn a_union_covers_what_no_single_cube_does() {
        let (s, p) = (d(0), d(1));
        let mut b = Budget { steps: 1000 };
        // 10.0.0.0/9 and 10.128.0.0/9 over the first two bytes
        let t = vec![vec![sp(s, 10, 10), sp(p, 1, 1)]];
        let lo = vec![sp(s, 10, 10), sp(p, 0, 127)];
        let hi = vec![sp(s, 10, 10), sp(p, 128, 255)];
        assert_eq!(cover(&t, &[&lo, &hi], &mut b, 64), Cover::Covered(vec![0]));
        let wide = vec![vec![sp(s, 10, 10)]];
        assert_eq!(
            cover(&wide, &[&lo, &hi], &mut b, 64),
            Cover::Covered(vec![0, 1])
        );
        let other = vec![sp(s, 11, 11)];
        assert_eq!(cover(&wide, &[&other, &lo], &mut b, 64), Cover::Open);
        // anything is inside the cube without spans
        assert_eq!(
            cover(&wide, &[&other, &[][..]], &mut b, 64),
            Cover::Covered(vec![1])
        );
    }

    #[test]
    fn cover_agrees_with_brute_force() {
        let mut r = Rng(99);
        let dims = [d(0), d(1)];
        for _ in 0..300 {
            let n = 1 + r.below(6) as usize;
            let by: Vec<Cube> = (0..n).map(|_| r.cube(&dims, 15)).collect();
            let t = vec![r.cube(&dims, 15)];
            let refs: Vec<&[Span]> = by.iter().map(|c| c.as_slice()).collect();
            let got = cover(&t, &refs, &mut Budget { steps: u64::MAX }, 1 << 20);
            let mut want = true;
            for x in 0..256 {
                for y in 0..256 {
                    if holds(&t[0], x, y) && !by.iter().any(|c| holds(c, x, y)) {
                        want = false;
                    }
                }
            }
            match got {
                Cover::Covered(used) => {
                    assert!(want, "{t:?} by {by:?}");
                    // the cubes credited cover it on their own
                    let sub: Vec<&[Span]> = used.iter().map(|&i| refs[i]).collect();
                    let again = cover(&t, &sub, &mut Budget { steps: u64::MAX }, 1 << 20);
                    assert!(matches!(again, Cover::Covered(_)));
                    // and none of them is needless
                    for k in 0..sub.len() {
                        let mut less = sub.clone();
                        less.remove(k);
                        let b = &mut Budget { steps: u64::MAX };
                        assert_eq!(
                            cover(&t, &less, b, 1 << 20),
                            Cover::Open,
                            "{t:?} by {sub:?}"
                        );
                    }
                }
                Cover::Open => assert!(!want, "{t:?} by {by:?}"),
                Cover::GaveUp => panic!("no cap here"),
            }
            // asking for corners only finds the same
            let got = cover_with(&t, &mut Budget { steps: u64::MAX }, 1 << 20, |p, _| {
                let lo: Cube = p.iter().map(|s| Span { hi: s.lo, ..*s }).collect();
                match by.iter().position(|c| meets(c, &lo)) {
                    Some(i) => Found::Cube(i as u32, &by[i]),
                    None => Found::Nothing,
                }
            });
            match got {
                Cover::Covered(used) => {
                    assert!(want, "{t:?} by {by:?}");
                    let sub: Vec<&[Span]> = used.iter().map(|&i| refs[i]).collect();
                    let again = cover(&t, &sub, &mut Budget { steps: u64::MAX }, 1 << 20);
                    assert!(matches!(again, Cover::Covered(_)));
                }
                Cover::Open => assert!(!want, "{t:?} by {by:?}"),
                Cover::GaveUp => panic!("no cap here"),
            }
        }
    }

    #[test]
    fn the_caps_give_up() {
        let dims = [d(0), d(1)];
        // a checkerboard of small cubes: many pieces
        let by: Vec<Cube> = (0..64)
            .map(|i| vec![sp(dims[0], 4 * i, 4 * i + 1), sp(dims[1], 4 * i, 4 * i + 1)])
            .collect();
        let refs: Vec<&[Span]> = by.iter().map(|c| c.as_slice()).collect();
        let t = vec![Cube::new()];
        assert_eq!(
            cover(&t, &refs, &mut Budget { steps: u64::MAX }, 16),
            Cover::GaveUp
        );
        let mut b = Budget { steps: 50 };
        assert_eq!(cover(&t, &refs, &mut b, 1 << 20), Cover::GaveUp);
        assert_eq!(b.steps, 0);
        assert_eq!(
            cover(&t, &refs, &mut Budget { steps: u64::MAX }, 1 << 20),
            Cover::Open
        );
        // corners of a piece always find the big cube: only the caps stop the search
        let big = vec![sp(dims[0], 0, 254)];
        let find = |_: &[Span], _: &mut Budget| Found::Cube(0, &big);
        assert_eq!(
            cover_with(&t, &mut Budget { steps: 5 }, 1 << 20, find),
            Cover::GaveUp
        );
    }

    #[test]
    fn the_index_finds_exactly_the_cubes_that_meet() {
        let mut r = Rng(3);
        let dims = [d(0), d(1), d(2)];
        let cubes: Vec<(u32, Cube)> = (0..300).map(|i| (i, r.cube(&dims, 255))).collect();
        let idx = Index::new(cubes.iter().map(|(_, c)| c.as_slice()).collect());
        for _ in 0..300 {
            let q = r.cube(&dims, 255);
            let mut got = Vec::new();
            let w = idx.walk(&q, &mut Budget { steps: u64::MAX }, |id, _| {
                got.push(id);
                ControlFlow::Continue(())
            });
            assert_eq!(w, Walk::Done);
            got.sort_unstable();
            let want: Vec<u32> = cubes
                .iter()
                .filter(|(_, c)| meets(c, &q))
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(got, want, "{q:?}");
        }
        let mut b = Budget { steps: 3 };
        let w = idx.walk(&[], &mut b, |_, _| ControlFlow::Continue(()));
        assert_eq!(w, Walk::OutOfBudget);
    }

    /// The natural value of a payload field in `bytes` (one header).
    fn value(f: Field, bytes: &[u8]) -> u32 {
        let Field::Payload { off, len, .. } = f else {
            unreachable!()
        };
        bytes[off as usize..(off + u32::from(len)) as usize]
            .iter()
            .fold(0, |a, &b| (a << 8) | u32::from(b))
    }

    fn inside(c: &[Span], bytes: &[u8]) -> bool {
        c.iter().all(|s| {
            let v = value(s.dim.field, bytes) & s.dim.mask;
            s.lo <= v && v <= s.hi
        })
    }

    #[test]
    fn canonical_dimensions_keep_the_same_packets() {
        let f = |off, len| {
            Dim::raw(Field::Payload {
                base: PayloadBase::Transport,
                off,
                len,
            })
        };
        let window = |mask| Dim {
            field: Field::Payload {
                base: PayloadBase::Transport,
                off: 0,
                len: 4,
            },
            mask,
        };
        // icmp type (0/1), sport (0/2), dport (2/2), both ports merged (0/4), a masked byte
        let flags = Dim {
            field: Field::Payload {
                base: PayloadBase::Transport,
                off: 1,
                len: 1,
            },
            mask: 0x12,
        };
        let cubes: Vec<Cube> = vec![
            vec![sp(f(0, 1), 8, 8)],
            vec![sp(f(0, 2), 1024, 65535)],
            vec![sp(f(2, 2), 80, 80)],
            vec![sp(f(0, 4), 0x0035_0035, 0x0035_0035)],
            vec![sp(f(0, 4), 0x0102_0304, 0x0a0b_0c0d), sp(flags, 2, 2)],
            vec![sp(f(0, 2), 300, 4000), sp(f(2, 2), 7, 9000)],
            // what `widen_fields` makes of narrower words: whole bytes through a mask
            vec![sp(window(0xffff), 80, 80)],
            vec![sp(window(0x00ff_0000), 0x1_0000, 0x2_ffff)],
            vec![sp(window(0xff00), 1, 255)],
        ];
        let canon = Canon::new(&cubes);
        let mut r = Rng(5);
        for c in &cubes {
            let cc = canon.apply(c).expect("small");
            for s in cc.iter().flatten() {
                if s.dim != flags {
                    assert!(
                        matches!(s.dim.field, Field::Payload { off: 0..=2, len, .. } if len <= 2),
                        "{s:?}"
                    );
                }
            }
            for i in 0..20000 {
                let mut b = [0u8; 4];
                b.iter_mut().for_each(|x| *x = r.next() as u8);
                if i % 2 == 0 {
                    // near the cube's corners
                    let s = c[0];
                    let v = if i % 4 == 0 { s.lo } else { s.hi };
                    let Field::Payload { off, len, .. } = s.dim.field else {
                        unreachable!()
                    };
                    let w = v.to_be_bytes();
                    let l = usize::from(len);
                    b[off as usize..off as usize + l].copy_from_slice(&w[4 - l..]);
                }
                let n = cc.iter().filter(|x| inside(x, &b)).count();
                assert!(n <= 1, "{c:?} → {cc:?} overlap at {b:?}");
                assert_eq!(inside(c, &b), n == 1, "{c:?} → {cc:?} at {b:?}");
            }
        }
    }

    #[test]
    fn prefixes_of_one_field_share_its_dimension() {
        let saddr = |len| Field::Payload {
            base: PayloadBase::Network,
            off: 12,
            len,
        };
        let cubes = vec![
            vec![sp(Dim::raw(saddr(1)), 10, 10)],
            vec![sp(Dim::raw(saddr(2)), 0x0a01, 0x0a01)],
            vec![sp(Dim::raw(saddr(4)), 0x0a01_0203, 0x0a01_0203)],
        ];
        let canon = Canon::new(&cubes);
        let c: Vec<Cube> = cubes
            .iter()
            .map(|c| canon.apply(c).unwrap().remove(0))
            .collect();
        let d4 = Dim::raw(saddr(4));
        assert_eq!(c[0], vec![sp(d4, 0x0a00_0000, 0x0aff_ffff)]);
        assert_eq!(c[1], vec![sp(d4, 0x0a01_0000, 0x0a01_ffff)]);
        assert!(contains(&c[0], &c[1]) && contains(&c[1], &c[2]));
    }

    /// Every field the lint may ask about, and packets that have some of them.
    #[test]
    fn presence_holds_in_the_interpreter() {
        let mut fields = Vec::new();
        for base in [
            PayloadBase::Link,
            PayloadBase::Network,
            PayloadBase::Transport,
        ] {
            for (off, len) in [(0, 1), (0, 4), (2, 2), (12, 4), (16, 4), (20, 4), (36, 4)] {
                fields.push(Field::Payload { base, off, len });
            }
        }
        for key in [
            MetaKey::Len,
            MetaKey::L4proto,
            MetaKey::Mark,
            MetaKey::Iifname,
            MetaKey::Iiftype,
            MetaKey::Oiftype,
            MetaKey::Skuid,
            MetaKey::Skgid,
            MetaKey::Pkttype,
        ] {
            fields.push(Field::Meta { key, word: 0 });
        }
        for key in [
            CtKey::State,
            CtKey::Mark,
            CtKey::Helper,
            CtKey::SrcIp,
            CtKey::DstIp,
            CtKey::SrcIp6,
            CtKey::Src,
            CtKey::ProtoDst,
            CtKey::Zone,
        ] {
            fields.push(Field::Ct {
                key,
                dir: Some(crate::insn::CtDir::Original),
                word: 0,
            });
        }
        let present = |f: Field, pkt: &[u8], st: &PktState| {
            crate::interp::key_of(&[Dim::raw(f)], pkt, st, &mut [0; MAX_DIMS]) == 1
        };
        let mut r = Rng(11);
        let mut checked = 0;
        for _ in 0..3000 {
            // packets as ip_rcv lets them through: at least a 20-byte network header
            let nhoff = if r.below(2) == 0 { 0 } else { 14 };
            let len = nhoff + 20 + r.below(30) as usize;
            let pkt = vec![0u8; len];
            let st = PktState {
                has_ll: nhoff == 14,
                nhoff: nhoff as u16,
                thoff: (nhoff + 20) as u16,
                has_th: r.below(2) == 0,
                fragoff: if r.below(4) == 0 { 8 } else { 0 },
                iif: r.below(2) as u32,
                oif: r.below(2) as u32,
                has_sk: r.below(2) == 0,
                ct_valid: r.below(2) == 0,
                ct_l3proto: if r.below(2) == 0 { 2 } else { 10 },
                ct_helper: if r.below(2) == 0 { [0; 16] } else { [b'f'; 16] },
                ..PktState::default()
            };
            for _ in 0..20 {
                let n = 1 + r.below(2) as usize;
                let loads: Vec<Field> = (0..n)
                    .map(|_| fields[r.below(fields.len() as u64) as usize])
                    .collect();
                if !loads.iter().all(|&l| present(l, &pkt, &st)) {
                    continue;
                }
                for &f in &fields {
                    if present_with(&loads, f) {
                        checked += 1;
                        assert!(present(f, &pkt, &st), "{f:?} with {loads:?} on {st:?}");
                    }
                }
            }
        }
        assert!(checked > 10000, "{checked}");
    }
}
