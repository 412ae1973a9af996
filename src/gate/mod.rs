//! What every protocol gate shares, below SMPP, SMTP and SIP: the store
//! handle, the policy, the decision counters and the audit trail
//! ([`GateContext`]), the stop signal, and TLS set-up from PEM files.
//! Protocols import from here; `serve` builds one context and hands it to
//! each protocol's `start`.

pub mod drain;
pub mod tls;

use std::sync::Arc;

use tokio::sync::watch;

use std::time::SystemTime;

use crate::consent::{Brand, ConsentTime, MessageClass};
use crate::observe::audit::{Audit, AuditBatch};
use crate::observe::metrics::{DecisionCounters, DecisionTally};
use crate::observe::report::{ReportBook, ReportTally};
use crate::policy::Policy;
use crate::sync::StoreHandle;

/// What every protocol gate shares: the store, the policy, counters and audit.
#[derive(Clone)]
pub struct GateContext {
    /// The published snapshot.
    pub store: Arc<StoreHandle>,
    /// Decision policy.
    pub policy: Policy,
    /// Decision counters.
    pub decisions: DecisionCounters,
    /// Refusal audit trail.
    pub audit: Audit,
    /// The graceful drain: its deadline and the sessions still open.
    pub drain: drain::Drain,
    /// Daily counts by brand, channel, reason and dealer (`iys-gate
    /// report`, `/v1/report`); `ReportBook::default()` counts nothing.
    pub reports: ReportBook,
}

/// Flips to `true` when the gate stops; every listener and session watches it.
pub type Stop = watch::Receiver<bool>;

/// The tasks and bound addresses one protocol's `start` brought up.
#[derive(Default)]
pub struct Started {
    /// Listener name (`"smpp"`, `"smpp_tls"`, `"smtp_policy"`, ...) and where it listens.
    pub listening: Vec<(&'static str, std::net::SocketAddr)>,
    /// The accept loops; each ends when [`Stop`] flips.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Started {
    /// Take over another protocol's listeners and tasks.
    pub fn absorb(&mut self, other: Started) {
        self.listening.extend(other.listening);
        self.tasks.extend(other.tasks);
    }

    /// Where the named listener listens.
    pub fn addr(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.listening
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }
}

/// What one turn of a session's loop gathers for the shared metrics and the
/// audit trail, handed over together when the turn ends.
#[derive(Default)]
pub struct TurnRecord {
    /// Refusals, for the audit writer.
    pub audit: AuditBatch,
    /// Decisions, for `iys_gate_decisions_total`.
    pub decisions: DecisionTally,
    /// Decisions by brand and dealer, for the daily reports.
    pub reports: ReportTally,
}

impl TurnRecord {
    /// Count a decision, and add it to the audit batch unless it allowed
    /// the message: one record for every message (or recipient, or call)
    /// refused, deferred, or let through only by monitor mode.
    #[allow(clippy::too_many_arguments)]
    pub fn decided(
        &mut self,
        at: TurnClock,
        protocol: &'static str,
        channel: crate::consent::Channel,
        account: &str,
        brand: Brand,
        recipient: &str,
        d: &crate::policy::Decision,
    ) {
        self.decisions.record(channel, d);
        if d.verdict != crate::policy::Verdict::Allow {
            self.audit.refusal(
                at.wall,
                protocol,
                channel,
                brand,
                recipient,
                d,
                Some(account),
            );
        }
    }

    /// Hand everything over to the shared counters and the audit writer.
    pub fn hand_over(&mut self, ctx: &GateContext) {
        ctx.decisions.add(&mut self.decisions);
        ctx.audit.submit(&mut self.audit);
        ctx.reports.add(&mut self.reports);
    }
}

/// One reading of the wall clock in the two forms a decision needs: the
/// audit's timestamp and the policy's second.
#[derive(Debug, Clone, Copy)]
pub struct TurnClock {
    /// When, for the audit trail.
    pub wall: SystemTime,
    /// The same instant, to the second, for data age and consent dates.
    pub consent: ConsentTime,
}

impl TurnClock {
    /// Read `wall` into both forms.
    pub fn at(wall: SystemTime) -> TurnClock {
        TurnClock {
            wall,
            consent: ConsentTime::at(wall),
        }
    }
}

/// Brand, class and dealer of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The brand it is sent for.
    pub brand: Brand,
    /// Informational or commercial (and to whom).
    pub class: MessageClass,
    /// The dealer, if named.
    pub retailer: Option<u32>,
}

/// A client network in the config: CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a
/// bare address (one host). Used to map peers to accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(pub ipnet::IpNet);

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<ipnet::IpNet>() {
            return Ok(Network(n.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Network(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{s:?} is not a network (10.0.0.0/8) or an address"))
    }
}

impl<'de> serde::Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The values of the İYS fields a message carries (SMTP and SIP headers
/// `X-IYS-Message-Type`, `X-IYS-Brand-Code`, `X-IYS-Retailer-Code`), as found
/// and trimmed, not yet checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IysFields<'a> {
    /// `X-IYS-Message-Type`.
    pub message_type: Option<&'a str>,
    /// `X-IYS-Brand-Code`.
    pub brand_code: Option<&'a str>,
    /// `X-IYS-Retailer-Code`.
    pub retailer_code: Option<&'a str>,
}

impl Classified {
    /// Apply a message's İYS fields to what its sender's account gives:
    /// a class `0`/`11`/`12`, another brand of the same İYS code when
    /// `may_name` allows it, a dealer. An unreadable value, or a brand the
    /// sender may not name, is an error whose text names the field; `sender`
    /// ("account", "trunk") words it.
    pub fn with_iys_fields(
        mut self,
        fields: IysFields<'_>,
        may_name: impl Fn(u32) -> bool,
        sender: &str,
    ) -> Result<Classified, String> {
        if let Some(t) = fields.message_type {
            self.class = t
                .parse::<u8>()
                .ok()
                .and_then(MessageClass::from_code)
                .ok_or_else(|| format!("X-IYS-Message-Type {t:?} is not 0, 11 or 12"))?;
        }
        if let Some(b) = fields.brand_code {
            let code: u32 = b
                .parse()
                .map_err(|_| format!("X-IYS-Brand-Code {b:?} is not a brand code"))?;
            if !may_name(code) {
                return Err(format!(
                    "X-IYS-Brand-Code {code} is not a brand this {sender} may send for"
                ));
            }
            self.brand = Brand::new(self.brand.iys_code, code);
        }
        if let Some(r) = fields.retailer_code {
            self.retailer = Some(
                r.parse()
                    .map_err(|_| format!("X-IYS-Retailer-Code {r:?} is not a retailer code"))?,
            );
        }
        Ok(self)
    }
}

/// Configured networks mapped to an index (an account, a trunk), matched by
/// the longest prefix; IPv4-mapped IPv6 peers match their IPv4 networks.
#[derive(Debug, Default)]
pub struct NetworkIndex {
    /// Longest prefix first once [`NetworkIndex::finish`] ran.
    entries: Vec<(ipnet::IpNet, usize)>,
}

impl NetworkIndex {
    /// Map `network` to `index`.
    pub fn insert(&mut self, network: Network, index: usize) {
        self.entries.push((network.0, index));
    }

    /// Order the entries for matching (call once after the inserts).
    pub fn finish(&mut self) {
        self.entries
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
    }

    /// The index of the longest network holding `ip`.
    pub fn find(&self, ip: std::net::IpAddr) -> Option<usize> {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.entries
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|&(_, i)| i)
    }
}

/// A server a tool runs in this process (the SMSC and SMTP sinks): where it
/// listens, its shared counters, and its task; dropping it stops the server
/// and its connections.
#[derive(Debug)]
pub struct ServerHandle<S> {
    addr: std::net::SocketAddr,
    stats: Arc<S>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> ServerHandle<S> {
    /// A handle for the server `task` listening on `addr`.
    pub fn new(
        addr: std::net::SocketAddr,
        stats: Arc<S>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        ServerHandle { addr, stats, task }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Its counters and what it keeps of recent traffic.
    pub fn stats(&self) -> &Arc<S> {
        &self.stats
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

impl<S> Drop for ServerHandle<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
