//! Cut trees: the lookup structure of a classifier (HiCuts-style decision trees with
//! power-of-two cuts, in the flat layout every engine walks).
//!
//! A node cuts one dimension of its region into `2^nb` equal parts: the child of a key is
//! `(key[dim] >> shift) & (2^nb - 1)`. The cut of a node is stored in the *pointer* to it, so
//! a step down the tree is one load. A leaf lists the entries (cubes of rules) that meet its
//! region, in rule order; a lookup scans it for the first entry at or after `from` whose cube
//! holds the key. Rules whose cubes span many children are copied into each (bounded by
//! `spfac`); rule sets whose copies would exceed the tree's byte budget are split into groups
//! by which dimensions their cubes are narrow in (as EffiCuts and CutSplit do), each group a
//! tree of its own, and, as the last resort, into leaves that are plain lists.
//!
//! Layout: `nodes` holds pointers (`u64`): bit 63 set for a leaf (bits 0..32: offset in
//! `leaves`), else a node (bits 0..32: offset of its first child pointer in `nodes`, bits
//! 32..37 `nb`, 40..45 `shift`, 48..51 `dim`). `leaves` holds, per leaf, a count of *quads*,
//! then the quads: four entries side by side, `[pos × 4]` then for each dimension `d` of the
//! key `[lo_d × 4, b_d × 4]` where `b_d = w_d ^ BIAS` (an entry holds the key when
//! `key[d] - lo_d <= w_d`, wrapping, for every `d`; the bias turns that unsigned comparison
//! into a signed one, which vector units have), so that one quad is checked with a few
//! 128-bit operations per row and no branch per entry; unused places have position
//! [`NONE`]. A node's children sit at offsets
//! into `nodes` above the slot pointing to it, which keeps every walk finite.

use hashbrown::HashMap;

/// Leaf bit of a pointer.
pub const LEAF: u64 = 1 << 63;
/// Most cut bits at a tree's root.
const ROOT_BITS: u32 = 16;
/// Most cut bits below the root.
const NODE_BITS: u32 = 8;
/// Deepest node (a guard: every cut halves a region at least).
const MAX_DEPTH: usize = 64;
/// Every tree may take this many bytes before its rules are split into groups.
const MIN_BUDGET: usize = 4 << 20;

/// One cut tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub root: u64,
    pub nodes: Vec<u64>,
    pub leaves: Vec<u32>,
    /// Smallest rule position in the tree (trees are searched in this order).
    pub min_pos: u32,
}

/// Entries per quad.
pub const QUAD: usize = 4;

/// XOR of the stored widths (and of `key - lo` before comparing): unsigned order as signed.
pub const BIAS: u32 = 1 << 31;

/// The position of an unused place in a quad, and "no rule yet" in a walk: above every rule
/// position, and positive as a signed number (so that positions compare signed too).
pub const NONE: u32 = i32::MAX as u32;

/// Words of one quad over `nd` dimensions.
pub fn quad_words(nd: usize) -> usize {
    QUAD + 2 * QUAD * nd
}

/// Decode a node pointer: (first child offset, nb, shift, dim).
#[inline(always)]
pub fn node_parts(p: u64) -> (usize, u32, u32, usize) {
    (
        p as u32 as usize,
        ((p >> 32) & 31) as u32,
        ((p >> 40) & 31) as u32,
        ((p >> 48) & 15) as usize,
    )
}

impl Tree {
    /// Bytes the tree holds.
    pub fn bytes(&self) -> usize {
        self.nodes.len() * 8 + self.leaves.len() * 4
    }

    /// The first entry at or after `from` and before `best` whose cube holds `key` (its first
    /// `nd` values).
    #[inline]
    pub fn first(&self, key: &[u32; super::MAX_DIMS], nd: usize, from: u32, best: u32) -> u32 {
        scan(&self.leaves, self.leaf_of(key), key, nd, from, best)
    }

    /// The offset of the leaf holding `key`.
    #[inline]
    fn leaf_of(&self, key: &[u32; super::MAX_DIMS]) -> usize {
        let mut p = self.root;
        while p & LEAF == 0 {
            let (base, nb, shift, dim) = node_parts(p);
            let k = key.get(dim).copied().unwrap_or(0);
            let idx = (k >> shift) & ((1u32 << nb) - 1);
            p = self.nodes.get(base + idx as usize).copied().unwrap_or(LEAF);
        }
        (p as u32) as usize
    }
}

/// What one lookup in a tree touches: nodes stepped through, entries compared, and distinct
/// 64-byte lines read (for tuning; see the `cls_profile` example).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkStats {
    pub trees: u64,
    pub nodes: u64,
    pub entries: u64,
    pub lines: u64,
}

impl Tree {
    /// [`Tree::first`], counting what it touches into `s`.
    #[doc(hidden)]
    pub fn first_stats(
        &self,
        key: &[u32; super::MAX_DIMS],
        nd: usize,
        from: u32,
        best: u32,
        s: &mut WalkStats,
    ) -> u32 {
        s.trees += 1;
        let mut p = self.root;
        let mut lines: Vec<usize> = Vec::new();
        while p & LEAF == 0 {
            let (base, nb, shift, dim) = node_parts(p);
            let k = key.get(dim).copied().unwrap_or(0);
            let idx = base + ((k >> shift) & ((1u32 << nb) - 1)) as usize;
            lines.push((self.nodes.as_ptr() as usize + 8 * idx) / 64);
            s.nodes += 1;
            p = self.nodes.get(idx).copied().unwrap_or(LEAF);
        }
        let off = (p as u32) as usize;
        let base = self.leaves.as_ptr() as usize;
        let g = self.leaves.get(off).copied().unwrap_or(0) as usize;
        let qw = quad_words(nd);
        let out = scan(&self.leaves, off, key, nd, from, best);
        // Quads read: up to the one holding the answer (or all, or up to `best`).
        for q in 0..g {
            let at = off + 1 + q * qw;
            let first = self.leaves.get(at).copied().unwrap_or(NONE);
            if first >= best.min(out.saturating_add(1)) && q > 0 {
                break;
            }
            s.entries += QUAD as u64;
            for l in (base + 4 * at) / 64..=(base + 4 * (at + qw) - 1) / 64 {
                lines.push(l);
            }
        }
        lines.push((base + 4 * off) / 64);
        lines.sort_unstable();
        lines.dedup();
        s.lines += lines.len() as u64;
        out
    }
}

/// Scan the leaf at `off` (see the module docs): the first entry, in order, at or after `from`
/// and before `best` whose cube holds the key's first `nd` values.
#[inline]
fn scan(
    leaves: &[u32],
    off: usize,
    key: &[u32; super::MAX_DIMS],
    nd: usize,
    from: u32,
    best: u32,
) -> u32 {
    match nd {
        0 => scan_n::<0>(leaves, off, key, from, best),
        1 => scan_n::<1>(leaves, off, key, from, best),
        2 => scan_n::<2>(leaves, off, key, from, best),
        3 => scan_n::<3>(leaves, off, key, from, best),
        4 => scan_n::<4>(leaves, off, key, from, best),
        5 => scan_n::<5>(leaves, off, key, from, best),
        6 => scan_n::<6>(leaves, off, key, from, best),
        7 => scan_n::<7>(leaves, off, key, from, best),
        _ => scan_n::<8>(leaves, off, key, from, best),
    }
}

/// [`scan`] for `N` dimensions (a constant, so that the rows unroll and stay in vectors).
#[inline]
fn scan_n<const N: usize>(
    leaves: &[u32],
    off: usize,
    key: &[u32; super::MAX_DIMS],
    from: u32,
    best: u32,
) -> u32 {
    let g = leaves.get(off).copied().unwrap_or(0) as usize;
    let qw = quad_words(N);
    let Some(body) = leaves.get(off + 1..off + 1 + g * qw) else {
        return best;
    };
    for q in body.chunks_exact(qw) {
        let (pos, rows) = q.split_at(QUAD);
        if pos[0] >= best {
            return best;
        }
        // Lane j of `miss` is non-zero once entry j cannot be the answer (no branch per entry).
        // Positions are below NONE (2^31 - 1): signed compares, as the vector units have.
        let (from, best) = (from.min(NONE) as i32, best.min(NONE) as i32);
        let mut miss = [0u32; QUAD];
        for j in 0..QUAD {
            let p = pos[j] as i32;
            miss[j] = u32::from(p < from) | u32::from(p >= best);
        }
        for d in 0..N {
            let k = key[d];
            let lw = &rows[2 * QUAD * d..2 * QUAD * (d + 1)];
            for j in 0..QUAD {
                let x = (k.wrapping_sub(lw[j]) ^ BIAS) as i32;
                miss[j] |= u32::from(x > lw[QUAD + j] as i32);
            }
        }
        let bits = (0..QUAD).fold(0u32, |b, j| b | (u32::from(miss[j] == 0) << j));
        if bits != 0 {
            return pos[bits.trailing_zeros() as usize & (QUAD - 1)];
        }
    }
    best
}

/// One entry to place: a rule position and a cube, dense over the dimensions.
#[derive(Clone, Debug)]
pub struct Entry {
    pub pos: u32,
    pub lo: Vec<u32>,
    pub hi: Vec<u32>,
}

/// Build parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Leaves hold at most this many entries when a cut can still separate them.
    pub binth: usize,
    /// Copies of entries a cut may make, as a factor of its entries (HiCuts' `spfac`), ×10.
    pub spfac10: u32,
}

#[derive(Clone, Copy)]
struct Region {
    base: [u32; super::MAX_DIMS],
    bits: [u32; super::MAX_DIMS],
}

impl Region {
    fn hi(&self, d: usize) -> u32 {
        self.base[d] | ((1u64 << self.bits[d]) - 1) as u32
    }
}

struct Builder<'a> {
    es: &'a [Entry],
    nd: usize,
    p: Params,
    nodes: Vec<u64>,
    leaves: Vec<u32>,
    memo: HashMap<Vec<u32>, u64>,
    budget: usize,
}

impl Builder<'_> {
    fn bytes(&self) -> usize {
        self.nodes.len() * 8 + self.leaves.len() * 4
    }

    fn leaf(&mut self, ids: &[u32]) -> Option<u64> {
        if let Some(&p) = self.memo.get(ids) {
            return Some(p);
        }
        let off = self.leaves.len();
        push_leaf(&mut self.leaves, self.es, ids, self.nd);
        if self.bytes() > self.budget {
            return None;
        }
        let p = LEAF | off as u64;
        self.memo.insert(ids.to_vec(), p);
        Some(p)
    }

    fn clip(&self, i: u32, d: usize, reg: &Region) -> (u32, u32) {
        let e = &self.es[i as usize];
        (
            e.lo[d].max(reg.base[d]) - reg.base[d],
            e.hi[d].min(reg.hi(d)) - reg.base[d],
        )
    }

    fn node(&mut self, ids: Vec<u32>, reg: Region, depth: usize) -> Option<u64> {
        let n = ids.len();
        if n <= self.p.binth || depth >= MAX_DEPTH {
            return self.leaf(&ids);
        }
        let maxb = if depth == 0 { ROOT_BITS } else { NODE_BITS };
        let limit = n as u64 * u64::from(self.p.spfac10) / 10;
        // (dim, nb, largest child, copies)
        let mut best: Option<(usize, u32, usize, usize)> = None;
        let mut counts: Vec<i64> = Vec::new();
        for d in 0..self.nd {
            for nb in 1..=maxb.min(reg.bits[d]) {
                let sh = reg.bits[d] - nb;
                let nc = 1usize << nb;
                counts.clear();
                counts.resize(nc + 1, 0);
                let mut sum = 0usize;
                for &i in &ids {
                    let (lo, hi) = self.clip(i, d, &reg);
                    let (a, b) = ((lo >> sh) as usize, (hi >> sh) as usize);
                    counts[a] += 1;
                    counts[b + 1] -= 1;
                    sum += b - a + 1;
                }
                if nb > 1 && (sum + nc) as u64 > limit {
                    break;
                }
                let (mut acc, mut mx) = (0i64, 0i64);
                for c in &counts[..nc] {
                    acc += c;
                    mx = mx.max(acc);
                }
                let mx = mx as usize;
                if mx >= n {
                    continue;
                }
                let better =
                    best.is_none_or(|(_, bnb, bmx, bsum)| (mx, nb, sum) < (bmx, bnb, bsum));
                if better {
                    best = Some((d, nb, mx, sum));
                }
            }
        }
        let Some((d, nb, _, _)) = best else {
            return self.leaf(&ids);
        };
        let sh = reg.bits[d] - nb;
        let nc = 1usize << nb;
        let mut kids: Vec<Vec<u32>> = vec![Vec::new(); nc];
        for &i in &ids {
            let (lo, hi) = self.clip(i, d, &reg);
            for c in (lo >> sh)..=(hi >> sh) {
                kids[c as usize].push(i);
            }
        }
        drop(ids);
        let base = self.nodes.len();
        self.nodes.resize(base + nc, 0);
        if self.bytes() > self.budget {
            return None;
        }
        let mut same: HashMap<Vec<u32>, u64> = HashMap::new();
        for (c, k) in kids.into_iter().enumerate() {
            let p = match same.get(&k) {
                Some(&p) => p,
                None => {
                    let mut creg = reg;
                    creg.base[d] = reg.base[d] + ((c as u32) << sh);
                    creg.bits[d] = sh;
                    let p = self.node(k.clone(), creg, depth + 1)?;
                    same.insert(k, p);
                    p
                }
            };
            self.nodes[base + c] = p;
        }
        Some(((d as u64) << 48) | (u64::from(sh) << 40) | (u64::from(nb) << 32) | base as u64)
    }
}

/// Build one tree over `ids` (indexes into `es`) within `budget` bytes; `None` when over.
fn build_one(es: &[Entry], ids: Vec<u32>, bits: &[u32], p: Params, budget: usize) -> Option<Tree> {
    let nd = bits.len();
    let mut reg = Region {
        base: [0; super::MAX_DIMS],
        bits: [0; super::MAX_DIMS],
    };
    reg.bits[..nd].copy_from_slice(bits);
    let min_pos = ids
        .iter()
        .map(|&i| es[i as usize].pos)
        .min()
        .unwrap_or(u32::MAX);
    let mut b = Builder {
        es,
        nd,
        p,
        nodes: Vec::new(),
        leaves: Vec::new(),
        memo: HashMap::new(),
        budget,
    };
    let root = b.node(ids, reg, 0)?;
    Some(Tree {
        root,
        nodes: b.nodes,
        leaves: b.leaves,
        min_pos,
    })
}

/// Append a leaf of entries `ids` (in rule order) as quads (see the module docs).
fn push_leaf(leaves: &mut Vec<u32>, es: &[Entry], ids: &[u32], nd: usize) {
    leaves.push(ids.len().div_ceil(QUAD) as u32);
    for q in ids.chunks(QUAD) {
        let e = |j: usize| q.get(j).map(|&i| &es[i as usize]);
        leaves.extend((0..QUAD).map(|j| e(j).map_or(NONE, |e| e.pos)));
        for d in 0..nd {
            leaves.extend((0..QUAD).map(|j| e(j).map_or(0, |e| e.lo[d])));
            leaves.extend((0..QUAD).map(|j| e(j).map_or(BIAS, |e| (e.hi[d] - e.lo[d]) ^ BIAS)));
        }
    }
}

/// A tree whose root is one leaf: a plain list (the fallback that always fits).
fn list(es: &[Entry], ids: &[u32], nd: usize) -> Tree {
    let mut leaves = Vec::new();
    push_leaf(&mut leaves, es, ids, nd);
    Tree {
        root: LEAF,
        nodes: Vec::new(),
        leaves,
        min_pos: ids
            .iter()
            .map(|&i| es[i as usize].pos)
            .min()
            .unwrap_or(u32::MAX),
    }
}

/// A cube is narrow in a dimension when it fixes at least half of its bits.
fn narrow(e: &Entry, d: usize, bits: u32) -> bool {
    u64::from(e.hi[d] - e.lo[d]) < (1u64 << (bits - bits / 2))
}

/// Build the trees for all entries: one tree if it fits its budget, else groups by narrowness
/// (recursively, one more dimension each time), else plain lists. `max_bytes` caps the total.
pub fn build(es: &[Entry], bits: &[u32], p: Params, max_bytes: usize) -> Vec<Tree> {
    let nd = bits.len();
    let stride = 4 * (1 + 2 * nd);
    // Dimensions by how many entries are narrow in them.
    let mut order: Vec<usize> = (0..nd).collect();
    let narrow_count = |d: usize| es.iter().filter(|e| narrow(e, d, bits[d])).count();
    let counts: Vec<usize> = (0..nd).map(narrow_count).collect();
    order.sort_by_key(|&d| std::cmp::Reverse(counts[d]));
    let mut out = Vec::new();
    let mut used = 0usize;
    let mut work: Vec<(Vec<u32>, usize)> = vec![((0..es.len() as u32).collect(), 0)];
    while let Some((ids, depth)) = work.pop() {
        if ids.is_empty() {
            continue;
        }
        let budget = (ids.len() * stride * 8)
            .max(MIN_BUDGET)
            .min(max_bytes.saturating_sub(used));
        if let Some(t) = build_one(es, ids.clone(), bits, p, budget) {
            used += t.bytes();
            out.push(t);
            continue;
        }
        // Split by narrowness in the next dimensions (two at a time at first).
        let take = if depth == 0 { 2 } else { 1 };
        let dims: Vec<usize> = order.iter().copied().skip(depth).take(take).collect();
        if dims.is_empty() || ids.len() <= p.binth {
            let t = list(es, &ids, nd);
            used += t.bytes();
            out.push(t);
            continue;
        }
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); 1 << dims.len()];
        for &i in &ids {
            let e = &es[i as usize];
            let g = dims.iter().enumerate().fold(0, |g, (j, &d)| {
                g | (usize::from(narrow(e, d, bits[d])) << j)
            });
            groups[g].push(i);
        }
        if groups.iter().filter(|g| !g.is_empty()).count() == 1 {
            // This split separates nothing: try the next dimension.
            work.push((ids, depth + dims.len()));
            continue;
        }
        for g in groups {
            work.push((g, depth + dims.len()));
        }
    }
    out.sort_by_key(|t| t.min_pos);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pos: u32, lo: [u32; 2], hi: [u32; 2]) -> Entry {
        Entry {
            pos,
            lo: lo.to_vec(),
            hi: hi.to_vec(),
        }
    }

    fn first(ts: &[Tree], key: &[u32], from: u32) -> u32 {
        let mut k = [0u32; crate::classify::MAX_DIMS];
        k[..key.len()].copy_from_slice(key);
        ts.iter().fold(NONE, |b, t| t.first(&k, 2, from, b))
    }

    #[test]
    fn trees_find_the_first_match_as_a_scan_does() {
        let mut s = 12345u64;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut es = Vec::new();
        for pos in 0..300u32 {
            let mut lo = [0u32; 2];
            let mut hi = [0u32; 2];
            for d in 0..2 {
                let bits = if d == 0 { 32 } else { 16 };
                let plen = (rnd() % (u64::from(bits) + 1)) as u32;
                let v = (rnd() as u32) & ((1u64 << bits) - 1) as u32;
                let m = if plen == 0 {
                    0
                } else {
                    ((1u64 << bits) - (1u64 << (bits - plen))) as u32
                };
                lo[d] = v & m;
                hi[d] = lo[d] | (!m & ((1u64 << bits) - 1) as u32);
            }
            es.push(entry(pos, lo, hi));
        }
        let p = Params {
            binth: 4,
            spfac10: 40,
        };
        for max in [usize::MAX, 4096, 0] {
            let ts = build(&es, &[32, 16], p, max);
            for _ in 0..3000 {
                let key = [rnd() as u32, (rnd() & 0xffff) as u32];
                let key = if rnd() % 2 == 0 {
                    let e = &es[(rnd() % 300) as usize];
                    [e.lo[0], e.hi[1]]
                } else {
                    key
                };
                let want = es
                    .iter()
                    .find(|e| (0..2).all(|d| e.lo[d] <= key[d] && key[d] <= e.hi[d]))
                    .map_or(NONE, |e| e.pos);
                assert_eq!(first(&ts, &key, 0), want, "max {max} key {key:?}");
            }
        }
    }
}
