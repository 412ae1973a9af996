//! The Postfix policy service: listener, connection limit, one [`session`]
//! per Postfix connection.
//!
//! Postfix's smtpd asks with `check_policy_service inet:host:port` in
//! `smtpd_recipient_restrictions`; each smtpd process keeps one connection
//! and sends one request at a time. What each request gets:
//!
//! | request | answer | `result` label |
//! |---|---|---|
//! | `protocol_state=RCPT`, account found, recipient allowed | `allow_action` (`DUNNO`) | `allow` |
//! | the same, refused | `550 5.7.1 <reason text>` | `refuse` |
//! | the same, cannot decide (no data, stale data, past `deadline`) | `451 4.7.1 <text>` | `defer` |
//! | `protocol_state=RCPT`, no account matches | per `unmatched`: `DUNNO`, `550 5.7.1`, `451 4.7.1` | `unmatched` |
//! | any other `protocol_state` | `DUNNO` | `dunno` |
//! | `request` other than `smtpd_access_policy`, or none | `DUNNO` | `dunno` |
//! | malformed or oversized | no answer, connection closed | `error` |
//!
//! A request other than `smtpd_access_policy` is not about a recipient, and
//! only Postfix's smtpd asks this service, so it is let through (`DUNNO`)
//! rather than refused; it is logged at debug level.
//!
//! Metrics: `iys_gate_smtp_policy_requests_total{result}`,
//! `iys_gate_smtp_policy_connections` (gauge),
//! `iys_gate_smtp_policy_connections_refused_total` (past `max_connections`),
//! `iys_gate_smtp_policy_malformed_total{kind}` (`too_large`,
//! `too_many_lines`, `syntax`, `not_utf8`, `repeated`, `empty`); decisions in
//! `iys_gate_decisions_total{channel="EPOSTA"}` and refusals in the audit
//! trail (protocol `smtp_policy`).

pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use metrics::{counter, gauge, Counter, Gauge};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::codec::policy::Limits;
use super::config::PolicyServiceConfig;
use super::SmtpShared;
use crate::gate::{Started, Stop};

/// What a request was answered with, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// RCPT, recipient allowed.
    Allow = 0,
    /// RCPT, refused (`550 5.7.1`).
    Refuse,
    /// RCPT, not decidable now (`451 4.7.1`).
    Defer,
    /// Not a RCPT request, or not `smtpd_access_policy`: `DUNNO`.
    Dunno,
    /// RCPT from a sender matching no account.
    Unmatched,
    /// Malformed or oversized: connection closed.
    Error,
}

impl Outcome {
    /// Every outcome, in index order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Allow,
        Outcome::Refuse,
        Outcome::Defer,
        Outcome::Dunno,
        Outcome::Unmatched,
        Outcome::Error,
    ];

    /// The `result` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Refuse => "refuse",
            Outcome::Defer => "defer",
            Outcome::Dunno => "dunno",
            Outcome::Unmatched => "unmatched",
            Outcome::Error => "error",
        }
    }
}

/// The service's metric handles, registered once per listener.
pub struct PolicyMetrics {
    /// `iys_gate_smtp_policy_requests_total{result}`, by [`Outcome`] index.
    pub requests: [Counter; 6],
    /// `iys_gate_smtp_policy_connections`.
    pub connections: Gauge,
    /// `iys_gate_smtp_policy_connections_refused_total`.
    pub refused: Counter,
}

impl PolicyMetrics {
    fn new() -> PolicyMetrics {
        metrics::describe_counter!(
            "iys_gate_smtp_policy_requests_total",
            "Postfix policy requests by result (allow, refuse, defer, dunno, unmatched, error)"
        );
        metrics::describe_gauge!(
            "iys_gate_smtp_policy_connections",
            "Open Postfix policy connections"
        );
        metrics::describe_counter!(
            "iys_gate_smtp_policy_connections_refused_total",
            "Policy connections refused past smtp.policy.max_connections"
        );
        metrics::describe_counter!(
            "iys_gate_smtp_policy_malformed_total",
            "Malformed or oversized policy requests by kind (the connection is closed)"
        );
        PolicyMetrics {
            requests: Outcome::ALL
                .map(|o| counter!("iys_gate_smtp_policy_requests_total", "result" => o.as_str())),
            connections: gauge!("iys_gate_smtp_policy_connections"),
            refused: counter!("iys_gate_smtp_policy_connections_refused_total"),
        }
    }
}

/// What every policy session shares.
pub struct PolicyService {
    /// Store, policy, counters, audit, `[smtp]`, accounts.
    pub smtp: Arc<SmtpShared>,
    /// `[smtp.policy]`.
    pub cfg: PolicyServiceConfig,
    /// The request codec's limits (`max_request_size`).
    pub limits: Limits,
    /// Metric handles.
    pub metrics: PolicyMetrics,
}

/// Bind `[smtp.policy]`'s listener and serve it until `stop` (`"smtp_policy"`).
pub async fn start(
    shared: Arc<SmtpShared>,
    cfg: &PolicyServiceConfig,
    stop: &Stop,
    started: &mut Started,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("smtp.policy.listen {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    started.listening.push(("smtp_policy", addr));
    let service = Arc::new(PolicyService {
        smtp: shared,
        cfg: cfg.clone(),
        limits: Limits::new(cfg.max_request_size),
        metrics: PolicyMetrics::new(),
    });
    tracing::info!(listen = %addr, "SMTP policy service listening");
    started
        .tasks
        .push(tokio::spawn(serve(listener, service, stop.clone())));
    Ok(())
}

/// Accept Postfix connections until `stop`; past `max_connections` a
/// connection is closed at once (Postfix retries, then applies its
/// `default_action`).
async fn serve(listener: TcpListener, service: Arc<PolicyService>, mut stop: Stop) {
    let limit = Arc::new(Semaphore::new(service.cfg.max_connections));
    loop {
        // Stop first: once the drain began, nothing more is accepted.
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("smtp policy accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            service.metrics.refused.increment(1);
            tracing::warn!(%peer, "smtp policy connection refused: smtp.policy.max_connections reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let stop = stop.clone();
        // Counted until the session ends, so the drain can wait for it.
        let open = service.smtp.ctx.drain.session("smtp_policy");
        tokio::spawn(async move {
            service.metrics.connections.increment(1.0);
            session::run(stream, peer, &service, stop).await;
            service.metrics.connections.decrement(1.0);
            drop(permit);
            drop(open);
        });
    }
}
