//! One Postfix connection: read requests, answer each in order, until Postfix
//! closes, the connection idles past `idle_timeout`, a request is malformed,
//! or the gate stops. When the gate drains, a request in progress (partly
//! read) is read to its end and answered before the connection closes (by
//! `server.drain_timeout`); an idle connection closes at once, and Postfix
//! opens a new one (to another gate) for its next request.
//!
//! Every request read in one turn of the loop (Postfix sends one at a time; a
//! load generator may pipeline) is answered in order, with one clock reading
//! and one snapshot load for the turn, and the turn's counts and refusals are
//! handed to the shared metrics and the audit writer together. Deciding never
//! waits (an in-memory, lock-free lookup), so the answer goes out at once;
//! should a turn ever take longer than `deadline` since its bytes arrived,
//! the requests not yet answered get `451 4.7.1` (the `defer` reply) instead
//! of a decision, so Postfix never waits for its own timeout and retries.
//!
//! The answer depends only on the request and the snapshot, never on the
//! connection's history: a request Postfix repeats after a timeout gets the
//! same answer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Outcome, PolicyService};
use crate::gate::{Stop, TurnClock, TurnRecord};
use crate::smtp::codec::policy::{encode_action, parse, PolicyError, PolicyRequest};
use crate::smtp::gating;
use crate::store::Snapshot;

/// Requests decided between two looks at the clock for the deadline.
const DEADLINE_CHECK_EVERY: usize = 32;
/// Free room in the read buffer before each read: enough for many pipelined
/// requests at once (a smaller read splits a batch over several reads and
/// answers, which costs the client more system calls per request).
const READ_ROOM: usize = 16 * 1024;

/// Why a session ended (for the log).
enum End {
    Closed,
    Idle,
    NotReading,
    Malformed(PolicyError),
    Io(std::io::Error),
    Shutdown,
}

/// Run one Postfix connection to its end.
pub async fn run(mut stream: TcpStream, peer: SocketAddr, svc: &PolicyService, mut stop: Stop) {
    let mut s = Session {
        svc,
        inbuf: BytesMut::with_capacity(READ_ROOM),
        out: Vec::with_capacity(1024),
        counts: [0; 6],
        turn: TurnRecord::default(),
        clock_base: (Instant::now(), SystemTime::now()),
    };
    let idle = svc.cfg.idle_timeout;
    let mut last_rx = Instant::now();
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    // Set when the gate drains with a request partly read: when it must end.
    let mut draining: Option<Instant> = None;
    let drain_over = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(drain_over);
    // A stop that came between accept and here (`changed` waits for the next one).
    if *stop.borrow_and_update() {
        return;
    }
    let end = loop {
        if s.inbuf.capacity() - s.inbuf.len() < READ_ROOM / 2 {
            s.inbuf.reserve(READ_ROOM);
        }
        let read = tokio::select! {
            biased;
            r = stream.read_buf(&mut s.inbuf) => r,
            _ = &mut sleep => {
                let due = last_rx + idle;
                if Instant::now() >= due {
                    break End::Idle;
                }
                sleep.as_mut().reset(due.into());
                continue;
            }
            _ = stop.changed(), if draining.is_none() => {
                match svc.smtp.ctx.drain.deadline() {
                    Some(deadline) if !s.inbuf.is_empty() => {
                        draining = Some(deadline);
                        drain_over.as_mut().reset(deadline.into());
                        continue;
                    }
                    _ => break End::Shutdown,
                }
            }
            _ = &mut drain_over, if draining.is_some() => break End::Shutdown,
        };
        match read {
            Ok(0) => break End::Closed,
            Ok(_) => {}
            Err(e) => break End::Io(e),
        }
        let now = Instant::now();
        last_rx = now;
        let bad = s.answer(now);
        if !s.out.is_empty() {
            if let Err(end) = s.write(&mut stream, &mut stop).await {
                break end;
            }
        }
        if let Some(e) = bad {
            break End::Malformed(e);
        }
        if draining.is_some() && s.inbuf.is_empty() {
            break End::Shutdown; // the request in progress is answered
        }
    };
    match end {
        End::Malformed(e) => {
            counter_malformed(e.kind());
            tracing::warn!(%peer, "smtp policy request malformed, connection closed: {e}");
        }
        End::Io(e) => tracing::info!(%peer, "smtp policy connection lost: {e}"),
        End::NotReading => {
            tracing::info!(%peer, "smtp policy client read no answer for smtp.policy.idle_timeout, connection closed")
        }
        End::Idle => {
            tracing::debug!(%peer, "smtp policy connection idle past smtp.policy.idle_timeout, closed")
        }
        End::Closed | End::Shutdown => {}
    }
}

fn counter_malformed(kind: &'static str) {
    metrics::counter!("iys_gate_smtp_policy_malformed_total", "kind" => kind).increment(1);
}

struct Session<'a> {
    svc: &'a PolicyService,
    inbuf: BytesMut,
    out: Vec<u8>,
    /// Requests by [`Outcome`] this turn.
    counts: [u64; 6],
    /// This turn's decisions and refusals.
    turn: TurnRecord,
    clock_base: (Instant, SystemTime),
}

impl Session<'_> {
    /// Answer every whole request in the buffer, in order, into `out`; hand
    /// the turn's counts over. A malformed request ends the reading: the
    /// ones before it are answered, the error is returned.
    fn answer(&mut self, now: Instant) -> Option<PolicyError> {
        let svc = self.svc;
        let (base_instant, base_wall) = self.clock_base;
        let clock = TurnClock::at(base_wall + now.duration_since(base_instant));
        let mut snapshot = None;
        let mut used = 0;
        let mut answered = 0usize;
        let mut late = false;
        let mut bad = None;
        loop {
            let (req, n) = match parse(&self.inbuf[used..], &svc.limits) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    self.counts[Outcome::Error as usize] += 1;
                    bad = Some(e);
                    break;
                }
            };
            used += n;
            answered += 1;
            if answered.is_multiple_of(DEADLINE_CHECK_EVERY) && !late {
                late = now.elapsed() > svc.cfg.deadline;
            }
            let outcome = if late {
                encode_action(
                    &mut self.out,
                    gating::temporary(&svc.smtp.cfg.replies.defer),
                );
                Outcome::Defer
            } else {
                let snap = snapshot.get_or_insert_with(|| svc.smtp.ctx.store.guard());
                decide(
                    svc,
                    &req,
                    snap.as_deref(),
                    clock,
                    &mut self.turn,
                    &mut self.out,
                )
            };
            self.counts[outcome as usize] += 1;
        }
        drop(snapshot);
        self.inbuf.advance(used);
        self.hand_over();
        bad
    }

    fn hand_over(&mut self) {
        for (c, n) in self.svc.metrics.requests.iter().zip(self.counts.iter_mut()) {
            if *n > 0 {
                c.increment(std::mem::take(n));
            }
        }
        self.turn.hand_over(&self.svc.smtp.ctx);
    }

    /// Write `out`: at once when the socket takes it (always, for a client
    /// that reads its answers), else waiting up to `idle_timeout`.
    async fn write(&mut self, stream: &mut TcpStream, stop: &mut Stop) -> Result<(), End> {
        let mut done = 0;
        while done < self.out.len() {
            match stream.try_write(&self.out[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(End::Io(e)),
            }
        }
        if done < self.out.len() {
            let rest = &self.out[done..];
            let write = tokio::time::timeout(self.svc.cfg.idle_timeout, stream.write_all(rest));
            tokio::pin!(write);
            let mut stopping = false;
            let r = loop {
                tokio::select! {
                    r = &mut write => break r,
                    _ = stop.changed(), if !stopping => {
                        // Draining: the answers already decided still go out
                        // (bounded by idle_timeout); a plain stop drops them.
                        if self.svc.smtp.ctx.drain.deadline().is_none() {
                            return Err(End::Shutdown);
                        }
                        stopping = true;
                    }
                }
            };
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) => return Err(End::NotReading),
            }
        }
        self.out.clear();
        Ok(())
    }
}

/// Answer one request into `out`; what it was answered with.
fn decide(
    svc: &PolicyService,
    req: &PolicyRequest<'_>,
    snapshot: Option<&Snapshot>,
    clock: TurnClock,
    turn: &mut TurnRecord,
    out: &mut Vec<u8>,
) -> Outcome {
    let smtp = &*svc.smtp;
    let rcpt = req.request == Some("smtpd_access_policy")
        && req
            .protocol_state
            .is_some_and(|s| s.eq_ignore_ascii_case("RCPT"));
    if !rcpt {
        if req.request != Some("smtpd_access_policy") {
            tracing::debug!(request = ?req.request, "smtp policy: not an smtpd_access_policy request, DUNNO");
        }
        encode_action(out, "DUNNO");
        return Outcome::Dunno;
    }
    let found = match req
        .policy_context
        .filter(|c| svc.cfg.use_policy_context && !c.is_empty())
    {
        Some(name) => smtp.accounts.by_name(name),
        None => smtp
            .accounts
            .find(
                req.sasl_username,
                req.client_address.and_then(|a| a.parse::<IpAddr>().ok()),
                req.sender,
            )
            .map(|(a, _)| a),
    };
    let Some(account) = found else {
        match gating::unmatched(&smtp.cfg.replies, svc.cfg.unmatched) {
            Some(reply) => encode_action(out, reply),
            None => encode_action(out, "DUNNO"),
        }
        return Outcome::Unmatched;
    };
    let recipient = req.recipient.unwrap_or("");
    let what = gating::classify(account);
    let d = gating::judge(&smtp.ctx.policy, snapshot, &what, recipient, clock);
    gating::record(
        turn,
        "smtp_policy",
        &account.config.name,
        &what,
        recipient,
        clock,
        &d,
    );
    match gating::refusal(&smtp.cfg.replies, &d) {
        None => {
            encode_action(out, svc.cfg.allow_action.trim());
            Outcome::Allow
        }
        Some(reply) => {
            encode_action(out, reply);
            if reply.is_permanent() {
                Outcome::Refuse
            } else {
                Outcome::Defer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::gate::GateContext;
    use crate::smtp::codec::policy::{encode_request, parse_answer, Limits};
    use crate::smtp::config::SmtpConfig;
    use crate::smtp::policy::PolicyMetrics;
    use crate::smtp::SmtpShared;

    fn service() -> PolicyService {
        let cfg: SmtpConfig = toml::from_str(
            r#"
[policy]
deadline = "1ms"
[[accounts]]
name = "receipts"
iys_code = 700001
brand_code = 100001
default_message_type = 0
senders = ["tx.shop.example"]
"#,
        )
        .unwrap();
        let ctx = GateContext {
            store: crate::sync::StoreHandle::new(),
            policy: crate::policy::Policy::default(),
            decisions: crate::observe::metrics::DecisionCounters::new(),
            audit: crate::observe::audit::Audit::start(None, false).unwrap(),
            drain: Default::default(),
            reports: Default::default(),
        };
        let policy = cfg.policy.clone().unwrap();
        PolicyService {
            smtp: Arc::new(SmtpShared {
                ctx,
                accounts: crate::smtp::accounts::Accounts::new(&cfg.accounts).unwrap(),
                cfg,
            }),
            limits: Limits::new(policy.max_request_size),
            cfg: policy,
            metrics: PolicyMetrics::new(),
        }
    }

    fn answers(s: &mut Session<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = &s.out[..];
        while let Some((a, used)) = parse_answer(rest).unwrap() {
            out.push(a.to_string());
            rest = &rest[used..];
        }
        s.out.clear();
        out
    }

    /// Requests read in a turn that has already lasted past `deadline` are
    /// not decided but deferred; a turn on time decides them all.
    #[test]
    fn past_the_deadline_the_rest_of_the_turn_is_deferred() {
        let svc = service();
        let mut s = Session {
            svc: &svc,
            inbuf: BytesMut::new(),
            out: Vec::new(),
            counts: [0; 6],
            turn: TurnRecord::default(),
            clock_base: (Instant::now(), SystemTime::now()),
        };
        let fill = |s: &mut Session<'_>| {
            let mut req = Vec::new();
            for _ in 0..64 {
                encode_request(
                    &mut req,
                    &[
                        ("request", "smtpd_access_policy"),
                        ("protocol_state", "RCPT"),
                        ("sender", "a@tx.shop.example"),
                        ("recipient", "ali@example.com"),
                    ],
                );
            }
            s.inbuf.extend_from_slice(&req);
        };
        fill(&mut s);
        assert!(s.answer(Instant::now()).is_none());
        assert_eq!(answers(&mut s), vec!["DUNNO".to_string(); 64]);
        assert!(s.inbuf.is_empty());

        fill(&mut s);
        let late = Instant::now() - Duration::from_secs(1);
        assert!(s.answer(late).is_none());
        let a = answers(&mut s);
        assert_eq!(a.len(), 64, "every request answered");
        assert!(a[..DEADLINE_CHECK_EVERY - 1].iter().all(|x| x == "DUNNO"));
        assert!(
            a[DEADLINE_CHECK_EVERY - 1..]
                .iter()
                .all(|x| x.starts_with("451 4.7.1 ")),
            "{a:?}"
        );
    }
}
