//! Writing the published snapshot to its file periodically and at shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;

use super::StoreHandle;
use crate::store::file;

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
            version
        }
        Ok(Err(e)) => {
            counter!("iys_gate_snapshot_writes_total", "result" => "error").increment(1);
            tracing::error!("snapshot write failed: {e}");
            last
        }
        Err(e) => {
            counter!("iys_gate_snapshot_writes_total", "result" => "error").increment(1);
            tracing::error!("snapshot writer panicked: {e}");
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
