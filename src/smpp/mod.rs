//! The SMS gate: an SMPP v3.4 proxy between senders (ESMEs) and the SMSC.
//! `codec` is sans-I/O; `gating` turns a PDU into decisions (no sockets);
//! `proxy` owns the sockets, sessions, windows and timers. [`start`] is the
//! one entry `serve` calls.

pub mod codec;
pub mod config;
pub mod gating;
pub mod proxy;
pub mod tools;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::gate::{GateContext, Started, Stop};

/// Start the SMPP listeners of `[smpp]` (plain, and TLS when configured):
/// `"smpp"` and `"smpp_tls"` in the result.
pub async fn start(
    ctx: &GateContext,
    cfg: &config::SmppConfig,
    stop: &Stop,
) -> anyhow::Result<Started> {
    let mut started = Started::default();
    let shared = Arc::new(proxy::ProxyShared::new(ctx.clone(), cfg.clone())?);
    let limit = Arc::new(tokio::sync::Semaphore::new(cfg.max_sessions));
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("smpp.listen {}", cfg.listen))?;
    started.listening.push(("smpp", listener.local_addr()?));
    started.tasks.push(tokio::spawn(proxy::serve(
        listener,
        None,
        shared.clone(),
        limit.clone(),
        stop.clone(),
    )));
    if let Some(tls) = &cfg.tls {
        let acceptor = crate::gate::tls::acceptor(&tls.cert, &tls.key, "smpp.tls")?;
        let listener = TcpListener::bind(tls.listen)
            .await
            .with_context(|| format!("smpp.tls.listen {}", tls.listen))?;
        started.listening.push(("smpp_tls", listener.local_addr()?));
        started.tasks.push(tokio::spawn(proxy::serve(
            listener,
            Some(acceptor),
            shared,
            limit,
            stop.clone(),
        )));
    }
    tracing::info!(listen = ?started.addr("smpp"), tls = ?started.addr("smpp_tls"), upstream = %cfg.upstream, "SMPP gate listening");
    Ok(started)
}
