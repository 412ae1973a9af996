//! The Postfix policy service as Postfix and an operator see it: many
//! requests on one persistent connection, the answer for each recipient
//! (consented, unconsented, withdrawn, informational mail, other protocol
//! states, senders matching no account), pipelined requests answered in
//! order, malformed and oversized requests closing only their own
//! connection, the connection limit, idle timeout and shutdown, metrics and
//! the audit trail; and a real Postfix (from a temp folder) asking the gate
//! about each recipient of a swaks transaction.
//!
//! The raw tests speak the protocol over a TCP socket; the Postfix test runs
//! `/usr/sbin/postfix` (Debian's `postfix` package, which `.ci/run` installs),
//! swaks and smtp-sink.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::serve::{start, RunningGate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(10);

/// ONAY for commercial mail from the brand.
const CONSENTED: &str = "consented@example.com";
/// RET: consent withdrawn.
const WITHDRAWN: &str = "withdrawn@example.com";
/// Not in the export.
const UNCONSENTED: &str = "unconsented@example.com";
/// Mapped by its sender domain to the brand's commercial account.
const COMMERCIAL_SENDER: &str = "news@shop.example";
/// Mapped to the brand's informational (message type 0) account.
const INFO_SENDER: &str = "receipts@tx.shop.example";

const ROWS: &[&str] = &[
    "700001,100001,consented@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,withdrawn@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,withdrawn@example.com,BIREYSEL,EPOSTA,RET,2024-03-01 10:00:00,IYS_WEB,,",
];

struct Gate {
    gate: RunningGate,
    addr: SocketAddr,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gate {
    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.gate.admin_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The audit trail's lines once at least `n` are written, each parsed.
    async fn audit_records(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
            if text.lines().count() >= n {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{n} audit lines expected, got: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The value of one series in a metrics page (0 when absent).
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A gate with the policy service; `policy` adds keys to `[smtp.policy]`.
async fn gate(policy: &str) -> Gate {
    gate_with(policy, true).await
}

async fn gate_with(policy: &str, data: bool) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    let mut text = String::from("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n");
    for r in ROWS {
        text += r;
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let bootstrap = if data {
        format!("bootstrap_csv = [{:?}]", csv.display().to_string())
    } else {
        String::new()
    };
    let audit = dir.path().join("audit.jsonl");
    let toml = format!(
        r#"[admin]
listen = "127.0.0.1:0"
[store]
{bootstrap}
[policy]
max_data_age = "1h"
[audit]
path = {audit:?}
[registry]
base_url = "http://127.0.0.1:9"
username = "u"
password = "p"
poll_interval = "60s"
max_backoff = "60s"
request_timeout = "1s"
[webhook]
secret = "policy-test-webhook-secret-0123456789"
[[brands]]
iys_code = {IYS}
brand_code = {BRAND}
[smtp.policy]
listen = "127.0.0.1:0"
{policy}
[[smtp.accounts]]
name = "shop"
iys_code = {IYS}
brand_code = {BRAND}
senders = ["shop.example"]
[[smtp.accounts]]
name = "shop-tx"
iys_code = {IYS}
brand_code = {BRAND}
default_message_type = 0
senders = ["tx.shop.example"]
"#,
        audit = audit.display().to_string()
    );
    let config = Config::from_toml(&toml, "policy-test").unwrap();
    let gate = start(config).await.unwrap();
    Gate {
        addr: gate.smtp_policy_addr.expect("smtp policy listener"),
        gate,
        audit,
        _dir: dir,
    }
}

/// A policy client as Postfix's smtpd is one: one connection, one request at a time.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

/// A RCPT request as Postfix sends it (the attributes the gate reads and some it does not).
fn rcpt(sender: &str, recipient: &str) -> Vec<u8> {
    request("RCPT", sender, recipient, &[])
}

fn request(state: &str, sender: &str, recipient: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut attrs = vec![
        ("request", "smtpd_access_policy"),
        ("protocol_state", state),
        ("protocol_name", "ESMTP"),
        ("client_address", "192.0.2.10"),
        ("client_name", "client.example"),
        ("helo_name", "client.example"),
        ("sender", sender),
        ("recipient", recipient),
        ("recipient_count", "0"),
        ("queue_id", ""),
        ("instance", "1a2b.65f0c3a1.9e2f.0"),
        ("size", "0"),
        ("sasl_method", ""),
        ("sasl_username", ""),
        ("policy_context", ""),
        ("ccert_subject", "CN=a=b, O=c"),
    ];
    for (n, v) in extra {
        match attrs.iter_mut().find(|(k, _)| k == n) {
            Some(slot) => slot.1 = v,
            None => attrs.push((n, v)),
        }
    }
    let mut out = Vec::new();
    iys_gate::smtp::codec::policy::encode_request(&mut out, &attrs);
    out
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// The next answer's action.
    async fn answer(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((action, used)) =
                iys_gate::smtp::codec::policy::parse_answer(&self.buf).unwrap()
            {
                let a = action.to_string();
                self.buf.drain(..used);
                return a;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), self.s.read(&mut chunk))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(n > 0, "connection closed before an answer");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn ask(&mut self, req: &[u8]) -> String {
        self.send(req).await;
        self.answer().await
    }

    /// Assert the gate closes the connection (within `within`), with nothing more sent.
    async fn closed(&mut self, within: Duration) {
        let mut chunk = [0u8; 64];
        match tokio::time::timeout(within, self.s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("expected a close, got {:?}", &chunk[..n]),
            Err(_) => panic!("connection still open after {within:?}"),
        }
    }
}

#[tokio::test]
async fn each_recipient_gets_its_answer_on_one_connection() {
    let g = gate("").await;
    let mut c = Client::connect(g.addr).await;
    assert_eq!(c.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");
    let refused = c.ask(&rcpt(COMMERCIAL_SENDER, UNCONSENTED)).await;
    assert!(refused.starts_with("550 5.7.1 IYS: "), "{refused}");
    assert!(refused.ends_with("(no_consent)"), "{refused}");
    let withdrawn = c.ask(&rcpt(COMMERCIAL_SENDER, WITHDRAWN)).await;
    assert!(withdrawn.starts_with("550 5.7.1 "), "{withdrawn}");
    assert!(withdrawn.ends_with("(withdrawn)"), "{withdrawn}");
    // Letter case of the address does not matter.
    assert_eq!(
        c.ask(&rcpt(COMMERCIAL_SENDER, "Consented@EXAMPLE.com"))
            .await,
        "DUNNO"
    );
    // Informational mail needs no consent.
    assert_eq!(c.ask(&rcpt(INFO_SENDER, UNCONSENTED)).await, "DUNNO");
    // Only RCPT is judged.
    for state in ["CONNECT", "EHLO", "MAIL", "DATA", "END-OF-MESSAGE", "VRFY"] {
        assert_eq!(
            c.ask(&request(state, COMMERCIAL_SENDER, UNCONSENTED, &[]))
                .await,
            "DUNNO",
            "{state}"
        );
    }
    // A sender matching no account: "pass" by default.
    assert_eq!(
        c.ask(&rcpt("someone@elsewhere.example", UNCONSENTED)).await,
        "DUNNO"
    );
    // The SASL name comes first; one that is not an account matches nothing.
    assert!(c
        .ask(&request(
            "RCPT",
            "x@elsewhere.example",
            UNCONSENTED,
            &[("sasl_username", "shop")]
        ))
        .await
        .starts_with("550 5.7.1 "));
    assert_eq!(
        c.ask(&request(
            "RCPT",
            COMMERCIAL_SENDER,
            UNCONSENTED,
            &[("sasl_username", "nobody")]
        ))
        .await,
        "DUNNO"
    );
    // Not an smtpd_access_policy request: not about a recipient.
    assert_eq!(
        c.ask(&request(
            "RCPT",
            COMMERCIAL_SENDER,
            UNCONSENTED,
            &[("request", "something_else")]
        ))
        .await,
        "DUNNO"
    );
    // Postfix repeats a request after a timeout: the same answer.
    for _ in 0..3 {
        assert_eq!(c.ask(&rcpt(COMMERCIAL_SENDER, WITHDRAWN)).await, withdrawn);
    }
    // CRLF line ends are tolerated.
    let crlf = String::from_utf8(rcpt(COMMERCIAL_SENDER, UNCONSENTED))
        .unwrap()
        .replace('\n', "\r\n");
    assert_eq!(c.ask(crlf.as_bytes()).await, refused);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let g = gate("").await;
    let mut c = Client::connect(g.addr).await;
    let recipients = [CONSENTED, UNCONSENTED, WITHDRAWN];
    let mut all = Vec::new();
    for i in 0..300 {
        all.extend_from_slice(&rcpt(COMMERCIAL_SENDER, recipients[i % 3]));
    }
    // In odd-sized pieces, so requests straddle reads.
    for piece in all.chunks(977) {
        c.send(piece).await;
    }
    for i in 0..300 {
        let a = c.answer().await;
        match i % 3 {
            0 => assert_eq!(a, "DUNNO", "answer {i}"),
            1 => assert!(a.ends_with("(no_consent)"), "answer {i}: {a}"),
            _ => assert!(a.ends_with("(withdrawn)"), "answer {i}: {a}"),
        }
    }
}

#[tokio::test]
async fn malformed_and_oversized_requests_close_only_their_connection() {
    let g = gate("max_request_size = 2048").await;
    let mut good = Client::connect(g.addr).await;
    assert_eq!(good.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");

    // An answer for the good request before it, then the close.
    let mut bad = Client::connect(g.addr).await;
    let mut bytes = rcpt(COMMERCIAL_SENDER, UNCONSENTED);
    bytes.extend_from_slice(b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient\n\n");
    bad.send(&bytes).await;
    assert!(bad.answer().await.starts_with("550 5.7.1 "));
    bad.closed(WAIT).await;

    // Oversized, with no newline at all, and with many lines.
    let mut big = Client::connect(g.addr).await;
    big.send(&vec![b'x'; 4096]).await;
    big.closed(WAIT).await;
    let mut long = Client::connect(g.addr).await;
    long.send(&b"a=1\n".repeat(600)).await;
    long.closed(WAIT).await;
    // Binary garbage.
    let mut garbage = Client::connect(g.addr).await;
    garbage.send(b"\x00\x01\x02\xff\n\n").await;
    garbage.closed(WAIT).await;

    // The listener and the other connection still serve.
    assert!(good
        .ask(&rcpt(COMMERCIAL_SENDER, UNCONSENTED))
        .await
        .starts_with("550 5.7.1 "));
    let mut fresh = Client::connect(g.addr).await;
    assert_eq!(
        fresh.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await,
        "DUNNO"
    );

    let m = g.metrics().await;
    assert!(
        series(
            &m,
            "iys_gate_smtp_policy_malformed_total{kind=\"too_large\"}"
        ) >= 2.0,
        "{m}"
    );
    assert!(series(&m, "iys_gate_smtp_policy_malformed_total{kind=\"syntax\"}") >= 2.0);
    assert!(series(&m, "iys_gate_smtp_policy_requests_total{result=\"error\"}") >= 4.0);
}

#[tokio::test]
async fn connection_limit_idle_timeout_and_shutdown() {
    let g = gate("max_connections = 2\nidle_timeout = \"1500ms\"").await;
    let mut a = Client::connect(g.addr).await;
    let mut b = Client::connect(g.addr).await;
    assert_eq!(a.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");
    assert_eq!(b.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");
    let mut third = Client::connect(g.addr).await;
    third.send(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await;
    third.closed(WAIT).await;
    let m = g.metrics().await;
    assert!(series(&m, "iys_gate_smtp_policy_connections_refused_total") >= 1.0);
    assert!(m.contains("iys_gate_smtp_policy_connections "), "{m}");

    // `a` keeps talking, `b` idles past idle_timeout and is closed.
    let started = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(a.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");
    }
    b.closed(WAIT).await;
    assert!(started.elapsed() >= Duration::from_millis(1400));
    // Its place is free again.
    let mut c = Client::connect(g.addr).await;
    assert_eq!(c.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");

    // Stop closes every connection.
    let Gate { gate, _dir, .. } = g;
    tokio::time::timeout(WAIT, gate.shutdown())
        .await
        .expect("shutdown in time");
    a.closed(WAIT).await;
    c.closed(WAIT).await;
}

#[tokio::test]
async fn refusals_are_counted_and_audited_masked() {
    let g = gate("").await;
    let before = g.metrics().await;
    let mut c = Client::connect(g.addr).await;
    assert_eq!(c.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");
    assert!(c
        .ask(&rcpt(COMMERCIAL_SENDER, UNCONSENTED))
        .await
        .starts_with("550"));
    assert!(c
        .ask(&rcpt(COMMERCIAL_SENDER, WITHDRAWN))
        .await
        .starts_with("550"));
    assert_eq!(c.ask(&rcpt("a@nowhere.example", CONSENTED)).await, "DUNNO");
    assert_eq!(
        c.ask(&request("MAIL", COMMERCIAL_SENDER, "", &[])).await,
        "DUNNO"
    );

    let records = g.audit_records(2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let reasons: Vec<&str> = records
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["no_consent", "withdrawn"]);
    for r in &records {
        assert_eq!(r["protocol"], "smtp_policy");
        assert_eq!(r["channel"], "EPOSTA");
        assert_eq!(r["decision"], "refuse");
        assert_eq!(r["account"], "shop");
        assert_eq!(r["brand"], "700001/100001");
        let rcpt = r["recipient"].as_str().unwrap();
        assert!(rcpt.contains('*'), "masked: {rcpt}");
        assert!(!rcpt.contains("unconsented") && !rcpt.contains("withdrawn@"));
    }

    let after = g.metrics().await;
    let grew = |name: &str, by: f64| {
        let (b, a) = (series(&before, name), series(&after, name));
        assert!(a - b >= by, "{name}: {b} -> {a}\n{after}");
    };
    // Process-wide counters: other tests in this binary count too, hence ">=".
    grew("iys_gate_smtp_policy_requests_total{result=\"allow\"}", 1.0);
    grew(
        "iys_gate_smtp_policy_requests_total{result=\"refuse\"}",
        2.0,
    );
    grew(
        "iys_gate_smtp_policy_requests_total{result=\"unmatched\"}",
        1.0,
    );
    grew("iys_gate_smtp_policy_requests_total{result=\"dunno\"}", 1.0);
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("iys_gate_decisions_total{") && l.contains("channel=\"EPOSTA\"")),
        "{after}"
    );
    assert!(!after.contains("example.com"), "no address in metrics");
}

#[tokio::test]
async fn unmatched_rule_policy_context_and_no_data() {
    let g = gate("unmatched = \"reject\"\nuse_policy_context = true\nallow_action = \"OK\"").await;
    let mut c = Client::connect(g.addr).await;
    let a = c.ask(&rcpt("x@elsewhere.example", CONSENTED)).await;
    assert!(
        a.starts_with("550 5.7.1 ") && a.ends_with("(unmatched)"),
        "{a}"
    );
    assert_eq!(c.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "OK");
    // policy_context names the account, ahead of the sender.
    assert_eq!(
        c.ask(&request(
            "RCPT",
            COMMERCIAL_SENDER,
            UNCONSENTED,
            &[("policy_context", "shop-tx")]
        ))
        .await,
        "OK"
    );
    assert!(c
        .ask(&request(
            "RCPT",
            "x@elsewhere.example",
            UNCONSENTED,
            &[("policy_context", "shop")]
        ))
        .await
        .starts_with("550 5.7.1 "));

    let d = gate("unmatched = \"defer\"").await;
    let mut c = Client::connect(d.addr).await;
    let a = c.ask(&rcpt("x@elsewhere.example", CONSENTED)).await;
    assert!(a.starts_with("451 4.7.1 "), "{a}");

    // No consent data at all: commercial mail cannot be decided.
    let empty = gate_with("", false).await;
    let mut c = Client::connect(empty.addr).await;
    let a = c.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await;
    assert!(a.starts_with("451 4.7.1 "), "{a}");
    assert_eq!(c.ask(&rcpt(INFO_SENDER, CONSENTED)).await, "DUNNO");
}

/// A real Postfix asks the gate about each recipient of one transaction:
/// the consented one is accepted and delivered, the unconsented and the
/// withdrawn ones get `550 5.7.1` and never reach the sink. With the gate
/// down, Postfix applies `default_action`: `DUNNO` where configured so (mail
/// flows unchecked), Postfix's own default `451 4.3.5` elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_asks_the_gate_about_each_recipient() {
    use common::postfix::{swaks, Postfix, SmtpSink};
    let g = gate("").await;
    let policy = g.addr;
    let (postfix, sink) = tokio::task::spawn_blocking(move || {
        let sink = SmtpSink::start();
        let fail_open = format!(
            "smtpd_recipient_restrictions = check_policy_service {{ inet:{policy}, default_action=DUNNO }}, permit_mynetworks, reject_unauth_destination"
        );
        let fail_closed = format!(
            "smtpd_recipient_restrictions=check_policy_service,inet:{policy},permit_mynetworks,reject_unauth_destination"
        );
        let postfix = Postfix::start(sink.addr, &fail_open, &[&[], &[&fail_closed]]);
        (postfix, sink)
    })
    .await
    .unwrap();
    let (open_port, closed_port) = (postfix.smtpd[0], postfix.smtpd[1]);
    let run = move |from: &'static str, to: Vec<&'static str>, port: SocketAddr| {
        tokio::task::spawn_blocking(move || swaks(port, from, &to, &[]))
    };

    let s = run(
        COMMERCIAL_SENDER,
        vec![CONSENTED, UNCONSENTED, WITHDRAWN],
        open_port,
    )
    .await
    .unwrap();
    let log = || postfix.maillog();
    assert!(
        s.reply(CONSENTED).starts_with("250 "),
        "{}\n{}",
        s.transcript,
        log()
    );
    let no = s.reply(UNCONSENTED);
    assert!(no.starts_with("550 5.7.1 "), "{}\n{}", s.transcript, log());
    assert!(no.contains("(no_consent)"), "{no}");
    let ret = s.reply(WITHDRAWN);
    assert!(
        ret.starts_with("550 5.7.1 ") && ret.contains("(withdrawn)"),
        "{ret}"
    );
    assert!(
        s.data.as_deref().is_some_and(|d| d.starts_with("250 ")),
        "{}",
        s.transcript
    );
    // Informational mail needs no consent.
    let info = run(INFO_SENDER, vec![UNCONSENTED], open_port)
        .await
        .unwrap();
    assert!(
        info.reply(UNCONSENTED).starts_with("250 "),
        "{}",
        info.transcript
    );

    let sink = std::sync::Arc::new(sink);
    let arrived = {
        let sink = sink.clone();
        tokio::task::spawn_blocking(move || {
            sink.wait_for(CONSENTED, WAIT * 3);
            sink.wait_for(UNCONSENTED, WAIT * 3)
        })
        .await
        .unwrap()
    };
    // The consented copy and the informational one; never the refused ones
    // of the first transaction.
    assert_eq!(
        arrived.iter().filter(|r| *r == CONSENTED).count(),
        1,
        "{arrived:?}"
    );
    assert_eq!(arrived.len(), 2, "{arrived:?}");
    assert!(!arrived.iter().any(|r| r == WITHDRAWN), "{arrived:?}");
    let dump = sink.dump();
    let first = dump
        .split("X-Client-Addr:")
        .find(|t| t.contains(CONSENTED))
        .unwrap();
    assert!(
        first.contains(&format!("X-Mail-Args: <{COMMERCIAL_SENDER}>")),
        "{first}"
    );
    let envelope: Vec<&str> = first
        .lines()
        .filter(|l| l.starts_with("X-Rcpt-Args:"))
        .collect();
    assert_eq!(envelope.len(), 1, "{first}");
    assert!(envelope[0].starts_with(&format!("X-Rcpt-Args: <{CONSENTED}>")));

    // The gate is down: Postfix applies default_action.
    let Gate { gate, _dir, .. } = g;
    gate.shutdown().await;
    let open = run(COMMERCIAL_SENDER, vec![WITHDRAWN], open_port)
        .await
        .unwrap();
    assert!(
        open.reply(WITHDRAWN).starts_with("250 "),
        "default_action=DUNNO: {}",
        open.transcript
    );
    let closed = run(COMMERCIAL_SENDER, vec![WITHDRAWN], closed_port)
        .await
        .unwrap();
    assert!(
        closed.reply(WITHDRAWN).starts_with("451 4.3.5 "),
        "Postfix's default: {}",
        closed.transcript
    );
    let arrived = tokio::task::spawn_blocking(move || sink.wait_for(WITHDRAWN, WAIT * 3))
        .await
        .unwrap();
    assert_eq!(arrived.len(), 3, "{arrived:?}");
    let log = postfix.maillog();
    assert!(log.contains("Recipient address rejected"), "{log}");
    drop(postfix);
}

/// The load generator (`smtp-policy-load`) against the gate, one at a time
/// and pipelined, and against its own always-DUNNO server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_counts_every_answer() {
    use clap::Parser;
    use iys_gate::smtp::tools::policy_load::{run_load, serve_dunno, PolicyLoadArgs};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: PolicyLoadArgs,
    }
    let g = gate("").await;
    for pipeline in ["1", "16"] {
        let target = g.addr.to_string();
        let args = Cli::parse_from([
            "load",
            "--target",
            &target,
            "--connections",
            "8",
            "--pipeline",
            pipeline,
            "--requests",
            "3000",
            "--recipient",
            CONSENTED,
            "--recipient",
            UNCONSENTED,
            "--recipient",
            WITHDRAWN,
        ])
        .load;
        let r = run_load(&args).await.unwrap();
        assert_eq!(r.requests, 3000, "{r}");
        // Each connection starts at its own place in the recipient list, so the
        // split is close to, not exactly, one third each.
        let pass = r.answers["pass"];
        let refused = r.answers["5xx"];
        assert_eq!(pass + refused, 3000, "{r}");
        assert!((900..=1100).contains(&pass), "{r}");
        assert!(r.per_second > 0.0 && r.latency_p50_us > 0.0, "{r}");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dunno = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve_dunno(listener));
    let args = Cli::parse_from([
        "load",
        "--target",
        &dunno,
        "--connections",
        "4",
        "--pipeline",
        "3",
        "--requests",
        "1000",
        "--recipient",
        UNCONSENTED,
    ])
    .load;
    let r = run_load(&args).await.unwrap();
    assert_eq!(r.answers["pass"], 1000, "{r}");
}

/// Random octets, half requests, a peer that vanishes mid-request and one
/// that sends a request an octet at a time leave the listener up and
/// serving: the slow one gets its answer, a fresh client gets its own.
#[tokio::test]
async fn garbage_and_slow_senders_leave_the_listener_serving() {
    use rand::{Rng, SeedableRng};
    let g = gate("").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut garbage = Vec::new();
    for i in 0..40 {
        let mut c = Client::connect(g.addr).await;
        let len = rng.gen_range(1..6000);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if i % 4 == 0 {
            // Mostly text, so some of it parses as attributes first.
            for b in bytes.iter_mut() {
                *b = b"abc=\n\r xyz"[usize::from(*b) % 10];
            }
        }
        // The gate may close before it has read everything.
        let _ = c.s.write_all(&bytes).await;
        garbage.push(c);
    }
    // Half a request, then gone.
    let mut half = Client::connect(g.addr).await;
    half.send(&rcpt(COMMERCIAL_SENDER, CONSENTED)[..200]).await;
    drop(half);
    // One octet at a time.
    let mut slow = Client::connect(g.addr).await;
    let req = rcpt(COMMERCIAL_SENDER, UNCONSENTED);
    for b in req.chunks(1) {
        slow.send(b).await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert!(slow.answer().await.ends_with("(no_consent)"));
    let mut fresh = Client::connect(g.addr).await;
    assert_eq!(
        fresh.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await,
        "DUNNO"
    );
    drop(garbage);
    assert_eq!(slow.ask(&rcpt(COMMERCIAL_SENDER, CONSENTED)).await, "DUNNO");
}
