//! Fault injection: the emulator can misbehave the way a busy registry does,
//! so soak runs and tests can check that the gate's sync backs off, retries
//! and loses nothing.
//!
//! Faults hit only the calls a gate makes to follow the registry: the token
//! call (`POST /oauth2/token`) and the change feeds (`GET …/consents/changes`).
//! Writes (single, bulk) and status queries are never faulted, so a test that
//! plays a citizen or a provider is not disturbed. Each such request draws
//! once: with the configured probabilities it is answered `429` with an H124
//! body, answered `5xx` (500, 502 or 503 with an H000 body), delayed by
//! `slow_delay` before it is served, or — on the change feed only — served
//! with a garbled body (a `200` whose JSON is cut short or is not JSON).
//! All rates are 0 by default: no faults.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{lock, Rejection};
use crate::registry::api::codes;

/// How often each fault is injected. Every rate is a probability per
/// faultable request, in `0..=1`; together they must not exceed 1.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Share of faultable requests answered HTTP 429 / H124. Default 0.
    pub rate_limited: f64,
    /// Share answered HTTP 500, 502 or 503. Default 0.
    pub server_error: f64,
    /// Share delayed by `slow_delay` before being served normally. Default 0.
    pub slow: f64,
    /// How long a slow answer waits. Default 2 s.
    pub slow_delay: Duration,
    /// Share of change-feed pages served garbled (cut short or not JSON).
    /// Token calls drawing this fault are served normally. Default 0.
    pub garbled: f64,
    /// Seed of the draws, for a repeatable run; `None`: from the OS.
    pub seed: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate_limited: 0.0,
            server_error: 0.0,
            slow: 0.0,
            slow_delay: default_slow_delay(),
            garbled: 0.0,
            seed: None,
        }
    }
}

/// The default `slow_delay`: 2 s.
pub fn default_slow_delay() -> Duration {
    Duration::from_secs(2)
}

impl FaultConfig {
    /// True when some fault can be drawn.
    pub fn enabled(&self) -> bool {
        self.rate_limited > 0.0 || self.server_error > 0.0 || self.slow > 0.0 || self.garbled > 0.0
    }

    /// Check every rate is in `0..=1` and that they sum to at most 1; the
    /// error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("rate_limited", self.rate_limited),
            ("server_error", self.server_error),
            ("slow", self.slow),
            ("garbled", self.garbled),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "faults.{name} = {rate} is not a probability: use 0 to 1"
                ));
            }
        }
        let sum = self.rate_limited + self.server_error + self.slow + self.garbled;
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "faults: rate_limited + server_error + slow + garbled = {sum} is more than 1"
            ));
        }
        if self.slow > 0.0 && self.slow_delay.is_zero() {
            return Err("faults.slow_delay is 0 while faults.slow is set: give a delay".into());
        }
        Ok(())
    }
}

/// What one request drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Served normally.
    None,
    /// HTTP 429 / H124.
    RateLimited,
    /// HTTP 5xx with this status.
    Server(u16),
    /// Wait this long, then serve normally.
    Slow(Duration),
    /// Serve, then garble a `200` body this way.
    Garbled(Garble),
}

/// How a garbled page is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garble {
    /// The body cut at half its length (a dropped connection behind a proxy).
    Truncated,
    /// A body that is not JSON at all (a proxy's HTML error page).
    NotJson,
}

/// Faults injected so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// 429s.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_error: u64,
    /// Delayed answers.
    pub slow: u64,
    /// Garbled pages.
    pub garbled: u64,
}

impl FaultCounts {
    /// All faults.
    pub fn total(&self) -> u64 {
        self.rate_limited + self.server_error + self.slow + self.garbled
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rate-limited (429), {} server errors (5xx), {} slow, {} garbled pages",
            self.rate_limited, self.server_error, self.slow, self.garbled
        )
    }
}

/// Which request a draw is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /oauth2/token`.
    Token,
    /// `GET …/consents/changes`.
    Changes,
    /// Anything else: never faulted.
    Other,
}

impl Target {
    /// Classify a request by method and path.
    pub fn of(method: &hyper::Method, path: &str) -> Target {
        let path = path.trim_end_matches('/');
        if *method == hyper::Method::POST && path == "/oauth2/token" {
            Target::Token
        } else if *method == hyper::Method::GET
            && path.starts_with("/sps/")
            && path.ends_with("/consents/changes")
        {
            Target::Changes
        } else {
            Target::Other
        }
    }
}

/// The fault source of one emulator: the rates, the random draws and the counts.
pub struct Faults {
    state: Mutex<(FaultConfig, ChaCha8Rng)>,
    rate_limited: AtomicU64,
    server_error: AtomicU64,
    slow: AtomicU64,
    garbled: AtomicU64,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("config", &self.config())
            .field("counts", &self.counts())
            .finish()
    }
}

impl Faults {
    /// A fault source with these rates.
    pub fn new(config: FaultConfig) -> Faults {
        let rng = match config.seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => ChaCha8Rng::from_entropy(),
        };
        Faults {
            state: Mutex::new((config, rng)),
            rate_limited: AtomicU64::new(0),
            server_error: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            garbled: AtomicU64::new(0),
        }
    }

    /// The rates in force.
    pub fn config(&self) -> FaultConfig {
        lock(&self.state).0.clone()
    }

    /// Change the rates from the next request on (a test turns faults on and
    /// off mid-run); the draws go on from where they were. The counts stay.
    pub fn set(&self, config: FaultConfig) {
        lock(&self.state).0 = config;
    }

    /// Draw the fault for one request and count it.
    pub fn draw(&self, target: Target) -> Fault {
        if target == Target::Other {
            return Fault::None;
        }
        let (c, x, pick): (FaultConfig, f64, u32) = {
            let mut state = lock(&self.state);
            if !state.0.enabled() {
                return Fault::None;
            }
            let (x, pick) = (state.1.gen::<f64>(), state.1.gen_range(0..3));
            (state.0.clone(), x, pick)
        };
        let mut edge = c.rate_limited;
        if x < edge {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Fault::RateLimited;
        }
        edge += c.server_error;
        if x < edge {
            self.server_error.fetch_add(1, Ordering::Relaxed);
            return Fault::Server([500, 502, 503][pick as usize]);
        }
        edge += c.slow;
        if x < edge {
            self.slow.fetch_add(1, Ordering::Relaxed);
            return Fault::Slow(c.slow_delay);
        }
        edge += c.garbled;
        if x < edge && target == Target::Changes {
            self.garbled.fetch_add(1, Ordering::Relaxed);
            let how = if pick == 0 {
                Garble::NotJson
            } else {
                Garble::Truncated
            };
            return Fault::Garbled(how);
        }
        Fault::None
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            server_error: self.server_error.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            garbled: self.garbled.load(Ordering::Relaxed),
        }
    }
}

impl Fault {
    /// The refusal that answers the request instead of serving it, if any.
    pub fn rejection(self) -> Option<Rejection> {
        match self {
            Fault::RateLimited => Some(Rejection::new(
                429,
                codes::RATE_LIMIT,
                "request limit exceeded: retry after a pause (injected fault)",
                None,
            )),
            Fault::Server(status) => Some(Rejection::new(
                status,
                codes::INVALID,
                format!("temporary server error {status} (injected fault)"),
                None,
            )),
            _ => None,
        }
    }

    /// The body to send instead of `body` (a `200` answer's), if garbled.
    pub fn garble(self, body: &[u8]) -> Option<Vec<u8>> {
        match self {
            Fault::Garbled(Garble::Truncated) => Some(body[..body.len() / 2].to_vec()),
            Fault::Garbled(Garble::NotJson) => {
                Some(b"<html><body><h1>502 Bad Gateway</h1>injected fault</body></html>".to_vec())
            }
            _ => None,
        }
    }
}

impl Fault {
    /// A `200` answer with its body garbled when this fault is
    /// [`Fault::Garbled`]; any other answer unchanged.
    pub async fn garble_response(
        self,
        resp: hyper::Response<Full<Bytes>>,
    ) -> hyper::Response<Full<Bytes>> {
        if !matches!(self, Fault::Garbled(_)) || resp.status() != hyper::StatusCode::OK {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(never) => match never {},
        };
        let garbled = self.garble(&bytes).unwrap_or_else(|| bytes.to_vec());
        hyper::Response::from_parts(parts, Full::new(Bytes::from(garbled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::api::ChangesPage;

    fn rates(rate_limited: f64, server_error: f64, slow: f64, garbled: f64) -> FaultConfig {
        FaultConfig {
            rate_limited,
            server_error,
            slow,
            garbled,
            seed: Some(7),
            ..FaultConfig::default()
        }
    }

    #[test]
    fn off_by_default() {
        let f = Faults::new(FaultConfig::default());
        for _ in 0..1000 {
            assert_eq!(f.draw(Target::Changes), Fault::None);
            assert_eq!(f.draw(Target::Token), Fault::None);
        }
        assert_eq!(f.counts().total(), 0);
        assert!(FaultConfig::default().validate().is_ok());
    }

    #[test]
    fn draws_follow_the_rates_and_are_counted() {
        let f = Faults::new(rates(0.1, 0.2, 0.05, 0.15));
        let n = 20_000;
        let mut seen = FaultCounts::default();
        for _ in 0..n {
            match f.draw(Target::Changes) {
                Fault::RateLimited => seen.rate_limited += 1,
                Fault::Server(s) => {
                    assert!([500, 502, 503].contains(&s));
                    seen.server_error += 1;
                }
                Fault::Slow(d) => {
                    assert_eq!(d, default_slow_delay());
                    seen.slow += 1;
                }
                Fault::Garbled(_) => seen.garbled += 1,
                Fault::None => {}
            }
        }
        assert_eq!(seen, f.counts());
        let share = |k: u64| k as f64 / n as f64;
        assert!((share(seen.rate_limited) - 0.1).abs() < 0.02, "{seen:?}");
        assert!((share(seen.server_error) - 0.2).abs() < 0.02, "{seen:?}");
        assert!((share(seen.slow) - 0.05).abs() < 0.02, "{seen:?}");
        assert!((share(seen.garbled) - 0.15).abs() < 0.02, "{seen:?}");
    }

    #[test]
    fn writes_are_never_faulted_and_tokens_never_garbled() {
        let f = Faults::new(rates(0.0, 0.0, 0.0, 1.0));
        for _ in 0..100 {
            assert_eq!(f.draw(Target::Other), Fault::None);
            assert_eq!(f.draw(Target::Token), Fault::None);
        }
        let all = Faults::new(rates(1.0, 0.0, 0.0, 0.0));
        assert_eq!(all.draw(Target::Other), Fault::None);
        assert_eq!(all.draw(Target::Token), Fault::RateLimited);
    }

    #[test]
    fn rates_change_at_run_time_and_counts_stay() {
        let f = Faults::new(rates(1.0, 0.0, 0.0, 0.0));
        assert_eq!(f.draw(Target::Changes), Fault::RateLimited);
        f.set(FaultConfig::default());
        assert_eq!(f.draw(Target::Changes), Fault::None);
        assert_eq!(f.config(), FaultConfig::default());
        assert_eq!(f.counts().rate_limited, 1);
    }

    #[test]
    fn targets() {
        use hyper::Method;
        assert_eq!(
            Target::of(&Method::GET, "/sps/700001/brands/3/consents/changes"),
            Target::Changes
        );
        assert_eq!(Target::of(&Method::POST, "/oauth2/token"), Target::Token);
        assert_eq!(
            Target::of(&Method::POST, "/sps/700001/brands/3/consents"),
            Target::Other
        );
        assert_eq!(
            Target::of(&Method::POST, "/sps/700001/brands/3/consents/changes"),
            Target::Other
        );
    }

    #[test]
    fn validation_names_the_field() {
        let e = rates(1.5, 0.0, 0.0, 0.0).validate().unwrap_err();
        assert!(e.contains("rate_limited"), "{e}");
        let e = rates(0.0, -0.1, 0.0, 0.0).validate().unwrap_err();
        assert!(e.contains("server_error"), "{e}");
        let e = rates(0.5, 0.3, 0.2, 0.1).validate().unwrap_err();
        assert!(e.contains("more than 1"), "{e}");
        let mut c = rates(0.0, 0.0, 0.1, 0.0);
        c.slow_delay = Duration::ZERO;
        assert!(c.validate().unwrap_err().contains("slow_delay"));
        assert!(rates(0.25, 0.25, 0.25, 0.25).validate().is_ok());
    }

    #[test]
    fn answers_and_garbled_bodies() {
        let r = Fault::RateLimited.rejection().unwrap();
        assert_eq!((r.status, r.code()), (429, codes::RATE_LIMIT));
        assert_eq!(Fault::Server(503).rejection().unwrap().status, 503);
        assert!(Fault::Slow(Duration::from_secs(1)).rejection().is_none());
        let page = serde_json::to_vec(&ChangesPage {
            after: "cursor".into(),
            list: Vec::new(),
        })
        .unwrap();
        for how in [Garble::Truncated, Garble::NotJson] {
            let bad = Fault::Garbled(how).garble(&page).unwrap();
            assert!(
                serde_json::from_slice::<ChangesPage>(&bad).is_err(),
                "{how:?} still parses"
            );
        }
        assert!(Fault::None.garble(&page).is_none());
    }
}
