//! One sender's session: bind (authenticate, then bind upstream with the same
//! bind type), then proxy both ways until either side unbinds or drops.
//!
//! Sequence numbers are remapped on each leg, so the gate's own PDUs
//! (enquire_link, unbind) never collide with the peers'. Requests the gate
//! forwards wait in a pending map per leg; responses may come in any order. At
//! most `window` requests are in flight towards each peer: past that, requests
//! already read are parked (up to `MAX_READ_BUFFER` bytes, then reading
//! stops), while responses keep flowing — those read behind parked requests
//! too — so the proxy applies back-pressure without buffering without bound
//! and without the deadlock of a full window waiting on a response behind it.
//! Every request the sender makes gets exactly one response: from the SMSC, or
//! from the gate (refusal, decode error, timeout, upstream loss).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use metrics::counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::counts::{SessionCounts, Source};
use super::{Account, ProxyShared};
use crate::policy::Decision;
use crate::smpp::codec::{
    frame_len, replace_sequence_number, status, Bind, BindResp, Body, CommandId, ConcatInfo,
    DestAddress, FrameError, Header, MessageView, Pdu, SubmitMultiResp, UnsuccessSme,
    UnsuccessSmes,
};
use crate::smpp::config::{AccountConfig, UpstreamLoss};
use crate::smpp::gating::{
    classify, judge, record, refusal_status, Classified, ConcatMemory, TurnClock, TurnRecord,
};
use crate::store::Snapshot;

/// Most bytes buffered from one peer before reading pauses.
const MAX_READ_BUFFER: usize = 1 << 20;
/// Most bytes waiting to be written to the sender before the gate stops
/// reading from both peers: a sender that does not read what it is sent
/// (responses, receipts, refusals) cannot make the gate buffer without bound.
/// Towards the SMSC the bound is at least twice a full window of the largest
/// PDUs ([`Session::up_out_limit`]), which forwarding alone never reaches, so
/// the gate never stops reading an SMSC that is itself blocked writing to it.
const MAX_WRITE_BUFFER: usize = 1 << 20;
/// How long the gate waits for an unbind_resp before closing anyway.
const UNBIND_GRACE: Duration = Duration::from_secs(2);
/// Timer resolution.
const TICK: Duration = Duration::from_millis(100);
/// Longest a turn's refusals wait for responses from the SMSC to travel with.
const REFUSAL_HOLD: Duration = Duration::from_millis(1);
/// Refusal bytes past which they are written without waiting.
const REFUSAL_HOLD_BYTES: usize = 16 * 1024;
/// Upstream bind attempts after the SMSC link is lost (on_upstream_loss =
/// "rebind"), 1 s, 2 s and 4 s apart.
const REBIND_ATTEMPTS: u32 = 3;

/// A rebind in progress: which attempt, and the task making it (aborted if
/// the session ends first). The session keeps serving the sender meanwhile.
struct Rebind {
    attempt: u32,
    task: tokio::task::JoinHandle<Result<(TcpStream, Pdu), String>>,
}

impl Drop for Rebind {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The outcome of the rebind in progress; never ready without one.
async fn rebind_outcome(rebind: &mut Option<Rebind>) -> Result<(TcpStream, Pdu), String> {
    match rebind {
        Some(r) => match (&mut r.task).await {
            Ok(outcome) => outcome,
            Err(e) => Err(format!("rebind task failed: {e}")),
        },
        None => std::future::pending().await,
    }
}

/// Why a session ended (for the log).
#[derive(Debug)]
enum End {
    SenderUnbound,
    SenderClosed,
    SenderIdle,
    SenderNotReading,
    SenderFraming(String),
    UpstreamLost(String),
    UpstreamUnbound,
    Shutdown,
    /// The gate drained the session: the sender answered its unbind (or
    /// did not within the grace) and every request was answered by the
    /// SMSC; `timed_out`: `server.drain_timeout` ran out first.
    Drained {
        timed_out: bool,
    },
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::SenderUnbound => f.write_str("sender unbound"),
            End::SenderClosed => f.write_str("sender closed the connection"),
            End::SenderIdle => f.write_str("sender inactive past smpp.inactivity_timeout"),
            End::SenderNotReading => {
                f.write_str("sender read nothing it was sent for smpp.inactivity_timeout")
            }
            End::SenderFraming(e) => write!(f, "sender sent an impossible frame: {e}"),
            End::UpstreamLost(e) => write!(f, "SMSC link lost: {e}"),
            End::UpstreamUnbound => f.write_str("SMSC unbound"),
            End::Shutdown => f.write_str("gate shutting down"),
            End::Drained { timed_out: false } => {
                f.write_str("drained: sender unbound by the gate, every request answered")
            }
            End::Drained { timed_out: true } => f.write_str(
                "drained: server.drain_timeout ran out, requests still waiting answered with ESME_RSYSERR",
            ),
        }
    }
}

/// Run one sender connection, as its read and write halves, to its end; it
/// must bind by `connected` + `smpp.bind_timeout` (a TLS handshake counts
/// against that).
pub async fn run<R, W>(
    (rd, wr): (R, W),
    peer: SocketAddr,
    connected: Instant,
    shared: Arc<ProxyShared>,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut down = Leg::new(rd, wr);
    // Before the bind, so the gate's answers to a failed bind are counted too
    // (flushed when dropped).
    let mut counts = SessionCounts::new();
    let Some((account, concat, bind, bind_kind, upstream)) =
        bind_phase(&mut down, &mut counts, peer, connected, &shared).await
    else {
        let _ = down.flush().await;
        return;
    };
    let (urd, uwr) = upstream.into_split();
    let up = Leg::new(urd, uwr);
    let mut s = Session {
        shared: shared.clone(),
        account,
        bind,
        bind_kind,
        peer,
        down,
        up,
        // Sized for a full window, so the maps never grow mid-traffic.
        to_up: FxHashMap::with_capacity_and_hasher(shared.cfg.window + 8, Default::default()),
        to_down: FxHashMap::with_capacity_and_hasher(shared.cfg.window + 8, Default::default()),
        now: Instant::now(),
        wall: TurnClock::at(std::time::SystemTime::now()),
        turn: TurnRecord::default(),
        snapshot: None,
        clock_base: (Instant::now(), std::time::SystemTime::now()),
        closing: None,
        concat,
        up_out_limit: MAX_WRITE_BUFFER
            .max((2 * shared.cfg.window).saturating_mul(shared.cfg.max_command_length as usize)),
        rebind: None,
        draining: None,
        up_unbind_sent: false,
        held_refusals: 0,
        hold_over: false,
        counts,
    };
    let end = s.proxy(shutdown).await;
    s.finish(&end).await;
    tracing::info!(%peer, account = %s.account.system_id, reason = %end, "smpp session ended");
}

/// One side of the proxy: a socket's halves and its buffers.
struct Leg<R, W> {
    rd: R,
    wr: W,
    inbuf: BytesMut,
    out: BytesMut,
    /// Requests read while the window towards the other side was full.
    parked: VecDeque<Bytes>,
    /// Bytes in `parked`.
    parked_bytes: usize,
    eof: bool,
    last_rx: Instant,
    /// Since when `out` has waited without the peer taking any of it.
    stalled_since: Option<Instant>,
    next_seq: u32,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Leg<R, W> {
    fn new(rd: R, wr: W) -> Self {
        Leg {
            rd,
            wr,
            inbuf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(64 * 1024),
            parked: VecDeque::new(),
            parked_bytes: 0,
            eof: false,
            last_rx: Instant::now(),
            stalled_since: None,
            next_seq: 0,
        }
    }

    /// The next sequence number the gate uses on this leg (1..=0x7FFFFFFF).
    fn seq(&mut self) -> u32 {
        self.next_seq = if self.next_seq >= 0x7FFF_FFFF {
            1
        } else {
            self.next_seq + 1
        };
        self.next_seq
    }

    /// Queue a PDU the gate made itself, counted as the gate's.
    fn send(&mut self, counts: &mut SessionCounts, pdu: &Pdu) {
        counts.pdu(Source::Gate, pdu.command_id(), pdu.command_status);
        pdu.encode(&mut self.out);
    }

    /// Keep a request until the window towards the other side opens.
    fn park(&mut self, frame: Bytes) {
        self.parked_bytes += frame.len();
        self.parked.push_back(frame);
    }

    /// The oldest parked request.
    fn unpark(&mut self) -> Option<Bytes> {
        let frame = self.parked.pop_front()?;
        self.parked_bytes -= frame.len();
        Some(frame)
    }

    /// Whether more requests may be parked: a byte budget, not the window, so
    /// responses read behind many parked requests still get through.
    fn may_park(&self) -> bool {
        self.parked_bytes < MAX_READ_BUFFER
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.wr.write_all(&self.out).await?;
            self.out.clear();
        }
        self.wr.flush().await
    }

    /// Read one whole frame (bind phase), with a deadline.
    async fn read_frame(&mut self, max: u32, deadline: Instant) -> Result<Bytes, String> {
        loop {
            match frame_len(&self.inbuf, max) {
                Ok(Some(n)) => return Ok(self.inbuf.split_to(n).freeze()),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            let read =
                tokio::time::timeout_at(deadline.into(), self.rd.read_buf(&mut self.inbuf)).await;
            match read {
                Err(_) => return Err("timed out".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Who is waiting for the response to a request the gate sent.
#[derive(Debug)]
enum Waiting {
    /// The peer on the other leg, under its own sequence number.
    Peer {
        seq: u32,
        /// The request's command_id (what its error answer is made from).
        command_id: u32,
        sent: Instant,
        /// submit_multi: destinations the gate refused, merged into the response.
        refused: Option<Box<[UnsuccessSme]>>,
    },
    /// The gate itself (its enquire_link or unbind).
    Gate { command: CommandId, sent: Instant },
}

impl Waiting {
    fn sent(&self) -> Instant {
        match self {
            Waiting::Peer { sent, .. } | Waiting::Gate { sent, .. } => *sent,
        }
    }
}

struct Session<DR, DW> {
    shared: Arc<ProxyShared>,
    account: AccountConfig,
    bind: Bind,
    /// The sender's bind command (the upstream bind uses the same).
    bind_kind: CommandId,
    peer: SocketAddr,
    down: Leg<DR, DW>,
    up: Leg<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>,
    /// Requests sent to the SMSC, by upstream sequence number.
    to_up: FxHashMap<u32, Waiting>,
    /// Requests sent to the sender, by downstream sequence number.
    to_down: FxHashMap<u32, Waiting>,
    /// Set once the session is winding down: the sender's unbind sequence
    /// number (if it asked) and when the gate started waiting.
    closing: Option<(Option<u32>, Instant)>,
    /// Bytes waiting for the SMSC past which the gate stops reading.
    up_out_limit: usize,
    /// The account's memory of concatenated messages (shared with its other sessions).
    concat: Arc<Mutex<ConcatMemory>>,
    /// Set while the SMSC link is being bound again.
    rebind: Option<Rebind>,
    /// Set once the gate drains: when the drain must be over, and when the
    /// gate sent the sender its unbind (if it did).
    draining: Option<(Instant, Option<Instant>)>,
    /// The gate has sent the SMSC an unbind (for the sender's own).
    up_unbind_sent: bool,
    /// Bytes of refusals at the end of `down.out`, written since its last
    /// flush: when they are all it holds, they may wait (see `proxy`).
    held_refusals: usize,
    /// The refusals' wait is over: write them.
    hold_over: bool,
    /// PDU and in-flight counts, handed to the registry once per turn.
    counts: SessionCounts,
    /// The clock, read once per turn of the loop (not per message).
    now: Instant,
    /// Wall time for decisions, derived from `now`.
    wall: TurnClock,
    /// This turn's decisions and refusals, for the metrics and the audit trail.
    turn: TurnRecord,
    /// The store's snapshot for this turn's decisions: taken at the first
    /// one (one load per turn, not per message), let go when the turn ends.
    snapshot: Option<Option<Arc<Snapshot>>>,
    clock_base: (Instant, std::time::SystemTime),
}

/// Authenticate the sender, bind upstream, answer the bind.
async fn bind_phase<R, W>(
    down: &mut Leg<R, W>,
    counts: &mut SessionCounts,
    peer: SocketAddr,
    connected: Instant,
    shared: &ProxyShared,
) -> Option<(
    AccountConfig,
    Arc<Mutex<ConcatMemory>>,
    Bind,
    CommandId,
    TcpStream,
)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = &shared.cfg;
    let deadline = connected + cfg.bind_timeout;
    loop {
        let frame = match down.read_frame(cfg.max_command_length, deadline).await {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(%peer, "smpp connection closed before bind: {e}");
                if e.contains("command_length") {
                    down.send(
                        counts,
                        &Pdu {
                            command_status: status::ESME_RINVCMDLEN,
                            sequence_number: 0,
                            body: Body::GenericNack,
                        },
                    );
                }
                return None;
            }
        };
        let header = Header::peek(&frame)?;
        let pdu = match Pdu::decode_bytes(frame) {
            Ok(p) => p,
            Err(e) => {
                reply_error(&mut down.out, counts, &header, e.command_status());
                if down.flush().await.is_err() {
                    return None;
                }
                continue;
            }
        };
        let (bind, resp_id) = match pdu.body {
            Body::BindTransmitter(b) => (b, CommandId::BindTransmitterResp),
            Body::BindReceiver(b) => (b, CommandId::BindReceiverResp),
            Body::BindTransceiver(b) => (b, CommandId::BindTransceiverResp),
            Body::EnquireLink => {
                down.send(
                    counts,
                    &Pdu::new(header.sequence_number, Body::EnquireLinkResp),
                );
                let _ = down.flush().await;
                continue;
            }
            Body::Unbind => {
                down.send(counts, &Pdu::new(header.sequence_number, Body::UnbindResp));
                return None;
            }
            _ => {
                reply_error(&mut down.out, counts, &header, status::ESME_RINVBNDSTS);
                if down.flush().await.is_err() {
                    return None;
                }
                continue;
            }
        };
        let refuse = |down: &mut Leg<R, W>, counts: &mut SessionCounts, st: u32| {
            down.send(
                counts,
                &Pdu {
                    command_status: st,
                    sequence_number: header.sequence_number,
                    body: bind_resp_body(resp_id, None),
                },
            );
        };
        let system_id = String::from_utf8_lossy(bind.system_id.as_bytes()).into_owned();
        let Some(Account {
            config: account,
            password,
            concat,
        }) = shared.accounts.get(&system_id)
        else {
            counter!("iys_gate_smpp_binds_total", "result" => "invalid_system_id").increment(1);
            tracing::warn!(%peer, "smpp bind refused: unknown system_id");
            refuse(down, counts, status::ESME_RINVSYSID);
            return None;
        };
        if bind.password.as_bytes() != password.as_bytes() {
            counter!("iys_gate_smpp_binds_total", "result" => "invalid_password").increment(1);
            tracing::warn!(%peer, account = %system_id, "smpp bind refused: wrong password");
            refuse(down, counts, status::ESME_RINVPASWD);
            return None;
        }
        // Bind upstream with the same bind type.
        let up_bind = upstream_bind(account, &bind);
        let body = match resp_id {
            CommandId::BindReceiverResp => Body::BindReceiver(up_bind),
            CommandId::BindTransceiverResp => Body::BindTransceiver(up_bind),
            _ => Body::BindTransmitter(up_bind),
        };
        match bind_upstream(
            &shared.cfg.upstream,
            &Pdu::new(1, body),
            cfg.max_command_length,
            cfg.response_timeout,
        )
        .await
        {
            Ok((stream, resp)) if resp.command_status == status::ESME_ROK => {
                counter!("iys_gate_smpp_binds_total", "result" => "ok").increment(1);
                let upstream_id = match &resp.body {
                    Body::BindTransmitterResp(Some(r))
                    | Body::BindReceiverResp(Some(r))
                    | Body::BindTransceiverResp(Some(r)) => Some(r.clone()),
                    _ => None,
                };
                down.send(
                    counts,
                    &Pdu {
                        command_status: status::ESME_ROK,
                        sequence_number: header.sequence_number,
                        body: bind_resp_body(resp_id, upstream_id),
                    },
                );
                if down.flush().await.is_err() {
                    return None;
                }
                tracing::info!(%peer, account = %system_id, bind = resp_id.name(), "smpp session bound");
                let kind = match resp_id {
                    CommandId::BindReceiverResp => CommandId::BindReceiver,
                    CommandId::BindTransceiverResp => CommandId::BindTransceiver,
                    _ => CommandId::BindTransmitter,
                };
                return Some((account.clone(), concat.clone(), bind, kind, stream));
            }
            Ok((_, resp)) => {
                counter!("iys_gate_smpp_binds_total", "result" => "upstream_refused").increment(1);
                tracing::warn!(%peer, account = %system_id, status = resp.command_status, "smpp bind refused by the SMSC");
                refuse(down, counts, resp.command_status);
                return None;
            }
            Err(e) => {
                counter!("iys_gate_smpp_binds_total", "result" => "upstream_unreachable")
                    .increment(1);
                counter!("iys_gate_smpp_upstream_errors_total", "kind" => "bind_failed")
                    .increment(1);
                tracing::warn!(%peer, account = %system_id, "smpp upstream bind failed: {e}");
                refuse(down, counts, status::ESME_RBINDFAIL);
                return None;
            }
        }
    }
}

fn bind_resp_body(resp_id: CommandId, resp: Option<BindResp>) -> Body {
    match resp_id {
        CommandId::BindReceiverResp => Body::BindReceiverResp(resp),
        CommandId::BindTransceiverResp => Body::BindTransceiverResp(resp),
        _ => Body::BindTransmitterResp(resp),
    }
}

/// The sender's bind with the account's upstream credentials, if it has any.
fn upstream_bind(account: &AccountConfig, bind: &Bind) -> Bind {
    let mut b = bind.clone();
    if let Some(id) = &account.upstream_system_id {
        b.system_id =
            crate::smpp::codec::COctetString::copy_from(id.as_bytes()).unwrap_or_default();
    }
    if let Some(pw) = &account.upstream_password {
        b.password = crate::smpp::codec::COctetString::copy_from(pw.as_bytes()).unwrap_or_default();
    }
    b
}

/// Connect to the SMSC and bind; returns the stream and the bind response.
async fn bind_upstream(
    addr: &str,
    bind: &Pdu,
    max: u32,
    timeout: Duration,
) -> Result<(TcpStream, Pdu), String> {
    let deadline = Instant::now() + timeout;
    let stream = tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut leg = Leg::new(rd, wr);
    // Counted in iys_gate_smpp_binds_total, not as a PDU (this also runs in
    // the rebind task, away from the session's counts).
    bind.encode(&mut leg.out);
    leg.flush().await.map_err(|e| e.to_string())?;
    loop {
        let frame = leg.read_frame(max, deadline).await?;
        let pdu = Pdu::decode_bytes(frame).map_err(|e| format!("bad bind response: {e}"))?;
        if matches!(
            pdu.command_id(),
            CommandId::BindTransmitterResp
                | CommandId::BindReceiverResp
                | CommandId::BindTransceiverResp
                | CommandId::GenericNack
        ) {
            let Leg { rd, wr, .. } = leg;
            let stream = rd.reunite(wr).map_err(|e| e.to_string())?;
            return Ok((stream, pdu));
        }
    }
}

/// Answer a request with a body-less response carrying `st` (generic_nack
/// when the command has no response of its own), counted as the gate's.
fn reply_error(out: &mut BytesMut, counts: &mut SessionCounts, request: &Header, st: u32) {
    let command = CommandId::from_u32(request.command_id);
    let pdu = match command.response() {
        Some(_) if !command.is_response() => Pdu::error_response(request, st),
        _ => Pdu {
            command_status: st,
            sequence_number: request.sequence_number,
            body: Body::GenericNack,
        },
    };
    counts.pdu(Source::Gate, pdu.command_id(), st);
    pdu.encode(out);
}

/// The next whole frame at the start of `input`, with its header; `Ok(None)`
/// until all of it has arrived.
fn next_frame(input: &[u8], max: u32) -> Result<Option<(Header, &[u8])>, FrameError> {
    Ok(frame_len(input, max)?.and_then(|n| Some((Header::peek(input)?, &input[..n]))))
}

/// Whether a command answers a request (a response or generic_nack).
fn is_answer(command: CommandId) -> bool {
    command.is_response() || command == CommandId::GenericNack
}

/// Write a frame with another sequence number.
fn forward_raw(out: &mut BytesMut, frame: &[u8], seq: u32) {
    let start = out.len();
    out.extend_from_slice(frame);
    let _ = replace_sequence_number(&mut out[start..], seq);
}

impl<DR, DW> Session<DR, DW>
where
    DR: AsyncRead + Unpin + Send,
    DW: AsyncWrite + Unpin + Send,
{
    fn window(&self) -> usize {
        self.shared.cfg.window
    }

    /// The gate drains (SIGTERM): unbind the sender unless it is unbinding
    /// already. It may still send what it had queued (forwarded as usual)
    /// until it answers; the session ends once every request is answered
    /// ([`Session::drain_over`]).
    fn begin_drain(&mut self, deadline: Instant) {
        let mut unbind_at = None;
        if self.closing.is_none() {
            let seq = self.down.seq();
            self.down
                .send(&mut self.counts, &Pdu::new(seq, Body::Unbind));
            self.to_down.insert(
                seq,
                Waiting::Gate {
                    command: CommandId::Unbind,
                    sent: self.now,
                },
            );
            unbind_at = Some(self.now);
        }
        tracing::debug!(peer = %self.peer, in_flight = self.requests_waiting(), "smpp session draining");
        self.draining = Some((deadline, unbind_at));
    }

    /// The sender's requests not answered yet: sent to the SMSC, or parked.
    fn requests_waiting(&self) -> usize {
        self.to_up
            .values()
            .filter(|w| matches!(w, Waiting::Peer { .. }))
            .count()
            + self.down.parked.len()
    }

    /// While draining: the end, once the sender is done (it answered the
    /// gate's unbind, or was unbinding itself and the SMSC answered that, or
    /// gave no answer within `UNBIND_GRACE`) and every request of it is
    /// answered and written; or once `server.drain_timeout` ran out.
    fn drain_over(&self) -> Option<End> {
        let (deadline, unbind_at) = self.draining?;
        if self.now >= deadline {
            return Some(End::Drained { timed_out: true });
        }
        let sender_done = match self.closing {
            // It answered the gate's unbind.
            Some((None, _)) => true,
            // Its own unbind: the SMSC's unbind_resp is waited for too.
            Some((Some(_), _)) => self.to_up.is_empty(),
            None => self.down.eof || unbind_at.is_some_and(|t| self.now > t + UNBIND_GRACE),
        };
        (sender_done && self.requests_waiting() == 0 && self.down.out.is_empty())
            .then_some(End::Drained { timed_out: false })
    }

    /// Read the clock once for this turn of the loop.
    fn tick_clock(&mut self) {
        self.now = Instant::now();
        let (base_instant, base_wall) = self.clock_base;
        self.wall = TurnClock::at(base_wall + self.now.duration_since(base_instant));
    }

    /// Hand the counts and refusals of this turn of the loop to the metrics
    /// registry and the audit writer.
    fn flush_counts(&mut self) {
        self.counts.flush();
        self.turn.hand_over(&self.shared.ctx);
    }

    async fn proxy(&mut self, mut shutdown: watch::Receiver<bool>) -> End {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let max = self.shared.cfg.max_command_length;
        let hold = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(hold);
        let mut hold_armed = false;
        loop {
            self.tick_clock();
            if let Err(end) = self.process_down(max) {
                return end;
            }
            if let Err(end) = self.process_up(max) {
                return end;
            }
            if let Some(end) = self.drain_over() {
                return end;
            }
            if let Some((_, since)) = self.closing {
                let done = self.to_up.is_empty() || since.elapsed() > UNBIND_GRACE;
                if done && self.down.out.is_empty() && self.draining.is_none() {
                    return End::SenderUnbound;
                }
            }
            // Whatever is read may add to both output buffers (a request
            // forwarded one way, a refusal or response the other).
            let room =
                self.down.out.len() < MAX_WRITE_BUFFER && self.up.out.len() < self.up_out_limit;
            let read_down = room
                && !self.down.eof
                && self.closing.is_none()
                && self.down.inbuf.len() < MAX_READ_BUFFER
                && self.down.may_park();
            let read_up =
                room && !self.up.eof && self.up.inbuf.len() < MAX_READ_BUFFER && self.up.may_park();
            if self.down.out.is_empty() {
                self.down.stalled_since = None;
            } else if self.down.stalled_since.is_none() {
                self.down.stalled_since = Some(self.now);
            }
            // A turn that only refused messages need not wake the sender for
            // that alone: while the SMSC owes responses, the refusals wait (at
            // most REFUSAL_HOLD) to travel with them in one write. With a
            // fifth of the traffic refused this halves the writes to senders.
            let holding = !self.down.out.is_empty()
                && self.down.out.len() == self.held_refusals
                && self.down.out.len() < REFUSAL_HOLD_BYTES
                && !self.to_up.is_empty()
                && !self.hold_over
                && self.closing.is_none();
            if holding && !hold_armed {
                hold.as_mut().reset((self.now + REFUSAL_HOLD).into());
                hold_armed = true;
            }
            let write_down = !self.down.out.is_empty() && !holding;
            // Reads first: what arrived while this turn ran joins the batch
            // before anything is written, so writes (and the peers' wake-ups)
            // carry more PDUs each. Writes cannot starve: the window and the
            // parking budget stop the reads.
            tokio::select! {
                biased;
                r = self.down.rd.read_buf(&mut self.down.inbuf), if read_down => match r {
                    Ok(0) | Err(_) => { self.down.eof = true; return End::SenderClosed; }
                    Ok(_) => {}
                },
                r = self.up.rd.read_buf(&mut self.up.inbuf), if read_up => match r {
                    Ok(0) => { if let Err(end) = self.upstream_lost("connection closed by the SMSC") { return end; } }
                    Err(e) => { if let Err(end) = self.upstream_lost(&e.to_string()) { return end; } }
                    Ok(_) => self.up.last_rx = self.now,
                },
                r = self.down.wr.write(&self.down.out), if write_down => match r {
                    Ok(n) => {
                        self.down.out.advance(n);
                        self.down.stalled_since = None;
                        // Whatever is left goes out without waiting.
                        self.held_refusals = 0;
                        if self.down.out.is_empty() {
                            self.hold_over = false;
                            hold_armed = false;
                        }
                    }
                    Err(_) => return End::SenderClosed,
                },
                r = self.up.wr.write(&self.up.out), if !self.up.out.is_empty() => match r {
                    Ok(n) => self.up.out.advance(n),
                    Err(e) => { if let Err(end) = self.upstream_lost(&e.to_string()) { return end; } }
                },
                _ = &mut hold, if holding => {
                    self.hold_over = true;
                    hold_armed = false;
                },
                outcome = rebind_outcome(&mut self.rebind), if self.rebind.is_some() => {
                    if let Err(end) = self.rebind_done(outcome) { return end; }
                },
                _ = tick.tick() => {
                    if let Err(end) = self.timers() { return end; }
                },
                _ = shutdown.changed(), if self.draining.is_none() => {
                    match self.shared.ctx.drain.deadline() {
                        Some(deadline) if self.rebind.is_none() => self.begin_drain(deadline),
                        _ => return End::Shutdown,
                    }
                },
            }
        }
    }

    /// Handle whole frames from the sender (parked requests first). Frames are
    /// read in place from the input buffer; only parked ones are copied out.
    fn process_down(&mut self, max: u32) -> Result<(), End> {
        while self.to_up.len() < self.window() {
            let Some(frame) = self.down.unpark() else {
                break;
            };
            if let Some(header) = Header::peek(&frame) {
                self.down_request(&header, header.command(), &frame);
            }
        }
        let inbuf = std::mem::take(&mut self.down.inbuf);
        let (used, result) = self.down_frames(&inbuf, max);
        self.down.inbuf = inbuf;
        self.down.inbuf.advance(used);
        if used > 0 {
            // The inactivity timer counts whole PDUs (the spec's "operations"),
            // so a sender trickling bytes does not keep its session alive.
            self.down.last_rx = self.now;
        }
        // Not kept while the session waits: a quiet session must not hold
        // on to a snapshot the store has replaced.
        self.snapshot = None;
        self.flush_counts();
        result
    }

    /// The whole frames at the start of `input`: how many octets were handled.
    fn down_frames(&mut self, input: &[u8], max: u32) -> (usize, Result<(), End>) {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            let (header, frame) = match next_frame(rest, max) {
                Ok(Some(f)) => f,
                Ok(None) => return (at, Ok(())),
                Err(e) => {
                    counter!("iys_gate_smpp_malformed_total", "kind" => "frame").increment(1);
                    self.down.send(
                        &mut self.counts,
                        &Pdu {
                            command_status: status::ESME_RINVCMDLEN,
                            sequence_number: Header::peek(rest).map_or(0, |h| h.sequence_number),
                            body: Body::GenericNack,
                        },
                    );
                    return (at, Err(End::SenderFraming(e.to_string())));
                }
            };
            let command = header.command();
            let is_response = is_answer(command);
            if !is_response && self.closing.is_some() {
                // Sent after the sender's own unbind (often in the same write):
                // answered here, not forwarded to an SMSC link being unbound.
                at += frame.len();
                self.counts
                    .pdu(Source::Sender, command, header.command_status);
                reply_error(
                    &mut self.down.out,
                    &mut self.counts,
                    &header,
                    status::ESME_RINVBNDSTS,
                );
                continue;
            }
            if !is_response && self.rebind.is_some() && command != CommandId::EnquireLink {
                // No SMSC link until the rebind succeeds: a temporary error
                // the sender retries; an unbind ends the session at once.
                at += frame.len();
                self.counts
                    .pdu(Source::Sender, command, header.command_status);
                if command == CommandId::Unbind {
                    self.down.send(
                        &mut self.counts,
                        &Pdu::new(header.sequence_number, Body::UnbindResp),
                    );
                    return (at, Err(End::SenderUnbound));
                }
                reply_error(
                    &mut self.down.out,
                    &mut self.counts,
                    &header,
                    status::ESME_RSYSERR,
                );
                continue;
            }
            if !is_response && (self.to_up.len() >= self.window() || !self.down.parked.is_empty()) {
                if !self.down.may_park() {
                    return (at, Ok(())); // stop here: reading pauses until parked requests drain
                }
                self.down.park(Bytes::copy_from_slice(frame));
                at += frame.len();
                continue;
            }
            at += frame.len();
            self.counts
                .pdu(Source::Sender, command, header.command_status);
            if is_response {
                self.down_response(&header, frame);
            } else {
                self.down_request(&header, command, frame);
            }
        }
    }

    /// A response from the sender: to one of the SMSC's requests, or to the gate's.
    fn down_response(&mut self, header: &Header, frame: &[u8]) {
        match self.to_down.remove(&header.sequence_number) {
            Some(Waiting::Peer { seq, .. }) => forward_raw(&mut self.up.out, frame, seq),
            Some(Waiting::Gate {
                command: CommandId::Unbind,
                ..
            }) => {
                // The sender answered the gate's unbind (sent as the gate
                // drains): it sends nothing more; what it sent before is
                // still answered (see `drain_over`).
                let since = match self.draining {
                    Some(_) => self.now,
                    None => Instant::now() - UNBIND_GRACE,
                };
                // A sender unbinding itself as well keeps its unbind's
                // sequence number: its unbind_resp is still owed.
                if self.closing.is_none() {
                    self.closing = Some((None, since));
                }
            }
            Some(Waiting::Gate { .. }) => {}
            None => {
                tracing::debug!(peer = %self.peer, seq = header.sequence_number, "response from sender matches no request")
            }
        }
    }

    /// A request from the sender.
    fn down_request(&mut self, header: &Header, command: CommandId, frame: &[u8]) {
        match command {
            CommandId::EnquireLink => {
                self.down.send(
                    &mut self.counts,
                    &Pdu::new(header.sequence_number, Body::EnquireLinkResp),
                );
                return;
            }
            CommandId::Unbind => {
                // Unbind upstream too; answer the sender once the SMSC answered (or the grace ran out).
                let seq = self.up.seq();
                self.up.send(&mut self.counts, &Pdu::new(seq, Body::Unbind));
                self.up_unbind_sent = true;
                self.to_up.insert(
                    seq,
                    Waiting::Gate {
                        command: CommandId::Unbind,
                        sent: Instant::now(),
                    },
                );
                self.closing = Some((Some(header.sequence_number), Instant::now()));
                return;
            }
            CommandId::SubmitSm | CommandId::DataSm | CommandId::SubmitMulti => {
                self.gate_message(*header, command, frame);
                return;
            }
            CommandId::QuerySm | CommandId::CancelSm | CommandId::ReplaceSm => {
                if let Err(e) = Pdu::decode(frame) {
                    reply_error(
                        &mut self.down.out,
                        &mut self.counts,
                        header,
                        e.command_status(),
                    );
                    return;
                }
            }
            CommandId::BindTransmitter | CommandId::BindReceiver | CommandId::BindTransceiver => {
                reply_error(
                    &mut self.down.out,
                    &mut self.counts,
                    header,
                    status::ESME_RALYBND,
                );
                return;
            }
            _ => {
                // Unknown, or not a sender's request (deliver_sm, outbind, alert_notification).
                counter!("iys_gate_smpp_malformed_total", "kind" => "command_id").increment(1);
                self.down.send(
                    &mut self.counts,
                    &Pdu {
                        command_status: status::ESME_RINVCMDID,
                        sequence_number: header.sequence_number,
                        body: Body::GenericNack,
                    },
                );
                return;
            }
        }
        self.forward_up(header, frame, None);
    }

    /// Classify and decide a single-destination message (submit_sm, data_sm):
    /// `false` when refused or unreadable (the gate answered it), `true` when
    /// it may go on.
    fn gate_single(&mut self, header: &Header, view: &MessageView<'_>) -> bool {
        let what = match classify(&self.account, &view.tlvs) {
            Ok(w) => w,
            Err(st) => {
                reply_error(&mut self.down.out, &mut self.counts, header, st);
                return false;
            }
        };
        let d = self.decide_one(
            &what,
            view.dest_addr_ton,
            view.destination_addr,
            view.concat_info(),
        );
        if let Some(st) = refusal_status(&self.shared.cfg.status, &d) {
            let before = self.down.out.len();
            reply_error(&mut self.down.out, &mut self.counts, header, st);
            self.held_refusals += self.down.out.len() - before;
            return false;
        }
        true
    }

    /// Decide one destination; every part of a concatenated message gets the
    /// decision its first part got.
    fn decide_one(
        &mut self,
        what: &Classified,
        ton: u8,
        addr: &[u8],
        info: Option<ConcatInfo>,
    ) -> Decision {
        let (ctx, wall, now) = (&self.shared.ctx, self.wall, self.now);
        let snapshot = self
            .snapshot
            .get_or_insert_with(|| ctx.store.load())
            .as_deref();
        let policy = &ctx.policy;
        let d = match info {
            Some(info) => self
                .concat
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .decide(what, addr, info, now, || {
                    judge(policy, snapshot, what, ton, addr, wall)
                }),
            None => judge(policy, snapshot, what, ton, addr, wall),
        };
        record(
            &mut self.turn,
            &self.account.system_id,
            what,
            addr,
            wall,
            &d,
        );
        d
    }

    /// Forward a changed request: encode it straight into the upstream buffer.
    fn forward_up_encoded(
        &mut self,
        header: &Header,
        body: Body,
        refused: Option<Vec<UnsuccessSme>>,
    ) {
        let seq = self.up.seq();
        Pdu::new(seq, body).encode(&mut self.up.out);
        self.track_up(header, seq, refused);
    }

    fn forward_up(&mut self, header: &Header, frame: &[u8], refused: Option<Vec<UnsuccessSme>>) {
        let seq = self.up.seq();
        forward_raw(&mut self.up.out, frame, seq);
        self.track_up(header, seq, refused);
    }

    fn track_up(&mut self, header: &Header, seq: u32, refused: Option<Vec<UnsuccessSme>>) {
        let waiting = Waiting::Peer {
            seq: header.sequence_number,
            command_id: header.command_id,
            sent: self.now,
            refused: refused.map(Vec::into_boxed_slice),
        };
        self.to_up.insert(seq, waiting);
        self.counts.in_flight += 1;
    }

    /// submit_sm and data_sm: read in place, decide, then answer or forward
    /// the frame (without its İYS TLVs when so configured).
    fn gate_message(&mut self, header: Header, command: CommandId, frame: &[u8]) {
        if command == CommandId::SubmitMulti {
            return self.gate_multi(header, frame);
        }
        let view = match MessageView::read(frame) {
            Ok(v) => v,
            Err(e) => {
                counter!("iys_gate_smpp_malformed_total", "kind" => "body").increment(1);
                return reply_error(
                    &mut self.down.out,
                    &mut self.counts,
                    &header,
                    e.command_status(),
                );
            }
        };
        if self.gate_single(&header, &view) {
            let seq = self.up.seq();
            view.forward(seq, self.shared.cfg.strip_iys_tlvs, &mut self.up.out);
            self.track_up(&header, seq, None);
        }
    }

    /// submit_multi: decided per destination; refused ones are taken out and
    /// merged into the response later.
    fn gate_multi(&mut self, header: Header, frame: &[u8]) {
        let pdu = match Pdu::decode(frame) {
            Ok(p) => p,
            Err(e) => {
                counter!("iys_gate_smpp_malformed_total", "kind" => "body").increment(1);
                reply_error(
                    &mut self.down.out,
                    &mut self.counts,
                    &header,
                    e.command_status(),
                );
                return;
            }
        };
        let shared = self.shared.clone();
        let statuses = &shared.cfg.status;
        let strip = shared.cfg.strip_iys_tlvs;
        match pdu.body {
            Body::SubmitMulti(mut multi) => {
                let what = match classify(&self.account, &multi.tlvs) {
                    Ok(w) => w,
                    Err(st) => {
                        return reply_error(&mut self.down.out, &mut self.counts, &header, st)
                    }
                };
                let info = multi.concat_info();
                let mut keep: Vec<DestAddress> = Vec::new();
                let mut refused: Vec<UnsuccessSme> = Vec::new();
                for dest in multi.dest_addresses.clone().into_inner() {
                    let (ton, npi, addr) = match &dest {
                        DestAddress::Sme { ton, npi, addr } => (*ton, *npi, addr.clone()),
                        // A distribution list is expanded by the SMSC: the gate cannot
                        // check its members, so commercial traffic to it is refused.
                        DestAddress::DistributionList(name) => (5, 0, name.clone()),
                    };
                    let d = self.decide_one(&what, ton, addr.as_bytes(), info);
                    match refusal_status(statuses, &d) {
                        None => keep.push(dest),
                        Some(st) => refused.push(UnsuccessSme {
                            ton,
                            npi,
                            addr,
                            error_status_code: st,
                        }),
                    }
                }
                if keep.is_empty() {
                    // Nothing left to send: the gate answers for the SMSC.
                    match UnsuccessSmes::new(refused) {
                        Ok(list) => {
                            let resp = SubmitMultiResp {
                                message_id: Default::default(),
                                unsuccess_smes: list,
                                tlvs: Default::default(),
                            };
                            self.down.send(
                                &mut self.counts,
                                &Pdu::new(
                                    header.sequence_number,
                                    Body::SubmitMultiResp(Some(resp)),
                                ),
                            );
                        }
                        Err(_) => reply_error(
                            &mut self.down.out,
                            &mut self.counts,
                            &header,
                            statuses.no_consent,
                        ),
                    }
                    return;
                }
                // Strip first: `||` must not skip it when destinations were refused.
                let stripped = strip && multi.tlvs.remove_iys() > 0;
                let changed = !refused.is_empty() || stripped;
                if changed {
                    if let Ok(list) = crate::smpp::codec::DestAddresses::new(keep) {
                        multi.dest_addresses = list;
                    }
                    let refused = (!refused.is_empty()).then_some(refused);
                    self.forward_up_encoded(&header, Body::SubmitMulti(multi), refused);
                } else {
                    self.forward_up(&header, frame, None);
                }
            }
            _ => reply_error(
                &mut self.down.out,
                &mut self.counts,
                &header,
                status::ESME_RSYSERR,
            ),
        }
    }

    /// Handle whole frames from the SMSC (parked requests first), read in place.
    fn process_up(&mut self, max: u32) -> Result<(), End> {
        while self.to_down.len() < self.window() {
            let Some(frame) = self.up.unpark() else {
                break;
            };
            if let Some(end) = self.up_request(&frame) {
                return Err(end);
            }
        }
        let inbuf = std::mem::take(&mut self.up.inbuf);
        let (used, result) = self.up_frames(&inbuf, max);
        self.up.inbuf = inbuf;
        self.up.inbuf.advance(used);
        self.flush_counts();
        result
    }

    /// The whole frames at the start of `input`: how many octets were handled.
    fn up_frames(&mut self, input: &[u8], max: u32) -> (usize, Result<(), End>) {
        let mut at = 0;
        loop {
            let (header, frame) = match next_frame(&input[at..], max) {
                Ok(Some(f)) => f,
                Ok(None) => return (at, Ok(())),
                Err(e) => {
                    let why = format!("SMSC sent an impossible frame: {e}");
                    return (at, Err(End::UpstreamLost(why)));
                }
            };
            let command = header.command();
            let is_response = is_answer(command);
            if !is_response && (self.to_down.len() >= self.window() || !self.up.parked.is_empty()) {
                if !self.up.may_park() {
                    return (at, Ok(()));
                }
                self.up.park(Bytes::copy_from_slice(frame));
                at += frame.len();
                continue;
            }
            at += frame.len();
            self.counts
                .pdu(Source::Smsc, command, header.command_status);
            let end = if is_response {
                self.up_response(&header, frame)
            } else {
                self.up_request(frame)
            };
            if let Some(end) = end {
                return (at, Err(end));
            }
        }
    }

    fn up_response(&mut self, header: &Header, frame: &[u8]) -> Option<End> {
        match self.to_up.remove(&header.sequence_number) {
            Some(Waiting::Peer {
                seq, refused, sent, ..
            }) => {
                self.counts.in_flight -= 1;
                self.counts.upstream_latency(sent, self.now);
                match refused {
                    Some(refused) => self.merge_multi_resp(frame, seq, refused),
                    None => forward_raw(&mut self.down.out, frame, seq),
                }
                None
            }
            Some(Waiting::Gate {
                command: CommandId::Unbind,
                ..
            }) => {
                if let Some((Some(seq), _)) = self.closing {
                    self.fail_pending_up(status::ESME_RSYSERR);
                    self.down
                        .send(&mut self.counts, &Pdu::new(seq, Body::UnbindResp));
                    self.closing = Some((None, Instant::now() - UNBIND_GRACE));
                }
                None
            }
            Some(Waiting::Gate { .. }) => None,
            None => {
                tracing::debug!(peer = %self.peer, seq = header.sequence_number, "response from SMSC matches no request");
                None
            }
        }
    }

    /// Add the gate's refused destinations to the SMSC's submit_multi_resp.
    fn merge_multi_resp(&mut self, frame: &[u8], seq: u32, refused: Box<[UnsuccessSme]>) {
        let mut pdu = match Pdu::decode(frame) {
            Ok(p) => p,
            Err(_) => return forward_raw(&mut self.down.out, frame, seq),
        };
        pdu.sequence_number = seq;
        let (message_id, mut all, tlvs) = match pdu.body {
            Body::SubmitMultiResp(Some(r)) => (r.message_id, r.unsuccess_smes.into_inner(), r.tlvs),
            Body::SubmitMultiResp(None) => (Default::default(), Vec::new(), Default::default()),
            _ => return forward_raw(&mut self.down.out, frame, seq),
        };
        all.extend(refused.into_vec());
        all.truncate(255);
        let Ok(unsuccess_smes) = UnsuccessSmes::new(all) else {
            return forward_raw(&mut self.down.out, frame, seq);
        };
        pdu.body = Body::SubmitMultiResp(Some(SubmitMultiResp {
            message_id,
            unsuccess_smes,
            tlvs,
        }));
        // The SMSC's answer with the gate's refusals merged in: counted as read from the SMSC.
        pdu.encode(&mut self.down.out);
    }

    /// A request from the SMSC: deliver_sm (receipts, MO), data_sm, alerts, keep-alives, unbind.
    fn up_request(&mut self, frame: &[u8]) -> Option<End> {
        let header = Header::peek(frame)?;
        match CommandId::from_u32(header.command_id) {
            CommandId::EnquireLink => self.up.send(
                &mut self.counts,
                &Pdu::new(header.sequence_number, Body::EnquireLinkResp),
            ),
            CommandId::Unbind => {
                self.up.send(
                    &mut self.counts,
                    &Pdu::new(header.sequence_number, Body::UnbindResp),
                );
                return Some(End::UpstreamUnbound);
            }
            CommandId::DeliverSm | CommandId::DataSm => {
                let seq = self.down.seq();
                forward_raw(&mut self.down.out, frame, seq);
                self.to_down.insert(
                    seq,
                    Waiting::Peer {
                        seq: header.sequence_number,
                        command_id: header.command_id,
                        sent: Instant::now(),
                        refused: None,
                    },
                );
            }
            CommandId::AlertNotification => {
                let seq = self.down.seq();
                forward_raw(&mut self.down.out, frame, seq);
            }
            _ => self.up.send(
                &mut self.counts,
                &Pdu {
                    command_status: status::ESME_RINVCMDID,
                    sequence_number: header.sequence_number,
                    body: Body::GenericNack,
                },
            ),
        }
        None
    }

    /// Answer every request waiting on the SMSC with `st`.
    fn fail_pending_up(&mut self, st: u32) {
        let waiting: Vec<(u32, Waiting)> = self.to_up.drain().collect();
        for (_, w) in waiting {
            if let Waiting::Peer {
                seq, command_id, ..
            } = w
            {
                self.counts.in_flight -= 1;
                let header = Header {
                    command_length: 16,
                    command_id,
                    command_status: 0,
                    sequence_number: seq,
                };
                reply_error(&mut self.down.out, &mut self.counts, &header, st);
            }
        }
        // Parked requests are answered too: nothing waits without an answer.
        while let Some(frame) = self.down.unpark() {
            if let Some(h) = Header::peek(&frame) {
                reply_error(&mut self.down.out, &mut self.counts, &h, st);
            }
        }
    }

    /// The SMSC link is gone: answer what waits on it, then end the session
    /// or start binding again (the session keeps serving the sender meanwhile).
    fn upstream_lost(&mut self, why: &str) -> Result<(), End> {
        if self.rebind.is_some() {
            return Ok(()); // already handled: the old link's leftovers
        }
        if self.closing.is_some() && self.to_up.is_empty() {
            // The session was winding down after an unbind and nothing waits
            // on the SMSC: it closing the link now (as most do after their
            // unbind_resp) is the normal end, not a lost link.
            self.up.eof = true;
            return Err(End::UpstreamUnbound);
        }
        counter!("iys_gate_smpp_upstream_errors_total", "kind" => "disconnect").increment(1);
        tracing::warn!(peer = %self.peer, account = %self.account.system_id, "SMSC link lost: {why}");
        self.up.eof = true;
        self.up.out.clear();
        self.up.inbuf.clear();
        while self.up.unpark().is_some() {}
        self.fail_pending_up(status::ESME_RSYSERR);
        // The SMSC's requests died with its link: their answers have nowhere to go.
        self.to_down
            .retain(|_, w| matches!(w, Waiting::Gate { .. }));
        if self.shared.cfg.on_upstream_loss == UpstreamLoss::Rebind && self.closing.is_none() {
            self.start_rebind(0);
            return Ok(());
        }
        Err(End::UpstreamLost(why.to_string()))
    }

    /// Bind upstream again after `2^attempt` seconds, in a task of its own.
    fn start_rebind(&mut self, attempt: u32) {
        let bind = upstream_bind(&self.account, &self.bind);
        let body = match self.down_bind_kind() {
            CommandId::BindReceiver => Body::BindReceiver(bind),
            CommandId::BindTransmitter => Body::BindTransmitter(bind),
            _ => Body::BindTransceiver(bind),
        };
        let cfg = &self.shared.cfg;
        let (addr, max, timeout) = (
            cfg.upstream.clone(),
            cfg.max_command_length,
            cfg.response_timeout,
        );
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            bind_upstream(&addr, &Pdu::new(1, body), max, timeout).await
        });
        self.rebind = Some(Rebind { attempt, task });
    }

    /// A rebind attempt ended: use the new link, try again, or give up.
    fn rebind_done(&mut self, outcome: Result<(TcpStream, Pdu), String>) -> Result<(), End> {
        let attempt = self.rebind.take().map_or(0, |r| r.attempt);
        let why = match outcome {
            Ok((stream, resp)) if resp.command_status == status::ESME_ROK => {
                let (rd, wr) = stream.into_split();
                self.up = Leg::new(rd, wr);
                self.up.next_seq = 1;
                tracing::info!(peer = %self.peer, "rebound to the SMSC");
                return Ok(());
            }
            Ok((_, resp)) => format!(
                "the SMSC refused the bind (status {:#010x})",
                resp.command_status
            ),
            Err(e) => e,
        };
        counter!("iys_gate_smpp_upstream_errors_total", "kind" => "rebind_failed").increment(1);
        tracing::warn!(peer = %self.peer, attempt = attempt + 1, "rebind to the SMSC failed: {why}");
        if attempt + 1 < REBIND_ATTEMPTS {
            self.start_rebind(attempt + 1);
            return Ok(());
        }
        Err(End::UpstreamLost(format!(
            "no SMSC link after {REBIND_ATTEMPTS} rebind attempts: {why}"
        )))
    }

    fn down_bind_kind(&self) -> CommandId {
        self.bind_kind
    }

    /// Response timers, sender inactivity, and the gate's keep-alive upstream.
    fn timers(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let (rt, idle, keepalive) = (
            self.shared.cfg.response_timeout,
            self.shared.cfg.inactivity_timeout,
            self.shared.cfg.enquire_link_interval,
        );
        let expired: Vec<u32> = self
            .to_up
            .iter()
            .filter(|(_, w)| now.duration_since(w.sent()) > rt)
            .map(|(k, _)| *k)
            .collect();
        let mut link_dead = false;
        for k in expired {
            match self.to_up.remove(&k) {
                Some(Waiting::Peer {
                    seq, command_id, ..
                }) => {
                    self.counts.in_flight -= 1;
                    counter!("iys_gate_smpp_upstream_errors_total", "kind" => "timeout")
                        .increment(1);
                    let h = Header {
                        command_length: 16,
                        command_id,
                        command_status: 0,
                        sequence_number: seq,
                    };
                    reply_error(
                        &mut self.down.out,
                        &mut self.counts,
                        &h,
                        status::ESME_RSYSERR,
                    );
                }
                Some(Waiting::Gate {
                    command: CommandId::EnquireLink,
                    ..
                }) => link_dead = true,
                _ => {}
            }
        }
        if link_dead {
            self.upstream_lost("no answer to enquire_link")?;
        }
        let expired: Vec<u32> = self
            .to_down
            .iter()
            .filter(|(_, w)| now.duration_since(w.sent()) > rt)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(Waiting::Peer {
                seq, command_id, ..
            }) = self.to_down.remove(&k)
            {
                // The sender did not answer a receipt or MO in time: a temporary
                // error, so the SMSC delivers it again later.
                let h = Header {
                    command_length: 16,
                    command_id,
                    command_status: 0,
                    sequence_number: seq,
                };
                reply_error(
                    &mut self.up.out,
                    &mut self.counts,
                    &h,
                    status::ESME_RX_T_APPN,
                );
            }
        }
        if self.closing.is_none() && now.duration_since(self.down.last_rx) > idle {
            return Err(End::SenderIdle);
        }
        if self
            .down
            .stalled_since
            .is_some_and(|since| now.duration_since(since) > idle)
        {
            return Err(End::SenderNotReading);
        }
        let probing = self.to_up.values().any(|w| {
            matches!(
                w,
                Waiting::Gate {
                    command: CommandId::EnquireLink,
                    ..
                }
            )
        });
        if !probing && self.rebind.is_none() && now.duration_since(self.up.last_rx) > keepalive {
            let seq = self.up.seq();
            self.up
                .send(&mut self.counts, &Pdu::new(seq, Body::EnquireLink));
            self.to_up.insert(
                seq,
                Waiting::Gate {
                    command: CommandId::EnquireLink,
                    sent: now,
                },
            );
        }
        Ok(())
    }

    /// Wind down: every waiting request answered, both sides unbound where
    /// still connected, buffers flushed.
    async fn finish(&mut self, end: &End) {
        self.fail_pending_up(status::ESME_RSYSERR);
        // Once the sender has unbound (or answered the gate's unbind), the
        // session is over for it whatever ends it now (the SMSC's unbind_resp,
        // the SMSC closing the link, the grace running out): its unbind gets
        // its unbind_resp if it has none yet, and no unbind of the gate's own.
        let unbinding = self.closing.take();
        if let Some((Some(seq), _)) = unbinding {
            if !matches!(end, End::SenderClosed) {
                self.down
                    .send(&mut self.counts, &Pdu::new(seq, Body::UnbindResp));
            }
        }
        // Draining, the gate has sent the sender its unbind already.
        let drain_unbind_sent = self.draining.is_some_and(|(_, at)| at.is_some());
        let sender_open =
            !matches!(end, End::SenderClosed | End::SenderUnbound) && unbinding.is_none();
        let upstream_open =
            !matches!(end, End::UpstreamLost(_) | End::UpstreamUnbound) && !self.up.eof;
        let unbind_up = if matches!(end, End::Drained { .. }) {
            !self.up_unbind_sent
        } else {
            !matches!(end, End::SenderUnbound) && unbinding.is_none()
        };
        if upstream_open && unbind_up {
            let seq = self.up.seq();
            self.up.send(&mut self.counts, &Pdu::new(seq, Body::Unbind));
        }
        // Nothing waits on the SMSC any more: its unbind_resp is not awaited.
        let _ = tokio::time::timeout(UNBIND_GRACE, self.up.flush()).await;
        if sender_open && drain_unbind_sent {
            // It had its unbind and did not answer in time: just close.
            let _ = tokio::time::timeout(UNBIND_GRACE, self.down.flush()).await;
        } else if sender_open {
            let seq = self.down.seq();
            self.down
                .send(&mut self.counts, &Pdu::new(seq, Body::Unbind));
            if tokio::time::timeout(UNBIND_GRACE, self.down.flush())
                .await
                .is_ok()
            {
                // Give the sender a moment to answer the unbind.
                let deadline = Instant::now() + UNBIND_GRACE;
                while let Ok(frame) = self
                    .down
                    .read_frame(self.shared.cfg.max_command_length, deadline)
                    .await
                {
                    if Header::peek(&frame)
                        .is_some_and(|h| h.command_id == CommandId::UnbindResp.as_u32())
                    {
                        break;
                    }
                }
            }
        } else {
            let _ = tokio::time::timeout(UNBIND_GRACE, self.down.flush()).await;
        }
        // Bounded too: a TLS close_notify waits on a peer that may not read.
        let _ = tokio::time::timeout(UNBIND_GRACE, self.down.wr.shutdown()).await;
        let _ = tokio::time::timeout(UNBIND_GRACE, self.up.wr.shutdown()).await;
    }
}
