//! The SMPP proxy's session machinery, seen from the sender's side: TLS, the
//! bind, inactivity and response timers, keep-alive towards the SMSC, window
//! back-pressure, sequence-number remapping, traffic from the SMSC, rebinding
//! after a lost link, the SMSC's own unbind and enquire_link, transmitter and
//! receiver binds, the connection limit, and gating as the sender sees it
//! (data_sm refusals, 0x58 when the gate cannot decide, the İYS TLVs, monitor
//! mode and its audit trail).
//!
//! The sender is a raw socket speaking the crate's codec; the SMSC is a small
//! one written here with the same codec, either scripted step by step by the
//! test or answering on its own (`auto_smsc`). Timers are set short in the
//! gate's TOML so the whole file runs in a few seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use iys_gate::config::Config;
use iys_gate::serve::{start, RunningGate};
use iys_gate::smpp::codec::{
    frame_len, status, AlertNotification, Bind, BindResp, Body, COctetString, CancelSm, CommandId,
    DataSm, DataSmResp, OctetString, Pdu, QuerySm, QuerySmResp, ReplaceSm, SmppTime, SubmitSm,
    SubmitSmResp, Tlv, Tlvs,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
const SYSTEM_ID: &str = "acme";
const PASSWORD: &str = "secret1";
/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(5);

/// Consented (BIREYSEL, ONAY): commercial messages to it pass.
const CONSENTED: &str = "905321111111";
/// Not in the export: commercial messages to it get 0x401.
const UNKNOWN: &str = "905329999990";

const ROWS: &[&str] =
    &["700001,100001,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,"];

// ---------------------------------------------------------------------------
// The gate.

struct Gate {
    gate: RunningGate,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    /// The audit trail, when the gate writes one.
    audit: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Gate {
    /// Push a consent record for `recipient` with `status` (ONAY, RET)
    /// through the admin webhook, dated now.
    async fn push_consent(&self, recipient: &str, status: &str) -> reqwest::Response {
        let push = serde_json::json!({"iyscode": IYS, "brandcode": BRAND, "recipient": format!("+{recipient}"),
            "type": "MESAJ", "source": "HS_WEB", "status": status, "recipienttype": "BIREYSEL",
            "consentdate": iys_gate::consent::ConsentTime::now().to_string()});
        reqwest::Client::new()
            .post(format!("http://{}/v1/webhook", self.gate.admin_addr))
            .bearer_auth("proxy-test-webhook-secret-0123456789")
            .json(&push)
            .send()
            .await
            .unwrap()
    }

    /// The audit trail's lines once at least `n` are written, each parsed.
    async fn audit_records(&self, n: usize) -> Vec<serde_json::Value> {
        let path = self
            .audit
            .as_ref()
            .expect("a gate started with audit: true");
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
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
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What a gate starts with besides its `[smpp]` keys.
#[derive(Default)]
struct Setup<'a> {
    /// A TLS listener with this PEM certificate and key.
    tls: Option<(&'a str, &'a str)>,
    /// `[policy]` keys (one per line) in place of `max_data_age = "1h"`.
    policy: Option<&'a str>,
    /// No consent export to start from: the gate has no data at all.
    no_data: bool,
    /// Write the audit trail (`Gate::audit_records` reads it).
    audit: bool,
}

/// A gate in front of the SMSC on `upstream`; `smpp` adds or overrides keys
/// of `[smpp]` (one per line).
async fn gate(upstream: u16, smpp: &str) -> Gate {
    gate_with(upstream, smpp, Setup::default()).await
}

/// The same, with a TLS listener, other policy keys, no data or an audit
/// trail, as `setup` says.
async fn gate_with(upstream: u16, smpp: &str, setup: Setup<'_>) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    let mut text = String::from("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n");
    for r in ROWS {
        text += r;
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let bootstrap = if setup.no_data {
        String::new()
    } else {
        format!("bootstrap_csv = [{:?}]", csv.display().to_string())
    };
    let policy = setup.policy.unwrap_or("max_data_age = \"1h\"");
    let audit = setup.audit.then(|| dir.path().join("audit.jsonl"));
    let audit_table = match &audit {
        Some(path) => format!("[audit]\npath = {:?}", path.display().to_string()),
        None => String::new(),
    };
    let mut keys = smpp.to_string();
    for (k, v) in [
        ("bind_timeout", "\"2s\""),
        ("response_timeout", "\"2s\""),
        ("inactivity_timeout", "\"30s\""),
        ("enquire_link_interval", "\"30s\""),
    ] {
        let set = smpp.lines().any(|l| {
            l.trim_start()
                .strip_prefix(k)
                .is_some_and(|r| r.trim_start().starts_with('='))
        });
        if !set {
            keys += &format!("\n{k} = {v}");
        }
    }
    let tls_table = match setup.tls {
        None => String::new(),
        Some((cert, key)) => {
            let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&c, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            format!(
                "[smpp.tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
                c.display().to_string(),
                k.display().to_string()
            )
        }
    };
    let toml = format!(
        r#"[admin]
listen = "127.0.0.1:0"
[store]
{bootstrap}
[policy]
{policy}
{audit_table}
[registry]
base_url = "http://127.0.0.1:9"
username = "u"
password = "p"
poll_interval = "60s"
max_backoff = "60s"
request_timeout = "1s"
[webhook]
secret = "proxy-test-webhook-secret-0123456789"
[[brands]]
iys_code = {IYS}
brand_code = {BRAND}
[smpp]
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{upstream}"
{keys}
{tls_table}
[[smpp.accounts]]
system_id = "{SYSTEM_ID}"
password = "{PASSWORD}"
iys_code = {IYS}
brand_code = {BRAND}
"#
    );
    let config = Config::from_toml(&toml, "proxy").unwrap();
    let gate = start(config).await.unwrap();
    Gate {
        addr: gate.smpp_addr.expect("smpp listener"),
        tls_addr: gate.smpp_tls_addr,
        audit,
        gate,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------
// One end of an SMPP link (the sender, or the SMSC's side of the gate's link).

#[allow(clippy::large_enum_variant)]
enum Got {
    Pdu(Pdu),
    Closed,
    Quiet,
}

struct Peer<S> {
    s: S,
    buf: BytesMut,
    seq: u32,
}

impl Peer<TcpStream> {
    async fn connect(addr: SocketAddr) -> Self {
        Peer::new(TcpStream::connect(addr).await.unwrap())
    }

    /// Connect and bind as a transceiver; asserts the bind succeeded.
    async fn bound(addr: SocketAddr) -> Self {
        let mut p = Peer::connect(addr).await;
        p.bind().await;
        p
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    fn new(s: S) -> Self {
        Peer {
            s,
            buf: BytesMut::new(),
            seq: 0,
        }
    }

    async fn bind(&mut self) {
        self.bind_as(CommandId::BindTransceiver).await;
    }

    /// Bind as a transmitter, receiver or transceiver; asserts it succeeded.
    async fn bind_as(&mut self, kind: CommandId) {
        let b = bind(SYSTEM_ID, PASSWORD);
        let (body, resp_id) = match kind {
            CommandId::BindTransmitter => {
                (Body::BindTransmitter(b), CommandId::BindTransmitterResp)
            }
            CommandId::BindReceiver => (Body::BindReceiver(b), CommandId::BindReceiverResp),
            CommandId::BindTransceiver => {
                (Body::BindTransceiver(b), CommandId::BindTransceiverResp)
            }
            other => panic!("{other:?} is not a bind"),
        };
        let seq = self.send(body).await;
        let resp = self.recv().await.expect("bind response");
        assert_eq!(resp.sequence_number, seq);
        assert_eq!(resp.command_id(), resp_id);
        assert_eq!(resp.command_status, status::ESME_ROK, "bind refused");
    }

    /// A request with the next sequence number of this peer's own.
    async fn send(&mut self, body: Body) -> u32 {
        self.seq += 1;
        self.send_seq(self.seq, body).await;
        self.seq
    }

    async fn send_seq(&mut self, seq: u32, body: Body) {
        self.send_pdu(&Pdu::new(seq, body)).await;
    }

    async fn send_pdu(&mut self, pdu: &Pdu) {
        self.s.write_all(&pdu.to_vec()).await.unwrap();
    }

    /// The next PDU within `d`.
    async fn next_within(&mut self, d: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(n) = frame_len(&self.buf, u32::MAX).expect("peer sent a bad frame") {
                let frame = self.buf.split_to(n).freeze();
                return Got::Pdu(Pdu::decode_bytes(frame).expect("peer sent an undecodable PDU"));
            }
            match tokio::time::timeout_at(deadline, self.s.read_buf(&mut self.buf)).await {
                Err(_) => return Got::Quiet,
                Ok(Ok(0)) | Ok(Err(_)) => return Got::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next PDU, `None` once the other side closed; panics after `WAIT`.
    async fn recv(&mut self) -> Option<Pdu> {
        match self.next_within(WAIT).await {
            Got::Pdu(p) => Some(p),
            Got::Closed => None,
            Got::Quiet => panic!("nothing arrived within {WAIT:?}"),
        }
    }

    /// The next PDU, which must be the response to `seq`.
    async fn response(&mut self, seq: u32) -> Pdu {
        let pdu = self
            .recv()
            .await
            .expect("connection closed before the response");
        let id = pdu.command_id();
        assert!(
            pdu.sequence_number == seq && id.is_response(),
            "expected the response to {seq}, got {pdu:?}"
        );
        pdu
    }

    /// Nothing arrives for `d` (and the link stays open).
    async fn quiet(&mut self, d: Duration, what: &str) {
        match self.next_within(d).await {
            Got::Quiet => {}
            Got::Pdu(p) => panic!("{what}: unexpected {p:?}"),
            Got::Closed => panic!("{what}: connection closed"),
        }
    }

    /// Read until the other side closes, answering its unbind; what came.
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

    async fn submit_ok(&mut self, dest: &str, text: &str) -> String {
        let seq = self.send(Body::SubmitSm(submit(dest, text))).await;
        let r = self.response(seq).await;
        assert_eq!(r.command_status, status::ESME_ROK, "{r:?}");
        message_id(&r)
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

fn submit(dest: &str, text: &str) -> SubmitSm {
    SubmitSm {
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: COctetString::copy_from(dest.as_bytes()).unwrap(),
        short_message: OctetString::copy_from(text.as_bytes()).unwrap(),
        ..Default::default()
    }
}

/// A data_sm with its text in message_payload.
fn data_sm(dest: &str, payload: &str) -> DataSm {
    let mut tlvs = Tlvs::new();
    tlvs.push(Tlv::new(0x0424, Bytes::copy_from_slice(payload.as_bytes())).unwrap());
    DataSm {
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: COctetString::copy_from(dest.as_bytes()).unwrap(),
        tlvs,
        ..Default::default()
    }
}

fn data_sm_resp(seq: u32, id: &str) -> Pdu {
    Pdu::new(
        seq,
        Body::DataSmResp(Some(DataSmResp {
            message_id: COctetString::copy_from(id.as_bytes()).unwrap(),
            tlvs: Tlvs::new(),
        })),
    )
}

/// An informational message (TLV 0x1400 "0"): it needs no consent.
fn informational(dest: &str, text: &str) -> SubmitSm {
    let mut sm = submit(dest, text);
    sm.tlvs.push(Tlv::new(0x1400, &b"0"[..]).unwrap());
    sm
}

fn submit_resp(seq: u32, id: &str) -> Pdu {
    Pdu::new(
        seq,
        Body::SubmitSmResp(Some(SubmitSmResp {
            message_id: COctetString::copy_from(id.as_bytes()).unwrap(),
            tlvs: Tlvs::new(),
        })),
    )
}

fn text(pdu: &Pdu) -> String {
    match &pdu.body {
        Body::SubmitSm(sm) => String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned(),
        other => panic!("not a submit_sm: {other:?}"),
    }
}

fn message_id(pdu: &Pdu) -> String {
    match &pdu.body {
        Body::SubmitSmResp(Some(r)) => String::from_utf8_lossy(r.message_id.as_bytes()).into(),
        Body::DataSmResp(Some(r)) => String::from_utf8_lossy(r.message_id.as_bytes()).into(),
        other => panic!("no submit_sm_resp or data_sm_resp body: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The SMSC.

/// An SMSC the test drives: it accepts the gate's connections one by one.
struct FakeSmsc {
    listener: TcpListener,
    port: u16,
}

impl FakeSmsc {
    async fn new() -> FakeSmsc {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        FakeSmsc { listener, port }
    }

    async fn accept(&self) -> Peer<TcpStream> {
        let (s, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the gate did not connect to the SMSC")
            .unwrap();
        Peer::new(s)
    }

    /// Accept the gate's connection and accept its bind; the bind PDU.
    async fn accept_bound(&self) -> (Peer<TcpStream>, Pdu) {
        let mut p = self.accept().await;
        let b = p.recv().await.expect("bind from the gate");
        answer_bind(&mut p, &b).await;
        (p, b)
    }
}

async fn answer_bind<S: AsyncRead + AsyncWrite + Unpin>(p: &mut Peer<S>, b: &Pdu) {
    let resp = Some(BindResp {
        system_id: COctetString::copy_from(b"fakesmsc").unwrap(),
        tlvs: Tlvs::new(),
    });
    let body = match b.command_id() {
        CommandId::BindTransmitter => Body::BindTransmitterResp(resp),
        CommandId::BindReceiver => Body::BindReceiverResp(resp),
        CommandId::BindTransceiver => Body::BindTransceiverResp(resp),
        other => panic!("the gate's first PDU is {other:?}, not a bind"),
    };
    p.send_pdu(&Pdu::new(b.sequence_number, body)).await;
}

/// What an answering SMSC received: (connection number, PDU).
#[derive(Default)]
struct Received {
    pdus: Mutex<Vec<(usize, Pdu)>>,
    conns: AtomicUsize,
}

impl Received {
    fn all(&self) -> Vec<(usize, Pdu)> {
        self.pdus.lock().unwrap().clone()
    }

    fn of(&self, command: CommandId) -> Vec<(usize, Pdu)> {
        self.all()
            .into_iter()
            .filter(|(_, p)| p.command_id() == command)
            .collect()
    }

    /// The texts of the submit_sm PDUs that arrived, in order.
    fn submitted_texts(&self) -> Vec<String> {
        self.of(CommandId::SubmitSm)
            .iter()
            .map(|(_, p)| text(p))
            .collect()
    }

    async fn wait(&self, what: &str, pred: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "SMSC: {what} did not happen; got {:#?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// An SMSC that answers by itself: binds, submit_sm (message id "m<n>"),
/// enquire_link, unbind (then closes). A submit_sm with text "SMSC:hold" is
/// not answered.
fn auto_smsc(fake: FakeSmsc) -> Arc<Received> {
    let log = Arc::new(Received::default());
    let rec = log.clone();
    tokio::spawn(async move {
        let ids = Arc::new(AtomicUsize::new(0));
        loop {
            let Ok((s, _)) = fake.listener.accept().await else {
                return;
            };
            let conn = rec.conns.fetch_add(1, Ordering::SeqCst) + 1;
            let (rec, ids) = (rec.clone(), ids.clone());
            tokio::spawn(async move {
                let mut p = Peer::new(s);
                loop {
                    let pdu = match p.next_within(Duration::from_secs(3600)).await {
                        Got::Pdu(pdu) => pdu,
                        _ => return,
                    };
                    rec.pdus.lock().unwrap().push((conn, pdu.clone()));
                    let seq = pdu.sequence_number;
                    match pdu.command_id() {
                        CommandId::BindTransmitter
                        | CommandId::BindReceiver
                        | CommandId::BindTransceiver => answer_bind(&mut p, &pdu).await,
                        CommandId::SubmitSm if text(&pdu) == "SMSC:hold" => {}
                        CommandId::SubmitSm => {
                            let n = ids.fetch_add(1, Ordering::SeqCst) + 1;
                            p.send_pdu(&submit_resp(seq, &format!("m{n}"))).await;
                        }
                        CommandId::EnquireLink => p.send_seq(seq, Body::EnquireLinkResp).await,
                        CommandId::Unbind => {
                            p.send_seq(seq, Body::UnbindResp).await;
                            return;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    log
}

/// Write `chunk` again and again until a write does not finish within 500 ms
/// (the gate stopped reading); the bytes written. Panics if the connection
/// closes or the gate takes 256 MiB without pushing back.
async fn write_until_blocked(s: &mut TcpStream, chunk: &[u8]) -> usize {
    let mut written = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), s.write_all(chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => panic!("the gate closed the connection before pushing back: {e}"),
            Err(_) => return written,
        }
        assert!(
            written < 256 << 20,
            "the gate took {written} bytes without pushing back"
        );
    }
}

/// A gate in front of an [`auto_smsc`], as [`gate_with`] sets it up; the
/// gate and what the SMSC receives.
async fn auto_gate(smpp: &str, setup: Setup<'_>) -> (Gate, Arc<Received>) {
    let fake = FakeSmsc::new().await;
    let port = fake.port;
    let smsc = auto_smsc(fake);
    (gate_with(port, smpp, setup).await, smsc)
}

// ---------------------------------------------------------------------------
// The tests.

/// TLS beside plain TCP: a rustls client trusting a self-signed certificate
/// binds over TLS and is gated like any sender; plain TCP keeps working; a
/// client that never finishes the handshake is dropped after bind_timeout
/// (and does not hold up the others meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_beside_plain_tcp() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let fake = FakeSmsc::new().await;
    let port = fake.port;
    let smsc = auto_smsc(fake);
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let g = gate_with(
        port,
        "bind_timeout = \"700ms\"",
        Setup {
            tls: Some((&cert, &key)),
            ..Setup::default()
        },
    )
    .await;
    let tls_addr = g.tls_addr.expect("TLS listener");

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
    let tls_over = |tcp: TcpStream| async {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake");
        Peer::new(stream)
    };

    // A client that connects and never says hello, and one that takes its
    // time over the handshake and then never binds.
    let stalled_at = Instant::now();
    let mut stalled = Peer::connect(tls_addr).await;
    let slow_tcp = TcpStream::connect(tls_addr).await.unwrap();
    let slow = {
        let connector = connector.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(450)).await;
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            connector
                .connect(name, slow_tcp)
                .await
                .expect("slow TLS handshake")
        })
    };

    let mut tls = tls_over(TcpStream::connect(tls_addr).await.unwrap()).await;
    tls.bind().await;
    assert!(
        stalled_at.elapsed() < Duration::from_millis(600),
        "the TLS session had to wait for the stalled handshake: {:?}",
        stalled_at.elapsed()
    );

    let id = tls.submit_ok(CONSENTED, "tls ok").await;
    assert!(id.starts_with('m'), "{id}");
    let seq = tls
        .send(Body::SubmitSm(submit(UNKNOWN, "tls refused")))
        .await;
    let r = tls.response(seq).await;
    assert_eq!(r.command_id(), CommandId::SubmitSmResp);
    assert_eq!(r.command_status, 0x401, "unconsented over TLS");
    let submits = smsc.of(CommandId::SubmitSm);
    assert_eq!(submits.len(), 1, "{submits:?}");
    assert_eq!(text(&submits[0].1), "tls ok");

    // Plain TCP beside it.
    let mut plain = Peer::bound(g.addr).await;
    plain.submit_ok(CONSENTED, "plain ok").await;
    assert_eq!(
        smsc.conns.load(Ordering::SeqCst),
        2,
        "one SMSC link per session"
    );

    // Both are dropped at bind_timeout: the handshake counts against it.
    match stalled.next_within(Duration::from_secs(3)).await {
        Got::Closed => {}
        Got::Pdu(p) => panic!("stalled client got {p:?}"),
        Got::Quiet => panic!("a client that never finishes the TLS handshake stays connected"),
    }
    let t = stalled_at.elapsed();
    assert!(
        t >= Duration::from_millis(600) && t < Duration::from_millis(1500),
        "stalled handshake dropped after {t:?}, bind_timeout is 700ms"
    );
    let mut slow = Peer::new(slow.await.unwrap());
    match slow.next_within(Duration::from_secs(3)).await {
        Got::Closed => {}
        Got::Pdu(p) => panic!("unbound TLS client got {p:?}"),
        Got::Quiet => panic!("a TLS client that never binds stays connected"),
    }
    let t = stalled_at.elapsed();
    assert!(
        t >= Duration::from_millis(600) && t < Duration::from_millis(1050),
        "unbound TLS client dropped {t:?} after connecting, bind_timeout is 700ms"
    );
    // The TLS session outlives it (it is bound, the bind timer no longer applies).
    tls.enquire_link_works().await;
    tls.submit_ok(CONSENTED, "tls again").await;
    g.gate.halt().await;
}

/// A request the SMSC never answers gets ESME_RSYSERR after
/// response_timeout, exactly once; the SMSC's late answer is dropped; answered
/// requests never time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_timer_answers_once_and_drops_the_late_answer() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "response_timeout = \"500ms\"").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    let held = s.send(Body::SubmitSm(submit(CONSENTED, "held"))).await;
    let sent = Instant::now();
    let req = smsc.recv().await.expect("the held submit");
    assert_eq!(text(&req), "held");

    let r = s.response(held).await;
    let t = sent.elapsed();
    assert_eq!(r.command_id(), CommandId::SubmitSmResp);
    assert_eq!(r.command_status, status::ESME_RSYSERR);
    assert!(
        t >= Duration::from_millis(450) && t < Duration::from_millis(1500),
        "timed out after {t:?}, response_timeout is 500ms"
    );

    // The SMSC answers late, then answers the next request at once.
    smsc.send_pdu(&submit_resp(req.sequence_number, "late"))
        .await;
    let next = s.send(Body::SubmitSm(submit(CONSENTED, "next"))).await;
    let req2 = smsc.recv().await.expect("the next submit");
    assert_eq!(text(&req2), "next");
    smsc.send_pdu(&submit_resp(req2.sequence_number, "ok2"))
        .await;
    // Nothing between: the late answer was not forwarded.
    let r = s.response(next).await;
    assert_eq!((r.command_status, message_id(&r)), (0, "ok2".to_string()));
    // And no second answer for either, timer or otherwise.
    s.quiet(Duration::from_millis(900), "after both answers")
        .await;
    s.enquire_link_works().await;

    // The other way: a deliver_sm the sender leaves unanswered gets a
    // temporary error towards the SMSC, once; the sender's late answer is dropped.
    smsc.send_seq(500, Body::DeliverSm(submit("ACME", "mo")))
        .await;
    let sent = Instant::now();
    let mo = s.recv().await.expect("deliver_sm");
    assert_eq!(mo.command_id(), CommandId::DeliverSm);
    let r = smsc.recv().await.expect("deliver_sm_resp from the gate");
    let t = sent.elapsed();
    assert_eq!(
        (r.command_id(), r.sequence_number, r.command_status),
        (CommandId::DeliverSmResp, 500, status::ESME_RX_T_APPN)
    );
    assert!(
        t >= Duration::from_millis(450) && t < Duration::from_millis(1500),
        "{t:?}"
    );
    s.send_pdu(&Pdu::new(
        mo.sequence_number,
        Body::DeliverSmResp(Some(Default::default())),
    ))
    .await;
    smsc.quiet(Duration::from_millis(700), "the late deliver_sm_resp")
        .await;
    g.gate.halt().await;
}

/// A bound sender silent past inactivity_timeout is unbound and disconnected,
/// and the SMSC link is unbound too; a sender that keeps the link alive with
/// enquire_link is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_timer_unbinds_a_silent_sender() {
    let (g, smsc) = auto_gate("inactivity_timeout = \"700ms\"", Setup::default()).await;
    let bound_at = Instant::now();
    let mut silent = Peer::bound(g.addr).await;
    smsc.wait("first session bound", |r| r.all().len() == 1)
        .await;
    let mut chatty = Peer::bound(g.addr).await;

    let pinger = async {
        let until = Instant::now() + Duration::from_millis(1600);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            chatty.enquire_link_works().await;
        }
    };
    let watcher = async {
        let got = silent.until_closed().await;
        let t = bound_at.elapsed();
        assert!(
            matches!(got.as_slice(), [p] if p.command_id() == CommandId::Unbind),
            "the silent sender gets one unbind, then the close: {got:?}"
        );
        assert!(
            t >= Duration::from_millis(650) && t < Duration::from_millis(3000),
            "unbound after {t:?}, inactivity_timeout is 700ms"
        );
    };
    tokio::join!(pinger, watcher);
    // The SMSC saw the unbind on the silent session's link (connection 1) only.
    smsc.wait("unbind on link 1", |r| !r.of(CommandId::Unbind).is_empty())
        .await;
    let unbinds: Vec<usize> = smsc.of(CommandId::Unbind).iter().map(|(c, _)| *c).collect();
    assert_eq!(unbinds, [1]);
    // The chatty one is still bound and works.
    chatty.submit_ok(CONSENTED, "still here").await;
    g.gate.halt().await;
}

/// A connection that never binds is closed at bind_timeout, and enquire_link
/// before the bind does not extend it; a bound session outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_timer_closes_connections_that_never_bind() {
    let (g, smsc) = auto_gate("bind_timeout = \"500ms\"", Setup::default()).await;
    let started = Instant::now();
    let mut idle = Peer::connect(g.addr).await;
    let mut pinging = Peer::connect(g.addr).await;
    let mut late_binder = Peer::connect(g.addr).await;

    let idle_check = async {
        match idle.next_within(Duration::from_secs(3)).await {
            Got::Closed => {}
            Got::Pdu(p) => panic!("unbound connection got {p:?}"),
            Got::Quiet => panic!("a connection that never binds stays open"),
        }
        let t = started.elapsed();
        assert!(
            t >= Duration::from_millis(450) && t < Duration::from_millis(1500),
            "closed after {t:?}, bind_timeout is 500ms"
        );
    };
    let ping_check = async {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            pinging.enquire_link_works().await;
        }
        match pinging.next_within(Duration::from_secs(3)).await {
            Got::Closed => {}
            Got::Pdu(p) => panic!("unbound connection got {p:?}"),
            Got::Quiet => panic!("enquire_link kept an unbound connection open"),
        }
        let t = started.elapsed();
        assert!(t < Duration::from_millis(1500), "closed after {t:?}");
    };
    let bind_check = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        late_binder.bind().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        late_binder.submit_ok(CONSENTED, "bound in time").await;
    };
    tokio::join!(idle_check, ping_check, bind_check);
    assert_eq!(
        smsc.conns.load(Ordering::SeqCst),
        1,
        "only the bound session reached the SMSC"
    );
    g.gate.halt().await;
}

/// With an idle sender, the gate keeps the SMSC link alive with its own
/// enquire_link (the sender sees none of it); when the SMSC stops answering,
/// the link counts as lost and the sender is unbound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_probes_the_smsc_and_detects_a_dead_link() {
    let fake = FakeSmsc::new().await;
    let g = gate(
        fake.port,
        "enquire_link_interval = \"300ms\"\nresponse_timeout = \"500ms\"",
    )
    .await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());
    let bound = Instant::now();

    let mut probes = Vec::new();
    for _ in 0..2 {
        let p = smsc.recv().await.expect("enquire_link from the gate");
        assert_eq!(p.command_id(), CommandId::EnquireLink, "{p:?}");
        probes.push(Instant::now());
        smsc.send_seq(p.sequence_number, Body::EnquireLinkResp)
            .await;
    }
    let first = probes[0] - bound;
    let gap = probes[1] - probes[0];
    assert!(
        first >= Duration::from_millis(250) && first < Duration::from_millis(1000),
        "first probe after {first:?}, interval 300ms"
    );
    assert!(
        gap >= Duration::from_millis(250) && gap < Duration::from_millis(1000),
        "probes {gap:?} apart, interval 300ms"
    );

    // The third probe goes unanswered.
    let p = smsc.recv().await.expect("third enquire_link");
    assert_eq!(p.command_id(), CommandId::EnquireLink, "{p:?}");
    let unanswered = Instant::now();
    let got = s.until_closed().await;
    let t = unanswered.elapsed();
    assert!(
        matches!(got.as_slice(), [u] if u.command_id() == CommandId::Unbind),
        "the sender sees nothing of the probes, then one unbind: {got:?}"
    );
    assert!(
        t >= Duration::from_millis(400) && t < Duration::from_millis(2000),
        "link declared lost {t:?} after the unanswered probe (response_timeout 500ms)"
    );
    // The gate lets go of the SMSC link too.
    let rest = smsc.until_closed().await;
    assert!(
        rest.iter()
            .all(|p| matches!(p.command_id(), CommandId::EnquireLink | CommandId::Unbind)),
        "{rest:?}"
    );
    g.gate.halt().await;
}

/// window = 4 and an SMSC holding its answers: 50 pipelined submit_sm never
/// put more than 4 in flight at the SMSC; a receipt's deliver_sm_resp sent
/// behind them still reaches the SMSC while the window is full (no deadlock);
/// then every submit gets exactly one response, with the sender's own
/// sequence number, and the enquire_link parked among them is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_applies_back_pressure_without_deadlock() {
    const N: u32 = 50;
    const WINDOW: usize = 4;
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "window = 4\nresponse_timeout = \"10s\"").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    let smsc_side = async {
        let mut held: Vec<Pdu> = Vec::new();
        while held.len() < WINDOW {
            let p = smsc.recv().await.expect("submit_sm");
            assert_eq!(p.command_id(), CommandId::SubmitSm, "{p:?}");
            held.push(p);
        }
        smsc.quiet(
            Duration::from_millis(300),
            "window of 4 full: nothing more may arrive",
        )
        .await;
        // A receipt while the window is full; its answer must come through.
        let mut dlr = submit("ACME", "id:x stat:DELIVRD");
        dlr.esm_class = 0x04;
        smsc.send_seq(9001, Body::DeliverSm(dlr)).await;
        match smsc.next_within(WAIT).await {
            Got::Pdu(p) => {
                assert_eq!(p.command_id(), CommandId::DeliverSmResp, "{p:?}");
                assert_eq!(p.sequence_number, 9001);
            }
            Got::Quiet => panic!(
                "deadlock: the sender's deliver_sm_resp did not reach the SMSC while the window was full"
            ),
            Got::Closed => panic!("link closed"),
        }
        // Now answer, newest first, whatever is held whenever the gate pauses.
        let mut answered = 0u32;
        let deadline = Instant::now() + WAIT;
        while answered < N {
            assert!(Instant::now() < deadline, "only {answered} answered");
            match smsc.next_within(Duration::from_millis(50)).await {
                Got::Pdu(p) => {
                    assert_eq!(p.command_id(), CommandId::SubmitSm, "{p:?}");
                    held.push(p);
                    assert!(held.len() <= WINDOW, "{} in flight at the SMSC", held.len());
                }
                Got::Quiet => {
                    while let Some(p) = held.pop() {
                        smsc.send_pdu(&submit_resp(p.sequence_number, &text(&p)))
                            .await;
                        answered += 1;
                    }
                }
                Got::Closed => panic!("link closed"),
            }
        }
    };
    let sender_side = async {
        let mut burst = Vec::new();
        for i in 1..=N {
            burst.extend(Pdu::new(i, Body::SubmitSm(submit(CONSENTED, &format!("w{i}")))).to_vec());
        }
        s.s.write_all(&burst).await.unwrap();
        s.seq = N;
        let dlr = s.recv().await.expect("the receipt");
        assert_eq!(
            dlr.command_id(),
            CommandId::DeliverSm,
            "first thing back: {dlr:?}"
        );
        let enquire = s.send(Body::EnquireLink).await;
        s.send_pdu(&Pdu::new(
            dlr.sequence_number,
            Body::DeliverSmResp(Some(Default::default())),
        ))
        .await;
        let mut seen = std::collections::BTreeSet::new();
        let mut enquire_answered = false;
        while seen.len() < N as usize || !enquire_answered {
            let p = s.recv().await.expect("connection closed");
            match p.command_id() {
                CommandId::SubmitSmResp => {
                    assert_eq!(p.command_status, 0, "{p:?}");
                    assert_eq!(message_id(&p), format!("w{}", p.sequence_number));
                    assert!(seen.insert(p.sequence_number), "two answers for {p:?}");
                }
                CommandId::EnquireLinkResp => {
                    assert_eq!(p.sequence_number, enquire);
                    assert!(!enquire_answered);
                    enquire_answered = true;
                }
                _ => panic!("unexpected {p:?}"),
            }
        }
        assert_eq!(seen, (1..=N).collect());
        s.quiet(Duration::from_millis(200), "after all answers")
            .await;
    };
    tokio::join!(smsc_side, sender_side);
    g.gate.halt().await;
}

/// The sender's sequence numbers collide with the gate's own on both legs:
/// it uses the number of the gate's outstanding deliver_sm to it, 1, 2, 3 and
/// 0x7FFFFFFF, while the gate probes the SMSC, and the SMSC numbers its own
/// requests like the gate's pending ones. Every answer maps back to the
/// request it belongs to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_are_remapped_both_ways() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "enquire_link_interval = \"200ms\"").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    // The SMSC's own request first.
    smsc.send_seq(2, Body::DeliverSm(submit("ACME", "mo")))
        .await;
    let mo = s.recv().await.expect("deliver_sm");
    assert_eq!(mo.command_id(), CommandId::DeliverSm);

    let mut seqs = vec![mo.sequence_number, 1, 2, 3, 0x7FFF_FFFF];
    seqs.sort();
    seqs.dedup();
    for &seq in &seqs {
        s.send_seq(seq, Body::SubmitSm(submit(CONSENTED, &format!("s{seq}"))))
            .await;
    }
    let mut held = Vec::new();
    let mut probed = false;
    while held.len() < seqs.len() || !probed {
        let p = smsc.recv().await.expect("gate link");
        match p.command_id() {
            CommandId::SubmitSm => held.push(p),
            CommandId::EnquireLink => {
                probed = true;
                smsc.send_seq(p.sequence_number, Body::EnquireLinkResp)
                    .await;
            }
            _ => panic!("unexpected {p:?}"),
        }
    }
    let mut up: Vec<u32> = held.iter().map(|p| p.sequence_number).collect();
    up.sort();
    up.dedup();
    assert_eq!(up.len(), seqs.len(), "distinct upstream numbers: {held:?}");
    // A request of the SMSC's numbered like one the gate waits on.
    let clash = held[0].sequence_number;
    smsc.send_seq(clash, Body::DataSm(DataSm::default())).await;
    // Answer newest first, with the text as the message id.
    for p in held.iter().rev() {
        smsc.send_pdu(&submit_resp(p.sequence_number, &text(p)))
            .await;
    }
    let data = s.recv().await.expect("data_sm");
    assert_eq!(data.command_id(), CommandId::DataSm, "{data:?}");
    assert_ne!(data.sequence_number, mo.sequence_number);
    let mut got = Vec::new();
    for _ in &seqs {
        let p = s.recv().await.expect("submit_sm_resp");
        assert_eq!(p.command_id(), CommandId::SubmitSmResp, "{p:?}");
        assert_eq!(message_id(&p), format!("s{}", p.sequence_number), "{p:?}");
        got.push(p.sequence_number);
    }
    got.sort();
    assert_eq!(got, seqs);
    // Now the sender answers the SMSC's two requests.
    s.send_pdu(&Pdu::new(
        data.sequence_number,
        Body::DataSmResp(Some(Default::default())),
    ))
    .await;
    s.send_pdu(&Pdu::new(
        mo.sequence_number,
        Body::DeliverSmResp(Some(Default::default())),
    ))
    .await;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let p = smsc.recv().await.expect("the sender's answers");
        match p.command_id() {
            CommandId::EnquireLink => {
                smsc.send_seq(p.sequence_number, Body::EnquireLinkResp)
                    .await
            }
            _ => answers.push((p.command_id(), p.sequence_number)),
        }
    }
    assert_eq!(
        answers,
        [
            (CommandId::DataSmResp, clash),
            (CommandId::DeliverSmResp, 2)
        ],
        "under the SMSC's own numbers"
    );
    s.quiet(Duration::from_millis(300), "everything answered once")
        .await;
    g.gate.halt().await;
}

/// From the SMSC: an MO deliver_sm, a data_sm and an alert_notification reach
/// the sender intact under the gate's numbers, and the sender's answers reach
/// the SMSC under the SMSC's (statuses kept). From the sender: query_sm,
/// cancel_sm and replace_sm are forwarded intact and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsc_requests_and_query_cancel_replace_pass_through() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    let mut mo = submit("ACME", "merhaba");
    mo.source_addr = COctetString::copy_from(CONSENTED.as_bytes()).unwrap();
    let mut tlvs = Tlvs::new();
    tlvs.push(Tlv::new(0x0424, Bytes::from_static(b"payload")).unwrap());
    let data = DataSm {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: COctetString::copy_from(CONSENTED.as_bytes()).unwrap(),
        destination_addr: COctetString::copy_from(b"ACME").unwrap(),
        tlvs,
        ..Default::default()
    };
    let alert = AlertNotification {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: COctetString::copy_from(CONSENTED.as_bytes()).unwrap(),
        esme_addr_ton: 5,
        esme_addr: COctetString::copy_from(b"ACME").unwrap(),
        ..Default::default()
    };
    let sent = [
        Pdu::new(1000, Body::DeliverSm(mo)),
        Pdu::new(2000, Body::DataSm(data)),
        Pdu::new(3000, Body::AlertNotification(alert)),
    ];
    for p in &sent {
        smsc.send_pdu(p).await;
    }
    let mut down = Vec::new();
    for want in &sent {
        let p = s.recv().await.expect("from the SMSC");
        assert_eq!(p.body, want.body, "forwarded intact");
        assert_ne!(p.sequence_number, want.sequence_number, "remapped: {p:?}");
        down.push(p.sequence_number);
    }
    let mut distinct = down.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{down:?}");

    // Answers, in the other order, one with a status of the sender's.
    s.send_pdu(&Pdu {
        command_status: status::ESME_RX_T_APPN,
        sequence_number: down[1],
        body: Body::DataSmResp(Some(DataSmResp {
            message_id: COctetString::copy_from(b"d1").unwrap(),
            tlvs: Tlvs::new(),
        })),
    })
    .await;
    s.send_pdu(&Pdu::new(
        down[0],
        Body::DeliverSmResp(Some(Default::default())),
    ))
    .await;
    let a = smsc.recv().await.expect("data_sm_resp");
    assert_eq!(
        (a.command_id(), a.sequence_number, a.command_status),
        (CommandId::DataSmResp, 2000, status::ESME_RX_T_APPN)
    );
    let Body::DataSmResp(Some(r)) = &a.body else {
        panic!("{a:?}")
    };
    assert_eq!(r.message_id.as_bytes(), b"d1");
    let b = smsc.recv().await.expect("deliver_sm_resp");
    assert_eq!(
        (b.command_id(), b.sequence_number, b.command_status),
        (CommandId::DeliverSmResp, 1000, 0)
    );

    // query_sm, cancel_sm, replace_sm.
    let query = QuerySm {
        message_id: COctetString::copy_from(b"m1").unwrap(),
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        ..Default::default()
    };
    let cancel = CancelSm {
        message_id: COctetString::copy_from(b"m2").unwrap(),
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        destination_addr: COctetString::copy_from(CONSENTED.as_bytes()).unwrap(),
        ..Default::default()
    };
    let replace = ReplaceSm {
        message_id: COctetString::copy_from(b"m3").unwrap(),
        source_addr_ton: 5,
        source_addr: COctetString::copy_from(b"ACME").unwrap(),
        short_message: OctetString::copy_from(b"yeni metin").unwrap(),
        ..Default::default()
    };
    let requests = [
        Body::QuerySm(query),
        Body::CancelSm(cancel),
        Body::ReplaceSm(replace),
    ];
    let mut mine = Vec::new();
    for b in &requests {
        mine.push(s.send(b.clone()).await);
    }
    let mut up = Vec::new();
    for b in &requests {
        let p = smsc.recv().await.expect("forwarded request");
        assert_eq!(&p.body, b, "forwarded intact");
        up.push(p.sequence_number);
    }
    let query_resp = QuerySmResp {
        message_id: COctetString::copy_from(b"m1").unwrap(),
        final_date: SmppTime::empty(),
        message_state: 2,
        error_code: 0,
    };
    let answers = [
        Pdu::new(up[0], Body::QuerySmResp(Some(query_resp.clone()))),
        Pdu::new(up[1], Body::CancelSmResp),
        Pdu {
            command_status: status::ESME_RREPLACEFAIL,
            sequence_number: up[2],
            body: Body::ReplaceSmResp,
        },
    ];
    for a in answers.iter().rev() {
        smsc.send_pdu(a).await;
    }
    for (seq, want) in mine.iter().zip(&answers).rev() {
        let r = s.response(*seq).await;
        assert_eq!(
            (&r.body, r.command_status),
            (&want.body, want.command_status)
        );
    }
    s.quiet(Duration::from_millis(200), "after the answers")
        .await;
    assert!(
        matches!(
            smsc.next_within(Duration::from_millis(100)).await,
            Got::Quiet
        ),
        "the alert_notification is not answered by the gate or the sender"
    );
    g.gate.halt().await;
}

/// on_upstream_loss = "rebind": the SMSC drops the link; requests in flight
/// get ESME_RSYSERR at once; the gate binds upstream again with the sender's
/// bind, and the same sender session submits successfully. An answer to the
/// old link's deliver_sm is not sent on the new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_after_upstream_loss_keeps_the_session() {
    let fake = FakeSmsc::new().await;
    let g = gate(
        fake.port,
        "on_upstream_loss = \"rebind\"\nresponse_timeout = \"3s\"",
    )
    .await;
    let (mut s, (mut smsc, first_bind)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    smsc.send_seq(77, Body::DeliverSm(submit("ACME", "old link")))
        .await;
    let old_dlr = s.recv().await.expect("deliver_sm");
    let a = s.send(Body::SubmitSm(submit(CONSENTED, "a"))).await;
    let b = s.send(Body::SubmitSm(submit(CONSENTED, "b"))).await;
    for _ in 0..2 {
        let p = smsc.recv().await.expect("held submit");
        assert_eq!(p.command_id(), CommandId::SubmitSm);
    }
    drop(smsc);
    let dropped = Instant::now();

    let mut failed = Vec::new();
    for _ in 0..2 {
        let p = s.recv().await.expect("the session survives the drop");
        assert_eq!(
            (p.command_id(), p.command_status),
            (CommandId::SubmitSmResp, status::ESME_RSYSERR),
            "{p:?}"
        );
        failed.push(p.sequence_number);
    }
    failed.sort();
    assert_eq!(failed, [a, b]);
    assert!(
        dropped.elapsed() < Duration::from_millis(800),
        "in-flight requests answered before the rebind: {:?}",
        dropped.elapsed()
    );

    let (mut smsc, second_bind) = fake.accept_bound().await;
    assert_eq!(second_bind.body, first_bind.body, "same bind again");
    // The answer to the old link's receipt has nowhere to go.
    s.send_pdu(&Pdu::new(
        old_dlr.sequence_number,
        Body::DeliverSmResp(Some(Default::default())),
    ))
    .await;
    let c = s.send(Body::SubmitSm(submit(CONSENTED, "after"))).await;
    let p = smsc.recv().await.expect("submit on the new link");
    assert_eq!(p.command_id(), CommandId::SubmitSm, "{p:?}");
    assert_eq!(text(&p), "after");
    smsc.send_pdu(&submit_resp(p.sequence_number, "new1")).await;
    let r = s.response(c).await;
    assert_eq!((r.command_status, message_id(&r)), (0, "new1".to_string()));
    s.enquire_link_works().await;
    smsc.quiet(Duration::from_millis(200), "new link").await;
    g.gate.halt().await;
}

/// A refusal made while the SMSC owes a response waits for it at most
/// about a millisecond (to share a write with it), never for the response itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_not_held_behind_a_slow_smsc() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());
    let held = s.send(Body::SubmitSm(submit(CONSENTED, "held"))).await;
    let p = smsc
        .recv()
        .await
        .expect("the consented submit reaches the SMSC");
    let sent = Instant::now();
    let refused = s.send(Body::SubmitSm(submit(UNKNOWN, "refused"))).await;
    let r = s.response(refused).await;
    assert_eq!(r.command_status, 0x401);
    assert!(
        sent.elapsed() < Duration::from_millis(150),
        "the refusal waited {:?} for an SMSC that owed a response",
        sent.elapsed()
    );
    smsc.send_pdu(&submit_resp(p.sequence_number, "late")).await;
    let r = s.response(held).await;
    assert_eq!((r.command_status, message_id(&r)), (0, "late".to_string()));
    g.gate.halt().await;
}

/// While the gate binds to the SMSC again, the sender is served: enquire_link
/// answered and submits refused with ESME_RSYSERR (temporary: it retries) at
/// once, not after the back-off; a failed attempt is followed by the next, and
/// once the SMSC is back the same session submits through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_is_served_while_the_gate_rebinds() {
    let fake = FakeSmsc::new().await;
    let port = fake.port;
    let g = gate(
        port,
        "on_upstream_loss = \"rebind\"\nresponse_timeout = \"1s\"",
    )
    .await;
    let (mut s, (smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());
    // The SMSC goes away entirely: the first attempt (after 1 s) is refused.
    drop(fake);
    drop(smsc);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    s.enquire_link_works().await;
    let a = s.send(Body::SubmitSm(submit(CONSENTED, "during"))).await;
    let r = s.response(a).await;
    assert_eq!(
        (r.command_id(), r.command_status),
        (CommandId::SubmitSmResp, status::ESME_RSYSERR)
    );
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "answered during the rebind back-off, not after it: {:?}",
        asked.elapsed()
    );
    // Back after the first attempt failed; the second comes 2 s after it.
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let fake = FakeSmsc { listener, port };
    let (mut smsc, _) = fake.accept_bound().await;
    s.enquire_link_works().await;
    // The gate takes the new link once its rebind task has read the bind_resp;
    // a submit it reads before that still gets the temporary error. So ask
    // again until one is forwarded (the first almost always is).
    let mut tries = 0;
    let (c, p) = loop {
        let c = s.send(Body::SubmitSm(submit(CONSENTED, "after"))).await;
        tokio::select! {
            p = smsc.recv() => break (c, p.expect("submit on the new link")),
            r = s.response(c) => {
                assert_eq!(r.command_status, status::ESME_RSYSERR, "{r:?}");
                tries += 1;
                assert!(tries < 20, "the gate never took the new link");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(text(&p), "after");
    smsc.send_pdu(&submit_resp(p.sequence_number, "back1"))
        .await;
    let r = s.response(c).await;
    assert_eq!((r.command_status, message_id(&r)), (0, "back1".to_string()));
    g.gate.halt().await;
}

/// Requests written in the same write right after the sender's unbind get
/// ESME_RINVBNDSTS from the gate, never reach the SMSC, and the unbind is
/// still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_unbind_are_answered_not_forwarded() {
    let (g, smsc) = auto_gate("", Setup::default()).await;
    let mut a = Peer::bound(g.addr).await;
    a.submit_ok(CONSENTED, "before").await;
    let mut burst = Pdu::new(a.seq + 1, Body::Unbind).to_vec();
    burst.extend(Pdu::new(a.seq + 2, Body::SubmitSm(submit(CONSENTED, "late"))).to_vec());
    burst.extend(Pdu::new(a.seq + 3, Body::EnquireLink).to_vec());
    a.s.write_all(&burst).await.unwrap();
    let mut got = Vec::new();
    while let Some(p) = a.recv().await {
        got.push((p.command_id(), p.sequence_number, p.command_status));
    }
    got.sort_by_key(|g| g.1);
    let (u, s, e) = (a.seq + 1, a.seq + 2, a.seq + 3);
    assert_eq!(
        got,
        [
            (CommandId::UnbindResp, u, status::ESME_ROK),
            (CommandId::SubmitSmResp, s, status::ESME_RINVBNDSTS),
            (CommandId::EnquireLinkResp, e, status::ESME_RINVBNDSTS),
        ],
        "one answer each, then the close"
    );
    smsc.wait("unbind", |r| !r.of(CommandId::Unbind).is_empty())
        .await;
    let texts = smsc.submitted_texts();
    assert_eq!(texts, ["before"], "the late submit never reached the SMSC");
    g.gate.halt().await;
}

/// max_sessions = 2: a third connection is closed at once (and never reaches
/// the SMSC) while the two bound sessions keep working; when one ends, a new
/// one can bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_the_third() {
    let (g, smsc) = auto_gate("max_sessions = 2\nbind_timeout = \"5s\"", Setup::default()).await;
    let mut a = Peer::bound(g.addr).await;
    let mut b = Peer::bound(g.addr).await;

    let started = Instant::now();
    let mut c = Peer::connect(g.addr).await;
    let _ =
        c.s.write_all(&Pdu::new(1, Body::BindTransceiver(bind(SYSTEM_ID, PASSWORD))).to_vec())
            .await;
    match c.next_within(Duration::from_secs(2)).await {
        Got::Closed => {}
        Got::Pdu(p) => panic!("third connection got {p:?}"),
        Got::Quiet => panic!("third connection left open"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "closed after {:?}",
        started.elapsed()
    );
    a.submit_ok(CONSENTED, "a").await;
    b.submit_ok(CONSENTED, "b").await;
    a.enquire_link_works().await;
    assert_eq!(smsc.conns.load(Ordering::SeqCst), 2);

    // a leaves; its slot frees.
    let seq = a.send(Body::Unbind).await;
    let r = a.response(seq).await;
    assert_eq!(r.command_id(), CommandId::UnbindResp);
    assert!(a.recv().await.is_none(), "closed after the unbind");
    let deadline = Instant::now() + WAIT;
    let mut d = loop {
        let mut d = Peer::connect(g.addr).await;
        d.seq += 1;
        let bind_pdu = Pdu::new(d.seq, Body::BindTransceiver(bind(SYSTEM_ID, PASSWORD)));
        let _ = d.s.write_all(&bind_pdu.to_vec()).await;
        match d.next_within(Duration::from_secs(2)).await {
            Got::Pdu(p) => {
                assert_eq!(p.command_id(), CommandId::BindTransceiverResp);
                assert_eq!(p.command_status, 0);
                break d;
            }
            Got::Closed if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            _ => panic!("no slot freed after a session ended"),
        }
    };
    d.submit_ok(CONSENTED, "d").await;
    b.submit_ok(CONSENTED, "b again").await;
    g.gate.halt().await;
}

/// The SMSC unbinds a bound session: it gets its unbind_resp (under its own
/// number) and nothing more from the gate, then the link closes; the
/// sender's request in flight is answered with ESME_RSYSERR, the sender is
/// unbound, and its connection is closed as soon as it answers the unbind
/// (not after the gate's grace). The gate keeps serving new sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsc_unbind_is_answered_and_unbinds_the_sender() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());
    let held = s.send(Body::SubmitSm(submit(CONSENTED, "in flight"))).await;
    let p = smsc.recv().await.expect("the submit");
    assert_eq!(text(&p), "in flight");

    smsc.send_seq(4242, Body::Unbind).await;
    let r = smsc.recv().await.expect("unbind_resp from the gate");
    assert_eq!(
        (r.command_id(), r.sequence_number, r.command_status),
        (CommandId::UnbindResp, 4242, status::ESME_ROK)
    );

    let r = s.response(held).await;
    assert_eq!(
        (r.command_id(), r.command_status),
        (CommandId::SubmitSmResp, status::ESME_RSYSERR),
        "the request in flight is answered before the unbind"
    );
    let u = s.recv().await.expect("the gate's unbind");
    assert_eq!(u.command_id(), CommandId::Unbind, "{u:?}");
    s.send_seq(u.sequence_number, Body::UnbindResp).await;
    let answered = Instant::now();
    match s.next_within(WAIT).await {
        Got::Closed => {}
        Got::Pdu(p) => panic!("after the unbind the sender got {p:?}"),
        Got::Quiet => panic!("the sender's connection stays open after the unbind"),
    }
    assert!(
        answered.elapsed() < Duration::from_millis(1000),
        "closed {:?} after the sender's unbind_resp",
        answered.elapsed()
    );
    let rest = smsc.until_closed().await;
    assert!(
        rest.is_empty(),
        "after its unbind_resp the SMSC gets nothing (no unbind of the gate's): {rest:?}"
    );

    let (mut again, (mut smsc2, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());
    let seq = again.send(Body::SubmitSm(submit(CONSENTED, "again"))).await;
    let p = smsc2.recv().await.expect("submit on the new link");
    smsc2.send_pdu(&submit_resp(p.sequence_number, "n1")).await;
    let r = again.response(seq).await;
    assert_eq!((r.command_status, message_id(&r)), (0, "n1".to_string()));
    g.gate.halt().await;
}

/// enquire_link from the SMSC is answered by the gate under the SMSC's own
/// sequence number and never reaches the sender (the next thing the sender
/// gets is the SMSC's deliver_sm); the sender's enquire_link is answered by
/// the gate and never reaches the SMSC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enquire_link_is_answered_by_the_gate_on_each_leg() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    for seq in [1, 4711, 0x7FFF_FFFF] {
        smsc.send_seq(seq, Body::EnquireLink).await;
        let r = smsc.recv().await.expect("enquire_link_resp");
        assert_eq!(
            (r.command_id(), r.sequence_number, r.command_status),
            (CommandId::EnquireLinkResp, seq, status::ESME_ROK)
        );
    }
    smsc.send_seq(4712, Body::DeliverSm(submit("ACME", "after the probes")))
        .await;
    let p = s.recv().await.expect("deliver_sm");
    assert_eq!(
        p.command_id(),
        CommandId::DeliverSm,
        "the SMSC's enquire_link reached the sender: {p:?}"
    );
    s.send_pdu(&Pdu::new(
        p.sequence_number,
        Body::DeliverSmResp(Some(Default::default())),
    ))
    .await;
    let r = smsc.recv().await.expect("deliver_sm_resp");
    assert_eq!(
        (r.command_id(), r.sequence_number),
        (CommandId::DeliverSmResp, 4712)
    );

    s.enquire_link_works().await;
    s.enquire_link_works().await;
    smsc.quiet(
        Duration::from_millis(300),
        "the sender's enquire_link is not forwarded",
    )
    .await;
    s.quiet(Duration::from_millis(100), "nothing more for the sender")
        .await;
    g.gate.halt().await;
}

/// One account bound twice, as a transmitter and as a receiver: the gate
/// opens an upstream link of each kind (bind_transmitter, bind_receiver, the
/// sender's bind as sent). A message goes out on the transmitter; its receipt,
/// sent by the SMSC on the receiver's link, reaches the sender's receiver
/// connection under the gate's numbering, and the sender's answers reach the
/// SMSC on that link under the SMSC's numbers (statuses kept). Nothing
/// crosses to the transmitter's side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmitter_and_receiver_binds_get_links_of_their_own_kind() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "").await;
    let mut tx = Peer::connect(g.addr).await;
    let (_, (mut smsc_tx, tx_bind)) =
        tokio::join!(tx.bind_as(CommandId::BindTransmitter), fake.accept_bound());
    assert_eq!(
        tx_bind.body,
        Body::BindTransmitter(bind(SYSTEM_ID, PASSWORD)),
        "{tx_bind:?}"
    );
    let mut rx = Peer::connect(g.addr).await;
    let (_, (mut smsc_rx, rx_bind)) =
        tokio::join!(rx.bind_as(CommandId::BindReceiver), fake.accept_bound());
    assert_eq!(
        rx_bind.body,
        Body::BindReceiver(bind(SYSTEM_ID, PASSWORD)),
        "{rx_bind:?}"
    );

    let mut sm = submit(CONSENTED, "kampanya");
    sm.registered_delivery = 1;
    let seq = tx.send(Body::SubmitSm(sm)).await;
    let p = smsc_tx
        .recv()
        .await
        .expect("submit on the transmitter's link");
    assert_eq!(text(&p), "kampanya");
    smsc_tx
        .send_pdu(&submit_resp(p.sequence_number, "r1"))
        .await;
    let r = tx.response(seq).await;
    assert_eq!((r.command_status, message_id(&r)), (0, "r1".to_string()));

    // Two receipts on the receiver's link, numbered far from the gate's.
    let receipt = |stat: &str| {
        let mut d = submit(
            "ACME",
            &format!("id:r1 sub:001 dlvrd:001 submit date:2401011000 done date:2401011001 stat:{stat} err:000 text:"),
        );
        d.source_addr_ton = 1;
        d.source_addr = COctetString::copy_from(CONSENTED.as_bytes()).unwrap();
        d.dest_addr_ton = 5;
        d.destination_addr = COctetString::copy_from(b"ACME").unwrap();
        d.esm_class = 0x04;
        d.tlvs.push(Tlv::new(0x001E, &b"r1\0"[..]).unwrap());
        d
    };
    let sent = [
        Pdu::new(90_000, Body::DeliverSm(receipt("ENROUTE"))),
        Pdu::new(90_001, Body::DeliverSm(receipt("DELIVRD"))),
    ];
    for p in &sent {
        smsc_rx.send_pdu(p).await;
    }
    let mut down = Vec::new();
    for want in &sent {
        let p = rx.recv().await.expect("receipt on the receiver connection");
        assert_eq!(p.body, want.body, "forwarded intact");
        assert!(
            (1..=0x7FFF_FFFF).contains(&p.sequence_number)
                && p.sequence_number != want.sequence_number,
            "numbered by the gate, not the SMSC: {p:?}"
        );
        down.push(p.sequence_number);
    }
    assert_ne!(down[0], down[1]);
    // Answered newest first, the first with a temporary error.
    rx.send_pdu(&Pdu::new(
        down[1],
        Body::DeliverSmResp(Some(Default::default())),
    ))
    .await;
    rx.send_pdu(&Pdu {
        command_status: status::ESME_RX_T_APPN,
        sequence_number: down[0],
        body: Body::DeliverSmResp(Some(Default::default())),
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let p = smsc_rx.recv().await.expect("deliver_sm_resp");
        answers.push((p.command_id(), p.sequence_number, p.command_status));
    }
    assert_eq!(
        answers,
        [
            (CommandId::DeliverSmResp, 90_001, status::ESME_ROK),
            (CommandId::DeliverSmResp, 90_000, status::ESME_RX_T_APPN),
        ]
    );
    smsc_tx
        .quiet(Duration::from_millis(200), "the transmitter's link")
        .await;
    tx.quiet(Duration::from_millis(50), "the transmitter connection")
        .await;
    g.gate.halt().await;
}

/// An unconsented data_sm is answered by the gate with data_sm_resp 0x401
/// under the sender's number and never reaches the SMSC: the consented
/// data_sm sent after it is the first PDU the SMSC sees, and its answer
/// (with the SMSC's message id) comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconsented_data_sm_is_refused_with_0x401_and_not_forwarded() {
    let fake = FakeSmsc::new().await;
    let g = gate(fake.port, "").await;
    let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());

    let refused = s.send(Body::DataSm(data_sm(UNKNOWN, "kampanya"))).await;
    let r = s.response(refused).await;
    assert_eq!(
        (r.command_id(), r.command_status),
        (CommandId::DataSmResp, 0x0000_0401),
        "{r:?}"
    );
    let ok = s.send(Body::DataSm(data_sm(CONSENTED, "kampanya"))).await;
    let p = smsc.recv().await.expect("the consented data_sm");
    assert_eq!(
        p.body,
        Body::DataSm(data_sm(CONSENTED, "kampanya")),
        "the refused data_sm reached the SMSC"
    );
    smsc.send_pdu(&data_sm_resp(p.sequence_number, "d1")).await;
    let r = s.response(ok).await;
    assert_eq!(
        (r.command_id(), r.command_status, message_id(&r)),
        (CommandId::DataSmResp, status::ESME_ROK, "d1".to_string())
    );
    smsc.quiet(Duration::from_millis(200), "only the consented data_sm")
        .await;
    g.gate.halt().await;
}

/// With no consent data at all the gate cannot decide a commercial message:
/// submit_sm and data_sm get 0x58 (a status senders retry), consented or not,
/// never a refusal, and none reaches the SMSC; an informational message needs
/// no consent and goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_consent_data_commercial_messages_get_0x58() {
    let (g, smsc) = auto_gate(
        "",
        Setup {
            no_data: true,
            ..Setup::default()
        },
    )
    .await;
    let mut s = Peer::bound(g.addr).await;
    let undecidable = [
        (
            Body::SubmitSm(submit(CONSENTED, "k1")),
            CommandId::SubmitSmResp,
        ),
        (
            Body::SubmitSm(submit(UNKNOWN, "k2")),
            CommandId::SubmitSmResp,
        ),
        (
            Body::DataSm(data_sm(CONSENTED, "k3")),
            CommandId::DataSmResp,
        ),
    ];
    for (body, resp) in undecidable {
        let seq = s.send(body).await;
        let r = s.response(seq).await;
        assert_eq!(
            (r.command_id(), r.command_status),
            (resp, 0x0000_0058),
            "{r:?}"
        );
    }
    let seq = s
        .send(Body::SubmitSm(informational(CONSENTED, "fatura")))
        .await;
    let r = s.response(seq).await;
    assert_eq!(r.command_status, status::ESME_ROK, "{r:?}");
    let texts = smsc.submitted_texts();
    assert_eq!(
        texts,
        ["fatura"],
        "only the informational one was forwarded"
    );
    assert!(smsc.of(CommandId::DataSm).is_empty());
    g.gate.halt().await;
}

/// max_data_age = "1s": a consented commercial submit passes while the data
/// is fresh; once the data is older than that, the same submit gets 0x58 and
/// is not forwarded, an unconsented one gets 0x58 too (not 0x401: the gate
/// cannot tell), and an informational message still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_consent_data_turns_commercial_messages_into_0x58() {
    let (g, smsc) = auto_gate(
        "",
        Setup {
            policy: Some("max_data_age = \"1s\""),
            ..Setup::default()
        },
    )
    .await;
    let mut s = Peer::bound(g.addr).await;
    s.submit_ok(CONSENTED, "fresh").await;

    // Ages are whole seconds: stale within about 2 s of loading.
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let seq = s
            .send(Body::SubmitSm(submit(CONSENTED, &format!("try {n}"))))
            .await;
        let r = s.response(seq).await;
        match r.command_status {
            status::ESME_ROK => {}
            0x0000_0058 => break,
            other => panic!("consented submit answered {other:#010x}"),
        }
        assert!(Instant::now() < deadline, "the data never went stale");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (body, resp) in [
        (
            Body::SubmitSm(submit(UNKNOWN, "unknown")),
            CommandId::SubmitSmResp,
        ),
        (
            Body::DataSm(data_sm(CONSENTED, "data")),
            CommandId::DataSmResp,
        ),
    ] {
        let seq = s.send(body).await;
        let r = s.response(seq).await;
        assert_eq!(
            (r.command_id(), r.command_status),
            (resp, 0x0000_0058),
            "{r:?}"
        );
    }
    let seq = s
        .send(Body::SubmitSm(informational(CONSENTED, "fatura")))
        .await;
    assert_eq!(s.response(seq).await.command_status, status::ESME_ROK);
    let texts = smsc.submitted_texts();
    let mut want: Vec<String> = vec!["fresh".into()];
    want.extend((1..n).map(|i| format!("try {i}")));
    want.push("fatura".into());
    assert_eq!(texts, want, "the deferred messages never reached the SMSC");
    assert!(smsc.of(CommandId::DataSm).is_empty());
    g.gate.halt().await;
}

/// The İYS TLVs (0x1400–0x1402) are for the gate: by default they are taken
/// out of submit_sm and data_sm before forwarding, the other TLVs kept in
/// order; with strip_iys_tlvs = false the message reaches the SMSC as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iys_tlvs_reach_the_smsc_only_with_strip_iys_tlvs_false() {
    let iys = [
        (0x1400, &b"0"[..]),
        (0x1401, &b"100001"[..]),
        (0x1402, &b"77"[..]),
    ];
    let with_iys = |tlvs: &mut Tlvs| {
        tlvs.push(Tlv::new(0x1520, &b"before"[..]).unwrap());
        for (tag, value) in iys {
            tlvs.push(Tlv::new(tag, value).unwrap());
        }
        tlvs.push(Tlv::new(0x1521, &b"after"[..]).unwrap());
    };
    let mut sm = submit(CONSENTED, "fatura");
    with_iys(&mut sm.tlvs);
    let mut dm = data_sm(CONSENTED, "fatura");
    with_iys(&mut dm.tlvs);

    for (keys, stripped) in [("", true), ("strip_iys_tlvs = false", false)] {
        let fake = FakeSmsc::new().await;
        let g = gate(fake.port, keys).await;
        let (mut s, (mut smsc, _)) = tokio::join!(Peer::bound(g.addr), fake.accept_bound());
        for body in [Body::SubmitSm(sm.clone()), Body::DataSm(dm.clone())] {
            let seq = s.send(body.clone()).await;
            let p = smsc.recv().await.expect("the message at the SMSC");
            let tlvs = match &p.body {
                Body::SubmitSm(m) => &m.tlvs,
                Body::DataSm(m) => &m.tlvs,
                other => panic!("{other:?}"),
            };
            let tags: Vec<u16> = tlvs.iter().map(|t| t.tag()).collect();
            let mut want = body.clone();
            if stripped {
                assert!(
                    tags.ends_with(&[0x1520, 0x1521])
                        && tags.iter().all(|t| !(0x1400..=0x1402).contains(t)),
                    "{keys:?}: İYS TLVs reached the SMSC: {tags:04x?}"
                );
                match &mut want {
                    Body::SubmitSm(m) => m.tlvs.remove_iys(),
                    Body::DataSm(m) => m.tlvs.remove_iys(),
                    _ => unreachable!(),
                };
            } else {
                assert!(
                    tags.ends_with(&[0x1520, 0x1400, 0x1401, 0x1402, 0x1521]),
                    "{keys:?}: the İYS TLVs are kept, in place: {tags:04x?}"
                );
            }
            assert_eq!(p.body, want, "{keys:?}: otherwise as sent");
            let resp = match p.command_id() {
                CommandId::SubmitSm => submit_resp(p.sequence_number, "ok"),
                _ => data_sm_resp(p.sequence_number, "ok"),
            };
            smsc.send_pdu(&resp).await;
            let r = s.response(seq).await;
            assert_eq!(r.command_status, status::ESME_ROK, "{r:?}");
        }
        g.gate.halt().await;
    }
}

/// Monitor mode over SMPP: an unconsented submit_sm is forwarded (it reaches
/// the SMSC and the sender gets the SMSC's ESME_ROK and message id), and the
/// audit trail records it as the refusal the gate would have made: decision
/// refuse, reason no_consent, monitor true, with the account and the
/// recipient masked. The consented submit is not audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_forwards_the_unconsented_and_audits_it() {
    let (g, smsc) = auto_gate(
        "",
        Setup {
            policy: Some("max_data_age = \"1h\"\nmonitor = true"),
            audit: true,
            ..Setup::default()
        },
    )
    .await;
    let mut s = Peer::bound(g.addr).await;
    let id = s.submit_ok(UNKNOWN, "would be refused").await;
    assert_eq!(id, "m1", "the SMSC's answer");
    s.submit_ok(CONSENTED, "consented").await;
    let at_smsc: Vec<(String, String)> = smsc
        .of(CommandId::SubmitSm)
        .iter()
        .map(|(_, p)| match &p.body {
            Body::SubmitSm(sm) => (
                String::from_utf8_lossy(sm.destination_addr.as_bytes()).into_owned(),
                text(p),
            ),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        at_smsc,
        [
            (UNKNOWN.to_string(), "would be refused".to_string()),
            (CONSENTED.to_string(), "consented".to_string())
        ]
    );

    let records = g.audit_records(1).await;
    assert_eq!(records.len(), 1, "only the would-be refusal: {records:#?}");
    let v = &records[0];
    assert_eq!(v["protocol"], "smpp", "{v}");
    assert_eq!(v["channel"], "MESAJ", "{v}");
    assert_eq!(v["decision"], "refuse", "{v}");
    assert_eq!(v["reason"], "no_consent", "{v}");
    assert_eq!(v["monitor"], true, "{v}");
    assert_eq!(v["account"], SYSTEM_ID, "{v}");
    assert_eq!(v["brand"], format!("{IYS}/{BRAND}"), "{v}");
    let recipient = v["recipient"].as_str().unwrap();
    assert!(
        recipient.contains('*') && !recipient.contains("9999990"),
        "masked: {v}"
    );
    g.gate.halt().await;
}

/// A sender that keeps sending but reads nothing: once a megabyte of answers
/// waits for it the gate stops reading from it (its writes block; the gate
/// does not buffer without bound), and after inactivity_timeout without taking
/// any of it the session ends and the connection closes. Another sender is
/// served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_reads_nothing_is_held_back_then_cut_off() {
    let (g, smsc) = auto_gate("inactivity_timeout = \"1s\"", Setup::default()).await;
    // A small receive buffer, so the kernel holds few of the answers and the
    // gate's own buffer fills after some 70 000 PDUs (cheap for the other tests
    // running beside this one).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut deaf = Peer::new(socket.connect(g.addr).await.unwrap());
    deaf.bind().await;
    // 4096 enquire_links a chunk (64 KiB), each answered by the gate itself.
    let mut chunk = Vec::new();
    for seq in 1..=4096u32 {
        chunk.extend_from_slice(&Pdu::new(seq, Body::EnquireLink).to_vec());
    }
    let written = write_until_blocked(&mut deaf.s, &chunk).await;
    let blocked_at = Instant::now();
    // Socket buffers on both sides plus the gate's own megabyte each way.
    assert!(
        written < 64 << 20,
        "{written} bytes accepted before back-pressure"
    );
    // (Fresh sessions: one bound at the start would be idle past 1 s by now.)
    Peer::bound(g.addr)
        .await
        .submit_ok(CONSENTED, "served meanwhile")
        .await;
    // The deaf sender is cut off: reading now drains what waited, then EOF.
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        let mut n = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match deaf.s.read(&mut buf).await {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k,
            }
        }
    })
    .await
    .expect("the gate kept the connection of a sender that read nothing open");
    assert!(drained > 0, "the answers that waited are there to read");
    let t = blocked_at.elapsed();
    assert!(
        t < Duration::from_secs(12),
        "closed {t:?} after the writes blocked"
    );
    Peer::bound(g.addr)
        .await
        .submit_ok(CONSENTED, "still served")
        .await;
    drop(smsc);
    g.gate.halt().await;
}

/// The inactivity timer counts whole PDUs: a sender that trickles a byte now
/// and then, never finishing a PDU in time, is unbound at inactivity_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_trickling_bytes_is_timed_out() {
    let (g, _smsc) = auto_gate("inactivity_timeout = \"800ms\"", Setup::default()).await;
    let Peer { s, buf, .. } = Peer::bound(g.addr).await;
    assert!(buf.is_empty());
    let (mut rd, mut wr) = s.into_split();
    let start = Instant::now();
    let frame = Pdu::new(9, Body::EnquireLink).to_vec();
    let trickle = async {
        // One octet every 200 ms: the enquire_link is whole only at 3 s.
        for b in frame {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
        }
    };
    let watch = async {
        let mut got = BytesMut::new();
        loop {
            if let Some(n) = frame_len(&got, u32::MAX).unwrap() {
                let pdu = Pdu::decode(&got[..n]).unwrap();
                return (pdu, start.elapsed());
            }
            let k = tokio::time::timeout(Duration::from_secs(6), rd.read_buf(&mut got))
                .await
                .expect("nothing from the gate in 6 s");
            assert!(k.unwrap() > 0, "closed without an unbind");
        }
    };
    let ((), (pdu, t)) = tokio::join!(trickle, watch);
    assert_eq!(pdu.command_id(), CommandId::Unbind, "{pdu:?}");
    assert!(
        t > Duration::from_millis(700) && t < Duration::from_millis(2800),
        "unbound after {t:?}; inactivity_timeout is 800ms, the PDU would be whole at 3 s"
    );
    g.gate.halt().await;
}

/// Every refused part of a concatenated message is a refusal the sender sees,
/// so each part gets its audit record, not only the first (the later parts
/// reuse the first part's decision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_part_of_a_concatenated_message_is_audited() {
    let (g, smsc) = auto_gate(
        "",
        Setup {
            audit: true,
            ..Setup::default()
        },
    )
    .await;
    let mut s = Peer::bound(g.addr).await;
    // Three parts of one message (UDH: reference 0x2A, 3 parts), no consent.
    for part in 1..=3u8 {
        let mut sm = submit(UNKNOWN, "");
        sm.esm_class = 0x40;
        let mut text = vec![0x05, 0x00, 0x03, 0x2A, 3, part];
        text.extend_from_slice(b"part of a long message");
        sm.short_message = OctetString::new(text).unwrap();
        let seq = s.send(Body::SubmitSm(sm)).await;
        let r = s.response(seq).await;
        assert_eq!(r.command_status, 0x401, "part {part}");
    }
    let records = g.audit_records(3).await;
    assert_eq!(records.len(), 3, "{records:#?}");
    for v in &records {
        assert_eq!(v["reason"], "no_consent", "{v}");
    }
    assert!(smsc.of(CommandId::SubmitSm).is_empty(), "no part forwarded");
    g.gate.halt().await;
}

/// The parts of one concatenated message may travel over different binds of
/// the same account: the decision taken for the first part holds for the rest
/// on every session of the account, even after the consent data changed in
/// between (a new message to the same number gets the new answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_on_another_session_of_the_account_get_the_first_parts_decision() {
    let (g, smsc) = auto_gate("", Setup::default()).await;
    let mut a = Peer::bound(g.addr).await;
    let mut b = Peer::bound(g.addr).await;
    let part = |n: u8| {
        let mut sm = submit(UNKNOWN, "");
        sm.esm_class = 0x40;
        let mut text = vec![0x05, 0x00, 0x03, 0x33, 2, n];
        text.extend_from_slice(b"half of a long message");
        sm.short_message = OctetString::new(text).unwrap();
        Body::SubmitSm(sm)
    };
    let seq = a.send(part(1)).await;
    assert_eq!(a.response(seq).await.command_status, 0x401, "part 1");

    // The recipient consents now (pushed through the webhook).
    let resp = g.push_consent(UNKNOWN, "ONAY").await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    b.submit_ok(UNKNOWN, "a new message: consent holds now")
        .await;

    let seq = b.send(part(2)).await;
    assert_eq!(
        b.response(seq).await.command_status,
        0x401,
        "part 2, on the account's other session, gets part 1's answer"
    );
    let texts = smsc.submitted_texts();
    assert_eq!(texts, ["a new message: consent holds now"]);
    g.gate.halt().await;
}

/// A session decides each turn with the store's snapshot of that moment: a
/// consent pushed while the sender stays bound applies to its very next
/// message, and a withdrawal refuses the one after (as withdrawn, 0x402).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_session_decides_with_the_newest_snapshot() {
    let (g, smsc) = auto_gate("", Setup::default()).await;
    let mut a = Peer::bound(g.addr).await;
    let seq = a.send(Body::SubmitSm(submit(UNKNOWN, "before"))).await;
    assert_eq!(a.response(seq).await.command_status, 0x401);
    assert_eq!(g.push_consent(UNKNOWN, "ONAY").await.status(), 200);
    a.submit_ok(UNKNOWN, "after the consent").await;
    // A second apart: the withdrawal's date must be later than the consent's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(g.push_consent(UNKNOWN, "RET").await.status(), 200);
    let seq = a
        .send(Body::SubmitSm(submit(UNKNOWN, "after the withdrawal")))
        .await;
    assert_eq!(a.response(seq).await.command_status, 0x402, "withdrawn");
    let texts = smsc.submitted_texts();
    assert_eq!(texts, ["after the consent"]);
    g.gate.halt().await;
}

/// An SMSC that answers nothing and a sender that keeps submitting: past the
/// window the gate parks requests only up to its budget, then stops reading,
/// so the sender's writes block instead of the gate's memory growing; the
/// SMSC never has more than the window in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_window_are_parked_only_up_to_a_bound() {
    let (g, smsc) = auto_gate(
        "window = 4\nresponse_timeout = \"30s\"\ninactivity_timeout = \"30s\"",
        Setup::default(),
    )
    .await;
    let mut s = Peer::bound(g.addr).await;
    // 256 held submits a chunk (the auto SMSC does not answer "SMSC:hold").
    let mut chunk = Vec::new();
    for seq in 1..=256u32 {
        chunk.extend_from_slice(
            &Pdu::new(seq, Body::SubmitSm(submit(CONSENTED, "SMSC:hold"))).to_vec(),
        );
    }
    let written = write_until_blocked(&mut s.s, &chunk).await;
    // The parking budget (1 MiB) plus socket buffers on both sides.
    assert!(
        written < 64 << 20,
        "{written} bytes accepted before back-pressure"
    );
    assert!(written > 1 << 20, "{written}: less than the parking budget");
    smsc.wait("the window's 4 submits", |r| {
        r.of(CommandId::SubmitSm).len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        smsc.of(CommandId::SubmitSm).len(),
        4,
        "never more than the window"
    );
    g.gate.halt().await;
}
