//! What the operator shows the regulator: a day's report that matches the
//! traffic sent (through SMPP, across a restart), and an audit trail that
//! `iys-gate audit verify` passes untouched and faults when a line is
//! deleted or edited or a file is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use iys_gate::config::Config;
use iys_gate::observe::chain::{ChainConfig, ChainWriter};
use iys_gate::observe::day::Day;
use iys_gate::serve::RunningGate;
use iys_gate::smpp::codec::{frame_len, Bind, Body, COctetString, Pdu, SubmitSm, Tlv, Tlvs};
use iys_gate::smpp::tools::sink::{self, SinkConfig, SinkHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const READ_TOKEN: &str = "read-token-0123456789";

fn gate_bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iys-gate"))
        .args(args)
        .output()
        .expect("run iys-gate")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn exchange(s: &mut TcpStream, buf: &mut BytesMut, pdu: Pdu) -> Pdu {
    let mut out = BytesMut::new();
    pdu.encode(&mut out);
    s.write_all(&out).await.unwrap();
    loop {
        if let Ok(Some(n)) = frame_len(buf, 65536) {
            return Pdu::decode(&buf.split_to(n)).unwrap();
        }
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_buf(buf))
            .await
            .expect("gate answers within 20 s")
            .unwrap();
        assert!(read > 0, "gate closed the connection");
    }
}

fn submit(dest: &str, class: &[u8], dealer: Option<&[u8]>) -> SubmitSm {
    let mut tlvs = Tlvs::new();
    tlvs.push(Tlv::new(0x1400, class.to_vec()).unwrap());
    if let Some(d) = dealer {
        tlvs.push(Tlv::new(0x1402, d.to_vec()).unwrap());
    }
    SubmitSm {
        dest_addr_ton: 1,
        destination_addr: COctetString::copy_from(dest.as_bytes()).unwrap(),
        tlvs,
        ..SubmitSm::default()
    }
}

const EXPORT: &str = "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
700001,100001,+905321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
700001,100001,+905322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
700001,100001,+905322222222,BIREYSEL,MESAJ,RET,2024-02-01 10:00:00,IYS_MOBIL,,\n\
700001,100001,+905323333333,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_FIZIKSEL_ORTAM,501,501\n";

struct Setup {
    dir: tempfile::TempDir,
    sink: SinkHandle,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("export.csv"), EXPORT).unwrap();
        let sink = sink::spawn(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            SinkConfig::default(),
        )
        .await;
        Setup { dir, sink }
    }

    fn audit(&self) -> PathBuf {
        self.dir.path().join("audit").join("audit.jsonl")
    }

    fn config(&self) -> String {
        let d = self.dir.path();
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"noc\"\ntoken = \"{READ_TOKEN}\"\nrole = \"read\"\n\
             [store]\nsnapshot_path = {:?}\nbootstrap_csv = [{:?}]\n\
             [policy]\nmax_data_age = \"0s\"\n[audit]\npath = {:?}\nretention_days = 30\n\
             [reports]\nflush_interval = \"1s\"\n\
             [[brands]]\niys_code = 700001\nbrand_code = 100001\n\
             [smpp]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\n[[smpp.accounts]]\nsystem_id = \"acme\"\npassword = \"pw\"\niys_code = 700001\nbrand_code = 100001\n",
            p(&d.join("state").join("snapshot.bin")),
            p(&d.join("export.csv")),
            p(&self.audit()),
            self.sink.local_addr()
        )
    }

    async fn start(&self) -> RunningGate {
        let text = self.config();
        std::fs::write(self.dir.path().join("gate.toml"), &text).unwrap();
        iys_gate::serve::start(Config::from_toml(&text, "test").unwrap())
            .await
            .unwrap()
    }
}

/// One SMS: destination, `iys_message_type`, dealer.
type Sms<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);

/// Bind as `acme` and send each message; returns the command_status of each
/// answer.
async fn send(gate: &RunningGate, messages: &[Sms<'_>]) -> Vec<u32> {
    let mut s = TcpStream::connect(gate.smpp_addr.unwrap()).await.unwrap();
    let mut buf = BytesMut::new();
    let bind = Bind {
        system_id: COctetString::copy_from(b"acme").unwrap(),
        password: COctetString::copy_from(b"pw").unwrap(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let r = exchange(&mut s, &mut buf, Pdu::new(1, Body::BindTransmitter(bind))).await;
    assert_eq!(r.command_status, 0);
    let mut out = Vec::new();
    for (i, (dest, class, dealer)) in messages.iter().enumerate() {
        let r = exchange(
            &mut s,
            &mut buf,
            Pdu::new(2 + i as u32, Body::SubmitSm(submit(dest, class, *dealer))),
        )
        .await;
        out.push(r.command_status);
    }
    out
}

async fn get(gate: &RunningGate, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().get(format!("http://{}{path}", gate.admin_addr));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `/v1/report` for today once its total reaches `total` (the counts are
/// handed over when a session's turn ends, just after it answers).
async fn report_with_total(gate: &RunningGate, total: u64) -> serde_json::Value {
    let path = format!("/v1/report?date={}", Day::today());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(gate, &path, Some(READ_TOKEN)).await;
        if status == 200 && body["total"].as_u64() >= Some(total) {
            assert_eq!(body["total"].as_u64(), Some(total), "{body}");
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no report with total {total}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rows as "brand channel decision reason dealer count", sorted.
fn rows(report: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}",
                r["brand"].as_str().unwrap(),
                r["channel"].as_str().unwrap(),
                r["decision"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["dealer"],
                r["count"]
            )
        })
        .collect();
    v.sort();
    v
}

fn audit_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text.lines().map(str::to_string).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{n} audit lines expected: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_report_matches_the_traffic_sent_and_survives_a_restart() {
    let setup = Setup::new().await;
    let gate = setup.start().await;
    let c: &[u8] = b"11";
    let statuses = send(
        &gate,
        &[
            ("905321111111", c, None),
            ("905321111111", c, None),
            ("905321111111", c, None),
            ("905329999999", c, None),
            ("905329999998", c, None),
            ("905322222222", c, None),
            ("905323333333", c, Some(b"501")),
            ("905323333333", c, Some(b"502")),
            ("905329999999", b"0", None),
        ],
    )
    .await;
    assert_eq!(
        statuses,
        [0, 0, 0, 0x401, 0x401, 0x402, 0, 0x404, 0],
        "the gate's answers"
    );
    // A lookup is not traffic: it does not count.
    let (status, _) = get(
        &gate,
        "/v1/check?iys_code=700001&brand_code=100001&channel=MESAJ&recipient=905329999999",
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let report = report_with_total(&gate, 9).await;
    let want = [
        "700001/100001 MESAJ allow consent 501 1",
        "700001/100001 MESAJ allow consent null 3",
        "700001/100001 MESAJ allow exempt null 1",
        "700001/100001 MESAJ refuse no_consent null 2",
        "700001/100001 MESAJ refuse retailer_not_allowed 502 1",
        "700001/100001 MESAJ refuse withdrawn null 1",
    ];
    assert_eq!(rows(&report), want);
    assert_eq!(report["date"], Day::today().to_string());
    assert_eq!(report["utc_offset"], "+03:00");

    // Errors an operator can act on.
    let (status, body) = get(&gate, "/v1/report?date=2020-01-01", Some(READ_TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(&gate, "/v1/report?date=2026-02-30", Some(READ_TOKEN)).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("date"), "{body}");
    let (status, _) = get(&gate, "/v1/report", Some(READ_TOKEN)).await;
    assert_eq!(status, 400);
    let (status, _) = get(&gate, &format!("/v1/report?date={}", Day::today()), None).await;
    assert_eq!(status, 401);

    // The four refusals are in the audit file before the next gate opens it.
    assert_eq!(audit_lines(&setup.audit(), 4).len(), 4);
    gate.shutdown().await;

    // The file beside the snapshot has the day; the CLI prints it.
    let out = gate_bin(&[
        "report",
        "--date",
        &Day::today().to_string(),
        "--state-dir",
        p(&setup.dir.path().join("state")),
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8(out.stdout).unwrap();
    let today = Day::today();
    assert!(
        csv.starts_with("date,brand,channel,decision,reason,dealer,count\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "{today},700001/100001,MESAJ,refuse,no_consent,,2\n"
        )),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "{today},700001/100001,MESAJ,refuse,retailer_not_allowed,502,1\n"
        )),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 7, "{csv}");
    let out = gate_bin(&[
        "report",
        "--date",
        "2020-01-01",
        "--config",
        p(&setup.dir.path().join("gate.toml")),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no decisions counted on 2020-01-01"),
        "{}",
        text(&out)
    );

    // After a restart the day's counts are still there and new traffic adds on.
    let gate = setup.start().await;
    let (status, again) = get(
        &gate,
        &format!("/v1/report?date={today}&format=json"),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rows(&again), want);
    assert_eq!(send(&gate, &[("905329999999", c, None)]).await, [0x401]);
    let report = report_with_total(&gate, 10).await;
    assert!(
        rows(&report).contains(&"700001/100001 MESAJ refuse no_consent null 3".to_string()),
        "{report}"
    );
    gate.shutdown().await;

    // The audit trail of both runs: one chain, verified whole.
    let audit = setup.audit();
    let lines = audit_lines(&audit, 5);
    assert_eq!(lines.len(), 5, "a line per refusal: {lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(v["seq"], 3);
    assert_eq!(v["reason"], "withdrawn");
    assert!(v["snapshot_version"].as_u64().unwrap() >= 1, "{v}");
    let out = gate_bin(&["audit", "verify", p(&audit)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok: 1 files, 5 lines, seq 1..5"),
        "{}",
        text(&out)
    );

    // A deleted line.
    let tampered = setup.dir.path().join("tampered.jsonl");
    let mut cut = lines.clone();
    cut.remove(2);
    std::fs::write(&tampered, cut.join("\n") + "\n").unwrap();
    let out = gate_bin(&["audit", "verify", p(&tampered)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "{}:3: seq 4 follows seq 2 (line 2): 1 line(s) missing before this line",
            p(&tampered)
        )),
        "{}",
        text(&out)
    );
    // An edited line: the refusal made to look like another reason.
    let mut edited = lines.clone();
    edited[1] = edited[1].replace("no_consent", "unknown_brand");
    assert_ne!(edited[1], lines[1]);
    std::fs::write(&tampered, edited.join("\n") + "\n").unwrap();
    let out = gate_bin(&["audit", "verify", p(&tampered)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{}:2: this line does not hash", p(&tampered))),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("edited"), "{}", text(&out));
}

#[test]
fn a_missing_file_in_the_middle_of_the_chain_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Three Turkey days of records, written with the clock set by the test.
    let day = |d: u32, h: u32| {
        humantime::parse_rfc3339(&format!("2026-11-{d:02}T{h:02}:00:00Z")).unwrap()
    };
    let times: Vec<SystemTime> = vec![day(10, 8), day(10, 9), day(11, 8), day(11, 22), day(12, 8)];
    {
        let mut w = ChainWriter::open(&path, ChainConfig::default(), times[0]).unwrap();
        for t in &times {
            let body = format!(
                "{{\"ts\":\"{}\",\"reason\":\"no_consent\"}}\n",
                humantime::format_rfc3339_millis(*t)
            );
            w.append(*t, body.as_bytes());
        }
        w.flush();
    }
    // 11-11 22:00 UTC is already 11-12 in Turkey.
    let first = dir.path().join("audit.jsonl.2026-11-10");
    let middle = dir.path().join("audit.jsonl.2026-11-11");
    for (f, n) in [(&first, 2), (&middle, 1), (&path, 2)] {
        assert_eq!(
            std::fs::read_to_string(f).unwrap().lines().count(),
            n,
            "{f:?}"
        );
    }
    let out = gate_bin(&["audit", "verify", p(&path), p(&first), p(&middle)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok: 3 files, 5 lines, seq 1..5"),
        "{}",
        text(&out)
    );

    let out = gate_bin(&["audit", "verify", p(&first), p(&path)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "{}:1: seq 4 follows seq 2 ({}:2): 1 line(s) missing between the files (a file or lines are missing)",
            p(&path),
            p(&first)
        )),
        "{}",
        text(&out)
    );
}

/// A gate with an export holding a followed and an unfollowed brand.
async fn gate_with_two_brands(dir: &Path, unfollowed: &str) -> RunningGate {
    let csv = dir.join("export.csv");
    std::fs::write(
        &csv,
        "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
         700001,100001,+905321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
         700002,1,+905321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
         700002,1,+905322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n",
    )
    .unwrap();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"noc\"\ntoken = \"{READ_TOKEN}\"\nrole = \"read\"\n\
         [store]\nbootstrap_csv = [{:?}]\n{unfollowed}\n[policy]\nmax_data_age = \"0s\"\n\
         [[brands]]\niys_code = 700001\nbrand_code = 100001\n",
        p(&csv)
    );
    iys_gate::serve::start(Config::from_toml(&text, "test").unwrap())
        .await
        .unwrap()
}

async fn check_reason(gate: &RunningGate, iys: u32, brand: u32) -> String {
    let (status, body) = get(
        gate,
        &format!(
            "/v1/check?iys_code={iys}&brand_code={brand}&channel=MESAJ&recipient=905321111111"
        ),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["reason"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brands_the_config_does_not_follow_are_not_answered_from_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let gate = gate_with_two_brands(dir.path(), "").await;
    assert_eq!(check_reason(&gate, 700001, 100001).await, "consent");
    // Its rows were left out: the brand is unknown to the gate.
    assert_eq!(check_reason(&gate, 700002, 1).await, "unknown_brand");
    let metrics = reqwest::get(format!("http://{}/metrics", gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let skipped: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("iys_gate_bootstrap_rows_skipped_total{reason=\"unfollowed_brand\"}")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no unfollowed_brand series: {metrics}"));
    // Process-wide; only this test's gates load rows of unfollowed brands,
    // and the one with `load` below starts after this read.
    assert_eq!(skipped, 2.0, "{metrics}");
    gate.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let gate = gate_with_two_brands(dir.path(), "unfollowed_brands = \"load\"").await;
    assert_eq!(check_reason(&gate, 700002, 1).await, "consent");
    gate.shutdown().await;
}
