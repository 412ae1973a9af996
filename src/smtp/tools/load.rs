//! An SMTP load generator: N sessions at once, M messages a session, R
//! recipients a message (from a list or a pattern, in a consented/unconsented
//! mix), with or without PIPELINING, messages of a given size. Reports
//! messages and recipients per second, every reply by code (RCPT and end of
//! data apart), and per-message latency (MAIL written to the final reply).
//!
//! Every session connects, greets (and authenticates) before the clock starts;
//! a run ends after its messages or at `--duration`, whichever comes first
//! (a session finishes the message it is on, then QUITs).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::BytesMut;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// `smtp-load` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The gate's hop (or any SMTP server), host:port.
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub target: String,
    /// Sessions at once.
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// Messages per session (default 100 unless --duration is given).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Stop starting messages after this long ("30s", "2m"); with --messages,
    /// whichever comes first.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Recipients per message.
    #[arg(long, default_value_t = 1)]
    pub recipients: usize,
    /// Send each command and wait for its reply (default: MAIL, every RCPT and
    /// DATA in one write, as RFC 2920 PIPELINING allows).
    #[arg(long)]
    pub no_pipelining: bool,
    /// Message size in octets (headers included).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Envelope sender.
    #[arg(long, default_value = "load@shop.example")]
    pub from: String,
    /// The EHLO name.
    #[arg(long, default_value = "smtp-load.example")]
    pub ehlo: String,
    /// Authenticate with AUTH PLAIN as USER:PASSWORD after EHLO.
    #[arg(long)]
    pub auth: Option<String>,
    /// Consented recipients, one address a line (blank lines and `#` comments
    /// skipped); overrides --consented-pattern.
    #[arg(long)]
    pub consented_file: Option<PathBuf>,
    /// Consented recipients: `{n}` becomes a random number below --pattern-range.
    #[arg(long, default_value = "rcpt{n}@example.com")]
    pub consented_pattern: String,
    /// Recipients without consent, likewise.
    #[arg(long, default_value = "nobody{n}@example.net")]
    pub unconsented_pattern: String,
    /// Share of recipients drawn from --unconsented-pattern (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub unconsented_share: f64,
    /// `{n}` in a pattern is below this.
    #[arg(long, default_value_t = 1_000_000)]
    pub pattern_range: u64,
    /// Give up on a session when a reply takes longer than this.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Seed for the recipient mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Where recipients come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Picked at random from this list.
    List(Vec<String>),
    /// `{n}` replaced by a random number below the range.
    Pattern(String),
}

/// A load run, for library use ([`run_load`]).
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// host:port.
    pub target: String,
    /// Sessions at once.
    pub sessions: usize,
    /// Messages per session (None: until the duration ends).
    pub messages: Option<u64>,
    /// Stop starting messages after this long.
    pub duration: Option<Duration>,
    /// Recipients per message.
    pub recipients: usize,
    /// MAIL, RCPTs and DATA in one write.
    pub pipelining: bool,
    /// Message size in octets.
    pub size: usize,
    /// Envelope sender.
    pub from: String,
    /// EHLO name.
    pub ehlo: String,
    /// AUTH PLAIN credentials.
    pub auth: Option<(String, String)>,
    /// Consented recipients.
    pub consented: Recipients,
    /// Recipients without consent.
    pub unconsented: Recipients,
    /// Share of unconsented recipients.
    pub unconsented_share: f64,
    /// `{n}` range.
    pub pattern_range: u64,
    /// Reply timeout.
    pub timeout: Duration,
    /// Seed.
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            target: "127.0.0.1:2525".into(),
            sessions: 4,
            messages: Some(100),
            duration: None,
            recipients: 1,
            pipelining: true,
            size: 1024,
            from: "load@shop.example".into(),
            ehlo: "smtp-load.example".into(),
            auth: None,
            consented: Recipients::Pattern("rcpt{n}@example.com".into()),
            unconsented: Recipients::Pattern("nobody{n}@example.net".into()),
            unconsented_share: 0.0,
            pattern_range: 1_000_000,
            timeout: Duration::from_secs(30),
            seed: 1,
        }
    }
}

impl LoadArgs {
    /// The run these options describe (reads --consented-file).
    pub fn config(&self) -> anyhow::Result<LoadConfig> {
        let consented = match &self.consented_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --consented-file {}", path.display()))?;
                let list: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect();
                ensure!(
                    !list.is_empty(),
                    "--consented-file {} holds no addresses (one a line expected)",
                    path.display()
                );
                Recipients::List(list)
            }
            None => Recipients::Pattern(self.consented_pattern.clone()),
        };
        let auth = match &self.auth {
            Some(a) => {
                let (u, p) = a.split_once(':').context("--auth must be USER:PASSWORD")?;
                Some((u.to_string(), p.to_string()))
            }
            None => None,
        };
        let messages = match (self.messages, self.duration) {
            (None, None) => Some(100),
            (m, _) => m,
        };
        Ok(LoadConfig {
            target: self.target.clone(),
            sessions: self.sessions,
            messages,
            duration: self.duration,
            recipients: self.recipients,
            pipelining: !self.no_pipelining,
            size: self.size,
            from: self.from.clone(),
            ehlo: self.ehlo.clone(),
            auth,
            consented,
            unconsented: Recipients::Pattern(self.unconsented_pattern.clone()),
            unconsented_share: self.unconsented_share,
            pattern_range: self.pattern_range,
            timeout: self.timeout,
            seed: self.seed,
        })
    }
}

/// Latency percentiles, in microseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u32,
    /// 99th percentile.
    pub p99: u32,
    /// Slowest.
    pub max: u32,
}

impl Latency {
    fn of(mut samples: Vec<u32>) -> Latency {
        samples.sort_unstable();
        let rank = |p: f64| -> u32 {
            if samples.is_empty() {
                return 0;
            }
            let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i]
        };
        Latency {
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(0),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    /// Sessions run.
    pub sessions: usize,
    /// Recipients per message.
    pub recipients_per_message: usize,
    /// Whether commands were pipelined.
    pub pipelining: bool,
    /// Transactions finished (a final reply to the end of data, or DATA refused).
    pub messages: u64,
    /// Messages accepted (2xx after the end of data).
    pub accepted: u64,
    /// RCPTs answered 2xx.
    pub rcpt_accepted: u64,
    /// RCPTs answered otherwise.
    pub rcpt_refused: u64,
    /// From the first message to the last reply.
    pub seconds: f64,
    /// Accepted messages per second.
    pub msgs_per_sec: f64,
    /// Accepted recipients per second.
    pub rcpts_per_sec: f64,
    /// Per message, MAIL written to its final reply.
    pub latency_us: Latency,
    /// Replies to RCPT by code.
    pub rcpt_replies: BTreeMap<u16, u64>,
    /// Final replies by code: to the end of data, or to DATA when it was refused.
    pub data_replies: BTreeMap<u16, u64>,
    /// Every reply of the transactions (MAIL, RCPT, DATA, end of data, RSET) by code.
    pub replies: BTreeMap<u16, u64>,
    /// Sessions that broke off (connection lost, timeout, 421); the first error.
    pub broken_sessions: u64,
    /// The first broken session's error.
    pub first_error: Option<String>,
}

impl LoadReport {
    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes = |m: &BTreeMap<u16, u64>| {
            m.iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "{} sessions, {} recipients/message, pipelining {}: {} messages ({} accepted) in {:.2}s",
            self.sessions,
            self.recipients_per_message,
            if self.pipelining { "on" } else { "off" },
            self.messages,
            self.accepted,
            self.seconds
        )?;
        writeln!(
            f,
            "  {:.0} messages/s, {:.0} recipients/s ({} accepted, {} refused)",
            self.msgs_per_sec, self.rcpts_per_sec, self.rcpt_accepted, self.rcpt_refused
        )?;
        writeln!(
            f,
            "  latency per message: median {} us, p99 {} us, max {} us",
            self.latency_us.p50, self.latency_us.p99, self.latency_us.max
        )?;
        writeln!(f, "  RCPT replies: {}", codes(&self.rcpt_replies))?;
        write!(f, "  final replies: {}", codes(&self.data_replies))?;
        if self.broken_sessions > 0 {
            write!(
                f,
                "\n  {} sessions broke off; first: {}",
                self.broken_sessions,
                self.first_error.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}

/// Runs `smtp-load` and prints the report.
pub async fn run(args: LoadArgs) -> anyhow::Result<LoadReport> {
    let report = run_load(args.config()?).await?;
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        println!("{report}");
    }
    Ok(report)
}

fn validate(cfg: &LoadConfig) -> anyhow::Result<()> {
    ensure!(cfg.sessions >= 1, "--sessions must be at least 1");
    ensure!(cfg.recipients >= 1, "--recipients must be at least 1");
    ensure!(
        (0.0..=1.0).contains(&cfg.unconsented_share),
        "--unconsented-share must be between 0 and 1"
    );
    ensure!(cfg.pattern_range >= 1, "--pattern-range must be at least 1");
    ensure!(
        cfg.messages.is_some() || cfg.duration.is_some(),
        "give --messages or --duration"
    );
    for (what, r) in [
        ("consented", &cfg.consented),
        ("unconsented", &cfg.unconsented),
    ] {
        let bad = |a: &str| a.is_empty() || a.contains(['<', '>', '\r', '\n', ' ']);
        match r {
            Recipients::List(l) => {
                if let Some(a) = l.iter().find(|a| bad(a)) {
                    bail!("{what} recipient {a:?} is not an address");
                }
            }
            Recipients::Pattern(p) => ensure!(!bad(p), "--{what}-pattern {p:?} is not an address"),
        }
    }
    ensure!(
        !cfg.from.contains(['<', '>', '\r', '\n', ' ']),
        "--from {:?} is not an address",
        cfg.from
    );
    Ok(())
}

/// Runs a load and returns what it measured; fails if no session can connect.
pub async fn run_load(cfg: LoadConfig) -> anyhow::Result<LoadReport> {
    validate(&cfg)?;
    let cfg = Arc::new(cfg);
    let body = Arc::new(message(&cfg));
    let mut opened = JoinSet::new();
    for i in 0..cfg.sessions {
        let cfg = cfg.clone();
        opened.spawn(async move { (i, Client::open(&cfg).await) });
    }
    let mut clients = Vec::with_capacity(cfg.sessions);
    while let Some(joined) = opened.join_next().await {
        let (i, client) = joined.context("connect task failed")?;
        clients.push((
            i,
            client.with_context(|| format!("session {i}: cannot start on {}", cfg.target))?,
        ));
    }
    let start = Instant::now();
    let deadline = cfg.duration.map(|d| start + d);
    let mut running = JoinSet::new();
    for (i, client) in clients {
        let cfg = cfg.clone();
        let body = body.clone();
        running.spawn(async move {
            let mut tally = Tally::default();
            let result = session(&cfg, client, &body, deadline, i, &mut tally).await;
            (tally, result.err().map(|e| format!("session {i}: {e:#}")))
        });
    }
    let mut report = LoadReport {
        sessions: cfg.sessions,
        recipients_per_message: cfg.recipients,
        pipelining: cfg.pipelining,
        ..LoadReport::default()
    };
    let mut latencies = Vec::new();
    let mut last = start;
    while let Some(joined) = running.join_next().await {
        let (t, err) = joined.context("load session task failed")?;
        if let Some(e) = err {
            report.broken_sessions += 1;
            report.first_error.get_or_insert(e);
        }
        report.messages += t.messages;
        report.accepted += t.accepted;
        report.rcpt_accepted += t.rcpt_accepted;
        report.rcpt_refused += t.rcpt_refused;
        for (dst, src) in [
            (&mut report.rcpt_replies, &t.rcpt_replies),
            (&mut report.data_replies, &t.data_replies),
            (&mut report.replies, &t.replies),
        ] {
            for (c, n) in src {
                *dst.entry(*c).or_default() += n;
            }
        }
        latencies.extend(t.latencies);
        if let Some(l) = t.last_reply {
            last = last.max(l);
        }
    }
    report.seconds = last.duration_since(start).as_secs_f64();
    if report.seconds > 0.0 {
        report.msgs_per_sec = report.accepted as f64 / report.seconds;
        report.rcpts_per_sec = report.rcpt_accepted as f64 / report.seconds;
    }
    report.latency_us = Latency::of(latencies);
    if report.messages == 0 && report.broken_sessions > 0 {
        bail!(
            "no message finished: {}",
            report.first_error.as_deref().unwrap_or("-")
        );
    }
    Ok(report)
}

/// The message every session sends: headers, then 76-character lines up to `size`.
fn message(cfg: &LoadConfig) -> Vec<u8> {
    let mut m = format!(
        "From: <{}>\r\nTo: undisclosed-recipients:;\r\nSubject: smtp-load\r\nMessage-ID: <smtp-load@{}>\r\nX-IYS-Message-Type: 11\r\n\r\n",
        cfg.from, cfg.ehlo
    )
    .into_bytes();
    let line = [b'x'; 76];
    while m.len() + 78 <= cfg.size {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    let rest = cfg.size.saturating_sub(m.len() + 2);
    if rest > 0 {
        m.extend(std::iter::repeat_n(b'x', rest));
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

#[derive(Debug, Default)]
struct Tally {
    messages: u64,
    accepted: u64,
    rcpt_accepted: u64,
    rcpt_refused: u64,
    rcpt_replies: BTreeMap<u16, u64>,
    data_replies: BTreeMap<u16, u64>,
    replies: BTreeMap<u16, u64>,
    latencies: Vec<u32>,
    last_reply: Option<Instant>,
}

impl Tally {
    fn reply(&mut self, code: u16) {
        *self.replies.entry(code).or_default() += 1;
    }
}

/// One client connection: a stream and what has been read of it.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
    pipelining: bool,
}

impl Client {
    /// Connects, reads the greeting, EHLO (and AUTH PLAIN).
    async fn open(cfg: &LoadConfig) -> anyhow::Result<Client> {
        let stream = tokio::time::timeout(cfg.timeout, TcpStream::connect(&cfg.target))
            .await
            .context("connect timed out")?
            .context("cannot connect")?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            timeout: cfg.timeout,
            pipelining: cfg.pipelining,
        };
        let (code, text) = c.reply().await.context("greeting")?;
        ensure!(code == 220, "greeting: {code} {text}");
        c.send(format!("EHLO {}\r\n", cfg.ehlo).as_bytes()).await?;
        let (code, ehlo) = c.reply().await.context("EHLO")?;
        ensure!(code == 250, "EHLO: {code} {ehlo}");
        if cfg.pipelining
            && !ehlo
                .lines()
                .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING"))
        {
            c.pipelining = false;
        }
        if let Some((user, password)) = &cfg.auth {
            let token = base64(format!("\0{user}\0{password}").as_bytes());
            c.send(format!("AUTH PLAIN {token}\r\n").as_bytes()).await?;
            let (code, text) = c.reply().await.context("AUTH")?;
            ensure!(code == 235, "AUTH PLAIN as {user}: {code} {text}");
        }
        Ok(c)
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .context("write timed out")?
            .context("write failed")
    }

    /// One whole reply: its code and its text lines (without codes), joined by `\n`.
    async fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                let code: u16 = line
                    .get(..3)
                    .and_then(|c| c.parse().ok())
                    .with_context(|| format!("not an SMTP reply: {line:?}"))?;
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(line.get(4..).unwrap_or(""));
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok((code, text));
                }
            }
            ensure!(self.buf.len() < 64 * 1024, "reply line too long");
            let n = tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf))
                .await
                .context("no reply in time")?
                .context("read failed")?;
            ensure!(n > 0, "connection closed");
        }
    }
}

async fn session(
    cfg: &LoadConfig,
    mut c: Client,
    body: &[u8],
    deadline: Option<Instant>,
    index: usize,
    t: &mut Tally,
) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003) + index as u64);
    let mut sent = 0u64;
    let mut commands = Vec::with_capacity(256);
    let mut rcpts = Vec::with_capacity(cfg.recipients);
    loop {
        if cfg.messages.is_some_and(|m| sent >= m) || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        sent += 1;
        rcpts.clear();
        for _ in 0..cfg.recipients {
            let from = if cfg.unconsented_share > 0.0 && rng.gen_bool(cfg.unconsented_share) {
                &cfg.unconsented
            } else {
                &cfg.consented
            };
            rcpts.push(pick(from, cfg.pattern_range, &mut rng));
        }
        let began = Instant::now();
        let (mail, data) = if c.pipelining {
            commands.clear();
            commands.extend_from_slice(format!("MAIL FROM:<{}>\r\n", cfg.from).as_bytes());
            for r in &rcpts {
                commands.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            commands.extend_from_slice(b"DATA\r\n");
            c.send(&commands).await?;
            let mail = c.reply().await.context("MAIL")?.0;
            t.reply(mail);
            for _ in &rcpts {
                let code = c.reply().await.context("RCPT")?.0;
                rcpt(t, code);
            }
            let data = c.reply().await.context("DATA")?.0;
            t.reply(data);
            (mail, data)
        } else {
            c.send(format!("MAIL FROM:<{}>\r\n", cfg.from).as_bytes())
                .await?;
            let mail = c.reply().await.context("MAIL")?.0;
            t.reply(mail);
            let mut any = false;
            if mail / 100 == 2 {
                for r in &rcpts {
                    c.send(format!("RCPT TO:<{r}>\r\n").as_bytes()).await?;
                    let code = c.reply().await.context("RCPT")?.0;
                    rcpt(t, code);
                    any |= code / 100 == 2;
                }
            }
            let data = if any {
                c.send(b"DATA\r\n").await?;
                let code = c.reply().await.context("DATA")?.0;
                t.reply(code);
                code
            } else {
                0
            };
            (mail, data)
        };
        ensure!(
            mail != 421 && data != 421,
            "the server closed the session (421)"
        );
        let fin = if data == 354 {
            c.send(body).await?;
            let code = c.reply().await.context("end of data")?.0;
            t.reply(code);
            code
        } else {
            // DATA refused (or never sent): the transaction is over; reset it.
            c.send(b"RSET\r\n").await?;
            let code = c.reply().await.context("RSET")?.0;
            t.reply(code);
            data
        };
        let now = Instant::now();
        if fin != 0 {
            *t.data_replies.entry(fin).or_default() += 1;
        }
        t.messages += 1;
        if fin / 100 == 2 {
            t.accepted += 1;
        }
        t.latencies
            .push(now.duration_since(began).as_micros().min(u32::MAX as u128) as u32);
        t.last_reply = Some(now);
        ensure!(fin != 421, "the server closed the session (421)");
    }
    c.send(b"QUIT\r\n").await?;
    let _ = c.reply().await;
    Ok(())
}

fn rcpt(t: &mut Tally, code: u16) {
    t.reply(code);
    *t.rcpt_replies.entry(code).or_default() += 1;
    if code / 100 == 2 {
        t.rcpt_accepted += 1;
    } else {
        t.rcpt_refused += 1;
    }
}

fn pick(from: &Recipients, range: u64, rng: &mut ChaCha8Rng) -> String {
    match from {
        Recipients::List(l) => l[rng.gen_range(0..l.len())].clone(),
        Recipients::Pattern(p) if p.contains("{n}") => {
            p.replace("{n}", &rng.gen_range(0..range).to_string())
        }
        Recipients::Pattern(p) => p.clone(),
    }
}

/// Standard base64 with padding (AUTH PLAIN's token).
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn message_has_the_asked_size_and_ends_with_the_dot() {
        let cfg = LoadConfig {
            size: 5000,
            ..LoadConfig::default()
        };
        let m = message(&cfg);
        assert_eq!(m.len(), 5000 + 3);
        assert!(m.ends_with(b"\r\n.\r\n"));
    }
}
