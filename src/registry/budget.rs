//! A request budget: calls to the registry spaced so that at most `rps`
//! start in any second. The registry limits requests per second per
//! provider (HTTP 429 / H124), and the change-feed follower needs its share,
//! so background work (dealer refresh, reconciliation) paces itself.

use std::time::Duration;

use tokio::time::Instant;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
