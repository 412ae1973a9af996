//! The graceful drain on SIGTERM, shared by `serve` and every protocol's
//! sessions.
//!
//! `serve` calls [`Drain::begin`] with the deadline `server.drain_timeout`
//! away: `/readyz` answers 503 from then on, the protocol listeners (which
//! watch [`Drain::signal`]) stop accepting, and each session winds down in
//! its protocol's way before the deadline (SMPP: `unbind` to the sender, its
//! requests in flight answered; SMTP hop: a transaction in progress may
//! finish, everything else gets `421 4.3.2`; policy service: the request in
//! progress is answered). Each session holds a [`SessionGuard`] while it
//! runs, so `serve` can wait until none is left ([`Drain::settled`]) before
//! it stops the admin listener and the sync tasks and writes the last
//! snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::Stop;

/// The drain of one gate: the signal, the deadline, the sessions still open.
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    signal: watch::Sender<bool>,
    state: Mutex<State>,
    settled: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// When the drain began and when it must be over.
    began: Option<(Instant, Instant)>,
    /// Open sessions by protocol.
    open: BTreeMap<&'static str, usize>,
    /// Sessions by protocol that were open when the drain began or opened
    /// since, and have ended since it began.
    ended: BTreeMap<&'static str, usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    /// A drain that has not begun.
    pub fn new() -> Drain {
        let (signal, _) = watch::channel(false);
        Drain {
            inner: Arc::new(Inner {
                signal,
                state: Mutex::new(State::default()),
                settled: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the protocol listeners and sessions watch: flips to `true` when
    /// the drain begins (after [`Drain::deadline`] is set).
    pub fn signal(&self) -> Stop {
        self.inner.signal.subscribe()
    }

    /// Begin the drain, to be over within `timeout`; `false` (and nothing
    /// changes) if it had begun already.
    pub fn begin(&self, timeout: Duration) -> bool {
        {
            let mut s = self.state();
            if s.began.is_some() {
                return false;
            }
            let now = Instant::now();
            s.began = Some((now, now + timeout));
        }
        self.inner.signal.send_replace(true);
        true
    }

    /// Stop the protocols without a drain: the signal flips with no
    /// deadline, so every session ends at once (tests that do not exercise
    /// the drain; a second stop signal cuts a drain short the same way).
    pub fn halt(&self) {
        self.inner.signal.send_replace(true);
    }

    /// Whether the drain has begun (`/readyz` answers 503 from then on).
    pub fn is_draining(&self) -> bool {
        self.state().began.is_some()
    }

    /// When the sessions must be done: `None` until the drain begins (a
    /// session that sees its stop signal without a deadline stops at once).
    pub fn deadline(&self) -> Option<Instant> {
        self.state().began.map(|(_, d)| d)
    }

    /// Count a session of `protocol` as open until the guard is dropped.
    pub fn session(&self, protocol: &'static str) -> SessionGuard {
        *self.state().open.entry(protocol).or_default() += 1;
        SessionGuard {
            drain: self.clone(),
            protocol,
        }
    }

    /// Sessions open now, by protocol (only protocols with one or more).
    pub fn open(&self) -> Vec<(&'static str, usize)> {
        self.state()
            .open
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| (*p, *n))
            .collect()
    }

    /// Wait until no session is open, or until `until`. Returns what the
    /// drain did: sessions ended since it began, and those still open.
    pub async fn settled(&self, until: Instant) -> DrainReport {
        loop {
            // Registered before the check, so an end in between still wakes us.
            let woken = self.inner.settled.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.open().is_empty() {
                break;
            }
            if tokio::time::timeout_at(until.into(), woken).await.is_err() {
                break;
            }
        }
        let s = self.state();
        DrainReport {
            took: s.began.map_or(Duration::ZERO, |(b, _)| b.elapsed()),
            ended: s.ended.iter().map(|(p, n)| (*p, *n)).collect(),
            still_open: s
                .open
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(p, n)| (*p, *n))
                .collect(),
        }
    }
}

/// What a drain did, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// From its beginning until the sessions settled (or time ran out).
    pub took: Duration,
    /// Sessions by protocol that ended during the drain.
    pub ended: Vec<(&'static str, usize)>,
    /// Sessions by protocol still open when it ended (past the deadline).
    pub still_open: Vec<(&'static str, usize)>,
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[(&str, usize)]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|(p, n)| format!("{p}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        write!(
            f,
            "sessions ended: {}; still open: {}",
            list(&self.ended),
            list(&self.still_open)
        )
    }
}

/// One open session; dropping it counts the session as ended.
#[derive(Debug)]
pub struct SessionGuard {
    drain: Drain,
    protocol: &'static str,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut s = self.drain.state();
        if let Some(n) = s.open.get_mut(self.protocol) {
            *n = n.saturating_sub(1);
        }
        if s.began.is_some() {
            *s.ended.entry(self.protocol).or_default() += 1;
        }
        let idle = s.open.values().all(|n| *n == 0);
        drop(s);
        if idle {
            self.drain.inner.settled.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_the_last_session_ends_and_reports_what_ended() {
        let drain = Drain::new();
        let mut signal = drain.signal();
        let a = drain.session("smpp");
        let b = drain.session("smpp");
        let c = drain.session("smtp_hop");
        drop(c); // before the drain: not counted as drained
        assert!(!drain.is_draining() && drain.deadline().is_none());
        assert!(drain.begin(Duration::from_secs(30)));
        assert!(
            !drain.begin(Duration::from_secs(1)),
            "a second begin changes nothing"
        );
        assert!(drain.is_draining());
        assert!(*signal.borrow_and_update());
        let until = Instant::now() + Duration::from_secs(30);
        let waiter = tokio::spawn({
            let d = drain.clone();
            async move { d.settled(until).await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        let report = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("settled once the last session ended")
            .unwrap();
        assert_eq!(report.ended, vec![("smpp", 2)]);
        assert!(report.still_open.is_empty());
        assert_eq!(
            report.to_string(),
            "sessions ended: smpp=2; still open: none"
        );
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_and_names_what_is_still_open() {
        let drain = Drain::new();
        let _held = drain.session("smtp_policy");
        drain.begin(Duration::from_millis(50));
        let report = drain
            .settled(Instant::now() + Duration::from_millis(50))
            .await;
        assert_eq!(report.still_open, vec![("smtp_policy", 1)]);
        assert!(report.to_string().ends_with("still open: smtp_policy=1"));
    }
}
