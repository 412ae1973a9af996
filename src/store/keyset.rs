//! The consent state of one (brand, channel, recipient type): who said ONAY, who
//! said RET, which dealers may use each consent, and the recent changes.
//!
//! The base sets are immutable packed sets. Changes applied since the last
//! compaction sit in a small sorted `delta` that keeps each tuple's consent date,
//! so a change arriving late with an older date (the HS and IYS feeds are read
//! separately; a webhook may repeat a feed change) cannot overwrite a newer one.
//! When the delta grows, entries older than the reorder window fold into the base.

use std::sync::Arc;

use super::packed::PackedSet;
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
    onay: Arc<PackedSet>,
    ret: Arc<PackedSet>,
    /// (retailer code, ids whose consent lists it), sorted by code.
    retailers: Arc<Vec<(u32, PackedSet)>>,
    delta: Arc<Vec<DeltaEntry>>,
}

/// Counts after an apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    /// Changes that took effect.
    pub applied: u64,
    /// Changes ignored because a newer record was already held.
    pub older: u64,
}

impl KeySet {
    /// A key set from its base parts.
    pub fn from_base(onay: PackedSet, ret: PackedSet, retailers: Vec<(u32, PackedSet)>) -> Self {
        KeySet {
            onay: Arc::new(onay),
            ret: Arc::new(ret),
            retailers: Arc::new(retailers),
            delta: Arc::default(),
        }
    }

    /// Add the delta read back from a snapshot file (sorted by id, distinct).
    pub fn with_delta(mut self, delta: Vec<DeltaEntry>) -> Self {
        self.delta = Arc::new(delta);
        self
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
        if self.onay.contains(id) {
            match retailer {
                None => Found::Consent,
                Some(r) => match self.retailers.binary_search_by_key(&r, |e| e.0) {
                    Ok(i) if self.retailers[i].1.contains(id) => Found::Consent,
                    _ => Found::RetailerDenied,
                },
            }
        } else if self.ret.contains(id) {
            Found::Withdrawn
        } else {
            Found::Unknown
        }
    }

    /// The base ONAY set.
    pub fn onay(&self) -> &PackedSet {
        &self.onay
    }

    /// The base RET set.
    pub fn ret(&self) -> &PackedSet {
        &self.ret
    }

    /// The base retailer access sets.
    pub fn retailers(&self) -> &[(u32, PackedSet)] {
        &self.retailers
    }

    /// The recent changes.
    pub fn delta(&self) -> &[DeltaEntry] {
        &self.delta
    }

    /// Records held (ONAY and RET), counting each address once.
    pub fn tuples(&self) -> (u64, u64) {
        let mut onay = self.onay.len() as u64;
        let mut ret = self.ret.len() as u64;
        for e in self.delta.iter() {
            if self.onay.contains(e.id) {
                onay -= 1;
            } else if self.ret.contains(e.id) {
                ret -= 1;
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
        self.onay.heap_bytes()
            + self.ret.heap_bytes()
            + self
                .retailers
                .iter()
                .map(|r| r.1.heap_bytes() + 8)
                .sum::<usize>()
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
            onay: self.onay.clone(),
            ret: self.ret.clone(),
            retailers: self.retailers.clone(),
            delta: Arc::new(merged),
        };
        let limit = 1024 + self.onay.len() / 16;
        if next.delta.len() > limit {
            next = next.compact(now - reorder_window);
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
        let onay_add: Vec<u32> = fold
            .iter()
            .filter(|e| e.status == Status::Onay)
            .map(|e| e.id)
            .collect();
        let ret_add: Vec<u32> = fold
            .iter()
            .filter(|e| e.status == Status::Ret)
            .map(|e| e.id)
            .collect();
        let mut grants: Vec<(u32, u32)> = fold
            .iter()
            .filter(|e| e.status == Status::Onay)
            .flat_map(|e| e.access.iter().map(move |r| (*r, e.id)))
            .collect();
        grants.sort_unstable();
        let mut retailers: Vec<(u32, PackedSet)> = Vec::new();
        let mut g = grants.iter().peekable();
        let mut old = self.retailers.iter().peekable();
        loop {
            let code = match (old.peek(), g.peek()) {
                (None, None) => break,
                (Some(o), None) => o.0,
                (None, Some(n)) => n.0,
                (Some(o), Some(n)) => o.0.min(n.0),
            };
            let mut add = Vec::new();
            while let Some((_, id)) = g.next_if(|n| n.0 == code) {
                add.push(*id);
            }
            let set = match old.next_if(|o| o.0 == code) {
                Some((_, set)) => set.merge(&add, &all),
                None => PackedSet::from_unsorted(add),
            };
            if !set.is_empty() {
                retailers.push((code, set));
            }
        }
        KeySet {
            onay: Arc::new(self.onay.merge(&onay_add, &all)),
            ret: Arc::new(self.ret.merge(&ret_add, &all)),
            retailers: Arc::new(retailers),
            delta: Arc::new(keep.into_iter().cloned().collect()),
        }
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
            vec![(77, PackedSet::from_unsorted(vec![2]))],
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
        assert_eq!(
            c.retailers().iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![77, 80]
        );
        assert_eq!(c.tuples(), k.tuples());
    }
}
