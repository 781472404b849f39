//! `Program`: chains, rules, instructions, sets/maps, counters and limits — the unverified,
//! freely constructible form of nfc's executable IR. `Program::verify` (in `verify.rs`) turns it
//! into a `VerifiedProgram`, the only thing the interpreter runs.
//!
//! Construction API: `Program::new()`, `add_base_chain` / `add_chain`, `add_rule` (or
//! `add_rule_spanned` with one source span per instruction), `add_set` + `Set::insert*`,
//! `add_counter`, `add_limit`.

use crate::ids::{ChainId, CounterId, InsnIdx, LimitId, RuleId, SetId};
use crate::insn::{Data, Insn, LimitSpec};
use crate::verdict::{ChainVerdict, Hook};
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// Base chain policy (`policy accept|drop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

/// Base or user chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainKind {
    /// Registered at a hook with a priority and a policy.
    Base {
        hook: Hook,
        priority: i32,
        policy: Policy,
    },
    /// Reached only by jump/goto.
    User,
}

/// A chain: a name and its rules in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub kind: ChainKind,
    pub rules: Vec<RuleId>,
}

/// A rule: a contiguous run of instructions in `Program::insns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub chain: ChainId,
    /// First instruction.
    pub start: InsnIdx,
    /// One past the last instruction.
    pub end: InsnIdx,
    /// nft rule handle, as `nft -a` shows it (opaque to the VM; in traces).
    pub handle: u64,
    /// Source span of the whole rule, if known.
    pub span: Option<(u32, u32)>,
}

/// The kind of stateful object an object map holds (`set->objtype`, `NFT_OBJECT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjType {
    /// `NFT_OBJECT_COUNTER` (1).
    Counter,
    /// `NFT_OBJECT_CT_HELPER` (3).
    CtHelper,
}

impl ObjType {
    /// The uapi number (`NFT_OBJECT_*`).
    pub fn uapi(self) -> u32 {
        match self {
            ObjType::Counter => 1,
            ObjType::CtHelper => 3,
        }
    }
}

/// The stateful object an object-map element names (`nft_set_ext_obj`), resolved by the
/// compiler: what `nft_objref_map_eval` evaluates on a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Obj {
    /// A named counter: add the packet to this counter (`nft_counter_obj_eval`).
    Counter(CounterId),
    /// A `ct helper` object: its helper type name, NUL-padded to 16 bytes, recorded in
    /// `Effects::ct_helper` (`nft_ct_helper_obj_eval`; the runtime attaches it).
    CtHelper([u8; 16]),
}

impl Obj {
    /// The object's kind.
    pub fn ty(&self) -> ObjType {
        match self {
            Obj::Counter(_) => ObjType::Counter,
            Obj::CtHelper(_) => ObjType::CtHelper,
        }
    }
}

/// What a set element maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemData {
    /// Plain set (no data).
    None,
    /// Map to data (`dlen` bytes).
    Data(Data),
    /// Verdict map.
    Verdict(ChainVerdict),
    /// Object map (`NFT_SET_OBJECT`): the object this element names.
    Object(Obj),
}

/// Element data type of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetDataType {
    /// Plain set.
    None,
    /// Map to data of this many bytes.
    Data(u8),
    /// Verdict map.
    Verdict,
    /// Object map of this object type (read only by `Insn::Objref`).
    Object(ObjType),
}

/// Lookup structure of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetKind {
    /// Exact match on the whole key (hashbrown).
    Hash,
    /// Single-field intervals (sorted, binary search), like nft's rbtree.
    Interval,
    /// Concatenated ranges (`field_lens` bytes each, padded to 4 in the key), like pipapo;
    /// first matching element in insertion order.
    ConcatInterval { field_lens: Vec<u8> },
}

/// One interval element: inclusive `from..=to` over the whole key (memcmp order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntervalElem<'a> {
    pub from: &'a [u8],
    pub to: &'a [u8],
    pub data: &'a ElemData,
}

/// The data of every element of a plain set.
const NO_DATA: &ElemData = &ElemData::None;

/// A set or map owned by the Program. Elements are fixed-width rows in one flat byte array (a hash
/// set's key, an interval's `from` then `to`) with their data in a parallel array (empty for
/// plain sets): no allocation per element.
#[derive(Clone, Debug)]
pub struct Set {
    /// Name as printed (`__set%d`, `__map%d`, or the user's name).
    pub name: String,
    /// nft set flags printed in the header (`NFT_SET_*`), opaque to the VM.
    pub flags: u32,
    /// Declared `size` printed in the header, if any; opaque to the VM.
    pub size: Option<u32>,
    /// Key length in bytes (concatenations: each field padded to 4 bytes).
    pub key_len: u8,
    pub data_type: SetDataType,
    pub kind: SetKind,
    /// Element rows: `key_len` bytes (hash sets, insertion order) or `2 * key_len` (intervals:
    /// `from` then `to`; sorted by `from` for `SetKind::Interval`, insertion order for concatenations).
    rows: Vec<u8>,
    /// Element data parallel to the rows; empty when every element's is `ElemData::None`.
    data: Vec<ElemData>,
    /// Hash sets: row numbers by key.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Some key given to `insert*` was not `key_len` bytes long (its row is cut or zero-padded;
    /// `verify` refuses the set).
    pub(crate) bad_key_len: bool,
    /// The catch-all element (`*`), if any.
    pub catchall: Option<ElemData>,
    /// A set the packet path updates (the target of an `Insn::Dynset`, a hash set without data):
    /// its elements at run time live in `State::dynsets`, starting from the ones here.
    pub dynamic: Option<crate::dynset::DynSpec>,
}

impl PartialEq for Set {
    fn eq(&self, o: &Set) -> bool {
        (
            &self.name,
            self.flags,
            self.size,
            self.key_len,
            self.data_type,
            &self.kind,
        ) == (&o.name, o.flags, o.size, o.key_len, o.data_type, &o.kind)
            && (self.catchall, self.bad_key_len, self.dynamic)
                == (o.catchall, o.bad_key_len, o.dynamic)
            && self.rows == o.rows
            && (0..self.len()).all(|i| self.data_at(i) == o.data_at(i))
    }
}

impl Eq for Set {}

impl Set {
    /// An empty set.
    pub fn new(name: &str, key_len: u8, data_type: SetDataType, kind: SetKind) -> Set {
        Set {
            name: name.to_string(),
            flags: 0,
            size: None,
            key_len,
            data_type,
            kind,
            rows: Vec::new(),
            data: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            bad_key_len: false,
            catchall: None,
            dynamic: None,
        }
    }

    /// Bytes of one element row.
    fn row_len(&self) -> usize {
        let k = usize::from(self.key_len);
        if matches!(self.kind, SetKind::Hash) {
            k
        } else {
            2 * k
        }
    }

    fn row(&self, i: usize) -> &[u8] {
        let n = self.row_len();
        self.rows.get(i * n..(i + 1) * n).unwrap_or(&[])
    }

    fn data_at(&self, i: usize) -> &ElemData {
        self.data.get(i).unwrap_or(NO_DATA)
    }

    /// Stores `data` for element `i` (the last row, or an inserted one when `insert_at`).
    fn put_data(&mut self, i: usize, data: ElemData, insert_at: bool) {
        if self.data.is_empty() && data == ElemData::None {
            return;
        }
        if self.data.len() + usize::from(insert_at) < self.len() {
            self.data
                .resize(self.len() - usize::from(insert_at), ElemData::None);
        }
        if insert_at {
            self.data.insert(i, data);
        } else if let Some(d) = self.data.get_mut(i) {
            *d = data;
        } else {
            self.data.push(data);
        }
    }

    /// Add an exact element (hash sets; for interval sets it becomes `key..=key`).
    pub fn insert(&mut self, key: &[u8], data: ElemData) {
        match self.kind {
            SetKind::Hash => {
                let klen = usize::from(self.key_len);
                self.bad_key_len |= key.len() != klen;
                let mut k = key.to_vec();
                k.resize(klen, 0);
                let h = self.hasher.hash_one(&k[..]);
                let (rows, hasher) = (&self.rows, &self.hasher);
                let found = self
                    .index
                    .find(h, |&i| {
                        rows.get(i as usize * klen..(i as usize + 1) * klen) == Some(&k[..])
                    })
                    .copied();
                match found {
                    Some(i) => self.put_data(i as usize, data, false),
                    None => {
                        let i = self.len();
                        self.index.insert_unique(h, i as u32, |&j| {
                            hasher.hash_one(
                                rows.get(j as usize * klen..(j as usize + 1) * klen)
                                    .unwrap_or(&[]),
                            )
                        });
                        self.rows.extend_from_slice(&k);
                        self.put_data(i, data, false);
                    }
                }
            }
            _ => self.insert_range(key, key, data),
        }
    }

    /// Add an inclusive range element (interval sets). For hash sets, `from` is inserted.
    pub fn insert_range(&mut self, from: &[u8], to: &[u8], data: ElemData) {
        let klen = usize::from(self.key_len);
        self.bad_key_len |= from.len() != klen || to.len() != klen;
        let mut row = Vec::with_capacity(2 * klen);
        row.extend(from.iter().copied().chain(std::iter::repeat(0)).take(klen));
        row.extend(to.iter().copied().chain(std::iter::repeat(0)).take(klen));
        match self.kind {
            SetKind::Hash => self.insert(from, data),
            SetKind::Interval => {
                let pos = self.partition(|f| f < &row[..klen]);
                if pos == self.len() {
                    self.rows.extend_from_slice(&row);
                    self.put_data(pos, data, false);
                } else {
                    let at = pos * 2 * klen;
                    self.rows.splice(at..at, row);
                    self.put_data(pos, data, true);
                }
            }
            SetKind::ConcatInterval { .. } => {
                let i = self.len();
                self.rows.extend_from_slice(&row);
                self.put_data(i, data, false);
            }
        }
    }

    /// The first interval whose `from` fails `pred` (intervals sorted by `from`).
    fn partition(&self, pred: impl Fn(&[u8]) -> bool) -> usize {
        let klen = usize::from(self.key_len);
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let from = self.row(mid).get(..klen).unwrap_or(&[]);
            if pred(from) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Add a prefix element `addr/plen` as the range of all keys sharing its first `plen` bits
    /// (interval sets; `addr.len()` must be the key length). `plen` beyond the key is clamped.
    pub fn insert_prefix(&mut self, addr: &[u8], plen: u32, data: ElemData) {
        let mut from = addr.to_vec();
        let mut to = addr.to_vec();
        for (i, (f, t)) in from.iter_mut().zip(to.iter_mut()).enumerate() {
            let bit0 = i as u32 * 8;
            let keep = plen.saturating_sub(bit0).min(8);
            let mask = if keep == 0 { 0u8 } else { 0xffu8 << (8 - keep) };
            *f &= mask;
            *t = (*t & mask) | !mask;
        }
        self.insert_range(&from, &to, data);
    }

    /// Number of elements (without the catch-all).
    pub fn len(&self) -> usize {
        self.rows.len().checked_div(self.row_len()).unwrap_or(0)
    }

    /// True without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.catchall.is_none()
    }

    /// Heap bytes the elements take (rows, data and index), for memory accounting.
    pub fn elem_bytes(&self) -> usize {
        self.rows.capacity()
            + self.data.capacity() * size_of::<ElemData>()
            + self.index.capacity() * (size_of::<u32>() + 1)
    }

    /// Hash elements in insertion order.
    pub fn hash_elems(&self) -> impl Iterator<Item = (&[u8], &ElemData)> {
        let n = if matches!(self.kind, SetKind::Hash) {
            self.len()
        } else {
            0
        };
        (0..n).map(|i| (self.row(i), self.data_at(i)))
    }

    /// Interval element `i` (sorted by `from` for `SetKind::Interval`).
    pub fn interval_elem(&self, i: usize) -> Option<IntervalElem<'_>> {
        if matches!(self.kind, SetKind::Hash) || i >= self.len() {
            return None;
        }
        let (from, to) = self.row(i).split_at(usize::from(self.key_len));
        Some(IntervalElem {
            from,
            to,
            data: self.data_at(i),
        })
    }

    /// Interval elements.
    pub fn interval_elems(&self) -> impl ExactSizeIterator<Item = IntervalElem<'_>> + Clone {
        let n = if matches!(self.kind, SetKind::Hash) {
            0
        } else {
            self.len()
        };
        (0..n).map(|i| {
            let (from, to) = self.row(i).split_at(usize::from(self.key_len));
            IntervalElem {
                from,
                to,
                data: self.data_at(i),
            }
        })
    }

    /// Look a key up (`key.len() == key_len`). Returns the element data, or the catch-all.
    pub fn lookup(&self, key: &[u8]) -> Option<&ElemData> {
        let found = match &self.kind {
            SetKind::Hash => {
                let klen = usize::from(self.key_len);
                let rows = &self.rows;
                self.index
                    .find(self.hasher.hash_one(key), |&i| {
                        rows.get(i as usize * klen..(i as usize + 1) * klen) == Some(key)
                    })
                    .map(|&i| self.data_at(i as usize))
            }
            SetKind::Interval => {
                let pos = self.partition(|f| f <= key);
                pos.checked_sub(1)
                    .and_then(|i| self.interval_elem(i))
                    .filter(|e| key <= e.to)
                    .map(|e| e.data)
            }
            SetKind::ConcatInterval { field_lens } => self
                .interval_elems()
                .find(|e| concat_in_range(field_lens, key, e.from, e.to))
                .map(|e| e.data),
        };
        found.or(self.catchall.as_ref())
    }
}

/// Each field (padded to 4 bytes in the key) must lie within its own `from..=to`.
fn concat_in_range(field_lens: &[u8], key: &[u8], from: &[u8], to: &[u8]) -> bool {
    let mut off = 0usize;
    for &fl in field_lens {
        let fl = usize::from(fl);
        let end = off + fl;
        let (Some(k), Some(f), Some(t)) = (key.get(off..end), from.get(off..end), to.get(off..end))
        else {
            return false;
        };
        if k < f || k > t {
            return false;
        }
        off += fl.div_ceil(4) * 4;
    }
    true
}

/// Packet and byte counter (`nft_counter`); `repr(C)` so native code can update it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The unverified program.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
    pub insns: Vec<Insn>,
    /// Debug table: source span per instruction (parallel to `insns`).
    pub spans: Vec<Option<(u32, u32)>>,
    pub sets: Vec<Set>,
    /// Initial counter values (printed by `[ counter pkts P bytes B ]`).
    pub counters: Vec<Counter>,
    pub limits: Vec<LimitSpec>,
    /// Lookup structures over runs of rules (`Program::classify`; checked by `verify`).
    pub classifiers: Vec<crate::classify::Classifier>,
}

impl Program {
    /// An empty program.
    pub fn new() -> Program {
        Program::default()
    }

    /// Add a base chain.
    pub fn add_base_chain(
        &mut self,
        name: &str,
        hook: Hook,
        priority: i32,
        policy: Policy,
    ) -> ChainId {
        self.push_chain(
            name,
            ChainKind::Base {
                hook,
                priority,
                policy,
            },
        )
    }

    /// Add a user (non-base) chain.
    pub fn add_chain(&mut self, name: &str) -> ChainId {
        self.push_chain(name, ChainKind::User)
    }

    fn push_chain(&mut self, name: &str, kind: ChainKind) -> ChainId {
        self.chains.push(Chain {
            name: name.to_string(),
            kind,
            rules: Vec::new(),
        });
        ChainId(self.chains.len() as u32 - 1)
    }

    /// Append a rule to `chain` (the chain id is checked by `verify`, not here: an unknown
    /// chain makes verification fail).
    pub fn add_rule(&mut self, chain: ChainId, insns: Vec<Insn>) -> RuleId {
        let n = insns.len();
        self.add_rule_spanned(chain, insns, vec![None; n], None)
    }

    /// Append a rule with per-instruction source spans and a rule span.
    pub fn add_rule_spanned(
        &mut self,
        chain: ChainId,
        insns: Vec<Insn>,
        mut spans: Vec<Option<(u32, u32)>>,
        rule_span: Option<(u32, u32)>,
    ) -> RuleId {
        spans.resize(insns.len(), None);
        let start = InsnIdx(self.insns.len() as u32);
        self.insns.extend(insns);
        self.spans.extend(spans);
        let end = InsnIdx(self.insns.len() as u32);
        let id = RuleId(self.rules.len() as u32);
        self.rules.push(Rule {
            chain,
            start,
            end,
            handle: u64::from(id.0) + 1,
            span: rule_span,
        });
        if let Some(c) = self.chains.get_mut(chain.0 as usize) {
            c.rules.push(id);
        }
        id
    }

    /// Add a set or map.
    pub fn add_set(&mut self, set: Set) -> SetId {
        self.sets.push(set);
        SetId(self.sets.len() as u32 - 1)
    }

    /// Add a counter (initially zero).
    pub fn add_counter(&mut self) -> CounterId {
        self.counters.push(Counter::default());
        CounterId(self.counters.len() as u32 - 1)
    }

    /// Add a token bucket.
    pub fn add_limit(&mut self, spec: LimitSpec) -> LimitId {
        self.limits.push(spec);
        LimitId(self.limits.len() as u32 - 1)
    }

    /// The instructions of a rule.
    pub fn rule_insns(&self, rule: RuleId) -> &[Insn] {
        self.rules
            .get(rule.0 as usize)
            .and_then(|r| self.insns.get(r.start.0 as usize..r.end.0 as usize))
            .unwrap_or(&[])
    }

    /// Source span of an instruction (debug table).
    pub fn span(&self, insn: InsnIdx) -> Option<(u32, u32)> {
        self.spans.get(insn.0 as usize).copied().flatten()
    }

    /// Find a chain by name.
    pub fn chain_by_name(&self, name: &str) -> Option<ChainId> {
        self.chains
            .iter()
            .position(|c| c.name == name)
            .map(|i| ChainId(i as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_elements_cover_exactly_the_prefix() {
        let mut s = Set::new("p", 4, SetDataType::None, SetKind::Interval);
        s.insert_prefix(&[10, 1, 2, 3], 16, ElemData::None);
        s.insert_prefix(&[192, 168, 1, 77], 27, ElemData::None);
        s.insert_prefix(&[8, 8, 8, 8], 32, ElemData::None);
        let e: Vec<_> = s.interval_elems().collect();
        assert_eq!(
            (e[1].from, e[1].to),
            (&[10u8, 1, 0, 0][..], &[10u8, 1, 255, 255][..])
        );
        assert_eq!(
            (e[2].from, e[2].to),
            (&[192u8, 168, 1, 64][..], &[192u8, 168, 1, 95][..])
        );
        assert!(s.lookup(&[10, 1, 200, 1]).is_some());
        assert!(s.lookup(&[10, 2, 0, 0]).is_none());
        assert!(s.lookup(&[192, 168, 1, 95]).is_some());
        assert!(s.lookup(&[192, 168, 1, 96]).is_none());
        assert!(s.lookup(&[8, 8, 8, 8]).is_some());
        assert!(s.lookup(&[8, 8, 8, 9]).is_none());
        let mut all = Set::new("a", 4, SetDataType::None, SetKind::Interval);
        all.insert_prefix(&[1, 2, 3, 4], 0, ElemData::None);
        assert!(all.lookup(&[255, 255, 255, 255]).is_some() && all.lookup(&[0, 0, 0, 0]).is_some());
    }
}
