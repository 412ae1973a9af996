//! Writing the published snapshot to its file periodically and at shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;

use super::StoreHandle;
use crate::consent::ConsentTime;
use crate::store::file;

/// How writing the snapshot file goes, for `/v1/status`: an operator sees a
/// full disk or a read-only volume there (and in the log and
/// `iys_gate_snapshot_writes_total{result="error"}`) while the gate keeps serving
/// from memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PersistStatus {
    /// The snapshot file; `None`: no `store.snapshot_path`, nothing is written.
    pub path: Option<String>,
    /// Snapshot version in the file (the one loaded at start or last written).
    pub version_on_disk: Option<u64>,
    /// When the last write succeeded.
    pub last_ok_at: Option<ConsentTime>,
    /// Writes that failed since the last one that succeeded.
    pub failures_in_a_row: u64,
    /// The last failure's message, kept until a write succeeds.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<ConsentTime>,
}

fn failed(store: &StoreHandle, message: String) {
    store.update_persist_status(|p| {
        p.failures_in_a_row += 1;
        p.last_error = Some(message);
        p.last_error_at = Some(ConsentTime::now());
    });
}

/// Write the current snapshot if its version differs from `last`; returns the
/// version now on disk.
pub async fn persist_once(store: &StoreHandle, path: &Path, last: u64) -> u64 {
    let Some(s) = store.load() else { return last };
    if s.version == last {
        return last;
    }
    let path2 = path.to_path_buf();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        file::write(&path2, &s).map(|bytes| (bytes, s.version))
    })
    .await;
    match result {
        Ok(Ok((bytes, version))) => {
            counter!("iys_gate_snapshot_writes_total", "result" => "ok").increment(1);
            tracing::info!(path = %path.display(), version, bytes, secs = started.elapsed().as_secs_f64(), "snapshot written");
            store.update_persist_status(|p| {
                p.version_on_disk = Some(version);
                p.last_ok_at = Some(ConsentTime::now());
                p.failures_in_a_row = 0;
                p.last_error = None;
                p.last_error_at = None;
            });
            version
        }
        Ok(Err(e)) => {
            counter!("iys_gate_snapshot_writes_total", "result" => "error").increment(1);
            tracing::error!("snapshot write failed: {e}");
            failed(store, format!("snapshot write failed: {e}"));
            last
        }
        Err(e) => {
            counter!("iys_gate_snapshot_writes_total", "result" => "error").increment(1);
            tracing::error!("snapshot writer panicked: {e}");
            failed(store, format!("snapshot writer panicked: {e}"));
            last
        }
    }
}

/// Persist every `interval` until `shutdown` fires, then once more.
pub async fn run(
    store: Arc<StoreHandle>,
    path: PathBuf,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut last: u64,
) {
    // Both series exist from the start (at zero), so the first failed write
    // already shows as an increase.
    for result in ["ok", "error"] {
        counter!("iys_gate_snapshot_writes_total", "result" => result).increment(0);
    }
    let stale = path.clone();
    let removed = tokio::task::spawn_blocking(move || file::remove_stale_temp_files(&stale))
        .await
        .unwrap_or_default();
    for f in removed {
        tracing::warn!(file = %f.display(), "removed a partial snapshot file left by a writer that was killed mid-write");
    }
    store.update_persist_status(|p| {
        p.path = Some(path.display().to_string());
        p.version_on_disk = (last != 0).then_some(last);
    });
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => last = persist_once(&store, &path, last).await,
            _ = shutdown.changed() => break,
        }
    }
    persist_once(&store, &path, last).await;
}
