//! Rule analysis: which packets reach a rule's first side effect, as a union of boxes over
//! packet facts of at most 32 bits. This is the one reading of a rule's matches that the
//! classifier, the native baseline and the shadowing lint share.
//!
//! A rule is read instruction by instruction, tracking what each register word holds (a
//! [`Field`] through a mask and xor). Loads, `bitwise` mask/xor and tests (`cmp`, `range`,
//! `lookup`) are the *head*; the first instruction that is anything else (a counter, a verdict,
//! a limit, a statement) starts the *tail*. Each test becomes a union of boxes; the rule's boxes
//! are the cross product of its tests. A test that cannot be expressed is left out, which
//! makes the boxes *larger* than the truth: the analysis never loses a packet the rule matches
//! (sound), and says so with `exact == false` when it may contain packets the rule does not.
//!
//! Values live in each field's *natural domain*: the field's bytes (as they sit in the
//! register, i.e. in memcmp order) read as a big-endian number of `8 × len` bits. Packet
//! payload is then the wire number, `meta mark` the byte-swapped host value; either way,
//! `cmp`, `range` and set lookups (memcmp) become integer intervals.

use crate::ids::NFT_REG32_COUNT;
use crate::insn::RangeOp;
use crate::insn::{BitwiseOp, CmpOp, CtDir, CtKey, Data, Insn, LookupDest, MetaKey, PayloadBase};
use crate::program::{Program, Set, SetKind};
use crate::verdict::ChainVerdict;

/// A packet fact of 1 to 4 bytes: one register word of a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `len` (1..=4) bytes at `base + off` (one word of a payload load).
    Payload {
        base: PayloadBase,
        off: u32,
        len: u8,
    },
    /// Word `word` of a `meta` key.
    Meta { key: MetaKey, word: u8 },
    /// Word `word` of a `ct` key.
    Ct {
        key: CtKey,
        dir: Option<CtDir>,
        word: u8,
    },
}

impl Field {
    /// Bytes of this word (1..=4).
    pub fn len(&self) -> usize {
        let rest = |size: usize, word: u8| size.saturating_sub(4 * usize::from(word)).min(4);
        match *self {
            Field::Payload { len, .. } => usize::from(len),
            Field::Meta { key, word } => rest(key.size(), word),
            Field::Ct { key, word, .. } => rest(key.size(), word),
        }
    }

    /// Always false (a field has at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Largest value of the natural domain (`8 × len` bits all ones).
    pub fn max(&self) -> u32 {
        ones(8 * self.len() as u32)
    }
}

/// A dimension of a box: a field, seen through `mask` (natural domain). `mask == field.max()`
/// is the field itself; prefix masks never appear (they turn into intervals of the field);
/// other masks (`tcp flags & (syn | ack)`, `ct state & (established | related)`) are
/// dimensions of their own whose value is `field & mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dim {
    pub field: Field,
    pub mask: u32,
}

impl Dim {
    /// The field itself.
    pub fn raw(field: Field) -> Dim {
        Dim {
            field,
            mask: field.max(),
        }
    }

    /// Width in bits of the values (`8 × len`).
    pub fn bits(&self) -> u32 {
        8 * self.field.len() as u32
    }

    /// Largest value.
    pub fn max(&self) -> u32 {
        self.field.max()
    }
}

/// One constraint of a box: `lo <= value(dim) <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub dim: Dim,
    pub lo: u32,
    pub hi: u32,
}

/// A box: the conjunction of its spans, at most one per dimension; dimensions without a span
/// are unconstrained (the empty box is every packet).
pub type Cube = Vec<Span>;

/// What the analysis found out about one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// The packets that can reach the tail: the union of these boxes (none: the rule can never
    /// match; one empty box: every packet).
    pub cubes: Vec<Cube>,
    /// `cubes` is exactly that set (given the fields below are present); otherwise a superset.
    pub exact: bool,
    /// Index, within the rule, of the first tail instruction (a rule's instructions are
    /// counted in `u32`, as `InsnIdx` does).
    pub tail: u32,
    /// Every field the head loads (a load breaks when its field is absent).
    pub loads: Box<[Field]>,
}

impl Shape {
    /// Give back the spare capacity of its cubes (a chain holds a shape per rule): each moved into a
    /// block of its length, as a shrink in place would leave the rest of each grown block a hole (the
    /// grown blocks freed here are reused by the next rule's).
    pub fn shrink_to_fit(&mut self) {
        for c in &mut self.cubes {
            if c.len() < c.capacity() {
                *c = c.as_slice().to_vec();
            }
        }
        if self.cubes.len() < self.cubes.capacity() {
            let mut cubes = Vec::with_capacity(self.cubes.len());
            cubes.append(&mut self.cubes);
            self.cubes = cubes;
        }
    }
}

/// Most alternatives a rule may expand to before the analysis keeps their hull instead.
pub const MAX_CUBES: usize = 64;

fn ones(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

/// `m` is a prefix mask of a `bits`-bit domain (ones, then zeros).
fn is_prefix(m: u32, bits: u32) -> bool {
    let inv = !m & ones(bits);
    inv & inv.wrapping_add(1) == 0
}

/// A register word: `(field & mask) ^ xor`, natural domain of the field.
#[derive(Clone, Copy, Debug)]
struct RegVal {
    field: Field,
    mask: u32,
    xor: u32,
}

/// The first `n` (1..=4) bytes of `b` as a big-endian number.
fn be(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0u32, |a, &x| (a << 8) | u32::from(x))
}

/// One test on one register word: "the top `kw` bytes of the word's value lie in `[a, b]`".
/// Returns the spans (at most one) that say the same of the field, `Some(None)` when no packet
/// passes, `None` when the test cannot be expressed.
fn word_interval(rv: RegVal, kw: usize, a: u32, b: u32) -> Option<Option<Span>> {
    let len = rv.field.len();
    if kw == 0 || kw > len || a > b {
        return if a > b { Some(None) } else { None };
    }
    let bits = 8 * len as u32;
    let s = 8 * (len - kw) as u32;
    let (a, b) = (a << s, (b << s) | ones(s));
    let full = rv.field.max();
    let m = rv.mask & full;
    if rv.xor & !m & full != 0 {
        return None;
    }
    let (a, b) = if rv.xor == 0 {
        (a, b)
    } else if a == b {
        (a ^ rv.xor, b ^ rv.xor)
    } else {
        return None;
    };
    if m == full {
        return Some(Some(Span {
            dim: Dim::raw(rv.field),
            lo: a,
            hi: b,
        }));
    }
    if is_prefix(m, bits) {
        // (v & m) in [a, b]  <=>  v in [ceil_m(a), (b & m) | !m]
        let inv = !m & full;
        let lo = if a & inv == 0 {
            Some(a)
        } else {
            inv.checked_add(1)
                .and_then(|step| (a & m).checked_add(step))
                .filter(|&x| x <= full)
        };
        let hi = (b & m) | inv;
        return Some(match lo {
            Some(lo) if lo <= hi => Some(Span {
                dim: Dim::raw(rv.field),
                lo,
                hi,
            }),
            _ => None,
        });
    }
    Some(Some(Span {
        dim: Dim {
            field: rv.field,
            mask: m,
        },
        lo: a,
        hi: b,
    }))
}

/// The complement of one span within its domain: 0, 1 or 2 cubes.
fn complement(s: Span) -> Vec<Cube> {
    let mut out = Vec::new();
    if s.lo > 0 {
        out.push(vec![Span {
            hi: s.lo - 1,
            lo: 0,
            ..s
        }]);
    }
    if s.hi < s.dim.max() {
        out.push(vec![Span {
            lo: s.hi + 1,
            hi: s.dim.max(),
            ..s
        }]);
    }
    out
}

/// The intersection of two cubes, `None` when empty.
pub fn intersect(a: &[Span], b: &[Span]) -> Option<Cube> {
    let mut out: Cube = a.to_vec();
    for s in b {
        if let Some(t) = out.iter_mut().find(|t| t.dim == s.dim) {
            t.lo = t.lo.max(s.lo);
            t.hi = t.hi.min(s.hi);
            if t.lo > t.hi {
                return None;
            }
        } else {
            out.push(*s);
        }
    }
    Some(out)
}

/// The smallest cube holding every cube of `u` (none: `None`).
fn hull(u: &[Cube]) -> Option<Cube> {
    let first = u.first()?;
    let mut h: Cube = first.clone();
    for c in &u[1..] {
        h.retain_mut(|s| match c.iter().find(|t| t.dim == s.dim) {
            Some(t) => {
                s.lo = s.lo.min(t.lo);
                s.hi = s.hi.max(t.hi);
                true
            }
            None => false,
        });
    }
    Some(h)
}

/// The result of one test: the union of cubes that passes it, and whether that is exact.
struct Test {
    alts: Vec<Cube>,
    exact: bool,
}

impl Test {
    fn never() -> Test {
        Test {
            alts: Vec::new(),
            exact: true,
        }
    }
}

struct Reader {
    regs: [Option<RegVal>; NFT_REG32_COUNT],
    loads: Vec<Field>,
}

impl Reader {
    fn reg(&self, r: usize) -> Option<RegVal> {
        self.regs.get(r).copied().flatten()
    }

    fn forget(&mut self, r: usize, len: usize) {
        for w in 0..len.div_ceil(4) {
            if let Some(x) = self.regs.get_mut(r + w) {
                *x = None;
            }
        }
    }

    fn load(&mut self, dreg: usize, words: impl Iterator<Item = Field>) {
        for (w, f) in words.enumerate() {
            if !self.loads.contains(&f) {
                self.loads.push(f);
            }
            if let Some(x) = self.regs.get_mut(dreg + w) {
                *x = Some(RegVal {
                    field: f,
                    mask: f.max(),
                    xor: 0,
                });
            }
        }
    }

    /// Register words `sreg..` compared bytewise (memcmp) against `[from, to]` of `n` bytes:
    /// the cube, if every word is known and the range splits into per-word intervals.
    /// `hash_pad`: compare whole words, register padding (zero) included.
    fn range_cube(&self, sreg: usize, from: &[u8], to: &[u8], hash_pad: bool) -> Option<Test> {
        let n = from.len().min(to.len());
        let words = n.div_ceil(4);
        let mut cube = Cube::new();
        let mut exact = true;
        // Words before the first that differs are points; that word an interval; the rest
        // must span their whole domain for the cube to be exact.
        let mut free = false;
        for w in 0..words {
            let rv = self.reg(sreg + w)?;
            let (lo_b, hi_b) = (
                &from[4 * w..(4 * w + 4).min(n)],
                &to[4 * w..(4 * w + 4).min(n)],
            );
            let mut kw = lo_b.len();
            let len = rv.field.len();
            if kw > len {
                // Bytes past the field are register padding (zero).
                if !hash_pad || lo_b[len..].iter().chain(&hi_b[len..]).any(|&b| b != 0) {
                    if lo_b[len..].iter().all(|&b| b == 0) && hi_b[len..].iter().all(|&b| b == 0xff)
                    {
                        kw = len;
                    } else {
                        return None;
                    }
                } else {
                    kw = len;
                }
            }
            let (a, b) = (be(&lo_b[..kw]), be(&hi_b[..kw]));
            if free {
                if a != 0 || b != ones(8 * kw as u32) {
                    exact = false;
                }
                continue;
            }
            if a > b {
                return Some(Test::never());
            }
            match word_interval(rv, kw, a, b) {
                None => exact = false,
                Some(None) => return Some(Test::never()),
                Some(Some(s)) => match intersect(&cube, &[s]) {
                    Some(c) => cube = c,
                    None => return Some(Test::never()),
                },
            }
            if a != b {
                free = true;
            }
        }
        Some(Test {
            alts: vec![cube],
            exact,
        })
    }

    fn cmp(&self, op: CmpOp, sreg: usize, data: &Data) -> Option<Test> {
        let d = data.bytes();
        if d.len() <= 4 {
            let rv = self.reg(sreg)?;
            let kw = d.len();
            if kw > rv.field.len() {
                return None;
            }
            let c = be(d);
            let top = ones(8 * kw as u32);
            let (a, b) = match op {
                CmpOp::Eq | CmpOp::Neq => (c, c),
                CmpOp::Lt if c == 0 => return Some(Test::never()),
                CmpOp::Lt => (0, c - 1),
                CmpOp::Lte => (0, c),
                CmpOp::Gt if c == top => return Some(Test::never()),
                CmpOp::Gt => (c + 1, top),
                CmpOp::Gte => (c, top),
            };
            let span = word_interval(rv, kw, a, b)?;
            return Some(match (op, span) {
                (CmpOp::Neq, None) => Test {
                    alts: vec![Cube::new()],
                    exact: true,
                },
                (CmpOp::Neq, Some(s)) => Test {
                    alts: complement(s),
                    exact: true,
                },
                (_, None) => Test::never(),
                (_, Some(s)) => Test {
                    alts: vec![vec![s]],
                    exact: true,
                },
            });
        }
        // Multi-word: equality is one cube; the rest is not analysed.
        match op {
            CmpOp::Eq => self.range_cube(sreg, d, d, false),
            CmpOp::Neq => {
                let t = self.range_cube(sreg, d, d, false)?;
                match (t.exact, t.alts.first()) {
                    (true, Some(c)) => Some(Test {
                        alts: c.iter().flat_map(|s| complement(*s)).collect(),
                        exact: true,
                    }),
                    (true, None) => Some(Test {
                        alts: vec![Cube::new()],
                        exact: true,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn range(&self, op: RangeOp, sreg: usize, from: &Data, to: &Data) -> Option<Test> {
        let t = self.range_cube(sreg, from.bytes(), to.bytes(), false)?;
        if op == RangeOp::Eq {
            return Some(t);
        }
        match (t.exact, t.alts.as_slice()) {
            (true, []) => Some(Test {
                alts: vec![Cube::new()],
                exact: true,
            }),
            (true, [c]) if c.len() == 1 => Some(Test {
                alts: complement(c[0]),
                exact: true,
            }),
            (true, [c]) if c.is_empty() => Some(Test::never()),
            _ => None,
        }
    }

    fn lookup(&self, sreg: usize, set: &Set, invert: bool) -> Option<Test> {
        // The elements of a set the packet path updates are known only at run time.
        if set.dynamic.is_some() {
            return None;
        }
        if set.catchall.is_some() {
            return Some(if invert {
                Test::never()
            } else {
                Test {
                    alts: vec![Cube::new()],
                    exact: true,
                }
            });
        }
        if set.len() > 4096 {
            return None;
        }
        let mut alts = Vec::new();
        let mut exact = true;
        let mut add = |t: Option<Test>| match t {
            Some(t) => {
                exact &= t.exact;
                alts.extend(t.alts);
            }
            None => exact = false,
        };
        match &set.kind {
            SetKind::Hash => {
                for (k, _) in set.hash_elems() {
                    add(self.range_cube(sreg, k, k, true));
                }
            }
            SetKind::Interval => {
                for e in set.interval_elems() {
                    add(self.range_cube(sreg, e.from, e.to, false));
                }
            }
            SetKind::ConcatInterval { field_lens } => {
                for e in set.interval_elems() {
                    let mut cube = Some(Cube::new());
                    let mut off = 0usize;
                    let mut ex = true;
                    for &fl in field_lens {
                        let fl = usize::from(fl);
                        let (Some(f), Some(t)) =
                            (e.from.get(off..off + fl), e.to.get(off..off + fl))
                        else {
                            return None;
                        };
                        match self.range_cube(sreg + off / 4, f, t, false) {
                            Some(t) => {
                                ex &= t.exact;
                                cube = match (cube, t.alts.first()) {
                                    (Some(c), Some(s)) => intersect(&c, s),
                                    _ => None,
                                };
                            }
                            None => ex = false,
                        }
                        off += fl.div_ceil(4) * 4;
                    }
                    add(Some(Test {
                        alts: cube.into_iter().collect(),
                        exact: ex,
                    }));
                }
            }
        }
        if !exact && alts.is_empty() {
            return None;
        }
        if !invert {
            return Some(Test { alts, exact });
        }
        // Inverted: exact only over one dimension, as the union's complement.
        let dim = alts.first().and_then(|c| c.first()).map(|s| s.dim);
        if !exact || alts.iter().any(|c| c.len() != 1 || Some(c[0].dim) != dim) {
            // An element every packet matches: the inverted lookup never matches. Only when
            // the cubes are exact: an inexact cube is a superset, and may be everything.
            return if exact && alts.iter().any(|c| c.is_empty()) {
                Some(Test::never())
            } else {
                None
            };
        }
        let Some(dim) = dim else {
            return Some(Test {
                alts: vec![Cube::new()],
                exact: true,
            });
        };
        let mut iv: Vec<(u32, u32)> = alts.iter().map(|c| (c[0].lo, c[0].hi)).collect();
        iv.sort_unstable();
        let mut out = Vec::new();
        let mut next = Some(0u32);
        for (lo, hi) in iv {
            if let Some(n) = next {
                if lo > n {
                    out.push(vec![Span {
                        dim,
                        lo: n,
                        hi: lo - 1,
                    }]);
                }
                next = match hi.checked_add(1) {
                    Some(h) if h <= dim.max() => Some(h.max(n)),
                    _ => None,
                };
            }
        }
        if let Some(n) = next {
            out.push(vec![Span {
                dim,
                lo: n,
                hi: dim.max(),
            }]);
        }
        Some(Test {
            alts: out,
            exact: true,
        })
    }
}

/// Words of a load of `len` bytes.
fn words(len: usize, mut f: impl FnMut(u8) -> Field) -> impl Iterator<Item = Field> {
    (0..len.div_ceil(4)).map(move |w| f(w as u8))
}

/// Analyse one rule's instructions.
pub fn analyze(prog: &Program, insns: &[Insn]) -> Shape {
    let mut rd = Reader {
        regs: [None; NFT_REG32_COUNT],
        loads: Vec::new(),
    };
    let mut cubes: Vec<Cube> = vec![Cube::new()];
    let mut exact = true;
    let mut tail = insns.len();
    for (i, insn) in insns.iter().enumerate() {
        let test = match insn {
            Insn::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                let (base, off, len) = (*base, *offset, usize::from(*len));
                rd.load(
                    usize::from(dreg.0),
                    words(len, |w| Field::Payload {
                        base,
                        off: off + 4 * u32::from(w),
                        len: (len - 4 * usize::from(w)).min(4) as u8,
                    }),
                );
                continue;
            }
            Insn::Meta { key, dreg } if *key != MetaKey::Prandom => {
                let key = *key;
                rd.load(
                    usize::from(dreg.0),
                    words(key.size(), |word| Field::Meta { key, word }),
                );
                continue;
            }
            Insn::Ct { key, dir, dreg } => {
                let (key, dir) = (*key, *dir);
                rd.load(
                    usize::from(dreg.0),
                    words(key.size(), |word| Field::Ct { key, dir, word }),
                );
                continue;
            }
            Insn::Bitwise {
                sreg,
                dreg,
                len,
                op: BitwiseOp::MaskXor(mx),
            } => {
                let (mask, xor) = (&mx.mask, &mx.xor);
                let len = usize::from(*len);
                let (s, d) = (usize::from(sreg.0), usize::from(dreg.0));
                let mut out = [None; 4];
                for (w, o) in out.iter_mut().enumerate().take(len.div_ceil(4)) {
                    let Some(rv) = rd.reg(s + w) else { continue };
                    let fl = rv.field.len();
                    let kb = (len - 4 * w).min(4);
                    let (Some(mb), Some(xb)) = (
                        mask.bytes().get(4 * w..4 * w + kb),
                        xor.bytes().get(4 * w..4 * w + kb),
                    ) else {
                        continue;
                    };
                    if kb < fl || xb[fl..].iter().any(|&b| b != 0) {
                        continue;
                    }
                    let (m, x) = (be(&mb[..fl]), be(&xb[..fl]));
                    *o = Some(RegVal {
                        field: rv.field,
                        mask: rv.mask & m,
                        xor: (rv.xor & m) ^ x,
                    });
                }
                rd.forget(d, len);
                for (w, o) in out.into_iter().enumerate().take(len.div_ceil(4)) {
                    if let Some(r) = rd.regs.get_mut(d + w) {
                        *r = o;
                    }
                }
                continue;
            }
            Insn::Bitwise { dreg, len, .. } | Insn::Byteorder { dreg, len, .. } => {
                rd.forget(usize::from(dreg.0), usize::from(*len));
                continue;
            }
            Insn::Immediate { dreg, data } => {
                rd.forget(usize::from(dreg.0), data.len());
                continue;
            }
            Insn::Exthdr {
                dreg, len, present, ..
            } => {
                // Not a dimension: a load that may break makes the boxes a superset.
                exact &= *present;
                rd.forget(
                    usize::from(dreg.0),
                    if *present { 1 } else { usize::from(*len) },
                );
                continue;
            }
            Insn::Cmp { op, sreg, data } => rd.cmp(*op, usize::from(sreg.0), data),
            Insn::Range { op, sreg, bounds } => {
                rd.range(*op, usize::from(sreg.0), &bounds.from, &bounds.to)
            }
            Insn::Lookup {
                sreg,
                set,
                dest,
                invert,
            } => {
                let t = prog
                    .sets
                    .get(set.0 as usize)
                    .and_then(|s| rd.lookup(usize::from(sreg.0), s, *invert));
                match dest {
                    LookupDest::Reg(d) => {
                        let n = match prog.sets.get(set.0 as usize).map(|s| s.data_type) {
                            Some(crate::program::SetDataType::Data(n)) => usize::from(n),
                            _ => 16,
                        };
                        rd.forget(usize::from(d.0), n);
                    }
                    LookupDest::Verdict => {
                        // The map's verdict ends the rule: what follows is tail.
                        apply(&mut cubes, &mut exact, t);
                        tail = i + 1;
                        break;
                    }
                    LookupDest::None => {}
                }
                t
            }
            _ => {
                tail = i;
                break;
            }
        };
        apply(&mut cubes, &mut exact, test);
    }
    let mut s = Shape {
        cubes,
        exact,
        tail: u32::try_from(tail).unwrap_or(u32::MAX),
        // a copy, not a shrink in place (see `Shape::shrink_to_fit`)
        loads: rd.loads.as_slice().into(),
    };
    s.shrink_to_fit();
    s
}

/// Intersect the rule's cubes with one test's union (its hull when the product grows too big).
fn apply(cubes: &mut Vec<Cube>, exact: &mut bool, test: Option<Test>) {
    let Some(t) = test else {
        *exact = false;
        return;
    };
    *exact &= t.exact;
    let mut alts = t.alts;
    if cubes.len() * alts.len() > MAX_CUBES {
        alts = hull(&alts).into_iter().collect();
        *exact = false;
    }
    let mut out = Vec::with_capacity(cubes.len() * alts.len());
    for c in cubes.iter() {
        for a in &alts {
            if let Some(x) = intersect(c, a) {
                out.push(x);
            }
        }
    }
    if out.len() > MAX_CUBES {
        out = hull(&out).into_iter().collect();
        *exact = false;
    }
    *cubes = out;
}

/// Put the payload words a set of rules tests on common *segments*, so that rules testing the
/// same header field share a dimension. nft loads only the bytes a prefix needs (`ip saddr
/// 10.0.0.0/8` loads one byte, `/16` two, `/20` four and a mask), and loads adjacent fields in
/// one word (`tcp sport 1 tcp dport 2` is one 4-byte load and compare): so a header field shows
/// up as several [`Field`]s. Segments are cut at every offset where a load starts and run over
/// the bytes some load covers; a word starting a segment and shorter than it is its top bytes
/// (an interval of the segment); a word spanning several segments is split into them (exact
/// for points and prefix-like ranges, else the hull and `exact == false`; a mask over more than
/// one segment is dropped, likewise). `loads` keep the fields the rules really load.
/// `shape` reaches the shape in each of `items`.
pub fn widen_fields<T>(items: &mut [T], shape: impl Fn(&mut T) -> &mut Shape) {
    // Payload words in use.
    let mut words: Vec<(PayloadBase, u32, u32)> = Vec::new();
    for s in items.iter_mut() {
        for sp in shape(s).cubes.iter().flatten() {
            if let Field::Payload { base, off, len } = sp.dim.field {
                let w = (base, off, off.saturating_add(u32::from(len)));
                if !words.contains(&w) {
                    words.push(w);
                }
            }
        }
    }
    if words.len() < 2 {
        return;
    }
    let segs = segments(&words);
    for s in items.iter_mut() {
        let s = shape(s);
        let cubes = std::mem::take(&mut s.cubes);
        let mut exact = true;
        for c in cubes {
            let mut out = Some(Cube::new());
            for sp in c {
                let (parts, ex) = on_segments(sp, &segs);
                exact &= ex;
                out = out.and_then(|o| intersect(&o, &parts));
            }
            s.cubes.extend(out);
        }
        s.exact &= exact;
        s.shrink_to_fit();
    }
}

/// The segments of a set of payload words `(base, start, end)`: per base, cut at every start,
/// over the bytes some word covers (each at most 4 bytes: it starts where a word starts and
/// ends before the next start or where no word covers it).
fn segments(words: &[(PayloadBase, u32, u32)]) -> Vec<(PayloadBase, u32, u32)> {
    let mut out = Vec::new();
    for base in [
        PayloadBase::Link,
        PayloadBase::Network,
        PayloadBase::Transport,
    ] {
        let ws: Vec<(u32, u32)> = words
            .iter()
            .filter(|w| w.0 == base)
            .map(|w| (w.1, w.2))
            .collect();
        let mut cuts: Vec<u32> = ws.iter().map(|w| w.0).collect();
        cuts.sort_unstable();
        cuts.dedup();
        for (i, &c) in cuts.iter().enumerate() {
            let next = cuts.get(i + 1).copied().unwrap_or(u32::MAX);
            // Covered bytes from `c` on, up to the next cut.
            let mut end = c;
            while end < next {
                match ws
                    .iter()
                    .filter(|w| w.0 <= end && w.1 > end)
                    .map(|w| w.1)
                    .max()
                {
                    Some(e) => end = e.min(next),
                    None => break,
                }
            }
            if end > c {
                out.push((base, c, end));
            }
        }
    }
    out
}

/// One span on a payload word, on the segments: the spans it becomes, and whether exactly.
fn on_segments(sp: Span, segs: &[(PayloadBase, u32, u32)]) -> (Vec<Span>, bool) {
    let Field::Payload { base, off, len } = sp.dim.field else {
        return (vec![sp], true);
    };
    let end = off + u32::from(len);
    // The segments the word covers, in order (the last may run past its end).
    let mine: Vec<(u32, u32)> = segs
        .iter()
        .filter(|g| g.0 == base && g.1 < end && g.2 > off)
        .map(|g| (g.1, g.2))
        .collect();
    if mine.first().is_none_or(|g| g.0 != off) {
        return (vec![sp], true);
    }
    let seg_field = |(gs, ge): (u32, u32)| Field::Payload {
        base,
        off: gs,
        len: (ge - gs) as u8,
    };
    // Bits of `v` (the word's natural value) that fall on part `gs..ge`, as a number of that
    // part's bytes within the word.
    let part = |v: u32, gs: u32, ge: u32| {
        let ge = ge.min(end);
        (v >> (8 * (end - ge))) & ones(8 * (ge - gs))
    };
    if let [g] = mine[..] {
        if g == (off, end) {
            return (vec![sp], true);
        }
        // The top bytes of a longer segment.
        let field = seg_field(g);
        let r = 8 * (g.1 - end);
        let span = if sp.dim.mask == sp.dim.max() {
            Span {
                dim: Dim::raw(field),
                lo: sp.lo << r,
                hi: (sp.hi << r) | ones(r),
            }
        } else {
            Span {
                dim: Dim {
                    field,
                    mask: sp.dim.mask << r,
                },
                lo: sp.lo << r,
                hi: sp.hi << r,
            }
        };
        return (vec![span], true);
    }
    if sp.dim.mask != sp.dim.max() {
        // A mask on one part only (and the bounds nowhere else): a masked dimension of that
        // segment; else the test is left out.
        let hit: Vec<(u32, u32)> = mine
            .iter()
            .copied()
            .filter(|&(gs, ge)| part(sp.dim.mask, gs, ge) != 0)
            .collect();
        if let [(gs, ge)] = hit[..] {
            let inside = |v: u32| part(v, gs, ge) << (8 * (end - ge.min(end)));
            if inside(sp.lo) == sp.lo && inside(sp.hi) == sp.hi {
                let r = 8 * (ge - ge.min(end));
                return (
                    vec![Span {
                        dim: Dim {
                            field: seg_field((gs, ge)),
                            mask: part(sp.dim.mask, gs, ge) << r,
                        },
                        lo: part(sp.lo, gs, ge) << r,
                        hi: part(sp.hi, gs, ge) << r,
                    }],
                    true,
                );
            }
        }
        return (Vec::new(), false);
    }
    // Raw: parts before the first that differs are points, that one an interval; exact when
    // every later part spans its whole domain.
    let mut out = Vec::new();
    let mut exact = true;
    let mut free = false;
    for &(gs, ge) in &mine {
        let (a, b) = (part(sp.lo, gs, ge), part(sp.hi, gs, ge));
        if free {
            exact &= a == 0 && b == ones(8 * (ge.min(end) - gs));
            continue;
        }
        let r = 8 * (ge - ge.min(end));
        out.push(Span {
            dim: Dim::raw(seg_field((gs, ge))),
            lo: a << r,
            hi: (b << r) | ones(r),
        });
        free = a != b;
    }
    (out, exact)
}

/// Whether a word of a load is inside `dim`'s field (a key holding `dim` has it present).
pub fn holds(dim: &Dim, f: &Field) -> bool {
    match (dim.field, *f) {
        (
            Field::Payload { base, off, len },
            Field::Payload {
                base: b2,
                off: o2,
                len: l2,
            },
        ) => base == b2 && off <= o2 && o2 + u32::from(l2) <= off + u32::from(len),
        (a, b) => a == b,
    }
}

/// The dimensions (bit `d` for `dims[d]`) whose fields together hold every byte of a load's
/// word `f`, if they do: with all of them present, so is `f`.
pub fn needs(dims: &[Dim], f: &Field) -> Option<u32> {
    let Field::Payload { base, off, len } = *f else {
        return dims.iter().position(|d| d.field == *f).map(|d| 1u32 << d);
    };
    let end = off + u32::from(len);
    let mut mask = 0u32;
    let mut covered = 0u32; // bytes of `f` covered, as a bit set
    for (d, dim) in dims.iter().enumerate() {
        if let Field::Payload {
            base: b2,
            off: o2,
            len: l2,
        } = dim.field
            && b2 == base
            && o2 < end
            && o2 + u32::from(l2) > off
        {
            mask |= 1 << d;
            for byte in o2.max(off)..(o2 + u32::from(l2)).min(end) {
                covered |= 1 << (byte - off);
            }
        }
    }
    (covered == ones(u32::from(len))).then_some(mask)
}

/// How a rule's tail ends, for the engines' fast path and the shadowing lint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    /// The tail is at most one counter and then at most one immediate verdict.
    pub simple: bool,
    /// The counter of a simple tail.
    pub counter: Option<u32>,
    /// The verdict of a simple tail (`Continue` when there is none).
    pub verdict: ChainVerdict,
    /// Reaching the tail always ends the chain's traversal (accept, drop, reject, queue,
    /// goto, return), whatever the tail does on the way: no instruction in it can break.
    pub terminal: bool,
    /// The rule may change a value a later rule's match reads (meta set, ct set, notrack), or
    /// run another chain that may (jump, verdict map).
    pub writes: bool,
}

/// Read a rule's tail (`insns[tail..]`).
pub fn tail(insns: &[Insn], tail: usize) -> Tail {
    let t = insns.get(tail..).unwrap_or(&[]);
    let head = insns.get(..tail).unwrap_or(&[]);
    let vmap = head.iter().any(|i| {
        matches!(
            i,
            Insn::Lookup {
                dest: LookupDest::Verdict,
                ..
            }
        )
    });
    let (simple, counter, verdict) = match t {
        [] => (!vmap, None, ChainVerdict::Continue),
        [Insn::Counter(c)] => (!vmap, Some(c.0), ChainVerdict::Continue),
        [Insn::ImmVerdict(v)] => (!vmap, None, *v),
        [Insn::Counter(c), Insn::ImmVerdict(v)] => (!vmap, Some(c.0), *v),
        _ => (false, None, ChainVerdict::Continue),
    };
    let mut terminal = !vmap;
    let mut ends = false;
    for i in t {
        match i {
            Insn::Counter(_)
            | Insn::Log(_)
            | Insn::MetaSet { .. }
            | Insn::CtSet { .. }
            | Insn::Notrack
            | Insn::Immediate { .. } => {}
            Insn::Reject { .. } | Insn::Queue { .. } => {
                ends = true;
                break;
            }
            Insn::ImmVerdict(v) => {
                ends = ends_chain(v);
                break;
            }
            _ => {
                terminal = false;
                break;
            }
        }
    }
    // Anything not known to leave the packet state alone counts as a write.
    let writes = vmap
        || !t.iter().all(|i| {
            matches!(
                i,
                Insn::Counter(_)
                    | Insn::Log(_)
                    | Insn::Limit(_)
                    | Insn::Immediate { .. }
                    | Insn::Payload { .. }
                    | Insn::Meta { .. }
                    | Insn::Ct { .. }
                    | Insn::Bitwise { .. }
                    | Insn::Byteorder { .. }
                    | Insn::Exthdr { .. }
                    | Insn::Cmp { .. }
                    | Insn::Range { .. }
                    | Insn::Objref { .. }
                    | Insn::Reject { .. }
                    | Insn::Queue { .. }
                    | Insn::Nat(_)
                    | Insn::PayloadWrite { .. }
                    | Insn::Lookup {
                        dest: LookupDest::None | LookupDest::Reg(_),
                        ..
                    }
            ) || matches!(i, Insn::ImmVerdict(v) if !matches!(v, ChainVerdict::Jump(_)))
        });
    Tail {
        simple,
        counter,
        verdict,
        terminal: terminal && ends,
        writes,
    }
}

/// Whether a verdict ends the traversal of the chain it is issued in.
pub fn ends_chain(v: &ChainVerdict) -> bool {
    !matches!(
        v,
        ChainVerdict::Continue | ChainVerdict::Break | ChainVerdict::Jump(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reg;
    use crate::insn::Data;

    fn shape(insns: Vec<Insn>) -> Shape {
        analyze(&Program::new(), &insns)
    }

    fn saddr() -> Field {
        Field::Payload {
            base: PayloadBase::Network,
            off: 12,
            len: 4,
        }
    }

    #[test]
    fn prefix_becomes_an_interval() {
        let s = shape(vec![
            Insn::payload(PayloadBase::Network, 12, 4, Reg(0)),
            Insn::Bitwise {
                sreg: Reg(0),
                dreg: Reg(0),
                len: 4,
                op: BitwiseOp::mask_xor(Data::be32(0xff00_0000), Data::be32(0)),
            },
            Insn::cmp_eq(Reg(0), Data::be32(0x0a00_0000)),
            Insn::ImmVerdict(ChainVerdict::Accept),
        ]);
        assert!(s.exact);
        assert_eq!(s.tail, 3);
        assert_eq!(
            s.cubes,
            vec![vec![Span {
                dim: Dim::raw(saddr()),
                lo: 0x0a00_0000,
                hi: 0x0aff_ffff
            }]]
        );
    }

    #[test]
    fn neq_is_two_intervals_and_range_one() {
        let port = Field::Payload {
            base: PayloadBase::Transport,
            off: 2,
            len: 2,
        };
        let s = shape(vec![
            Insn::payload(PayloadBase::Transport, 2, 2, Reg(1)),
            Insn::Cmp {
                op: CmpOp::Neq,
                sreg: Reg(1),
                data: Data::be16(22),
            },
            Insn::range(RangeOp::Eq, Reg(1), Data::be16(10), Data::be16(100)),
        ]);
        assert!(s.exact);
        let d = Dim::raw(port);
        assert_eq!(
            s.cubes,
            vec![
                vec![Span {
                    dim: d,
                    lo: 10,
                    hi: 21
                }],
                vec![Span {
                    dim: d,
                    lo: 23,
                    hi: 100
                }]
            ]
        );
    }

    #[test]
    fn odd_masks_are_dimensions_and_effects_end_the_head() {
        let flags = Field::Payload {
            base: PayloadBase::Transport,
            off: 13,
            len: 1,
        };
        let s = shape(vec![
            Insn::Counter(crate::CounterId(0)),
            Insn::payload(PayloadBase::Transport, 13, 1, Reg(0)),
        ]);
        assert_eq!((s.tail, s.cubes.clone()), (0, vec![Cube::new()]));
        let s = shape(vec![
            Insn::payload(PayloadBase::Transport, 13, 1, Reg(0)),
            Insn::Bitwise {
                sreg: Reg(0),
                dreg: Reg(0),
                len: 1,
                op: BitwiseOp::mask_xor(Data::u8(0x12), Data::u8(0)),
            },
            Insn::cmp_eq(Reg(0), Data::u8(0x02)),
        ]);
        assert_eq!(
            s.cubes,
            vec![vec![Span {
                dim: Dim {
                    field: flags,
                    mask: 0x12
                },
                lo: 2,
                hi: 2
            }]]
        );
    }

    #[test]
    fn inverted_lookup_of_an_unknown_key_is_not_never() {
        // A concatenated-range set looked up with a key that is no packet field (here a
        // constant): each element's cube is a superset (everything), so inverting it must
        // leave the rule unknown, not impossible.
        use crate::program::{ElemData, Set, SetDataType, SetKind};
        let mut prog = Program::new();
        let mut set = Set::new(
            "s",
            8,
            SetDataType::None,
            SetKind::ConcatInterval {
                field_lens: vec![4, 4],
            },
        );
        set.insert_range(
            &[0x80, 0x0a, 0, 0, 0, 0, 0, 0],
            &[0x82, 0, 0, 0, 0, 0, 0, 0],
            ElemData::None,
        );
        let set = prog.add_set(set);
        let s = analyze(
            &prog,
            &[
                Insn::Immediate {
                    dreg: Reg(1),
                    data: Data::new(&[0x80, 0x01, 0xff, 0x11, 0x01, 0xff, 0, 0x02]).unwrap(),
                },
                Insn::Lookup {
                    sreg: Reg(1),
                    set,
                    dest: LookupDest::None,
                    invert: true,
                },
                Insn::Notrack,
            ],
        );
        assert!(!s.exact);
        assert_eq!((s.tail, s.cubes.clone()), (2, vec![Cube::new()]));
    }

    #[test]
    fn impossible_tests_leave_no_cube() {
        let s = shape(vec![
            Insn::payload(PayloadBase::Transport, 2, 2, Reg(1)),
            Insn::range(RangeOp::Eq, Reg(1), Data::be16(100), Data::be16(10)),
        ]);
        assert!(s.exact && s.cubes.is_empty());
    }
}
