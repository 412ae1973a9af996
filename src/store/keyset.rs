//! The consent state of one (brand, channel, recipient type): who said ONAY, who
//! said RET, which dealers may use each consent, and the recent changes.
//!
//! The base sets are immutable packed sets. Changes applied since the last
//! compaction sit in a small sorted `delta` that keeps each tuple's consent date,
//! so a change arriving late with an older date (the HS and IYS feeds are read
//! separately; a webhook may repeat a feed change) cannot overwrite a newer one.
//! When the delta grows, entries older than the reorder window fold into the base.

use std::sync::Arc;

use super::arena::{Frozen, Packer};
use super::keys::PackedKeys;
use super::packed::{Either, PackedSet};
use crate::consent::Status;

/// One recent change held in the delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaEntry {
    /// The address id.
    pub id: u32,
    /// The new state.
    pub status: Status,
    /// Its consent date (Unix seconds; 0 when absent).
    pub date: i64,
    /// When the gate applied it (Unix seconds).
    pub applied_at: i64,
    /// Dealers allowed to use it (sorted).
    pub access: Box<[u32]>,
}

/// A change to apply: one address id's new record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The address id.
    pub id: u32,
    /// The new state.
    pub status: Status,
    /// Consent date (Unix seconds; 0 when absent).
    pub date: i64,
    /// Dealers allowed to use it (sorted).
    pub access: Box<[u32]>,
}

/// A key's base ONAY set: its own, or described relative to another key's
/// set (`of`): the members of `of` at the positions in `ranks`, plus the ids
/// in `extra` that `of` lacks. The sets are held inline (cloning a
/// [`PackedSet`] shares its arrays), so a lookup reads the set's header
/// from the key itself rather than through one more pointer.
#[derive(Debug, Clone)]
pub enum BaseSet {
    /// A set of its own.
    Own(PackedSet),
    /// Relative to another set.
    Derived {
        /// The set it is described against (shared with that key, not copied).
        of: PackedSet,
        /// Positions in `of` of the members it shares.
        ranks: PackedSet,
        /// Members not in `of`.
        extra: PackedSet,
    },
}

impl Default for BaseSet {
    fn default() -> Self {
        BaseSet::Own(PackedSet::default())
    }
}

impl BaseSet {
    /// Whether `id` is a member.
    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        match self {
            BaseSet::Own(set) => set.contains(id),
            BaseSet::Derived { .. } => self.index(id).is_some(),
        }
    }

    /// The index of `id` among the members, if it is one: its position for an
    /// own set; for a derived one, the shared members first (in `of`'s
    /// order), then `extra`. Costs what `contains` costs.
    ///
    /// A derived set probes `of` and `extra` together
    /// ([`PackedSet::position_in_either`]): an address in neither (the usual
    /// case) costs about one probe's cache misses, not two.
    #[inline]
    pub fn index(&self, id: u32) -> Option<u64> {
        match self {
            BaseSet::Own(set) => set.position(id),
            BaseSet::Derived { of, ranks, extra } => {
                match PackedSet::position_in_either(of, extra, id) {
                    Either::First(r) => ranks.position(u32::try_from(r).ok()?),
                    Either::Second(e) => Some(ranks.len() as u64 + e),
                    Either::Neither => None,
                }
            }
        }
    }

    /// Members in index order (see [`BaseSet::index`]).
    pub fn iter_indexed(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            BaseSet::Own(set) => Box::new(set.iter()),
            BaseSet::Derived { of, ranks, extra } => {
                let mut want = ranks.iter().peekable();
                let shared = of
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, id)| match want.peek() {
                        Some(r) if *r as usize == i => {
                            want.next();
                            Some(id)
                        }
                        _ => None,
                    });
                Box::new(shared.chain(extra.iter()))
            }
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            BaseSet::Own(set) => set.len(),
            BaseSet::Derived { ranks, extra, .. } => ranks.len() + extra.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members in ascending order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            BaseSet::Own(set) => Box::new(set.iter()),
            BaseSet::Derived { .. } => {
                let mut all: Vec<u32> = self.iter_indexed().collect();
                all.sort_unstable();
                Box::new(all.into_iter())
            }
        }
    }

    /// Heap bytes this key owns (a shared `of` is counted where it lives).
    pub fn heap_bytes(&self) -> usize {
        match self {
            BaseSet::Own(set) => set.heap_bytes(),
            BaseSet::Derived { ranks, extra, .. } => ranks.heap_bytes() + extra.heap_bytes(),
        }
    }

    /// The members as a set of their own.
    pub fn materialize(&self) -> PackedSet {
        match self {
            BaseSet::Own(set) => set.clone(),
            BaseSet::Derived { .. } => PackedSet::from_unsorted(self.iter().collect()),
        }
    }

    /// The smaller of: this set on its own, or described relative to `of`.
    pub fn derive(&self, of: &PackedSet) -> BaseSet {
        let own = self.materialize();
        let mut ranks: Vec<u32> = Vec::new();
        let mut extra: Vec<u32> = Vec::new();
        let mut base = of.iter().enumerate().peekable();
        for id in own.iter() {
            while base.next_if(|(_, b)| *b < id).is_some() {}
            match base.peek() {
                Some((i, b)) if *b == id => ranks.push(*i as u32),
                _ => extra.push(id),
            }
        }
        let derived = BaseSet::Derived {
            of: of.clone(),
            ranks: PackedSet::from_sorted(&ranks)
                .unwrap_or_else(|_| PackedSet::from_unsorted(ranks)),
            extra: PackedSet::from_sorted(&extra)
                .unwrap_or_else(|_| PackedSet::from_unsorted(extra)),
        };
        if derived.heap_bytes() < own.heap_bytes() {
            derived
        } else {
            BaseSet::Own(own)
        }
    }

    /// The set it is described against, if derived.
    pub fn derived_from(&self) -> Option<&PackedSet> {
        match self {
            BaseSet::Own(_) => None,
            BaseSet::Derived { of, .. } => Some(of),
        }
    }

    /// Hand the arrays to `p` (an `of` shared with another key stays
    /// shared: `p` copies each array once).
    pub fn place_arrays(&mut self, p: &mut Packer) {
        match self {
            BaseSet::Own(set) => set.place_arrays(p),
            BaseSet::Derived { of, ranks, extra } => {
                of.place_arrays(p);
                ranks.place_arrays(p);
                extra.place_arrays(p);
            }
        }
    }
}

/// One bit per known address: set when its base record is RET.
#[derive(Debug, Clone, Default)]
pub struct RetFlags {
    words: Frozen<u64>,
    count: usize,
}

impl RetFlags {
    /// Flags for `len` addresses with the bits at `positions` set (positions
    /// at or past `len` are ignored).
    pub fn from_positions(positions: impl Iterator<Item = u32>, len: usize) -> RetFlags {
        let mut words = vec![0u64; len.div_ceil(64)];
        let mut count = 0;
        for p in positions {
            if let Some(w) = words.get_mut(p as usize / 64) {
                let bit = 1u64 << (p % 64);
                if *w & bit == 0 {
                    *w |= bit;
                    count += 1;
                }
            }
        }
        RetFlags {
            words: Frozen::from_vec(words),
            count,
        }
    }

    /// Hand the words to `p`.
    pub fn place_arrays(&mut self, p: &mut Packer) {
        p.place(&mut self.words);
    }

    /// Whether the address at index `i` is RET.
    #[inline]
    pub fn contains(&self, i: u32) -> bool {
        self.words
            .get(i as usize / 64)
            .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    /// RET records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when none is RET.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Indexes set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(wi as u32 * 64 + b)
            })
        })
    }

    /// Bytes held (heap or arena).
    pub fn heap_bytes(&self) -> usize {
        self.words.bytes()
    }
}

/// The grant key of (retailer, id).
#[inline]
pub fn grant(retailer: u32, id: u32) -> u64 {
    (u64::from(retailer) << 32) | u64::from(id)
}

/// What the store knows of one address under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// ONAY, and the retailer (if any was named) may use it.
    Consent,
    /// ONAY, but the named retailer is not in its access list.
    RetailerDenied,
    /// The newest record is RET.
    Withdrawn,
    /// No record.
    Unknown,
}

/// Consent state of one key.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// Every address with a base record, ONAY or RET: one probe answers
    /// "unknown" for the (common) address without a record.
    known: BaseSet,
    /// One bit per known address (by [`BaseSet::index`]): set for RET. A
    /// plain bit vector costs a bit per tuple and answers in one word read,
    /// so a lookup of an address with a record costs one set probe.
    ret: RetFlags,
    /// Dealer grants: `retailer << 32 | id` for every ONAY whose access list
    /// names the retailer, sorted. One packed list per key instead of a set
    /// per retailer: dealers are many and their sets tiny.
    grants: PackedKeys,
    /// A slice, not a `Vec`: the (usually zero) length sits in the key
    /// itself, so the lookup's "any recent changes?" test reads no other
    /// cache line.
    delta: Arc<[DeltaEntry]>,
}

/// The empty delta, shared: most keys have no recent change, and one
/// allocation each would be thousands of small blocks pinning heap pages.
fn no_delta() -> Arc<[DeltaEntry]> {
    static EMPTY: std::sync::OnceLock<Arc<[DeltaEntry]>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from(Vec::new())).clone()
}

/// A delta holding `entries`.
fn delta_of(entries: Vec<DeltaEntry>) -> Arc<[DeltaEntry]> {
    if entries.is_empty() {
        no_delta()
    } else {
        entries.into()
    }
}

/// Counts after an apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    /// Changes that took effect.
    pub applied: u64,
    /// Changes ignored because a newer record was already held.
    pub older: u64,
    /// The delta was folded into the base (the base sets are new).
    pub compacted: bool,
}

impl KeySet {
    /// A key set from its base ONAY and RET ids (disjoint; an id in both
    /// counts as RET).
    pub fn from_base(onay: PackedSet, ret: PackedSet, grants: &[u64]) -> Self {
        let mut records: Vec<(u32, bool)> = Vec::with_capacity(onay.len() + ret.len());
        let (mut o, mut r) = (onay.iter().peekable(), ret.iter().peekable());
        loop {
            match (o.peek().copied(), r.peek().copied()) {
                (None, None) => break,
                (Some(a), Some(b)) if a == b => {
                    o.next();
                    r.next();
                    records.push((b, true));
                }
                (Some(a), Some(b)) if a < b => {
                    o.next();
                    records.push((a, false));
                }
                (Some(a), None) => {
                    o.next();
                    records.push((a, false));
                }
                (_, Some(b)) => {
                    r.next();
                    records.push((b, true));
                }
            }
        }
        Self::from_records(&records, grants)
    }

    /// A key set from sorted, distinct (id, is RET) base records.
    pub(crate) fn from_records(records: &[(u32, bool)], grants: &[u64]) -> Self {
        let ids: Vec<u32> = records.iter().map(|r| r.0).collect();
        let positions: Vec<u32> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.1)
            .map(|(i, _)| i as u32)
            .collect();
        KeySet {
            known: BaseSet::Own(
                PackedSet::from_sorted(&ids).unwrap_or_else(|_| PackedSet::from_unsorted(ids)),
            ),
            ret: RetFlags::from_positions(positions.iter().copied(), records.len()),
            grants: PackedKeys::from_sorted(grants),
            delta: no_delta(),
        }
    }

    /// The base records as (id, is RET), sorted by id.
    fn base_records(&self) -> Vec<(u32, bool)> {
        let mut records: Vec<(u32, bool)> = self
            .known
            .iter_indexed()
            .enumerate()
            .map(|(i, id)| (id, self.ret.contains(i as u32)))
            .collect();
        if matches!(self.known, BaseSet::Derived { .. }) {
            records.sort_unstable_by_key(|r| r.0);
        }
        records
    }

    /// The base record of `id`: `Some(true)` RET, `Some(false)` ONAY.
    #[inline]
    fn base_status(&self, id: u32) -> Option<bool> {
        let i = self.known.index(id)?;
        Some(u32::try_from(i).is_ok_and(|i| self.ret.contains(i)))
    }

    /// Add the delta read back from a snapshot file (sorted by id, distinct).
    pub fn with_delta(mut self, delta: Vec<DeltaEntry>) -> Self {
        self.delta = delta_of(delta);
        self
    }

    /// Hand the base's arrays to `p` (to move them into the store's
    /// arena); the delta stays where it is.
    pub fn place_arrays(&mut self, p: &mut Packer) {
        self.known.place_arrays(p);
        self.ret.place_arrays(p);
        self.grants.place_arrays(p);
    }

    /// What is known of `id`, checked against `retailer` when one is named.
    #[inline]
    pub fn find(&self, id: u32, retailer: Option<u32>) -> Found {
        if !self.delta.is_empty() {
            if let Ok(i) = self.delta.binary_search_by_key(&id, |e| e.id) {
                let e = &self.delta[i];
                return match (e.status, retailer) {
                    (Status::Ret, _) => Found::Withdrawn,
                    (Status::Onay, None) => Found::Consent,
                    (Status::Onay, Some(r)) if e.access.binary_search(&r).is_ok() => Found::Consent,
                    (Status::Onay, Some(_)) => Found::RetailerDenied,
                };
            }
        }
        match self.base_status(id) {
            None => Found::Unknown,
            Some(true) => Found::Withdrawn,
            Some(false) => match retailer {
                None => Found::Consent,
                Some(r) if self.grants.rank(grant(r, id)).is_some() => Found::Consent,
                Some(_) => Found::RetailerDenied,
            },
        }
    }

    /// Every address with a base record (ONAY or RET).
    pub fn known(&self) -> &BaseSet {
        &self.known
    }

    /// The base ONAY ids, in index order.
    pub fn onay_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.known
            .iter_indexed()
            .enumerate()
            .filter(|(i, _)| !self.ret.contains(*i as u32))
            .map(|(_, id)| id)
    }

    /// Number of base ONAY records.
    pub fn onay_len(&self) -> usize {
        self.known.len() - self.ret.len()
    }

    /// Describe the base ONAY set relative to `of` (another key's ONAY set)
    /// when that is smaller, or as its own set otherwise. A brand's ARAMA
    /// consents are mostly its MESAJ consents: as ranks into the MESAJ set
    /// they cost a few bits each instead of ~2 bytes.
    pub fn rebase(&self, of: &PackedSet) -> KeySet {
        let ret_ids: Vec<u32> = self
            .base_records()
            .into_iter()
            .filter(|r| r.1)
            .map(|r| r.0)
            .collect();
        let mut next = self.clone();
        next.known = self.known.derive(of);
        let mut positions: Vec<u32> = ret_ids
            .iter()
            .filter_map(|id| next.known.index(*id))
            .map(|p| p as u32)
            .collect();
        positions.sort_unstable();
        next.ret = RetFlags::from_positions(positions.into_iter(), next.known.len());
        next
    }

    /// Use base records read back from a snapshot file.
    pub fn with_known(mut self, known: BaseSet, ret_positions: PackedSet) -> Self {
        self.ret = RetFlags::from_positions(ret_positions.iter(), known.len());
        self.known = known;
        self
    }

    /// Indexes in `known` of the base RET records (the snapshot file's form).
    pub fn ret_positions(&self) -> PackedSet {
        let positions: Vec<u32> = self.ret.iter().collect();
        PackedSet::from_sorted(&positions).unwrap_or_else(|_| PackedSet::from_unsorted(positions))
    }

    /// The base dealer grants (`retailer << 32 | id`, sorted).
    pub fn grants(&self) -> &PackedKeys {
        &self.grants
    }

    /// The recent changes.
    pub fn delta(&self) -> &[DeltaEntry] {
        &self.delta
    }

    /// Records held (ONAY and RET), counting each address once.
    pub fn tuples(&self) -> (u64, u64) {
        let mut ret = self.ret.len() as u64;
        let mut onay = self.known.len() as u64 - ret;
        for e in self.delta.iter() {
            match self.base_status(e.id) {
                Some(false) => onay -= 1,
                Some(true) => ret -= 1,
                None => {}
            }
            match e.status {
                Status::Onay => onay += 1,
                Status::Ret => ret += 1,
            }
        }
        (onay, ret)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.known.heap_bytes()
            + self.ret.heap_bytes()
            + self.grants.heap_bytes()
            + self
                .delta
                .iter()
                .map(|e| std::mem::size_of::<DeltaEntry>() + e.access.len() * 4)
                .sum::<usize>()
    }

    /// A new key set with `changes` (sorted by id, one per id) applied. A change
    /// older than the record held in the delta is ignored. When the delta
    /// passes its limit, entries applied before `now - reorder_window` are
    /// folded into the base.
    pub fn apply(
        &self,
        changes: &[KeyChange],
        now: i64,
        reorder_window: i64,
    ) -> (KeySet, ApplyCounts) {
        let mut counts = ApplyCounts::default();
        let mut merged: Vec<DeltaEntry> = Vec::with_capacity(self.delta.len() + changes.len());
        let mut old = self.delta.iter().peekable();
        for c in changes {
            while let Some(e) = old.next_if(|e| e.id < c.id) {
                merged.push(e.clone());
            }
            match old.next_if(|e| e.id == c.id) {
                Some(e) if e.date > c.date => {
                    counts.older += 1;
                    merged.push(e.clone());
                }
                _ => {
                    counts.applied += 1;
                    merged.push(DeltaEntry {
                        id: c.id,
                        status: c.status,
                        date: c.date,
                        applied_at: now,
                        access: c.access.clone(),
                    });
                }
            }
        }
        merged.extend(old.cloned());
        let mut next = KeySet {
            known: self.known.clone(),
            ret: self.ret.clone(),
            grants: self.grants.clone(),
            delta: delta_of(merged),
        };
        let limit = 1024 + self.known.len() / 16;
        if next.delta.len() > limit {
            next = next.compact(now - reorder_window);
            counts.compacted = true;
        }
        (next, counts)
    }

    /// Fold delta entries applied at or before `cutoff` into the base sets.
    pub fn compact(&self, cutoff: i64) -> KeySet {
        let (fold, keep): (Vec<&DeltaEntry>, Vec<&DeltaEntry>) =
            self.delta.iter().partition(|e| e.applied_at <= cutoff);
        if fold.is_empty() {
            return self.clone();
        }
        let all: Vec<u32> = fold.iter().map(|e| e.id).collect();
        // The base records with the folded changes replacing theirs.
        let mut records: Vec<(u32, bool)> = self
            .base_records()
            .into_iter()
            .filter(|r| all.binary_search(&r.0).is_err())
            .collect();
        records.extend(fold.iter().map(|e| (e.id, e.status == Status::Ret)));
        records.sort_unstable_by_key(|r| r.0);
        // Grants of folded ids are replaced by the folded entries' own.
        let mut grants: Vec<u64> = self
            .grants
            .iter()
            .filter(|g| all.binary_search(&(*g as u32)).is_err())
            .collect();
        grants.extend(
            fold.iter()
                .filter(|e| e.status == Status::Onay)
                .flat_map(|e| e.access.iter().map(move |r| grant(*r, e.id))),
        );
        grants.sort_unstable();
        grants.dedup();
        let mut next = KeySet::from_records(&records, &grants);
        next.delta = delta_of(keep.into_iter().cloned().collect());
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u32, status: Status, date: i64, access: &[u32]) -> KeyChange {
        KeyChange {
            id,
            status,
            date,
            access: access.into(),
        }
    }

    fn base() -> KeySet {
        KeySet::from_base(
            PackedSet::from_unsorted(vec![1, 2, 3]),
            PackedSet::from_unsorted(vec![9]),
            &[grant(77, 2)],
        )
    }

    #[test]
    fn finds_base_states_and_retailers() {
        let k = base();
        assert_eq!(k.find(1, None), Found::Consent);
        assert_eq!(k.find(9, None), Found::Withdrawn);
        assert_eq!(k.find(5, None), Found::Unknown);
        assert_eq!(k.find(2, Some(77)), Found::Consent);
        assert_eq!(k.find(1, Some(77)), Found::RetailerDenied);
        assert_eq!(k.find(2, Some(78)), Found::RetailerDenied);
        assert_eq!(k.tuples(), (3, 1));
    }

    #[test]
    fn newer_wins_and_older_is_ignored() {
        let k = base();
        let (k, c) = k.apply(
            &[
                change(1, Status::Ret, 100, &[]),
                change(9, Status::Onay, 100, &[5]),
            ],
            1000,
            600,
        );
        assert_eq!(c.applied, 2);
        assert_eq!(k.find(1, None), Found::Withdrawn);
        assert_eq!(k.find(9, Some(5)), Found::Consent);
        assert_eq!(k.tuples(), (3, 1));
        let (k, c) = k.apply(&[change(1, Status::Onay, 50, &[])], 1001, 600);
        assert_eq!((c.applied, c.older), (0, 1));
        assert_eq!(
            k.find(1, None),
            Found::Withdrawn,
            "an older ONAY must not undo a RET"
        );
        let (k, _) = k.apply(&[change(1, Status::Onay, 100, &[])], 1002, 600);
        assert_eq!(
            k.find(1, None),
            Found::Consent,
            "same date: the later arrival wins"
        );
    }

    #[test]
    fn compaction_keeps_answers() {
        let k = base();
        let (k, _) = k.apply(
            &[
                change(2, Status::Ret, 100, &[]),
                change(4, Status::Onay, 100, &[77, 80]),
                change(9, Status::Onay, 100, &[]),
            ],
            1000,
            600,
        );
        let (k, _) = k.apply(&[change(3, Status::Ret, 100, &[])], 2000, 600);
        let before: Vec<Found> = (0..12).map(|id| k.find(id, None)).collect();
        let before_r: Vec<Found> = (0..12).map(|id| k.find(id, Some(77))).collect();
        let c = k.compact(1500);
        assert_eq!(
            c.delta().len(),
            1,
            "the change applied at 2000 stays in the delta"
        );
        assert_eq!(
            (0..12).map(|id| c.find(id, None)).collect::<Vec<_>>(),
            before
        );
        assert_eq!(
            (0..12).map(|id| c.find(id, Some(77))).collect::<Vec<_>>(),
            before_r
        );
        assert_eq!(c.find(4, Some(80)), Found::Consent);
        let codes: Vec<u32> = c.grants().iter().map(|g| (g >> 32) as u32).collect();
        assert!(codes.contains(&77) && codes.contains(&80), "{codes:?}");
        assert_eq!(c.tuples(), k.tuples());
    }
}
