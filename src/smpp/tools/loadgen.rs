//! An SMPP load generator: binds N sessions, keeps W submit_sm in flight on each,
//! and reports throughput, submit → submit_sm_resp latency and the answers by
//! `command_status`, so refusals by the gate (0x401) show next to ESME_ROK.
//!
//! Each session pre-encodes a pool of messages (consented, unconsented and
//! informational destinations in the configured mix, with the `iys_message_type`
//! TLV), then only copies a frame and patches its sequence number per message. One
//! task per session reads and writes without ever blocking one on the other.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::conn::{self, status_text, FrameBuf};
use crate::smpp::codec::{
    replace_sequence_number, status, Bind, Body, COctetString, CommandId, Header, IysMessageType,
    OctetString, Pdu, SubmitSm, SubmitSmResp, Tlvs, DEFAULT_MAX_COMMAND_LENGTH,
};

/// Stop reading while this much output waits (only deliver_sm_resp can pile up).
const OUT_HIGH_WATER: usize = 1024 * 1024;
/// Most distinct messages a session pre-encodes; it cycles through them.
const POOL_MAX: u64 = 16 * 1024;
/// `esm_class` message-type bits (5..2) of a delivery receipt.
const ESM_TYPE_MASK: u8 = 0x3C;
const ESM_TYPE_RECEIPT: u8 = 0x04;

/// How the load sessions bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindMode {
    /// bind_transmitter: submit only.
    Transmitter,
    /// bind_transceiver: submit and receive receipts on the same session.
    Transceiver,
}

/// `smpp-load` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The gate (or SMSC) to load, host:port.
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub target: String,
    /// Sessions bound in parallel.
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// submit_sm in flight per session.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Messages to send in total, split over the sessions (default 100000 unless
    /// --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Send for this long instead of a message count ("30s", "2m").
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Account to bind as.
    #[arg(long, default_value = "load")]
    pub system_id: String,
    /// Password to bind with.
    #[arg(long, default_value = "load")]
    pub password: String,
    /// Bind type.
    #[arg(long, value_enum, default_value_t = BindMode::Transmitter)]
    pub bind: BindMode,
    /// Share of commercial messages (`iys_message_type` 11) to consented recipients.
    #[arg(long, default_value_t = 0.6)]
    pub consented_share: f64,
    /// Share of commercial messages (11) to recipients without consent.
    #[arg(long, default_value_t = 0.2)]
    pub unconsented_share: f64,
    /// Share of informational messages (`iys_message_type` 0), sent to
    /// --unconsented-prefix numbers (they must pass anyway).
    #[arg(long, default_value_t = 0.2)]
    pub informational_share: f64,
    /// Consented recipients, one number per line (blank lines and `#` comments
    /// skipped); overrides --consented-prefix.
    #[arg(long)]
    pub consented_file: Option<PathBuf>,
    /// Consented recipients are this prefix plus random digits.
    #[arg(long, default_value = "90532")]
    pub consented_prefix: String,
    /// Recipients without consent are this prefix plus random digits.
    #[arg(long, default_value = "90555")]
    pub unconsented_prefix: String,
    /// Digits in a generated number, prefix included.
    #[arg(long, default_value_t = 12)]
    pub number_length: usize,
    /// The sender (source_addr; alphanumeric unless all digits).
    #[arg(long, default_value = "LOADTEST")]
    pub source_addr: String,
    /// Ask for delivery receipts (registered_delivery 1) and, with --bind
    /// transceiver, wait for them and count them.
    #[arg(long)]
    pub receipts: bool,
    /// How long to wait for outstanding receipts after the last response.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub receipt_wait: Duration,
    /// Give up on a session when nothing answers for this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Seed for the destination mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON instead of one line.
    #[arg(long)]
    pub json: bool,
}

/// Where a class of recipients comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Picked at random from this list.
    List(Vec<String>),
    /// This prefix plus random digits up to the configured length.
    Prefix(String),
}

/// When a run stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many messages in total.
    Messages(u64),
    /// After this long.
    Duration(Duration),
}

/// A load run, for library use ([`run_load`]).
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// host:port to connect to.
    pub target: String,
    /// Sessions bound in parallel.
    pub sessions: usize,
    /// submit_sm in flight per session.
    pub window: usize,
    /// When to stop sending.
    pub stop: Stop,
    /// Account to bind as.
    pub system_id: String,
    /// Password to bind with.
    pub password: String,
    /// Bind type.
    pub bind: BindMode,
    /// Relative shares of consented, unconsented and informational messages.
    pub mix: [f64; 3],
    /// Consented recipients.
    pub consented: Recipients,
    /// Recipients without consent (and of informational messages).
    pub unconsented: Recipients,
    /// Digits in a generated number.
    pub number_length: usize,
    /// The sender address.
    pub source_addr: String,
    /// Ask for delivery receipts.
    pub receipts: bool,
    /// How long to wait for receipts after the last response.
    pub receipt_wait: Duration,
    /// Stall limit per session.
    pub timeout: Duration,
    /// Seed for the destination mix.
    pub seed: u64,
    /// Largest PDU accepted from the target.
    pub max_command_length: u32,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            target: "127.0.0.1:2775".into(),
            sessions: 4,
            window: 64,
            stop: Stop::Messages(100_000),
            system_id: "load".into(),
            password: "load".into(),
            bind: BindMode::Transmitter,
            mix: [0.6, 0.2, 0.2],
            consented: Recipients::Prefix("90532".into()),
            unconsented: Recipients::Prefix("90555".into()),
            number_length: 12,
            source_addr: "LOADTEST".into(),
            receipts: false,
            receipt_wait: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            seed: 1,
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
        }
    }
}

impl LoadArgs {
    /// The run these options describe (reads --consented-file).
    pub fn config(&self) -> anyhow::Result<LoadConfig> {
        let consented = match &self.consented_file {
            Some(path) => Recipients::List(read_numbers(path)?),
            None => Recipients::Prefix(self.consented_prefix.clone()),
        };
        let stop = match (self.messages, self.duration) {
            (_, Some(d)) => Stop::Duration(d),
            (Some(n), None) => Stop::Messages(n),
            (None, None) => Stop::Messages(100_000),
        };
        Ok(LoadConfig {
            target: self.target.clone(),
            sessions: self.sessions,
            window: self.window,
            stop,
            system_id: self.system_id.clone(),
            password: self.password.clone(),
            bind: self.bind,
            mix: [
                self.consented_share,
                self.unconsented_share,
                self.informational_share,
            ],
            consented,
            unconsented: Recipients::Prefix(self.unconsented_prefix.clone()),
            number_length: self.number_length,
            source_addr: self.source_addr.clone(),
            receipts: self.receipts,
            receipt_wait: self.receipt_wait,
            timeout: self.timeout,
            seed: self.seed,
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
        })
    }
}

/// One number per line; blank lines and `#` comments skipped.
fn read_numbers(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --consented-file {}", path.display()))?;
    let mut numbers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        ensure!(
            line.len() <= 20 && !line.contains('\0'),
            "{} line {}: {line:?} is not a destination_addr (at most 20 characters)",
            path.display(),
            i + 1
        );
        numbers.push(line.to_owned());
    }
    ensure!(
        !numbers.is_empty(),
        "{} holds no numbers (one per line expected)",
        path.display()
    );
    Ok(numbers)
}

/// The kind of message, as the gate should treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageClass {
    /// Commercial (11) to a consented recipient: should pass.
    Consented,
    /// Commercial (11) to a recipient without consent: should be refused.
    Unconsented,
    /// Informational (0): should pass whatever the recipient.
    Informational,
}

impl MessageClass {
    /// Every class, in report order.
    pub const ALL: [MessageClass; 3] = [
        MessageClass::Consented,
        MessageClass::Unconsented,
        MessageClass::Informational,
    ];

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            MessageClass::Consented => "consented",
            MessageClass::Unconsented => "unconsented",
            MessageClass::Informational => "informational",
        }
    }

    fn iys_type(self) -> IysMessageType {
        match self {
            MessageClass::Informational => IysMessageType::Informational,
            _ => IysMessageType::CommercialIndividual,
        }
    }
}

/// Latency percentiles, in microseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u32,
    /// 90th percentile.
    pub p90: u32,
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
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(0),
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Sessions bound.
    pub sessions: usize,
    /// Window per session.
    pub window: usize,
    /// submit_sm sent.
    pub sent: u64,
    /// submit_sm answered (submit_sm_resp or generic_nack).
    pub messages: u64,
    /// From the first submit_sm to the last answer.
    pub seconds: f64,
    /// `messages / seconds`.
    pub msgs_per_sec: f64,
    /// submit_sm → answer.
    pub latency_us: Latency,
    /// Answers by `command_status`.
    pub statuses: BTreeMap<u32, u64>,
    /// Answers by message class, then `command_status`.
    pub class_statuses: BTreeMap<MessageClass, BTreeMap<u32, u64>>,
    /// Delivery receipts received (deliver_sm with esm_class type 0x04).
    pub receipts: u64,
    /// Other deliver_sm received.
    pub other_deliver_sm: u64,
    /// PDUs from the target that failed to decode or answered nothing we sent.
    pub unexpected: u64,
}

impl LoadReport {
    /// Answers with this `command_status`.
    pub fn status(&self, command_status: u32) -> u64 {
        self.statuses.get(&command_status).copied().unwrap_or(0)
    }

    /// Answers with this status to messages of this class.
    pub fn class_status(&self, class: MessageClass, command_status: u32) -> u64 {
        self.class_statuses
            .get(&class)
            .and_then(|m| m.get(&command_status))
            .copied()
            .unwrap_or(0)
    }

    /// The report as JSON (statuses keyed `0x00000000`).
    pub fn to_json(&self) -> serde_json::Value {
        let hex = |m: &BTreeMap<u32, u64>| -> serde_json::Map<String, serde_json::Value> {
            m.iter()
                .map(|(s, n)| (format!("0x{s:08X}"), (*n).into()))
                .collect()
        };
        let classes: serde_json::Map<String, serde_json::Value> = self
            .class_statuses
            .iter()
            .map(|(c, m)| (c.name().to_owned(), hex(m).into()))
            .collect();
        serde_json::json!({
            "sessions": self.sessions,
            "window": self.window,
            "sent": self.sent,
            "messages": self.messages,
            "seconds": self.seconds,
            "msgs_per_sec": self.msgs_per_sec,
            "latency_us": {
                "p50": self.latency_us.p50,
                "p90": self.latency_us.p90,
                "p99": self.latency_us.p99,
                "max": self.latency_us.max,
            },
            "statuses": hex(&self.statuses),
            "classes": classes,
            "receipts": self.receipts,
            "other_deliver_sm": self.other_deliver_sm,
            "unexpected": self.unexpected,
        })
    }
}

impl fmt::Display for LoadReport {
    /// The one-line summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        write!(
            f,
            "{} messages in {:.2}s = {:.0} msg/s ({}x{}); latency us p50 {} p90 {} p99 {} max {}; status",
            self.messages,
            self.seconds,
            self.msgs_per_sec,
            self.sessions,
            self.window,
            l.p50,
            l.p90,
            l.p99,
            l.max
        )?;
        for (s, n) in &self.statuses {
            write!(f, " {}={n}", status_text(*s))?;
        }
        write!(f, "; receipts {}", self.receipts)?;
        if self.unexpected > 0 {
            write!(f, "; {} unexpected PDUs", self.unexpected)?;
        }
        Ok(())
    }
}

/// Runs the load the options describe and prints the report (one line, or JSON).
pub async fn run(args: LoadArgs) -> anyhow::Result<LoadReport> {
    let report = run_load(args.config()?).await?;
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        println!("{report}");
    }
    Ok(report)
}

/// Runs a load and returns what it measured; fails if a session cannot bind or stalls.
pub async fn run_load(cfg: LoadConfig) -> anyhow::Result<LoadReport> {
    validate(&cfg)?;
    let cfg = Arc::new(cfg);
    let quotas: Vec<u64> = match cfg.stop {
        Stop::Messages(n) => {
            let per = n / cfg.sessions as u64;
            let extra = n % cfg.sessions as u64;
            (0..cfg.sessions as u64)
                .map(|i| per + u64::from(i < extra))
                .collect()
        }
        Stop::Duration(_) => vec![u64::MAX; cfg.sessions],
    };
    // Bind every session and encode its messages before the clock starts.
    let mut binds = JoinSet::new();
    for (i, &quota) in quotas.iter().enumerate() {
        let cfg = cfg.clone();
        binds.spawn(async move {
            let pool = Pool::build(&cfg, i, quota.min(POOL_MAX))?;
            let (stream, frames) = connect_and_bind(&cfg, i).await?;
            Ok::<_, anyhow::Error>((i, stream, frames, pool, quota))
        });
    }
    let mut bound = Vec::with_capacity(cfg.sessions);
    while let Some(joined) = binds.join_next().await {
        bound.push(joined.context("bind task failed")??);
    }
    let start = Instant::now();
    let deadline = match cfg.stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Messages(_) => None,
    };
    let mut sessions = JoinSet::new();
    for (i, stream, frames, pool, quota) in bound {
        let cfg = cfg.clone();
        sessions.spawn(async move {
            let mut s = LoadSession::new(cfg, pool, quota, deadline);
            s.run(stream, frames)
                .await
                .with_context(|| format!("session {i}"))?;
            Ok::<_, anyhow::Error>(s)
        });
    }
    let mut report = LoadReport {
        sessions: cfg.sessions,
        window: cfg.window,
        ..LoadReport::default()
    };
    let mut latencies = Vec::new();
    let mut last_answer = start;
    while let Some(joined) = sessions.join_next().await {
        let s = joined.context("load session task failed")??;
        report.sent += s.sent;
        report.receipts += s.receipts;
        report.other_deliver_sm += s.other_deliver_sm;
        report.unexpected += s.unexpected;
        last_answer = last_answer.max(s.last_answer.unwrap_or(start));
        for (&(class, status), &n) in &s.answers {
            *report.statuses.entry(status).or_default() += n;
            *report
                .class_statuses
                .entry(MessageClass::ALL[usize::from(class)])
                .or_default()
                .entry(status)
                .or_default() += n;
            report.messages += n;
        }
        if latencies.is_empty() {
            latencies = s.latencies;
        } else {
            latencies.extend_from_slice(&s.latencies);
        }
    }
    report.seconds = last_answer.duration_since(start).as_secs_f64();
    report.msgs_per_sec = if report.seconds > 0.0 {
        report.messages as f64 / report.seconds
    } else {
        0.0
    };
    report.latency_us = Latency::of(latencies);
    Ok(report)
}

fn validate(cfg: &LoadConfig) -> anyhow::Result<()> {
    ensure!(cfg.sessions >= 1, "--sessions must be at least 1");
    ensure!(
        (1..=1 << 20).contains(&cfg.window),
        "--window must be between 1 and 1048576"
    );
    ensure!(
        cfg.mix.iter().all(|s| s.is_finite() && *s >= 0.0) && cfg.mix.iter().sum::<f64>() > 0.0,
        "the --*-share values must be zero or more, and not all zero"
    );
    ensure!(
        cfg.number_length <= 20,
        "--number-length must be at most 20 (destination_addr holds 20 characters)"
    );
    for (name, r) in [
        ("--consented-prefix", &cfg.consented),
        ("--unconsented-prefix", &cfg.unconsented),
    ] {
        match r {
            Recipients::Prefix(p) => ensure!(
                p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit() || b == b'+'),
                "{name} {p:?} must be digits (at most 20)"
            ),
            Recipients::List(list) => ensure!(!list.is_empty(), "the recipient list is empty"),
        }
    }
    ensure!(
        !cfg.source_addr.is_empty() && cfg.source_addr.len() <= 20,
        "--source-addr must be 1 to 20 characters"
    );
    ensure!(
        cfg.system_id.len() <= 15 && cfg.password.len() <= 8,
        "--system-id holds at most 15 characters and --password at most 8"
    );
    Ok(())
}

async fn connect_and_bind(cfg: &LoadConfig, i: usize) -> anyhow::Result<(TcpStream, FrameBuf)> {
    let mut stream = conn::connect(&cfg.target)
        .await
        .with_context(|| format!("cannot connect to {}", cfg.target))?;
    let mut frames = FrameBuf::new(cfg.max_command_length);
    let bind = Bind {
        system_id: COctetString::copy_from(cfg.system_id.as_bytes())
            .context("--system-id is not a valid system_id")?,
        password: COctetString::copy_from(cfg.password.as_bytes())
            .context("--password is not a valid password")?,
        interface_version: 0x34,
        ..Bind::default()
    };
    let (body, expect) = match cfg.bind {
        BindMode::Transmitter => (Body::BindTransmitter(bind), CommandId::BindTransmitterResp),
        BindMode::Transceiver => (Body::BindTransceiver(bind), CommandId::BindTransceiverResp),
    };
    let name = body.command_id().name();
    let resp = conn::exchange(&mut stream, &mut frames, &Pdu::new(1, body), cfg.timeout)
        .await
        .with_context(|| format!("session {i}: {name} to {}", cfg.target))?;
    if resp.command_status != status::ESME_ROK {
        bail!(
            "session {i}: {} refused {name} as {:?}: status {}",
            cfg.target,
            cfg.system_id,
            status_text(resp.command_status)
        );
    }
    if resp.command_id() != expect {
        bail!(
            "session {i}: {} answered {name} with {}",
            cfg.target,
            resp.command_id().name()
        );
    }
    Ok((stream, frames))
}

/// Pre-encoded submit_sm frames (sequence number 0) and their classes.
struct Pool {
    bytes: Bytes,
    frames: Vec<(usize, usize, u8)>,
}

impl Pool {
    fn build(cfg: &LoadConfig, session: usize, size: u64) -> anyhow::Result<Pool> {
        let mut rng = StdRng::seed_from_u64(
            cfg.seed ^ (session as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let total: f64 = cfg.mix.iter().sum();
        let source = cfg.source_addr.as_bytes();
        let alnum = !source.iter().all(u8::is_ascii_digit);
        let mut bytes = BytesMut::new();
        let mut frames = Vec::new();
        for n in 0..size.max(1) {
            let mut pick = rng.gen::<f64>() * total;
            let mut class = MessageClass::Informational;
            for (c, share) in MessageClass::ALL.iter().zip(cfg.mix) {
                if pick < share {
                    class = *c;
                    break;
                }
                pick -= share;
            }
            let recipients = match class {
                MessageClass::Consented => &cfg.consented,
                _ => &cfg.unconsented,
            };
            let destination = pick_number(recipients, cfg.number_length, &mut rng);
            let text = format!("iys-gate load test: {} message {n}", class.name());
            let sm = SubmitSm {
                source_addr_ton: if alnum { 5 } else { 1 },
                source_addr_npi: if alnum { 0 } else { 1 },
                source_addr: COctetString::copy_from(source).context("--source-addr")?,
                dest_addr_ton: 1,
                dest_addr_npi: 1,
                destination_addr: COctetString::new(destination).context("destination")?,
                registered_delivery: u8::from(cfg.receipts),
                short_message: OctetString::new(text.into_bytes()).context("message text")?,
                tlvs: Tlvs::from(vec![class.iys_type().to_tlv()]),
                ..SubmitSm::default()
            };
            let at = bytes.len();
            Pdu::new(0, Body::SubmitSm(sm)).encode(&mut bytes);
            frames.push((at, bytes.len() - at, class as u8));
        }
        Ok(Pool {
            bytes: bytes.freeze(),
            frames,
        })
    }
}

fn pick_number(recipients: &Recipients, len: usize, rng: &mut StdRng) -> Vec<u8> {
    match recipients {
        Recipients::List(list) => list
            .get(rng.gen_range(0..list.len().max(1)))
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
        Recipients::Prefix(prefix) => {
            let mut n = prefix.as_bytes().to_vec();
            while n.len() < len {
                n.push(b'0' + rng.gen_range(0..10u8));
            }
            n
        }
    }
}

/// One session's run and what it counted.
struct LoadSession {
    cfg: Arc<LoadConfig>,
    pool: Pool,
    next_frame: usize,
    quota: u64,
    deadline: Option<Instant>,
    next_seq: u32,
    /// sequence number → (sent at, class).
    in_flight: FxHashMap<u32, (Instant, u8)>,
    sent: u64,
    ok: u64,
    answers: FxHashMap<(u8, u32), u64>,
    latencies: Vec<u32>,
    last_answer: Option<Instant>,
    receipts: u64,
    other_deliver_sm: u64,
    unexpected: u64,
}

impl LoadSession {
    fn new(cfg: Arc<LoadConfig>, pool: Pool, quota: u64, deadline: Option<Instant>) -> Self {
        let window = cfg.window;
        LoadSession {
            cfg,
            pool,
            next_frame: 0,
            quota,
            deadline,
            next_seq: 2,
            in_flight: FxHashMap::with_capacity_and_hasher(window * 2, Default::default()),
            sent: 0,
            ok: 0,
            answers: FxHashMap::default(),
            latencies: Vec::with_capacity(usize::try_from(quota.min(1 << 24)).unwrap_or(0)),
            last_answer: None,
            receipts: 0,
            other_deliver_sm: 0,
            unexpected: 0,
        }
    }

    fn seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
        seq
    }

    async fn run(&mut self, mut stream: TcpStream, mut frames: FrameBuf) -> anyhow::Result<()> {
        let wait_receipts = self.cfg.receipts && self.cfg.bind == BindMode::Transceiver;
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_progress = Instant::now();
        let mut sending = true;
        let mut receipts_until: Option<Instant> = None;
        {
            let (mut rd, mut wr) = stream.split();
            loop {
                let now = Instant::now();
                if sending && (self.sent >= self.quota || self.deadline.is_some_and(|d| now >= d)) {
                    sending = false;
                }
                if sending {
                    self.fill(&mut out, now);
                } else if self.in_flight.is_empty() {
                    let until = *receipts_until.get_or_insert(now + self.cfg.receipt_wait);
                    let waiting = wait_receipts && self.receipts < self.ok && now < until;
                    if !waiting && out.is_empty() {
                        break;
                    }
                }
                tokio::select! {
                    read = rd.read_buf(frames.read_space()), if out.len() < OUT_HIGH_WATER => {
                        match read {
                            Ok(0) => bail!(
                                "{} closed the connection with {} submit_sm unanswered",
                                self.cfg.target,
                                self.in_flight.len()
                            ),
                            Ok(_) => {}
                            Err(e) => bail!("reading from {}: {e}", self.cfg.target),
                        }
                        last_progress = Instant::now();
                        self.take_answers(&mut frames, &mut out, last_progress)?;
                    }
                    written = wr.write_buf(&mut out), if !out.is_empty() => {
                        match written {
                            Ok(n) if n > 0 => {}
                            Ok(_) => bail!("{} stopped taking data", self.cfg.target),
                            Err(e) => bail!("writing to {}: {e}", self.cfg.target),
                        }
                    }
                    _ = tick.tick() => {
                        if !self.in_flight.is_empty() && last_progress.elapsed() >= self.cfg.timeout {
                            bail!(
                                "no answer from {} for {:?} with {} submit_sm in flight",
                                self.cfg.target,
                                self.cfg.timeout,
                                self.in_flight.len()
                            );
                        }
                    }
                }
            }
        }
        let unbind = Pdu::new(self.seq(), Body::Unbind);
        if let Err(e) = conn::exchange(&mut stream, &mut frames, &unbind, self.cfg.timeout).await {
            tracing::warn!("unbind from {}: {e:#}", self.cfg.target);
        }
        // Best effort: the measurement is complete.
        let _ = stream.shutdown().await;
        Ok(())
    }

    /// Queues submit_sm until the window is full.
    fn fill(&mut self, out: &mut BytesMut, now: Instant) {
        while self.in_flight.len() < self.cfg.window
            && self.sent < self.quota
            && out.len() < OUT_HIGH_WATER
        {
            let Some(&(at, len, class)) = self.pool.frames.get(self.next_frame) else {
                return;
            };
            self.next_frame = (self.next_frame + 1) % self.pool.frames.len();
            let start = out.len();
            out.extend_from_slice(&self.pool.bytes[at..at + len]);
            let seq = self.seq();
            replace_sequence_number(&mut out[start..], seq);
            self.in_flight.insert(seq, (now, class));
            self.sent += 1;
        }
    }

    /// Handles every whole PDU that has arrived.
    fn take_answers(
        &mut self,
        frames: &mut FrameBuf,
        out: &mut BytesMut,
        now: Instant,
    ) -> anyhow::Result<()> {
        while let Some(frame) = frames
            .next_frame()
            .with_context(|| format!("{} sent an unframeable PDU", self.cfg.target))?
        {
            let Some(header) = Header::peek(&frame) else {
                continue;
            };
            let pdu = match Pdu::decode_bytes(frame) {
                Ok(pdu) => pdu,
                Err(e) => {
                    tracing::debug!("invalid PDU from {}: {e}", self.cfg.target);
                    self.unexpected += 1;
                    // Still an answer to a submit_sm: count it so the run ends.
                    if header.command().is_response() {
                        self.answered(header.sequence_number, header.command_status, now);
                    }
                    continue;
                }
            };
            let seq = pdu.sequence_number;
            match pdu.body {
                Body::SubmitSmResp(_) | Body::GenericNack => {
                    if !self.answered(seq, pdu.command_status, now) {
                        self.unexpected += 1;
                    }
                }
                Body::DeliverSm(ref d) => {
                    if d.esm_class & ESM_TYPE_MASK == ESM_TYPE_RECEIPT {
                        self.receipts += 1;
                    } else {
                        self.other_deliver_sm += 1;
                    }
                    Pdu {
                        command_status: status::ESME_ROK,
                        sequence_number: seq,
                        body: Body::DeliverSmResp(Some(SubmitSmResp::default())),
                    }
                    .encode(out);
                }
                Body::EnquireLink => Pdu {
                    command_status: status::ESME_ROK,
                    sequence_number: seq,
                    body: Body::EnquireLinkResp,
                }
                .encode(out),
                Body::Unbind => bail!(
                    "{} unbound the session with {} submit_sm unanswered",
                    self.cfg.target,
                    self.in_flight.len()
                ),
                Body::EnquireLinkResp => {}
                _ => self.unexpected += 1,
            }
        }
        Ok(())
    }

    /// Records the answer to submit_sm `seq`; false if none was in flight.
    fn answered(&mut self, seq: u32, command_status: u32, now: Instant) -> bool {
        let Some((sent_at, class)) = self.in_flight.remove(&seq) else {
            return false;
        };
        let us = now.saturating_duration_since(sent_at).as_micros();
        self.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
        *self.answers.entry((class, command_status)).or_default() += 1;
        if command_status == status::ESME_ROK {
            self.ok += 1;
        }
        self.last_answer = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::codec::TlvRead;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::of((1..=100).rev().collect());
        assert_eq!(
            l,
            Latency {
                p50: 50,
                p90: 90,
                p99: 99,
                max: 100
            }
        );
        assert_eq!(Latency::of(vec![]), Latency::default());
        assert_eq!(Latency::of(vec![7]).p99, 7);
    }

    #[test]
    fn pool_follows_the_mix_and_tags_the_class() {
        let cfg = LoadConfig {
            mix: [0.0, 1.0, 1.0],
            ..LoadConfig::default()
        };
        let pool = Pool::build(&cfg, 0, 1000).unwrap();
        let mut seen = [0u32; 3];
        for &(at, len, class) in &pool.frames {
            let pdu = Pdu::decode(&pool.bytes[at..at + len]).unwrap();
            let Body::SubmitSm(sm) = pdu.body else {
                panic!("not a submit_sm");
            };
            seen[usize::from(class)] += 1;
            let want = if class == MessageClass::Informational as u8 {
                IysMessageType::Informational
            } else {
                IysMessageType::CommercialIndividual
            };
            assert_eq!(sm.tlvs.iys_message_type().unwrap(), Some(want));
            assert!(sm.destination_addr.starts_with(b"90555"));
            assert_eq!(sm.destination_addr.len(), 12);
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 400 && seen[2] > 400, "{seen:?}");
    }
}
