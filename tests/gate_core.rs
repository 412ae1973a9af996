//! The consent core through its public interfaces: a real gate (in process)
//! with the registry emulator, driven over HTTP as an operator and a citizen
//! would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::consent::ConsentTime;
use iys_gate::serve::{start, RunningGate};
use serde_json::{json, Value};

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
const SECRET: &str = "test-webhook-secret-0123456789";
/// The `read` token the test configs carry: `/v1/check` and `/v1/status` need one.
const READ_TOKEN: &str = "gate-core-read-token-0123456789";

/// GET an admin URL with the read token.
async fn get(url: String) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
}

fn csv(dir: &Path, rows: &[&str]) -> PathBuf {
    let path = dir.join("export.csv");
    let mut text = String::from("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

const ROWS: &[&str] = &[
    "700001,100001,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    // RET newer than ONAY, RET first in the file
    "700001,100001,05322222222,BIREYSEL,MESAJ,RET,2024-03-01 10:00:00,IYS_MOBIL,,",
    "700001,100001,05322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    // RET newer than ONAY, ONAY first in the file
    "700001,100001,+905323333333,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,905323333333,BIREYSEL,MESAJ,RET,2024-03-01 10:00:00,IYS_WEB,,",
    // ONAY newer than RET (consent given again)
    "700001,100001,5324444444,BIREYSEL,MESAJ,RET,2024-01-01 10:00:00,IYS_WEB,,",
    "700001,100001,5324444444,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_WEB,,",
    // merchant only
    "700001,100001,05325555555,TACIR,MESAJ,ONAY,,,,",
    // both records on one address, independently: BIREYSEL ONAY, TACIR RET
    "700001,100001,05326666666,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05326666666,TACIR,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05326666666,TACIR,MESAJ,RET,2024-02-01 10:00:00,IYS_WEB,,",
    // dealer access
    "700001,100001,05327777777,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_FIZIKSEL_ORTAM,501,501;502",
    // e-mail and voice
    "700001,100001,Ali.Veli@Example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05321111111,BIREYSEL,ARAMA,ONAY,2024-01-01 10:00:00,HS_CAGRI_MERKEZI,,",
    // another brand of the same provider
    "700001,100002,05328888888,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
];

struct Opts<'a> {
    csv: Option<&'a Path>,
    snapshot: Option<&'a Path>,
    registry: &'a str,
    poll: &'a str,
    max_age: &'a str,
}

fn config(o: &Opts<'_>) -> Config {
    let mut text = format!("[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"gate-core\"\ntoken = \"{READ_TOKEN}\"\nrole = \"read\"\n[store]\n");
    if let Some(c) = o.csv {
        text += &format!("bootstrap_csv = [{:?}]\n", c.display().to_string());
    }
    if let Some(s) = o.snapshot {
        text += &format!("snapshot_path = {:?}\n", s.display().to_string());
    }
    text += &format!("[policy]\nmax_data_age = \"{}\"\n", o.max_age);
    text += "[registry]\n";
    text += o.registry;
    text += &format!(
        "\npoll_interval = \"{}\"\nmax_backoff = \"1s\"\nrequest_timeout = \"2s\"\n",
        o.poll
    );
    text += &format!("[webhook]\nsecret = \"{SECRET}\"\n[[brands]]\niys_code = {IYS}\nbrand_code = {BRAND}\n[[brands]]\niys_code = {IYS}\nbrand_code = 100002\n");
    Config::from_toml(&text, "test").unwrap()
}

const EMULATOR: &str =
    "emulator = true\nemulator_listen = \"127.0.0.1:0\"\nusername = \"demo\"\npassword = \"demo\"";
const DOWN: &str = "base_url = \"http://127.0.0.1:9\"\nusername = \"u\"\npassword = \"p\"";

async fn check(gate: &RunningGate, query: &str) -> Value {
    let url = format!(
        "http://{}/v1/check?iys_code={IYS}&brand_code={BRAND}&{query}",
        gate.admin_addr
    );
    get(url).await.json().await.unwrap()
}

async fn verdict(gate: &RunningGate, query: &str) -> (String, String) {
    let v = check(gate, query).await;
    (
        v["decision"].as_str().unwrap_or("?").to_string(),
        v["reason"].as_str().unwrap_or("?").to_string(),
    )
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// A citizen withdraws consent through İYS (an `IYS_*` source).
async fn citizen_withdraws(base: &str, recipient: &str) {
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/oauth2/token"))
        .json(&json!({"username": "demo", "password": "demo", "grant_type": "password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let resp = http
        .post(format!("{base}/sps/{IYS}/brands/{BRAND}/consents"))
        .bearer_auth(token)
        .json(&json!({
            "consentDate": ConsentTime::now().to_string(),
            "source": "IYS_MOBIL",
            "recipient": recipient,
            "recipientType": "BIREYSEL",
            "status": "RET",
            "type": "MESAJ"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_through_the_check_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv(dir.path(), ROWS);
    let gate = start(config(&Opts {
        csv: Some(&path),
        snapshot: None,
        registry: EMULATOR,
        poll: "1s",
        max_age: "1h",
    }))
    .await
    .unwrap();
    let m = "channel=MESAJ&recipient";
    assert_eq!(
        verdict(&gate, &format!("{m}=05321111111")).await,
        pair("allow", "consent"),
        "BIREYSEL ONAY"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=+905321111111")).await,
        pair("allow", "consent"),
        "same subscriber, other spelling"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05322222222")).await,
        pair("refuse", "withdrawn"),
        "RET after ONAY, RET first in input"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05323333333")).await,
        pair("refuse", "withdrawn"),
        "RET after ONAY, ONAY first in input"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05324444444")).await,
        pair("allow", "consent"),
        "ONAY after RET"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05329999999")).await,
        pair("refuse", "no_consent"),
        "unknown address"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05329999999&message_type=0")).await,
        pair("allow", "exempt"),
        "informational"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05325555555&message_type=12")).await,
        pair("allow", "consent"),
        "TACIR registered"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05325555555&message_type=11")).await,
        pair("refuse", "no_consent"),
        "TACIR record is not BIREYSEL consent"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05326666666&message_type=11")).await,
        pair("allow", "consent"),
        "both records: BIREYSEL ONAY"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05326666666&message_type=12")).await,
        pair("refuse", "withdrawn"),
        "both records: TACIR RET"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05327777777&retailer_code=502")).await,
        pair("allow", "consent"),
        "dealer in access list"
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05327777777&retailer_code=777")).await,
        pair("refuse", "retailer_not_allowed")
    );
    assert_eq!(
        verdict(&gate, &format!("{m}=05321111111&retailer_code=501")).await,
        pair("refuse", "retailer_not_allowed"),
        "no access list"
    );
    assert_eq!(
        verdict(&gate, "channel=EPOSTA&recipient=ali.veli@EXAMPLE.com").await,
        pair("allow", "consent"),
        "e-mail case-folded"
    );
    assert_eq!(
        verdict(&gate, "channel=ARAMA&recipient=05321111111").await,
        pair("allow", "consent")
    );
    assert_eq!(
        verdict(&gate, "channel=ARAMA&recipient=05326666666").await,
        pair("refuse", "no_consent"),
        "consent is per channel"
    );
    // Consent is per brand.
    let other = format!(
        "http://{}/v1/check?iys_code={IYS}&brand_code=100002&channel=MESAJ&recipient=05321111111",
        gate.admin_addr
    );
    let v: Value = get(other).await.json().await.unwrap();
    assert_eq!(v["reason"], "no_consent");
    let unknown = format!(
        "http://{}/v1/check?iys_code={IYS}&brand_code=999&channel=MESAJ&recipient=05321111111",
        gate.admin_addr
    );
    let v: Value = get(unknown).await.json().await.unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("refuse"), Some("unknown_brand"))
    );
    // The answer carries version and age; the recipient is masked.
    let v = check(&gate, &format!("{m}=05321111111")).await;
    assert!(v["snapshot_version"].as_u64().unwrap() >= 1);
    assert!(v["data_age_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(v["recipient"], "+90532*****11");
    // Bad input: 400 with a reason.
    for (q, needle) in [
        ("channel=SMS&recipient=05321111111", "SMS"),
        ("channel=MESAJ&recipient=12", "digits"),
        ("channel=MESAJ", "recipient is required"),
        (
            "channel=MESAJ&recipient=05321111111&message_type=13",
            "message_type",
        ),
    ] {
        let resp = get(format!(
            "http://{}/v1/check?iys_code={IYS}&brand_code={BRAND}&{q}",
            gate.admin_addr
        ))
        .await;
        assert_eq!(resp.status(), 400, "{q}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{q}: {body}");
    }
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_reaches_the_gate_by_poll_and_by_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv(dir.path(), ROWS);
    let poll = Duration::from_millis(500);
    let gate = start(config(&Opts {
        csv: Some(&path),
        snapshot: None,
        registry: EMULATOR,
        poll: "500ms",
        max_age: "1h",
    }))
    .await
    .unwrap();
    let base = gate.emulator_url.clone().unwrap();
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111").await,
        pair("allow", "consent")
    );

    // Poll: a citizen's RET through İYS reaches the gate within the poll interval + 1 s.
    citizen_withdraws(&base, "+905321111111").await;
    let posted = Instant::now();
    loop {
        if verdict(&gate, "channel=MESAJ&recipient=05321111111").await
            == pair("refuse", "withdrawn")
        {
            break;
        }
        assert!(
            posted.elapsed() < poll + Duration::from_secs(1),
            "not applied within poll interval + 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("poll: withdrawal visible after {:?}", posted.elapsed());

    // Webhook: applied before the answer returns, well within 100 ms.
    let http = reqwest::Client::new();
    let push = json!({"iyscode": IYS, "brandcode": BRAND, "recipient": "05324444444", "type": "MESAJ", "source": "IYS_WEB",
        "status": "RET", "consentdate": ConsentTime::now().to_string(), "recipienttype": "BIREYSEL"});
    let url = format!("http://{}/v1/webhook", gate.admin_addr);
    let sent = Instant::now();
    let resp = http
        .post(&url)
        .bearer_auth(SECRET)
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = verdict(&gate, "channel=MESAJ&recipient=05324444444").await;
    let took = sent.elapsed();
    assert_eq!(v, pair("refuse", "withdrawn"));
    assert!(took < Duration::from_millis(100), "webhook took {took:?}");
    eprintln!("webhook: withdrawal visible after {took:?}");

    // An older push must not undo the newer RET.
    let mut old = push.clone();
    old["status"] = json!("ONAY");
    old["consentdate"] = json!("2024-01-01 00:00:00");
    let r: Value = http
        .post(&url)
        .bearer_auth(SECRET)
        .json(&old)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["applied"], 0);
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05324444444").await,
        pair("refuse", "withdrawn")
    );

    // Webhook refusals: no token, wrong token, bad JSON, bad field, unknown brand; nothing changes.
    assert_eq!(
        http.post(&url).json(&push).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        http.post(&url)
            .bearer_auth("wrong-secret-xxxxxxxxxxxx")
            .json(&push)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for (body, needle) in [
        ("{not json".to_string(), "not a consent change"),
        (json!({"iyscode": IYS, "brandcode": BRAND, "recipient": "05326666666", "type": "FAX", "status": "RET", "consentdate": "2025-01-01 00:00:00", "recipienttype": "BIREYSEL", "source": "IYS_WEB"}).to_string(), "FAX"),
        (json!([{"iyscode": 1, "brandcode": 2, "recipient": "05326666666", "type": "MESAJ", "status": "RET", "consentdate": "2025-01-01 00:00:00", "recipienttype": "BIREYSEL", "source": "IYS_WEB"}]).to_string(), "not followed"),
        ("[]".to_string(), "no changes"),
    ] {
        let resp = http.post(&url).bearer_auth(SECRET).body(body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{body}: {text}");
    }
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05326666666").await,
        pair("allow", "consent")
    );

    // Metrics: prefixed, with decisions and applied changes, never an address.
    let metrics = reqwest::get(format!("http://{}/metrics", gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("iys_gate_tuples{channel=\"MESAJ\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("iys_gate_sync_changes_applied_total"));
    assert!(metrics.contains("iys_gate_webhook_requests_total{result=\"unauthorized\"}"));
    assert!(
        !metrics.contains("5321111111") && !metrics.contains("532*"),
        "no address in metrics"
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_registry_down_answers_from_the_snapshot_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv(dir.path(), ROWS);
    let snap = dir.path().join("state").join("gate.snap");
    let queries = [
        "channel=MESAJ&recipient=05321111111",
        "channel=MESAJ&recipient=05322222222",
        "channel=MESAJ&recipient=05325555555&message_type=12",
        "channel=MESAJ&recipient=05327777777&retailer_code=501",
        "channel=EPOSTA&recipient=ali.veli@example.com",
        "channel=MESAJ&recipient=05329999999",
    ];
    let first = start(config(&Opts {
        csv: Some(&path),
        snapshot: Some(&snap),
        registry: EMULATOR,
        poll: "200ms",
        max_age: "1h",
    }))
    .await
    .unwrap();
    // A change from the registry, so the file holds more than the CSV did.
    citizen_withdraws(&first.emulator_url.clone().unwrap(), "05327777777").await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while verdict(&first, queries[3]).await.1 != "withdrawn" {
        assert!(Instant::now() < deadline, "change not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut before = Vec::new();
    for q in queries {
        before.push(verdict(&first, q).await);
    }
    first.shutdown().await; // writes the snapshot file
    assert!(snap.exists());
    std::fs::remove_file(&path).unwrap(); // the CSV is gone too: only the snapshot remains

    let second = start(config(&Opts {
        csv: None,
        snapshot: Some(&snap),
        registry: DOWN,
        poll: "200ms",
        max_age: "1h",
    }))
    .await
    .unwrap();
    let mut after = Vec::new();
    for q in queries {
        after.push(verdict(&second, q).await);
    }
    assert_eq!(after, before, "same decisions from the snapshot file");
    let v = check(&second, queries[0]).await;
    assert!(
        v["data_age_seconds"].as_i64().is_some(),
        "data age reported: {v}"
    );
    let ready = reqwest::get(format!("http://{}/readyz", second.admin_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let status: Value = get(format!("http://{}/v1/status", second.admin_addr))
        .await
        .json()
        .await
        .unwrap();
    let b = status["brands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["brand_code"] == BRAND)
        .unwrap()
        .clone();
    assert!(
        b["cursor_iys"].as_str().is_some(),
        "cursors survive the restart: {b}"
    );
    // The registry stays down: errors are counted, the snapshot is untouched.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let metrics = reqwest::get(format!("http://{}/metrics", second.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        counted(&metrics, "iys_gate_sync_errors_total{kind=\"transport\"}"),
        "{metrics}"
    );
    assert_eq!(verdict(&second, queries[0]).await, before[0]);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_defers_commercial_and_passes_informational() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv(dir.path(), ROWS);
    let gate = start(config(&Opts {
        csv: Some(&path),
        snapshot: None,
        registry: DOWN,
        poll: "200ms",
        max_age: "1s",
    }))
    .await
    .unwrap();
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111").await,
        pair("allow", "consent")
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111").await,
        pair("defer", "stale")
    );
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111&message_type=0").await,
        pair("allow", "exempt")
    );
    let ready = reqwest::get(format!("http://{}/readyz", gate.admin_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("max_data_age"));
    gate.shutdown().await;
}

/// A registry that hands out tokens but answers the change feed with garbage.
async fn garbled_registry() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.starts_with("POST /oauth2/token") {
                    r#"{"access_token":"t","refresh_token":"r","expires_in":7200,"refresh_expires_in":14400,"token_type":"bearer"}"#
                } else if req.contains("source=HS") {
                    r#"{"after":"c1","list":[{"creationDate":"2025-01-01 00:00:00","recipient":"05321111111","recipientType":"BIREYSEL","status":"RET","type":"MESAJ","consentDate":"2025-01-01 00:00:00","source":"HS_WEB"},{"creationDate":"2025-01-01 00:00:00","recipient":"not-a-number","recipientType":"BIREYSEL","status":"RET","type":"MESAJ","consentDate":"2025-01-01 00:00:00","source":"HS_WEB"}]}"#
                } else {
                    r#"{"after": 17, "list": "#
                };
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_feed_leaves_the_snapshot_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv(dir.path(), ROWS);
    let url = garbled_registry().await;
    let registry = format!("base_url = \"{url}\"\nusername = \"u\"\npassword = \"p\"");
    let gate = start(config(&Opts {
        csv: Some(&path),
        snapshot: None,
        registry: &registry,
        poll: "100ms",
        max_age: "1h",
    }))
    .await
    .unwrap();
    let v1 = check(&gate, "channel=MESAJ&recipient=05321111111").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let v2 = check(&gate, "channel=MESAJ&recipient=05321111111").await;
    assert_eq!(
        v2["decision"], "allow",
        "the valid RET in the bad page must not be applied alone"
    );
    assert_eq!(
        v1["snapshot_version"], v2["snapshot_version"],
        "nothing published"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        counted(&metrics, "iys_gate_sync_errors_total{kind=\"bad_change\"}"),
        "{metrics}"
    );
    assert!(counted(
        &metrics,
        "iys_gate_sync_batches_total{result=\"error\"}"
    ));
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_without_a_snapshot_and_healthz_is_up() {
    // No CSV, no snapshot, registry down, a data-age limit: nothing fresh to decide from.
    let gate = start(config(&Opts {
        csv: None,
        snapshot: None,
        registry: DOWN,
        poll: "200ms",
        max_age: "1h",
    }))
    .await
    .unwrap();
    let health = reqwest::get(format!("http://{}/healthz", gate.admin_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("http://{}/readyz", gate.admin_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111").await,
        pair("defer", "stale")
    );
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111&message_type=0").await,
        pair("allow", "exempt")
    );
    gate.shutdown().await;
}

/// Gate 1 follows an emulator, takes a citizen's withdrawal and shuts down
/// (writing its snapshot with that emulator's cursors); then a gate starts
/// from that snapshot against a new emulator instance, which refuses those
/// cursors. Returns the second gate after a new withdrawal on its emulator.
async fn follow_a_restarted_registry(dir: &Path, registry: &str) -> RunningGate {
    let path = csv(dir, ROWS);
    let snap = dir.join("gate.snap");
    let opts = |registry| Opts {
        csv: Some(&path),
        snapshot: Some(&snap),
        registry,
        poll: "200ms",
        max_age: "1h",
    };
    let first = start(config(&opts(EMULATOR))).await.unwrap();
    citizen_withdraws(&first.emulator_url.clone().unwrap(), "05327777777").await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while verdict(&first, "channel=MESAJ&recipient=05327777777")
        .await
        .1
        != "withdrawn"
    {
        assert!(Instant::now() < deadline, "change not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.shutdown().await;
    let second = start(config(&opts(registry))).await.unwrap();
    citizen_withdraws(&second.emulator_url.clone().unwrap(), "05321111111").await;
    second
}

/// Whether `series` (name and labels, as the metrics page writes them) has
/// counted anything: error series exist at zero from the start.
fn counted(metrics: &str, series: &str) -> bool {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .is_some_and(|v| v > 0.0)
}

async fn metrics_text(gate: &RunningGate) -> String {
    reqwest::get(format!("http://{}/metrics", gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled series in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cursor_is_resumed_from_the_feed_start_when_the_data_is_recent() {
    let dir = tempfile::tempdir().unwrap();
    let gate = follow_a_restarted_registry(dir.path(), EMULATOR).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while verdict(&gate, "channel=MESAJ&recipient=05321111111")
        .await
        .1
        != "withdrawn"
    {
        assert!(
            Instant::now() < deadline,
            "the new registry's change never reached the gate: {}",
            metrics_text(&gate).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the snapshot held stays: the old registry's withdrawal is kept.
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05327777777").await,
        pair("refuse", "withdrawn")
    );
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05326666666").await,
        pair("allow", "consent")
    );
    // Brands are followed one after another: the change above may arrive
    // before the other brand's round has reset its cursor, so wait for it.
    // Metrics are process-wide: other tests in this binary may count too.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = metrics_text(&gate).await;
        if metric_value(&metrics, "iys_gate_sync_cursor_resets_total").is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one reset per followed brand (both had cursors from the old registry): {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cursor_with_data_older_than_the_feed_reach_keeps_the_brand_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // The feeds reach back 61 minutes: less than the 2 h margin a resumed
    // read needs before the last sync, so no resume is safe.
    let short = format!("{EMULATOR}\nfeed_retention = \"61m\"");
    let gate = follow_a_restarted_registry(dir.path(), &short).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = metrics_text(&gate).await;
        if counted(
            &metrics,
            "iys_gate_sync_errors_total{kind=\"cursor_expired\"}",
        ) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cursor_expired error: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05321111111").await,
        pair("allow", "consent"),
        "nothing read from a feed the gate cannot resume without a gap"
    );
    gate.shutdown().await;
}

/// `/v1/check` answers are counted in `iys_gate_decisions_total` like a gate's
/// (Kamailio and OpenSIPS gate calls through it). The series used here, a
/// withdrawn e-mail, is asked by no other test in this file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_api_decisions_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv(
        dir.path(),
        &[
            "700001,100001,gone@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
            "700001,100001,gone@example.com,BIREYSEL,EPOSTA,RET,2024-02-01 10:00:00,IYS_WEB,,",
        ],
    );
    let gate = start(config(&Opts {
        csv: Some(&path),
        snapshot: None,
        registry: EMULATOR,
        poll: "1s",
        max_age: "1h",
    }))
    .await
    .unwrap();
    let series =
        "iys_gate_decisions_total{channel=\"EPOSTA\",decision=\"refuse\",reason=\"withdrawn\",source=\"check_api\"}";
    let before = metric_value(&metrics_text(&gate).await, series).unwrap_or(0.0);
    for _ in 0..3 {
        assert_eq!(
            verdict(&gate, "channel=EPOSTA&recipient=Gone@Example.com").await,
            pair("refuse", "withdrawn")
        );
    }
    let after = metric_value(&metrics_text(&gate).await, series).unwrap_or(0.0);
    assert_eq!(after - before, 3.0, "three checks, three decisions counted");
    gate.shutdown().await;
}
