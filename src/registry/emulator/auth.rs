//! Bearer tokens (password and refresh grants) and the per-second request limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::lock;

/// A user the emulator accepts on the password grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Password, in clear: this is a test double.
    pub password: String,
}

impl User {
    /// A user from name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        User {
            username: username.into(),
            password: password.into(),
        }
    }
}

/// Why a token was refused (all map to HTTP 401 / H351).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Unknown,
    Expired,
}

#[derive(Debug)]
struct Grant {
    expires: Instant,
}

/// Issued access and refresh tokens.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    access: Mutex<HashMap<String, Grant>>,
    refresh: Mutex<HashMap<String, Grant>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    /// A new access/refresh pair.
    pub(crate) fn issue(
        &self,
        now: Instant,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> (String, String) {
        let access = random_token();
        let refresh = random_token();
        {
            let mut map = lock(&self.access);
            map.retain(|_, g| g.expires > now);
            map.insert(
                access.clone(),
                Grant {
                    expires: now + access_ttl,
                },
            );
        }
        {
            let mut map = lock(&self.refresh);
            map.retain(|_, g| g.expires > now);
            map.insert(
                refresh.clone(),
                Grant {
                    expires: now + refresh_ttl,
                },
            );
        }
        (access, refresh)
    }

    /// Check an access token.
    pub(crate) fn check_access(&self, token: &str, now: Instant) -> Result<(), TokenProblem> {
        check(&self.access, token, now, false)
    }

    /// Use up a refresh token (each works once: the answer carries a new one).
    pub(crate) fn redeem_refresh(&self, token: &str, now: Instant) -> Result<(), TokenProblem> {
        check(&self.refresh, token, now, true)
    }
}

fn check(
    map: &Mutex<HashMap<String, Grant>>,
    token: &str,
    now: Instant,
    consume: bool,
) -> Result<(), TokenProblem> {
    let mut map = lock(map);
    let expires = map.get(token).ok_or(TokenProblem::Unknown)?.expires;
    if expires <= now {
        map.remove(token);
        return Err(TokenProblem::Expired);
    }
    if consume {
        map.remove(token);
    }
    Ok(())
}

/// A fixed one-second window counter.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: u32,
    window: Mutex<(Instant, u32)>,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit {
            per_second,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Count one request; false when this second's budget is spent.
    pub(crate) fn admit(&self, now: Instant) -> bool {
        let mut w = lock(&self.window);
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        if w.1 >= self.per_second {
            return false;
        }
        w.1 += 1;
        true
    }

    pub(crate) fn per_second(&self) -> u32 {
        self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_refresh_once() {
        let t = Tokens::default();
        let now = Instant::now();
        let (a, r) = t.issue(now, Duration::from_secs(10), Duration::from_secs(20));
        assert_eq!(t.check_access(&a, now), Ok(()));
        assert_eq!(
            t.check_access(&a, now + Duration::from_secs(10)),
            Err(TokenProblem::Expired)
        );
        assert_eq!(t.check_access("nope", now), Err(TokenProblem::Unknown));
        assert_eq!(t.redeem_refresh(&r, now), Ok(()));
        assert_eq!(t.redeem_refresh(&r, now), Err(TokenProblem::Unknown));
    }

    #[test]
    fn rate_limit_resets_each_second() {
        let now = Instant::now();
        let rl = RateLimit::new(2);
        assert!(rl.admit(now) && rl.admit(now));
        assert!(!rl.admit(now));
        assert!(rl.admit(now + Duration::from_millis(1001)));
    }
}
