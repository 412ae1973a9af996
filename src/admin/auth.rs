//! Bearer tokens for the admin API: each configured token is kept only as
//! its SHA-256 digest, a presented token is hashed and compared with every
//! digest in constant time (no early exit, no length leak), and no token
//! ever reaches a log line or an error message.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use subtle::ConstantTimeEq;

use crate::config::{RateLimitConfig, ResolvedToken, Role};

type Digest = [u8; 32];

fn digest(token: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One configured token: its name, role, digest and rate limiter.
pub struct Token {
    /// The name the access log writes.
    pub name: String,
    /// What it may do.
    pub role: Role,
    digest: Digest,
    limiter: Option<Mutex<Bucket>>,
}

impl Token {
    /// Take one `/v1/check` from the token's bucket; `Err(retry_after)` when empty.
    pub fn take_check(&self, now: Instant) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some(b) => b.lock().unwrap_or_else(|p| p.into_inner()).take(now),
        }
    }
}

/// Who sent a request.
pub enum Caller<'a> {
    /// No `Authorization: Bearer` header.
    Anonymous,
    /// A bearer token that matches no configured one.
    Unknown,
    /// A configured token.
    Known(&'a Token),
}

/// The configured tokens.
#[derive(Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// From the resolved config tokens.
    pub fn new(resolved: &[ResolvedToken]) -> Tokens {
        let now = Instant::now();
        Tokens {
            tokens: resolved
                .iter()
                .map(|t| Token {
                    name: t.name.clone(),
                    role: t.role,
                    digest: digest(t.secret.as_bytes()),
                    limiter: t.check_rate_limit.map(|l| Mutex::new(Bucket::new(l, now))),
                })
                .collect(),
        }
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Who sent these headers. The scheme is case-insensitive (RFC 7235).
    pub fn caller(&self, headers: &HeaderMap) -> Caller<'_> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Caller::Anonymous;
        };
        let Some(presented) = bearer(value.as_bytes()) else {
            return Caller::Anonymous;
        };
        let presented = digest(presented);
        // Compare with every token (no early exit): the time taken says
        // nothing about which token, or how much of one, matched.
        let mut found = None;
        for t in &self.tokens {
            let matches: bool = t.digest.ct_eq(&presented).into();
            if matches && found.is_none() {
                found = Some(t);
            }
        }
        match found {
            Some(t) => Caller::Known(t),
            None => Caller::Unknown,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// A token bucket.
struct Bucket {
    level: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl Bucket {
    fn new(l: RateLimitConfig, now: Instant) -> Bucket {
        Bucket {
            level: f64::from(l.burst),
            burst: f64::from(l.burst),
            per_second: l.per_second,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.level = (self.level + elapsed * self.per_second).min(self.burst);
        if self.level >= 1.0 {
            self.level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.level) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str, role: Role) -> ResolvedToken {
        ResolvedToken {
            name: name.into(),
            role,
            secret: secret.into(),
            check_rate_limit: None,
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_matched_by_digest() {
        let t = Tokens::new(&[
            token("prom", "metrics-token-0123456789", Role::Metrics),
            token("noc", "read-token-0123456789", Role::Read),
        ]);
        let name = |h: &HeaderMap| match t.caller(h) {
            Caller::Anonymous => "anonymous".to_string(),
            Caller::Unknown => "unknown".to_string(),
            Caller::Known(t) => t.name.clone(),
        };
        assert_eq!(name(&HeaderMap::new()), "anonymous");
        assert_eq!(name(&headers("Basic abc")), "anonymous");
        assert_eq!(name(&headers("Bearer ")), "anonymous");
        assert_eq!(name(&headers("Bearer read-token-0123456789")), "noc");
        assert_eq!(name(&headers("bearer  read-token-0123456789 ")), "noc");
        assert_eq!(name(&headers("Bearer read-token-012345678")), "unknown");
        assert_eq!(name(&headers("Bearer metrics-token-0123456789")), "prom");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            RateLimitConfig {
                per_second: 2.0,
                burst: 3,
            },
            t0,
        );
        for _ in 0..3 {
            b.take(t0).unwrap();
        }
        let wait = b.take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        b.take(t0 + Duration::from_millis(500)).unwrap();
        assert!(b.take(t0 + Duration::from_millis(500)).is_err());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            b.take(later).unwrap();
        }
        assert!(b.take(later).is_err());
    }
}
