//! Keeping the store current: the published snapshot handle, bootstrap from a
//! snapshot file or CSV exports, the change-feed follower, pushed changes, and
//! periodic persistence.

pub mod bootstrap;
pub mod follow;
pub mod ledger;
pub mod persist;
pub mod push;
pub mod retailers;

use std::sync::Arc;

use arc_swap::{ArcSwapOption, Guard};

use crate::consent::ConsentTime;
use crate::observe::metrics::StoreGauges;
use crate::store::{Snapshot, SnapshotEdit};

/// Order changes applied together: the edit keeps the newest record per
/// tuple and, on equal consent dates, the later one, so a RET dated like an
/// ONAY goes last and wins (the safe side).
pub fn order_for_apply(records: &mut [crate::consent::ConsentRecord]) {
    records.sort_by_key(|r| (r.consent_date, r.status == crate::consent::Status::Ret));
}

/// The published snapshot. Readers load it lock-free once per message; writers
/// (sync, webhook) take turns through `edit`, and each publish replaces it whole.
pub struct StoreHandle {
    current: ArcSwapOption<Snapshot>,
    write: tokio::sync::Mutex<()>,
    gauges: StoreGauges,
    /// What the follower applied per registry day, and the dealer-named
    /// changes waiting for a dealer refresh (see [`ledger`]).
    pub applied: ledger::AppliedLog,
    persist: std::sync::Mutex<persist::PersistStatus>,
}

impl StoreHandle {
    /// An empty handle (no snapshot: commercial traffic is deferred).
    pub fn new() -> Arc<StoreHandle> {
        Arc::new(StoreHandle {
            current: ArcSwapOption::empty(),
            write: tokio::sync::Mutex::new(()),
            gauges: StoreGauges::new(),
            applied: ledger::AppliedLog::default(),
            persist: std::sync::Mutex::default(),
        })
    }

    /// The current snapshot, for one message's decisions (cheap, lock-free).
    #[inline]
    pub fn guard(&self) -> Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Publish a snapshot (bootstrap).
    pub fn publish(&self, s: Snapshot) {
        self.gauges.set(s.tuples_per_channel(), s.version);
        self.current.store(Some(Arc::new(s)));
    }

    /// Change the current snapshot: `f` edits a copy; if it succeeds the copy
    /// is published as the next version, otherwise nothing changes.
    ///
    /// Sets rebuilt by a compaction live on the heap, and the arena copies
    /// they replace stay mapped while any array of that arena is in use, so
    /// once enough has moved ([`ArenaUsage::wants_repack`]: an eighth of the
    /// arrays on the heap or a quarter of the arena dead) the next version
    /// is packed into a fresh arena before it is published. Checking costs
    /// ~2 ms at 100 M tuples; packing, a copy of the store (0.04–0.5 s there,
    /// and its memory twice until readers of the previous version let go)
    /// each time about an eighth of the store has been rebuilt.
    ///
    /// [`ArenaUsage::wants_repack`]: crate::store::arena::ArenaUsage::wants_repack
    pub async fn edit<T, E>(
        &self,
        f: impl FnOnce(&mut SnapshotEdit) -> Result<T, E>,
    ) -> Result<(T, u64), E> {
        let _turn = self.write.lock().await;
        let base = self.load().unwrap_or_default();
        let mut edit = base.edit();
        let out = f(&mut edit)?;
        let mut next = edit.publish(ConsentTime::now());
        if next.arena_usage().wants_repack() {
            next.pack();
        }
        let version = next.version;
        self.publish(next);
        Ok((out, version))
    }

    /// How writing the snapshot file goes (for `/v1/status`).
    pub fn persist_status(&self) -> persist::PersistStatus {
        self.persist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Change the snapshot file's write status (the persister).
    pub(crate) fn update_persist_status(&self, f: impl FnOnce(&mut persist::PersistStatus)) {
        f(&mut self
            .persist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Publish the age of the oldest brand's data.
    pub fn update_age_gauge(&self, now: ConsentTime) {
        if let Some(s) = self.load() {
            let oldest = s
                .brand_entries()
                .filter_map(|(_, e)| e.sync.synced_at)
                .min();
            if let Some(t) = oldest {
                self.gauges.set_age((now.unix() - t.unix()).max(0) as f64);
            }
        }
    }
}
