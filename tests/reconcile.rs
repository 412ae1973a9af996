//! Reconciliation and dealer access as an operator meets them, against the
//! in-process registry emulator: after changes through both change feeds and
//! the webhook, `POST /v1/reconcile` finds nothing; a tuple corrupted in the
//! gate's store (the test hook: the store's own publish path, as any writer
//! uses it) is found and named, masked, in the report, the metrics and the
//! error log; a dealer's access withdrawn in the registry refuses that
//! dealer within the refresh interval plus one second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::consent::{Brand, ConsentRecord, ConsentTime, Status};
use iys_gate::registry::api::{ConsentBody, RetailerAccessBody};
use iys_gate::serve::{start, RunningGate};
use serde_json::{json, Value};

const IYS: u32 = 700001;
const BRAND: u32 = 100001;
const ADMIN_TOKEN: &str = "reconcile-admin-token-5d2e9a71c4";
const READ_TOKEN: &str = "reconcile-read-token-8b3f60d2e1";
const SECRET: &str = "reconcile-webhook-secret-3a9c";
const WAIT: Duration = Duration::from_secs(30);

const ROWS: &[&str] = &[
    "700001,100001,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
    "700001,100001,05322222222,BIREYSEL,MESAJ,RET,2024-03-01 10:00:00,IYS_MOBIL,,",
    "700001,100001,05323333333,TACIR,MESAJ,ONAY,,,,",
    "700001,100001,05324444444,BIREYSEL,ARAMA,ONAY,2024-01-01 10:00:00,HS_CAGRI_MERKEZI,,",
    "700001,100001,05325555555,BIREYSEL,MESAJ,ONAY,2024-05-01 10:00:00,HS_FIZIKSEL_ORTAM,501,501;502",
    "700001,100001,ali@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
];

/// The gates of this file share one metrics registry (per process): one
/// test at a time, so a metric read is the test's own.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Everything the gates of this file log, at info and above.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn brand() -> Brand {
    Brand::new(IYS, BRAND)
}

fn csv(dir: &Path) -> PathBuf {
    let path = dir.join("export.csv");
    let mut text = String::from("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n");
    for r in ROWS {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn config_text(dir: &Path, refresh: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\nrole = \"admin\"\n\
         [[admin.tokens]]\nname = \"noc\"\ntoken = \"{READ_TOKEN}\"\nrole = \"read\"\n\
         [store]\nbootstrap_csv = [{:?}]\n\
         [policy]\nmax_data_age = \"1h\"\n\
         [registry]\nemulator = true\nemulator_listen = \"127.0.0.1:0\"\nusername = \"demo\"\npassword = \"demo\"\n\
         poll_interval = \"200ms\"\nmax_backoff = \"1s\"\nrequest_timeout = \"5s\"\n\
         [webhook]\nsecret = \"{SECRET}\"\n\
         [reconcile]\nsample = 100\nbudget_rps = 100\nfeed_lag = \"0s\"\n\
         [retailers]\nrefresh_interval = \"{refresh}\"\nbudget_rps = 50\n\
         [[brands]]\niys_code = {IYS}\nbrand_code = {BRAND}\n",
        csv(dir).display().to_string()
    )
}

async fn gate(dir: &Path, refresh: &str) -> RunningGate {
    captured_log();
    let text = config_text(dir, refresh);
    start(Config::from_toml(&text, "test").expect("test config"))
        .await
        .expect("the gate starts")
}

async fn verdict(gate: &RunningGate, query: &str) -> (String, String) {
    let v: Value = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/check?iys_code={IYS}&brand_code={BRAND}&{query}",
            gate.admin_addr
        ))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["decision"].as_str().unwrap_or("?").to_string(),
        v["reason"].as_str().unwrap_or("?").to_string(),
    )
}

async fn wait_for(gate: &RunningGate, query: &str, want: (&str, &str)) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = verdict(gate, query).await;
        if got.0 == want.0 && got.1 == want.1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query}: still {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reconcile(gate: &RunningGate, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/reconcile?brand={IYS}/{BRAND}",
            gate.admin_addr
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("the admin API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn body(recipient: &str, rtype: &str, channel: &str, status: &str, source: &str) -> ConsentBody {
    ConsentBody {
        consent_date: ConsentTime::now().to_string(),
        source: source.into(),
        recipient: recipient.into(),
        recipient_type: rtype.into(),
        status: status.into(),
        channel: channel.into(),
        retailer_code: None,
        retailer_access: None,
    }
}

/// The test hook: set one tuple in the gate's store to `status`, through
/// the store's publish path, without telling the registry.
async fn corrupt(gate: &RunningGate, row: &str, status: Status) {
    let mut record = ConsentRecord::from_csv_fields(row.split(',')).unwrap();
    record.status = status;
    record.consent_date = Some(ConsentTime::now());
    record.retailer_access.clear();
    gate.context
        .store
        .edit(|e| e.apply(&[record], ConsentTime::now()).map(|_| ()))
        .await
        .unwrap();
}

fn mismatches(report: &Value) -> Vec<Value> {
    report["mismatches"].as_array().cloned().unwrap_or_default()
}

async fn metric(gate: &RunningGate, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", gate.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_agrees_after_feeds_and_webhook_and_names_a_corrupted_tuple() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = gate(dir.path(), "5m").await;
    let emu = gate.emulator.clone().expect("the emulator runs in process");

    // Changes through both feeds: a provider's ONAY (HS), citizens' RETs (IYS),
    // one of them on e-mail.
    emu.add_consent(
        brand(),
        &body("+905326666666", "BIREYSEL", "MESAJ", "ONAY", "HS_WEB"),
        ConsentTime::now(),
    )
    .unwrap();
    emu.add_consent(
        brand(),
        &body("+905321111111", "BIREYSEL", "MESAJ", "RET", "IYS_MOBIL"),
        ConsentTime::now(),
    )
    .unwrap();
    emu.add_consent(
        brand(),
        &body("ali@example.com", "BIREYSEL", "EPOSTA", "RET", "IYS_WEB"),
        ConsentTime::now(),
    )
    .unwrap();
    // And one the integrator also pushes to the webhook.
    let push = body("+905324444444", "BIREYSEL", "ARAMA", "RET", "IYS_WEB");
    emu.add_consent(brand(), &push, ConsentTime::now()).unwrap();
    let last_change = ConsentTime::now();
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/webhook", gate.admin_addr))
        .bearer_auth(SECRET)
        .json(&json!({"iyscode": IYS, "brandcode": BRAND, "recipient": push.recipient, "type": "ARAMA",
            "source": "IYS_WEB", "status": "RET", "consentdate": push.consent_date, "recipienttype": "BIREYSEL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    wait_for(
        &gate,
        "channel=MESAJ&recipient=05326666666",
        ("allow", "consent"),
    )
    .await;
    wait_for(
        &gate,
        "channel=MESAJ&recipient=05321111111",
        ("refuse", "withdrawn"),
    )
    .await;
    wait_for(
        &gate,
        "channel=EPOSTA&recipient=ali@example.com",
        ("refuse", "withdrawn"),
    )
    .await;
    wait_for(
        &gate,
        "channel=ARAMA&recipient=05324444444",
        ("refuse", "withdrawn"),
    )
    .await;
    // And a complete feed round that began after the last change.
    let deadline = Instant::now() + WAIT;
    loop {
        let synced = gate
            .context
            .store
            .load()
            .and_then(|s| s.brand(brand()).and_then(|e| e.sync.synced_at));
        if synced.is_some_and(|t| t > last_change) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no complete sync round after the changes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Only the admin role may run it.
    let (status, _) = reconcile(&gate, READ_TOKEN).await;
    assert_eq!(status, 403);

    let (status, report) = reconcile(&gate, ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(mismatches(&report), Vec::<Value>::new(), "{report:#}");
    assert_eq!(report["ok"], true);
    // Every held phone tuple is in a sample of 100 (the export holds 7).
    let held = &report["sample"]["held"];
    assert!(held["checked"].as_u64().unwrap() >= 6, "{report:#}");
    assert_eq!(held["mismatches"], 0);
    let n = held["checked"].as_f64().unwrap();
    let bound = held["upper_bound_95"].as_f64().unwrap();
    assert!(
        (bound - (1.0 - 0.05f64.powf(1.0 / n))).abs() < 1e-9,
        "{bound}"
    );
    assert!(report["sample"]["absent"]["checked"].as_u64().unwrap() >= 50);
    // Today's movement file: 4 changes, HS 1 and IYS 3, exactly those applied.
    let today = report["movement"]["days"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(today["result"], "compared", "{today}");
    assert_eq!(today["registry_changes"], 4, "{today}");
    assert_eq!(today["registry_in_window"], json!([1, 3]), "{today}");
    assert_eq!(today["gate_applied"], json!([1, 3]), "{today}");
    assert_eq!(report["movement"]["tuples_checked"], 4);
    assert_eq!(report["movement"]["days"].as_array().unwrap().len(), 8);
    assert_eq!(
        metric(&gate, "iys_gate_reconcile_mismatches ").await,
        Some(0.0)
    );
    assert!(
        metric(&gate, "iys_gate_reconcile_last_run_timestamp_seconds ")
            .await
            .is_some_and(|t| t >= last_change.unix() as f64)
    );

    // A held tuple nobody changed, flipped to RET in the gate only: the sample finds it.
    let tacir = "700001,100001,05323333333,TACIR,MESAJ,ONAY,,,,";
    corrupt(&gate, tacir, Status::Ret).await;
    let (status, report) = reconcile(&gate, ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], false);
    let found = mismatches(&report);
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(
        found[0],
        json!({"kind": "status", "found_by": "sample_held", "channel": "MESAJ", "recipient_type": "TACIR",
            "recipient": "+90532*****33", "gate": "RET", "registry": "ONAY"})
    );
    assert_eq!(report["sample"]["held"]["mismatches"], 1);
    // Logged as an error, masked.
    let log = String::from_utf8_lossy(&captured_log().lock().unwrap()).into_owned();
    let line = log
        .lines()
        .find(|l| l.contains("reconciliation mismatch") && l.contains("*****33"))
        .unwrap_or_else(|| panic!("no mismatch logged:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("recipient=\"+90532*****33\""), "{line}");
    assert!(
        !log.contains("5323333333"),
        "a recipient in clear in the log"
    );
    assert_eq!(
        metric(&gate, "iys_gate_reconcile_mismatches ").await,
        Some(1.0)
    );
    corrupt(&gate, tacir, Status::Onay).await;

    // A tuple changed today, put back to ONAY in the gate only: the movement
    // file names it (and the sample, which holds every phone tuple, too).
    corrupt(&gate, ROWS[0], Status::Onay).await;
    let (_, report) = reconcile(&gate, ADMIN_TOKEN).await;
    let found = mismatches(&report);
    assert!(!found.is_empty(), "{report:#}");
    for m in &found {
        assert_eq!(m["recipient"], "+90532*****11", "{m}");
        assert_eq!(
            (m["gate"].as_str(), m["registry"].as_str()),
            (Some("ONAY"), Some("RET"))
        );
    }
    assert!(
        found.iter().any(|m| m["found_by"] == "movement_file"),
        "{report:#}"
    );
    assert_eq!(report["movement"]["mismatches"], 1);

    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dealer_whose_access_is_withdrawn_is_refused_within_the_refresh_interval_plus_one_second()
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_secs(1);
    let gate = gate(dir.path(), "1s").await;
    let emu = gate.emulator.clone().expect("the emulator runs in process");
    let dealer = |code: u32| format!("channel=MESAJ&recipient=05325555555&retailer_code={code}");
    assert_eq!(
        verdict(&gate, &dealer(502)).await,
        ("allow".into(), "consent".into())
    );
    assert_eq!(
        verdict(&gate, &dealer(777)).await,
        ("refuse".into(), "retailer_not_allowed".into())
    );

    let access = |codes: Vec<u32>| RetailerAccessBody {
        recipient: "+905325555555".into(),
        recipient_type: "BIREYSEL".into(),
        channel: "MESAJ".into(),
        retailer_access: Some(codes),
    };
    emu.withdraw_retailer_access(brand(), &access(vec![502]), ConsentTime::now())
        .unwrap();
    let withdrawn = Instant::now();
    loop {
        let v = verdict(&gate, &dealer(502)).await;
        if v == ("refuse".into(), "retailer_not_allowed".into()) {
            break;
        }
        assert!(
            withdrawn.elapsed() < interval + Duration::from_secs(1),
            "dealer 502 still {v:?} after {:?}",
            withdrawn.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "dealer access withdrawal refused after {:?}",
        withdrawn.elapsed()
    );
    // The other dealer keeps its access; the consent itself is untouched.
    assert_eq!(
        verdict(&gate, &dealer(501)).await,
        ("allow".into(), "consent".into())
    );
    assert_eq!(
        verdict(&gate, "channel=MESAJ&recipient=05325555555").await,
        ("allow".into(), "consent".into())
    );

    // A grant reaches the gate the same way.
    emu.grant_retailer_access(brand(), &access(vec![777]), ConsentTime::now())
        .unwrap();
    let granted = Instant::now();
    wait_for(&gate, &dealer(777), ("allow", "consent")).await;
    assert!(granted.elapsed() < interval + Duration::from_secs(1));
    eprintln!("dealer access grant allowed after {:?}", granted.elapsed());

    // A reconciliation now finds the gate's dealers equal to the registry's.
    let (status, report) = reconcile(&gate, ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(mismatches(&report), Vec::<Value>::new(), "{report:#}");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_naming_a_dealer_refreshes_that_consents_dealers_at_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // The periodic refresh is far away: only the named change can bring it.
    let gate = gate(dir.path(), "10m").await;
    let emu = gate.emulator.clone().expect("the emulator runs in process");
    let dealer = |code: u32| format!("channel=MESAJ&recipient=05325555555&retailer_code={code}");
    emu.grant_retailer_access(
        brand(),
        &RetailerAccessBody {
            recipient: "+905325555555".into(),
            recipient_type: "BIREYSEL".into(),
            channel: "MESAJ".into(),
            retailer_access: Some(vec![888]),
        },
        ConsentTime::now(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        verdict(&gate, &dealer(888)).await,
        ("refuse".into(), "retailer_not_allowed".into()),
        "nothing told the gate yet"
    );
    // Dealer 501 collects the consent again: the integrator pushes it.
    let pushed = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/webhook", gate.admin_addr))
        .bearer_auth(SECRET)
        .json(&json!({"iyscode": IYS, "brandcode": BRAND, "recipient": "05325555555", "type": "MESAJ",
            "source": "HS_FIZIKSEL_ORTAM", "status": "ONAY", "consentdate": ConsentTime::now().to_string(),
            "recipienttype": "BIREYSEL", "retailercode": 501}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(&gate, &dealer(888), ("allow", "consent")).await;
    eprintln!(
        "dealer-named change: registry's dealers published after {:?}",
        pushed.elapsed()
    );
    assert!(pushed.elapsed() < Duration::from_secs(5));
    assert_eq!(
        verdict(&gate, &dealer(502)).await,
        ("allow".into(), "consent".into())
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_report_and_fails_on_a_mismatch() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = gate(dir.path(), "5m").await;
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, config_text(dir.path(), "5m")).unwrap();
    let admin = format!("http://{}", gate.admin_addr);
    let run = |format: &'static str| {
        let config = config.clone();
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_iys-gate"))
                .args(["reconcile", "--brand", "700001/100001", "--format", format])
                .arg("--config")
                .arg(&config)
                .args(["--admin", &admin])
                .env_remove("IYS_GATE_ADMIN_TOKEN")
                .output()
                .expect("iys-gate runs")
        })
    };
    // The admin token comes from the config.
    let out = run("json").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["ok"], true);
    assert_eq!(report["brand"], "700001/100001");

    corrupt(&gate, ROWS[4], Status::Ret).await;
    let out = run("text").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("MISMATCHES FOUND"), "{stdout}");
    assert!(
        stdout.contains(
            "MISMATCH status (sample_held): - ARAMA BIREYSEL +90532*****44 gate=RET registry=ONAY"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("1 mismatches"), "{stderr}");
    gate.shutdown().await;
}

/// The pieces without a whole gate: a registry whose feed holds back the
/// newest hour (as İYS's does), a store built from the same export, one
/// follower round, and a reconciler with a given `feed_lag`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_feed_still_holds_back_is_in_flight_not_a_mismatch() {
    use iys_gate::reconcile::{ReconcileConfig, Reconciler, RunRequest};
    use iys_gate::registry::client::RegistryClient;
    use iys_gate::registry::emulator::{self, Emulator, EmulatorConfig};
    use iys_gate::store::SnapshotBuilder;
    use iys_gate::sync::{follow, StoreHandle};
    use std::sync::Arc;

    let _turn = ONE_AT_A_TIME.lock().await;
    let hour = Duration::from_secs(3600);
    let emu = Arc::new(Emulator::new(EmulatorConfig {
        feed_lag: hour,
        ..EmulatorConfig::default()
    }));
    let records: Vec<ConsentRecord> = ROWS
        .iter()
        .map(|r| ConsentRecord::from_csv_fields(r.split(',')).unwrap())
        .collect();
    let now = ConsentTime::now();
    let mut b = SnapshotBuilder::new();
    b.add_brand(brand());
    for r in &records {
        emu.seed(r, now);
        b.add(r);
    }
    let server = emulator::spawn(
        emu.clone(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .unwrap();
    let client = || {
        Arc::new(
            RegistryClient::new(&server.url(), "demo", "demo", Duration::from_secs(5)).unwrap(),
        )
    };
    let store = StoreHandle::new();
    store.publish(b.build(now).0);
    let follow_cfg = follow::FollowConfig {
        brands: vec![brand()],
        poll_interval: Duration::from_millis(200),
        page_limit: 999,
        max_pages_per_round: 10,
        max_backoff: Duration::from_secs(1),
        feed_retention: Duration::from_secs(7 * 86_400),
        budget: None,
    };

    // A citizen's RET the feed will not show for an hour; the gate's round
    // after it is complete and reads nothing.
    emu.add_consent(
        brand(),
        &body("+905321111111", "BIREYSEL", "MESAJ", "RET", "IYS_MOBIL"),
        ConsentTime::now(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let round = follow::sync_brand(&store, &client(), brand(), &follow_cfg)
        .await
        .unwrap();
    assert_eq!((round.read, round.caught_up), (0, true));

    let run = |lag: Duration| {
        let store = store.clone();
        let client = client();
        async move {
            let r = Reconciler::new(
                store,
                client,
                vec![brand()],
                ReconcileConfig {
                    sample: 100,
                    budget_rps: 100.0,
                    feed_lag: lag,
                },
            );
            r.run(RunRequest {
                brand: brand(),
                sample: None,
                budget_rps: None,
            })
            .await
            .unwrap()
        }
    };
    // With the registry's lag configured: in flight, in the sample and the file.
    let report = run(hour).await;
    assert!(report.ok, "{report:#?}");
    // (The undated TACIR row, seeded as created now, is in flight too.)
    assert!(report.sample.held.in_flight >= 1, "{report:#?}");
    assert_eq!(report.movement.in_flight, 1, "{report:#?}");
    // Configured as if the feed held nothing back, the same RET is a
    // mismatch: the gate cannot have it yet.
    let report = run(Duration::ZERO).await;
    assert!(!report.ok);
    let kinds: Vec<(&str, &str, Option<&str>, &str)> = report
        .mismatches
        .iter()
        .map(|m| {
            (
                m.kind.as_str(),
                m.found_by.as_str(),
                m.recipient.as_deref(),
                m.registry.as_str(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("status", "sample_held", Some("+90532*****11"), "RET"),
            ("day", "movement_file", None, "1 changes listed"),
            ("status", "movement_file", Some("+90532*****11"), "RET"),
        ],
        "{:#?}",
        report.mismatches
    );
    server.shutdown().await.unwrap();
}
