//! The two small interfaces the fleet stands on, so another log (Kafka) or
//! another lock (a Kubernetes Lease) can take NATS's place: the change log
//! and the leader lock. `nats.rs` implements both on JetStream.

use std::future::Future;

use futures_util::stream::BoxStream;

use crate::consent::Brand;

/// Which writer a log entry comes from: the leader's registry poller (its
/// subject is guarded by the expected last sequence) or a webhook push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A verified batch from the registry's change feeds, with cursors.
    Feed,
    /// A webhook push received by any gate.
    Push,
}

impl EntryKind {
    /// As in the subject and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Feed => "feed",
            EntryKind::Push => "push",
        }
    }
}

/// Why a log operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The log refused the publish: the subject's last sequence is not the
    /// one expected (another leader published first). Nothing was written.
    #[error("the log refused the batch: its subject moved on (another writer published first)")]
    Conflict,
    /// The log cannot be reached or did not answer in time.
    #[error("change log unavailable: {0}")]
    Unavailable(String),
}

/// Where the stream stands: its first and last sequence (first > last: empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Oldest sequence still held (older ones aged out or were purged).
    pub first: u64,
    /// Newest sequence.
    pub last: u64,
}

impl Bounds {
    /// True when a gate that applied everything up to `position` can no
    /// longer read what follows from the log (it aged out): it must reload
    /// a snapshot.
    pub fn lost_after(&self, position: u64) -> bool {
        self.last > position && self.first > position + 1
    }
}

/// One entry as read back: its sequence and payload.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Log sequence (1, 2, ...).
    pub sequence: u64,
    /// The encoded entry ([`super::entry`]).
    pub payload: bytes::Bytes,
}

/// A totally ordered, replicated log of change batches, one subject per
/// brand and kind.
pub trait ChangeLog: Send + Sync + 'static {
    /// Publish one encoded entry for `brand`. `id` de-duplicates a retried
    /// publish; with `expected` the log refuses it ([`LogError::Conflict`])
    /// unless the last entry on this brand's subject has that sequence (0:
    /// none yet). Returns the sequence the entry got.
    fn publish(
        &self,
        brand: Brand,
        kind: EntryKind,
        payload: bytes::Bytes,
        id: String,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// The sequence of the last entry on `brand`'s subject of `kind` (0: none).
    fn last_sequence(
        &self,
        brand: Brand,
        kind: EntryKind,
    ) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// The log's first and last sequence.
    fn bounds(&self) -> impl Future<Output = Result<Bounds, LogError>> + Send;

    /// Read every entry from `sequence` on, in order, as they arrive.
    fn read_from(
        &self,
        sequence: u64,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Delivered, LogError>>, LogError>> + Send;
}

/// Proof of holding the leader lock: the lock's revision after the last
/// successful acquire or renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Compare-and-set revision.
    pub revision: u64,
}

/// One leader at a time: a lock with a time to live, renewed by revision.
pub trait LeaderLock: Send + Sync + 'static {
    /// Take the lock for `name` if nobody holds it (or the holder's time ran
    /// out); `None` when someone else holds it.
    fn try_acquire(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Lease>, LogError>> + Send;

    /// Renew a held lock; an error means it may be lost (a
    /// [`LogError::Conflict`]: it certainly is).
    fn renew(
        &self,
        name: &str,
        lease: Lease,
    ) -> impl Future<Output = Result<Lease, LogError>> + Send;

    /// Who holds the lock now, if anyone.
    fn holder(&self) -> impl Future<Output = Result<Option<String>, LogError>> + Send;

    /// Give the lock up (shutdown), so another gate takes over at once.
    fn release(&self, lease: Lease) -> impl Future<Output = Result<(), LogError>> + Send;
}

/// A snapshot in the snapshot store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The last log sequence it includes.
    pub sequence: u64,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Where the leader puts the newest snapshot (the snapshot file format) and
/// new gates load it from, with the log sequence it includes.
pub trait SnapshotStore: Send + Sync + 'static {
    /// The newest snapshot's sequence and size, if there is one.
    fn snapshot_info(&self) -> impl Future<Output = Result<Option<SnapshotInfo>, LogError>> + Send;

    /// The newest snapshot's bytes and sequence.
    fn get_snapshot(&self)
        -> impl Future<Output = Result<Option<(Vec<u8>, u64)>, LogError>> + Send;

    /// Replace the snapshot with one that includes the log up to `sequence`.
    fn put_snapshot(
        &self,
        bytes: Vec<u8>,
        sequence: u64,
        version: u64,
    ) -> impl Future<Output = Result<(), LogError>> + Send;
}

/// Everything a fleet stands on: NATS JetStream ([`super::nats::Nats`]) or,
/// later, Kafka plus a Lease plus an object store.
pub trait Backend: ChangeLog + LeaderLock + SnapshotStore {}

impl<T: ChangeLog + LeaderLock + SnapshotStore> Backend for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_is_lost_only_when_unread_entries_aged_out() {
        let b = Bounds {
            first: 11,
            last: 20,
        };
        assert!(!b.lost_after(10), "next is 11: still there");
        assert!(b.lost_after(9), "10 is gone");
        assert!(!b.lost_after(20), "caught up");
        let purged = Bounds {
            first: 21,
            last: 20,
        };
        assert!(!purged.lost_after(20), "purged after everything was read");
        assert!(purged.lost_after(15), "purged before 16..20 were read");
        assert!(!Bounds::default().lost_after(0), "an empty new stream");
    }
}
