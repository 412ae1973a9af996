//! What the operator sees of the SMS gate: an audit line per refusal (masked
//! recipient, reason, account, snapshot version) and the SMPP metrics.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use iys_gate::config::Config;
use iys_gate::smpp::codec::{frame_len, Bind, Body, COctetString, Pdu, SubmitSm, Tlv, Tlvs};
use iys_gate::smpp::tools::sink::{self, SinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn exchange(s: &mut TcpStream, buf: &mut BytesMut, pdu: Pdu) -> Pdu {
    let mut out = BytesMut::new();
    pdu.encode(&mut out);
    s.write_all(&out).await.unwrap();
    loop {
        if let Ok(Some(n)) = frame_len(buf, 65536) {
            return Pdu::decode(&buf.split_to(n)).unwrap();
        }
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_buf(buf))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "gate closed the connection");
    }
}

fn submit(dest: &str, class: &[u8]) -> SubmitSm {
    let mut tlvs = Tlvs::new();
    tlvs.push(Tlv::new(0x1400, class.to_vec()).unwrap());
    SubmitSm {
        dest_addr_ton: 1,
        destination_addr: COctetString::copy_from(dest.as_bytes()).unwrap(),
        tlvs,
        ..SubmitSm::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_audited_masked_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(&csv, "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n700001,100001,+905321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n").unwrap();
    let sink = sink::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        SinkConfig::default(),
    )
    .await;
    let audit = dir.path().join("audit.jsonl");
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[store]\nbootstrap_csv = [{:?}]\n[policy]\nmax_data_age = \"0s\"\n[audit]\npath = {:?}\n[smpp]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\n[[smpp.accounts]]\nsystem_id = \"acme\"\npassword = \"pw\"\niys_code = 700001\nbrand_code = 100001\n",
        csv.display().to_string(),
        audit.display().to_string(),
        sink.local_addr()
    );
    let gate = iys_gate::serve::start(Config::from_toml(&text, "test").unwrap())
        .await
        .unwrap();
    let mut s = TcpStream::connect(gate.smpp_addr.unwrap()).await.unwrap();
    let mut buf = BytesMut::new();
    let bind = Bind {
        system_id: COctetString::copy_from(b"acme").unwrap(),
        password: COctetString::copy_from(b"pw").unwrap(),
        interface_version: 0x34,
        ..Bind::default()
    };
    assert_eq!(
        exchange(&mut s, &mut buf, Pdu::new(1, Body::BindTransmitter(bind)))
            .await
            .command_status,
        0
    );
    let ok = exchange(
        &mut s,
        &mut buf,
        Pdu::new(2, Body::SubmitSm(submit("905321111111", b"11"))),
    )
    .await;
    assert_eq!(ok.command_status, 0);
    let refused = exchange(
        &mut s,
        &mut buf,
        Pdu::new(3, Body::SubmitSm(submit("905329999999", b"11"))),
    )
    .await;
    assert_eq!(refused.command_status, 0x401);

    // One audit line, for the refusal only, with the recipient masked.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(l) = text.lines().next() {
            assert_eq!(
                text.lines().count(),
                1,
                "only the refusal is audited: {text}"
            );
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no audit line written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["protocol"], "smpp");
    assert_eq!(v["channel"], "MESAJ");
    assert_eq!(v["reason"], "no_consent");
    assert_eq!(v["decision"], "refuse");
    assert_eq!(v["account"], "acme");
    assert_eq!(v["brand"], "700001/100001");
    assert!(v["snapshot_version"].as_u64().unwrap() >= 1);
    assert!(!line.contains("5329999999"), "recipient in clear: {line}");
    assert!(v["recipient"].as_str().unwrap().contains('*'), "{line}");

    // Metrics: sessions, PDUs and decisions, never an address.
    let metrics = reqwest::get(format!("http://{}/metrics", gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("iys_gate_smpp_sessions 1"), "{metrics}");
    let count = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    // Process-wide counters (other tests in this binary may run gates too).
    assert!(
        count(
            "iys_gate_smpp_pdus_total{from=\"esme\",command=\"submit_sm\",status=\"0x00000000\"}"
        ) >= 2.0
    );
    assert!(
        count("iys_gate_smpp_pdus_total{from=\"smsc\",command=\"submit_sm_resp\",status=\"0x00000000\"}")
            >= 1.0
    );
    assert!(
        count(
            "iys_gate_decisions_total{channel=\"MESAJ\",decision=\"refuse\",reason=\"no_consent\",source=\"traffic\"}"
        ) >= 1.0
    );
    // The refusal is the gate's own answer, by command and status.
    assert!(
        count("iys_gate_smpp_pdus_total{from=\"gate\",command=\"submit_sm_resp\",status=\"0x00000401\"}")
            >= 1.0
    );
    assert!(metrics.contains("iys_gate_smpp_binds_total{result=\"ok\"}"));
    // The forwarded one was timed upstream and is no longer in flight.
    assert!(count("iys_gate_smpp_upstream_latency_seconds_count") >= 1.0);
    assert_eq!(count("iys_gate_smpp_in_flight"), 0.0);
    assert!(!metrics.contains("532999"), "no address in metrics");
    gate.shutdown().await;
}
