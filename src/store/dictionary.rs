//! Dense u32 ids for addresses that are not Turkish numbers: e-mail hashes and
//! foreign E.164 numbers.
//!
//! The base is a sorted array (id = position), built once; addresses first seen
//! after that get the next ids in a small side map, so ids already used by the
//! sets never move. A snapshot rebuild folds the side map back into the base.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::arena::Packer;
use super::keys::PackedKeys;

/// Maps u64 address keys to dense ids below a limit.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    base: PackedKeys,
    extra: Arc<FxHashMap<u64, u32>>,
}

/// The dictionary has handed out every id it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address dictionary is full ({0} ids): rebuild the snapshot")]
pub struct DictionaryFull(pub u64);

impl Dictionary {
    /// A dictionary over sorted, distinct keys (ids are their positions).
    pub fn from_sorted(keys: Vec<u64>) -> Dictionary {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        Dictionary {
            base: PackedKeys::from_sorted(&keys),
            extra: Arc::default(),
        }
    }

    /// A dictionary from parts read from a snapshot file; `extra` ids must
    /// continue after the base.
    pub fn from_parts(base: Vec<u64>, extra: Vec<(u64, u32)>) -> Dictionary {
        Dictionary {
            base: PackedKeys::from_sorted(&base),
            extra: Arc::new(extra.into_iter().collect()),
        }
    }

    /// The id of a key, if it has one.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        match self.base.rank(key) {
            Some(i) => Some(i as u32),
            None if self.extra.is_empty() => None,
            None => self.extra.get(&key).copied(),
        }
    }

    /// The id of a key, giving it the next free id if new. `limit` is the
    /// number of ids the caller's id space holds.
    pub fn get_or_insert(&mut self, key: u64, limit: u64) -> Result<u32, DictionaryFull> {
        if let Some(id) = self.get(key) {
            return Ok(id);
        }
        let next = self.len() as u64;
        if next >= limit {
            return Err(DictionaryFull(limit));
        }
        Arc::make_mut(&mut self.extra).insert(key, next as u32);
        Ok(next as u32)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.base.len() + self.extra.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sorted base keys.
    pub fn base(&self) -> impl Iterator<Item = u64> + '_ {
        self.base.iter()
    }

    /// Number of base keys.
    pub fn base_len(&self) -> usize {
        self.base.len()
    }

    /// Keys added after the base, with their ids, in id order.
    pub fn extra_sorted(&self) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, u32)> = self.extra.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable_by_key(|e| e.1);
        v
    }

    /// Hand the base's arrays to `p` (to move them into the store's arena).
    pub fn place_arrays(&mut self, p: &mut Packer) {
        self.base.place_arrays(p);
    }

    /// Bytes held (heap or arena).
    pub fn heap_bytes(&self) -> usize {
        self.base.heap_bytes() + self.extra.capacity() * 13
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_when_keys_are_added() {
        let mut d = Dictionary::from_sorted(vec![10, 20, 30]);
        assert_eq!(d.get(20), Some(1));
        assert_eq!(d.get(25), None);
        let before = d.clone();
        assert_eq!(d.get_or_insert(25, 10).unwrap(), 3);
        assert_eq!(d.get_or_insert(5, 10).unwrap(), 4);
        assert_eq!(d.get_or_insert(25, 10).unwrap(), 3);
        assert_eq!(d.get(30), Some(2));
        assert_eq!(
            before.get(25),
            None,
            "copy-on-write: the old view is unchanged"
        );
        assert_eq!(d.get_or_insert(7, 5), Err(DictionaryFull(5)));
    }
}
