//! The admin HTTP listener: `/metrics`, `/healthz`, `/readyz`, `/v1/check`,
//! `/v1/status`, the webhook `/v1/webhook` and `POST /v1/reconcile` (role
//! `admin`: see `crate::reconcile`).
//!
//! Access: `/healthz` and `/readyz` are open (probes); `/metrics` is open
//! unless `admin.metrics_open = false`, then it needs a token with role
//! `metrics` or above; `/v1/check` and `/v1/status` need a token with role
//! `read` or above (`Authorization: Bearer <token>`); the webhook checks its
//! own secret. Optional TLS (`[admin.tls]`), reloaded on SIGHUP and when the
//! files change.
//!
//! The web console (`console.rs`): its files at `/` and `/console/...` are
//! open (they hold no data); the JSON it polls (`/v1/rates`, `/v1/sessions`,
//! `/v1/refusals`) needs a token with role `read` or above.

pub mod access;
pub mod auth;
pub mod console;
mod routes;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::consent::Brand;
use crate::policy::Policy;
use crate::sync::StoreHandle;

pub use routes::handle;

/// What the admin routes read.
pub struct AdminState {
    /// The published snapshot.
    pub store: Arc<StoreHandle>,
    /// The decision policy (for `/v1/check` and `/readyz`).
    pub policy: Policy,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// Shared secret for the webhook; `None` disables it.
    pub webhook_secret: Option<String>,
    /// Brands the gate follows (readiness covers each).
    pub brands: Vec<Brand>,
    /// `/v1/check` answers are decisions too (Kamailio, OpenSIPS and support
    /// tools call it): counted in `iys_gate_decisions_total` with `source="check_api"`.
    pub decisions: crate::observe::metrics::DecisionCounters,
    /// The bearer tokens (`[[admin.tokens]]`).
    pub tokens: auth::Tokens,
    /// `/metrics` without a token.
    pub metrics_open: bool,
    /// Where each `/v1/check` is written.
    pub access: access::AccessLog,
    /// The web console's state (latest refusals, rate samples).
    pub console: console::ConsoleState,
    /// Serve the console's files (`admin.console`).
    pub console_enabled: bool,
    /// The graceful drain: `/readyz` answers 503 once it has begun.
    pub drain: crate::gate::drain::Drain,
    /// The daily counts `/v1/report` answers from.
    pub reports: crate::observe::report::ReportBook,
    /// Runs `POST /v1/reconcile`; `None` without a registry.
    pub reconcile: Option<Arc<crate::reconcile::Reconciler>>,
    /// The fleet this gate belongs to (`[fleet]`): the webhook publishes to
    /// its stream, `/v1/status` and `/readyz` show its state.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// Describe the admin API's own metrics (once per process is enough).
pub fn describe_metrics() {
    use metrics::describe_counter;
    describe_counter!(
        "iys_gate_admin_requests_total",
        "Admin API requests by path and result (ok, unauthorized, forbidden, rate_limited, bad_request, ...)"
    );
    describe_counter!(
        "iys_gate_admin_access_log_dropped_total",
        "Access-log lines dropped (writer behind or write failed)"
    );
    describe_counter!(
        "iys_gate_admin_tls_reloads_total",
        "Admin TLS certificate reloads by result"
    );
}

/// Serve the admin API on `listener` until `shutdown` fires; with `tls`,
/// each connection is a TLS one with the certificate current when it came.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    tls: Option<Arc<tls::AdminTls>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        match &tls {
            None => {
                tokio::spawn(serve_connection(stream, state, peer));
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => serve_connection(s, state, peer).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "admin TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "admin TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn serve_connection<S>(stream: S, state: Arc<AdminState>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<Response<Full<Bytes>>, Infallible>(handle(&state, req, Some(peer)).await) }
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!("admin connection ended: {e}");
    }
}

/// On SIGHUP: reopen the access log and reload the TLS files (when
/// configured; otherwise it is logged and ignored). The handler is
/// installed before this returns (a SIGHUP sent after start is never the
/// default "terminate"), and stays installed after `stop` (tokio keeps it).
pub fn on_hangup(
    state: Arc<AdminState>,
    tls: Option<Arc<tls::AdminTls>>,
    mut stop: crate::gate::Stop,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = hup.recv() => if r.is_none() { return },
                    _ = stop.changed() => return,
                }
                if !state.access.is_file() && tls.is_none() {
                    tracing::info!("SIGHUP: nothing to reload (no admin.access_log file, no admin.tls); ignored");
                    continue;
                }
                tracing::info!("SIGHUP: reopening the admin access log, reloading admin TLS");
                state.access.reopen();
                if let Some(t) = tls.clone() {
                    let _ = tokio::task::spawn_blocking(move || t.reload("sighup")).await;
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = (state, tls);
        Ok(tokio::spawn(async move {
            let _ = stop.changed().await;
        }))
    }
}
