//! A request budget: calls to the registry spaced so that at most `rps`
//! start in any second. The registry limits requests per second per
//! provider (HTTP 429 / H124), and the change-feed follower needs its share,
//! so background work (dealer refresh, reconciliation) paces itself.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{backoff, ClientError};

/// Spaces calls `1/rps` apart.
#[derive(Debug)]
pub struct Budget {
    gap: Duration,
    next: Instant,
    used: u64,
}

impl Budget {
    /// A budget of `rps` requests per second (at least 0.01).
    pub fn new(rps: f64) -> Budget {
        Budget {
            gap: Duration::from_secs_f64(1.0 / rps.max(0.01)),
            next: Instant::now(),
            used: 0,
        }
    }

    /// Wait for the next request's turn, and count it.
    pub async fn take(&mut self) {
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next = self.next.max(now) + self.gap;
        self.used += 1;
    }

    /// Requests taken so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Make a registry call in turn; on a failure worth retrying (429, 5xx,
    /// transport) try again after a back-off, up to [`RETRIES`] times, each
    /// attempt taking its turn.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0;
        loop {
            self.take().await;
            match f().await {
                Err(e) if e.retryable() && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "registry call failed, retrying: {e}");
                    tokio::time::sleep(backoff(attempt, RETRY_BASE, RETRY_MAX)).await;
                }
                other => return other,
            }
        }
    }
}

/// A [`Budget`] that several tasks take turns from (a fleet leader's
/// follower, all brands within the fleet's `request_budget`). Waiters queue
/// on the lock, so turns stay evenly spaced and never burst after a pause.
#[derive(Debug)]
pub struct SharedBudget(tokio::sync::Mutex<Budget>);

impl SharedBudget {
    /// A shared budget of `rps` requests per second (at least 0.01).
    pub fn new(rps: f64) -> SharedBudget {
        SharedBudget(tokio::sync::Mutex::new(Budget::new(rps)))
    }

    /// Wait for one request's turn.
    pub async fn take(&self) {
        self.0.lock().await.take().await;
    }
}

/// Retries of one call that failed in a way worth retrying.
pub const RETRIES: u32 = 3;
const RETRY_BASE: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_what_may_succeed_later_and_not_refusals() {
        let mut b = Budget::new(100.0);
        let mut left = 2;
        let r = b
            .call(|| {
                let fail = left > 0;
                left -= 1;
                async move {
                    if fail {
                        Err(ClientError::RateLimited)
                    } else {
                        Ok(7)
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(b.used(), 3);
        let mut b = Budget::new(100.0);
        let r: Result<(), _> = b
            .call(|| async {
                Err(ClientError::Refused {
                    status: 400,
                    message: "no".into(),
                })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(b.used(), 1, "a refusal is not retried");
        let mut b = Budget::new(100.0);
        let r: Result<(), _> = b.call(|| async { Err(ClientError::Server(503)) }).await;
        assert!(matches!(r, Err(ClientError::Server(503))));
        assert_eq!(b.used(), 1 + u64::from(RETRIES));
    }

    #[tokio::test]
    async fn spaces_requests() {
        let mut b = Budget::new(20.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            b.take().await;
        }
        assert_eq!(b.used(), 5);
        // The first goes at once, the next four 50 ms apart.
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(195), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}
