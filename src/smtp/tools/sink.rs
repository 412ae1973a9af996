//! An SMTP sink for demos, tests and throughput runs: greets, takes EHLO with
//! PIPELINING, 8BITMIME, SMTPUTF8, SIZE and DSN, accepts every recipient except
//! those on a refusal list (`550 5.1.1`, to test that a next hop's refusal is
//! mirrored), reads DATA to `<CRLF>.<CRLF>`, answers `250` and counts.
//!
//! [`Transaction`] is the sans-I/O part: bytes in, replies and finished
//! messages out. One task per connection reads whatever has arrived, answers
//! every whole command in it into one buffer and writes that buffer once, so a
//! pipelining client gets its replies in one segment. On request the sink keeps
//! the last N messages (envelope and unstuffed bytes) for a test or the demo to
//! look at, logs each envelope, or writes each message to a folder.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Longest command line accepted (RFC 5321 asks for 512 with extensions).
const MAX_COMMAND_LINE: usize = 4096;
/// Bytes of a line without its end handed on at once inside DATA.
const DATA_CHUNK: usize = 64 * 1024;

/// `smtp-sink` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2526")]
    pub listen: String,
    /// The name in the greeting and the EHLO reply.
    #[arg(long, default_value = "smtp-sink")]
    pub hostname: String,
    /// Refuse these recipients with `550 5.1.1` (repeatable or comma-separated):
    /// a whole address, `@domain` for a domain, or a pattern with `*`.
    #[arg(long, value_delimiter = ',')]
    pub refuse: Vec<String>,
    /// Refuse the recipients listed in this file (one entry a line, as --refuse;
    /// blank lines and `#` comments skipped).
    #[arg(long)]
    pub refuse_file: Option<PathBuf>,
    /// Write each message to this folder (`N.eml`, and `N.json` with its envelope).
    #[arg(long)]
    pub dump_dir: Option<PathBuf>,
    /// Log each message's envelope.
    #[arg(long)]
    pub log: bool,
    /// Print the totals this often while they change ("0s": only at exit).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub report_every: Duration,
    /// Largest message in octets, advertised as SIZE (`552 5.3.4` past it).
    #[arg(long, default_value_t = 35 << 20)]
    pub max_message_size: usize,
    /// Close a connection that sends nothing this long (`421 4.4.2`).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
}

/// Recipients the sink refuses: whole addresses, `@domain`s and `*` patterns,
/// compared without regard to ASCII case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefuseList {
    entries: Vec<String>,
}

impl RefuseList {
    /// From entries as `--refuse` takes them; an empty entry is an error.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref().trim();
            anyhow::ensure!(
                !e.is_empty() && !e.chars().any(char::is_whitespace),
                "refuse entry {}: {e:?} is not an address, @domain or pattern",
                i + 1
            );
            out.push(e.to_ascii_lowercase());
        }
        Ok(RefuseList { entries: out })
    }

    /// Whether `address` (without angle brackets) is refused.
    pub fn refuses(&self, address: &str) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let a = address.to_ascii_lowercase();
        self.entries.iter().any(|e| {
            if e.contains('*') {
                glob(e.as_bytes(), a.as_bytes())
            } else if let Some(domain) = e.strip_prefix('@') {
                a.rsplit_once('@').is_some_and(|(_, d)| d == domain)
            } else {
                *e == a
            }
        })
    }

    /// True when nothing is refused.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `*` matches any run of bytes (none included); everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// How an in-process sink behaves.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Recipients answered `550 5.1.1`.
    pub refuse: RefuseList,
    /// How many of the latest messages [`SinkStats::recent`] keeps (0: none,
    /// which is what throughput runs want).
    pub record_last: usize,
    /// Write each message (`N.eml`) and its envelope (`N.json`) here.
    pub dump_dir: Option<PathBuf>,
    /// Log each message's envelope at info.
    pub log_messages: bool,
    /// Largest message in octets.
    pub max_message_size: usize,
    /// Close a connection that sends nothing this long (`421 4.4.2`).
    pub idle_timeout: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            hostname: "smtp-sink".into(),
            refuse: RefuseList::default(),
            record_last: 1024,
            dump_dir: None,
            log_messages: false,
            max_message_size: 35 << 20,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// One accepted message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceivedMessage {
    /// The sink's number for it (also in the `250` reply: `queued as N`).
    pub id: u64,
    /// The EHLO/HELO name.
    pub helo: String,
    /// The reverse path, without angle brackets (empty for `<>`).
    pub mail_from: String,
    /// MAIL parameters as sent (`SIZE=123 BODY=8BITMIME`).
    pub mail_params: String,
    /// Accepted recipients, without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// RCPT parameters as sent (`NOTIFY=NEVER`), one per accepted recipient.
    pub rcpt_params: Vec<String>,
    /// Message octets, dot-unstuffed (also when `data` is not kept).
    pub size: usize,
    /// The message, dot-unstuffed, without the final `.` line: what the sender
    /// meant (empty when the sink keeps no text: no recording, dump or log).
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Totals since the sink started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Connections accepted.
    pub sessions: u64,
    /// Messages accepted (`250` after DATA).
    pub messages: u64,
    /// Recipients of accepted messages.
    pub recipients: u64,
    /// RCPTs refused by the refusal list.
    pub refused: u64,
    /// Message octets accepted (unstuffed).
    pub bytes: u64,
    /// Commands answered with a 5xx for syntax or sequence.
    pub errors: u64,
}

/// What the sink has seen, shared by its connections.
#[derive(Debug, Default)]
pub struct SinkStats {
    sessions: AtomicU64,
    messages: AtomicU64,
    recipients: AtomicU64,
    refused: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    record_last: usize,
    recent: Mutex<VecDeque<ReceivedMessage>>,
}

impl SinkStats {
    /// The totals now.
    pub fn counts(&self) -> SinkCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkCounts {
            sessions: get(&self.sessions),
            messages: get(&self.messages),
            recipients: get(&self.recipients),
            refused: get(&self.refused),
            bytes: get(&self.bytes),
            errors: get(&self.errors),
        }
    }

    /// The latest messages, oldest first (at most `record_last`).
    pub fn recent(&self) -> Vec<ReceivedMessage> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.iter().cloned().collect()
    }

    /// Waits until at least `n` messages were accepted; false on timeout.
    pub async fn wait_messages(&self, n: u64, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.messages.load(Ordering::Relaxed) >= n {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn record(&self, m: ReceivedMessage) {
        if self.record_last == 0 {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == self.record_last {
            recent.pop_front();
        }
        recent.push_back(m);
    }
}

/// A running in-process sink; dropping it stops the sink and its connections.
pub type SinkHandle = crate::gate::ServerHandle<SinkStats>;

struct Shared {
    config: SinkConfig,
    stats: Arc<SinkStats>,
    next_id: AtomicU64,
}

/// Starts a sink on `listener` and returns at once.
pub fn spawn(listener: TcpListener, config: SinkConfig) -> SinkHandle {
    let stats = Arc::new(SinkStats {
        record_last: config.record_last,
        ..SinkStats::default()
    });
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let shared = Arc::new(Shared {
        config,
        stats: stats.clone(),
        next_id: AtomicU64::new(1),
    });
    let task = tokio::spawn(accept_loop(listener, shared));
    SinkHandle::new(addr, stats, task)
}

/// Runs the sink until Ctrl-C, printing its totals while they change and at exit.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    if args.log {
        crate::observe::init_logging(crate::config::LogFormat::Text, "info");
    }
    let mut entries = args.refuse.clone();
    if let Some(path) = &args.refuse_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --refuse-file {}", path.display()))?;
        entries.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if let Some(dir) = &args.dump_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create --dump-dir {}", dir.display()))?;
    }
    let config = SinkConfig {
        hostname: args.hostname.clone(),
        refuse: RefuseList::new(&entries)?,
        record_last: 0,
        dump_dir: args.dump_dir.clone(),
        log_messages: args.log,
        max_message_size: args.max_message_size,
        idle_timeout: args.idle_timeout,
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let sink = spawn(listener, config);
    println!(
        "smtp sink listening on {} ({} refusal entries)",
        sink.local_addr(),
        entries.len()
    );
    let started = Instant::now();
    let mut last = SinkCounts::default();
    let mut last_at = Instant::now();
    let every = if args.report_every.is_zero() {
        Duration::from_secs(86400 * 365)
    } else {
        args.report_every
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let now = sink.stats().counts();
                if now != last {
                    println!("{}", describe(&now, Some((&last, last_at.elapsed()))));
                    last = now;
                    last_at = Instant::now();
                }
            }
        }
    }
    let total = sink.stats().counts();
    println!(
        "{} in {:.1}s",
        describe(&total, None),
        started.elapsed().as_secs_f64()
    );
    sink.shutdown().await;
    Ok(())
}

/// One line of totals; with the previous totals, also the message rate since them.
pub fn describe(c: &SinkCounts, since: Option<(&SinkCounts, Duration)>) -> String {
    let rate = match since {
        Some((prev, d)) if !d.is_zero() => format!(
            " ({:.0} msg/s)",
            (c.messages - prev.messages) as f64 / d.as_secs_f64()
        ),
        _ => String::new(),
    };
    format!(
        "smtp sink: {} sessions, {} messages{rate}, {} recipients, {} refused, {} bytes, {} errors",
        c.sessions, c.messages, c.recipients, c.refused, c.bytes, c.errors
    )
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve(stream, shared.clone()));
                }
                // Out of descriptors, mostly: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let cfg = &shared.config;
    let mut t = Transaction::new(cfg.refuse.clone(), cfg.max_message_size);
    t.keep_data = cfg.record_last > 0 || cfg.dump_dir.is_some() || cfg.log_messages;
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(format!("220 {} ESMTP iys-gate smtp-sink\r\n", cfg.hostname).as_bytes());
    if stream.write_all(&out).await.is_err() {
        return;
    }
    out.clear();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut done = Vec::new();
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        match tokio::time::timeout(cfg.idle_timeout, stream.read_buf(&mut buf)).await {
            Err(_) => {
                let _ = stream
                    .write_all(b"421 4.4.2 Idle too long, closing connection\r\n")
                    .await;
                return;
            }
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let step = t.feed(&mut buf, &cfg.hostname, &mut out, &mut done, &|| {
            shared.next_id.fetch_add(1, Ordering::Relaxed)
        });
        let errors = t.take_errors();
        if errors > 0 {
            shared.stats.errors.fetch_add(errors, Ordering::Relaxed);
        }
        let refused = t.take_refused();
        if refused > 0 {
            shared.stats.refused.fetch_add(refused, Ordering::Relaxed);
        }
        for m in done.drain(..) {
            deliver(&shared, m).await;
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if step == Step::Close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Counts an accepted message and keeps, logs or writes it as configured.
async fn deliver(shared: &Shared, m: ReceivedMessage) {
    let s = &shared.stats;
    let cfg = &shared.config;
    s.recipients
        .fetch_add(m.rcpt_to.len() as u64, Ordering::Relaxed);
    s.bytes.fetch_add(m.size as u64, Ordering::Relaxed);
    if cfg.log_messages {
        tracing::info!(
            id = m.id,
            from = %m.mail_from,
            to = ?m.rcpt_to,
            bytes = m.size,
            "smtp sink: message arrived"
        );
    }
    if let Some(dir) = &cfg.dump_dir {
        let envelope = serde_json::to_vec_pretty(&m).unwrap_or_default();
        let eml = dir.join(format!("{}.eml", m.id));
        if let Err(e) = tokio::fs::write(&eml, &m.data).await {
            tracing::warn!(file = %eml.display(), error = %e, "smtp sink: cannot write the message");
        }
        let _ = tokio::fs::write(dir.join(format!("{}.json", m.id)), envelope).await;
    }
    s.record(m);
    // Counted last, so whoever waits for it finds the message recorded.
    s.messages.fetch_add(1, Ordering::Relaxed);
}

/// What the connection does after a [`Transaction::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    Continue,
    /// Write what is out, then close (QUIT, or a line too long to go on).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before EHLO/HELO.
    Start,
    /// Greeted, no transaction.
    Ready,
    /// After MAIL.
    Mail,
    /// Reading message text.
    Data,
}

/// The sink's side of one SMTP connection, sans I/O.
#[derive(Debug)]
pub struct Transaction {
    phase: Phase,
    refuse: RefuseList,
    max_message_size: usize,
    /// Keep the message text (off: only count it).
    pub keep_data: bool,
    helo: String,
    mail_from: String,
    mail_params: String,
    rcpt_to: Vec<String>,
    rcpt_params: Vec<String>,
    data: Vec<u8>,
    data_len: usize,
    /// Inside DATA: the next byte starts a line (the previous one ended in CRLF).
    line_start: bool,
    errors: u64,
    refused: u64,
}

impl Transaction {
    /// A new connection's state.
    pub fn new(refuse: RefuseList, max_message_size: usize) -> Self {
        Transaction {
            phase: Phase::Start,
            refuse,
            max_message_size,
            keep_data: true,
            helo: String::new(),
            mail_from: String::new(),
            mail_params: String::new(),
            rcpt_to: Vec::new(),
            rcpt_params: Vec::new(),
            data: Vec::new(),
            data_len: 0,
            line_start: true,
            errors: 0,
            refused: 0,
        }
    }

    fn take_errors(&mut self) -> u64 {
        std::mem::take(&mut self.errors)
    }

    fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }

    /// Consumes every whole command (and message text) in `input`, appending
    /// the replies to `out` and the accepted messages to `done`; `next_id`
    /// numbers them. Bytes of an unfinished line stay in `input`.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        hostname: &str,
        out: &mut Vec<u8>,
        done: &mut Vec<ReceivedMessage>,
        next_id: &dyn Fn() -> u64,
    ) -> Step {
        loop {
            if self.phase == Phase::Data {
                if !self.read_data(input, out, done, next_id) {
                    return Step::Continue;
                }
                continue;
            }
            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                if input.len() > MAX_COMMAND_LINE {
                    out.extend_from_slice(b"500 5.5.2 Line too long\r\n");
                    self.errors += 1;
                    return Step::Close;
                }
                return Step::Continue;
            };
            let line = input.split_to(nl + 1);
            let mut end = line.len() - 1;
            if end > 0 && line[end - 1] == b'\r' {
                end -= 1;
            }
            if end > MAX_COMMAND_LINE {
                out.extend_from_slice(b"500 5.5.2 Line too long\r\n");
                self.errors += 1;
                continue;
            }
            let text = String::from_utf8_lossy(&line[..end]);
            if self.command(&text, hostname, out) == Step::Close {
                return Step::Close;
            }
        }
    }

    fn error(&mut self, out: &mut Vec<u8>, reply: &[u8]) {
        self.errors += 1;
        out.extend_from_slice(reply);
    }

    fn reset(&mut self) {
        self.mail_from.clear();
        self.mail_params.clear();
        self.rcpt_to.clear();
        self.rcpt_params.clear();
        self.data.clear();
        self.data_len = 0;
        if self.phase != Phase::Start {
            self.phase = Phase::Ready;
        }
    }

    fn command(&mut self, line: &str, hostname: &str, out: &mut Vec<u8>) -> Step {
        let (verb, rest) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line.trim(), ""),
        };
        let verb = verb.to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" if rest.is_empty() => {
                self.error(out, b"501 5.5.4 Syntax: EHLO hostname\r\n");
            }
            "EHLO" => {
                self.phase = Phase::Ready;
                self.reset();
                self.helo = rest.to_string();
                out.extend_from_slice(
                    format!(
                        "250-{hostname}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n",
                        self.max_message_size
                    )
                    .as_bytes(),
                );
            }
            "HELO" => {
                self.phase = Phase::Ready;
                self.reset();
                self.helo = rest.to_string();
                out.extend_from_slice(format!("250 {hostname}\r\n").as_bytes());
            }
            "MAIL" => {
                if self.phase == Phase::Start {
                    return self.seq(out, b"503 5.5.1 Error: send HELO/EHLO first\r\n");
                }
                if self.phase == Phase::Mail {
                    return self.seq(out, b"503 5.5.1 Error: nested MAIL command\r\n");
                }
                let Some((addr, params)) = path_arg(rest, "FROM:") else {
                    return self.seq(out, b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
                };
                let size = params
                    .split_ascii_whitespace()
                    .find_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        k.eq_ignore_ascii_case("SIZE")
                            .then(|| v.parse::<u64>().ok())?
                    })
                    .unwrap_or(0);
                if size > self.max_message_size as u64 {
                    return self.seq(
                        out,
                        b"552 5.3.4 Message size exceeds fixed maximum message size\r\n",
                    );
                }
                self.mail_from = addr.to_string();
                self.mail_params = params.to_string();
                self.phase = Phase::Mail;
                out.extend_from_slice(b"250 2.1.0 Ok\r\n");
            }
            "RCPT" => {
                if self.phase != Phase::Mail {
                    return self.seq(out, b"503 5.5.1 Error: need MAIL command\r\n");
                }
                let Some((addr, params)) = path_arg(rest, "TO:") else {
                    return self.seq(out, b"501 5.5.4 Syntax: RCPT TO:<address>\r\n");
                };
                if addr.is_empty() {
                    return self.seq(out, b"501 5.1.3 Bad recipient address syntax\r\n");
                }
                if self.refuse.refuses(addr) {
                    self.refused += 1;
                    out.extend_from_slice(
                        format!("550 5.1.1 <{addr}>: Recipient address rejected: refused by the sink\r\n")
                            .as_bytes(),
                    );
                } else {
                    self.rcpt_to.push(addr.to_string());
                    self.rcpt_params.push(params.to_string());
                    out.extend_from_slice(b"250 2.1.5 Ok\r\n");
                }
            }
            "DATA" => {
                if self.phase != Phase::Mail {
                    return self.seq(out, b"503 5.5.1 Error: need MAIL command\r\n");
                }
                if self.rcpt_to.is_empty() {
                    return self.seq(out, b"554 5.5.1 Error: no valid recipients\r\n");
                }
                self.phase = Phase::Data;
                self.line_start = true;
                self.data.clear();
                self.data_len = 0;
                out.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
            }
            "RSET" => {
                self.reset();
                out.extend_from_slice(b"250 2.0.0 Ok\r\n");
            }
            "NOOP" => out.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            "VRFY" => out.extend_from_slice(b"252 2.0.0 Cannot VRFY user\r\n"),
            "QUIT" => {
                out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                return Step::Close;
            }
            "" => self.error(out, b"500 5.5.2 Error: bad syntax\r\n"),
            _ => self.error(out, b"502 5.5.2 Error: command not recognized\r\n"),
        }
        Step::Continue
    }

    /// A sequence or syntax error: counted, the transaction state unchanged.
    fn seq(&mut self, out: &mut Vec<u8>, reply: &[u8]) -> Step {
        self.error(out, reply);
        Step::Continue
    }

    /// Reads message text; true when the message ended (the phase changed).
    fn read_data(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        done: &mut Vec<ReceivedMessage>,
        next_id: &dyn Fn() -> u64,
    ) -> bool {
        loop {
            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                // A long line without its end yet: take all but a trailing CR
                // (its LF may come next) once there is a good chunk of it.
                if input.len() >= DATA_CHUNK {
                    let keep = usize::from(input.last() == Some(&b'\r'));
                    let take = input.len() - keep;
                    let from = usize::from(self.line_start && input[0] == b'.');
                    self.take_text(&input[from..take]);
                    input.advance(take);
                    self.line_start = false;
                }
                return false;
            };
            let line = &input[..=nl];
            let crlf = nl > 0 && line[nl - 1] == b'\r';
            if self.line_start && line == b".\r\n" {
                input.advance(3);
                self.finish(out, done, next_id);
                return true;
            }
            let from = usize::from(self.line_start && line[0] == b'.');
            let end = nl + 1;
            self.take_text(&input[from..end]);
            input.advance(end);
            self.line_start = crlf;
        }
    }

    fn take_text(&mut self, text: &[u8]) {
        self.data_len += text.len();
        if self.keep_data && self.data_len <= self.max_message_size {
            self.data.extend_from_slice(text);
        }
    }

    fn finish(
        &mut self,
        out: &mut Vec<u8>,
        done: &mut Vec<ReceivedMessage>,
        next_id: &dyn Fn() -> u64,
    ) {
        if self.data_len > self.max_message_size {
            self.reset();
            self.error(
                out,
                b"552 5.3.4 Message size exceeds fixed maximum message size\r\n",
            );
            return;
        }
        let id = next_id();
        let data = if self.keep_data {
            std::mem::take(&mut self.data)
        } else {
            Vec::new()
        };
        let m = ReceivedMessage {
            id,
            helo: self.helo.clone(),
            mail_from: std::mem::take(&mut self.mail_from),
            mail_params: std::mem::take(&mut self.mail_params),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            rcpt_params: std::mem::take(&mut self.rcpt_params),
            size: self.data_len,
            data,
        };
        self.reset();
        out.extend_from_slice(format!("250 2.0.0 Ok: queued as {id}\r\n").as_bytes());
        done.push(m);
    }
}

/// `FROM:<a@b> PARAMS` (or `TO:`): the address without brackets and the
/// parameters; None when the keyword or the path is missing.
fn path_arg<'a>(rest: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    if let Some(r) = rest.strip_prefix('<') {
        let close = r.find('>')?;
        Some((&r[..close], r[close + 1..].trim()))
    } else {
        // Lenient: a bare address up to the first space.
        let (addr, params) = rest.split_once(' ').unwrap_or((rest, ""));
        (!addr.is_empty()).then_some((addr, params.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut Transaction, chunks: &[&[u8]]) -> (String, Vec<ReceivedMessage>, Step) {
        let mut out = Vec::new();
        let mut done = Vec::new();
        let mut buf = BytesMut::new();
        let mut step = Step::Continue;
        let id = AtomicU64::new(1);
        for c in chunks {
            buf.extend_from_slice(c);
            step = t.feed(&mut buf, "sink", &mut out, &mut done, &|| {
                id.fetch_add(1, Ordering::Relaxed)
            });
        }
        (String::from_utf8(out).unwrap(), done, step)
    }

    const SESSION: &[u8] = b"EHLO c\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<x@y> NOTIFY=NEVER\r\nRCPT TO:<no@y>\r\nDATA\r\nhead\r\n..dot\r\n.\n.x\r\n\r\n.\r\nQUIT\r\n";

    #[test]
    fn a_pipelined_session_in_one_read_gets_every_reply_in_order() {
        let mut t = Transaction::new(RefuseList::new(&["no@y"]).unwrap(), 1000);
        let (out, done, step) = run(&mut t, &[SESSION]);
        let codes: Vec<&str> = out.lines().map(|l| &l[..4]).collect();
        assert_eq!(
            codes,
            [
                "250-", "250-", "250-", "250-", "250-", "250-", "250 ", "250 ", "250 ", "550 ",
                "354 ", "250 ", "221 "
            ],
            "{out}"
        );
        assert_eq!(step, Step::Close);
        assert_eq!(done.len(), 1);
        let m = &done[0];
        assert_eq!(m.rcpt_to, ["x@y"]);
        assert_eq!(m.rcpt_params, ["NOTIFY=NEVER"]);
        assert_eq!(m.mail_params, "SIZE=10");
        // `..dot` loses one dot; `.\n` (bare LF) does not end the data (only
        // CRLF.CRLF does) but loses its dot like any line; a line after a bare
        // LF is no line start, so `.x` keeps its dot.
        assert_eq!(m.data, b"head\r\n.dot\r\n\n.x\r\n\r\n");
        assert_eq!(m.size, m.data.len());
    }

    #[test]
    fn byte_by_byte_reads_give_the_same_result() {
        let mut whole = Transaction::new(RefuseList::new(&["no@y"]).unwrap(), 1000);
        let expected = run(&mut whole, &[SESSION]);
        let mut t = Transaction::new(RefuseList::new(&["no@y"]).unwrap(), 1000);
        let chunks: Vec<&[u8]> = SESSION.chunks(1).collect();
        let got = run(&mut t, &chunks);
        assert_eq!(got.0, expected.0);
        assert_eq!(got.1, expected.1);
    }

    #[test]
    fn sequence_size_and_line_errors() {
        let mut t = Transaction::new(RefuseList::default(), 100);
        let (out, done, _) = run(
            &mut t,
            &[b"MAIL FROM:<a@b>\r\nHELO c\r\nRCPT TO:<x@y>\r\nDATA\r\nMAIL FROM:<a@b> SIZE=101\r\nMAIL FROM:<a@b>\r\nDATA\r\nBDAT 1\r\n"],
        );
        let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            ["503", "250", "503", "503", "552", "250", "554", "502"],
            "{out}"
        );
        assert!(done.is_empty());
        // Too big a message is refused after its end, and the session goes on.
        let mut t = Transaction::new(RefuseList::default(), 10);
        let (out, done, _) = run(
            &mut t,
            &[b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\n0123456789abc\r\n.\r\nNOOP\r\n"],
        );
        assert!(out.contains("552 5.3.4"), "{out}");
        assert!(out.ends_with("250 2.0.0 Ok\r\n"), "{out}");
        assert!(done.is_empty());
        let mut t = Transaction::new(RefuseList::default(), 10);
        let long = vec![b'a'; MAX_COMMAND_LINE + 10];
        let (out, _, step) = run(&mut t, &[&long]);
        assert_eq!(
            (out.as_str(), step),
            ("500 5.5.2 Line too long\r\n", Step::Close)
        );
    }

    #[test]
    fn a_long_data_line_is_taken_in_chunks_without_losing_its_crlf() {
        let mut t = Transaction::new(RefuseList::default(), 1 << 20);
        let mut line = vec![b'.'];
        line.extend(vec![b'y'; DATA_CHUNK * 2]);
        line.push(b'\r');
        let (out, done, _) = run(
            &mut t,
            &[
                b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\n",
                &line,
                b"\n.\r\n",
            ],
        );
        assert!(out.ends_with("queued as 1\r\n"), "{out}");
        assert_eq!(done[0].data.len(), DATA_CHUNK * 2 + 2);
        assert!(done[0].data.starts_with(b"yyy"));
    }

    #[test]
    fn refuse_list_matches_addresses_domains_and_patterns() {
        let r =
            RefuseList::new(&["Gone@Example.com", "@blocked.example", "bounce-*@*.org"]).unwrap();
        assert!(r.refuses("gone@example.COM"));
        assert!(!r.refuses("gone2@example.com"));
        assert!(r.refuses("a@BLOCKED.example"));
        assert!(!r.refuses("a@sub.blocked.example"));
        assert!(r.refuses("bounce-1@x.org"));
        assert!(r.refuses("bounce-@x.y.org"));
        assert!(!r.refuses("bounce@x.org"));
        assert!(RefuseList::new(&[" "]).is_err());
        assert!(RefuseList::default().is_empty());
    }
}
