//! The audit trail: one JSON line per refusal (and per would-be refusal in
//! monitor mode), for the regulator's questions. Addresses are masked unless
//! configured otherwise. Writing happens off the data path; if the writer
//! falls behind, records are dropped and counted, never blocking a message.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::consent::{mask_text, Brand, Channel};
use crate::policy::Decision;

/// One audit line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time.
    pub ts: String,
    /// `smpp`, `smtp`, `sip` or `check`.
    pub protocol: &'static str,
    /// Channel.
    pub channel: Channel,
    /// Brand as `iys/brand`.
    pub brand: String,
    /// Recipient, masked unless configured.
    pub recipient: String,
    /// `refuse` or `defer`.
    pub decision: &'static str,
    /// Reason.
    pub reason: &'static str,
    /// True when monitor mode let it through.
    pub monitor: bool,
    /// Snapshot version decided from.
    pub snapshot_version: u64,
    /// Sender account or session, when known.
    pub account: Option<String>,
}

/// Where audit records go.
#[derive(Clone)]
pub struct Audit {
    tx: Option<mpsc::Sender<AuditRecord>>,
    unmasked: bool,
    dropped: metrics::Counter,
}

impl Audit {
    /// Start the writer: to `path` (append) or to the log when `None`.
    pub fn start(path: Option<PathBuf>, unmasked: bool) -> std::io::Result<Audit> {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(65_536);
        let mut out: Box<dyn Write + Send> = match &path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(std::io::BufWriter::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                ))
            }
            None => Box::new(std::io::sink()),
        };
        let to_log = path.is_none();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                    if batch.len() >= 4096 {
                        break;
                    }
                }
                for r in &batch {
                    if to_log {
                        tracing::info!(target: "iys_gate::audit", protocol = r.protocol, channel = %r.channel, brand = %r.brand, recipient = %r.recipient, decision = r.decision, reason = r.reason, monitor = r.monitor, snapshot = r.snapshot_version, "refusal");
                    } else if let Ok(line) = serde_json::to_string(r) {
                        let _ = writeln!(out, "{line}");
                    }
                }
                let _ = out.flush();
            }
        });
        Ok(Audit {
            tx: Some(tx),
            unmasked,
            dropped: metrics::counter!("iys_gate_audit_dropped_total"),
        })
    }

    /// An audit that records nothing (tests, tools).
    pub fn disabled() -> Audit {
        Audit {
            tx: None,
            unmasked: false,
            dropped: metrics::counter!("iys_gate_audit_dropped_total"),
        }
    }

    /// Record a refusal or deferral (allowed decisions are not audited).
    pub fn refusal(
        &self,
        protocol: &'static str,
        channel: Channel,
        brand: Brand,
        recipient: &str,
        d: &Decision,
        account: Option<&str>,
    ) {
        let Some(tx) = &self.tx else { return };
        let record = AuditRecord {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            protocol,
            channel,
            brand: brand.to_string(),
            recipient: if self.unmasked {
                recipient.trim().to_string()
            } else {
                mask_text(recipient)
            },
            decision: d.verdict.as_str(),
            reason: d.reason.as_str(),
            monitor: d.monitor,
            snapshot_version: d.snapshot_version,
            account: account.map(str::to_string),
        };
        if tx.try_send(record).is_err() {
            self.dropped.increment(1);
        }
    }
}
