//! The consent store: compressed per-key address sets, the immutable snapshot
//! readers decide from, the builder for full exports, the snapshot file, and
//! the huge-page arena the sets' arrays live in once a snapshot is built or
//! loaded.

pub mod arena;
pub mod builder;
pub mod dictionary;
pub mod file;
pub mod keys;
pub mod keyset;
pub mod packed;
pub mod probe;
pub mod snapshot;

pub use builder::{BuildStats, SnapshotBuilder};
pub use keyset::Found;
pub use snapshot::{key_index, BrandEntry, EditReport, Snapshot, SnapshotEdit, SyncState};
