//! The SIP gate as callers and callees see it.
//!
//! - With raw sockets playing caller and far end (deterministic): what the
//!   far end receives (the gate's Via on top, Max-Forwards decremented,
//!   İYS headers cut, everything else byte for byte), responses routed back
//!   with the gate's Via cut, a refused INVITE answered 608 with a Reason, its
//!   retransmission answered with the identical bytes, its ACK absorbed and
//!   its CANCEL answered 200, `483` at Max-Forwards 0, garbage ignored, and
//!   redirect mode (`302` with the original target, or the refusal).
//! - With real SIPp (Debian `sip-tester`) as caller and callee, over UDP and
//!   over TCP: a consented call completes (INVITE/100/180/200/ACK/BYE/200)
//!   and the callee sees the caller's headers and body; unconsented and
//!   withdrawn calls get 608 and never reach the callee; an informational
//!   call to an unconsented number passes; OPTIONS passes; CANCEL during
//!   ringing works through the gate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use iys_gate::config::Config;
use iys_gate::serve::{start, RunningGate};
use tokio::net::UdpSocket;
use tokio::process::Command;

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
/// How long any single expected event may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(10);

/// ARAMA consent (ONAY).
const CONSENTED: &str = "05300000001";
/// ONAY, then RET: withdrawn.
const WITHDRAWN: &str = "05300000002";
/// Never consented.
const UNKNOWN: &str = "05300000009";

const ROWS: &[&str] = &[
    "700001,100001,05300000001,BIREYSEL,ARAMA,ONAY,2024-01-01 10:00:00,HS_CAGRI_MERKEZI,,",
    "700001,100001,05300000002,BIREYSEL,ARAMA,ONAY,2024-01-01 10:00:00,HS_CAGRI_MERKEZI,,",
    "700001,100001,05300000002,BIREYSEL,ARAMA,RET,2024-06-01 10:00:00,IYS_MOBIL,,",
];

struct Gate {
    gate: RunningGate,
    udp: SocketAddr,
    tcp: SocketAddr,
    dir: tempfile::TempDir,
}

/// A gate whose next hop is `127.0.0.1:next_hop`; `sip` adds keys to `[sip]`.
async fn gate(next_hop: u16, sip: &str) -> Gate {
    gate_for(next_hop, sip, "127.0.0.1/32").await
}

/// The same, with the trunk's network `trunk`.
async fn gate_for(next_hop: u16, sip: &str, trunk: &str) -> Gate {
    gate_with(
        &format!(
            r#"next_hop = "127.0.0.1:{next_hop}"
{sip}
[[sip.trunks]]
name = "callcentre"
networks = ["{trunk}"]
iys_code = {IYS}
brand_code = {BRAND}
"#
        ),
        "1h",
    )
    .await
}

/// A gate whose `[sip]` section (after its listeners) is `sip`, with the
/// policy's `max_data_age`.
async fn gate_with(sip: &str, max_data_age: &str) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    let mut text = String::from("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n");
    for r in ROWS {
        text += r;
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let toml = format!(
        r#"[admin]
listen = "127.0.0.1:0"
[store]
bootstrap_csv = [{csv:?}]
[policy]
max_data_age = "{max_data_age}"
[audit]
path = {audit:?}
[[brands]]
iys_code = {IYS}
brand_code = {BRAND}
[sip]
listen_udp = "127.0.0.1:0"
listen_tcp = "127.0.0.1:0"
{sip}
"#,
        csv = csv.display().to_string(),
        audit = dir.path().join("audit.jsonl").display().to_string()
    );
    let config = Config::from_toml(&toml, "sip").unwrap();
    let gate = start(config).await.unwrap();
    Gate {
        udp: gate.sip_udp_addr.expect("sip_udp listener"),
        tcp: gate.sip_tcp_addr.expect("sip_tcp listener"),
        gate,
        dir,
    }
}

impl Gate {
    /// The audit trail's lines once at least `n` are written, each parsed.
    async fn audit(&self, n: usize) -> Vec<serde_json::Value> {
        let path = self.dir.path().join("audit.jsonl");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() >= n {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} audit lines expected: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.gate.admin_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A free port on 127.0.0.1 for UDP and TCP (bound, then released).
fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------
// Raw sockets.

/// An INVITE from a caller whose Via names `port` on 127.0.0.1.
fn invite(port: u16, to: &str, branch: &str, call_id: &str, extra: &str) -> Vec<u8> {
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
    format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n\
         f: <sip:05320000000@127.0.0.1>;tag=caller1\r\n\
         To: <sip:{to}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         x-Custom-CASE: Keep Me\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ack_or_cancel(
    port: u16,
    method: &str,
    to: &str,
    branch: &str,
    call_id: &str,
    to_tag: &str,
) -> Vec<u8> {
    format!(
        "{method} sip:{to}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:05320000000@127.0.0.1>;tag=caller1\r\n\
         To: <sip:{to}@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

async fn recv(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("a datagram in time")
        .unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

async fn nothing(sock: &UdpSocket, what: &str) {
    let mut buf = vec![0u8; 65536];
    if let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(400), sock.recv_from(&mut buf)).await
    {
        panic!("{what}: got {}", String::from_utf8_lossy(&buf[..n]));
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_forwarding_refusals_retransmissions_and_acks() {
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = gate(far.local_addr().unwrap().port(), "").await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();

    // A consented call is forwarded with only the gate's edits.
    let inv = invite(
        p,
        CONSENTED,
        "z9hG4bKok1",
        "call-ok",
        "X-IYS-Message-Type: 11\r\n",
    );
    caller.send(&inv).await.unwrap();
    let got = recv(&far).await;
    let vias = header(&got, "via");
    assert_eq!(vias.len(), 2, "{got}");
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:") && vias[0].contains("branch=z9hG4bKiys"),
        "{got}"
    );
    assert_eq!(
        vias[1],
        format!("SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKok1"),
        "the sender's Via as it came (its host is the source address: no received)"
    );
    assert_eq!(
        header(&got, "max-forwards"),
        vec!["70"],
        "added when missing"
    );
    assert!(
        header(&got, "x-iys-message-type").is_empty(),
        "İYS header cut: {got}"
    );
    let original = String::from_utf8(inv.clone()).unwrap();
    let expected_rest = original
        .split_once("\r\n")
        .unwrap()
        .1
        .replace("X-IYS-Message-Type: 11\r\n", "");
    assert!(
        got.ends_with(&expected_rest),
        "everything else byte for byte:\n{got}\nvs\n{expected_rest}"
    );

    // The far end's 180 comes back with the gate's Via cut.
    let top = format!("Via: {}\r\n", vias[0]);
    let ringing = got
        .replacen(
            &format!("INVITE sip:{CONSENTED}@127.0.0.1 SIP/2.0"),
            "SIP/2.0 180 Ringing",
            1,
        )
        .replace(
            "To: <sip:05300000001@127.0.0.1>",
            "To: <sip:05300000001@127.0.0.1>;tag=far1",
        );
    let reply = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Responses are routed by Via, whichever socket they come from.
    reply.send_to(ringing.as_bytes(), g.udp).await.unwrap();
    let back = recv(&caller).await;
    assert!(back.starts_with("SIP/2.0 180 Ringing\r\n"), "{back}");
    assert!(!back.contains(&top), "{back}");
    assert_eq!(header(&back, "via").len(), 1);
    drop(back);

    // A refused call: 608 with a Reason, nothing reaches the far end.
    let inv = invite(p, UNKNOWN, "z9hG4bKno1", "call-no", "");
    caller.send(&inv).await.unwrap();
    let first = recv(&caller).await;
    assert!(first.starts_with("SIP/2.0 608 Rejected\r\n"), "{first}");
    assert_eq!(
        header(&first, "reason"),
        vec!["SIP;cause=608;text=\"IYS no_consent\""]
    );
    let to = header(&first, "to")[0].to_string();
    let tag = to
        .split_once(";tag=")
        .expect("the gate's To tag")
        .1
        .to_string();
    // The retransmission gets the identical answer.
    caller.send(&inv).await.unwrap();
    let second = recv(&caller).await;
    assert_eq!(first, second, "identical answers to a retransmission");
    // Its ACK is absorbed; a CANCEL is answered 200.
    caller
        .send(&ack_or_cancel(
            p,
            "ACK",
            UNKNOWN,
            "z9hG4bKno1",
            "call-no",
            &format!(";tag={tag}"),
        ))
        .await
        .unwrap();
    caller
        .send(&ack_or_cancel(
            p,
            "CANCEL",
            UNKNOWN,
            "z9hG4bKno1",
            "call-no",
            "",
        ))
        .await
        .unwrap();
    let cancel = recv(&caller).await;
    assert!(
        cancel.starts_with("SIP/2.0 200 OK\r\n") && cancel.contains("CSeq: 1 CANCEL"),
        "{cancel}"
    );
    nothing(
        &far,
        "a refused call, its ACK and its CANCEL never reach the far end",
    )
    .await;
    assert!(
        g.metric("iys_gate_sip_retransmissions_absorbed_total")
            .await
            >= 1.0
    );
    assert!(g.metric("iys_gate_sip_acks_absorbed_total").await >= 1.0);

    // Withdrawn: 608 naming the reason.
    caller
        .send(&invite(p, WITHDRAWN, "z9hG4bKw1", "call-w", ""))
        .await
        .unwrap();
    let w = recv(&caller).await;
    assert_eq!(
        header(&w, "reason"),
        vec!["SIP;cause=608;text=\"IYS withdrawn\""],
        "{w}"
    );

    // Informational calls pass whatever the consent.
    caller
        .send(&invite(
            p,
            UNKNOWN,
            "z9hG4bKinf",
            "call-inf",
            "X-IYS-Message-Type: 0\r\n",
        ))
        .await
        .unwrap();
    let got = recv(&far).await;
    assert!(got.contains("Call-ID: call-inf"), "{got}");

    // An İYS brand the trunk may not name: 400 with a Warning saying why.
    caller
        .send(&invite(
            p,
            CONSENTED,
            "z9hG4bKbad",
            "call-bad",
            "X-IYS-Brand-Code: 999\r\n",
        ))
        .await
        .unwrap();
    let bad = recv(&caller).await;
    assert!(bad.starts_with("SIP/2.0 400 Bad Request\r\n"), "{bad}");
    assert!(
        header(&bad, "warning")[0].contains("X-IYS-Brand-Code 999"),
        "{bad}"
    );

    // Max-Forwards 0: 483, not forwarded.
    caller
        .send(&invite(
            p,
            CONSENTED,
            "z9hG4bKmf0",
            "call-mf0",
            "Max-Forwards: 0\r\n",
        ))
        .await
        .unwrap();
    let hops = recv(&caller).await;
    assert!(hops.starts_with("SIP/2.0 483 Too Many Hops\r\n"), "{hops}");

    // Garbage is dropped; the next call is still served. In-dialog requests pass.
    for junk in [
        &b"\x00\x01garbage"[..],
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        &[b'A'; 3000],
    ] {
        caller.send(junk).await.unwrap();
    }
    caller
        .send(&ack_or_cancel(
            p,
            "BYE",
            CONSENTED,
            "z9hG4bKbye",
            "call-ok",
            ";tag=far1",
        ))
        .await
        .unwrap();
    let bye = recv(&far).await;
    assert!(
        bye.starts_with("BYE sip:05300000001@127.0.0.1 SIP/2.0\r\n"),
        "{bye}"
    );
    assert_eq!(header(&bye, "max-forwards"), vec!["69"]);
    nothing(&caller, "garbage gets no answer").await;
    assert!(g.metric("iys_gate_sip_invalid_total").await >= 2.0);
    assert!(g.metric("iys_gate_decisions_total{channel=\"ARAMA\"").await >= 4.0);

    // One audit line per refused call (not per retransmission), masked.
    let lines = g.audit(2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let v = &lines[0];
    assert_eq!(v["protocol"], "sip_proxy");
    assert_eq!(v["channel"], "ARAMA");
    assert_eq!(v["account"], "callcentre");
    assert_eq!(v["reason"], "no_consent");
    let who = v["recipient"].as_str().unwrap();
    assert!(who.contains('*') && !who.contains(UNKNOWN), "{v}");
    assert_eq!(lines[1]["reason"], "withdrawn");
    g.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_answers_302_with_the_original_target_or_the_refusal() {
    let g = gate(9, "mode = \"redirect\"").await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();
    caller
        .send(&invite(p, CONSENTED, "z9hG4bKr1", "r1", ""))
        .await
        .unwrap();
    let ok = recv(&caller).await;
    assert!(ok.starts_with("SIP/2.0 302 Moved Temporarily\r\n"), "{ok}");
    assert_eq!(header(&ok, "contact"), vec!["<sip:05300000001@127.0.0.1>"]);
    caller
        .send(&invite(p, UNKNOWN, "z9hG4bKr2", "r2", ""))
        .await
        .unwrap();
    let no = recv(&caller).await;
    assert!(no.starts_with("SIP/2.0 608 Rejected\r\n"), "{no}");
    caller
        .send(&ack_or_cancel(
            p,
            "OPTIONS",
            CONSENTED,
            "z9hG4bKr3",
            "r3",
            "",
        ))
        .await
        .unwrap();
    let opt = recv(&caller).await;
    assert!(
        opt.starts_with("SIP/2.0 200 OK\r\n") && opt.contains("Allow:"),
        "{opt}"
    );
    g.gate.shutdown().await;
}

// ---------------------------------------------------------------------------
// SIPp.

/// The sipp binary; a clear failure when it is missing.
fn sipp_bin() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("sipp");
        if p.is_file() {
            return p;
        }
    }
    panic!("sipp not found: install sip-tester (bash .ci/run does)");
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/sip")
        .join(name)
        .display()
        .to_string()
}

/// A SIPp far end on `port`: `scenario` is `-sn uas` or a file; it takes
/// `calls` calls and logs every message to `log`.
fn far_end(
    scenario_args: &[&str],
    port: u16,
    tcp: bool,
    calls: u32,
    log: &Path,
) -> tokio::process::Child {
    let mut cmd = Command::new(sipp_bin());
    cmd.args(scenario_args)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &calls.to_string(), "-nostdin", "-trace_msg"])
        .arg("-message_file")
        .arg(log)
        .args(["-timeout", "60", "-timeout_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if tcp {
        cmd.args(["-t", "t1"]);
    }
    cmd.spawn().expect("sipp starts")
}

/// Run a SIPp caller against `target`; its exit status and output.
async fn caller(
    file: &str,
    target: SocketAddr,
    callee: &str,
    msgtype: &str,
    tcp: bool,
    dir: &Path,
) -> (bool, String) {
    caller_from("127.0.0.1", file, target, callee, msgtype, tcp, dir).await
}

/// [`caller`] from local address `ip`.
async fn caller_from(
    ip: &str,
    file: &str,
    target: SocketAddr,
    callee: &str,
    msgtype: &str,
    tcp: bool,
    dir: &Path,
) -> (bool, String) {
    let log = dir.join(format!("uac-{ip}-{file}-{callee}-{msgtype}.log"));
    let mut cmd = Command::new(sipp_bin());
    cmd.arg("-sf")
        .arg(scenario(file))
        .arg(target.to_string())
        .args(["-i", ip, "-s", callee, "-key", "msgtype", msgtype])
        .args(["-m", "1", "-nostdin", "-trace_msg"])
        .arg("-message_file")
        .arg(&log)
        .args(["-timeout", "30", "-timeout_error"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if tcp {
        cmd.args(["-t", "t1"]);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("sipp caller finishes")
        .expect("sipp runs");
    let text = format!(
        "{}{}\n--- messages ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (out.status.success(), text)
}

/// Wait for a SIPp far end to finish its calls; its message log.
async fn far_end_done(mut child: tokio::process::Child, log: &Path) -> String {
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the far end finishes its calls")
        .unwrap();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "far end failed: {status}\n{text}");
    text
}

async fn sipp_through_the_gate(tcp: bool) {
    sipp_bin();
    let far_port = free_port();
    let g = gate(far_port, "").await;
    let target = if tcp { g.tcp } else { g.udp };
    let dir = g.dir.path().to_path_buf();

    // One far end for four calls: the consented one, the informational one,
    // and nothing of the refused ones.
    let log = dir.join("uas.log");
    let uas = far_end(&["-sn", "uas"], far_port, tcp, 2, &log);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (callee, why) in [(UNKNOWN, "no_consent"), (WITHDRAWN, "withdrawn")] {
        let (ok, out) = caller("uac_refused.xml", target, callee, "11", tcp, &dir).await;
        assert!(ok, "{callee}: 608 expected\n{out}");
        assert!(out.contains(&format!("text=\"IYS {why}\"")), "{out}");
    }
    let (ok, out) = caller("uac_call.xml", target, CONSENTED, "11", tcp, &dir).await;
    assert!(ok, "the consented call completes\n{out}");
    let (ok, out) = caller("uac_call.xml", target, UNKNOWN, "0", tcp, &dir).await;
    assert!(ok, "an informational call passes\n{out}");
    let seen = far_end_done(uas, &log).await;
    assert!(
        !seen.contains(WITHDRAWN),
        "a refused call reached the far end:\n{seen}"
    );
    assert_eq!(
        seen.matches("INVITE sip:05300000009@").count(),
        1,
        "only the informational call to {UNKNOWN}:\n{seen}"
    );
    assert!(seen.contains("INVITE sip:05300000001@"), "{seen}");
    assert!(
        seen.contains("x-test-keep: KeepCase-123"),
        "headers as the caller wrote them:\n{seen}"
    );
    assert!(seen.contains("a=rtpmap:0 PCMU/8000"), "the body:\n{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("x-iys-"),
        "İYS headers cut:\n{seen}"
    );
    assert!(seen.contains("BYE sip:05300000001@"), "{seen}");
    let gate_via = if tcp {
        "Via: SIP/2.0/TCP 127.0.0.1:"
    } else {
        "Via: SIP/2.0/UDP 127.0.0.1:"
    };
    assert!(
        seen.contains(gate_via) && seen.contains("branch=z9hG4bKiys"),
        "the gate's Via on top:\n{seen}"
    );

    // OPTIONS passes.
    let log = dir.join("uas-options.log");
    let uas = far_end(
        &["-sf", &scenario("uas_options.xml")],
        far_port,
        tcp,
        1,
        &log,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = caller("uac_options.xml", target, CONSENTED, "11", tcp, &dir).await;
    assert!(ok, "OPTIONS through the gate\n{out}");
    far_end_done(uas, &log).await;

    // CANCEL during ringing.
    let log = dir.join("uas-cancel.log");
    let uas = far_end(
        &["-sf", &scenario("uas_cancel.xml")],
        far_port,
        tcp,
        1,
        &log,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = caller("uac_cancel.xml", target, CONSENTED, "11", tcp, &dir).await;
    assert!(ok, "CANCEL through the gate\n{out}");
    far_end_done(uas, &log).await;

    assert!(g.metric("iys_gate_sip_acks_absorbed_total").await >= 2.0);
    g.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_calls_through_the_gate_over_udp() {
    sipp_through_the_gate(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_calls_through_the_gate_over_tcp() {
    sipp_through_the_gate(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_from_no_trunk_is_refused_403_and_counted() {
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = gate_for(far.local_addr().unwrap().port(), "", "10.9.9.0/24").await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();
    caller
        .send(&invite(p, CONSENTED, "z9hG4bKu1", "u1", ""))
        .await
        .unwrap();
    let got = recv(&caller).await;
    assert!(got.starts_with("SIP/2.0 403 Forbidden\r\n"), "{got}");
    assert_eq!(
        header(&got, "reason"),
        vec!["SIP;cause=403;text=\"IYS unmatched\""]
    );
    nothing(&far, "an unmatched call").await;
    assert!(g.metric("iys_gate_sip_unmatched_total").await >= 1.0);
    g.gate.shutdown().await;
}

/// RFC 3261 §18.1.1: a UDP request that leaves larger than 1300 bytes goes
/// over TCP; its response comes back on that connection and goes on to the
/// caller over UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_udp_request_goes_on_over_tcp() {
    use iys_gate::sip::codec::{frame, Frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let far_port = free_port();
    let far = tokio::net::TcpListener::bind(("127.0.0.1", far_port))
        .await
        .unwrap();
    let g = gate(far_port, "").await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();
    let big = format!("X-Padding: {}\r\n", "p".repeat(1400));
    caller
        .send(&invite(p, CONSENTED, "z9hG4bKbig", "big", &big))
        .await
        .unwrap();
    let (mut conn, _) = tokio::time::timeout(WAIT, far.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = Vec::new();
    let n = loop {
        if let Frame::Message(n) = frame(&buf, 65535).unwrap() {
            break n;
        }
        let mut chunk = [0u8; 4096];
        let k = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(k > 0, "connection closed");
        buf.extend_from_slice(&chunk[..k]);
    };
    let got = String::from_utf8(buf[..n].to_vec()).unwrap();
    let vias = header(&got, "via");
    assert!(vias[0].starts_with("SIP/2.0/TCP 127.0.0.1:"), "{got}");
    assert!(got.contains(&big), "{got}");
    let ok = got
        .replacen(
            &format!("INVITE sip:{CONSENTED}@127.0.0.1 SIP/2.0"),
            "SIP/2.0 200 OK",
            1,
        )
        .replace(
            "To: <sip:05300000001@127.0.0.1>",
            "To: <sip:05300000001@127.0.0.1>;tag=far",
        );
    conn.write_all(ok.as_bytes()).await.unwrap();
    let back = recv(&caller).await;
    assert!(back.starts_with("SIP/2.0 200 OK\r\n"), "{back}");
    assert_eq!(header(&back, "via").len(), 1, "{back}");
    g.gate.shutdown().await;
}

/// Random datagrams, truncated and oversized messages, TCP garbage and a
/// slow TCP sender leave both listeners up and serving other calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_leaves_both_listeners_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = gate(far.local_addr().unwrap().port(), "max_message_size = 4096").await;
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    junk.connect(g.udp).await.unwrap();
    let jp = junk.local_addr().unwrap().port();
    let good = invite(jp, UNKNOWN, "z9hG4bKg", "g", "");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..600 {
        let r = next();
        let d: Vec<u8> = match i % 3 {
            0 => (0..(r % 1500) as usize).map(|_| next() as u8).collect(),
            1 => good[..(r as usize % good.len())].to_vec(),
            _ => {
                let mut b = good.clone();
                let at = r as usize % b.len();
                b[at] = (r >> 32) as u8;
                b
            }
        };
        let _ = junk.send(&d).await;
    }
    let oversized = invite(
        jp,
        UNKNOWN,
        "z9hG4bKo",
        "o",
        &format!("X-Big: {}\r\n", "b".repeat(5000)),
    );
    junk.send(&oversized).await.unwrap();

    // TCP: garbage, an endless header, and a slow sender.
    let mut bad = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    bad.write_all(&[0xff; 3000]).await.unwrap();
    let mut endless = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    endless
        .write_all(b"INVITE sip:x@y SIP/2.0\r\nX: ")
        .await
        .unwrap();
    endless.write_all(&[b'a'; 8000]).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    let slow_invite = String::from_utf8(invite(9, UNKNOWN, "z9hG4bKslow", "slow", ""))
        .unwrap()
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    slow.write_all(&slow_invite.as_bytes()[..40]).await.unwrap();

    // Meanwhile: a consented call over UDP is forwarded, a refused one over TCP answered.
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();
    caller
        .send(&invite(p, CONSENTED, "z9hG4bKafter", "after", ""))
        .await
        .unwrap();
    let mut fwd = recv(&far).await;
    while !fwd.contains("Call-ID: after") {
        fwd = recv(&far).await; // mutated copies of the good INVITE may pass too
    }
    let mut t = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    let tcp_invite = String::from_utf8(invite(9, WITHDRAWN, "z9hG4bKtcp", "tcp", ""))
        .unwrap()
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    t.write_all(tcp_invite.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, t.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("SIP/2.0 608 Rejected\r\n"), "{answer}");

    // The slow sender finishes its message a byte at a time and is answered.
    for b in &slow_invite.as_bytes()[40..] {
        slow.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let n = tokio::time::timeout(WAIT, slow.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 608 Rejected\r\n"));
    // The broken streams were closed by the gate.
    for s in [&mut bad, &mut endless] {
        let r = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "a broken stream is closed");
    }
    assert!(g.metric("iys_gate_sip_invalid_total").await >= 100.0);
    g.gate.shutdown().await;
}

// ---------------------------------------------------------------------------
// Kamailio in front of the gate.

/// Kamailio from a test folder, with the repository's config and defines.
struct Kamailio(std::process::Child);

impl Drop for Kamailio {
    /// SIGTERM: Kamailio's main process then stops its children (SIGKILL
    /// would leave them running).
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kamailio(cfg: &str, defines: &[String], dir: &Path) -> Kamailio {
    let bin = ["/usr/sbin/kamailio", "/usr/bin/kamailio"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("kamailio not found: install kamailio (bash .ci/run does)");
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("-f")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/kamailio")
                .join(cfg),
        )
        .args(["-DD", "-E", "-m", "64", "-M", "8"])
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(dir);
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    let log = std::fs::File::create(dir.join(format!("{cfg}.log"))).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    Kamailio(cmd.spawn().expect("kamailio starts"))
}

/// SIPp caller -> Kamailio -> gate -> SIPp callee, Kamailio in `cfg`, every
/// hop over TCP when `tcp`.
async fn kamailio_in_front(cfg: &str, mode: &str, tcp: bool) {
    sipp_bin();
    let far_port = free_port();
    let kam_port = free_port();
    let g = gate(far_port, &format!("mode = \"{mode}\"")).await;
    let dir = g.dir.path().to_path_buf();
    let (proto, param) = if tcp {
        ("tcp", ";transport=tcp")
    } else {
        ("udp", "")
    };
    let gate_port = if tcp { g.tcp.port() } else { g.udp.port() };
    let defines = match cfg {
        "forward.cfg" => vec![
            format!("LISTEN={proto}:127.0.0.1:{kam_port}"),
            "NEXT_IP=\"127.0.0.1\"".to_string(),
            format!("NEXT_PORT={gate_port}"),
        ],
        _ => vec![
            format!("LISTEN={proto}:127.0.0.1:{kam_port}"),
            format!("GATE=\"sip:127.0.0.1:{gate_port}{param}\""),
            format!("NEXT_HOP=\"sip:127.0.0.1:{far_port}{param}\""),
        ],
    };
    let _kam = kamailio(cfg, &defines, &dir);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target: SocketAddr = format!("127.0.0.1:{kam_port}").parse().unwrap();
    let log = dir.join("uas-kam.log");
    let uas = far_end(&["-sn", "uas"], far_port, tcp, 1, &log);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (callee, why) in [(UNKNOWN, "no_consent"), (WITHDRAWN, "withdrawn")] {
        let (ok, out) = caller("uac_refused.xml", target, callee, "11", tcp, &dir).await;
        let kam_log = std::fs::read_to_string(dir.join(format!("{cfg}.log"))).unwrap_or_default();
        assert!(
            ok,
            "{cfg}: {callee}: 608 expected\n{out}\n--- kamailio ---\n{kam_log}"
        );
        assert!(out.contains(&format!("text=\"IYS {why}\"")), "{out}");
    }
    let (ok, out) = caller("uac_call.xml", target, CONSENTED, "11", tcp, &dir).await;
    let kam_log = std::fs::read_to_string(dir.join(format!("{cfg}.log"))).unwrap_or_default();
    assert!(
        ok,
        "{cfg}: the consented call completes\n{out}\n--- kamailio ---\n{kam_log}"
    );
    let seen = far_end_done(uas, &log).await;
    assert!(
        !seen.contains(UNKNOWN) && !seen.contains(WITHDRAWN),
        "a refused call reached the far end:\n{seen}"
    );
    if mode == "redirect" {
        assert!(g.metric("iys_gate_sip_answers_total{code=\"302\"}").await >= 1.0);
    } else {
        // Kamailio's Via under the gate's: the call went through both.
        let via = format!("Via: SIP/2.0/{} 127.0.0.1:{kam_port}", proto.to_uppercase());
        assert!(seen.contains(&via), "{via} expected:\n{seen}");
    }
    if tcp {
        assert!(
            g.metric("iys_gate_sip_messages_total{message=\"INVITE\"}")
                .await
                >= 3.0,
            "the INVITEs reached the gate"
        );
        assert!(
            seen.contains("Via: SIP/2.0/TCP"),
            "the far end got the call over TCP:\n{seen}"
        );
    }
    assert!(seen.contains("x-test-keep: KeepCase-123"), "{seen}");
    g.gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_proxying_through_the_gate() {
    kamailio_in_front("forward.cfg", "proxy", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_proxying_through_the_gate_over_tcp() {
    kamailio_in_front("forward.cfg", "proxy", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_dipping_into_the_gate_in_redirect_mode() {
    kamailio_in_front("dip-redirect.cfg", "redirect", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_dipping_into_the_gate_in_redirect_mode_over_tcp() {
    kamailio_in_front("dip-redirect.cfg", "redirect", true).await;
}

/// deploy/kamailio/http-check.cfg: Kamailio asks the gate's `GET /v1/check`
/// (with a read token) per initial INVITE: refused calls get 608 with the
/// İYS reason and never reach the callee, a consented and an informational
/// call complete with the X-IYS-* headers removed; with a wrong token every
/// call gets 503 (cannot ask: try another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_asking_the_http_check() {
    sipp_bin();
    let http_client = "/usr/lib/x86_64-linux-gnu/kamailio/modules/http_client.so";
    assert!(
        Path::new(http_client).is_file(),
        "{http_client} missing: install kamailio-utils-modules (bash .ci/run does)"
    );
    let far_port = free_port();
    let kam_port = free_port();
    let token = "read-token-0123456789abcdef";
    let g = gate(
        9,
        &format!("[[admin.tokens]]\nname = \"kamailio\"\ntoken = \"{token}\"\nrole = \"read\"\n"),
    )
    .await;
    let dir = g.dir.path().to_path_buf();
    let defines = |token: &str| {
        vec![
            format!("LISTEN=udp:127.0.0.1:{kam_port}"),
            format!("CHECK_URL=\"http://{}/v1/check\"", g.gate.admin_addr),
            format!("BRAND_QUERY=\"iys_code={IYS}&brand_code={BRAND}\""),
            format!("AUTH_HEADER=\"Authorization: Bearer {token}\""),
            format!("NEXT_HOP=\"sip:127.0.0.1:{far_port}\""),
        ]
    };
    let kam = kamailio("http-check.cfg", &defines(token), &dir);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target: SocketAddr = format!("127.0.0.1:{kam_port}").parse().unwrap();
    let log = dir.join("uas-http.log");
    let uas = far_end(&["-sn", "uas"], far_port, false, 2, &log);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kam_log = || std::fs::read_to_string(dir.join("http-check.cfg.log")).unwrap_or_default();
    for (callee, why) in [(UNKNOWN, "no_consent"), (WITHDRAWN, "withdrawn")] {
        let (ok, out) = caller("uac_refused.xml", target, callee, "11", false, &dir).await;
        assert!(
            ok,
            "{callee}: 608 expected\n{out}\n--- kamailio ---\n{}",
            kam_log()
        );
        assert!(out.contains(&format!("text=\"IYS {why}\"")), "{out}");
    }
    let (ok, out) = caller("uac_call.xml", target, CONSENTED, "11", false, &dir).await;
    assert!(
        ok,
        "the consented call completes\n{out}\n--- kamailio ---\n{}",
        kam_log()
    );
    let (ok, out) = caller("uac_call.xml", target, UNKNOWN, "0", false, &dir).await;
    assert!(ok, "an informational call completes\n{out}");
    let seen = far_end_done(uas, &log).await;
    assert!(!seen.contains(WITHDRAWN), "{seen}");
    assert_eq!(
        seen.matches(&format!("INVITE sip:{UNKNOWN}@")).count(),
        1,
        "only the informational call to {UNKNOWN}:\n{seen}"
    );
    assert!(seen.contains(&format!("INVITE sip:{CONSENTED}@")), "{seen}");
    assert!(!seen.to_ascii_lowercase().contains("x-iys-"), "{seen}");
    assert!(
        g.metric("iys_gate_decisions_total{channel=\"ARAMA\"").await >= 4.0,
        "the checks were the gate's decisions"
    );
    drop(kam);

    // A wrong token: the gate refuses the check, Kamailio answers 503.
    let _kam = kamailio(
        "http-check.cfg",
        &defines("wrong-token-0123456789abcdef"),
        &dir,
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, out) = caller("uac_call.xml", target, CONSENTED, "11", false, &dir).await;
    assert!(!ok, "no call without an answer from the gate\n{out}");
    assert!(out.contains("SIP/2.0 503 Service Unavailable"), "{out}");
    assert!(out.contains("Retry-After: 30"), "{out}");
    g.gate.shutdown().await;
}

/// SIPp retransmitting for real: a relay between SIPp and the gate loses the
/// first 608 of every call, SIPp retransmits its INVITE (timer A), and the
/// gate answers the retransmission with the identical bytes from its
/// transaction cache; the ACK is absorbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_retransmissions_get_identical_answers() {
    sipp_bin();
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = gate(far.local_addr().unwrap().port(), "").await;
    let relay = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let relay_addr = relay.local_addr().unwrap();
    let gate_addr = g.udp;
    let answers: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = answers.clone();
    let r = relay.clone();
    let task = tokio::spawn(async move {
        let mut sipp: Option<SocketAddr> = None;
        let mut lost = std::collections::HashSet::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = r.recv_from(&mut buf).await else {
                return;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if from == gate_addr {
                let call = header(&msg, "call-id").first().map(|s| s.to_string());
                if msg.starts_with("SIP/2.0 608") {
                    seen.lock().unwrap().push(msg.clone());
                    if lost.insert(call) {
                        continue; // the first 608 of each call is lost
                    }
                }
                if let Some(s) = sipp {
                    let _ = r.send_to(&buf[..n], s).await;
                }
            } else {
                sipp = Some(from);
                let _ = r.send_to(&buf[..n], gate_addr).await;
            }
        }
    });
    let dir = g.dir.path().to_path_buf();
    let mut cmd = Command::new(sipp_bin());
    cmd.arg("-sf")
        .arg(scenario("uac_refused.xml"))
        .arg(relay_addr.to_string())
        .args(["-i", "127.0.0.1", "-s", UNKNOWN, "-key", "msgtype", "11"])
        .args(["-m", "3", "-r", "3", "-nostdin", "-trace_stat", "-fd", "1"])
        .arg("-stf")
        .arg(dir.join("retrans.csv"))
        .args(["-timeout", "30", "-timeout_error"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    task.abort();
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 6, "two 608s per call: {answers:#?}");
    let mut by_call: std::collections::HashMap<String, Vec<&String>> = Default::default();
    for a in &answers {
        by_call
            .entry(header(a, "call-id")[0].to_string())
            .or_default()
            .push(a);
    }
    assert_eq!(by_call.len(), 3, "{answers:#?}");
    for pair in by_call.values() {
        assert_eq!(pair.len(), 2);
        assert_eq!(
            pair[0], pair[1],
            "a retransmission gets the identical answer"
        );
    }
    let stats = std::fs::read_to_string(dir.join("retrans.csv")).unwrap();
    let (head, last) = (stats.lines().next().unwrap(), stats.lines().last().unwrap());
    let col = head
        .split(';')
        .position(|c| c == "Retransmissions(C)")
        .unwrap();
    let retrans: u64 = last.split(';').nth(col).unwrap().parse().unwrap();
    assert!(retrans >= 3, "SIPp retransmitted each INVITE: {retrans}");
    assert!(
        g.metric("iys_gate_sip_retransmissions_absorbed_total")
            .await
            >= 3.0
    );
    nothing(&far, "refused calls").await;
    g.gate.shutdown().await;
}

// ---------------------------------------------------------------------------
// Configured answers, trunks and TCP limits.

/// `[sip.answers]` per reason: 403 for no consent, 603 for withdrawn, each
/// with the configured Call-Info; the 400 for a bad İYS header carries none.
/// Forwarded INVITEs are not remembered as answers: a retransmission and its
/// CANCEL leave with the same gate branch (§16.11), and requests the gate does
/// not judge (re-INVITE, REGISTER, unknown methods) pass even to a number
/// without consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_reason_codes_call_info_and_unjudged_requests() {
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let info = "<https://iys.example/itiraz>;purpose=info";
    let g = gate(
        far.local_addr().unwrap().port(),
        &format!("[sip.answers]\nno_consent = 403\nwithdrawn = 603\ncall_info = \"{info}\""),
    )
    .await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();

    caller
        .send(&invite(p, UNKNOWN, "z9hG4bKc1", "c1", ""))
        .await
        .unwrap();
    let no = recv(&caller).await;
    assert!(no.starts_with("SIP/2.0 403 Forbidden\r\n"), "{no}");
    assert_eq!(
        header(&no, "reason"),
        vec!["SIP;cause=403;text=\"IYS no_consent\""]
    );
    assert_eq!(header(&no, "call-info"), vec![info], "{no}");
    caller
        .send(&invite(p, WITHDRAWN, "z9hG4bKc2", "c2", ""))
        .await
        .unwrap();
    let w = recv(&caller).await;
    assert!(w.starts_with("SIP/2.0 603 Decline\r\n"), "{w}");
    assert_eq!(
        header(&w, "reason"),
        vec!["SIP;cause=603;text=\"IYS withdrawn\""]
    );
    assert_eq!(header(&w, "call-info"), vec![info], "{w}");
    caller
        .send(&invite(
            p,
            CONSENTED,
            "z9hG4bKc3",
            "c3",
            "X-IYS-Message-Type: 7\r\n",
        ))
        .await
        .unwrap();
    let bad = recv(&caller).await;
    assert!(bad.starts_with("SIP/2.0 400 Bad Request\r\n"), "{bad}");
    assert!(header(&bad, "call-info").is_empty(), "not a refusal: {bad}");
    nothing(&far, "refused calls").await;
    assert!(g.metric("iys_gate_sip_answers_total{code=\"403\"}").await >= 1.0);
    assert!(g.metric("iys_gate_sip_answers_total{code=\"603\"}").await >= 1.0);

    // A forwarded INVITE, its retransmission and its CANCEL: one gate branch.
    let inv = invite(p, CONSENTED, "z9hG4bKfw", "fw", "");
    caller.send(&inv).await.unwrap();
    let first = recv(&far).await;
    caller.send(&inv).await.unwrap();
    let again = recv(&far).await;
    caller
        .send(&ack_or_cancel(
            p,
            "CANCEL",
            CONSENTED,
            "z9hG4bKfw",
            "fw",
            "",
        ))
        .await
        .unwrap();
    let cancel = recv(&far).await;
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    let top = |m: &str| header(m, "via")[0].to_string();
    assert!(top(&first).contains("branch=z9hG4bKiys"), "{first}");
    assert_eq!(top(&first), top(&again), "a retransmission: same branch");
    assert_eq!(top(&first), top(&cancel), "its CANCEL: same branch");
    assert_eq!(first, again, "a retransmission is forwarded as the first");
    // A different transaction gets a different branch.
    caller
        .send(&invite(p, CONSENTED, "z9hG4bKfw2", "fw2", ""))
        .await
        .unwrap();
    assert_ne!(top(&recv(&far).await), top(&first));

    // Not judged: a re-INVITE (To tag), REGISTER and an unknown method pass
    // to a number without consent.
    let reinvite = String::from_utf8(invite(p, UNKNOWN, "z9hG4bKre", "dialog", ""))
        .unwrap()
        .replace(
            &format!("To: <sip:{UNKNOWN}@127.0.0.1>"),
            &format!("To: <sip:{UNKNOWN}@127.0.0.1>;tag=far9"),
        );
    caller.send(reinvite.as_bytes()).await.unwrap();
    let got = recv(&far).await;
    assert!(
        got.starts_with(&format!("INVITE sip:{UNKNOWN}@127.0.0.1 SIP/2.0\r\n"))
            && got.contains("tag=far9"),
        "{got}"
    );
    for method in ["REGISTER", "PUBLISH", "FOO"] {
        caller
            .send(&ack_or_cancel(p, method, UNKNOWN, "z9hG4bKm", method, ""))
            .await
            .unwrap();
        let got = recv(&far).await;
        assert!(got.starts_with(&format!("{method} ")), "{method}: {got}");
    }
    nothing(&caller, "the gate answered none of these itself").await;

    // The added latency, in buckets from 5 µs, per path.
    let text = reqwest::get(format!("http://{}/metrics", g.gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE iys_gate_sip_added_latency_seconds histogram"),
        "{text}"
    );
    for path in ["request", "answer"] {
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "iys_gate_sip_added_latency_seconds_bucket{{path=\"{path}\""
                ))
            })
            .collect();
        assert!(buckets.len() >= 17, "{path}: {buckets:#?}");
        assert!(
            buckets.iter().any(|l| l.contains("le=\"0.000005\"")),
            "a 5 µs bucket: {buckets:#?}"
        );
        let count = g
            .metric(&format!(
                "iys_gate_sip_added_latency_seconds_count{{path=\"{path}\"}}"
            ))
            .await;
        assert!(count >= 3.0, "{path}: {count}");
    }
    g.gate.shutdown().await;
}

/// "Cannot decide now" (here: data older than `max_data_age`): `503` with
/// `Retry-After` by default, `480` without it when configured; neither call
/// reaches the far end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cannot_decide_gets_503_with_retry_after_or_480() {
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hop = far.local_addr().unwrap().port();
    let trunk = format!(
        "[[sip.trunks]]\nname = \"t\"\nnetworks = [\"127.0.0.1\"]\niys_code = {IYS}\nbrand_code = {BRAND}\n"
    );
    let g503 = gate_with(
        &format!("next_hop = \"127.0.0.1:{hop}\"\n[sip.answers]\nretry_after = 45\n{trunk}"),
        "1s",
    )
    .await;
    let g480 = gate_with(
        &format!("next_hop = \"127.0.0.1:{hop}\"\n[sip.answers]\ndefer = 480\n{trunk}"),
        "1s",
    )
    .await;
    // Let the bootstrap data grow older than a second.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = caller.local_addr().unwrap().port();
    caller
        .send_to(&invite(p, CONSENTED, "z9hG4bKd1", "d1", ""), g503.udp)
        .await
        .unwrap();
    let a = recv(&caller).await;
    assert!(a.starts_with("SIP/2.0 503 Service Unavailable\r\n"), "{a}");
    assert_eq!(header(&a, "retry-after"), vec!["45"], "{a}");
    assert_eq!(
        header(&a, "reason"),
        vec!["SIP;cause=503;text=\"IYS stale\""]
    );
    caller
        .send_to(&invite(p, CONSENTED, "z9hG4bKd2", "d2", ""), g480.udp)
        .await
        .unwrap();
    let b = recv(&caller).await;
    assert!(
        b.starts_with("SIP/2.0 480 Temporarily Unavailable\r\n"),
        "{b}"
    );
    assert!(header(&b, "retry-after").is_empty(), "{b}");
    assert_eq!(
        header(&b, "reason"),
        vec!["SIP;cause=480;text=\"IYS stale\""]
    );
    // Informational calls need no data: they still pass.
    caller
        .send_to(
            &invite(p, UNKNOWN, "z9hG4bKd3", "d3", "X-IYS-Message-Type: 0\r\n"),
            g480.udp,
        )
        .await
        .unwrap();
    let got = recv(&far).await;
    assert!(got.contains("Call-ID: d3"), "{got}");
    nothing(&far, "deferred calls").await;
    g503.gate.shutdown().await;
    g480.gate.shutdown().await;
}

/// Two trunks, each with its own next hop (two SIPp callees): a call from
/// 127.0.0.1 completes on the first trunk's callee, one from 127.0.0.2 on
/// the second's, and neither callee sees the other's call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trunk_reaches_its_own_next_hop() {
    sipp_bin();
    let (port_a, port_b) = (free_port(), free_port());
    let trunk = |name: &str, net: &str, port: u16| {
        format!(
            "[[sip.trunks]]\nname = \"{name}\"\nnetworks = [\"{net}\"]\niys_code = {IYS}\n\
             brand_code = {BRAND}\nnext_hop = \"127.0.0.1:{port}\"\n"
        )
    };
    let g = gate_with(
        &format!(
            "{}{}",
            trunk("a", "127.0.0.1/32", port_a),
            trunk("b", "127.0.0.2/32", port_b)
        ),
        "1h",
    )
    .await;
    let dir = g.dir.path().to_path_buf();
    let (log_a, log_b) = (dir.join("uas-a.log"), dir.join("uas-b.log"));
    let uas_a = far_end(&["-sn", "uas"], port_a, false, 1, &log_a);
    let uas_b = far_end(&["-sn", "uas"], port_b, false, 1, &log_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = caller_from(
        "127.0.0.1",
        "uac_call.xml",
        g.udp,
        CONSENTED,
        "11",
        false,
        &dir,
    )
    .await;
    assert!(ok, "trunk a's call completes\n{out}");
    let (ok, out) = caller_from(
        "127.0.0.2",
        "uac_call.xml",
        g.udp,
        CONSENTED,
        "11",
        false,
        &dir,
    )
    .await;
    assert!(ok, "trunk b's call completes\n{out}");
    let (seen_a, seen_b) = (
        far_end_done(uas_a, &log_a).await,
        far_end_done(uas_b, &log_b).await,
    );
    // The caller's Via (under the gate's) names the caller's address.
    assert!(
        seen_a.contains("Via: SIP/2.0/UDP 127.0.0.1:") && !seen_a.contains("127.0.0.2"),
        "trunk a's callee:\n{seen_a}"
    );
    assert!(
        seen_b.contains("Via: SIP/2.0/UDP 127.0.0.2:"),
        "trunk b's callee:\n{seen_b}"
    );
    assert_eq!(seen_a.matches("INVITE sip:").count(), 1, "{seen_a}");
    assert_eq!(seen_b.matches("INVITE sip:").count(), 1, "{seen_b}");
    let audit_free = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    assert!(audit_free.is_empty(), "no refusal: {audit_free}");
    g.gate.shutdown().await;
}

/// Reads from `s` until the gate closes it (EOF or reset); panics after `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!("the gate did not close the connection within {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// `max_connections`: a connection past the limit is closed at once (and
/// counted); `idle_timeout`: a quiet connection is closed after it, not
/// before; then new connections are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connection_limit_and_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let g = gate(
        far.local_addr().unwrap().port(),
        "max_connections = 2\nidle_timeout = \"2s\"",
    )
    .await;
    let tcp_invite = |call: &str| {
        String::from_utf8(invite(9, UNKNOWN, &format!("z9hG4bK{call}"), call, ""))
            .unwrap()
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
    };
    async fn refused(s: &mut tokio::net::TcpStream, msg: &str) {
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        let a = String::from_utf8_lossy(&buf[..n]);
        assert!(a.starts_with("SIP/2.0 608 Rejected\r\n"), "{a}");
    }
    let mut c1 = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    refused(&mut c1, &tcp_invite("t1")).await;
    let mut c2 = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    refused(&mut c2, &tcp_invite("t2")).await;
    let active = std::time::Instant::now();

    // A third is one too many.
    let mut c3 = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    let _ = c3.write_all(tcp_invite("t3").as_bytes()).await;
    closed_within(&mut c3, WAIT).await;
    assert!(
        g.metric("iys_gate_sip_forward_errors_total{reason=\"too_many_connections\"}")
            .await
            >= 1.0
    );

    // The first two are closed once idle for 2 s.
    closed_within(&mut c1, WAIT).await;
    closed_within(&mut c2, WAIT).await;
    let idle = active.elapsed();
    assert!(
        idle >= Duration::from_millis(1900),
        "closed after {idle:?}, before the idle timeout"
    );
    // Room again.
    let mut c4 = tokio::net::TcpStream::connect(g.tcp).await.unwrap();
    refused(&mut c4, &tcp_invite("t4")).await;
    g.gate.shutdown().await;
}

/// A response whose next Via names a host (and has no `received`) goes to
/// the name's address (looked up once, then cached); a name that does not
/// resolve drops the response and is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_to_a_via_host_name_are_resolved() {
    let g = gate(9, "").await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = caller.local_addr().unwrap().port();
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ringing = |host: &str, call: &str| {
        format!(
            "SIP/2.0 180 Ringing\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bKiys0123456789abcdef\r\n\
             Via: SIP/2.0/UDP {host}:{p};branch=z9hG4bKcaller\r\n\
             From: <sip:05320000000@example.net>;tag=a\r\n\
             To: <sip:{CONSENTED}@example.net>;tag=b\r\n\
             Call-ID: {call}\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
            g.udp.port()
        )
    };
    for call in ["named-1", "named-2"] {
        far.send_to(ringing("localhost", call).as_bytes(), g.udp)
            .await
            .unwrap();
        let got = recv(&caller).await;
        assert!(got.starts_with("SIP/2.0 180 Ringing\r\n"), "{got}");
        assert!(got.contains(&format!("Call-ID: {call}")), "{got}");
        assert_eq!(
            header(&got, "via"),
            vec![format!("SIP/2.0/UDP localhost:{p};branch=z9hG4bKcaller")]
        );
    }
    let before = g
        .metric("iys_gate_sip_forward_errors_total{reason=\"resolve\"}")
        .await;
    far.send_to(ringing("no-such-host.invalid", "named-3").as_bytes(), g.udp)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while g
        .metric("iys_gate_sip_forward_errors_total{reason=\"resolve\"}")
        .await
        <= before
    {
        assert!(
            std::time::Instant::now() < deadline,
            "an unresolvable Via host is counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nothing(&caller, "a response to a name that does not resolve").await;
    g.gate.shutdown().await;
}

/// SIP over TLS (`[sip.tls]`): a rustls caller trusting the gate's
/// self-signed certificate gets a refused call's 608 over TLS; a consented
/// call goes on to the next hop over TCP and its 200 comes back over the
/// caller's TLS connection, the gate's Via cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_over_tls() {
    use iys_gate::sip::codec::{frame, Frame};
    use std::sync::Arc;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let far_port = free_port();
    let far = tokio::net::TcpListener::bind(("127.0.0.1", far_port))
        .await
        .unwrap();
    let g = gate(
        far_port,
        &format!(
            "[sip.tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .await;
    let tls_addr = g.gate.sip_tls_addr.expect("sip_tls listener");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");

    /// One whole SIP message from a stream.
    async fn read_msg<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> String {
        loop {
            if let Frame::Message(n) = frame(buf, 65535).unwrap() {
                let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
                buf.drain(..n);
                return msg;
            }
            let mut chunk = [0u8; 4096];
            let k = tokio::time::timeout(WAIT, s.read(&mut chunk))
                .await
                .expect("a message in time")
                .unwrap();
            assert!(k > 0, "connection closed");
            buf.extend_from_slice(&chunk[..k]);
        }
    }
    let tls_invite = |to: &str, call: &str| {
        String::from_utf8(invite(5061, to, &format!("z9hG4bK{call}"), call, ""))
            .unwrap()
            .replace("SIP/2.0/UDP", "SIP/2.0/TLS")
    };
    let mut from_gate = Vec::new();
    tls.write_all(tls_invite(UNKNOWN, "tls1").as_bytes())
        .await
        .unwrap();
    let no = read_msg(&mut tls, &mut from_gate).await;
    assert!(no.starts_with("SIP/2.0 608 Rejected\r\n"), "{no}");

    tls.write_all(tls_invite(CONSENTED, "tls2").as_bytes())
        .await
        .unwrap();
    let (mut conn, _) = tokio::time::timeout(WAIT, far.accept())
        .await
        .expect("the gate connects to the next hop")
        .unwrap();
    let mut at_far = Vec::new();
    let got = read_msg(&mut conn, &mut at_far).await;
    assert!(got.contains("Call-ID: tls2"), "{got}");
    let vias = header(&got, "via");
    assert!(vias[0].starts_with("SIP/2.0/TCP 127.0.0.1:"), "{got}");
    assert!(vias[1].starts_with("SIP/2.0/TLS 127.0.0.1:5061"), "{got}");
    let ok = got
        .replacen(
            &format!("INVITE sip:{CONSENTED}@127.0.0.1 SIP/2.0"),
            "SIP/2.0 200 OK",
            1,
        )
        .replace(
            &format!("To: <sip:{CONSENTED}@127.0.0.1>"),
            &format!("To: <sip:{CONSENTED}@127.0.0.1>;tag=far"),
        );
    conn.write_all(ok.as_bytes()).await.unwrap();
    let back = read_msg(&mut tls, &mut from_gate).await;
    assert!(back.starts_with("SIP/2.0 200 OK\r\n"), "{back}");
    assert!(back.contains("Call-ID: tls2"), "{back}");
    assert_eq!(header(&back, "via").len(), 1, "the gate's Via cut: {back}");
    g.gate.shutdown().await;
}

/// `[[sip.trunks.callers]]`: a calling number mapped to another of the
/// trunk's brands is judged for that brand (here one the gate holds no data
/// for: 608 unknown_brand), from From or, on a `trusted` trunk, from
/// P-Asserted-Identity; other callers keep the trunk's brand. With
/// `strip_iys_headers = false` the X-IYS-* headers reach the far end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_numbers_mapped_to_brands_and_iys_headers_kept() {
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hop = far.local_addr().unwrap().port();
    let g = gate_with(
        &format!(
            "next_hop = \"127.0.0.1:{hop}\"\nstrip_iys_headers = false\n\
             [[sip.trunks]]\nname = \"t\"\nnetworks = [\"127.0.0.1/32\"]\niys_code = {IYS}\n\
             brand_code = {BRAND}\noverride_brands = [100002]\ntrusted = true\n\
             [[sip.trunks.callers]]\nnumber = \"0532 999 99 99\"\nbrand_code = 100002\n"
        ),
        "1h",
    )
    .await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    caller.connect(g.udp).await.unwrap();
    let p = caller.local_addr().unwrap().port();

    // An unmapped caller: the trunk's brand, consent, forwarded with X-IYS-*.
    caller
        .send(&invite(
            p,
            CONSENTED,
            "z9hG4bKm1",
            "m1",
            "X-IYS-Message-Type: 11\r\n",
        ))
        .await
        .unwrap();
    let got = recv(&far).await;
    assert!(got.contains("Call-ID: m1"), "{got}");
    assert_eq!(header(&got, "x-iys-message-type"), vec!["11"], "{got}");

    // The mapped number in From, then in P-Asserted-Identity.
    let from_mapped = String::from_utf8(invite(p, CONSENTED, "z9hG4bKm2", "m2", ""))
        .unwrap()
        .replace(
            "f: <sip:05320000000@127.0.0.1>",
            "f: <sip:+905329999999@127.0.0.1>",
        );
    let pai_mapped = invite(
        p,
        CONSENTED,
        "z9hG4bKm3",
        "m3",
        "P-Asserted-Identity: <tel:+90-532-999-9999>\r\n",
    );
    for msg in [from_mapped.as_bytes(), &pai_mapped[..]] {
        caller.send(msg).await.unwrap();
        let no = recv(&caller).await;
        assert!(no.starts_with("SIP/2.0 608 Rejected\r\n"), "{no}");
        assert_eq!(
            header(&no, "reason"),
            vec!["SIP;cause=608;text=\"IYS unknown_brand\""],
            "judged for brand 100002: {no}"
        );
    }
    nothing(&far, "calls for the mapped brand").await;
    g.gate.shutdown().await;
}

/// `unmatched = "pass"` forwards a call from no trunk unjudged; `"defer"`
/// answers it with the defer answer (503 + Retry-After, Reason unmatched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_pass_and_defer() {
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hop = far.local_addr().unwrap().port();
    let pass = gate_for(hop, "unmatched = \"pass\"", "10.9.9.0/24").await;
    let defer = gate_for(hop, "unmatched = \"defer\"", "10.9.9.0/24").await;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = caller.local_addr().unwrap().port();
    caller
        .send_to(&invite(p, UNKNOWN, "z9hG4bKp1", "p1", ""), pass.udp)
        .await
        .unwrap();
    let got = recv(&far).await;
    assert!(
        got.contains("Call-ID: p1"),
        "passed unjudged, even without consent: {got}"
    );
    caller
        .send_to(&invite(p, CONSENTED, "z9hG4bKp2", "p2", ""), defer.udp)
        .await
        .unwrap();
    let d = recv(&caller).await;
    assert!(d.starts_with("SIP/2.0 503 Service Unavailable\r\n"), "{d}");
    assert_eq!(header(&d, "retry-after"), vec!["30"]);
    assert_eq!(
        header(&d, "reason"),
        vec!["SIP;cause=503;text=\"IYS unmatched\""]
    );
    nothing(&far, "a deferred call").await;
    pass.gate.shutdown().await;
    defer.gate.shutdown().await;
}

/// A TLS handshake under way counts towards `max_connections`: with room for
/// one, a client that connects and never says hello keeps the next one out
/// until the gate gives up on it (5 s), and is counted as a failed handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_count_towards_max_connections() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let g = gate(
        9,
        &format!(
            "max_connections = 1\n[sip.tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .await;
    let tls_addr = g.gate.sip_tls_addr.expect("sip_tls listener");
    let mut stalled = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut next = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    closed_within(&mut next, Duration::from_secs(3)).await;
    assert!(
        g.metric("iys_gate_sip_forward_errors_total{reason=\"too_many_connections\"}")
            .await
            >= 1.0
    );
    closed_within(&mut stalled, WAIT).await;
    assert!(
        g.metric("iys_gate_sip_invalid_total{field=\"tls_handshake\"}")
            .await
            >= 1.0
    );
    g.gate.shutdown().await;
}
