//! The web console end to end, in headless Chromium driven by playwright-core
//! (`tests/console/console.mjs`): a gate with the registry emulator, two
//! followed brands (one of them stale), SMPP traffic with refusals and a
//! sender that stays bound; the page must load, refuse a wrong token, show
//! the right decisions for a consented and a withdrawn number, show the
//! stale brand as stale, list the refusals masked, count the SMPP session
//! and the check API's decision rate. A screenshot goes to
//! `target/test-artifacts/console.png`.
//!
//! The stale brand is stale the way a brand goes stale in production: the
//! gate's snapshot holds it with change-feed cursors from ten days ago, the
//! registry refuses them, and its data is older than the feeds reach back, so
//! the follower cannot resume it (`cursor_expired`) until a fresh export is
//! loaded. The other brand has no cursor yet, reads its feeds from the start
//! and is fresh after the first round.
//!
//! Chromium (`/usr/bin/chromium`, or `IYS_CHROMIUM`), node and playwright-core
//! (`.ci/tools/node/node_modules`, installed by `.ci/run`) are required: the
//! test fails with a message saying what is missing, never passes without them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::consent::{Brand, ConsentTime};
use iys_gate::serve::{demo_fixed_records, start};
use iys_gate::smpp::codec::{Bind, Body, COctetString, Pdu, DEFAULT_MAX_COMMAND_LENGTH};
use iys_gate::smpp::tools::conn::{self, FrameBuf};
use iys_gate::smpp::tools::send::{send, SendArgs};
use iys_gate::store::{file, SnapshotBuilder, SyncState};
use iys_gate::sync::StoreHandle;

const READ_TOKEN: &str = "console-test-read-token";
const METRICS_TOKEN: &str = "console-test-metrics-token";
const FRESH: Brand = Brand {
    iys_code: 700001,
    brand_code: 100001,
};
const STALE: Brand = Brand {
    iys_code: 700001,
    brand_code: 100002,
};
const TEN_DAYS: i64 = 10 * 24 * 3600;
const WAIT: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The browser peers, or a panic saying which one is missing and how to get it.
struct Peers {
    node: PathBuf,
    chromium: PathBuf,
    node_modules: PathBuf,
}

fn peers() -> Peers {
    let hint = "run `bash .ci/run --install-only` (installs Debian's chromium and node, \
                and playwright-core into .ci/tools/node)";
    let chromium = std::env::var_os("IYS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "chromium not found at {} (set IYS_CHROMIUM to another path); {hint}",
        chromium.display()
    );
    let node = which("node").unwrap_or_else(|| panic!("node is not on PATH; {hint}"));
    let node_modules = repo().join(".ci/tools/node/node_modules");
    assert!(
        node_modules.join("playwright-core/package.json").is_file(),
        "playwright-core not found in {}; {hint}",
        node_modules.display()
    );
    Peers {
        node,
        chromium,
        node_modules,
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A snapshot file as a gate that was down for ten days left it: both
/// brands with the fixed demo records, synced ten days ago; the stale
/// brand with cursors the registry will not take.
async fn old_snapshot(path: &Path) {
    let then = ConsentTime(ConsentTime::now().0 - TEN_DAYS);
    let mut b = SnapshotBuilder::new();
    for brand in [FRESH, STALE] {
        b.add_brand(brand);
        for r in demo_fixed_records(brand) {
            b.add(&r);
        }
    }
    let (snapshot, _) = b.build(then);
    let store = StoreHandle::new();
    store.publish(snapshot);
    store
        .edit(|e| {
            e.set_sync(
                STALE,
                SyncState {
                    cursor_hs: Some("0000000000000007deadbeef".into()),
                    cursor_iys: Some("0000000000000003deadbeef".into()),
                    synced_at: Some(then),
                    changes_applied: 0,
                },
            );
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
    file::write(path, &store.load().unwrap()).expect("writing the test snapshot");
}

fn config(dir: &Path) -> String {
    let snapshot = dir.join("gate.snapshot").display().to_string();
    let access = dir.join("access.jsonl").display().to_string();
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
access_log = {access:?}
[[admin.tokens]]
name = "console-test"
token = "{READ_TOKEN}"
role = "read"
[[admin.tokens]]
name = "scraper"
token = "{METRICS_TOKEN}"
role = "metrics"

[policy]
max_data_age = "1h"

[store]
snapshot_path = {snapshot:?}

[registry]
emulator = true
emulator_listen = "127.0.0.1:0"
username = "demo"
password = "demo"
poll_interval = "1s"
max_backoff = "2s"

[demo]
tuples = 1000
seed = 1
sinks = true

[[brands]]
iys_code = {fi}
brand_code = {fb}

[[brands]]
iys_code = {si}
brand_code = {sb}

[smpp]
listen = "127.0.0.1:0"
upstream = "127.0.0.1:0"

[[smpp.accounts]]
system_id = "demo"
password = "demo"
iys_code = {fi}
brand_code = {fb}
"#,
        fi = FRESH.iys_code,
        fb = FRESH.brand_code,
        si = STALE.iys_code,
        sb = STALE.brand_code,
    )
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("the admin API answers")
}

async fn json(url: &str) -> serde_json::Value {
    let r = get(url, Some(READ_TOKEN)).await;
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

fn sms(target: std::net::SocketAddr, to: &str) -> SendArgs {
    SendArgs {
        target: target.to_string(),
        system_id: "demo".into(),
        password: "demo".into(),
        to: to.into(),
        from: "DEMO".into(),
        text: "console test".into(),
        message_type: None,
        timeout: WAIT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium() {
    let peers = peers();
    let dir = tempfile::tempdir().unwrap();
    old_snapshot(&dir.path().join("gate.snapshot")).await;
    let gate = start(Config::from_toml(&config(dir.path()), "console test").unwrap())
        .await
        .expect("the gate starts");
    let base = format!("http://{}", gate.admin_addr);

    // The fresh brand catches up; the stale one cannot.
    let deadline = Instant::now() + WAIT;
    loop {
        let s = json(&format!("{base}/v1/status")).await;
        let age = |b: Brand| {
            s["brands"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["iys_code"] == b.iys_code && e["brand_code"] == b.brand_code)
                .and_then(|e| e["data_age_seconds"].as_i64())
        };
        if age(FRESH).is_some_and(|a| a < 60) {
            assert!(age(STALE).unwrap() >= TEN_DAYS - 60, "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fresh brand never synced: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Not ready: the stale brand is past max_data_age.
    let ready = get(&format!("{base}/readyz"), None).await;
    assert_eq!(ready.status(), 503);

    // SMS: one consented, one withdrawn, one with no consent record.
    let smpp = gate.smpp_addr.unwrap();
    assert_eq!(
        send(&sms(smpp, "905300000001"))
            .await
            .unwrap()
            .command_status,
        0
    );
    assert_ne!(
        send(&sms(smpp, "905300000002"))
            .await
            .unwrap()
            .command_status,
        0
    );
    assert_ne!(
        send(&sms(smpp, "905301234567"))
            .await
            .unwrap()
            .command_status,
        0
    );
    // A sender that stays bound while the browser looks.
    let mut bound = conn::connect(smpp).await.unwrap();
    let mut frames = FrameBuf::new(DEFAULT_MAX_COMMAND_LENGTH);
    let bind = Bind {
        system_id: COctetString::copy_from(b"demo").unwrap(),
        password: COctetString::copy_from(b"demo").unwrap(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let resp = conn::exchange(
        &mut bound,
        &mut frames,
        &Pdu::new(1, Body::BindTransmitter(bind)),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(resp.command_status, 0);

    // The refusals reach the ring (the audit writer batches every 10 ms).
    let deadline = Instant::now() + WAIT;
    loop {
        let r = json(&format!("{base}/v1/refusals")).await;
        if r["total_seen"].as_u64().unwrap() >= 2 {
            let text = r.to_string();
            assert!(!text.contains("905300000002"), "recipient in clear: {text}");
            assert!(!text.contains("905301234567"), "recipient in clear: {text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refusals in /v1/refusals: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The page and its files: types, CSP, caching.
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let r = get(&format!("{base}{path}"), None).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {h:?}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-cache");
        let etag = h["etag"].clone();
        let again = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        let head = reqwest::Client::new()
            .head(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert!(head.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    // The console's JSON: read role, never cached.
    for path in ["/v1/rates", "/v1/sessions", "/v1/refusals"] {
        let url = format!("{base}{path}");
        assert_eq!(get(&url, None).await.status(), 401, "{path}");
        assert_eq!(get(&url, Some("wrong")).await.status(), 401, "{path}");
        assert_eq!(get(&url, Some(METRICS_TOKEN)).await.status(), 403, "{path}");
        let r = get(&url, Some(READ_TOKEN)).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let bad = get(&format!("{base}/v1/refusals?limit=0"), Some(READ_TOKEN)).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("limit"));
    let sessions = json(&format!("{base}/v1/sessions")).await;
    assert_eq!(sessions["smpp"]["sessions"], 1.0, "{sessions}");
    assert!(sessions["smtp_hop"].is_null(), "{sessions}");

    // The browser.
    let artifacts = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = tempfile::tempdir().unwrap();
    let script = repo().join("tests/console/console.mjs");
    let child = tokio::process::Command::new(&peers.node)
        .arg(&script)
        .env("CONSOLE_URL", format!("{base}/"))
        .env("READ_TOKEN", READ_TOKEN)
        .env("METRICS_TOKEN", METRICS_TOKEN)
        .env("FRESH_BRAND", FRESH.to_string())
        .env("STALE_BRAND", STALE.to_string())
        .env("CHROMIUM", &peers.chromium)
        .env(
            "PLAYWRIGHT_CORE",
            peers.node_modules.join("playwright-core"),
        )
        .env("USER_DATA_DIR", profile.path())
        .env("SCREENSHOT", &screenshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node");
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the browser script did not finish within 300 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "tests/console/console.mjs failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("console: all checks passed"), "{stdout}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("screenshot: {}", screenshot.display());

    // The browser's refusals reads are in the access log, with the token's name.
    let access = std::fs::read_to_string(dir.path().join("access.jsonl")).unwrap_or_default();
    assert!(
        access.lines().any(|l| l.contains("\"/v1/refusals\"")
            && l.contains("\"console-test\"")
            && l.contains("200")),
        "{access}"
    );
    assert!(!access.contains(READ_TOKEN), "a token in the access log");

    drop(bound);
    gate.shutdown().await;
}

/// `admin.console = false`: no page, the API as before; a wrong value names the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_can_be_turned_off() {
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\nconsole = false\n[[admin.tokens]]\nname = \"t\"\n\
         token = \"{READ_TOKEN}\"\nrole = \"read\"\n[[brands]]\niys_code = 700001\nbrand_code = 100001\n"
    );
    let gate = start(Config::from_toml(&text, "console off").unwrap())
        .await
        .expect("the gate starts");
    let base = format!("http://{}", gate.admin_addr);
    for path in ["/", "/console/app.js"] {
        let r = get(&format!("{base}{path}"), None).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.text().await.unwrap().contains("admin.console"), "{path}");
    }
    let r = get(&format!("{base}/v1/refusals"), Some(READ_TOKEN)).await;
    assert_eq!(r.status(), 200);
    let latest: serde_json::Value = r.json().await.unwrap();
    assert_eq!(latest["total_seen"], 0, "{latest}");
    assert_eq!(latest["refusals"].as_array().unwrap().len(), 0);
    gate.shutdown().await;

    let e = Config::from_toml("[admin]\nconsole = \"yes\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("console"), "{e}");
}
