//! TLS on the admin listener, with reload: the PEM files are read again on
//! SIGHUP and when their modification time or size changes (checked every
//! `admin.tls.reload_check`). New connections get the new certificate;
//! open ones keep theirs. A pair that does not load (half-written, key and
//! certificate not matching) is reported and the previous one kept.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::AdminTlsConfig;

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The admin listener's current TLS configuration.
pub struct AdminTls {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<rustls::ServerConfig>,
    stamps: Mutex<(Stamp, Stamp)>,
}

impl AdminTls {
    /// Load the files (an error names `admin.tls.cert` / `admin.tls.key`).
    pub fn load(cfg: &AdminTlsConfig) -> anyhow::Result<AdminTls> {
        let stamps = (stamp(&cfg.cert), stamp(&cfg.key));
        let config = crate::gate::tls::server_config(&cfg.cert, &cfg.key, "admin.tls")?;
        Ok(AdminTls {
            cert: cfg.cert.clone(),
            key: cfg.key.clone(),
            current: ArcSwap::new(config),
            stamps: Mutex::new(stamps),
        })
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Load the files again; `why` is `sighup` or `changed`.
    pub fn reload(&self, why: &'static str) {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        match crate::gate::tls::server_config(&self.cert, &self.key, "admin.tls") {
            Ok(c) => {
                self.current.store(c);
                metrics::counter!("iys_gate_admin_tls_reloads_total", "result" => "ok")
                    .increment(1);
                tracing::info!(cert = %self.cert.display(), trigger = why, "admin TLS certificate reloaded");
            }
            Err(e) => {
                metrics::counter!("iys_gate_admin_tls_reloads_total", "result" => "error")
                    .increment(1);
                tracing::warn!(
                    trigger = why,
                    "admin TLS reload failed, keeping the previous certificate: {e:#}"
                );
            }
        }
    }

    /// Reload when either file's modification time or size changed since
    /// the last load (or attempt).
    pub fn reload_if_changed(&self) {
        let now = (stamp(&self.cert), stamp(&self.key));
        let changed = *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) != now;
        if changed {
            self.reload("changed");
        }
    }
}

/// Check the files every `every` until `stop` fires.
pub async fn watch(tls: Arc<AdminTls>, every: std::time::Duration, mut stop: crate::gate::Stop) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let t = tls.clone();
        let _ = tokio::task::spawn_blocking(move || t.reload_if_changed()).await;
    }
}
