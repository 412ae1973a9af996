//! The inline SMTP hop between real third-party peers: swaks (and Postfix's
//! smtp-source) as senders, Postfix's smtp-sink as the next hop, each
//! message the sink received read back from its dump files. A raw socket
//! speaks SMTP where the exact bytes matter (8-bit text, DSN parameters,
//! garbage). The gate runs in-process.
//!
//! Needs `swaks`, `smtp-sink` and `smtp-source` (Debian: swaks, postfix);
//! a missing one fails the test ("install postfix/swaks (bash .ci/run does)").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::serve::{start, RunningGate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
/// How long any single expected event may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// Consented for commercial mail from the brand.
const CONSENTED: &str = "demo@example.com";
/// Never consented.
const UNKNOWN: &str = "nobody@example.com";
/// Consented, then withdrawn (pushed as RET by the test).
const WITHDRAWN: &str = "withdrawn@example.com";

const ROWS: &[&str] = &[
    "700001,100001,demo@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,withdrawn@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
];

fn need(bin: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!("{bin} not found: install postfix/swaks (bash .ci/run does)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// The next hop: Postfix's smtp-sink, dumping each message to a file.

struct Sink {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    /// smtp-sink on a free loopback port with `extra` options (`-r RCPT`, ...).
    async fn start(extra: &[&str]) -> Sink {
        let bin = need("smtp-sink");
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops to `nobody` and must write its dumps there.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port();
        let template = format!("{}/%M.", dir.path().display());
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["-u", "nobody", "-d", &template]);
        cmd.args(extra);
        cmd.arg(format!("127.0.0.1:{port}")).arg("256");
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("smtp-sink starts");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let _ = s.write_all(b"QUIT\r\n").await;
                break;
            }
            assert!(Instant::now() < deadline, "smtp-sink did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sink { child, port, dir }
    }

    /// Every message dumped so far (the sink's own headers first).
    fn messages(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect();
        v.sort();
        v
    }

    /// Wait until `n` messages are dumped (and a little more for any extra).
    async fn wait_messages(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.messages();
            // A dump file is complete once it ends with the message's end.
            if m.len() >= n {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return self.messages();
            }
            assert!(
                Instant::now() < deadline,
                "{n} messages expected at the sink, got {}",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The gate.

struct Gate {
    gate: RunningGate,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Gate {
    /// A gate whose hop relays to `127.0.0.1:next_hop`; `hop` adds keys to
    /// `[smtp.hop]` (one per line), `tls` a certificate for STARTTLS.
    async fn start(next_hop: u16, hop: &str, tls: Option<(String, String)>) -> Gate {
        Gate::start_tls(next_hop, hop, tls, false).await
    }

    /// The same, with `[smtp.hop.tls] required` as given.
    async fn start_tls(
        next_hop: u16,
        hop: &str,
        tls: Option<(String, String)>,
        required: bool,
    ) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("export.csv");
        let mut text = String::from("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n");
        for r in ROWS {
            text += r;
            text.push('\n');
        }
        std::fs::write(&csv, text).unwrap();
        let tls_table = match tls {
            None => String::new(),
            Some((cert, key)) => {
                let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                std::fs::write(&c, cert).unwrap();
                std::fs::write(&k, key).unwrap();
                format!(
                    "[smtp.hop.tls]\ncert = {:?}\nkey = {:?}\nrequired = {required}\n",
                    c.display().to_string(),
                    k.display().to_string()
                )
            }
        };
        let toml = format!(
            r#"[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = [{csv:?}]
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
secret = "hop-test-webhook-secret-0123456789abc"
[[brands]]
iys_code = {IYS}
brand_code = {BRAND}
[smtp]
[[smtp.accounts]]
name = "shop"
password = "secret1"
iys_code = {IYS}
brand_code = {BRAND}
senders = ["shop.example"]
[[smtp.accounts]]
name = "shop-tx"
iys_code = {IYS}
brand_code = {BRAND}
default_message_type = 0
senders = ["tx.shop.example"]
[smtp.hop]
listen = "127.0.0.1:0"
next_hop = "127.0.0.1:{next_hop}"
{defaults}
{hop}
{tls_table}
"#,
            csv = csv.display().to_string(),
            audit = dir.path().join("audit.jsonl").display().to_string(),
            defaults = [
                ("next_hop_starttls", "false"),
                ("next_hop_connect_timeout", "\"5s\""),
                ("next_hop_reply_timeout", "\"10s\""),
            ]
            .iter()
            .filter(|(k, _)| !hop.contains(k))
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
        );
        let config = Config::from_toml(&toml, "hop-test").unwrap();
        let gate = start(config).await.unwrap();
        let addr = gate.smtp_hop_addr.expect("the hop listens");
        Gate {
            gate,
            addr,
            _dir: dir,
        }
    }

    /// Push an e-mail consent record (ONAY, RET) through the webhook, dated now.
    async fn push_consent(&self, recipient: &str, status: &str) {
        let push = serde_json::json!({"iyscode": IYS, "brandcode": BRAND, "recipient": recipient,
            "type": "EPOSTA", "source": "HS_WEB", "status": status, "recipienttype": "BIREYSEL",
            "consentdate": iys_gate::consent::ConsentTime::now().to_string()});
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/webhook", self.gate.admin_addr))
            .bearer_auth("hop-test-webhook-secret-0123456789abc")
            .json(&push)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    /// The audit trail's lines once at least `n` are written, each parsed.
    async fn audit(&self, n: usize) -> Vec<serde_json::Value> {
        let path = self._dir.path().join("audit.jsonl");
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() >= n {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{n} audit lines expected: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.gate.admin_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------------------
// Senders.

/// Run swaks against the gate with `args`; its transcript.
async fn swaks(gate: SocketAddr, args: &[&str]) -> String {
    let bin = need("swaks");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--server")
        .arg(gate.to_string())
        .args(["--timeout", "20", "--helo", "sender.example"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT * 2, cmd.output())
        .await
        .expect("swaks finishes")
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s += &String::from_utf8_lossy(&out.stderr);
    s
}

/// The server's reply lines in a swaks transcript (`<-  250 ...`, `<** 550 ...`).
fn server_lines(transcript: &str) -> Vec<&str> {
    transcript.lines().filter_map(server_line).collect()
}

fn server_line(l: &str) -> Option<&str> {
    ["<-  ", "<** ", "<~  ", "<~* "]
        .iter()
        .find_map(|p| l.strip_prefix(p))
}

/// The reply that followed the client line starting with `cmd` in a
/// non-pipelined swaks transcript.
fn reply_to<'a>(transcript: &'a str, cmd: &str) -> &'a str {
    let lines: Vec<&str> = transcript.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.trim_start_matches([' ', '-', '>', '~']).starts_with(cmd))
        .unwrap_or_else(|| panic!("no {cmd} in {transcript}"));
    lines[i + 1..]
        .iter()
        .find_map(|l| server_line(l))
        .unwrap_or_else(|| panic!("no reply to {cmd} in {transcript}"))
}

/// A raw SMTP client.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).await.unwrap();
        Raw { s, buf: Vec::new() }
    }

    /// The next complete reply (all its lines), or "" when the server closed.
    async fn reply(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = reply_end(&self.buf) {
                let r: Vec<u8> = self.buf.drain(..end).collect();
                return String::from_utf8_lossy(&r).into_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), self.s.read(&mut chunk))
                .await
                .expect("a reply in time")
                .unwrap_or(0);
            if n == 0 {
                return String::new();
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

fn reply_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let nl = buf[at..].iter().position(|&b| b == b'\n')? + at;
        if buf.get(at + 3) != Some(&b'-') {
            return Some(nl + 1);
        }
        at = nl + 1;
    }
}

/// The message part of an smtp-sink dump (after its own headers and the
/// Received field it adds), line ends as the sink writes them (LF).
fn dumped_message(dump: &str) -> &str {
    let start = dump.find("Received: ").expect("the sink's Received field");
    let rest = &dump[start..];
    // Skip the Received field and its continuation lines.
    let mut at = rest.find('\n').unwrap() + 1;
    while rest[at..].starts_with('\t') || rest[at..].starts_with(' ') {
        at += rest[at..].find('\n').unwrap() + 1;
    }
    &rest[at..]
}

fn message(headers: &str, body: &str) -> String {
    format!("{headers}\r\n{body}")
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_recipients_each_get_their_own_answer() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(sink.port, "", None).await;
    gate.push_consent(WITHDRAWN, "RET").await;
    let to = format!("{CONSENTED},{UNKNOWN},{WITHDRAWN}");
    let t = swaks(
        gate.addr,
        &[
            "--pipeline",
            "--from",
            "news@shop.example",
            "--to",
            &to,
            "--header",
            "Subject: pipelined",
        ],
    )
    .await;
    let replies = server_lines(&t);
    // Greeting, EHLO (one multi-line reply shown line by line), then MAIL,
    // three RCPTs, DATA in order.
    let after_ehlo: Vec<&str> = replies
        .iter()
        .skip_while(|l| !l.starts_with("250 ENHANCEDSTATUSCODES"))
        .skip(1)
        .copied()
        .collect();
    assert!(after_ehlo[0].starts_with("250 2.1.0"), "MAIL: {t}");
    assert!(
        after_ehlo[1].starts_with("250 2.1.5"),
        "consented RCPT: {t}"
    );
    assert!(
        after_ehlo[2].starts_with("550 5.7.1 IYS:") && after_ehlo[2].contains("no_consent"),
        "unknown RCPT: {t}"
    );
    assert!(
        after_ehlo[3].starts_with("550 5.7.1 IYS:") && after_ehlo[3].contains("withdrawn"),
        "withdrawn RCPT: {t}"
    );
    assert!(after_ehlo[4].starts_with("354"), "DATA: {t}");
    assert!(after_ehlo[5].starts_with("250 2.0.0 Ok"), "final dot: {t}");
    let m = sink.wait_messages(1).await;
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains(&format!("X-Rcpt-Args: <{CONSENTED}>")),
        "{}",
        m[0]
    );
    assert!(!m[0].contains(UNKNOWN) || m[0].contains(&format!("To: {to}")));
    assert!(!m[0].contains(&format!("X-Rcpt-Args: <{UNKNOWN}>")));
    assert!(!m[0].contains(&format!("X-Rcpt-Args: <{WITHDRAWN}>")));
    // Each refusal audited, the recipient masked.
    let audit = gate.audit(2).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    for (v, reason) in audit.iter().zip(["no_consent", "withdrawn"]) {
        assert_eq!(v["protocol"], "smtp_hop");
        assert_eq!(v["channel"], "EPOSTA");
        assert_eq!(v["reason"], reason);
        assert_eq!(v["account"], "shop");
        assert!(v["recipient"].as_str().unwrap().contains('*'), "{v}");
        assert!(!v.to_string().contains(UNKNOWN) && !v.to_string().contains(WITHDRAWN));
    }
    // Counted with the other channels, with the hop's own series beside.
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("iys_gate_smtp_hop_commands_total{command=\"RCPT\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("iys_gate_smtp_hop_replies_total{code=\"550\"}"));
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("iys_gate_decisions_total{") && l.contains("EPOSTA")));
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_bytes_arrive_unchanged_with_dsn_8bit_and_utf8() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(sink.port, "", None).await;
    let mut c = Raw::connect(gate.addr).await;
    assert!(c.reply().await.starts_with("220 "));
    let ehlo = c.cmd("EHLO sender.example").await;
    assert!(
        ehlo.contains("PIPELINING") && ehlo.contains("8BITMIME") && ehlo.contains("DSN"),
        "{ehlo}"
    );
    assert!(
        !ehlo.contains("SMTPUTF8"),
        "smtp-sink does not offer it: {ehlo}"
    );
    let mail = "MAIL FROM:<gönderen@shop.example> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159";
    let rcpt = "RCPT TO:<demo@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;demo@example.com";
    // Pipelined: MAIL, RCPT, DATA in one write.
    c.send(format!("{mail}\r\n{rcpt}\r\nDATA\r\n").as_bytes())
        .await;
    assert!(c.reply().await.starts_with("250 "));
    assert!(c.reply().await.starts_with("250 "));
    assert!(c.reply().await.starts_with("354 "));
    let headers = "From: =?utf-8?q?G=C3=B6nderen?= <gönderen@shop.example>\r\nTo: demo@example.com\r\nSubject: bytes\r\nX-IYS-Message-Type: 11\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n";
    let body = "Merhaba, şöyle çığ ğüz.\r\n..a line that starts with a dot\r\n...two dots\r\n..\tdot tab\r\n \r\nlast\r\n";
    let msg = message(headers, body);
    c.send(msg.as_bytes()).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert!(c.cmd("QUIT").await.starts_with("221"));
    let m = sink.wait_messages(1).await;
    let dump = &m[0];
    assert!(
        // smtp-sink writes each non-ASCII octet of its own header as '?'.
        dump.contains("X-Mail-Args: <g??nderen@shop.example> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159\n"),
        "{dump}"
    );
    assert!(
        dump.contains("X-Rcpt-Args: <demo@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;demo@example.com\n"),
        "{dump}"
    );
    // The sink unstuffs and writes LF; the hop passed the stuffed text as sent.
    let expected = msg.replace("\r\n", "\n").replace("\n..", "\n.");
    assert_eq!(
        dumped_message(dump).trim_end_matches('\n'),
        expected.trim_end_matches('\n')
    );
    gate.gate.shutdown().await;
}

/// A self-signed certificate for the hop's STARTTLS.
fn cert() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_auth_from_swaks() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(sink.port, "", Some(cert())).await;
    let t = swaks(
        gate.addr,
        &["-tls", "--from", "news@shop.example", "--to", CONSENTED],
    )
    .await;
    assert!(t.contains("TLS started"), "{t}");
    assert!(reply_to(&t, "RCPT TO").starts_with("250"), "{t}");
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    // AUTH decides the account: a sender domain the gate does not know
    // is judged as the logged-in account.
    let t = swaks(
        gate.addr,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "shop",
            "--auth-password",
            "secret1",
            "--from",
            "someone@elsewhere.example",
            "--to",
            &format!("{CONSENTED},{UNKNOWN}"),
        ],
    )
    .await;
    assert!(reply_to(&t, "AUTH").starts_with("235"), "{t}");
    assert!(reply_to(&t, "MAIL FROM").starts_with("250"), "{t}");
    let t2 = swaks(
        gate.addr,
        &[
            "-tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "shop",
            "--auth-password",
            "wrong",
            "--from",
            "someone@elsewhere.example",
            "--to",
            CONSENTED,
        ],
    )
    .await;
    assert!(t2.contains("535 5.7.8"), "{t2}");
    // Without AUTH the unknown sender matches no account: refused at MAIL.
    let t3 = swaks(
        gate.addr,
        &["--from", "someone@elsewhere.example", "--to", CONSENTED],
    )
    .await;
    assert!(
        reply_to(&t3, "MAIL FROM").starts_with("550 5.7.1 IYS:"),
        "{t3}"
    );
    let m = sink.wait_messages(2).await;
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m
        .iter()
        .all(|d| !d.contains(&format!("X-Rcpt-Args: <{UNKNOWN}>"))));
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_mail_passes_and_headers_only_make_it_stricter() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(sink.port, "strip_iys_headers = true", None).await;
    // The transactional account's mail is informational: no consent needed.
    let t = swaks(
        gate.addr,
        &[
            "--from",
            "receipts@tx.shop.example",
            "--to",
            UNKNOWN,
            "--header",
            "X-IYS-Message-Type: 0",
        ],
    )
    .await;
    assert!(reply_to(&t, "RCPT TO").starts_with("250"), "{t}");
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    let m = sink.wait_messages(1).await;
    assert!(
        !m[0].to_ascii_lowercase().contains("x-iys-message-type"),
        "stripped: {}",
        m[0]
    );
    // The same account marking a message commercial: the recipient was
    // accepted as informational, so the whole message is refused at end of
    // data and the sink never gets it.
    let t = swaks(
        gate.addr,
        &[
            "--from",
            "receipts@tx.shop.example",
            "--to",
            UNKNOWN,
            "--header",
            "X-IYS-Message-Type: 11",
        ],
    )
    .await;
    assert!(reply_to(&t, "RCPT TO").starts_with("250"), "{t}");
    let last = server_lines(&t)
        .into_iter()
        .find(|l| l.starts_with("550"))
        .unwrap_or_else(|| panic!("a refusal after the data: {t}"));
    assert!(last.starts_with("550 5.7.1 IYS: message refused"), "{last}");
    assert!(last.contains("no_consent"), "{last}");
    // A brand the account may not name, and an unreadable type.
    for header in ["X-IYS-Brand-Code: 999", "X-IYS-Message-Type: 7"] {
        let t = swaks(
            gate.addr,
            &[
                "--from",
                "news@shop.example",
                "--to",
                CONSENTED,
                "--header",
                header,
            ],
        )
        .await;
        assert!(
            server_lines(&t)
                .iter()
                .any(|l| l.starts_with("550 5.7.1 IYS: message refused: X-IYS-")),
            "{header}: {t}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "only the informational message arrives"
    );
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_refusal_is_mirrored_and_next_hop_down_is_421() {
    // The sink refuses every RCPT for now (and then offers no PIPELINING).
    let sink = Sink::start(&["-r", "RCPT"]).await;
    let gate = Gate::start(sink.port, "", None).await;
    let t = swaks(
        gate.addr,
        &[
            "--pipeline",
            "--from",
            "news@shop.example",
            "--to",
            &format!("{CONSENTED},{UNKNOWN}"),
        ],
    )
    .await;
    let lines = server_lines(&t);
    assert!(
        lines.iter().any(|l| l.starts_with("450 4.3.0")),
        "the sink's own: {t}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("550 5.7.1 IYS:")),
        "the gate's own: {t}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("554 5.5.1")),
        "no recipient left: {t}"
    );
    assert!(sink.messages().is_empty());
    drop(sink);
    gate.gate.shutdown().await;

    // Nothing listens at the next hop.
    let gate = Gate::start(free_port(), "", None).await;
    let t = swaks(
        gate.addr,
        &["--from", "news@shop.example", "--to", CONSENTED],
    )
    .await;
    assert!(
        server_lines(&t).iter().any(|l| l.starts_with("421 4.4.1")),
        "{t}"
    );
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("iys_gate_smtp_hop_next_hop_errors_total{kind=\"connect\"}"),
        "{metrics}"
    );
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_smuggling() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(
        sink.port,
        "max_recipients = 2\nmax_message_size = 2000\nmax_line_length = 1000",
        None,
    )
    .await;
    let mut c = Raw::connect(gate.addr).await;
    c.reply().await;
    c.cmd("EHLO sender.example").await;
    assert!(c
        .cmd("MAIL FROM:<news@shop.example> SIZE=5000")
        .await
        .starts_with("552 5.3.4"));
    assert!(c
        .cmd("MAIL FROM:<news@shop.example>")
        .await
        .starts_with("250"));
    for _ in 0..2 {
        assert!(c.cmd("RCPT TO:<demo@example.com>").await.starts_with("250"));
    }
    assert!(c
        .cmd("RCPT TO:<demo@example.com>")
        .await
        .starts_with("452 4.5.3"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    // Too big: refused, nothing delivered.
    c.send(b"Subject: big\r\n\r\n").await;
    for _ in 0..30 {
        c.send(&[b'x'; 100]).await;
        c.send(b"\r\n").await;
    }
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    // A bare LF before a dot (SMTP smuggling): the text after it is not a
    // second message, and the message is refused whole.
    assert!(
        c.cmd("MAIL FROM:<news@shop.example>")
            .await
            .starts_with("250"),
        "a new connection to the next hop"
    );
    assert!(c.cmd("RCPT TO:<demo@example.com>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nsecond\r\n.\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("550 5.5.2"), "{r}");
    // The session goes on.
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert!(c.cmd("QUIT").await.starts_with("221"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_slow_senders_and_the_connection_limit_leave_the_hop_serving() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(
        sink.port,
        "command_timeout = \"2s\"\nmax_connections = 6",
        None,
    )
    .await;
    // A slow sender that never finishes its line.
    let mut slow = Raw::connect(gate.addr).await;
    slow.reply().await;
    slow.send(b"EHL").await;
    // Random bytes, half commands, overlong lines.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    for round in 0..4 {
        let mut c = Raw::connect(gate.addr).await;
        c.reply().await;
        let mut junk: Vec<u8> = (0..2000).map(|_| rng.gen()).collect();
        junk.extend_from_slice(b"\r\nMAIL FROM:<a@\r\nRCPT\r\nDATA x\r\n");
        junk.extend(std::iter::repeat_n(b'A', 9000));
        junk.extend_from_slice(b"\r\n");
        c.send(&junk).await;
        if round % 2 == 0 {
            // Read what comes; the gate answers every line and may close
            // after too many errors.
            let mut n = 0;
            while !c.reply().await.is_empty() {
                n += 1;
                if n > 200 {
                    break;
                }
            }
        }
    }
    // Too many errors: 421 and the connection closes.
    let mut c = Raw::connect(gate.addr).await;
    c.reply().await;
    c.send("FOO\r\n".repeat(30).as_bytes()).await;
    let mut replies = Vec::new();
    loop {
        let r = c.reply().await;
        if r.is_empty() {
            break;
        }
        replies.push(r);
    }
    assert_eq!(replies.len(), 21, "{replies:?}");
    assert!(replies[..20].iter().all(|r| r.starts_with("500 5.5.1")));
    assert!(replies[20].starts_with("421 4.7.0"), "{replies:?}");
    // Meanwhile a real sender is served.
    let t = swaks(
        gate.addr,
        &["--from", "news@shop.example", "--to", CONSENTED],
    )
    .await;
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    // The slow sender is timed out with a 421.
    let r = slow.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    // Past the connection limit: 421 and counted.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut c = Raw::connect(gate.addr).await;
        c.reply().await;
        held.push(c);
    }
    let mut extra = Raw::connect(gate.addr).await;
    let r = extra.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = swaks(
        gate.addr,
        &["--from", "news@shop.example", "--to", CONSENTED],
    )
    .await;
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("iys_gate_smtp_hop_connections_refused_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("iys_gate_smtp_hop_commands_total{command=\"unknown\"}"));
    sink.wait_messages(2).await;
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_source_messages_all_arrive() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(sink.port, "", None).await;
    let bin = need("smtp-source");
    let n = 60;
    let out = tokio::time::timeout(
        WAIT * 3,
        tokio::process::Command::new(bin)
            .args(["-m", &n.to_string(), "-s", "4", "-f", "news@shop.example"])
            .args(["-t", CONSENTED, "-M", "sender.example"])
            .arg(gate.addr.to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("smtp-source finishes")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = sink.wait_messages(n).await;
    assert_eq!(m.len(), n);
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_to_the_next_hop() {
    let sink = Sink::start(&[]).await;
    // The next hop is a second gate that requires STARTTLS before MAIL.
    let inner = Gate::start_tls(sink.port, "", Some(cert()), true).await;
    let outer = Gate::start(
        inner.addr.port(),
        "next_hop_starttls = true\nnext_hop_tls_insecure = true",
        None,
    )
    .await;
    let t = swaks(
        outer.addr,
        &["--from", "news@shop.example", "--to", CONSENTED],
    )
    .await;
    assert!(
        !t.contains("STARTTLS"),
        "the outer gate offers no TLS itself: {t}"
    );
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    let m = sink.wait_messages(1).await;
    assert!(m[0].contains(&format!("X-Rcpt-Args: <{CONSENTED}>")));
    // Verifying the self-signed certificate fails: the sender hears 421.
    let strict = Gate::start(inner.addr.port(), "next_hop_starttls = true", None).await;
    let t = swaks(
        strict.addr,
        &["--from", "news@shop.example", "--to", CONSENTED],
    )
    .await;
    assert!(
        server_lines(&t).iter().any(|l| l.starts_with("421 4.4.1")),
        "{t}"
    );
    for g in [outer, strict, inner] {
        g.gate.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_lost_mid_transaction_gives_451_and_the_next_mail_reconnects() {
    // The sink drops the connection, without a reply, at each RCPT.
    let sink = Sink::start(&["-q", "RCPT"]).await;
    let gate = Gate::start(sink.port, "", None).await;
    let mut c = Raw::connect(gate.addr).await;
    assert!(c.reply().await.starts_with("220"));
    c.cmd("EHLO sender.example").await;
    for _ in 0..2 {
        assert!(c
            .cmd("MAIL FROM:<news@shop.example>")
            .await
            .starts_with("250"));
        let r = c.cmd("RCPT TO:<demo@example.com>").await;
        assert!(r.starts_with("451 4.4.2"), "{r}");
        let r = c.cmd("DATA").await;
        assert!(r.starts_with("503 5.5.1"), "{r}");
    }
    assert!(c.cmd("QUIT").await.starts_with("221"));
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("iys_gate_smtp_hop_next_hop_errors_total{kind=\"closed\"}"),
        "{metrics}"
    );
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_hop_connection_closed_while_idle_is_replaced_at_mail() {
    // The sink drops a connection idle for a second.
    let sink = Sink::start(&["-t", "1"]).await;
    let gate = Gate::start(sink.port, "", None).await;
    let mut c = Raw::connect(gate.addr).await;
    assert!(c.reply().await.starts_with("220"));
    c.cmd("EHLO sender.example").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.send(b"MAIL FROM:<news@shop.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n")
        .await;
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("354"));
    c.send(b"Subject: after idle\r\n\r\nhello\r\n.\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250"), "{r}");
    sink.wait_messages(1).await;
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_mail_and_hides_auth_before_starttls() {
    let sink = Sink::start(&[]).await;
    let gate = Gate::start_tls(sink.port, "", Some(cert()), true).await;
    let mut c = Raw::connect(gate.addr).await;
    assert!(c.reply().await.starts_with("220"));
    let ehlo = c.cmd("EHLO sender.example").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let r = c.cmd("MAIL FROM:<news@shop.example>").await;
    assert!(r.starts_with("530 5.7.0"), "{r}");
    let r = c.cmd("AUTH PLAIN AHNob3AAc2VjcmV0MQ==").await;
    assert!(r.starts_with("502"), "{r}");
    // swaks with -tls gets through, authenticated.
    let t = swaks(
        gate.addr,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "shop",
            "--auth-password",
            "secret1",
            "--from",
            "news@shop.example",
            "--to",
            CONSENTED,
        ],
    )
    .await;
    assert!(reply_to(&t, "AUTH").starts_with("235"), "{t}");
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    gate.gate.shutdown().await;
}

/// Accepts the hop's self-signed certificate (the test's own client).
#[derive(Debug)]
struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_after_starttls_are_discarded() {
    // RFC 3207 §4.2 (and CVE-2011-0411): nothing sent in the clear after
    // STARTTLS may count once TLS is up, and the session starts over.
    let sink = Sink::start(&[]).await;
    let gate = Gate::start(sink.port, "", Some(cert())).await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut read_reply = async |s: &mut (dyn tokio::io::AsyncRead + Unpin + Send)| -> String {
        let mut got = Vec::new();
        loop {
            let n = tokio::time::timeout(WAIT, s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            if reply_end(&got) == Some(got.len()) {
                return String::from_utf8_lossy(&got).into_owned();
            }
        }
    };
    assert!(read_reply(&mut s).await.starts_with("220"));
    s.write_all(b"EHLO sender.example\r\n").await.unwrap();
    assert!(read_reply(&mut s).await.contains("STARTTLS"));
    s.write_all(b"STARTTLS\r\nMAIL FROM:<news@shop.example>\r\n")
        .await
        .unwrap();
    let r = read_reply(&mut s).await;
    assert!(r.starts_with("220 2.0.0"), "only the STARTTLS reply: {r}");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, s)
        .await
        .unwrap();
    // The session starts over: MAIL before EHLO, and the injected MAIL never counted.
    tls.write_all(b"RCPT TO:<demo@example.com>\r\n")
        .await
        .unwrap();
    let r = read_reply(&mut tls).await;
    assert!(r.starts_with("503 5.5.1"), "{r}");
    tls.write_all(b"EHLO sender.example\r\n").await.unwrap();
    let r = read_reply(&mut tls).await;
    assert!(!r.contains("STARTTLS"), "{r}");
    tls.write_all(b"MAIL FROM:<news@shop.example>\r\nRCPT TO:<demo@example.com>\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut rest)).await;
    let r = String::from_utf8_lossy(&rest);
    assert!(r.starts_with("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 "), "{r}");
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_next_hop_gives_451_in_time() {
    // The sink waits 5 s before answering RCPT; the hop waits 1 s.
    let sink = Sink::start(&["-W", "RCPT:5"]).await;
    let gate = Gate::start(sink.port, "next_hop_reply_timeout = \"1s\"", None).await;
    let mut c = Raw::connect(gate.addr).await;
    assert!(c.reply().await.starts_with("220"));
    c.cmd("EHLO sender.example").await;
    assert!(c
        .cmd("MAIL FROM:<news@shop.example>")
        .await
        .starts_with("250"));
    let asked = Instant::now();
    let r = c.cmd("RCPT TO:<demo@example.com>").await;
    assert!(r.starts_with("451 4.4.2"), "{r}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("iys_gate_smtp_hop_next_hop_errors_total{kind=\"timeout\"}"),
        "{metrics}"
    );
    gate.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_senders_pass_unjudged_or_are_deferred_as_configured() {
    let sink = Sink::start(&[]).await;
    let pass = Gate::start(sink.port, "unmatched = \"pass\"", None).await;
    let t = swaks(
        pass.addr,
        &["--from", "someone@elsewhere.example", "--to", UNKNOWN],
    )
    .await;
    assert!(reply_to(&t, "RCPT TO").starts_with("250"), "{t}");
    assert!(
        server_lines(&t)
            .iter()
            .any(|l| l.starts_with("250 2.0.0 Ok")),
        "{t}"
    );
    sink.wait_messages(1).await;
    let defer = Gate::start(sink.port, "unmatched = \"defer\"", None).await;
    let t = swaks(
        defer.addr,
        &["--from", "someone@elsewhere.example", "--to", UNKNOWN],
    )
    .await;
    assert!(
        reply_to(&t, "MAIL FROM").starts_with("451 4.7.1 IYS:"),
        "{t}"
    );
    let metrics = pass.metrics().await;
    assert!(
        metrics.contains("iys_gate_smtp_hop_unmatched_total"),
        "{metrics}"
    );
    for g in [pass, defer] {
        g.gate.shutdown().await;
    }
}
