//! The inline SMTP hop: listener, connection limit, one [`session`] per
//! sender connection, each with its own next-hop connection
//! ([`upstream`]).
//!
//! **When the next-hop connection opens: at connect.** A session connects
//! to the next hop (greeting, EHLO, STARTTLS when offered) before it greets
//! the sender, for three reasons: the EHLO reply the sender gets must offer
//! only what the next hop also supports, so its capabilities must be known
//! by then; a next hop that is down is told to the sender at once with a
//! `421` greeting, the answer every MTA retries later, instead of after a
//! whole pipelined transaction; and the sender's first MAIL does not wait
//! for a connection. A next-hop connection that is lost or dropped later
//! (after an abandoned DATA, see `session`) is opened again at the next MAIL.

pub mod session;
pub mod upstream;

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::config::HopConfig;
use super::SmtpShared;
use crate::gate::{Started, Stop};

/// What every hop session shares.
pub struct Hop {
    /// Store, policy, accounts, `[smtp]`.
    pub shared: Arc<SmtpShared>,
    /// `[smtp.hop]`.
    pub cfg: HopConfig,
    /// STARTTLS towards senders, when configured.
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    /// The next hop.
    pub next: upstream::NextHop,
    /// Some account has a password: AUTH is offered.
    pub auth: bool,
    /// Metric handles.
    pub metrics: HopMetrics,
}

/// The hop's metric handles (`iys_gate_smtp_hop_*`), resolved once.
pub struct HopMetrics {
    /// `iys_gate_smtp_hop_sessions`.
    pub sessions: Gauge,
    commands: Vec<Counter>,
    replies: Vec<OnceLock<Counter>>,
    /// `iys_gate_smtp_hop_next_hop_latency_seconds`.
    pub latency: Histogram,
}

/// Command labels, in the order of [`HopMetrics::command`]'s index.
const VERBS: [&str; 16] = [
    "EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "STARTTLS", "AUTH", "VRFY",
    "EXPN", "HELP", "BDAT", "unknown", "invalid",
];

impl HopMetrics {
    fn new() -> HopMetrics {
        // Every failure kind exists from the start at 0, so the first failure
        // shows in `increase()` (alerts) and a scrape lists the series.
        for kind in NEXT_HOP_ERROR_KINDS {
            counter!("iys_gate_smtp_hop_next_hop_errors_total", "kind" => kind).increment(0);
        }
        HopMetrics {
            sessions: gauge!("iys_gate_smtp_hop_sessions"),
            commands: VERBS
                .iter()
                .map(|v| counter!("iys_gate_smtp_hop_commands_total", "command" => *v))
                .collect(),
            replies: (0..400).map(|_| OnceLock::new()).collect(),
            latency: histogram!("iys_gate_smtp_hop_next_hop_latency_seconds"),
        }
    }

    /// Count one command by its verb (`unknown`: not a command; `invalid`:
    /// a known verb with bad arguments or an overlong line).
    pub fn command(&self, verb: &str) {
        let i = VERBS.iter().position(|v| *v == verb).unwrap_or(14);
        self.commands[i].increment(1);
    }

    /// Count one reply to a sender by its code.
    pub fn reply(&self, code: u16) {
        let Some(slot) = self.replies.get(usize::from(code.saturating_sub(200))) else {
            return;
        };
        slot.get_or_init(
            || counter!("iys_gate_smtp_hop_replies_total", "code" => code.to_string()),
        )
        .increment(1);
    }

    /// Count a next-hop failure by kind.
    pub fn next_hop_error(&self, kind: &'static str) {
        counter!("iys_gate_smtp_hop_next_hop_errors_total", "kind" => kind).increment(1);
    }
}

/// The `kind` labels of `iys_gate_smtp_hop_next_hop_errors_total`.
const NEXT_HOP_ERROR_KINDS: [&str; 8] = [
    "connect", "closed", "io", "protocol", "timeout", "tls", "refused", "aborted",
];

/// Bind `[smtp.hop]`'s listener and serve it until `stop` (`"smtp_hop"`).
pub async fn start(
    shared: Arc<SmtpShared>,
    cfg: &HopConfig,
    stop: &Stop,
    started: &mut Started,
) -> anyhow::Result<()> {
    let acceptor = match &cfg.tls {
        Some(t) => Some(crate::gate::tls::acceptor(&t.cert, &t.key, "smtp.hop.tls")?),
        None => None,
    };
    let tls = if cfg.next_hop_starttls {
        Some((
            upstream::tls_connector(cfg.next_hop_tls_insecure)?,
            upstream::server_name(&cfg.next_hop)?,
        ))
    } else {
        None
    };
    let next = upstream::NextHop {
        addr: cfg.next_hop.clone(),
        hostname: cfg.hostname.clone(),
        tls,
        connect_timeout: cfg.next_hop_connect_timeout,
    };
    let auth = shared.cfg.accounts.iter().any(|a| {
        shared
            .accounts
            .by_name(&a.name)
            .is_some_and(|a| a.password.is_some())
    });
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("smtp.hop.listen {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, next_hop = %cfg.next_hop, "SMTP hop listening");
    let hop = Arc::new(Hop {
        shared,
        cfg: cfg.clone(),
        acceptor,
        next,
        auth,
        metrics: HopMetrics::new(),
    });
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let task = tokio::spawn(serve(listener, hop, limit, stop.clone()));
    started.listening.push(("smtp_hop", addr));
    started.tasks.push(task);
    Ok(())
}

async fn serve(listener: TcpListener, hop: Arc<Hop>, limit: Arc<Semaphore>, mut stop: Stop) {
    loop {
        // Stop first: once the drain began, nothing more is accepted.
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("smtp hop accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            counter!("iys_gate_smtp_hop_connections_refused_total").increment(1);
            tracing::warn!(%peer, "smtp hop connection refused: smtp.hop.max_connections reached");
            let hostname = hop.cfg.hostname.clone();
            let metrics_hop = hop.clone();
            tokio::spawn(async move {
                let line =
                    format!("421 4.3.2 {hostname} too many connections, try again later\r\n");
                metrics_hop.metrics.reply(421);
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    stream.write_all(line.as_bytes()),
                )
                .await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let hop = hop.clone();
        let stop = stop.clone();
        // Counted until the session ends, so the drain can wait for it.
        let open = hop.shared.ctx.drain.session("smtp_hop");
        tokio::spawn(async move {
            hop.metrics.sessions.increment(1.0);
            session::run(Box::new(stream), peer, hop.clone(), stop).await;
            hop.metrics.sessions.decrement(1.0);
            drop(permit);
            drop(open);
        });
    }
}
