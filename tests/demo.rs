//! The embedded demo (`iys-gate serve` without --config) as a newcomer meets
//! it: the same config, with every port moved to a free one, runs the SMPP
//! gate, the SMTP policy service and the SMTP hop in front of the in-process
//! sinks, and the SIP gate in front of an answering UAS. One SMS, one mail and
//! one call with consent arrive; the refused ones never do.
//! `iys-gate smpp-send`, which the demo tells newcomers to run, is tested here too.

use std::net::SocketAddr;
use std::time::Duration;

use iys_gate::config::{Config, DEMO_CONFIG};
use iys_gate::serve::{start, RunningGate};
use iys_gate::smpp::tools::send::{send, SendArgs};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

/// The embedded demo config with each `127.0.0.1:PORT` made `127.0.0.1:0`.
fn demo_on_free_ports() -> String {
    let mut out = String::new();
    let mut rest = DEMO_CONFIG;
    while let Some(i) = rest.find("\"127.0.0.1:") {
        let start = i + "\"127.0.0.1:".len();
        out.push_str(&rest[..start]);
        let digits = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(0);
        out.push('0');
        rest = &rest[start + digits..];
    }
    out.push_str(rest);
    out
}

async fn demo() -> RunningGate {
    let text = demo_on_free_ports();
    assert!(!text.contains("\"127.0.0.1:9090\""), "{text}");
    let config = Config::from_toml(&text, "demo on free ports").expect("the demo config");
    start(config).await.expect("the demo starts")
}

fn sms(target: SocketAddr, to: &str) -> SendArgs {
    SendArgs {
        target: target.to_string(),
        system_id: "demo".into(),
        password: "demo".into(),
        to: to.into(),
        from: "DEMO".into(),
        text: format!("demo test to {to}"),
        message_type: None,
        timeout: WAIT,
    }
}

/// A plain SMTP client: one command, one whole reply (its last line).
struct Smtp {
    r: BufReader<TcpStream>,
}

impl Smtp {
    async fn connect(addr: SocketAddr) -> Smtp {
        let s = TcpStream::connect(addr).await.expect("connect to the hop");
        let mut c = Smtp {
            r: BufReader::new(s),
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220"), "{greeting}");
        c
    }

    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.r.read_line(&mut line))
                .await
                .expect("a reply in time")
                .expect("read a reply");
            assert!(n > 0, "the hop closed the connection");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.r
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lets_consented_sms_and_mail_through_and_refuses_the_rest() {
    let gate = demo().await;
    let smsc = gate.demo_sinks.smsc.as_ref().expect("the demo's SMSC sink");
    let smtp = gate.demo_sinks.smtp.as_ref().expect("the demo's SMTP sink");

    // SMS: consented arrives, withdrawn is refused with 0x402 and never arrives.
    let smpp = gate.smpp_addr.expect("the demo's SMPP gate");
    let ok = send(&sms(smpp, "905300000001")).await.expect("send an SMS");
    assert_eq!(ok.command_status, 0, "{ok:?}");
    let refused = send(&sms(smpp, "905300000002")).await.expect("send an SMS");
    assert_eq!(refused.command_status, 0x402, "{refused:?}");
    let arrived: Vec<String> = smsc
        .stats()
        .recent()
        .iter()
        .map(|r| r.destination.clone())
        .collect();
    assert_eq!(arrived, ["905300000001"]);

    // The admin API's consent check, as the printed hints run it: with the
    // demo config's read token (without one: 401).
    let demo_token = Config::from_toml(DEMO_CONFIG, "demo").unwrap().admin.tokens[0]
        .token
        .clone()
        .expect("the demo config's read token");
    let url = format!(
        "http://{}/v1/check?iys_code=700001&brand_code=100001&channel=MESAJ&recipient=05300000002",
        gate.admin_addr
    );
    let http = reqwest::Client::new();
    let r = http.get(&url).send().await.expect("the admin API answers");
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .bearer_auth(&demo_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["reason"], "withdrawn", "{v}");

    // Mail through the hop: one transaction, one recipient with consent, one
    // withdrawn, one never asked; only the first gets the message.
    let hop = gate.smtp_hop_addr.expect("the demo's SMTP hop");
    let mut c = Smtp::connect(hop).await;
    assert!(c.cmd("EHLO demo.test").await.starts_with("250"));
    assert!(c
        .cmd("MAIL FROM:<news@shop.example>")
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<demo@example.com>").await;
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("RCPT TO:<withdrawn@example.com>").await;
    assert!(r.starts_with("550 5.7.1") && r.contains("withdrawn"), "{r}");
    let r = c.cmd("RCPT TO:<nobody@example.com>").await;
    assert!(
        r.starts_with("550 5.7.1") && r.contains("no_consent"),
        "{r}"
    );
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("354"), "{r}");
    let r = c
        .cmd("Subject: demo\r\nX-IYS-Message-Type: 11\r\n\r\nhello\r\n..dotted\r\n.")
        .await;
    assert!(r.starts_with("250"), "{r}");
    assert!(
        smtp.stats().wait_messages(1, WAIT).await,
        "the mail arrives"
    );
    let m = smtp.stats().recent().pop().unwrap();
    assert_eq!(m.mail_from, "news@shop.example");
    assert_eq!(m.rcpt_to, ["demo@example.com"]);
    assert!(
        m.data.ends_with(b"\r\nhello\r\n.dotted\r\n"),
        "{:?}",
        String::from_utf8_lossy(&m.data)
    );

    // Every recipient refused: DATA is refused and nothing more arrives.
    assert!(c
        .cmd("MAIL FROM:<news@shop.example>")
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<nobody@example.com>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("554"), "{r}");
    assert!(c.cmd("QUIT").await.starts_with("221"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.stats().counts().messages, 1);

    // The policy service answers Postfix's questions on one connection.
    let policy = gate.smtp_policy_addr.expect("the demo's policy service");
    let mut p = BufReader::new(TcpStream::connect(policy).await.unwrap());
    for (recipient, want) in [
        ("demo@example.com", "action=DUNNO"),
        ("withdrawn@example.com", "action=550 5.7.1"),
        ("nobody@example.com", "action=550 5.7.1"),
    ] {
        let request = format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=127.0.0.1\nsender=news@shop.example\nrecipient={recipient}\n\n"
        );
        p.get_mut().write_all(request.as_bytes()).await.unwrap();
        let mut action = String::new();
        tokio::time::timeout(WAIT, p.read_line(&mut action))
            .await
            .expect("an answer in time")
            .unwrap();
        let mut blank = String::new();
        tokio::time::timeout(WAIT, p.read_line(&mut blank))
            .await
            .expect("the answer's end in time")
            .unwrap();
        assert!(action.starts_with(want), "{recipient}: {action:?}");
        assert_eq!(blank, "\n");
    }

    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpp_send_submits_one_message_and_prints_the_answer() {
    use iys_gate::smpp::tools::sink;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smsc = sink::spawn(listener, sink::SinkConfig::default()).await;
    let mut args = sms(smsc.local_addr(), "905300000001");
    args.message_type = Some(0);
    let sent = send(&args).await.expect("send to the sink");
    assert_eq!(sent.command_status, 0);
    assert!(!sent.message_id.is_empty());
    let r = smsc.stats().recent().pop().expect("one submission");
    assert_eq!(r.destination, "905300000001");
    assert_eq!(r.short_message, b"demo test to 905300000001");
    assert_eq!(r.tlv_tags(), [0x1400]);
    // From the command line.
    let addr = smsc.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_iys-gate"))
            .args(["smpp-send", "--target", &addr, "--to", "905300000003"])
            .output()
            .expect("run iys-gate smpp-send")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("submit_sm to 905300000003: 0x00000000 (ESME_ROK) message_id "),
        "{stdout}"
    );
    assert_eq!(smsc.stats().counts().submit_sm, 2);
}

/// The demo's voice path: a call with consent is answered by the in-process
/// UAS (and hung up), a withdrawn one and one never given get `608` with the
/// İYS reason and never reach it, an informational one passes; as printed by
/// `iys-gate sip-call`, which the demo tells newcomers to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_completes_a_consented_call_and_refuses_the_rest() {
    use iys_gate::sip::tools::call::{call, CallArgs};
    let gate = demo().await;
    let sip = gate.sip_udp_addr.expect("the demo's SIP gate");
    let uas = gate.demo_sinks.uas.as_ref().expect("the demo's UAS");
    let args = |to: &str, message_type: Option<u8>| CallArgs {
        target: sip,
        to: to.into(),
        from: "02120000000".into(),
        message_type,
        timeout: Duration::from_secs(10),
    };
    let ok = call(&args("05300000001", None)).await.expect("a call");
    assert_eq!((ok.code, ok.bye), (200, Some(200)), "{ok:?}");
    for (to, reason) in [("05300000002", "withdrawn"), ("05300000009", "no_consent")] {
        let refused = call(&args(to, None)).await.expect("a call");
        assert_eq!(refused.code, 608, "{to}: {refused:?}");
        assert!(
            refused
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(reason)),
            "{to}: {refused:?}"
        );
    }
    let info = call(&args("05300000009", Some(0))).await.expect("a call");
    assert_eq!(info.code, 200, "informational passes: {info:?}");
    let answered = uas.answered();
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(answered[0].contains("05300000001"), "{answered:?}");
    assert!(answered[1].contains("05300000009"), "{answered:?}");
    // From the command line, as the demo prints it.
    let target = sip.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_iys-gate"))
            .args(["sip-call", "--target", &target, "--to", "05300000002"])
            .output()
            .expect("run iys-gate sip-call")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("608 Rejected") && text.contains("withdrawn"),
        "{text}"
    );
    gate.shutdown().await;
}
