//! The graceful drain, on the real binary: `iys-gate serve` gets SIGTERM
//! while SMPP senders have requests in flight at a slow SMSC (the project's
//! SMSC sink with a delay), or while an SMTP sender is in the middle of a
//! transaction, and must: answer every request exactly once, unbind the
//! senders, let the transaction finish and answer anything new with `421`,
//! answer `/readyz` with 503 while it drains, write the last snapshot, and
//! exit 0 within `server.drain_timeout`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use iys_gate::smpp::codec::{
    frame_len, status, Bind, Body, COctetString, CommandId, OctetString, Pdu, SubmitSm,
};
use iys_gate::smpp::tools::sink as smsc;
use iys_gate::smtp::tools::sink as smtp_sink;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
/// Consented for SMS (commercial messages to it pass).
const CONSENTED: &str = "905321111111";
/// The grace the gate is configured with.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any single expected event may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// The gate binary, killed on drop if still running; its log lines collected.
struct GateProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    smpp: SocketAddr,
    hop: SocketAddr,
    policy: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for GateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GateProcess {
    /// `iys-gate serve` relaying SMS to `smsc` and mail to `next_hop`, with a
    /// policy service, a snapshot file, JSON logs and `drain_timeout`.
    fn start(smsc: SocketAddr, next_hop: SocketAddr, drain_timeout: Duration) -> GateProcess {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("export.csv");
        std::fs::write(
            &csv,
            format!(
                "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
                 {IYS},{BRAND},+{CONSENTED},BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
                 {IYS},{BRAND},demo@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,\n"
            ),
        )
        .unwrap();
        let config = dir.path().join("gate.toml");
        std::fs::write(
            &config,
            format!(
                r#"[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = [{csv:?}]
snapshot_path = {snap:?}
[policy]
max_data_age = "1h"
[log]
format = "json"
level = "info"
[server]
drain_timeout = "{drain}s"
[[brands]]
iys_code = {IYS}
brand_code = {BRAND}
[smpp]
listen = "127.0.0.1:0"
upstream = "{smsc}"
window = 16
response_timeout = "15s"
[[smpp.accounts]]
system_id = "acme"
password = "secret1"
iys_code = {IYS}
brand_code = {BRAND}
[smtp]
[[smtp.accounts]]
name = "shop"
iys_code = {IYS}
brand_code = {BRAND}
senders = ["shop.example"]
[smtp.hop]
listen = "127.0.0.1:0"
next_hop = "{next_hop}"
next_hop_starttls = false
[smtp.policy]
listen = "127.0.0.1:0"
"#,
                csv = csv.display().to_string(),
                snap = dir.path().join("consents.snap").display().to_string(),
                drain = drain_timeout.as_secs(),
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_iys-gate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iys-gate runs");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut gate = GateProcess {
            child,
            log,
            smpp: SocketAddr::from(([0, 0, 0, 0], 0)),
            hop: SocketAddr::from(([0, 0, 0, 0], 0)),
            policy: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            dir,
        };
        let ready = gate.wait_log("iys-gate ready");
        gate.admin = addr_in(&ready["fields"]["admin"]);
        gate.smpp = addr_in(&gate.wait_log("SMPP gate listening")["fields"]["listen"]);
        gate.hop = addr_in(&gate.wait_log("SMTP hop listening")["fields"]["addr"]);
        gate.policy = addr_in(&gate.wait_log("SMTP policy service listening")["fields"]["listen"]);
        gate
    }

    /// The first JSON log line whose message is `message`.
    fn find_log(&self, message: &str) -> Option<serde_json::Value> {
        self.log.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"].as_str()? == message).then_some(v)
        })
    }

    /// Wait for a log line (and fail with the log so far if it never comes).
    fn wait_log(&mut self, message: &str) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = self.find_log(message) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "iys-gate exited ({status}) before logging {message:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn sigterm(&self) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM");
    }

    fn sighup(&self) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP");
    }

    /// Wait for the process to exit (at most `limit`).
    async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "iys-gate still running {limit:?} after SIGTERM:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn snapshot_path(&self) -> std::path::PathBuf {
        self.dir.path().join("consents.snap")
    }
}

/// `"127.0.0.1:1234"` or `"Some(127.0.0.1:1234)"` as logged.
fn addr_in(v: &serde_json::Value) -> SocketAddr {
    let s = v.as_str().unwrap_or_else(|| panic!("no address in {v}"));
    let s = s.trim_start_matches("Some(").trim_end_matches(')');
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not an address"))
}

/// `GET /readyz`: the status code, or `None` when the listener is gone.
async fn readyz(admin: SocketAddr) -> Option<u16> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(admin))
        .await
        .ok()?
        .ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut head)).await;
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------
// SMPP: senders under load.

/// What one sender saw.
#[derive(Debug, Default)]
struct SenderLog {
    /// submit_sm sent, by sequence number: how many responses each got, and the last status.
    answers: HashMap<u32, (u32, u32)>,
    /// The gate sent it an unbind.
    got_unbind: bool,
    /// Responses to requests it never sent, or other surprises.
    errors: Vec<String>,
    /// Its own unbind (sent when the gate's arrived, `cross`), and the
    /// status of the unbind_resp it got.
    own_unbind: Option<(u32, Option<u32>)>,
}

fn submit(dest: &str, n: u32) -> Body {
    Body::SubmitSm(SubmitSm {
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: COctetString::copy_from(dest.as_bytes()).unwrap(),
        short_message: OctetString::copy_from(format!("drain test {n}").as_bytes()).unwrap(),
        ..Default::default()
    })
}

/// A well-behaved ESME: binds, keeps `window` submit_sm in flight until the
/// gate unbinds it, answers that unbind, then reads until the gate closes.
async fn sender(
    addr: SocketAddr,
    window: usize,
    running: Arc<std::sync::atomic::AtomicBool>,
) -> SenderLog {
    sender_crossing(addr, window, running, false).await
}

/// The same; with `cross`, it sends an unbind of its own just before it
/// answers the gate's (as a sender stopping at that moment would).
async fn sender_crossing(
    addr: SocketAddr,
    window: usize,
    running: Arc<std::sync::atomic::AtomicBool>,
    cross: bool,
) -> SenderLog {
    let mut log = SenderLog::default();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = BytesMut::new();
    let mut seq = 1u32;
    let bind = Bind {
        system_id: COctetString::copy_from(b"acme").unwrap(),
        password: COctetString::copy_from(b"secret1").unwrap(),
        interface_version: 0x34,
        ..Default::default()
    };
    s.write_all(&Pdu::new(seq, Body::BindTransmitter(bind)).to_vec())
        .await
        .unwrap();
    let mut in_flight = 0usize;
    let mut unbound = false;
    let mut bound = false;
    let deadline = Instant::now() + WAIT + DRAIN_TIMEOUT;
    loop {
        // Submit while bound, the test runs and the gate has not unbound us.
        while bound
            && !unbound
            && in_flight < window
            && running.load(std::sync::atomic::Ordering::Relaxed)
        {
            seq += 1;
            s.write_all(&Pdu::new(seq, submit(CONSENTED, seq)).to_vec())
                .await
                .unwrap();
            log.answers.insert(seq, (0, 0));
            in_flight += 1;
        }
        let pdu = loop {
            if let Some(n) = frame_len(&buf, u32::MAX).unwrap() {
                let frame = buf.split_to(n).freeze();
                break Some(Pdu::decode_bytes(frame).unwrap());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read_buf(&mut buf)).await {
                Err(_) => {
                    log.errors
                        .push("the gate neither answered nor closed in time".into());
                    break None;
                }
                Ok(Ok(0)) | Ok(Err(_)) => break None,
                Ok(Ok(_)) => {}
            }
        };
        let Some(pdu) = pdu else { return log };
        match pdu.command_id() {
            CommandId::BindTransmitterResp => {
                assert_eq!(pdu.command_status, status::ESME_ROK, "bind refused");
                bound = true;
            }
            CommandId::SubmitSmResp | CommandId::GenericNack => {
                match log.answers.get_mut(&pdu.sequence_number) {
                    Some(a) => {
                        a.0 += 1;
                        a.1 = pdu.command_status;
                        in_flight = in_flight.saturating_sub(1);
                    }
                    None => log.errors.push(format!(
                        "an answer to {} it never sent",
                        pdu.sequence_number
                    )),
                }
            }
            CommandId::Unbind => {
                log.got_unbind = true;
                unbound = true;
                // With `cross`, its own unbind goes first, in the same write.
                let mut out = Vec::new();
                if cross {
                    seq += 1;
                    log.own_unbind = Some((seq, None));
                    out = Pdu::new(seq, Body::Unbind).to_vec();
                }
                out.extend(Pdu::new(pdu.sequence_number, Body::UnbindResp).to_vec());
                s.write_all(&out).await.unwrap();
            }
            CommandId::UnbindResp => match &mut log.own_unbind {
                Some((own, answer @ None)) if *own == pdu.sequence_number => {
                    *answer = Some(pdu.command_status)
                }
                _ => log
                    .errors
                    .push(format!("unexpected unbind_resp {}", pdu.sequence_number)),
            },
            CommandId::EnquireLink => {
                s.write_all(&Pdu::new(pdu.sequence_number, Body::EnquireLinkResp).to_vec())
                    .await
                    .unwrap();
            }
            other => log.errors.push(format!("unexpected {other:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_smpp_load_answers_every_request_unbinds_and_exits_in_time() {
    // A slow SMSC: every answer waits 700 ms, so requests are in flight at SIGTERM.
    let sink = smsc::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smsc::SinkConfig {
            delay: Duration::from_millis(700),
            record_last: 0,
            ..smsc::SinkConfig::default()
        },
    )
    .await;
    let next_hop = smtp_sink::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smtp_sink::SinkConfig::default(),
    );
    let mut gate = GateProcess::start(sink.local_addr(), next_hop.local_addr(), DRAIN_TIMEOUT);
    assert_eq!(
        readyz(gate.admin).await,
        Some(200),
        "ready before the drain"
    );

    // SIGHUP without admin TLS or an access-log file: logged and ignored.
    gate.sighup();
    gate.wait_log("SIGHUP: nothing to reload (no admin.access_log file, no admin.tls); ignored");
    assert!(
        gate.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the gate"
    );

    const SENDERS: usize = 4;
    const WINDOW: usize = 12;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(sender(gate.smpp, WINDOW, running.clone())))
        .collect();
    // Load until the SMSC has answered a good number, so all senders run.
    let deadline = Instant::now() + WAIT;
    while sink.stats().counts().submit_sm < 3 * (SENDERS * WINDOW) as u64 {
        assert!(
            Instant::now() < deadline,
            "load never got going:\n{}",
            gate.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every sender has a full window in flight at the slow SMSC.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let term = Instant::now();
    gate.sigterm();
    // /readyz turns 503 at once, while the sessions drain.
    let mut saw_503 = false;
    while Instant::now() < term + Duration::from_secs(5) {
        match readyz(gate.admin).await {
            Some(503) => {
                saw_503 = true;
                break;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            None => break,
        }
    }
    let status = gate.exited(DRAIN_TIMEOUT).await;
    let took = term.elapsed();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        gate.log_text()
    );
    assert!(saw_503, "/readyz never answered 503 during the drain");

    let mut sent = 0;
    for s in senders {
        let log = s.await.unwrap();
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        assert!(log.got_unbind, "a sender was never sent unbind");
        for (seq, (answers, st)) in &log.answers {
            assert_eq!(*answers, 1, "submit_sm {seq} got {answers} answers");
            assert_eq!(
                *st,
                status::ESME_ROK,
                "submit_sm {seq} answered {st:#x}, not relayed from the SMSC"
            );
        }
        sent += log.answers.len();
    }
    // Everything the senders sent reached the SMSC and came back.
    let counts = sink.stats().counts();
    assert_eq!(counts.submit_sm, sent as u64);
    assert_eq!(
        counts.unbinds, SENDERS as u64,
        "the gate unbinds each SMSC link"
    );
    assert!(took < DRAIN_TIMEOUT, "took {took:?}");

    // The drain is logged, and the last snapshot written and loadable.
    let drained = gate.find_log(&format!(
        "drained: sessions ended: smpp={SENDERS}; still open: none"
    ));
    assert!(drained.is_some(), "no drain summary:\n{}", gate.log_text());
    assert!(
        gate.find_log("snapshot written").is_some(),
        "{}",
        gate.log_text()
    );
    let snap = iys_gate::store::file::read(&gate.snapshot_path()).expect("the last snapshot loads");
    assert!(snap.version > 0);
    eprintln!("drain of {SENDERS} senders, {sent} submit_sm: SIGTERM to exit in {took:?}");
}

// ---------------------------------------------------------------------------
// SMTP: a transaction in progress finishes; anything else gets 421.

struct Smtp {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Smtp {
    async fn connect(addr: SocketAddr) -> Smtp {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut s = Smtp {
            r: tokio::io::BufReader::new(r),
            w,
        };
        let greeting = s.reply().await;
        assert!(greeting.starts_with("220"), "{greeting}");
        s
    }

    /// One whole reply (all its lines), or "" once the gate closed.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.r.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            if n == 0 {
                return all;
            }
            all += &line;
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_smtp_transaction_finish_and_answers_anything_else_421() {
    let sink = smsc::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smsc::SinkConfig::default(),
    )
    .await;
    let next_hop = smtp_sink::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smtp_sink::SinkConfig::default(),
    );
    let mut gate = GateProcess::start(sink.local_addr(), next_hop.local_addr(), DRAIN_TIMEOUT);

    // One sender in the middle of a message, one idle between transactions.
    let mut busy = Smtp::connect(gate.hop).await;
    assert!(busy.cmd("EHLO client.example").await.starts_with("250"));
    assert!(busy
        .cmd("MAIL FROM:<news@shop.example>")
        .await
        .starts_with("250"));
    assert!(busy
        .cmd("RCPT TO:<demo@example.com>")
        .await
        .starts_with("250"));
    assert!(busy.cmd("DATA").await.starts_with("354"));
    busy.send("Subject: drain\r\n\r\nfirst half\r\n").await;
    let mut idle = Smtp::connect(gate.hop).await;
    assert!(idle.cmd("EHLO idle.example").await.starts_with("250"));

    let term = Instant::now();
    gate.sigterm();
    // The idle session is told at once, and closed.
    let told = idle.reply().await;
    assert!(
        told.starts_with("421 4.3.2 ") && told.contains("shutting down"),
        "{told:?}"
    );
    assert_eq!(idle.reply().await, "", "closed after the 421");
    // No new connections.
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(gate.hop).await {
            Err(_) => break,
            Ok(mut s) => {
                // Accepted by the backlog before the listener closed: never served.
                let mut b = [0u8; 64];
                let n = tokio::time::timeout(WAIT, s.read(&mut b))
                    .await
                    .expect("closed");
                let text = String::from_utf8_lossy(&b[..n.unwrap_or(0)]).to_string();
                assert!(
                    !text.starts_with("220"),
                    "a new session was greeted during the drain: {text}"
                );
            }
        }
        assert!(Instant::now() < deadline, "the hop listener stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The message in progress completes and reaches the next hop ...
    busy.send("second half\r\n.\r\n").await;
    let done = busy.reply().await;
    assert!(done.starts_with("250"), "{done:?}");
    // ... and the next transaction is refused.
    let next = busy.cmd("MAIL FROM:<news@shop.example>").await;
    assert!(
        next.starts_with("421 4.3.2 ") && next.contains("shutting down"),
        "{next:?}"
    );
    assert_eq!(busy.reply().await, "", "closed after the 421");

    let status = gate.exited(DRAIN_TIMEOUT).await;
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        gate.log_text()
    );
    assert!(term.elapsed() < DRAIN_TIMEOUT);
    let counts = next_hop.stats().counts();
    assert_eq!(counts.messages, 1, "the message in progress was delivered");
    let last = next_hop.stats().recent();
    assert!(
        last.iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("second half")),
        "the whole message arrived"
    );
    assert!(
        gate.find_log("drained: sessions ended: smtp_hop=2; still open: none")
            .is_some(),
        "{}",
        gate.log_text()
    );
    assert!(Path::new(&gate.snapshot_path()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_drain_timeout_each_request_still_waiting_gets_exactly_one_error_answer() {
    // An SMSC slower than the whole drain: nothing it is asked is answered in time.
    let sink = smsc::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smsc::SinkConfig {
            delay: Duration::from_secs(6),
            record_last: 0,
            ..smsc::SinkConfig::default()
        },
    )
    .await;
    let next_hop = smtp_sink::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smtp_sink::SinkConfig::default(),
    );
    let drain = Duration::from_secs(1);
    let mut gate = GateProcess::start(sink.local_addr(), next_hop.local_addr(), drain);
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let senders: Vec<_> = (0..2)
        .map(|_| tokio::spawn(sender(gate.smpp, 8, running.clone())))
        .collect();
    let deadline = Instant::now() + WAIT;
    while sink.stats().counts().submit_sm < 16 {
        assert!(
            Instant::now() < deadline,
            "load never got going:\n{}",
            gate.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = Instant::now();
    gate.sigterm();
    // The drain, at most 3 s of closing, and the snapshot write.
    let status = gate.exited(drain + Duration::from_secs(5)).await;
    let took = term.elapsed();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        gate.log_text()
    );
    let mut failed = 0;
    for s in senders {
        let log = s.await.unwrap();
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        assert!(log.got_unbind);
        for (seq, (answers, st)) in &log.answers {
            assert_eq!(*answers, 1, "submit_sm {seq} got {answers} answers");
            assert_eq!(*st, status::ESME_RSYSERR, "submit_sm {seq}: {st:#x}");
            failed += 1;
        }
    }
    assert!(failed >= 16);
    assert!(
        gate.log_text().contains("server.drain_timeout ran out"),
        "the sessions' end says why:\n{}",
        gate.log_text()
    );
    eprintln!("drain_timeout {drain:?}: {failed} requests answered ESME_RSYSERR; SIGTERM to exit in {took:?}");
}

/// One policy request for `recipient`, as Postfix sends it.
fn policy_request(recipient: &str) -> String {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.1\n\
         sender=news@shop.example\nrecipient={recipient}\n\n"
    )
}

/// Read until the blank line that ends an answer, or "" once closed.
async fn policy_answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 512];
    while !got.ends_with(b"\n\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut b))
            .await
            .expect("an answer or a close in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_policy_request_in_progress_and_closes_idle_connections() {
    let sink = smsc::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smsc::SinkConfig::default(),
    )
    .await;
    let next_hop = smtp_sink::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smtp_sink::SinkConfig::default(),
    );
    let mut gate = GateProcess::start(sink.local_addr(), next_hop.local_addr(), DRAIN_TIMEOUT);
    let mut busy = TcpStream::connect(gate.policy).await.unwrap();
    let mut idle = TcpStream::connect(gate.policy).await.unwrap();
    for s in [&mut busy, &mut idle] {
        s.write_all(policy_request("demo@example.com").as_bytes())
            .await
            .unwrap();
        assert_eq!(policy_answer(s).await, "action=DUNNO\n\n");
    }
    // Half a request, then SIGTERM, then the rest.
    let request = policy_request("nobody@example.com");
    let (first, rest) = request.split_at(40);
    busy.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.sigterm();
    // The idle connection is closed at once.
    assert_eq!(
        policy_answer(&mut idle).await,
        "",
        "the idle connection closes"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    busy.write_all(rest.as_bytes()).await.unwrap();
    let answer = policy_answer(&mut busy).await;
    assert!(
        answer.starts_with("action=550 5.7.1 "),
        "the request in progress is decided: {answer:?}"
    );
    assert_eq!(
        policy_answer(&mut busy).await,
        "",
        "then the connection closes"
    );
    let status = gate.exited(DRAIN_TIMEOUT).await;
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        gate.log_text()
    );
    assert!(
        gate.find_log("drained: sessions ended: smtp_policy=2; still open: none")
            .is_some(),
        "{}",
        gate.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_unbinding_as_the_gate_unbinds_it_still_gets_every_answer_and_its_unbind_resp() {
    let sink = smsc::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smsc::SinkConfig {
            delay: Duration::from_millis(500),
            record_last: 0,
            ..smsc::SinkConfig::default()
        },
    )
    .await;
    let next_hop = smtp_sink::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        smtp_sink::SinkConfig::default(),
    );
    let mut gate = GateProcess::start(sink.local_addr(), next_hop.local_addr(), DRAIN_TIMEOUT);
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let crossing = tokio::spawn(sender_crossing(gate.smpp, 8, running.clone(), true));
    let deadline = Instant::now() + WAIT;
    while sink.stats().counts().submit_sm < 8 {
        assert!(
            Instant::now() < deadline,
            "load never got going:\n{}",
            gate.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gate.sigterm();
    let status = gate.exited(DRAIN_TIMEOUT).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        gate.log_text()
    );
    let log = crossing.await.unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert!(log.got_unbind);
    assert_eq!(
        log.own_unbind.map(|(_, answer)| answer),
        Some(Some(status::ESME_ROK)),
        "its unbind was answered, after the SMSC answered the gate's:\n{}",
        gate.log_text()
    );
    for (seq, (answers, st)) in &log.answers {
        assert_eq!((*answers, *st), (1, status::ESME_ROK), "submit_sm {seq}");
    }
}
