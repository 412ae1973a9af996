//! SMPP interoperability: the gate (in process) between peers the project did
//! not write — Python's `smpplib` as the sender (`tests/peers/esme.py`) and the
//! node `smpp` package as the SMSC (`tests/peers/smsc.js`) — plus raw-socket
//! senders built on the crate's own codec for the bytes smpplib cannot produce
//! (malformed PDUs, concatenation, submit_multi, garbage).
//!
//! The peers are installed by `.ci/run` into `.ci/tools/`; without them these
//! tests fail and say so.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use iys_gate::config::Config;
use iys_gate::consent::ConsentTime;
use iys_gate::serve::{start, RunningGate};
use iys_gate::smpp::codec::{
    frame_len, status, Bind, Body, COctetString, CommandId, DestAddress, DestAddresses,
    OctetString, Pdu, SmppTime, SubmitMulti, SubmitSm, Tlv, TlvRead, Tlvs,
};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
const SYSTEM_ID: &str = "acme";
const PASSWORD: &str = "secret1";
const SECRET: &str = "interop-webhook-secret-0123456789";
const DOWN: &str = "base_url = \"http://127.0.0.1:9\"\nusername = \"u\"\npassword = \"p\"";
/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(5);

// The numbers of the test export (international form, as senders use them).
const CONSENTED: &str = "905321111111";
/// Consented too; the node SMSC refuses destinations ending in "99".
const CONSENTED_SMSC_REFUSES: &str = "905321111199";
const WITHDRAWN: &str = "905322222222";
const MERCHANT: &str = "905325555555";
const UNKNOWN: &str = "905329999990";

const ROWS: &[&str] = &[
    "700001,100001,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05321111199,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05322222222,BIREYSEL,MESAJ,RET,2024-03-01 10:00:00,IYS_MOBIL,,",
    "700001,100001,05325555555,TACIR,MESAJ,ONAY,,,,",
];

// ---------------------------------------------------------------------------
// The third-party peers.

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Peers {
    python: PathBuf,
    node: PathBuf,
}

/// The interpreters and the installed packages, or a failure that says what to do.
fn peers() -> Peers {
    let hint = "the SMPP interop peers are missing: run `bash .ci/run` (it installs smpplib into \
                .ci/tools/python and the node `smpp` package into .ci/tools/node)";
    let python = in_path("python3").unwrap_or_else(|| panic!("python3 not in PATH; {hint}"));
    let node = in_path("node").unwrap_or_else(|| panic!("node not in PATH; {hint}"));
    let tools = repo().join(".ci/tools");
    assert!(
        tools.join("python/smpplib/__init__.py").is_file(),
        "smpplib not found in .ci/tools/python; {hint}"
    );
    assert!(
        tools.join("node/node_modules/smpp/package.json").is_file(),
        "node smpp not found in .ci/tools/node/node_modules; {hint}"
    );
    Peers { python, node }
}

/// The node `smpp` SMSC, as a child process; its records (JSON lines) are
/// collected by a thread.
struct Smsc {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Smsc {
    fn start() -> Smsc {
        let p = peers();
        let mut child = Command::new(&p.node)
            .arg(repo().join("tests/peers/smsc.js"))
            .env("NODE_PATH", repo().join(".ci/tools/node/node_modules"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("smsc: {line}");
                    continue;
                };
                if v["event"] == "listening" {
                    let _ = tx.send(v["port"].as_u64().unwrap_or(0) as u16);
                }
                sink.lock().unwrap().push(v);
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("node SMSC did not start listening");
        Smsc { child, port, log }
    }

    fn records(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }

    /// PDUs of one command the SMSC received.
    fn pdus(&self, command: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|v| v["event"] == "pdu" && v["command"] == command)
            .collect()
    }

    fn events(&self, event: &str) -> usize {
        self.records()
            .iter()
            .filter(|v| v["event"] == event)
            .count()
    }

    /// Poll the records until `pred` holds.
    async fn wait(&self, what: &str, pred: impl Fn(&Smsc) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "SMSC: {what} did not happen; records: {:#?}",
                self.records()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run one smpplib scenario against the gate; its JSON report.
async fn esme(gate: SocketAddr, scenario: &str) -> Value {
    let p = peers();
    let scenario = scenario.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&p.python)
            .arg(repo().join("tests/peers/esme.py"))
            .arg(gate.ip().to_string())
            .arg(gate.port().to_string())
            .arg(&scenario)
            .env("PYTHONPATH", repo().join(".ci/tools/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stderr(Stdio::inherit())
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "esme.py failed: {:?}", out.status);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "esme.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(v["error"].is_null(), "esme.py: {}", v["error"]);
    v
}

// ---------------------------------------------------------------------------
// The gate.

struct Gate {
    gate: RunningGate,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A gate in front of the SMSC on `upstream`; `policy` and `smpp` add lines to
/// those sections.
async fn gate(upstream: u16, policy: &str, smpp: &str) -> Gate {
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
max_data_age = "1h"
{policy}
[registry]
{DOWN}
poll_interval = "60s"
max_backoff = "60s"
request_timeout = "1s"
[webhook]
secret = "{SECRET}"
[[brands]]
iys_code = {IYS}
brand_code = {BRAND}
[smpp]
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{upstream}"
bind_timeout = "2s"
response_timeout = "5s"
{smpp}
[[smpp.accounts]]
system_id = "{SYSTEM_ID}"
password = "{PASSWORD}"
iys_code = {IYS}
brand_code = {BRAND}
"#,
        csv = csv.display().to_string()
    );
    let config = Config::from_toml(&toml, "interop").unwrap();
    let gate = start(config).await.unwrap();
    let addr = gate.smpp_addr.expect("smpp listener");
    Gate {
        gate,
        addr,
        _dir: dir,
    }
}

/// A consent change pushed to the gate's webhook (applied before the answer).
async fn push(g: &Gate, recipient: &str, status: &str) {
    let change = json!({"iyscode": IYS, "brandcode": BRAND, "recipient": recipient, "type": "MESAJ",
        "source": "IYS_WEB", "status": status, "consentdate": ConsentTime::now().to_string(),
        "recipienttype": "BIREYSEL"});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/webhook", g.gate.admin_addr))
        .bearer_auth(SECRET)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

// ---------------------------------------------------------------------------
// A raw sender on the crate's codec.

struct Raw {
    s: TcpStream,
    buf: BytesMut,
    seq: u32,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            seq: 0,
        }
    }

    /// Connect and bind as a transceiver; asserts the bind succeeded.
    async fn bound(addr: SocketAddr) -> Raw {
        Raw::bound_as(addr, "").await
    }

    /// Bound with this system_type (which the gate passes on to the SMSC).
    async fn bound_as(addr: SocketAddr, system_type: &str) -> Raw {
        let mut r = Raw::connect(addr).await;
        let mut b = bind(SYSTEM_ID, PASSWORD);
        b.system_type = COctetString::copy_from(system_type.as_bytes()).unwrap();
        let seq = r.send(Body::BindTransceiver(b)).await;
        let resp = r.recv().await.expect("bind_transceiver_resp");
        assert_eq!(resp.sequence_number, seq);
        assert_eq!(resp.command_id(), CommandId::BindTransceiverResp);
        assert_eq!(resp.command_status, status::ESME_ROK, "bind refused");
        r
    }

    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        let pdu = Pdu::new(self.seq, body);
        self.s.write_all(&pdu.to_vec()).await.unwrap();
        self.seq
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// The next whole frame, `None` once the gate closed the connection.
    async fn frame(&mut self) -> Option<Bytes> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(n) = frame_len(&self.buf, u32::MAX).expect("gate sent a bad frame") {
                return Some(self.buf.split_to(n).freeze());
            }
            let read = tokio::time::timeout_at(deadline.into(), self.s.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for the gate");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn recv(&mut self) -> Option<Pdu> {
        let frame = self.frame().await?;
        Some(Pdu::decode_bytes(frame).expect("gate sent an undecodable PDU"))
    }

    /// The next PDU, which must be the response to `seq` (every request gets
    /// exactly one response, and nothing else is expected in between).
    async fn response(&mut self, seq: u32) -> Pdu {
        let pdu = self
            .recv()
            .await
            .expect("connection closed before the response");
        let id = pdu.command_id();
        assert!(
            pdu.sequence_number == seq && (id.is_response() || id == CommandId::GenericNack),
            "expected the response to {seq}, got {pdu:?}"
        );
        pdu
    }

    /// Read until the gate closes the connection, answering its unbind; what came.
    async fn until_closed(&mut self) -> Vec<Pdu> {
        let mut got = Vec::new();
        while let Some(pdu) = self.recv().await {
            if pdu.command_id() == CommandId::Unbind {
                let resp = Pdu::new(pdu.sequence_number, Body::UnbindResp);
                let _ = self.s.write_all(&resp.to_vec()).await;
            }
            got.push(pdu);
        }
        got
    }

    async fn enquire_link_works(&mut self) {
        let seq = self.send(Body::EnquireLink).await;
        let resp = self.response(seq).await;
        assert_eq!(resp.command_id(), CommandId::EnquireLinkResp);
        assert_eq!(resp.command_status, 0);
    }
}

fn bind(system_id: &str, password: &str) -> Bind {
    Bind {
        system_id: COctetString::copy_from(system_id.as_bytes()).unwrap(),
        password: COctetString::copy_from(password.as_bytes()).unwrap(),
        interface_version: 0x34,
        ..Default::default()
    }
}

fn tlvs(list: &[(u16, &[u8])]) -> Tlvs {
    let mut t = Tlvs::new();
    for (tag, value) in list {
        t.push(Tlv::new(*tag, Bytes::copy_from_slice(value)).unwrap());
    }
    t
}

fn submit(dest: &str, text: &[u8], tlv: &[(u16, &[u8])]) -> SubmitSm {
    SubmitSm {
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: COctetString::copy_from(dest.as_bytes()).unwrap(),
        short_message: OctetString::copy_from(text).unwrap(),
        tlvs: tlvs(tlv),
        ..Default::default()
    }
}

fn multi(dests: Vec<DestAddress>, text: &[u8], tlv: &[(u16, &[u8])]) -> SubmitMulti {
    SubmitMulti {
        service_type: COctetString::empty(),
        source_addr_ton: 5,
        source_addr_npi: 0,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        dest_addresses: DestAddresses::new(dests).unwrap(),
        esm_class: 0,
        protocol_id: 0,
        priority_flag: 0,
        schedule_delivery_time: SmppTime::empty(),
        validity_period: SmppTime::empty(),
        registered_delivery: 0,
        replace_if_present_flag: 0,
        data_coding: 0,
        sm_default_msg_id: 0,
        short_message: OctetString::copy_from(text).unwrap(),
        tlvs: tlvs(tlv),
    }
}

fn sme(addr: &str) -> DestAddress {
    DestAddress::Sme {
        ton: 1,
        npi: 1,
        addr: COctetString::copy_from(addr.as_bytes()).unwrap(),
    }
}

/// A frame from its command id, sequence number and body octets.
fn frame(command_id: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(16 + body.len());
    f.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    f.extend_from_slice(&command_id.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const MSG_TYPE: u16 = 0x1400;
const VENDOR_TLV: u16 = 0x1520;

fn no_iys_tlvs(rec: &Value) -> bool {
    ["0x1400", "0x1401", "0x1402"]
        .iter()
        .all(|t| rec["tlvs"].get(*t).is_none())
}

/// The one response smpplib received to the request it sent as `name`.
fn only_response(sent: &[Value], received: &[Value], name: &str) -> Value {
    let seq = &sent
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not sent"))["seq"];
    let r: Vec<&Value> = received
        .iter()
        .filter(|r| {
            let c = r["command"].as_str().unwrap_or("");
            r["seq"] == *seq
                && (c.ends_with("_resp") || c == "generic_nack")
                && !c.starts_with("bind")
        })
        .collect();
    assert_eq!(r.len(), 1, "{name}: exactly one response, got {r:?}");
    r[0].clone()
}

// ---------------------------------------------------------------------------
// The tests.

/// smpplib → gate → node smpp: decisions, intact forwarding (unknown TLVs
/// included, İYS TLVs stripped), receipts back, enquire_link, unbind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpplib_sender_and_node_smsc_through_the_gate() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let report = esme(g.addr, "main").await;

    let sent = report["sent"].as_array().unwrap().clone();
    let received = report["received"].as_array().unwrap().clone();
    let answer = |name: &str| -> Value { only_response(&sent, &received, name) };

    // Each request got exactly one response, with the configured statuses.
    let expect = [
        ("consented", "submit_sm_resp", 0),
        ("informational", "submit_sm_resp", 0),
        ("withdrawn", "submit_sm_resp", 0x402),
        ("unconsented", "submit_sm_resp", 0x401),
        ("merchant", "submit_sm_resp", 0),
        ("merchant_as_individual", "submit_sm_resp", 0x401),
        ("default_class", "submit_sm_resp", 0),
        ("default_class_refused", "submit_sm_resp", 0x401),
        ("data_sm_informational", "data_sm_resp", 0),
        ("enquire_link", "enquire_link_resp", 0),
    ];
    for (name, command, st) in expect {
        let r = answer(name);
        assert_eq!(r["command"], command, "{name}: {r}");
        assert_eq!(r["status"], st, "{name}: {r}");
        if st == 0 && command != "enquire_link_resp" {
            assert!(
                r["message_id"].as_str().unwrap().starts_with('n'),
                "{name}: the SMSC's message id comes back: {r}"
            );
        }
    }
    assert_eq!(sent.len(), expect.len());

    // What reached the SMSC: exactly the allowed ones, byte for byte as smpplib
    // generated them, except the remapped sequence number and the İYS TLVs.
    // (The data_sm was the last message sent: once it is recorded, so is
    // everything the gate forwarded before it.)
    smsc.wait("the data_sm", |s| s.pdus("data_sm").len() == 1)
        .await;
    let submits = smsc.pdus("submit_sm");
    let data = smsc.pdus("data_sm");
    assert_eq!(submits.len(), 4, "{submits:#?}");
    assert_eq!(data.len(), 1, "{data:#?}");
    let forwarded = [
        "consented",
        "informational",
        "merchant",
        "default_class",
        "data_sm_informational",
    ];
    let mut at_smsc: Vec<&Value> = submits.iter().chain(data.iter()).collect();
    for name in forwarded {
        let s = sent.iter().find(|s| s["name"] == name).unwrap();
        let mut pdu = Pdu::decode(&unhex(s["hex"].as_str().unwrap())).unwrap();
        let i = at_smsc
            .iter()
            .position(|r| {
                let got = Pdu::decode(&unhex(r["raw"].as_str().unwrap())).unwrap();
                pdu.sequence_number = got.sequence_number;
                let mut want = pdu.clone();
                match &mut want.body {
                    Body::SubmitSm(sm) => {
                        sm.tlvs.remove_iys();
                    }
                    Body::DataSm(dm) => {
                        dm.tlvs.remove_iys();
                    }
                    _ => unreachable!(),
                }
                hex(&want.to_vec()) == r["raw"].as_str().unwrap()
            })
            .unwrap_or_else(|| panic!("{name} did not arrive intact: {at_smsc:#?}"));
        let rec = at_smsc.remove(i);
        assert!(no_iys_tlvs(rec), "{name}: İYS TLVs reached the SMSC: {rec}");
    }
    // As node smpp decoded them: the unknown TLV with its value, the text.
    let consented = submits
        .iter()
        .find(|r| r["text"] == "Kampanya: %20 indirim")
        .expect("consented message at the SMSC");
    assert_eq!(consented["destination_addr"], CONSENTED);
    assert_eq!(consented["tlvs"]["0x1520"], "010263616d702d37ff");
    assert_eq!(
        consented["short_message_hex"],
        hex(b"Kampanya: %20 indirim")
    );
    let info = submits
        .iter()
        .find(|r| r["text"] == "Faturaniz hazir")
        .unwrap();
    assert_eq!(info["tlvs"]["0x1520"], hex(b"info"));
    assert_eq!(data[0]["message_payload_hex"], hex(b"Kargonuz yolda"));
    for r in smsc.records() {
        assert_ne!(
            r["destination_addr"], WITHDRAWN,
            "refused message arrived: {r}"
        );
    }

    // Delivery receipts came back to the sender, one per message that asked.
    let ids: Vec<String> = ["consented", "informational"]
        .iter()
        .map(|n| answer(n)["message_id"].as_str().unwrap().to_string())
        .collect();
    let receipts: Vec<&Value> = received
        .iter()
        .filter(|r| r["command"] == "deliver_sm")
        .collect();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    for r in &receipts {
        assert_eq!(r["esm_class"], 4);
        let id = r["receipted_message_id"].as_str().unwrap();
        assert!(
            ids.iter().any(|i| i == id),
            "receipt for {id}, sent {ids:?}"
        );
        assert!(r["short_message"]
            .as_str()
            .unwrap()
            .contains("stat:DELIVRD"));
    }
    // ...and the sender's deliver_sm_resp went back to the SMSC.
    smsc.wait("two deliver_sm_resp", |s| {
        s.pdus("deliver_sm_resp").len() == 2
    })
    .await;
    assert!(smsc
        .pdus("deliver_sm_resp")
        .iter()
        .all(|r| r["status"] == 0));

    // The upstream bind used the sender's bind type and account; unbind went
    // both ways and both connections closed.
    let binds = smsc.pdus("bind_transceiver");
    assert_eq!(binds.len(), 1);
    assert_eq!(binds[0]["system_id"], SYSTEM_ID);
    let last = received.last().unwrap();
    assert_eq!(last["command"], "unbind_resp", "{last}");
    assert_eq!(last["status"], 0);
    assert_eq!(report["result"]["closed_after_unbind"], true);
    smsc.wait("unbind and close upstream", |s| {
        s.pdus("unbind").len() == 1 && s.events("close") == 1
    })
    .await;
    g.gate.shutdown().await;
}

/// A wrong password and an unknown system_id are refused with their statuses
/// and the connection closed, without touching the SMSC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_and_unknown_system_id_are_refused() {
    let smsc = Smsc::start();
    let g = gate(
        smsc.port,
        "",
        "[[smpp.accounts]]\nsystem_id = \"other\"\npassword = \"pw\"\niys_code = 700001\nbrand_code = 100001\nupstream_password = \"refuse\"",
    )
    .await;
    let report = esme(g.addr, "badbind").await;
    let r = &report["result"];
    assert_eq!(r["bad_password"]["status"], status::ESME_RINVPASWD, "{r}");
    assert_eq!(r["bad_password"]["closed"], true, "{r}");
    assert_eq!(
        r["unknown_system_id"]["status"],
        status::ESME_RINVSYSID,
        "{r}"
    );
    assert_eq!(r["unknown_system_id"]["closed"], true, "{r}");
    assert_eq!(smsc.events("connect"), 0, "refused binds reach no SMSC");

    // A bind the SMSC refuses is refused with the SMSC's status.
    let mut s = Raw::connect(g.addr).await;
    let seq = s.send(Body::BindTransceiver(bind("other", "pw"))).await;
    let r = s.response(seq).await;
    assert_eq!(r.command_status, status::ESME_RBINDFAIL);
    assert!(s.until_closed().await.is_empty());
    smsc.wait("the upstream bind", |s| {
        s.pdus("bind_transceiver").len() == 1
    })
    .await;
    let up = smsc.pdus("bind_transceiver");
    assert_eq!(up.len(), 1);
    assert_eq!(
        (&up[0]["system_id"], &up[0]["password"]),
        (&json!("other"), &json!("refuse")),
        "the account's upstream credentials"
    );

    // The right password still works.
    let mut ok = Raw::bound(g.addr).await;
    ok.enquire_link_works().await;
    smsc.wait("a second link", |s| s.events("connect") == 2)
        .await;
    g.gate.shutdown().await;
}

/// Monitor mode: every decision is taken, none enforced; İYS TLVs still stripped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_forwards_everything() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "monitor = true", "").await;
    let report = esme(g.addr, "monitor").await;
    let resps: Vec<&Value> = report["received"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "submit_sm_resp")
        .collect();
    assert_eq!(resps.len(), 3);
    assert!(resps.iter().all(|r| r["status"] == 0), "{resps:?}");
    smsc.wait("three messages", |s| s.pdus("submit_sm").len() == 3)
        .await;
    let submits = smsc.pdus("submit_sm");
    let mut dests: Vec<&str> = submits
        .iter()
        .map(|r| r["destination_addr"].as_str().unwrap())
        .collect();
    dests.sort();
    assert_eq!(dests, [CONSENTED, WITHDRAWN, UNKNOWN]);
    assert!(submits.iter().all(no_iys_tlvs));
    g.gate.shutdown().await;
}

/// submit_multi: refused destinations are taken out, the rest forwarded with
/// the message intact, and the SMSC's unsuccessful list merged with the gate's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_multi_is_decided_per_destination() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let mut s = Raw::bound(g.addr).await;
    let dl = DestAddress::DistributionList(COctetString::copy_from(b"friends").unwrap());
    let seq = s
        .send(Body::SubmitMulti(multi(
            vec![
                sme(CONSENTED),
                sme(WITHDRAWN),
                sme(CONSENTED_SMSC_REFUSES),
                sme(UNKNOWN),
                dl.clone(),
            ],
            b"Toplu kampanya",
            &[(MSG_TYPE, b"11"), (VENDOR_TLV, b"\x00\xffkeep")],
        )))
        .await;
    let resp = s.response(seq).await;
    assert_eq!(resp.command_status, 0);
    let Body::SubmitMultiResp(Some(r)) = resp.body else {
        panic!("{resp:?}")
    };
    assert!(r.message_id.as_bytes().starts_with(b"n"), "the SMSC's id");
    let mut unsuccess: Vec<(String, u32)> = r
        .unsuccess_smes
        .iter()
        .map(|u| {
            (
                String::from_utf8_lossy(&u.addr).into_owned(),
                u.error_status_code,
            )
        })
        .collect();
    unsuccess.sort();
    assert_eq!(
        unsuccess,
        [
            (CONSENTED_SMSC_REFUSES.to_string(), status::ESME_RINVDSTADR), // by the SMSC
            (WITHDRAWN.to_string(), 0x402),                                // by the gate
            (UNKNOWN.to_string(), 0x401),
            ("friends".to_string(), 0x401), // a list's members cannot be checked
        ]
    );
    smsc.wait("the submit_multi", |s| s.pdus("submit_multi").len() == 1)
        .await;
    let multis = smsc.pdus("submit_multi");
    assert_eq!(
        multis[0]["dest_address"],
        json!([CONSENTED, CONSENTED_SMSC_REFUSES])
    );
    assert_eq!(multis[0]["short_message_hex"], hex(b"Toplu kampanya"));
    assert_eq!(multis[0]["tlvs"]["0x1520"], hex(b"\x00\xffkeep"));
    assert!(no_iys_tlvs(&multis[0]));

    // Every destination refused: the gate answers itself, nothing is sent.
    let seq = s
        .send(Body::SubmitMulti(multi(
            vec![sme(WITHDRAWN), sme(UNKNOWN)],
            b"Kampanya",
            &[(MSG_TYPE, b"11")],
        )))
        .await;
    let resp = s.response(seq).await;
    let Body::SubmitMultiResp(Some(r)) = resp.body else {
        panic!("{resp:?}")
    };
    let codes: Vec<u32> = r
        .unsuccess_smes
        .iter()
        .map(|u| u.error_status_code)
        .collect();
    assert_eq!(codes, [0x402, 0x401]);

    // Informational: every destination passes, the list included.
    let seq = s
        .send(Body::SubmitMulti(multi(
            vec![sme(WITHDRAWN), sme(UNKNOWN), dl],
            b"Bilgi",
            &[(MSG_TYPE, b"0")],
        )))
        .await;
    let resp = s.response(seq).await;
    let Body::SubmitMultiResp(Some(r)) = resp.body else {
        panic!("{resp:?}")
    };
    assert_eq!(r.unsuccess_smes.len(), 0);
    // Sent in order on one link: had the all-refused one been forwarded, the
    // SMSC would have recorded it before this one.
    smsc.wait("the second submit_multi", |s| {
        s.pdus("submit_multi").len() >= 2
    })
    .await;
    let multis = smsc.pdus("submit_multi");
    assert_eq!(multis.len(), 2, "{multis:#?}");
    assert_eq!(
        multis[1]["dest_address"],
        json!([WITHDRAWN, UNKNOWN, "DL:friends"])
    );
    g.gate.shutdown().await;
}

/// Every part of a concatenated message (UDH or SAR) gets the decision of its
/// first part, even when the consent changes between parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concatenated_parts_get_the_same_decision() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let mut s = Raw::bound(g.addr).await;
    let udh_part = |i: u8| {
        let mut sm = submit(
            CONSENTED,
            &[
                &[0x05u8, 0x00, 0x03, 0x2A, 0x03, i][..],
                format!("parca {i}").as_bytes(),
            ]
            .concat(),
            &[(MSG_TYPE, b"11")],
        );
        sm.esm_class = 0x40;
        sm
    };
    let single = |dest: &str| submit(dest, b"tek", &[(MSG_TYPE, b"11")]);

    // UDH: part 1 allowed; consent withdrawn; parts 2 and 3 still go.
    let seq = s.send(Body::SubmitSm(udh_part(1))).await;
    assert_eq!(s.response(seq).await.command_status, 0);
    push(&g, "05321111111", "RET").await;
    let seq = s.send(Body::SubmitSm(single(CONSENTED))).await;
    assert_eq!(
        s.response(seq).await.command_status,
        0x402,
        "the withdrawal applies to new messages"
    );
    for i in [2, 3] {
        let seq = s.send(Body::SubmitSm(udh_part(i))).await;
        assert_eq!(s.response(seq).await.command_status, 0, "UDH part {i}");
    }
    smsc.wait("three UDH parts", |s| {
        s.pdus("submit_sm")
            .iter()
            .filter(|r| r["esm_class"] == 0x40)
            .count()
            == 3
    })
    .await;
    let parts: Vec<Value> = smsc
        .pdus("submit_sm")
        .into_iter()
        .filter(|r| r["esm_class"] == 0x40)
        .collect();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        let want = [
            &[0x05u8, 0x00, 0x03, 0x2A, 0x03, i as u8 + 1][..],
            format!("parca {}", i + 1).as_bytes(),
        ]
        .concat();
        assert_eq!(p["short_message_hex"], hex(&want), "UDH intact");
    }

    // SAR: part 1 refused (no consent); consent given; part 2 still refused.
    let fresh = "905329999991";
    let sar_part = |i: u8| {
        let mut sm = submit(fresh, format!("sar {i}").as_bytes(), &[(MSG_TYPE, b"11")]);
        sm.tlvs.push(Tlv::from_u16(0x020C, 0xBEEF));
        sm.tlvs.push(Tlv::from_u8(0x020E, 2));
        sm.tlvs.push(Tlv::from_u8(0x020F, i));
        sm
    };
    let seq = s.send(Body::SubmitSm(sar_part(1))).await;
    assert_eq!(s.response(seq).await.command_status, 0x401);
    push(&g, "05329999991", "ONAY").await;
    let seq = s.send(Body::SubmitSm(single(fresh))).await;
    assert_eq!(s.response(seq).await.command_status, 0, "consent now given");
    let seq = s.send(Body::SubmitSm(sar_part(2))).await;
    assert_eq!(s.response(seq).await.command_status, 0x401, "SAR part 2");
    // A barrier: once this is recorded, anything forwarded before it is too.
    let seq = s
        .send(Body::SubmitSm(submit(UNKNOWN, b"son", &[(MSG_TYPE, b"0")])))
        .await;
    assert_eq!(s.response(seq).await.command_status, 0);
    smsc.wait("the barrier", |s| {
        s.pdus("submit_sm").iter().any(|r| r["text"] == "son")
    })
    .await;
    let sar_at_smsc = smsc
        .pdus("submit_sm")
        .iter()
        .filter(|r| r["known_tlvs"].get("sar_msg_ref_num").is_some())
        .count();
    assert_eq!(sar_at_smsc, 0);
    g.gate.shutdown().await;
}

/// Malformed input: unknown command → generic_nack, session stays up; a body
/// that does not decode → its own response with the matching status; a
/// length outside the limits → generic_nack and the session closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pdus_get_the_right_answers() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let mut s = Raw::bound(g.addr).await;

    // Unknown command id.
    s.send_bytes(&frame(0x0000_0999, 700, b"whatever")).await;
    let r = s.response(700).await;
    assert_eq!(r.command_id(), CommandId::GenericNack);
    assert_eq!(r.command_status, status::ESME_RINVCMDID);
    s.enquire_link_works().await;

    // Bodies that do not decode: each answered by its own response.
    let long_dest = [&b"\0\x01\x01\0\x01\x01"[..], &[b'9'; 30][..]].concat();
    let body_of = |sm: SubmitSm| Pdu::new(1, Body::SubmitSm(sm)).to_vec()[16..].to_vec();
    let mut sm_overrun = body_of(submit(UNKNOWN, b"abc", &[]));
    let at = sm_overrun.len() - 4;
    assert_eq!(sm_overrun[at], 3, "sm_length");
    sm_overrun[at] = 200;
    let mut tlv_overrun = body_of(submit(UNKNOWN, b"abc", &[(MSG_TYPE, b"0")]));
    tlv_overrun.extend_from_slice(&[0x15, 0x20, 0x00, 0x40, 1, 2]);
    let bad_class = body_of(submit(UNKNOWN, b"x", &[(MSG_TYPE, b"7")]));
    let cases: [(&str, u32, Vec<u8>, u32); 7] = [
        (
            "truncated submit_sm",
            0x04,
            b"\0\x01\x01ACME\0\x01".to_vec(),
            status::ESME_RINVCMDLEN,
        ),
        (
            "destination too long",
            0x04,
            long_dest,
            status::ESME_RINVDSTADR,
        ),
        (
            "sm_length past the end",
            0x04,
            sm_overrun,
            status::ESME_RINVMSGLEN,
        ),
        (
            "TLV past the end",
            0x04,
            tlv_overrun,
            status::ESME_RINVPARLEN,
        ),
        (
            "bad iys_message_type",
            0x04,
            bad_class,
            status::ESME_RINVOPTPARAMVAL,
        ),
        (
            "submit_multi with no destinations",
            0x21,
            b"\0\x05\0ACME\0\x00".to_vec(),
            status::ESME_RINVNUMDESTS,
        ),
        (
            "truncated data_sm",
            0x103,
            b"\0\x01".to_vec(),
            status::ESME_RINVCMDLEN,
        ),
    ];
    for (i, (what, id, body, want)) in cases.into_iter().enumerate() {
        let seq = 800 + i as u32;
        let f = frame(id, seq, &body);
        s.send_bytes(&f).await;
        let r = s.response(seq).await;
        assert_eq!(r.command_id().as_u32(), id | 0x8000_0000, "{what}: {r:?}");
        assert_eq!(r.command_status, want, "{what}");
        if let Err(e) = Pdu::decode(&f) {
            assert_eq!(e.command_status(), want, "{what}: the codec's own status");
        }
    }
    // A stray response matches nothing and gets no answer.
    s.send_bytes(&frame(0x8000_0005, 999, b"\0")).await;
    s.enquire_link_works().await;
    // The session still forwards.
    let seq = s
        .send(Body::SubmitSm(submit(
            UNKNOWN,
            b"hala calisiyor",
            &[(MSG_TYPE, b"0")],
        )))
        .await;
    assert_eq!(s.response(seq).await.command_status, 0);
    smsc.wait("the good message", |s| !s.pdus("submit_sm").is_empty())
        .await;
    assert_eq!(
        smsc.pdus("submit_sm").len(),
        1,
        "nothing malformed was forwarded"
    );
    assert_eq!(
        smsc.pdus("submit_multi").len() + smsc.pdus("data_sm").len(),
        0
    );

    // command_length below the header: generic_nack, then the session closes.
    s.send_bytes(&[0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 0]).await;
    let got = s.until_closed().await;
    assert_eq!(got[0].command_id(), CommandId::GenericNack, "{got:?}");
    assert_eq!(got[0].command_status, status::ESME_RINVCMDLEN);
    smsc.wait("the gate unbinds upstream", |s| s.pdus("unbind").len() == 1)
        .await;

    // Above the limit, bound or not.
    for bound in [true, false] {
        let mut s = if bound {
            Raw::bound(g.addr).await
        } else {
            Raw::connect(g.addr).await
        };
        let mut f = frame(0x04, 5, b"");
        // One octet over the default max_command_length.
        let over = iys_gate::smpp::codec::DEFAULT_MAX_COMMAND_LENGTH + 1;
        f[..4].copy_from_slice(&over.to_be_bytes());
        s.send_bytes(&f).await;
        let got = s.until_closed().await;
        assert_eq!(got[0].command_id(), CommandId::GenericNack, "bound={bound}");
        assert_eq!(got[0].command_status, status::ESME_RINVCMDLEN);
    }

    // Before the bind: an unknown command is nacked, a submit refused, and the
    // connection stays open for the bind.
    let mut s = Raw::connect(g.addr).await;
    s.send_bytes(&frame(0x0000_0999, 1, b"")).await;
    let r = s.response(1).await;
    assert_eq!(
        (r.command_id(), r.command_status),
        (CommandId::GenericNack, status::ESME_RINVCMDID)
    );
    s.seq = 1;
    let seq = s
        .send(Body::SubmitSm(submit(UNKNOWN, b"x", &[(MSG_TYPE, b"0")])))
        .await;
    let r = s.response(seq).await;
    assert_eq!(
        (r.command_id(), r.command_status),
        (CommandId::SubmitSmResp, status::ESME_RINVBNDSTS)
    );
    let seq = s
        .send(Body::BindTransceiver(bind(SYSTEM_ID, PASSWORD)))
        .await;
    assert_eq!(s.response(seq).await.command_status, 0);
    s.enquire_link_works().await;
    g.gate.shutdown().await;
}

/// The SMSC link drops with requests in flight: each is answered with
/// ESME_RSYSERR, the sender is unbound, and a new bind works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_drop_answers_in_flight_requests_and_unbinds() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let mut s = Raw::bound(g.addr).await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(
            s.send(Body::SubmitSm(submit(
                UNKNOWN,
                b"SMSC:hold",
                &[(MSG_TYPE, b"0")],
            )))
            .await,
        );
    }
    smsc.wait("three held messages", |s| s.pdus("submit_sm").len() == 3)
        .await;
    seqs.push(
        s.send(Body::SubmitSm(submit(
            UNKNOWN,
            b"SMSC:drop",
            &[(MSG_TYPE, b"0")],
        )))
        .await,
    );
    let got = s.until_closed().await;
    let mut answered: Vec<u32> = got
        .iter()
        .filter(|p| p.command_id() == CommandId::SubmitSmResp)
        .inspect(|p| assert_eq!(p.command_status, status::ESME_RSYSERR, "{p:?}"))
        .map(|p| p.sequence_number)
        .collect();
    answered.sort();
    assert_eq!(answered, seqs, "each in-flight request answered once");
    assert!(
        got.iter().any(|p| p.command_id() == CommandId::Unbind),
        "the gate unbinds the sender: {got:?}"
    );
    assert_eq!(got.len(), 5, "{got:?}");

    // The gate itself is fine: a new session binds to a new SMSC link.
    let mut s = Raw::bound(g.addr).await;
    let seq = s
        .send(Body::SubmitSm(submit(
            UNKNOWN,
            b"yeniden",
            &[(MSG_TYPE, b"0")],
        )))
        .await;
    assert_eq!(s.response(seq).await.command_status, 0);
    g.gate.shutdown().await;
}

/// The sender's unbind: requests still in flight are answered first, then the
/// unbind itself — whether the SMSC answers the gate's unbind, never answers
/// it, or drops the link instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_unbind_is_always_answered() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    for (i, mode) in ["", "mute-unbind", "drop-unbind"].into_iter().enumerate() {
        let started = Instant::now();
        let mut s = Raw::bound_as(g.addr, mode).await;
        let held = s
            .send(Body::SubmitSm(submit(
                UNKNOWN,
                b"SMSC:hold",
                &[(MSG_TYPE, b"0")],
            )))
            .await;
        smsc.wait("the held message", |s| s.pdus("submit_sm").len() == i + 1)
            .await;
        let unbind = s.send(Body::Unbind).await;
        let got = s.until_closed().await;
        let summary: Vec<(CommandId, u32, u32)> = got
            .iter()
            .map(|p| (p.command_id(), p.sequence_number, p.command_status))
            .collect();
        assert_eq!(
            summary,
            [
                (CommandId::SubmitSmResp, held, status::ESME_RSYSERR),
                (CommandId::UnbindResp, unbind, 0)
            ],
            "SMSC mode {mode:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{mode:?}: took {:?}",
            started.elapsed()
        );
    }
    g.gate.shutdown().await;
}

/// Receipts (deliver_sm) from the SMSC go back on the session that sent the
/// message, and the answers go back to the SMSC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_go_back_to_the_senders_session() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let mut a = Raw::bound(g.addr).await;
    let mut b = Raw::bound(g.addr).await;
    let mut ids = Vec::new();
    for (s, dest) in [(&mut a, CONSENTED), (&mut b, MERCHANT)] {
        let mut sm = submit(dest, b"makbuz", &[(MSG_TYPE, b"0")]);
        sm.registered_delivery = 1;
        let seq = s.send(Body::SubmitSm(sm)).await;
        let r = s.response(seq).await;
        assert_eq!(r.command_status, 0);
        let Body::SubmitSmResp(Some(r)) = r.body else {
            panic!()
        };
        ids.push(r.message_id.as_bytes().to_vec());
    }
    for (s, (id, dest)) in [&mut a, &mut b]
        .into_iter()
        .zip(ids.iter().zip([CONSENTED, MERCHANT]))
    {
        let dlr = s.recv().await.expect("receipt");
        let Body::DeliverSm(d) = &dlr.body else {
            panic!("{dlr:?}")
        };
        assert_eq!(d.esm_class, 0x04);
        assert_eq!(d.source_addr.as_bytes(), dest.as_bytes());
        assert_eq!(
            d.tlvs.receipted_message_id().unwrap(),
            Some(&id[..]),
            "each session gets its own receipt"
        );
        let resp = Pdu::new(
            dlr.sequence_number,
            Body::DeliverSmResp(Some(Default::default())),
        );
        s.send_bytes(&resp.to_vec()).await;
    }
    smsc.wait("both deliver_sm_resp", |s| {
        s.pdus("deliver_sm_resp").len() == 2
    })
    .await;
    let conns: Vec<Value> = smsc
        .pdus("deliver_sm_resp")
        .iter()
        .map(|r| r["conn"].clone())
        .collect();
    assert_ne!(conns[0], conns[1], "answered on each session's own link");
    g.gate.shutdown().await;
}

/// 50 connections of garbage — random bytes, truncated PDUs, huge lengths,
/// before and after binding — while a well-behaved session keeps working;
/// afterwards it still works and a new bind succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_leaves_the_gate_serving() {
    let smsc = Smsc::start();
    let g = gate(smsc.port, "", "").await;
    let addr = g.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let good = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut s = Raw::bound(addr).await;
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 5 {
                s.enquire_link_works().await;
                let seq = s
                    .send(Body::SubmitSm(submit(
                        UNKNOWN,
                        b"bilgi",
                        &[(MSG_TYPE, b"0")],
                    )))
                    .await;
                let r = s.response(seq).await;
                assert_eq!(r.command_status, 0, "good session, round {rounds}");
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (s, rounds)
        })
    };

    let mut tasks = Vec::new();
    for i in 0..50u64 {
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED + i);
            let mut s = if i % 5 >= 3 {
                Raw::bound(addr).await
            } else {
                Raw::connect(addr).await
            };
            let mut junk: Vec<u8> = Vec::new();
            let mut hang_up = true;
            match i % 5 {
                // Random bytes.
                0 | 3 => {
                    let n = rng.gen_range(1..600);
                    junk.extend((0..n).map(|_| rng.gen::<u8>()));
                }
                // A valid PDU cut short: closed early, or left hanging.
                1 => {
                    let whole =
                        Pdu::new(1, Body::BindTransceiver(bind(SYSTEM_ID, PASSWORD))).to_vec();
                    let cut = rng.gen_range(1..whole.len());
                    junk.extend_from_slice(&whole[..cut]);
                    hang_up = i % 2 == 0;
                }
                // A huge command_length.
                2 => {
                    junk.extend_from_slice(&frame(0x09, 1, b""));
                    let len: u32 = rng.gen_range(70_000..=u32::MAX);
                    junk[..4].copy_from_slice(&len.to_be_bytes());
                    junk.extend((0..64).map(|_| rng.gen::<u8>()));
                }
                // Well-framed PDUs with random ids and bodies, then a cut one.
                _ => {
                    let ids = [
                        0x04,
                        0x21,
                        0x103,
                        0x03,
                        0x08,
                        0x02,
                        0x0999,
                        0x8000_0004,
                        0x09,
                    ];
                    for k in 0..20 {
                        let body: Vec<u8> = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect();
                        let id = ids[rng.gen_range(0..ids.len())];
                        junk.extend_from_slice(&frame(id, 100 + k, &body));
                    }
                    let tail = frame(0x04, 200, &[1, 2, 3, 4, 5, 6, 7, 8]);
                    junk.extend_from_slice(&tail[..10]);
                }
            }
            s.send_bytes(&junk).await;
            if hang_up {
                let _ = s.s.shutdown().await;
            }
            // The gate must let go of every such connection (bind_timeout is 2 s).
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout_at(deadline.into(), s.s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                    Err(_) => panic!("garbage connection {i} still open after 5 s"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut s, rounds) = good.await.unwrap();
    assert!(rounds >= 5, "the good session kept going ({rounds} rounds)");
    s.enquire_link_works().await;
    let mut fresh = Raw::bound(g.addr).await;
    let seq = fresh
        .send(Body::SubmitSm(submit(
            UNKNOWN,
            b"yeni",
            &[(MSG_TYPE, b"0")],
        )))
        .await;
    assert_eq!(fresh.response(seq).await.command_status, 0);
    g.gate.shutdown().await;
}
