//! What the gate did with an initial INVITE, remembered for the INVITE
//! transaction's lifetime: a retransmission is treated the same way (the
//! same bytes if the gate answered, forwarded again if it forwarded), the
//! ACK of the gate's own answer is absorbed and a CANCEL of it answered.
//! Key: top Via branch, Call-ID and CSeq number (what a retransmission, its
//! ACK for a non-2xx answer and its CANCEL share, RFC 3261 §17.2.3, §9.1).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use dashmap::DashMap;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed};

/// What was done with a transaction's INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Forwarded to the next hop.
    Forwarded,
    /// Answered by the gate with these bytes.
    Answered(Arc<[u8]>),
}

/// This process's hash seed: peers choose branches and Call-IDs, so the
/// keys they lead to are not predictable (no crafted collisions).
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x1957_u64)
    })
}

/// The transaction key (seeded xxh3: branch, then Call-ID and CSeq).
pub fn key(branch: &[u8], call_id: &[u8], cseq: u32) -> u128 {
    let b = xxh3_64_with_seed(branch, seed());
    xxh3_128_with_seed(call_id, b ^ (u64::from(cseq) << 32 | u64::from(cseq)))
}

/// Keys are already seeded hashes: the map uses them as they are.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by u128 keys; a plain fold for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64 ^ (v >> 64) as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Transactions remembered for a lifetime, at most `max` of them.
pub struct TxCache {
    map: DashMap<u128, (Done, Instant), BuildHasherDefault<KeyHasher>>,
    order: Mutex<VecDeque<(u128, Instant)>>,
    lifetime: Duration,
    max: usize,
}

impl TxCache {
    /// An empty cache.
    pub fn new(lifetime: Duration, max: usize) -> TxCache {
        TxCache {
            map: DashMap::default(),
            order: Mutex::new(VecDeque::new()),
            lifetime,
            max,
        }
    }

    /// What was done with transaction `key`, if it is still remembered.
    pub fn get(&self, key: u128, now: Instant) -> Option<Done> {
        let e = self.map.get(&key)?;
        (now.duration_since(e.1) < self.lifetime).then(|| e.0.clone())
    }

    /// Remember `done` for `key`, forgetting what expired (and the oldest
    /// past `max`).
    pub fn put(&self, key: u128, done: Done, now: Instant) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(k, at)) = order.front() {
            if now.duration_since(at) < self.lifetime && order.len() < self.max {
                break;
            }
            order.pop_front();
            self.map.remove_if(&k, |_, v| v.1 == at);
        }
        order.push_back((key, now));
        self.map.insert(key, (done, now));
    }

    /// Transactions remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_its_lifetime_and_its_size() {
        let c = TxCache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        let k = |n: u32| key(b"z9hG4bK1", b"call", n);
        c.put(k(1), Done::Forwarded, t0);
        assert_eq!(c.get(k(1), t0), Some(Done::Forwarded));
        assert_eq!(c.get(k(2), t0), None);
        assert_eq!(c.get(k(1), t0 + Duration::from_secs(11)), None);
        c.put(k(2), Done::Answered(Arc::from(&b"x"[..])), t0);
        c.put(k(3), Done::Forwarded, t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(k(1), t0), None);
        c.put(k(4), Done::Forwarded, t0 + Duration::from_secs(20));
        assert_eq!(c.len(), 1);
    }
}
