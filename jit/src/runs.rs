//! Rule-run classifiers: runs of consecutive *table-shaped* rules become one native loop over
//! a constant row table instead of unrolled code per rule, so code size (and Cranelift's
//! compile time) grows with the number of runs, not the number of rules.
//!
//! A rule is table-shaped when it is: tests on single-word fields (a payload load of 1–4
//! bytes or a one-word meta key, optionally `bitwise` mask/xor, then `cmp`/`range` on at most
//! those bytes), then at most one counter, then at most one verdict (or none: the next rule
//! follows). Each test becomes `((field & mask) - lo) <= d` (wrapping u32 in the JIT's
//! big-endian word domain, see `codegen`), negated for `!=`; a rule *requires* every field it
//! loads (out of bounds or missing = NFT_BREAK, exactly as unrolled). Tests have no side
//! effects and all come before the counter, so a rule matches iff every required field is
//! present and every test passes: the same first-match result, counters and verdicts as the
//! interpreter, whatever order the loop evaluates tests in.
//!
//! A run has up to [`MAX_FIELDS`] fields and [`MAX_SLOTS`] test slots (a `(field, negated)`
//! pair; a rule testing one field twice uses two slots). Table layout per run, `u32` words:
//!
//! * column A (when the run has a slot): `n` rows of `[mask, lo, d]` for the [`PIVOTS`]
//!   *pivot* slots, the most selective ones (`pass_probability`) — scanned first with one
//!   well-predicted branch per row, densely packed;
//! * rows B: `n` rows of `[req, (mask, lo, d) per other slot, counter + 1 (0 = none), code,
//!   jump chain]`, where `req` has bit `j` set when the rule requires field `j`, and bit 31
//!   when the rule can never match (e.g. `range 5-3`); `code` is the partition return code
//!   (`env::verdict_code`; `C_CONTINUE` when the rule has no verdict, continue or break).
//!
//! Unused slots hold an always-passing test (`mask 0, lo 0, d MAX`, negated: `mask 0, lo 1,
//! d 0`).

use crate::env::{self, verdict_code};
use nfr_vm::insn::{BitwiseOp, CmpOp, Insn, MetaKey, PayloadBase, RangeOp};
use nfr_vm::{ChainId, ChainVerdict, VerifiedProgram};
use std::collections::HashMap;

/// Most fields a run loads.
pub(crate) const MAX_FIELDS: usize = 8;
/// Most test slots a run has.
pub(crate) const MAX_SLOTS: usize = 8;
/// Most slots in column A (tested first, branch-free, before one branch).
pub(crate) const PIVOTS: usize = 1;
/// `req` bit of a rule that can never match.
pub(crate) const NEVER: u32 = 1 << 31;

/// A single-word value a table-shaped rule loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    /// `len` (1..=4) bytes at `base + off`.
    Payload {
        base: PayloadBase,
        off: u32,
        len: u8,
    },
    /// A meta key of at most 4 bytes.
    Meta(MetaKey),
}

/// One test of a rule: `((field & mask) - lo) <= d`, negated when `neq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Test {
    field: Field,
    neq: bool,
    mask: u32,
    lo: u32,
    d: u32,
}

/// A table-shaped rule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    req: Vec<Field>,
    tests: Vec<Test>,
    never: bool,
    counter: Option<u32>,
    code: u32,
    chain: u32,
}

/// Mask keeping the first `len` bytes (1..=4) of a domain word.
fn top_mask(len: usize) -> u32 {
    if len >= 4 {
        u32::MAX
    } else {
        !(u32::MAX >> (8 * len))
    }
}

/// First word of constant data in the register domain (zero-padded big-endian number).
fn word(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_be_bytes(w)
}

/// Meta keys whose value the loop can load (one word).
pub(crate) fn meta_ok(key: MetaKey) -> bool {
    key.size() <= 4
}

/// A register's content: `((field & mask) ^ xor)`, meaningful in its first `len` bytes.
#[derive(Clone, Copy)]
struct RegVal {
    field: Field,
    mask: u32,
    xor: u32,
    len: usize,
}

/// Is this rule table-shaped? Its row if so.
fn classify(insns: &[Insn]) -> Option<Row> {
    let mut regs: [Option<RegVal>; 16] = [None; 16];
    let mut row = Row {
        req: Vec::new(),
        tests: Vec::new(),
        never: false,
        counter: None,
        code: env::C_CONTINUE,
        chain: 0,
    };
    let mut tail = false; // a counter was seen: only a verdict may follow
    let mut done = false; // a verdict was seen: nothing may follow
    let require = |row: &mut Row, f: Field| {
        if !row.req.contains(&f) {
            row.req.push(f);
        }
    };
    for insn in insns {
        if done {
            return None;
        }
        match insn {
            Insn::Payload {
                base,
                offset,
                len,
                dreg,
            } if !tail && (1..=4).contains(len) => {
                let f = Field::Payload {
                    base: *base,
                    off: *offset,
                    len: *len,
                };
                require(&mut row, f);
                *regs.get_mut(usize::from(dreg.0))? = Some(RegVal {
                    field: f,
                    mask: top_mask(usize::from(*len)),
                    xor: 0,
                    len: usize::from(*len),
                });
            }
            Insn::Meta { key, dreg } if !tail && meta_ok(*key) => {
                let f = Field::Meta(*key);
                require(&mut row, f);
                *regs.get_mut(usize::from(dreg.0))? = Some(RegVal {
                    field: f,
                    mask: top_mask(key.size()),
                    xor: 0,
                    len: key.size(),
                });
            }
            Insn::Bitwise {
                sreg,
                dreg,
                len,
                op: BitwiseOp::MaskXor { mask, xor },
            } if !tail => {
                let r = (*regs.get(usize::from(sreg.0))?)?;
                if usize::from(*len) != r.len {
                    return None;
                }
                let (m, x) = (word(mask.bytes()), word(xor.bytes()));
                *regs.get_mut(usize::from(dreg.0))? = Some(RegVal {
                    field: r.field,
                    mask: r.mask & m,
                    xor: (r.xor & m) ^ x,
                    len: r.len,
                });
            }
            Insn::Cmp { op, sreg, data } if !tail => {
                let r = (*regs.get(usize::from(sreg.0))?)?;
                if data.len() > r.len || data.is_empty() {
                    return None;
                }
                let tm = top_mask(data.len());
                let (mask, x, c) = (r.mask & tm, r.xor & tm, word(data.bytes()));
                let (neq, lo, hi) = match op {
                    CmpOp::Eq => (false, c ^ x, c ^ x),
                    CmpOp::Neq => (true, c ^ x, c ^ x),
                    _ if x != 0 => return None,
                    CmpOp::Lt if c == 0 => {
                        row.never = true;
                        continue;
                    }
                    CmpOp::Lt => (false, 0, c - 1),
                    CmpOp::Lte => (false, 0, c),
                    CmpOp::Gt if c == u32::MAX => {
                        row.never = true;
                        continue;
                    }
                    CmpOp::Gt => (false, c + 1, u32::MAX),
                    CmpOp::Gte => (false, c, u32::MAX),
                };
                row.tests.push(Test {
                    field: r.field,
                    neq,
                    mask,
                    lo,
                    d: hi - lo,
                });
            }
            Insn::Range { op, sreg, from, to } if !tail => {
                let r = (*regs.get(usize::from(sreg.0))?)?;
                if from.len() > r.len || from.is_empty() || to.len() != from.len() {
                    return None;
                }
                let tm = top_mask(from.len());
                if r.xor & tm != 0 {
                    return None;
                }
                let (f, t) = (word(from.bytes()), word(to.bytes()));
                let neq = *op == RangeOp::Neq;
                if f > t {
                    // Nothing is inside: `==` never matches, `!=` always does.
                    row.never |= !neq;
                    continue;
                }
                row.tests.push(Test {
                    field: r.field,
                    neq,
                    mask: r.mask & tm,
                    lo: f,
                    d: t - f,
                });
            }
            Insn::Counter(c) if row.counter.is_none() => {
                row.counter = Some(c.0);
                tail = true;
            }
            Insn::ImmVerdict(v) => {
                verdict(&mut row, *v);
                done = true;
            }
            Insn::Queue { num, bypass, .. } => {
                verdict(
                    &mut row,
                    ChainVerdict::Queue {
                        num: *num,
                        bypass: *bypass,
                    },
                );
                done = true;
            }
            _ => return None,
        }
    }
    Some(row)
}

fn verdict(row: &mut Row, v: ChainVerdict) {
    let (code, chain) = verdict_code(v);
    row.code = if code == env::C_BREAK {
        // After the counter, break and continue both go on with the next rule.
        env::C_CONTINUE
    } else {
        code
    };
    row.chain = chain.unwrap_or(0);
}

/// Chance that a test passes for a uniformly random field value: the masked value has
/// `popcount(mask)` random bits in steps of `2^tz(mask)`; `[lo, lo + d]` holds about
/// `(d + 1) / 2^tz` of them (at least one).
fn pass_probability(t: &Test) -> f64 {
    let step = t.mask.trailing_zeros().min(31);
    let hits = ((u64::from(t.d) + 1) >> step).max(1) as f64;
    let p = (hits / 2f64.powi(t.mask.count_ones() as i32)).min(1.0);
    if t.neq { 1.0 - p } else { p }
}

/// A run of table-shaped rules `start..end` of `chain`, compiled as one loop.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub chain: u32,
    pub start: u32,
    pub end: u32,
    pub fields: Vec<Field>,
    /// Test slots: (index into `fields`, negated). The `pivots` live in column A.
    pub slots: Vec<(usize, bool)>,
    /// Slot indices tested first (column A, in this order).
    pub pivots: Vec<usize>,
    /// Word offsets into the table: column A and rows B.
    pub a_off: usize,
    pub b_off: usize,
    /// Words per B row: `1 + 3 * (other slots) + 3`.
    pub b_stride: usize,
}

impl Run {
    /// Number of rules (rows).
    pub fn len(&self) -> u32 {
        self.end - self.start
    }

    /// The non-pivot slots in B-row order.
    pub fn other_slots(&self) -> impl Iterator<Item = (usize, bool)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.pivots.contains(i))
            .map(|(_, s)| *s)
    }
}

/// Every run of a program and their row tables (one allocation, owned by the `JitProgram`
/// for as long as the code that reads it).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub runs: Vec<Run>,
    pub table: Box<[u32]>,
    by_start: HashMap<(u32, u32), usize>,
}

impl Plan {
    /// The run starting at rule `pos` of `chain`, if any.
    pub fn run_at(&self, chain: u32, pos: u32) -> Option<&Run> {
        self.by_start
            .get(&(chain, pos))
            .and_then(|&i| self.runs.get(i))
    }
}

/// A run being collected.
struct Acc {
    start: u32,
    fields: Vec<Field>,
    slots: Vec<(Field, bool)>,
    rows: Vec<(Row, Vec<usize>)>,
}

impl Acc {
    /// Add `row` if the run's fields and slots can take it; the slot of each of its tests.
    fn try_add(&mut self, row: &Row) -> bool {
        let mut fields = self.fields.clone();
        for f in row.req.iter().chain(row.tests.iter().map(|t| &t.field)) {
            if !fields.contains(f) {
                fields.push(*f);
            }
        }
        if fields.len() > MAX_FIELDS {
            return false;
        }
        let mut slots = self.slots.clone();
        let mut used = Vec::with_capacity(row.tests.len());
        for t in &row.tests {
            let s = (0..slots.len()).find(|&i| slots[i] == (t.field, t.neq) && !used.contains(&i));
            let s = match s {
                Some(s) => s,
                None => {
                    slots.push((t.field, t.neq));
                    slots.len() - 1
                }
            };
            used.push(s);
        }
        if slots.len() > MAX_SLOTS {
            return false;
        }
        self.fields = fields;
        self.slots = slots;
        self.rows.push((row.clone(), used));
        true
    }
}

/// Find the runs (of at least `min_run` rules; 0 disables) of every chain and lay out their
/// tables.
pub(crate) fn plan(prog: &VerifiedProgram, min_run: usize) -> Plan {
    let mut plan = Plan::default();
    if min_run == 0 {
        return plan;
    }
    let insns = &prog.program().insns;
    let mut table: Vec<u32> = Vec::new();
    let mut finish = |acc: Acc, chain: u32, plan: &mut Plan| {
        if acc.rows.len() < min_run {
            return;
        }
        let fix = |f: &Field| acc.fields.iter().position(|x| x == f).unwrap_or(0);
        let slots: Vec<(usize, bool)> = acc.slots.iter().map(|(f, n)| (fix(f), *n)).collect();
        // Pivots: the most selective slots (lowest mean pass probability over the rows,
        // taking field values as uniformly random), so that the one branch after them is
        // almost always "no match" and well predicted.
        let mut pass = vec![0f64; slots.len()];
        for (row, used) in &acc.rows {
            let mut p = vec![1f64; slots.len()];
            for (t, &s) in row.tests.iter().zip(used) {
                p[s] *= pass_probability(t);
            }
            for (acc, x) in pass.iter_mut().zip(p) {
                *acc += x;
            }
        }
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by(|&a, &b| pass[a].total_cmp(&pass[b]).then(a.cmp(&b)));
        order.truncate(PIVOTS);
        let pivots = order;
        let a_stride = 3 * pivots.len();
        let b_stride = 1 + 3 * (slots.len() - pivots.len()) + 3;
        let n = acc.rows.len();
        let a_off = table.len();
        let b_off = a_off + a_stride * n;
        table.resize(b_off + b_stride * n, 0);
        for (i, (row, used)) in acc.rows.iter().enumerate() {
            // Per slot: (mask, lo, d), always-pass by default.
            let mut t: Vec<[u32; 3]> = slots
                .iter()
                .map(|&(_, neq)| if neq { [0, 1, 0] } else { [0, 0, u32::MAX] })
                .collect();
            for (test, &s) in row.tests.iter().zip(used) {
                t[s] = [test.mask, test.lo, test.d];
            }
            let mut req = row.req.iter().fold(0u32, |m, f| m | (1 << fix(f)));
            if row.never {
                req |= NEVER;
            }
            for (k, &p) in pivots.iter().enumerate() {
                let at = a_off + a_stride * i + 3 * k;
                table[at..at + 3].copy_from_slice(&t[p]);
            }
            let b = &mut table[b_off + b_stride * i..b_off + b_stride * (i + 1)];
            b[0] = req;
            let mut k = 1;
            for (s, w) in t.iter().enumerate() {
                if !pivots.contains(&s) {
                    b[k..k + 3].copy_from_slice(w);
                    k += 3;
                }
            }
            b[k] = row.counter.map(|c| c + 1).unwrap_or(0);
            b[k + 1] = row.code;
            b[k + 2] = row.chain;
        }
        plan.by_start.insert((chain, acc.start), plan.runs.len());
        plan.runs.push(Run {
            chain,
            start: acc.start,
            end: acc.start + n as u32,
            fields: acc.fields,
            slots,
            pivots,
            a_off,
            b_off,
            b_stride,
        });
    };
    for c in 0..prog.program().chains.len() as u32 {
        let rules = prog.chain_rules(ChainId(c));
        let mut acc: Option<Acc> = None;
        for (pos, r) in rules.iter().enumerate() {
            let row = insns
                .get(r.start as usize..r.end as usize)
                .and_then(classify);
            let Some(row) = row else {
                if let Some(a) = acc.take() {
                    finish(a, c, &mut plan);
                }
                continue;
            };
            if let Some(a) = acc.as_mut()
                && a.try_add(&row)
            {
                continue;
            }
            if let Some(a) = acc.take() {
                finish(a, c, &mut plan);
            }
            let mut a = Acc {
                start: pos as u32,
                fields: Vec::new(),
                slots: Vec::new(),
                rows: Vec::new(),
            };
            if a.try_add(&row) {
                acc = Some(a);
            }
        }
        if let Some(a) = acc.take() {
            finish(a, c, &mut plan);
        }
    }
    plan.table = table.into_boxed_slice();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfr_vm::insn::Data;
    use nfr_vm::{CounterId, Reg};

    #[test]
    fn prefix_and_port_range_rule_is_one_row() {
        let v = vec![
            Insn::payload(PayloadBase::Network, 12, 4, Reg(1)),
            Insn::Bitwise {
                sreg: Reg(1),
                dreg: Reg(1),
                len: 4,
                op: BitwiseOp::MaskXor {
                    mask: Data::be32(0xffff_ff00),
                    xor: Data::be32(0),
                },
            },
            Insn::cmp_eq(Reg(1), Data::be32(0x0a00_0100)),
            Insn::payload(PayloadBase::Transport, 2, 2, Reg(2)),
            Insn::Range {
                op: RangeOp::Eq,
                sreg: Reg(2),
                from: Data::be16(1000),
                to: Data::be16(2000),
            },
            Insn::Counter(CounterId(7)),
            Insn::ImmVerdict(ChainVerdict::Drop),
        ];
        let row = classify(&v).expect("table-shaped");
        assert_eq!(row.req.len(), 2);
        assert_eq!(
            row.tests[0],
            Test {
                field: Field::Payload {
                    base: PayloadBase::Network,
                    off: 12,
                    len: 4
                },
                neq: false,
                mask: 0xffff_ff00,
                lo: 0x0a00_0100,
                d: 0
            }
        );
        assert_eq!(row.tests[1].lo, 1000 << 16);
        assert_eq!(row.tests[1].d, 1000 << 16);
        assert_eq!(row.tests[1].mask, 0xffff_0000);
        assert_eq!(row.counter, Some(7));
        assert_eq!(row.code, nfr_vm::verdict::NF_DROP);
    }

    #[test]
    fn statements_before_tests_or_other_insns_are_not_table_shaped() {
        let ctr_first = vec![
            Insn::Counter(CounterId(0)),
            Insn::payload(PayloadBase::Network, 9, 1, Reg(0)),
            Insn::cmp_eq(Reg(0), Data::u8(6)),
        ];
        assert!(classify(&ctr_first).is_none());
        let wide = vec![
            Insn::payload(PayloadBase::Network, 8, 8, Reg(0)),
            Insn::cmp_eq(Reg(0), Data::u8(6)),
        ];
        assert!(classify(&wide).is_none());
        let range_xor = vec![
            Insn::payload(PayloadBase::Network, 9, 1, Reg(0)),
            Insn::Bitwise {
                sreg: Reg(0),
                dreg: Reg(0),
                len: 1,
                op: BitwiseOp::MaskXor {
                    mask: Data::u8(0xff),
                    xor: Data::u8(1),
                },
            },
            Insn::Cmp {
                op: CmpOp::Lt,
                sreg: Reg(0),
                data: Data::u8(6),
            },
        ];
        assert!(classify(&range_xor).is_none());
    }

    #[test]
    fn impossible_tests_mark_the_row_never() {
        let v = vec![
            Insn::meta(MetaKey::Mark, Reg(0)),
            Insn::Cmp {
                op: CmpOp::Lt,
                sreg: Reg(0),
                data: Data::be32(0),
            },
        ];
        let row = classify(&v).expect("table-shaped");
        assert!(row.never);
        assert_eq!(row.req, vec![Field::Meta(MetaKey::Mark)]);
    }
}
