//! A load generator for Postfix policy services, and the trivial always-`DUNNO`
//! policy server it is compared against.
//!
//! Load: N persistent connections, as Postfix's smtpd processes hold them,
//! each with P requests outstanding (P = 1: send one, wait for its answer,
//! send the next, as smtpd does; P > 1 pipelines). Each request is what
//! Postfix 3.7 sends at RCPT (about 30 attributes), the recipients taken in
//! turn from `--recipient` / `--recipient-file`. Reports requests per second,
//! request → answer latency and the answers by kind (`DUNNO`/`OK`, `5xx`,
//! `4xx`, other).
//!
//! `--serve-dunno ADDR` instead runs a policy server that answers every
//! request `action=DUNNO` without reading it (it only counts empty lines,
//! LF line ends only): the cheapest possible policy service, the baseline
//! for "what does asking the gate cost Postfix".

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::smtp::codec::policy::{encode_request, parse_answer};

/// `smtp-policy-load` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyLoadArgs {
    /// The policy service to load, host:port.
    #[arg(long, default_value = "127.0.0.1:10040")]
    pub target: String,
    /// Persistent connections (one per Postfix smtpd process).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Requests outstanding per connection (1: one at a time, as smtpd asks).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Count for this long, after --warmup ("10s").
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Run this long before counting.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Send exactly this many requests in total instead (no warm-up; --duration ignored).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Envelope sender in every request.
    #[arg(long, default_value = "news@shop.example")]
    pub sender: String,
    /// `client_address` in every request.
    #[arg(long, default_value = "192.0.2.10")]
    pub client_address: String,
    /// `sasl_username` in every request (empty: none).
    #[arg(long, default_value = "")]
    pub sasl_username: String,
    /// A recipient (repeatable); requests take them in turn.
    #[arg(long = "recipient")]
    pub recipients: Vec<String>,
    /// Recipients, one per line (added to --recipient; at most 65536 used).
    #[arg(long)]
    pub recipient_file: Option<PathBuf>,
    /// Give up when an answer takes longer than this.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Do not load anything: serve as an always-DUNNO policy server on this address.
    #[arg(long)]
    pub serve_dunno: Option<SocketAddr>,
}

/// What a load run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PolicyLoadReport {
    /// Answers counted (in the measured window).
    pub requests: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// requests / seconds.
    pub per_second: f64,
    /// Answers by kind: `pass` (DUNNO, OK), `5xx`, `4xx`, `other`.
    pub answers: BTreeMap<String, u64>,
    /// Median request → answer latency, microseconds.
    pub latency_p50_us: f64,
    /// 99th percentile, microseconds.
    pub latency_p99_us: f64,
    /// Longest, microseconds.
    pub latency_max_us: f64,
    /// Connections used.
    pub connections: usize,
    /// Requests outstanding per connection.
    pub pipeline: usize,
}

impl std::fmt::Display for PolicyLoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests in {:.2}s = {:.0}/s over {} connections (pipeline {}); answers:",
            self.requests, self.seconds, self.per_second, self.connections, self.pipeline
        )?;
        for (k, v) in &self.answers {
            write!(f, " {k} {v}")?;
        }
        write!(
            f,
            "; latency p50 {:.0}us p99 {:.0}us max {:.0}us",
            self.latency_p50_us, self.latency_p99_us, self.latency_max_us
        )
    }
}

/// Run the subcommand: a load run (report printed), or the DUNNO server.
pub async fn run(args: PolicyLoadArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.serve_dunno {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("--serve-dunno {addr}"))?;
        eprintln!("always-DUNNO policy server on {}", listener.local_addr()?);
        serve_dunno(listener).await;
        return Ok(());
    }
    let report = run_load(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// Answer every request on `listener` with `action=DUNNO`, forever.
pub async fn serve_dunno(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut out = Vec::with_capacity(4096);
            let mut after_newline = false;
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if b == b'\n' {
                        if after_newline {
                            out.extend_from_slice(b"action=DUNNO\n\n");
                        }
                        after_newline = !after_newline;
                    } else {
                        after_newline = false;
                    }
                }
                if !out.is_empty() {
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
            }
        });
    }
}

/// One request as Postfix 3.7's smtpd sends it at RCPT.
fn postfix_request(args: &PolicyLoadArgs, recipient: &str, n: usize) -> Vec<u8> {
    let instance = format!("{:x}.6571a0b2.4c3d1.0", 0x1000 + n);
    let mut out = Vec::with_capacity(768);
    encode_request(
        &mut out,
        &[
            ("request", "smtpd_access_policy"),
            ("protocol_state", "RCPT"),
            ("protocol_name", "ESMTP"),
            ("client_address", &args.client_address),
            ("client_name", "client.example"),
            ("client_port", "41234"),
            ("reverse_client_name", "client.example"),
            ("server_address", "127.0.0.1"),
            ("server_port", "25"),
            ("helo_name", "client.example"),
            ("sender", &args.sender),
            ("recipient", recipient),
            ("recipient_count", "0"),
            ("queue_id", ""),
            ("instance", &instance),
            ("size", "0"),
            ("etrn_domain", ""),
            ("stress", ""),
            ("sasl_method", ""),
            ("sasl_username", &args.sasl_username),
            ("sasl_sender", ""),
            ("ccert_subject", ""),
            ("ccert_issuer", ""),
            ("ccert_fingerprint", ""),
            ("ccert_pubkey_fingerprint", ""),
            ("encryption_protocol", ""),
            ("encryption_cipher", ""),
            ("encryption_keysize", "0"),
            ("policy_context", ""),
            ("compatibility_level", "3.6"),
            ("mail_version", "3.7.11"),
        ],
    );
    out
}

/// What one connection measured.
#[derive(Default)]
struct ConnStats {
    answers: [u64; 4],
    latencies_ns: Vec<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

const KINDS: [&str; 4] = ["pass", "5xx", "4xx", "other"];

fn kind(action: &str) -> usize {
    let word = action.split_ascii_whitespace().next().unwrap_or("");
    if word.eq_ignore_ascii_case("DUNNO") || word.eq_ignore_ascii_case("OK") {
        0
    } else if word.starts_with('5') {
        1
    } else if word.starts_with('4') {
        2
    } else {
        3
    }
}

/// Load `args.target` and report (the library entry tests use).
pub async fn run_load(args: &PolicyLoadArgs) -> anyhow::Result<PolicyLoadReport> {
    if args.connections == 0 || args.pipeline == 0 {
        bail!("--connections and --pipeline must be at least 1");
    }
    let mut recipients = args.recipients.clone();
    if let Some(path) = &args.recipient_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--recipient-file {}", path.display()))?;
        recipients.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .take(65536)
                .map(String::from),
        );
    }
    if recipients.is_empty() {
        recipients.push("consented@example.com".into());
    }
    let pool: std::sync::Arc<Vec<Vec<u8>>> = std::sync::Arc::new(
        recipients
            .iter()
            .enumerate()
            .map(|(i, r)| postfix_request(args, r, i))
            .collect(),
    );
    let start = Instant::now();
    let (window_start, window_end) = match args.requests {
        Some(_) => (start, None),
        None => (
            start + args.warmup,
            Some(start + args.warmup + args.duration),
        ),
    };
    let mut set = JoinSet::new();
    for c in 0..args.connections {
        let quota = args.requests.map(|n| {
            let each = n / args.connections as u64;
            each + u64::from((c as u64) < n % args.connections as u64)
        });
        let target = args.target.clone();
        let pool = pool.clone();
        let (pipeline, timeout) = (args.pipeline, args.timeout);
        set.spawn(async move {
            connection(
                &target,
                &pool,
                c,
                pipeline,
                quota,
                window_start,
                window_end,
                timeout,
            )
            .await
        });
    }
    let mut total = ConnStats::default();
    while let Some(r) = set.join_next().await {
        let s = r.context("load connection task")??;
        for (t, n) in total.answers.iter_mut().zip(s.answers) {
            *t += n;
        }
        total.latencies_ns.extend(s.latencies_ns);
        total.first = match (total.first, s.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        total.last = total.last.max(s.last);
    }
    let requests: u64 = total.answers.iter().sum();
    let seconds = match window_end {
        Some(end) => (end - window_start).as_secs_f64(),
        None => total.last.map_or(0.0, |l| (l - window_start).as_secs_f64()),
    };
    total.latencies_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        let l = &total.latencies_ns;
        if l.is_empty() {
            return 0.0;
        }
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i] as f64 / 1000.0
    };
    Ok(PolicyLoadReport {
        requests,
        seconds,
        per_second: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        answers: KINDS
            .iter()
            .zip(total.answers)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        latency_p50_us: pct(0.5),
        latency_p99_us: pct(0.99),
        latency_max_us: pct(1.0),
        connections: args.connections,
        pipeline: args.pipeline,
    })
}

/// One persistent connection: keep `pipeline` requests outstanding until the
/// quota is sent or the window ends, then take the last answers.
#[allow(clippy::too_many_arguments)]
async fn connection(
    target: &str,
    pool: &[Vec<u8>],
    index: usize,
    pipeline: usize,
    quota: Option<u64>,
    window_start: Instant,
    window_end: Option<Instant>,
    timeout: Duration,
) -> anyhow::Result<ConnStats> {
    let mut s = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect to {target}"))?;
    s.set_nodelay(true)?;
    let mut stats = ConnStats::default();
    let mut next = index.wrapping_mul(7919) % pool.len();
    let mut sent = 0u64;
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(pipeline);
    let mut out = Vec::with_capacity(pipeline * 800);
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0usize;
    let mut sending = true;
    let now = Instant::now();
    while in_flight.len() < pipeline && quota.is_none_or(|q| sent < q) {
        out.extend_from_slice(&pool[next]);
        next = (next + 1) % pool.len();
        in_flight.push_back(now);
        sent += 1;
    }
    loop {
        if !out.is_empty() {
            s.write_all(&out).await.context("write")?;
            out.clear();
        }
        if in_flight.is_empty() {
            break;
        }
        if have == buf.len() {
            bail!("answer longer than {} octets", buf.len());
        }
        let n = match tokio::time::timeout(timeout, s.read(&mut buf[have..])).await {
            Err(_) => bail!("no answer within {timeout:?}"),
            Ok(r) => r.context("read")?,
        };
        if n == 0 {
            bail!(
                "{target} closed the connection with {} requests unanswered",
                in_flight.len()
            );
        }
        have += n;
        let now = Instant::now();
        if window_end.is_some_and(|e| now >= e) {
            sending = false;
        }
        let mut used = 0;
        while let Some((action, len)) =
            parse_answer(&buf[used..have]).map_err(anyhow::Error::msg)?
        {
            used += len;
            let Some(asked) = in_flight.pop_front() else {
                bail!("an answer to no request: {action:?}");
            };
            if now >= window_start && window_end.is_none_or(|e| now < e) {
                stats.answers[kind(action)] += 1;
                stats.latencies_ns.push((now - asked).as_nanos() as u64);
                stats.first.get_or_insert(now);
                stats.last = Some(now);
            }
            if sending && quota.is_none_or(|q| sent < q) {
                out.extend_from_slice(&pool[next]);
                next = (next + 1) % pool.len();
                in_flight.push_back(now);
                sent += 1;
            }
        }
        buf.copy_within(used..have, 0);
        have -= used;
    }
    Ok(stats)
}
