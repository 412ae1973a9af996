//! The SMTP tools against a real peer and each other: swaks (a third-party SMTP
//! client) delivers to the sink, which keeps the bytes the sender meant
//! (dot-stuffed lines unstuffed once) and refuses what its list names with
//! `550 5.1.1`; the load generator's counts agree with the sink's; the
//! `smtp-sink` and `smtp-load` subcommands work from the command line; Postfix's
//! smtp-source (another real client) delivers to the sink.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use iys_gate::smtp::tools::load::{run_load, LoadConfig, Recipients};
use iys_gate::smtp::tools::sink::{self, RefuseList, SinkConfig, SinkHandle};
use tokio::net::TcpListener;

const SWAKS: &str = "/usr/bin/swaks";

fn swaks_path() -> &'static str {
    assert!(
        Path::new(SWAKS).exists(),
        "{SWAKS} is missing: install swaks (bash .ci/run does)"
    );
    SWAKS
}

async fn start_sink(refuse: &[&str]) -> SinkHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    sink::spawn(
        listener,
        SinkConfig {
            refuse: RefuseList::new(refuse).expect("refuse list"),
            ..SinkConfig::default()
        },
    )
}

/// Runs swaks off the runtime's threads and returns its output.
async fn swaks(args: Vec<String>) -> Output {
    let bin = swaks_path();
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run swaks")
    })
    .await
    .expect("swaks task")
}

fn transcript(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_message_with_dot_stuffed_lines_arrives_byte_for_byte() {
    let sink = start_sink(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("m.eml");
    // Lines that start with dots, a line of one dot, and 8-bit text: swaks
    // dot-stuffs them on the wire, the sink must undo exactly that.
    std::fs::write(
        &body,
        "Subject: dots\nX-IYS-Message-Type: 11\n\nfirst\n.leading dot\n..two dots\n.\nbüyük ışık\nlast\n",
    )
    .unwrap();
    let out = swaks(vec![
        "--server".into(),
        sink.local_addr().to_string(),
        "--pipeline".into(),
        "--from".into(),
        "news@shop.example".into(),
        "--to".into(),
        "a@example.com,b@example.com".into(),
        "--data".into(),
        format!("@{}", body.display()),
    ])
    .await;
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("..leading dot"), "swaks stuffs on the wire: {t}");
    assert!(sink.stats().wait_messages(1, Duration::from_secs(10)).await);
    let m = sink.stats().recent().pop().expect("one message");
    assert_eq!(m.mail_from, "news@shop.example");
    assert_eq!(m.rcpt_to, ["a@example.com", "b@example.com"]);
    let want = "Subject: dots\r\nX-IYS-Message-Type: 11\r\n\r\nfirst\r\n.leading dot\r\n..two dots\r\n.\r\nbüyük ışık\r\nlast\r\n";
    assert!(
        m.data.starts_with(want.as_bytes()),
        "arrived: {:?}",
        String::from_utf8_lossy(&m.data)
    );
    assert_eq!(m.size, m.data.len());
    let c = sink.stats().counts();
    assert_eq!((c.sessions, c.messages, c.recipients), (1, 1, 2), "{c:?}");
    assert_eq!(c.bytes, m.data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_list_answers_550_5_1_1_and_keeps_the_others() {
    let sink = start_sink(&[
        "gone@example.com",
        "@blocked.example",
        "bounce-*@example.org",
    ])
    .await;
    let out = swaks(vec![
        "--server".into(),
        sink.local_addr().to_string(),
        "--from".into(),
        "news@shop.example".into(),
        "--to".into(),
        "gone@example.com,x@blocked.example,Bounce-7@Example.org,kept@example.com".into(),
        "--body".into(),
        "hello".into(),
    ])
    .await;
    let t = transcript(&out);
    for refused in [
        "gone@example.com",
        "x@blocked.example",
        "Bounce-7@Example.org",
    ] {
        assert!(
            t.contains(&format!("550 5.1.1 <{refused}>")),
            "{refused} refused: {t}"
        );
    }
    assert!(
        sink.stats().wait_messages(1, Duration::from_secs(10)).await,
        "{t}"
    );
    let m = sink.stats().recent().pop().expect("one message");
    assert_eq!(m.rcpt_to, ["kept@example.com"], "{t}");
    let c = sink.stats().counts();
    assert_eq!((c.messages, c.recipients, c.refused), (1, 1, 3), "{c:?}");

    // Every recipient refused: DATA is refused too and nothing arrives.
    let out = swaks(vec![
        "--server".into(),
        sink.local_addr().to_string(),
        "--to".into(),
        "gone@example.com".into(),
        "--body".into(),
        "hello".into(),
    ])
    .await;
    assert!(!out.status.success(), "{}", transcript(&out));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.stats().counts().messages, 1);
}

fn load(target: String, pipelining: bool) -> LoadConfig {
    LoadConfig {
        target,
        sessions: 3,
        messages: Some(40),
        recipients: 4,
        pipelining,
        size: 3000,
        consented: Recipients::Pattern("rcpt{n}@example.com".into()),
        unconsented: Recipients::Pattern("nobody{n}@blocked.example".into()),
        unconsented_share: 0.3,
        ..LoadConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_the_sink_counts_agree() {
    for pipelining in [true, false] {
        let sink = start_sink(&["@blocked.example"]).await;
        let r = run_load(load(sink.local_addr().to_string(), pipelining))
            .await
            .expect("load run");
        let c = sink.stats().counts();
        assert_eq!(r.pipelining, pipelining);
        assert_eq!(r.messages, 120, "{r}");
        assert_eq!(r.broken_sessions, 0, "{r}");
        assert_eq!(c.sessions, 3, "{c:?}");
        assert_eq!(r.accepted, c.messages, "{r}\n{c:?}");
        assert_eq!(r.rcpt_accepted, c.recipients, "{r}\n{c:?}");
        assert_eq!(r.rcpt_refused, c.refused, "{r}\n{c:?}");
        assert_eq!(r.rcpt_accepted + r.rcpt_refused, 120 * 4, "{r}");
        assert_eq!(r.rcpt_replies.get(&250), Some(&r.rcpt_accepted), "{r}");
        assert_eq!(r.rcpt_replies.get(&550), Some(&r.rcpt_refused), "{r}");
        assert!(
            r.rcpt_refused > 60 && r.rcpt_refused < 240,
            "a 30 % mix: {r}"
        );
        assert_eq!(r.data_replies.get(&250), Some(&r.accepted), "{r}");
        // Pipelined, a message whose every recipient was refused gets 554 at
        // DATA; in lock-step the generator does not send DATA at all.
        let refused_at_data = r.data_replies.get(&554).copied().unwrap_or(0);
        if pipelining {
            assert_eq!(r.accepted + refused_at_data, 120, "{r}");
        } else {
            assert_eq!(refused_at_data, 0, "{r}");
        }
        assert_eq!(c.bytes, 3000 * c.messages, "{c:?}");
        let l = r.latency_us;
        assert!(l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
        assert!(
            r.msgs_per_sec > 0.0 && r.rcpts_per_sec > r.msgs_per_sec,
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_duration_bounds_the_run() {
    let sink = start_sink(&[]).await;
    let started = Instant::now();
    let r = run_load(LoadConfig {
        target: sink.local_addr().to_string(),
        sessions: 2,
        messages: None,
        duration: Some(Duration::from_millis(700)),
        ..LoadConfig::default()
    })
    .await
    .expect("load run");
    assert!(started.elapsed() < Duration::from_secs(20), "{r}");
    assert!(r.messages > 0 && r.accepted == r.messages, "{r}");
    assert_eq!(sink.stats().counts().messages, r.accepted);
    // A load on a closed port fails with a message that names it.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let e = run_load(LoadConfig {
        target: addr.clone(),
        timeout: Duration::from_secs(5),
        ..LoadConfig::default()
    })
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains(&addr), "{e:#}");
}

/// A child process killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sink_and_smtp_load_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let refuse = dir.path().join("refuse.txt");
    std::fs::write(&refuse, "# refused\n@blocked.example\n\n").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let _sink = Child(
        Command::new(env!("CARGO_BIN_EXE_iys-gate"))
            .args(["smtp-sink", "--listen", &addr, "--report-every", "0s"])
            .arg("--refuse-file")
            .arg(&refuse)
            .arg("--dump-dir")
            .arg(&dump)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iys-gate smtp-sink"),
    );
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < until, "smtp-sink did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_iys-gate"))
                .args(["smtp-load", "--target", &addr, "--sessions", "2"])
                .args(["--messages", "5", "--recipients", "2", "--json"])
                .args(["--unconsented-pattern", "x{n}@blocked.example"])
                .args(["--unconsented-share", "0.5"])
                .output()
                .expect("run iys-gate smtp-load")
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let accepted = report["accepted"].as_u64().unwrap();
    assert_eq!(report["messages"], 10, "{report}");
    assert_eq!(
        report["rcpt_accepted"].as_u64().unwrap() + report["rcpt_refused"].as_u64().unwrap(),
        20,
        "{report}"
    );
    // Each accepted message is in the dump folder with its envelope.
    let until = Instant::now() + Duration::from_secs(10);
    let count = |ext: &str| {
        std::fs::read_dir(&dump)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
                })
                .count() as u64
            })
            .unwrap_or(0)
    };
    while count("json") < accepted {
        assert!(
            Instant::now() < until,
            "dump holds {} of {accepted}",
            count("json")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count("eml"), accepted);
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dump.join("1.json")).unwrap()).unwrap();
    assert_eq!(env["mail_from"], "load@shop.example", "{env}");
    for r in env["rcpt_to"].as_array().unwrap() {
        assert!(!r.as_str().unwrap().ends_with("@blocked.example"), "{env}");
    }
    let eml = std::fs::read(dump.join("1.eml")).unwrap();
    assert_eq!(eml.len(), 1024);
    assert!(eml.starts_with(b"From: <load@shop.example>\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_smtp_source_to_the_sink_counts_agree() {
    const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";
    assert!(
        Path::new(SMTP_SOURCE).exists(),
        "{SMTP_SOURCE} is missing: install postfix (bash .ci/run does)"
    );
    let sink = start_sink(&[]).await;
    let addr = sink.local_addr().to_string();
    // Four sessions, 200 messages of three recipients, connections kept (-d).
    let out = tokio::task::spawn_blocking(move || {
        Command::new(SMTP_SOURCE)
            .args(["-s", "4", "-m", "200", "-r", "3", "-l", "2000", "-d"])
            .args(["-f", "news@shop.example", "-t", "rcpt@example.com", &addr])
            .stdin(Stdio::null())
            .output()
            .expect("run smtp-source")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        sink.stats()
            .wait_messages(200, Duration::from_secs(10))
            .await
    );
    let c = sink.stats().counts();
    assert_eq!((c.messages, c.recipients, c.errors), (200, 600, 0), "{c:?}");
    assert!(c.sessions <= 4 && c.sessions >= 1, "{c:?}");
    let m = sink.stats().recent().pop().unwrap();
    // smtp-source numbers all but the last recipient, counting down.
    assert_eq!(
        m.rcpt_to,
        ["3rcpt@example.com", "2rcpt@example.com", "rcpt@example.com"]
    );
    assert!(m.size > 2000, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_load_against_postfix_smtp_sink() {
    const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
    assert!(
        Path::new(SMTP_SINK).exists(),
        "{SMTP_SINK} is missing: install postfix (bash .ci/run does)"
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    // As root, smtp-sink must be told whom to become once its socket is open.
    let mut cmd = Command::new(SMTP_SINK);
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "nobody"]);
    }
    let _sink = Child(
        cmd.args([&addr, "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink"),
    );
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < until, "smtp-sink did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pipelining in [true, false] {
        let r = run_load(LoadConfig {
            target: addr.clone(),
            sessions: 3,
            messages: Some(30),
            recipients: 2,
            pipelining,
            ..LoadConfig::default()
        })
        .await
        .expect("load run against smtp-sink");
        assert_eq!(r.pipelining, pipelining, "smtp-sink offers PIPELINING: {r}");
        assert_eq!((r.messages, r.accepted), (90, 90), "{r}");
        assert_eq!((r.rcpt_accepted, r.rcpt_refused), (180, 0), "{r}");
        assert_eq!(r.data_replies.get(&250), Some(&90), "{r}");
        assert_eq!(r.broken_sessions, 0, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_with_421() {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = sink::spawn(
        listener,
        SinkConfig {
            idle_timeout: Duration::from_millis(300),
            ..SinkConfig::default()
        },
    );
    let mut s = tokio::net::TcpStream::connect(sink.local_addr())
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("220 ") && got.ends_with("421 4.4.2 Idle too long, closing connection\r\n"),
        "{got}"
    );
}
