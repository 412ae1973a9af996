//! The SMPP proxy: listeners (plain and TLS), the connection limit, and one
//! [`session`] per bound sender.

mod counts;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::config::{AccountConfig, SmppConfig};
use super::gating::ConcatMemory;
use crate::gate::GateContext;

/// What every session shares.
pub struct ProxyShared {
    /// Store, policy, counters, audit.
    pub ctx: GateContext,
    /// `[smpp]`.
    pub cfg: SmppConfig,
    /// Accounts by system_id.
    pub accounts: HashMap<String, Account>,
}

/// A sender account as the sessions use it.
pub struct Account {
    /// `[[smpp.accounts]]`.
    pub config: AccountConfig,
    /// The resolved password.
    pub password: String,
    /// Decisions for concatenated messages, shared by all the account's
    /// sessions: a sender may spread the parts of one message over its binds.
    pub concat: Arc<Mutex<ConcatMemory>>,
}

/// Concatenated messages an account's memory holds, and for how long.
const CONCAT_MESSAGES: usize = 16_384;
const CONCAT_TTL: Duration = Duration::from_secs(600);

impl ProxyShared {
    /// Resolve account passwords (file or environment).
    pub fn new(ctx: GateContext, cfg: SmppConfig) -> anyhow::Result<ProxyShared> {
        let mut accounts = HashMap::new();
        for (i, a) in cfg.accounts.iter().enumerate() {
            let pw = match (&a.password, &a.password_env) {
                (Some(p), _) => p.clone(),
                (None, Some(var)) => std::env::var(var).with_context(|| {
                    format!("smpp.accounts[{i}].password_env: {var} is not set")
                })?,
                (None, None) => {
                    anyhow::bail!("smpp.accounts[{i}].password: set password or password_env")
                }
            };
            let account = Account {
                config: a.clone(),
                password: pw,
                concat: Arc::new(Mutex::new(ConcatMemory::new(CONCAT_MESSAGES, CONCAT_TTL))),
            };
            accounts.insert(a.system_id.clone(), account);
        }
        Ok(ProxyShared { ctx, cfg, accounts })
    }
}

/// Accept senders on `listener` (TLS when `tls` is given) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<ProxyShared>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sessions = metrics::gauge!("iys_gate_smpp_sessions");
    // The upstream error series exist from the start (at zero), so the
    // first failure already shows as an increase.
    for kind in ["bind_failed", "disconnect", "rebind_failed", "timeout"] {
        metrics::counter!("iys_gate_smpp_upstream_errors_total", "kind" => kind).increment(0);
    }
    loop {
        // Stop first: once the drain began, nothing more is accepted.
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        let connected = std::time::Instant::now();
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("smpp accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::counter!("iys_gate_smpp_connections_refused_total").increment(1);
            tracing::warn!(%peer, "smpp connection refused: smpp.max_sessions reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let sessions = sessions.clone();
        let shutdown = shutdown.clone();
        // Counted until the session ends, so the drain can wait for it.
        let open = shared.ctx.drain.session("smpp");
        tokio::spawn(async move {
            sessions.increment(1.0);
            match tls {
                // Plain TCP splits without a lock between the halves.
                None => session::run(stream.into_split(), peer, connected, shared, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(shared.cfg.bind_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls_stream)) => {
                            let halves = tokio::io::split(tls_stream);
                            session::run(halves, peer, connected, shared, shutdown).await
                        }
                        Ok(Err(e)) => tracing::info!(%peer, "smpp TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "smpp TLS handshake timed out"),
                    }
                }
            }
            sessions.decrement(1.0);
            drop(permit);
            drop(open);
        });
    }
}
