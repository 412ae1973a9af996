//! Host names in a response's Via (a sent-by with a name and no
//! `received`), resolved so the response can go on (RFC 3261 §18.2.2, with
//! RFC 3263's SRV step left out: the Via names the port, else 5060).
//!
//! Lookups run off the message path (tokio's resolver, i.e. the system's),
//! at most [`IN_FLIGHT`] at once, each bounded by [`LOOKUP_TIMEOUT`]; the
//! answers are cached for [`TTL`] (a name that does not resolve for
//! [`NEGATIVE_TTL`]) in at most [`MAX_NAMES`] entries, so a flood of made-up
//! names costs a bounded amount of memory and lookups.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::Semaphore;

/// How long an address found for a name is used.
pub const TTL: Duration = Duration::from_secs(60);
/// How long a name that did not resolve is not asked again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Most names cached.
pub const MAX_NAMES: usize = 4096;
/// Most lookups running at once; a response needing one more is dropped
/// (counted `forward_errors{reason="resolve_busy"}`; the sender retransmits).
pub const IN_FLIGHT: usize = 32;
/// Longest a lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the cache holds for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// Its addresses (IPv4 first).
    Found(Arc<[IpAddr]>),
    /// It did not resolve.
    NotFound,
}

/// The cache and the lookup budget.
pub struct Resolver {
    names: DashMap<Box<str>, (Cached, Instant)>,
    in_flight: Arc<Semaphore>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            names: DashMap::new(),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }
}

impl Resolver {
    /// What is cached for `host` and still fresh at `now`.
    pub fn cached(&self, host: &str, now: Instant) -> Option<Cached> {
        let e = self.names.get(host)?;
        let ttl = match e.0 {
            Cached::Found(_) => TTL,
            Cached::NotFound => NEGATIVE_TTL,
        };
        (now.duration_since(e.1) < ttl).then(|| e.0.clone())
    }

    /// A permit to run one lookup, if fewer than [`IN_FLIGHT`] run.
    pub fn permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// Look `host` up (with a permit from [`Resolver::permit`]) and cache
    /// the answer.
    pub async fn lookup(&self, host: &str) -> Cached {
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
        let mut ips: Vec<IpAddr> = match found {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        };
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips.dedup();
        let answer = if ips.is_empty() {
            Cached::NotFound
        } else {
            Cached::Found(ips.into())
        };
        self.insert(host, answer.clone(), Instant::now());
        answer
    }

    /// Cache `answer` for `host`, making room first when full: expired
    /// entries go, and if none had expired, every entry (a full cache of
    /// fresh names is a flood; the names in use come back at once).
    pub fn insert(&self, host: &str, answer: Cached, now: Instant) {
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(host) {
            self.names.retain(|_, (c, at)| {
                let ttl = match c {
                    Cached::Found(_) => TTL,
                    Cached::NotFound => NEGATIVE_TTL,
                };
                now.duration_since(*at) < ttl
            });
            if self.names.len() >= MAX_NAMES {
                self.names.clear();
            }
        }
        self.names.insert(host.into(), (answer, now));
    }

    /// Names cached.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The address to send to among `ips`: one of the socket's family.
pub fn pick(ips: &[IpAddr], v4: bool) -> Option<IpAddr> {
    ips.iter().copied().find(|ip| ip.is_ipv4() == v4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_caches_and_stays_bounded() {
        let r = Resolver::default();
        let t0 = Instant::now();
        assert_eq!(r.cached("localhost", t0), None);
        let Cached::Found(ips) = r.lookup("localhost").await else {
            panic!("localhost resolves");
        };
        assert_eq!(
            pick(&ips, true),
            Some(IpAddr::from([127, 0, 0, 1])),
            "{ips:?}"
        );
        assert!(matches!(
            r.cached("localhost", Instant::now()),
            Some(Cached::Found(_))
        ));
        assert_eq!(r.cached("localhost", Instant::now() + TTL), None, "expired");
        assert_eq!(r.lookup("no-such-host.invalid").await, Cached::NotFound);
        assert_eq!(
            r.cached("no-such-host.invalid", Instant::now()),
            Some(Cached::NotFound)
        );
        for i in 0..MAX_NAMES + 10 {
            r.insert(&format!("h{i}.example"), Cached::NotFound, t0);
        }
        assert!(r.len() <= MAX_NAMES, "{}", r.len());
        let permits: Vec<_> = (0..IN_FLIGHT).map_while(|_| r.permit()).collect();
        assert_eq!(permits.len(), IN_FLIGHT);
        assert!(r.permit().is_none(), "bounded lookups");
    }
}
