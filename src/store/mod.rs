//! The consent store: compressed per-key address sets, the immutable snapshot
//! readers decide from, the builder for full exports, and the snapshot file.

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
