//! The latest refusals, in memory: a bounded ring of audit entries for the
//! web console's `/v1/refusals`, shown masked whatever `audit.unmasked`
//! says. The audit writer thread feeds it once per batch, after writing the
//! batch, so the data path never touches it; it copies at most the ring's
//! capacity of entries per batch (the newest), and the entries are only
//! formatted when someone reads them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::audit::{AuditRecord, Entry};

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
    entries: VecDeque<Entry>,
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
    /// The newest first, recipients masked.
    pub refusals: Vec<AuditRecord>,
}

impl RecentRefusals {
    /// A ring keeping the last `capacity` refusals (0: keeps none).
    pub fn new(capacity: usize) -> Self {
        RecentRefusals {
            inner: Arc::new(Inner {
                capacity,
                ring: Mutex::new(Ring {
                    entries: VecDeque::with_capacity(capacity),
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
    /// first; only the last [`capacity`](Self::capacity) stay).
    pub fn record(&self, offered: usize, newest: &[Entry]) {
        let mut ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.seen += offered as u64;
        let cap = self.inner.capacity;
        if cap == 0 {
            return;
        }
        let newest = &newest[newest.len().saturating_sub(cap)..];
        let overflow = (ring.entries.len() + newest.len()).saturating_sub(cap);
        ring.entries.drain(..overflow);
        ring.entries.extend(newest.iter().cloned());
    }

    /// Up to `limit` of the kept refusals, the newest first, masked.
    pub fn latest(&self, limit: usize) -> Latest {
        let (picked, seen) = {
            let ring = self.inner.ring.lock().unwrap_or_else(|e| e.into_inner());
            let picked: Vec<Entry> = ring.entries.iter().rev().take(limit).cloned().collect();
            (picked, ring.seen)
        };
        Latest {
            capacity: self.inner.capacity,
            total_seen: seen,
            refusals: picked.iter().map(Entry::masked).collect(),
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
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::consent::{Brand, Channel};
    use crate::observe::audit::{Audit, AuditBatch};
    use crate::policy::{Decision, Reason, Verdict};

    fn refusals(recipients: &[&str]) -> AuditBatch {
        let d = Decision {
            verdict: Verdict::Refuse,
            reason: Reason::Withdrawn,
            monitor: false,
            snapshot_version: 9,
            data_age_seconds: Some(1),
        };
        let mut b = AuditBatch::new();
        for (i, r) in recipients.iter().enumerate() {
            let brand = Brand::new(700001, 100001 + i as u32);
            b.refusal(
                SystemTime::now(),
                "smpp",
                Channel::Mesaj,
                brand,
                r,
                &d,
                Some("acme"),
            );
        }
        b
    }

    /// Wait for the audit writer to have handed over `n` refusals.
    fn seen(r: &RecentRefusals, n: u64) -> Latest {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = r.latest(10);
            if l.total_seen >= n {
                return l;
            }
            assert!(Instant::now() < deadline, "the writer never fed the ring");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_audit_writer_keeps_the_newest_masked_and_counts_all() {
        let recent = RecentRefusals::new(3);
        // Unmasked audit file: the ring still masks.
        let audit = Audit::start_with(None, true, Default::default(), recent.clone()).unwrap();
        audit.submit(&mut refusals(&["905300000001", "905300000002"]));
        seen(&recent, 2);
        audit.submit(&mut refusals(&[
            "905300000003",
            "905300000004",
            "905300000005",
            "905300000006",
        ]));
        let l = seen(&recent, 6);
        assert_eq!((l.capacity, l.total_seen), (3, 6));
        let got: Vec<&str> = l.refusals.iter().map(|r| r.recipient.as_str()).collect();
        assert_eq!(got, ["905300****06", "905300****05", "905300****04"]);
        assert_eq!(l.refusals[0].reason, "withdrawn");
        assert_eq!(l.refusals[0].account.as_deref(), Some("acme"));
        assert_eq!(recent.latest(1).refusals.len(), 1);

        let none = RecentRefusals::new(0);
        let audit = Audit::start_with(None, false, Default::default(), none.clone()).unwrap();
        audit.submit(&mut refusals(&["905300000001"]));
        let l = seen(&none, 1);
        assert!(l.refusals.is_empty());
    }
}
