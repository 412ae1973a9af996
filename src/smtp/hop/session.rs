//! One sender connection to the hop: the sender-side SMTP state machine and
//! its next-hop connection.
//!
//! **Commands and pipelining (RFC 2920).** The session reads every command
//! the sender has sent so far and handles them in order, up to one that
//! ends a group (EHLO, HELO, NOOP, QUIT, DATA, and STARTTLS and AUTH, which
//! need a dialogue). MAIL and allowed RCPT lines are forwarded to the next
//! hop as the sender wrote them (line end normalised to CRLF), so DSN
//! parameters pass verbatim; with a pipelining next hop they go in one
//! write, otherwise one at a time. Then the replies go back in command
//! order, in one write: the gate's own for what it answered itself (its
//! refusals, EHLO, NOOP, errors), the next hop's own reply, byte for byte,
//! for what it forwarded.
//!
//! **What EHLO offers.** 8BITMIME, SMTPUTF8 and DSN only when the next hop
//! offered them (they describe what can be carried on, and the parameters
//! pass through). PIPELINING, SIZE, STARTTLS, AUTH and ENHANCEDSTATUSCODES
//! are the hop's own towards the sender: it pipelines with the sender
//! whatever the next hop does (one command at a time upstream if it must),
//! SIZE is its own limit or the next hop's if smaller, TLS and AUTH end at
//! the hop, and its own replies carry enhanced codes.
//!
//! **Per recipient.** The account is found at MAIL from the AUTH name, the
//! client address and the envelope sender (`Accounts::find`); a session
//! that matches none gets `smtp.hop.unmatched` (at MAIL: refused there, or
//! passed unjudged). Each RCPT is judged and recorded (`smtp_hop`); a
//! refusal is answered by the gate (`550 5.7.1` / `451 4.7.1`) and never
//! reaches the next hop.
//!
//! **DATA: never delivered on a decision it did not get.** DATA with no
//! recipient left (all refused by the gate) is answered `554 5.5.1` and not
//! forwarded; otherwise DATA goes to the next hop with the group (pipelined
//! after the RCPTs when it offers PIPELINING) and the sender gets the next
//! hop's own answer: its `354`, or its refusal. (A `354` although the next
//! hop accepted no recipient becomes `554 5.5.1`, and that connection is
//! dropped.) The header section is then held back (see `codec::data`) and
//! nothing of the text is relayed before the `X-IYS-*` headers are applied:
//! they may only make the message stricter. Every recipient the next hop
//! accepted is judged again with the headers' brand and class; if one of
//! them would now be refused (or a header is invalid, repeated, or names a
//! brand the account may not use), the whole message is refused with a text
//! saying why. The next hop is already reading text then, and SMTP has no
//! way to take a DATA back but to end the connection before the final dot:
//! so the gate closes it, and the next hop discards the transaction (RFC
//! 5321 §4.1.1.4: a message is only delivered after `<CRLF>.<CRLF>`). The
//! rest of the text is read and dropped, the sender gets the refusal, and a
//! new next-hop connection is opened at the next MAIL. When the headers
//! pass, the text is streamed as it arrives, and the final `.` is sent only
//! after every check has passed (size, line length, no bare line end next to
//! a dot); a check that fails after text has gone out ends the connection
//! the same way. The sender's reply to the final dot is the next hop's own;
//! no answer in time gives `451 4.4.2`, so the sender keeps the message and
//! nothing is accepted that the next hop has not accepted. (Sending DATA
//! only after the headers would keep the connection on a refusal, but costs
//! every message one more round trip to the next hop; refusals by header
//! are the rare case.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::upstream::{BoxIo, Upstream};
use super::Hop;
use crate::gate::{Classified, Stop, TurnClock, TurnRecord};
use crate::smtp::codec::command::{self, Command, Line};
use crate::smtp::codec::data::{DataReader, Step};
use crate::smtp::codec::reply::Capabilities;
use crate::smtp::gating;

/// The reply to a message with a bare line end next to a dot.
const SMUGGLING: &str =
    "550 5.5.2 Message refused: bare <LF> or <CR> next to a dot (SMTP smuggling)\r\n";

/// Errors (bad commands, failed AUTH) after which the session is closed.
const MAX_ERRORS: u32 = 20;

/// Why a session ends.
enum End {
    /// The sender closed, timed out, or QUIT; or the gate stops.
    Done,
}

/// What a command asks the session to do once the replies before it are out.
enum Action {
    /// Go on reading commands of the same group.
    Continue,
    /// The group ends here (EHLO, HELO, NOOP).
    EndGroup,
    /// DATA.
    Data,
    /// STARTTLS.
    StartTls,
    /// AUTH mechanism and initial response.
    Auth(String, Option<String>),
    /// QUIT (its reply is queued).
    Quit,
    /// Too many errors: `421` and close.
    Close,
    /// The gate drains and the sender is between transactions: `421 4.3.2`
    /// and close.
    ShutDown,
}

/// A reply owed to the sender, in command order.
enum Pending {
    /// The gate's own reply line(s), CRLF included.
    Local(u16, String),
    /// The gate's refusal of a recipient: `503` instead if the next hop
    /// refused the MAIL before it.
    GateRcpt(String),
    /// A command forwarded to the next hop: its bytes in `upout`, and whether
    /// the sender sees its reply.
    Up(UpWhat, std::ops::Range<usize>, bool),
}

enum UpWhat {
    Mail,
    Rcpt(String),
    Data,
    Rset,
}

/// One mail transaction.
#[derive(Default)]
struct Txn {
    /// MAIL accepted here and (pending or confirmed) by the next hop.
    mail: bool,
    /// A transaction is open at the next hop (RSET to abandon it).
    up_open: bool,
    /// The account and how its mail is classified; `None`: unjudged (unmatched, passed).
    account: Option<(String, Classified)>,
    /// RCPTs forwarded (pending or answered).
    forwarded: usize,
    /// RCPTs refused by the gate.
    refused: usize,
    /// Recipients the next hop accepted.
    accepted: Vec<String>,
    /// The next hop answered DATA with 354 and the sender has it: read the text.
    data_open: bool,
}

struct Session {
    hop: Arc<Hop>,
    peer: SocketAddr,
    io: BoxIo,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    upout: Vec<u8>,
    up: Option<Upstream>,
    /// The next hop's capabilities when the session began.
    caps: Capabilities,
    tls: bool,
    helo: bool,
    auth: Option<String>,
    txn: Txn,
    errors: u32,
    skipping: bool,
    turn: TurnRecord,
    stop: Stop,
    /// Set once the gate drains: when the transaction in progress must be over.
    draining: Option<Instant>,
}

/// Serve one sender until it quits, fails, or the gate stops.
pub async fn run(io: BoxIo, peer: SocketAddr, hop: Arc<Hop>, stop: Stop) {
    let mut s = Session {
        hop,
        peer,
        io,
        inbuf: Vec::with_capacity(8192),
        pos: 0,
        out: Vec::with_capacity(1024),
        upout: Vec::with_capacity(1024),
        up: None,
        caps: Capabilities::default(),
        tls: false,
        helo: false,
        auth: None,
        txn: Txn::default(),
        errors: 0,
        skipping: false,
        turn: TurnRecord::default(),
        stop,
        draining: None,
    };
    let _ = s.serve().await;
    s.turn.hand_over(&s.hop.shared.ctx);
    if let Some(up) = s.up.take() {
        up.quit().await;
    }
    let _ = s.io.shutdown().await;
}

impl Session {
    async fn serve(&mut self) -> Result<(), End> {
        if *self.stop.borrow_and_update() {
            // Accepted just as the gate began to stop: no session.
            return self.shut_down().await;
        }
        match Upstream::connect(&self.hop.next).await {
            Ok(up) => {
                self.caps = up.caps;
                self.up = Some(up);
            }
            Err(e) => {
                self.hop.metrics.next_hop_error(e.kind);
                tracing::warn!(peer = %self.peer, "smtp hop: {e}");
                let h = self.hop.cfg.hostname.clone();
                self.local(
                    421,
                    format!("421 4.4.1 {h} next hop unavailable, try again later\r\n"),
                );
                return self.flush().await;
            }
        }
        let greeting = format!("220 {} ESMTP iys-gate\r\n", self.hop.cfg.hostname);
        self.local(220, greeting);
        self.flush().await?;
        let mut pending = Vec::new();
        loop {
            let action = self.group(&mut pending).await?;
            self.resolve(&mut pending).await;
            self.turn.hand_over(&self.hop.shared.ctx);
            match action {
                Action::Continue | Action::EndGroup => self.flush().await?,
                Action::Data => {
                    self.flush().await?;
                    if self.txn.data_open {
                        self.data().await?;
                        self.turn.hand_over(&self.hop.shared.ctx);
                    }
                }
                Action::StartTls => {
                    self.flush().await?;
                    self.start_tls().await?;
                }
                Action::Auth(mech, initial) => {
                    self.flush().await?;
                    self.authenticate(&mech, initial).await?;
                    self.flush().await?;
                }
                Action::Quit => {
                    self.flush().await?;
                    return Err(End::Done);
                }
                Action::ShutDown => return self.shut_down().await,
                Action::Close => {
                    let h = self.hop.cfg.hostname.clone();
                    self.local(
                        421,
                        format!("421 4.7.0 {h} too many errors, closing connection\r\n"),
                    );
                    self.flush().await?;
                    return Err(End::Done);
                }
            }
            if self.errors >= MAX_ERRORS {
                return Err(End::Done);
            }
        }
    }

    /// Queue a reply of the gate's own.
    fn local(&mut self, code: u16, line: String) {
        self.hop.metrics.reply(code);
        self.out.extend_from_slice(line.as_bytes());
    }

    /// Write the queued replies.
    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let limit = self.hop.cfg.command_timeout;
        let r = tokio::time::timeout(limit, self.io.write_all(&self.out)).await;
        self.out.clear();
        match r {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Done),
        }
    }

    /// `421 4.3.2 shutting down`, and the session ends.
    async fn shut_down(&mut self) -> Result<(), End> {
        let h = self.hop.cfg.hostname.clone();
        self.local(421, format!("421 4.3.2 {h} shutting down\r\n"));
        let _ = self.flush().await;
        Err(End::Done)
    }

    /// Whether the gate drains and this session has no transaction in
    /// progress (so it ends at its next command, or now if idle).
    fn drained(&self) -> bool {
        self.draining.is_some() && !self.txn.mail
    }

    /// Read more from the sender within `limit`; `421` on timeout or stop.
    /// When the gate drains, a transaction in progress (MAIL given) may go
    /// on until `server.drain_timeout`; otherwise `421 4.3.2` at once.
    async fn read_more(&mut self, limit: Duration) -> Result<(), End> {
        if self.pos > 0 {
            self.inbuf.drain(..self.pos);
            self.pos = 0;
        }
        self.inbuf.reserve(8192);
        let read = loop {
            if self.drained() {
                return self.shut_down().await;
            }
            let limit = match self.draining {
                Some(deadline) => limit.min(deadline.saturating_duration_since(Instant::now())),
                None => limit,
            };
            tokio::select! {
                r = tokio::time::timeout(limit, self.io.read_buf(&mut self.inbuf)) => break r,
                _ = self.stop.changed(), if self.draining.is_none() => {
                    match self.hop.shared.ctx.drain.deadline() {
                        Some(deadline) => self.draining = Some(deadline),
                        None => return self.shut_down().await,
                    }
                }
            }
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Done),
            Ok(Ok(_)) => Ok(()),
            Err(_) if self.draining.is_some() => self.shut_down().await,
            Err(_) => {
                let h = self.hop.cfg.hostname.clone();
                self.local(
                    421,
                    format!("421 4.4.2 {h} timeout exceeded, closing connection\r\n"),
                );
                let _ = self.flush().await;
                Err(End::Done)
            }
        }
    }

    /// Handle the commands available, up to the end of a group.
    async fn group(&mut self, pending: &mut Vec<Pending>) -> Result<Action, End> {
        loop {
            if self.skipping {
                // The rest of an overlong line.
                match self.inbuf[self.pos..].iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        self.pos += p + 1;
                        self.skipping = false;
                    }
                    None => {
                        self.pos = self.inbuf.len();
                        self.read_more(self.hop.cfg.command_timeout).await?;
                        continue;
                    }
                }
            }
            let max = self.hop.cfg.max_line_length;
            match command::split_line(&self.inbuf[self.pos..], max) {
                Line::Complete(n) if self.drained() && !is_quit(&self.inbuf[self.pos..][..n]) => {
                    // Draining, between transactions: replies owed go out
                    // first, then this command gets 421 (QUIT its 221).
                    return Ok(if pending.is_empty() {
                        Action::ShutDown
                    } else {
                        Action::Continue
                    });
                }
                Line::Complete(n) => {
                    let start = self.pos;
                    self.pos += n;
                    let action = self.command(start, start + n, pending).await;
                    if !matches!(action, Action::Continue) {
                        return Ok(action);
                    }
                    if self.errors >= MAX_ERRORS {
                        return Ok(Action::Close);
                    }
                }
                Line::TooLong => {
                    self.hop.metrics.command("invalid");
                    self.errors += 1;
                    self.skipping = true;
                    self.pos = self.inbuf.len();
                    pending.push(Pending::Local(
                        500,
                        format!("500 5.5.2 Line too long (limit {max} octets)\r\n"),
                    ));
                    if self.errors >= MAX_ERRORS {
                        return Ok(Action::Close);
                    }
                }
                Line::NeedMore => {
                    if !pending.is_empty() {
                        return Ok(Action::Continue);
                    }
                    self.read_more(self.hop.cfg.command_timeout).await?;
                }
            }
        }
    }

    /// One command line `inbuf[start..end]`.
    async fn command(&mut self, start: usize, end: usize, pending: &mut Vec<Pending>) -> Action {
        // Parse from a copy of the range so `self` stays free; lines are short.
        let line = self.inbuf[start..end].to_vec();
        let cmd = match command::parse(&line) {
            Ok(c) => c,
            Err(e) => {
                self.hop.metrics.command(match e {
                    command::CommandError::Unknown => "unknown",
                    _ => "invalid",
                });
                self.errors += 1;
                let (code, status) = e.code();
                pending.push(Pending::Local(code, format!("{code} {status} {e}\r\n")));
                return Action::Continue;
            }
        };
        self.hop.metrics.command(cmd.verb());
        let hop = self.hop.clone();
        let h = &hop.cfg.hostname;
        let local = |code: u16, text: &str| Pending::Local(code, format!("{code} {text}\r\n"));
        match cmd {
            Command::Ehlo(_) => {
                self.reset(pending);
                self.helo = true;
                pending.push(Pending::Local(250, self.ehlo_reply()));
                Action::EndGroup
            }
            Command::Helo(_) => {
                self.reset(pending);
                self.helo = true;
                pending.push(Pending::Local(250, format!("250 {h}\r\n")));
                Action::EndGroup
            }
            Command::Mail(m) => {
                if !self.helo {
                    pending.push(local(503, "5.5.1 Send EHLO or HELO first"));
                    return Action::Continue;
                }
                if self.txn.mail {
                    pending.push(local(503, "5.5.1 Nested MAIL command"));
                    return Action::Continue;
                }
                if self.tls_required() && !self.tls {
                    pending.push(local(530, "5.7.0 Must issue a STARTTLS command first"));
                    return Action::Continue;
                }
                let max = self.max_size();
                if m.size.is_some_and(|s| s > max as u64) {
                    pending.push(local(
                        552,
                        "5.3.4 Message size exceeds fixed maximum message size",
                    ));
                    return Action::Continue;
                }
                let shared = &self.hop.shared;
                let found = shared.accounts.find(
                    self.auth.as_deref(),
                    Some(self.peer.ip()),
                    Some(m.address),
                );
                let account = match found {
                    Some((a, _)) => Some((a.config.name.clone(), gating::classify(a))),
                    None => {
                        metrics::counter!("iys_gate_smtp_hop_unmatched_total").increment(1);
                        if let Some(r) =
                            gating::unmatched(&shared.cfg.replies, self.hop.cfg.unmatched)
                        {
                            pending.push(Pending::Local(r.code, format!("{r}\r\n")));
                            return Action::Continue;
                        }
                        None
                    }
                };
                // A connection the next hop closed while idle is replaced
                // before the transaction goes on it (only RSETs the sender
                // does not see can be queued for it then; they go too).
                let only_silent = pending
                    .iter()
                    .all(|p| !matches!(p, Pending::Up(_, _, true)));
                if only_silent && self.up.as_mut().is_some_and(|u| u.gone()) {
                    pending.retain(|p| !matches!(p, Pending::Up(..)));
                    self.upout.clear();
                    self.up = None;
                }
                if self.up.is_none() {
                    // Pending replies before this MAIL may still need the
                    // old connection; a new one is only opened when none is left.
                    match Upstream::connect(&self.hop.next).await {
                        Ok(up) => self.up = Some(up),
                        Err(e) => {
                            self.hop.metrics.next_hop_error(e.kind);
                            tracing::warn!(peer = %self.peer, "smtp hop: {e}");
                            pending.push(local(451, "4.4.1 Next hop unavailable, try again later"));
                            return Action::Continue;
                        }
                    }
                }
                self.txn.mail = true;
                self.txn.up_open = true;
                self.txn.account = account;
                let range = self.forward(&line);
                pending.push(Pending::Up(UpWhat::Mail, range, true));
                Action::Continue
            }
            Command::Rcpt(r) => {
                if !self.txn.mail {
                    pending.push(local(503, "5.5.1 Need MAIL command first"));
                    return Action::Continue;
                }
                if self.txn.forwarded >= self.hop.cfg.max_recipients {
                    pending.push(local(452, "4.5.3 Too many recipients"));
                    return Action::Continue;
                }
                if let Some((name, what)) = &self.txn.account {
                    let ctx = &self.hop.shared.ctx;
                    let at = TurnClock::at(SystemTime::now());
                    let d = {
                        let snap = ctx.store.guard();
                        gating::judge(&ctx.policy, snap.as_deref(), what, r.address, at)
                    };
                    gating::record(&mut self.turn, "smtp_hop", name, what, r.address, at, &d);
                    if let Some(reply) = gating::refusal(&self.hop.shared.cfg.replies, &d) {
                        self.txn.refused += 1;
                        pending.push(Pending::GateRcpt(format!("{reply}\r\n")));
                        return Action::Continue;
                    }
                }
                self.txn.forwarded += 1;
                let addr = r.address.to_string();
                let range = self.forward(&line);
                pending.push(Pending::Up(UpWhat::Rcpt(addr), range, true));
                Action::Continue
            }
            Command::Data => {
                if !self.txn.mail {
                    pending.push(local(503, "5.5.1 Need MAIL command first"));
                } else if self.txn.forwarded == 0 {
                    if self.txn.refused > 0 {
                        pending.push(local(554, "5.5.1 No valid recipients"));
                    } else {
                        pending.push(local(503, "5.5.1 Need RCPT command first"));
                    }
                } else {
                    let range = self.forward(b"DATA\r\n");
                    pending.push(Pending::Up(UpWhat::Data, range, true));
                }
                Action::Data
            }
            Command::Rset => {
                self.reset(pending);
                pending.push(local(250, "2.0.0 Ok"));
                Action::Continue
            }
            Command::Noop => {
                pending.push(local(250, "2.0.0 Ok"));
                Action::EndGroup
            }
            Command::Quit => {
                pending.push(Pending::Local(
                    221,
                    format!("221 2.0.0 {h} closing connection\r\n"),
                ));
                Action::Quit
            }
            Command::StartTls => {
                if self.hop.acceptor.is_none() {
                    pending.push(local(502, "5.5.1 STARTTLS not offered"));
                    Action::Continue
                } else if self.tls {
                    pending.push(local(503, "5.5.1 TLS already active"));
                    Action::Continue
                } else {
                    Action::StartTls
                }
            }
            Command::Auth { mechanism, initial } => {
                if !self.auth_offered() {
                    pending.push(local(502, "5.5.1 AUTH not offered"));
                    Action::Continue
                } else if self.auth.is_some() {
                    pending.push(local(503, "5.5.1 Already authenticated"));
                    Action::Continue
                } else if self.txn.mail {
                    pending.push(local(
                        503,
                        "5.5.1 AUTH not allowed during a mail transaction",
                    ));
                    Action::Continue
                } else {
                    Action::Auth(mechanism.to_ascii_uppercase(), initial.map(str::to_string))
                }
            }
            Command::Vrfy => {
                pending.push(local(
                    252,
                    "2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
                ));
                Action::Continue
            }
            Command::Expn => {
                pending.push(local(502, "5.5.1 EXPN not supported"));
                Action::Continue
            }
            Command::Help => {
                pending.push(local(214, "2.0.0 See RFC 5321"));
                Action::Continue
            }
            Command::Bdat => {
                pending.push(local(
                    502,
                    "5.5.1 BDAT not supported (CHUNKING is not offered)",
                ));
                Action::Continue
            }
        }
    }

    /// Queue a command for the next hop, its line end made CRLF.
    fn forward(&mut self, line: &[u8]) -> std::ops::Range<usize> {
        let start = self.upout.len();
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        self.upout.extend_from_slice(body);
        self.upout.extend_from_slice(b"\r\n");
        start..self.upout.len()
    }

    /// Abandon the transaction (RSET, EHLO, HELO, STARTTLS): RSET to the
    /// next hop if one is open there.
    fn reset(&mut self, pending: &mut Vec<Pending>) {
        if self.txn.up_open && self.up.is_some() {
            let range = self.forward(b"RSET\r\n");
            pending.push(Pending::Up(UpWhat::Rset, range, false));
        }
        self.txn = Txn::default();
    }

    fn tls_required(&self) -> bool {
        self.hop.cfg.tls.as_ref().is_some_and(|t| t.required)
    }

    fn auth_offered(&self) -> bool {
        self.hop.auth && (self.tls || !self.tls_required())
    }

    /// The SIZE the hop offers: its own limit, or the next hop's if smaller.
    fn max_size(&self) -> usize {
        let own = self.hop.cfg.max_message_size;
        match self.caps.size {
            Some(n) if n > 0 => own.min(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => own,
        }
    }

    /// EHLO: only what the next hop also supports.
    fn ehlo_reply(&self) -> String {
        let mut lines = vec![self.hop.cfg.hostname.clone(), "PIPELINING".into()];
        lines.push(format!("SIZE {}", self.max_size()));
        if self.caps.eight_bit_mime {
            lines.push("8BITMIME".into());
        }
        if self.caps.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if self.caps.dsn {
            lines.push("DSN".into());
        }
        if self.hop.acceptor.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("ENHANCEDSTATUSCODES".into());
        let n = lines.len();
        let mut s = String::new();
        for (i, l) in lines.iter().enumerate() {
            s.push_str(if i + 1 == n { "250 " } else { "250-" });
            s.push_str(l);
            s.push_str("\r\n");
        }
        s
    }

    /// Send what was forwarded, then give the sender every pending reply in order.
    async fn resolve(&mut self, pending: &mut Vec<Pending>) {
        let limit = self.hop.cfg.next_hop_reply_timeout;
        let pipelined = self.up.as_ref().is_some_and(|u| u.caps.pipelining);
        let mut lost = false;
        let has_up = pending.iter().any(|p| matches!(p, Pending::Up(..)));
        if has_up && pipelined {
            if let Err(e) = self.up_send_all(limit).await {
                self.up_lost(&e);
                lost = true;
            }
        }
        let mut clock = Instant::now();
        let mut scratch = Vec::new();
        for p in pending.drain(..) {
            match p {
                Pending::Local(code, line) => {
                    self.hop.metrics.reply(code);
                    self.out.extend_from_slice(line.as_bytes());
                }
                Pending::GateRcpt(line) => {
                    if self.txn.mail {
                        self.hop.metrics.reply(line_code(&line));
                        self.out.extend_from_slice(line.as_bytes());
                    } else {
                        self.local(503, "503 5.5.1 Need MAIL command first\r\n".into());
                    }
                }
                Pending::Up(what, range, to_sender) => {
                    let up = match self.up.as_mut() {
                        Some(up) if !lost => up,
                        _ => {
                            if to_sender {
                                self.local(
                                    451,
                                    "451 4.4.2 Next hop connection lost, try again later\r\n"
                                        .into(),
                                );
                            }
                            self.after_reply(&what, 451);
                            continue;
                        }
                    };
                    if !pipelined {
                        if matches!(what, UpWhat::Data) && self.txn.accepted.is_empty() {
                            // No recipient left: DATA is not sent.
                            self.data_reply(554, b"");
                            continue;
                        }
                        clock = Instant::now();
                        if let Err(e) = up.send(&self.upout[range], limit).await {
                            self.up_lost(&e);
                            lost = true;
                            if to_sender {
                                self.local(
                                    451,
                                    "451 4.4.2 Next hop connection lost, try again later\r\n"
                                        .into(),
                                );
                            }
                            self.after_reply(&what, 451);
                            continue;
                        }
                    }
                    let is_data = matches!(what, UpWhat::Data);
                    let target = if to_sender && !is_data {
                        &mut self.out
                    } else {
                        &mut scratch
                    };
                    match up.reply(target, limit).await {
                        Ok(code) if is_data => {
                            self.hop
                                .metrics
                                .latency
                                .record(clock.elapsed().as_secs_f64());
                            clock = Instant::now();
                            self.data_reply(code, &scratch);
                        }
                        Ok(code) => {
                            self.hop
                                .metrics
                                .latency
                                .record(clock.elapsed().as_secs_f64());
                            clock = Instant::now();
                            if to_sender {
                                self.hop.metrics.reply(code);
                            }
                            self.after_reply(&what, code);
                        }
                        Err(e) => {
                            self.up_lost(&e);
                            lost = true;
                            if to_sender {
                                self.local(
                                    451,
                                    "451 4.4.2 Next hop did not answer, try again later\r\n".into(),
                                );
                            }
                            self.after_reply(&what, 451);
                        }
                    }
                    scratch.clear();
                }
            }
        }
        self.upout.clear();
    }

    async fn up_send_all(&mut self, limit: Duration) -> Result<(), super::upstream::UpError> {
        match self.up.as_mut() {
            Some(up) => up.send(&self.upout, limit).await,
            None => Err(super::upstream::UpError {
                kind: "closed",
                detail: "no connection".into(),
            }),
        }
    }

    /// The next-hop connection failed: count it and drop it.
    fn up_lost(&mut self, e: &super::upstream::UpError) {
        self.hop.metrics.next_hop_error(e.kind);
        tracing::warn!(peer = %self.peer, "smtp hop: {e}");
        self.up = None;
        // The transaction there is gone with the connection.
        self.txn = Txn::default();
    }

    /// Update the transaction with the next hop's answer to a forwarded command.
    fn after_reply(&mut self, what: &UpWhat, code: u16) {
        let ok = (200..300).contains(&code);
        match what {
            UpWhat::Mail => {
                if !ok {
                    self.txn.mail = false;
                    self.txn.up_open = false;
                }
            }
            UpWhat::Rcpt(addr) => {
                if ok && self.txn.mail {
                    self.txn.accepted.push(addr.clone());
                }
            }
            UpWhat::Data | UpWhat::Rset => {}
        }
    }

    /// The next hop's answer to DATA: the sender gets it as it is, unless no
    /// recipient is left (all refused by the gate or the next hop): then
    /// `554 5.5.1`, and if the next hop said 354 all the same (a sink may),
    /// that connection, now waiting for text, is dropped.
    fn data_reply(&mut self, code: u16, reply: &[u8]) {
        if self.txn.accepted.is_empty() || !self.txn.mail {
            // Every recipient refused, by the gate or the next hop.
            if code == 354 {
                self.abandon();
            }
            self.txn = Txn::default();
            self.local(554, "554 5.5.1 No valid recipients\r\n".into());
            return;
        }
        if code != 354 {
            self.hop.metrics.reply(code);
            self.out.extend_from_slice(reply);
            return;
        }
        self.hop.metrics.reply(code);
        self.out.extend_from_slice(reply);
        self.txn.data_open = true;
    }

    /// DATA, after the replies before it are out.
    async fn data(&mut self) -> Result<(), End> {
        // The next hop said 354 and the sender has it.
        let cfg = &self.hop.cfg;
        let mut reader =
            DataReader::new(self.max_size(), cfg.max_line_length, cfg.strip_iys_headers);
        let block = cfg.data_block_timeout;
        let final_limit = cfg.next_hop_data_timeout;
        let mut fwd: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut decided = false;
        // The header section passed: text goes on to the next hop.
        let mut streaming = false;
        // The reply the sender gets instead of the next hop's (a refusal).
        let mut refusal: Option<(u16, String)> = None;
        loop {
            if self.pos == self.inbuf.len() {
                if let Err(e) = self.read_more(block).await {
                    // Sender gone or slow: the next hop never gets the final dot.
                    self.abandon();
                    return Err(e);
                }
            }
            let (n, step) = reader.feed(&self.inbuf[self.pos..], &mut fwd);
            self.pos += n;
            if !decided && step != Step::NeedMore {
                decided = true;
                refusal = self.header_verdict(&reader);
                if refusal.is_none() {
                    streaming = true;
                } else {
                    self.abandon();
                }
            }
            if streaming && (reader.too_big() || reader.smuggling() || reader.line_too_long()) {
                self.abandon();
                streaming = false;
            }
            if streaming && step == Step::End {
                // Every check has passed: the final dot goes with the last text.
                fwd.extend_from_slice(b".\r\n");
            }
            if streaming
                && !fwd.is_empty()
                && (step == Step::End || fwd.len() >= 8192 || self.pos == self.inbuf.len())
            {
                let up = self.up.as_mut().expect("streaming has a connection");
                if let Err(e) = up.send(&fwd, block).await {
                    self.up_lost(&e);
                    streaming = false;
                    refusal = Some((
                        451,
                        "451 4.4.2 Next hop connection lost, try again later\r\n".into(),
                    ));
                }
                fwd.clear();
            }
            if !streaming {
                fwd.clear();
            }
            if step == Step::End {
                break;
            }
        }
        let problem = if reader.too_big() {
            Some((
                552,
                "552 5.3.4 Message size exceeds fixed maximum message size\r\n".to_string(),
            ))
        } else if reader.smuggling() {
            Some((550, SMUGGLING.to_string()))
        } else if reader.line_too_long() {
            Some((
                550,
                format!(
                    "550 5.5.2 Message refused: a line is longer than {} octets\r\n",
                    self.hop.cfg.max_line_length
                ),
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            refusal = Some(p);
        }
        match (refusal, self.up.as_mut()) {
            (None, Some(up)) => {
                // The final dot is out (with the last text): its reply.
                let clock = Instant::now();
                let r = up.reply(&mut self.out, final_limit).await;
                match r {
                    Ok(code) => {
                        self.hop
                            .metrics
                            .latency
                            .record(clock.elapsed().as_secs_f64());
                        self.hop.metrics.reply(code);
                    }
                    Err(e) => {
                        self.up_lost(&e);
                        self.local(
                            451,
                            "451 4.4.2 Next hop did not confirm the message, try again later\r\n"
                                .into(),
                        );
                    }
                }
            }
            (Some((code, line)), _) => self.local(code, line),
            (None, None) => self.local(
                451,
                "451 4.4.2 Next hop connection lost, try again later\r\n".into(),
            ),
        }
        self.txn = Txn::default();
        self.flush().await
    }

    /// Give up the message at the next hop, which is reading its text: close
    /// the connection without the final dot, so it is discarded there.
    fn abandon(&mut self) {
        if self.up.take().is_some() {
            self.hop.metrics.next_hop_error("aborted");
        }
        self.txn.up_open = false;
    }

    /// The headers' verdict on a message whose recipients were accepted:
    /// `None` lets it go on; otherwise the reply refusing the whole message.
    fn header_verdict(&mut self, reader: &DataReader) -> Option<(u16, String)> {
        if reader.headers_too_long() {
            return Some((
                552,
                format!(
                    "552 5.3.4 Header section longer than {} octets\r\n",
                    crate::smtp::codec::data::MAX_HEADER_SECTION
                ),
            ));
        }
        if reader.smuggling() {
            return Some((550, SMUGGLING.into()));
        }
        let (name, given) = self.txn.account.clone()?;
        let (headers, repeated) = reader.iys();
        if *headers == gating::IysHeaders::default() && !repeated {
            return None;
        }
        let refuse = |text: String| {
            let r = gating::permanent(&text);
            Some((r.code, format!("{r}\r\n")))
        };
        if repeated {
            return refuse(
                "IYS: message refused: an X-IYS header field appears more than once".into(),
            );
        }
        let shared = &self.hop.shared;
        let account = shared.accounts.by_name(&name)?;
        let what = match headers.apply(account) {
            Ok(c) => c,
            Err(t) => return refuse(format!("IYS: message refused: {t}")),
        };
        if what == given {
            return None;
        }
        let ctx = &shared.ctx;
        let at = TurnClock::at(SystemTime::now());
        let snap = ctx.store.guard();
        let mut worst: Option<(u16, String)> = None;
        for rcpt in &self.txn.accepted {
            let d = gating::judge(&ctx.policy, snap.as_deref(), &what, rcpt, at);
            if let Some(r) = gating::refusal(&shared.cfg.replies, &d) {
                gating::record(&mut self.turn, "smtp_hop", &name, &what, rcpt, at, &d);
                if worst.as_ref().is_none_or(|(c, _)| *c < r.code) {
                    let code = r.code;
                    let (c, s, dd) = r.status;
                    worst = Some((
                        code,
                        format!(
                            "{code} {c}.{s}.{dd} IYS: message refused: its X-IYS headers need a \
                             stricter decision than the one given at RCPT for {rcpt}: {}\r\n",
                            r.text
                        ),
                    ));
                }
            }
        }
        worst
    }

    /// STARTTLS: `220`, drop anything pipelined after it, handshake, and
    /// forget everything from before (RFC 3207 §4.2).
    async fn start_tls(&mut self) -> Result<(), End> {
        self.local(220, "220 2.0.0 Ready to start TLS\r\n".into());
        self.flush().await?;
        self.inbuf.clear();
        self.pos = 0;
        let Some(acceptor) = self.hop.acceptor.clone() else {
            return Err(End::Done);
        };
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let limit = self.hop.cfg.command_timeout;
        match tokio::time::timeout(limit, acceptor.accept(io)).await {
            Ok(Ok(tls)) => {
                self.io = Box::new(tls);
                self.tls = true;
            }
            _ => {
                tracing::info!(peer = %self.peer, "smtp hop: TLS handshake failed");
                return Err(End::Done);
            }
        }
        let mut pending = Vec::new();
        self.reset(&mut pending);
        self.helo = false;
        self.auth = None;
        self.resolve(&mut pending).await;
        self.out.clear();
        Ok(())
    }

    /// Read one line of an AUTH dialogue (without its line end).
    async fn auth_line(&mut self) -> Result<String, End> {
        loop {
            match command::split_line(&self.inbuf[self.pos..], 12288) {
                Line::Complete(n) => {
                    let l = &self.inbuf[self.pos..self.pos + n];
                    self.pos += n;
                    let l = String::from_utf8_lossy(l);
                    return Ok(l.trim_end_matches(['\r', '\n']).to_string());
                }
                Line::TooLong => return Err(End::Done),
                Line::NeedMore => self.read_more(self.hop.cfg.command_timeout).await?,
            }
        }
    }

    /// AUTH PLAIN / LOGIN (RFC 4954) against the configured accounts.
    async fn authenticate(&mut self, mech: &str, initial: Option<String>) -> Result<(), End> {
        let cancelled = "501 5.7.0 Authentication cancelled\r\n";
        let bad64 = "501 5.5.2 Cannot decode the response (base64)\r\n";
        let creds = match mech {
            "PLAIN" => {
                let resp = match initial {
                    Some(r) => r,
                    None => {
                        self.local(334, "334 \r\n".into());
                        self.flush().await?;
                        self.auth_line().await?
                    }
                };
                if resp == "*" {
                    self.local(501, cancelled.into());
                    return Ok(());
                }
                let Some(raw) = base64_decode(if resp == "=" { "" } else { &resp }) else {
                    self.errors += 1;
                    self.local(501, bad64.into());
                    return Ok(());
                };
                let mut parts = raw.split(|&b| b == 0);
                let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
                match (user, pass, parts.next()) {
                    (Some(u), Some(p), None) => (u.to_vec(), p.to_vec()),
                    _ => {
                        self.errors += 1;
                        self.local(
                            501,
                            "501 5.5.2 AUTH PLAIN needs authzid\\0user\\0password\r\n".into(),
                        );
                        return Ok(());
                    }
                }
            }
            "LOGIN" => {
                let user64 = match initial {
                    Some(r) => r,
                    None => {
                        self.local(334, "334 VXNlcm5hbWU6\r\n".into());
                        self.flush().await?;
                        self.auth_line().await?
                    }
                };
                if user64 == "*" {
                    self.local(501, cancelled.into());
                    return Ok(());
                }
                self.local(334, "334 UGFzc3dvcmQ6\r\n".into());
                self.flush().await?;
                let pass64 = self.auth_line().await?;
                if pass64 == "*" {
                    self.local(501, cancelled.into());
                    return Ok(());
                }
                match (base64_decode(&user64), base64_decode(&pass64)) {
                    (Some(u), Some(p)) => (u, p),
                    _ => {
                        self.errors += 1;
                        self.local(501, bad64.into());
                        return Ok(());
                    }
                }
            }
            _ => {
                self.local(504, "504 5.5.4 Unrecognized authentication type\r\n".into());
                return Ok(());
            }
        };
        let user = String::from_utf8_lossy(&creds.0).into_owned();
        let ok = self
            .hop
            .shared
            .accounts
            .by_name(&user)
            .and_then(|a| a.password.as_deref())
            .is_some_and(|p| constant_time_eq(p.as_bytes(), &creds.1));
        if ok {
            metrics::counter!("iys_gate_smtp_hop_auth_total", "result" => "ok").increment(1);
            self.auth = Some(user);
            self.local(235, "235 2.7.0 Authentication successful\r\n".into());
        } else {
            metrics::counter!("iys_gate_smtp_hop_auth_total", "result" => "failed").increment(1);
            self.errors += 1;
            self.local(
                535,
                "535 5.7.8 Authentication credentials invalid\r\n".into(),
            );
        }
        Ok(())
    }
}

fn line_code(line: &str) -> u16 {
    line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (RFC 4648 §4) with padding; `None` if it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, chunk) in s.chunks(4).enumerate() {
        let last = i + 1 == s.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Whether a command line is QUIT.
fn is_quit(line: &[u8]) -> bool {
    let verb = line
        .split(|b| *b == b' ' || *b == b'\r' || *b == b'\n')
        .next();
    verb.is_some_and(|v| v.eq_ignore_ascii_case(b"QUIT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("AGEAYg==").unwrap(), b"\0a\0b");
        assert_eq!(base64_decode("dXNlcg==").unwrap(), b"user");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("YW=j").is_none());
        assert!(base64_decode("YWJ").is_none());
        assert!(base64_decode("Y!Jj").is_none());
    }
}
