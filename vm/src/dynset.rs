//! The elements of a set the packet path updates (`nft_dynset`'s target): per set, fixed-width
//! key rows in one flat byte array (a map's data rows in another), a parallel array of expiry
//! times and a hashbrown `HashTable`
//! of row numbers, like `program::Set`'s hash sets, plus a free list so that rows of removed or
//! expired elements are reused: memory is bounded by the set's `size` and an element costs its key
//! bytes, 8 bytes of expiry and a table slot.
//!
//! The kernel's semantics (`nft_dynset_eval`, `nft_rhash_update`, `nft_set_elem_expired`):
//! - an element expires at `added + timeout` and is gone from then on (`now >= expiry`); an
//!   element without a timeout never expires;
//! - `add` inserts a missing element and leaves a present one alone; `update` also restarts a
//!   present element's timeout (an element that has one); `delete` removes it;
//! - the set holds at most `size` elements (65535 when the set has no `size`, as
//!   `nft_dynset_init` sets it): an insert into a full set fails, and the rule stops there
//!   (NFT_BREAK).
//!
//! Time is the packet's (`PktState::tstamp_ns`), so a replay expires elements by its own clock.
//! The kernel frees expired and deleted elements in its set GC (every second by default) and
//! counts them against `size` until then; here an expired element stops counting at once (a
//! full set sweeps its expired rows before refusing an insert), which is the GC having run.

use crate::program::Set;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// "Never expires".
pub const NEVER: u64 = u64::MAX;

/// Nanoseconds per millisecond (element timeouts are given in ms, packet time in ns).
const NS_PER_MS: u64 = 1_000_000;

/// The set's side of a dynamic set: what `Program` knows about it (`Set::dynamic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DynSpec {
    /// Default element timeout (`timeout T` on the set), ms; 0 = none.
    pub timeout_ms: u64,
    /// Most elements (`size N`; 65535 without one, as the kernel's `nft_dynset_init`).
    pub size: u32,
}

/// The default `size` of a set the packet path updates (`nft_dynset_init`: `set->size = 0xffff`).
pub const DEFAULT_SIZE: u32 = 0xffff;

/// The elements of one dynamic set at run time.
#[derive(Clone, Debug, Default)]
pub struct DynSet {
    klen: usize,
    /// `klen` bytes per row.
    rows: Vec<u8>,
    /// Maps: the data of each row, `dlen` bytes per row.
    dlen: usize,
    data: Vec<u8>,
    /// Per row: expiry time in ns, [`NEVER`], or (free rows) anything.
    expires: Vec<u64>,
    /// Rows of live elements, by key.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Rows to reuse.
    free: Vec<u32>,
    /// Most elements.
    max: u32,
    /// A lower bound of every present element's expiry (a full set sweeps only when it has passed).
    next_expiry: u64,
    /// The elements the ruleset declares start counting their timeouts at the first packet.
    started: bool,
    /// Timeout (ns) of the declared elements (the set's default), 0 for none.
    initial_timeout: u64,
}

impl PartialEq for DynSet {
    /// Same elements with the same expiry (row order and free slots aside).
    fn eq(&self, o: &DynSet) -> bool {
        self.klen == o.klen
            && self.max == o.max
            && self.started == o.started
            && self.len() == o.len()
            && self.elements().all(|(k, e)| {
                let mine = self.find(k).map(|r| self.data_of(r));
                o.find(k)
                    .is_some_and(|r| o.expires.get(r) == Some(&e) && Some(o.data_of(r)) == mine)
            })
    }
}

impl Eq for DynSet {}

impl DynSet {
    /// The run-time elements of `set` (its declared elements, which expire after the set's default
    /// timeout counted from the first packet that reaches the set).
    pub fn new(set: &Set, spec: &DynSpec) -> DynSet {
        let dlen = match set.data_type {
            crate::program::SetDataType::Data(n) => usize::from(n),
            _ => 0,
        };
        let mut d = DynSet {
            klen: usize::from(set.key_len),
            dlen,
            max: spec.size,
            next_expiry: NEVER,
            initial_timeout: spec.timeout_ms.saturating_mul(NS_PER_MS),
            ..DynSet::default()
        };
        for (k, e) in set.hash_elems() {
            if d.find(k).is_none() {
                let data = match e {
                    crate::program::ElemData::Data(x) => x.bytes(),
                    _ => &[],
                };
                d.push(k, data, NEVER);
            }
        }
        d
    }

    /// Live elements, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.expires.len() - self.free.len()
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the elements take.
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity()
            + self.expires.capacity() * 8
            + self.data.capacity()
            + self.free.capacity() * 4
            + self.index.capacity() * (size_of::<u32>() + 1)
    }

    /// Elements (key, expiry in ns or [`NEVER`]) in row order, expired ones included until swept.
    pub fn elements(&self) -> impl Iterator<Item = (&[u8], u64)> {
        let mut free = vec![false; self.expires.len()];
        for &f in &self.free {
            if let Some(x) = free.get_mut(f as usize) {
                *x = true;
            }
        }
        (0..self.expires.len())
            .filter(move |&r| !free[r])
            .map(|r| (self.row(r), self.expires[r]))
    }

    /// Elements (key, data, expiry) in row order, expired ones included until swept.
    pub fn elements_with_data(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> {
        self.elements().map(|(k, e)| {
            let d = self.find(k).map_or(&[][..], |r| self.data_of(r));
            (k, d, e)
        })
    }

    fn row(&self, r: usize) -> &[u8] {
        self.rows
            .get(r * self.klen..(r + 1) * self.klen)
            .unwrap_or(&[])
    }

    /// Row `r`'s data (maps; empty for sets).
    fn data_of(&self, r: usize) -> &[u8] {
        self.data
            .get(r * self.dlen..(r + 1) * self.dlen)
            .unwrap_or(&[])
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        let (rows, k) = (&self.rows, self.klen);
        self.index
            .find(self.hasher.hash_one(key), |&i| {
                rows.get(i as usize * k..(i as usize + 1) * k) == Some(key)
            })
            .map(|&i| i as usize)
    }

    /// Adds a row for a key that is not there (`data` cut or zero-padded to the map's length).
    fn push(&mut self, key: &[u8], data: &[u8], expiry: u64) {
        let dlen = self.dlen;
        let mut d = [0u8; 64];
        for (x, y) in d.iter_mut().zip(data) {
            *x = *y;
        }
        let d = d.get(..dlen).unwrap_or(&[]);
        let r = match self.free.pop() {
            Some(r) => {
                let at = r as usize * self.klen;
                if let Some(row) = self.rows.get_mut(at..at + self.klen) {
                    row.copy_from_slice(key);
                }
                let at = r as usize * dlen;
                if let Some(row) = self.data.get_mut(at..at + dlen) {
                    row.copy_from_slice(d);
                }
                if let Some(e) = self.expires.get_mut(r as usize) {
                    *e = expiry;
                }
                r
            }
            None => {
                self.rows.extend_from_slice(key);
                self.data.extend_from_slice(d);
                self.expires.push(expiry);
                self.expires.len() as u32 - 1
            }
        };
        let (rows, hasher, k) = (&self.rows, &self.hasher, self.klen);
        self.index.insert_unique(hasher.hash_one(key), r, |&j| {
            hasher.hash_one(
                rows.get(j as usize * k..(j as usize + 1) * k)
                    .unwrap_or(&[]),
            )
        });
        self.next_expiry = self.next_expiry.min(expiry);
    }

    /// Removes the element in row `r`.
    fn remove_row(&mut self, r: usize) {
        let (rows, k) = (&self.rows, self.klen);
        let key = rows.get(r * k..(r + 1) * k).unwrap_or(&[]);
        if let Ok(e) = self
            .index
            .find_entry(self.hasher.hash_one(key), |&i| i as usize == r)
        {
            e.remove();
            self.free.push(r as u32);
        }
    }

    /// The declared elements start their timeouts at the first packet (the ruleset's load).
    fn start(&mut self, now: u64) {
        if self.started {
            return;
        }
        self.started = true;
        if self.initial_timeout == 0 || self.is_empty() {
            return;
        }
        let at = now.saturating_add(self.initial_timeout);
        let live: Vec<usize> = self.live_rows().collect();
        for r in live {
            if let Some(e) = self.expires.get_mut(r) {
                *e = at;
            }
        }
        self.next_expiry = self.next_expiry.min(at);
    }

    fn live_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.index.iter().map(|&r| r as usize)
    }

    /// Frees every expired row.
    fn sweep(&mut self, now: u64) {
        let dead: Vec<usize> = self
            .live_rows()
            .filter(|&r| self.expires.get(r).is_some_and(|&e| now >= e))
            .collect();
        for r in dead {
            self.remove_row(r);
        }
        self.next_expiry = self
            .live_rows()
            .filter_map(|r| self.expires.get(r).copied())
            .min()
            .unwrap_or(NEVER);
    }

    /// The live row of `key` at `now` (an expired element is removed: it is gone).
    fn live(&mut self, key: &[u8], now: u64) -> Option<usize> {
        self.start(now);
        let r = self.find(key)?;
        if self.expires.get(r).is_some_and(|&e| now >= e) {
            self.remove_row(r);
            return None;
        }
        Some(r)
    }

    /// `nft_lookup` on the set at `now`.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.live(key, now).is_some()
    }

    /// `nft_lookup` on the map at `now`: the element's data.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&[u8]> {
        let r = self.live(key, now)?;
        Some(self.data_of(r))
    }

    /// `add` (`refresh` false) or `update` (`refresh` true) of `key` at `now` with timeout
    /// `timeout_ms` (0: none), a new element of a map taking `data` (a present one keeps its
    /// own): false when the set is full (the rule breaks).
    pub fn update(
        &mut self,
        key: &[u8],
        data: &[u8],
        now: u64,
        refresh: bool,
        timeout_ms: u64,
    ) -> bool {
        let expiry = match timeout_ms {
            0 => NEVER,
            t => now.saturating_add(t.saturating_mul(NS_PER_MS)),
        };
        if let Some(r) = self.live(key, now) {
            if refresh
                && let Some(e) = self.expires.get_mut(r)
                && *e != NEVER
            {
                *e = expiry;
            }
            return true;
        }
        if key.len() != self.klen {
            return false;
        }
        if self.len() >= self.max as usize {
            if now < self.next_expiry {
                return false;
            }
            self.sweep(now);
            if self.len() >= self.max as usize {
                return false;
            }
        }
        self.push(key, data, expiry);
        true
    }

    /// `delete` of `key`.
    pub fn delete(&mut self, key: &[u8], now: u64) {
        self.start(now);
        if let Some(r) = self.find(key) {
            self.remove_row(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{ElemData, SetDataType, SetKind};

    fn set(size: u32, timeout_ms: u64, elems: &[[u8; 4]]) -> DynSet {
        let mut s = Set::new("s", 4, SetDataType::None, SetKind::Hash);
        for e in elems {
            s.insert(e, ElemData::None);
        }
        DynSet::new(&s, &DynSpec { timeout_ms, size })
    }

    const MS: u64 = NS_PER_MS;

    #[test]
    fn elements_expire_by_packet_time() {
        let mut d = set(10, 0, &[]);
        assert!(d.update(&[1, 2, 3, 4], &[], 1000 * MS, false, 10));
        assert!(d.contains(&[1, 2, 3, 4], 1009 * MS));
        assert!(!d.contains(&[1, 2, 3, 4], 1010 * MS));
        assert!(d.is_empty());
        // no timeout: never
        assert!(d.update(&[1, 2, 3, 5], &[], 0, false, 0));
        assert!(d.contains(&[1, 2, 3, 5], u64::MAX - 1));
    }

    #[test]
    fn update_restarts_the_timeout_and_add_does_not() {
        let mut d = set(10, 0, &[]);
        d.update(&[1, 1, 1, 1], &[], 0, false, 10);
        d.update(&[1, 1, 1, 1], &[], 5 * MS, false, 10);
        assert!(!d.contains(&[1, 1, 1, 1], 10 * MS));
        d.update(&[1, 1, 1, 1], &[], 20 * MS, true, 10);
        d.update(&[1, 1, 1, 1], &[], 25 * MS, true, 10);
        assert!(d.contains(&[1, 1, 1, 1], 34 * MS));
        assert!(!d.contains(&[1, 1, 1, 1], 35 * MS));
        // an element without a timeout keeps none
        d.update(&[2, 2, 2, 2], &[], 0, false, 0);
        d.update(&[2, 2, 2, 2], &[], 0, true, 10);
        assert!(d.contains(&[2, 2, 2, 2], 100 * MS));
    }

    #[test]
    fn a_full_set_refuses_until_elements_expire_and_reuses_rows() {
        let mut d = set(2, 0, &[[9, 9, 9, 9]]);
        assert!(d.update(&[1, 0, 0, 0], &[], 0, false, 5));
        assert!(!d.update(&[2, 0, 0, 0], &[], MS, false, 5));
        // present elements are no insert
        assert!(d.update(&[1, 0, 0, 0], &[], MS, true, 5));
        assert!(d.update(&[2, 0, 0, 0], &[], 6 * MS, false, 5));
        assert_eq!(d.len(), 2);
        d.delete(&[9, 9, 9, 9], 6 * MS);
        assert!(d.update(&[3, 0, 0, 0], &[], 6 * MS, false, 0));
        assert!(!d.contains(&[9, 9, 9, 9], 6 * MS));
        // rows were reused: never more than `size` of them
        assert_eq!(d.expires.len(), 2);
        assert!(d.contains(&[3, 0, 0, 0], 7 * MS) && d.contains(&[2, 0, 0, 0], 7 * MS));
    }

    #[test]
    fn a_map_element_keeps_its_first_data() {
        let mut m = Set::new("m", 4, SetDataType::Data(4), SetKind::Hash);
        m.insert(&[9, 9, 9, 9], ElemData::Data(crate::insn::Data::host32(5)));
        let mut d = DynSet::new(
            &m,
            &DynSpec {
                timeout_ms: 0,
                size: 10,
            },
        );
        assert_eq!(d.get(&[9, 9, 9, 9], 0), Some(&[5u8, 0, 0, 0][..]));
        assert!(d.update(&[1, 1, 1, 1], &[7, 0, 0, 0], 0, true, 10));
        assert!(d.update(&[1, 1, 1, 1], &[8, 0, 0, 0], MS, true, 10));
        assert_eq!(d.get(&[1, 1, 1, 1], 10 * MS), Some(&[7u8, 0, 0, 0][..]));
        assert_eq!(d.get(&[1, 1, 1, 1], 11 * MS), None);
        // a freed row takes the new element's data
        assert!(d.update(&[2, 2, 2, 2], &[3, 0, 0, 0], 12 * MS, false, 0));
        assert_eq!(d.get(&[2, 2, 2, 2], 12 * MS), Some(&[3u8, 0, 0, 0][..]));
    }

    #[test]
    fn declared_elements_time_out_from_the_first_packet() {
        let mut d = set(10, 100, &[[7, 7, 7, 7]]);
        assert!(d.contains(&[7, 7, 7, 7], 5000 * MS));
        assert!(d.contains(&[7, 7, 7, 7], 5099 * MS));
        assert!(!d.contains(&[7, 7, 7, 7], 5100 * MS));
    }

    #[test]
    fn many_elements_stay_within_size() {
        let mut d = set(100, 0, &[]);
        for i in 0..10_000u32 {
            let now = u64::from(i) * MS;
            d.update(&i.to_be_bytes(), &[], now, false, 50);
            assert!(d.len() <= 100);
        }
        assert!(d.expires.len() <= 100);
        // the last 50 are live
        assert!(d.contains(&9_999u32.to_be_bytes(), 9_999 * MS));
        assert!(!d.contains(&9_949u32.to_be_bytes(), 9_999 * MS));
    }
}
