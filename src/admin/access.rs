//! The access log of `/v1/check`: one JSON line per request (who looked up
//! whom, KVKK), with the token's name (never the token) and the recipient
//! masked. Written by a thread of its own to a file (reopened on SIGHUP, for
//! logrotate), or to the log (target `iys_gate::access`) when no file is set.
//! If the writer falls behind, lines are dropped and counted
//! (`iys_gate_admin_access_log_dropped_total`), never blocking a request.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use serde::Serialize;

/// One access-log line.
#[derive(Debug, Serialize)]
pub struct AccessRecord {
    /// RFC 3339 UTC time.
    pub ts: String,
    /// Path (`/v1/check`).
    pub path: &'static str,
    /// The token's name; null when there was none or it was unknown.
    pub token: Option<String>,
    /// The client's address.
    pub peer: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    /// Brand as `iys/brand`, as asked.
    pub brand: Option<String>,
    /// Channel, as asked.
    pub channel: Option<String>,
    /// Recipient, masked.
    pub recipient: Option<String>,
    /// The decision (200 answers).
    pub decision: Option<&'static str>,
    /// Its reason (200 answers).
    pub reason: Option<&'static str>,
    /// The snapshot version decided from (200 answers).
    pub snapshot_version: Option<u64>,
}

impl AccessRecord {
    /// A record stamped now.
    pub fn now(path: &'static str, status: u16) -> AccessRecord {
        AccessRecord {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            path,
            token: None,
            peer: None,
            status,
            brand: None,
            channel: None,
            recipient: None,
            decision: None,
            reason: None,
            snapshot_version: None,
        }
    }
}

enum Msg {
    Line(String),
    Reopen,
}

/// Where access records go.
pub struct AccessLog {
    tx: Option<SyncSender<Msg>>,
}

impl AccessLog {
    /// To `path` (appended, created if missing), or to the log when `None`.
    pub fn start(path: Option<PathBuf>) -> anyhow::Result<AccessLog> {
        let Some(path) = path else {
            return Ok(AccessLog { tx: None });
        };
        let file = open(&path)?;
        let (tx, rx) = sync_channel(8192);
        std::thread::Builder::new()
            .name("iys-access-log".into())
            .spawn(move || writer(path, file, rx))?;
        Ok(AccessLog { tx: Some(tx) })
    }

    /// Write one record.
    pub fn write(&self, record: &AccessRecord) {
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(_) => return,
        };
        match &self.tx {
            None => tracing::info!(target: "iys_gate::access", "{line}"),
            Some(tx) => match tx.try_send(Msg::Line(line)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    metrics::counter!("iys_gate_admin_access_log_dropped_total").increment(1)
                }
            },
        }
    }

    /// Reopen the file (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Msg::Reopen);
        }
    }

    /// Whether it writes to a file (something SIGHUP can reopen).
    pub fn is_file(&self) -> bool {
        self.tx.is_some()
    }
}

fn open(path: &PathBuf) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // Who looked up whom is for the operator's staff, not every local user.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options
        .open(path)
        .with_context(|| format!("admin.access_log {}", path.display()))
}

fn writer(path: PathBuf, mut file: std::fs::File, rx: Receiver<Msg>) {
    let mut buf = Vec::with_capacity(64 << 10);
    while let Ok(first) = rx.recv() {
        let mut reopen = false;
        let mut take = |m: Msg, buf: &mut Vec<u8>| match m {
            Msg::Line(l) => {
                buf.extend_from_slice(l.as_bytes());
                buf.push(b'\n');
            }
            Msg::Reopen => reopen = true,
        };
        take(first, &mut buf);
        while buf.len() < (64 << 10) {
            match rx.try_recv() {
                Ok(m) => take(m, &mut buf),
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if let Err(e) = file.write_all(&buf) {
                tracing::warn!(path = %path.display(), "admin access log write failed: {e}");
                metrics::counter!("iys_gate_admin_access_log_dropped_total").increment(1);
            }
            buf.clear();
        }
        if reopen {
            match open(&path) {
                Ok(f) => {
                    file = f;
                    tracing::info!(path = %path.display(), "admin access log reopened");
                }
                Err(e) => tracing::warn!("cannot reopen the admin access log: {e:#}"),
            }
        }
    }
}
