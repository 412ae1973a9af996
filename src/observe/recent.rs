//! The latest refusals, in memory: a bounded ring of audit records (always
//! masked, whatever `audit.unmasked` says) for the web console's
//! `/v1/refusals`. The audit writer thread feeds it once per batch, after
//! writing the batch, so the data path never touches it; when a batch holds
//! more refusals than the ring keeps, only its newest ones are formatted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::audit::AuditRecord;

/// How many refusals the gate keeps for the console.
pub const RECENT_REFUSALS: usize = 200;

/// A shared ring of the latest refusals (cheap to clone: one `Arc`).
#[derive(Clone)]
pub struct RecentRefusals {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    records: VecDeque<AuditRecord>,
    /// Refusals offered since start (kept or not).
    seen: u64,
}

/// What [`RecentRefusals::latest`] returns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latest {
    /// Most records the ring keeps.
    pub capacity: usize,
    /// Refusals recorded since the gate started (also those no longer kept).
    pub total_seen: u64,
    /// The newest first.
    pub refusals: Vec<AuditRecord>,
}

impl RecentRefusals {
    /// A ring keeping the last `capacity` refusals (0: keeps none).
    pub fn new(capacity: usize) -> Self {
        RecentRefusals {
            inner: Arc::new(Inner {
                capacity,
                ring: Mutex::new(Ring {
                    records: VecDeque::with_capacity(capacity),
                    seen: 0,
                }),
            }),
        }
    }

    /// Most records kept.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Count `offered` refusals and keep `newest` (the last of them, oldest
    /// first; at most [`capacity`](Self::capacity) are kept).
    pub fn record(&self, offered: usize, newest: impl IntoIterator<Item = AuditRecord>) {
        let mut ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.seen += offered as u64;
        if self.inner.capacity == 0 {
            return;
        }
        for r in newest {
            if ring.records.len() == self.inner.capacity {
                ring.records.pop_front();
            }
            ring.records.push_back(r);
        }
    }

    /// Up to `limit` of the kept refusals, the newest first.
    pub fn latest(&self, limit: usize) -> Latest {
        let ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
        Latest {
            capacity: self.inner.capacity,
            total_seen: ring.seen,
            refusals: ring.records.iter().rev().take(limit).cloned().collect(),
        }
    }
}

impl Default for RecentRefusals {
    fn default() -> Self {
        Self::new(RECENT_REFUSALS)
    }
}

impl std::fmt::Debug for RecentRefusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentRefusals")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Channel;

    fn rec(n: u64) -> AuditRecord {
        AuditRecord {
            ts: format!("t{n}"),
            protocol: "smpp",
            channel: Channel::Mesaj,
            brand: "700001/100001".into(),
            recipient: "905300****01".into(),
            decision: "refuse",
            reason: "no_consent",
            monitor: false,
            snapshot_version: n,
            account: None,
        }
    }

    #[test]
    fn keeps_the_newest_up_to_its_capacity_and_counts_all() {
        let r = RecentRefusals::new(3);
        r.record(2, [rec(1), rec(2)]);
        r.record(5, [rec(6), rec(7)]);
        let l = r.latest(10);
        assert_eq!(l.capacity, 3);
        assert_eq!(l.total_seen, 7);
        let versions: Vec<u64> = l.refusals.iter().map(|x| x.snapshot_version).collect();
        assert_eq!(versions, [7, 6, 2]);
        assert_eq!(r.latest(1).refusals.len(), 1);
        let none = RecentRefusals::new(0);
        none.record(4, [rec(1)]);
        assert_eq!(none.latest(10).refusals.len(), 0);
        assert_eq!(none.latest(10).total_seen, 4);
    }
}
