//! The admin HTTP listener: `/metrics`, `/healthz`, `/readyz`, `/v1/check`,
//! `/v1/status` and the webhook `/v1/webhook`.

mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
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
}

/// Serve the admin API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, _peer): (_, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<Response<Full<Bytes>>, Infallible>(handle(&state, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("admin connection ended: {e}");
            }
        });
    }
}
