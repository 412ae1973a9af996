//! The admin API's access control as an operator meets it: bearer tokens
//! with roles (401 without or with an unknown token, 403 with too small a
//! role), the access log of `/v1/check` (who looked up whom, recipient
//! masked), `/metrics` open or closed by config, the per-token rate limit,
//! no token in any log line, and TLS whose certificate is reloaded when the
//! files change or on SIGHUP.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::serve::{start, RunningGate};
use serde_json::Value;

const METRICS_TOKEN: &str = "prom-scrape-token-7f3a9c2e51";
const READ_TOKEN: &str = "noc-read-token-4b8d1e6a93c0";
const ADMIN_TOKEN: &str = "ops-admin-token-e2c7a05f1d84";
const LIMITED_TOKEN: &str = "crm-limited-token-9a61c3f0b7";
const ALL_TOKENS: &[&str] = &[METRICS_TOKEN, READ_TOKEN, ADMIN_TOKEN, LIMITED_TOKEN];
const WAIT: Duration = Duration::from_secs(20);

/// Everything the gate logs in this test binary (all tests), at debug.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
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

fn csv(dir: &Path) -> String {
    let path = dir.join("export.csv");
    std::fs::write(
        &path,
        "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
         700001,100001,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
         700001,100001,05322222222,BIREYSEL,MESAJ,RET,2024-03-01 10:00:00,IYS_MOBIL,,\n\
         700001,100001,05322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n",
    )
    .unwrap();
    path.display().to_string()
}

/// A gate on free ports with the test export; `admin` is the body of the
/// `[admin]` table after `listen` (tokens, options, sub-tables).
async fn gate(dir: &Path, admin: &str) -> RunningGate {
    captured_log();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n[store]\nbootstrap_csv = [{:?}]\n\
         [policy]\nmax_data_age = \"0s\"\n[[brands]]\niys_code = 700001\nbrand_code = 100001\n",
        csv(dir)
    );
    start(Config::from_toml(&text, "test").expect("test config"))
        .await
        .expect("the gate starts")
}

fn token(name: &str, token: &str, role: &str) -> String {
    format!("[[admin.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"{role}\"\n")
}

fn roles() -> String {
    token("prom", METRICS_TOKEN, "metrics")
        + &token("noc", READ_TOKEN, "read")
        + &token("ops", ADMIN_TOKEN, "admin")
}

const CHECK: &str =
    "/v1/check?iys_code=700001&brand_code=100001&channel=MESAJ&recipient=05321111111";

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.expect("the admin API answers")
}

/// The access log's lines, once it holds at least `n`.
async fn access_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(addr: SocketAddr, token: Option<&str>) -> String {
    get(addr, "/metrics", token).await.text().await.unwrap()
}

fn assert_no_token_in(what: &str, text: &str) {
    for t in ALL_TOKENS {
        assert!(!text.contains(t), "a token appears in the {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_needs_a_read_token_and_each_lookup_is_access_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let g = gate(
        dir.path(),
        &format!("access_log = {:?}\n{}", log.display().to_string(), roles()),
    )
    .await;
    let a = g.admin_addr;

    // No token: 401, with the scheme to use.
    let r = get(a, CHECK, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.text().await.unwrap().contains("Authorization: Bearer"));
    // An unknown token: 401.
    let r = get(a, CHECK, Some("not-a-configured-token-000")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    // A metrics token: 403, naming the token and the role needed.
    let r = get(a, CHECK, Some(METRICS_TOKEN)).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("prom") && body.contains("read"), "{body}");
    // A read token: the answer.
    let r = get(a, CHECK, Some(READ_TOKEN)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("allow"), Some("consent"))
    );
    // Admin includes read.
    let withdrawn = CHECK.replace("05321111111", "05322222222");
    let v: Value = get(a, &withdrawn, Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["reason"], "withdrawn");

    // Who looked up whom: one line per request, the token named, the
    // recipient masked.
    let lines = access_lines(&log, 5).await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    let by_status = |s: u64| {
        lines
            .iter()
            .filter(|l| l["status"] == s)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_status(401).len(), 2);
    assert!(by_status(401).iter().all(|l| l["token"].is_null()));
    assert_eq!(by_status(403)[0]["token"], "prom");
    let ok = by_status(200);
    let noc = ok
        .iter()
        .find(|l| l["token"] == "noc")
        .expect("the read token's lookup");
    assert_eq!(noc["recipient"], "+90532*****11");
    assert_eq!(noc["brand"], "700001/100001");
    assert_eq!(noc["channel"], "MESAJ");
    assert_eq!(
        (noc["decision"].as_str(), noc["reason"].as_str()),
        (Some("allow"), Some("consent"))
    );
    assert_eq!(noc["peer"], "127.0.0.1");
    assert!(noc["ts"].as_str().unwrap().ends_with('Z'));
    let ops = ok
        .iter()
        .find(|l| l["token"] == "ops")
        .expect("the admin token's lookup");
    assert_eq!(ops["reason"], "withdrawn");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("5321111111") && !text.contains("5322222222"),
        "masked: {text}"
    );
    assert_no_token_in("access log", &text);

    // /v1/status needs read too; probes and /metrics stay open.
    assert_eq!(get(a, "/v1/status", None).await.status(), 401);
    assert_eq!(
        get(a, "/v1/status", Some(METRICS_TOKEN)).await.status(),
        403
    );
    assert_eq!(get(a, "/v1/status", Some(READ_TOKEN)).await.status(), 200);
    assert_eq!(get(a, "/healthz", None).await.status(), 200);
    assert_eq!(get(a, "/readyz", None).await.status(), 200);
    let m = metrics(a, None).await;
    assert!(
        m.contains("iys_gate_admin_requests_total{path=\"/v1/check\",result=\"unauthorized\"}"),
        "{m}"
    );
    assert!(
        m.contains("iys_gate_admin_requests_total{path=\"/v1/check\",result=\"forbidden\"}"),
        "{m}"
    );
    assert!(m.contains("iys_gate_decisions_total{channel=\"MESAJ\",decision=\"allow\",reason=\"consent\",source=\"check_api\"}"), "{m}");
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_check_and_status_say_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let g = gate(dir.path(), "").await;
    for path in [CHECK, "/v1/status"] {
        let r = get(g.admin_addr, path, Some(READ_TOKEN)).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body = r.text().await.unwrap();
        assert!(body.contains("[[admin.tokens]]"), "{body}");
    }
    assert_eq!(get(g.admin_addr, "/metrics", None).await.status(), 200);
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_needs_a_token_when_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let g = gate(dir.path(), &format!("metrics_open = false\n{}", roles())).await;
    let a = g.admin_addr;
    let r = get(a, "/metrics", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        get(a, "/metrics", Some("not-a-configured-token-000"))
            .await
            .status(),
        401
    );
    for t in [METRICS_TOKEN, READ_TOKEN, ADMIN_TOKEN] {
        let r = get(a, "/metrics", Some(t)).await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("iys_gate_"));
    }
    assert_eq!(get(a, "/healthz", None).await.status(), 200);
    assert_eq!(get(a, "/readyz", None).await.status(), 200);
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_check_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    // A default limit for every token, and a tighter one for "crm".
    let admin = format!(
        "access_log = {:?}\ncheck_rate_limit = {{ per_second = 100, burst = 100 }}\n{}{}check_rate_limit = {{ per_second = 0.1, burst = 3 }}\n",
        log.display().to_string(),
        token("noc", READ_TOKEN, "read"),
        token("crm", LIMITED_TOKEN, "read"),
    );
    let g = gate(dir.path(), &admin).await;
    let a = g.admin_addr;
    for i in 0..3 {
        assert_eq!(
            get(a, CHECK, Some(LIMITED_TOKEN)).await.status(),
            200,
            "request {i} within the burst"
        );
    }
    let r = get(a, CHECK, Some(LIMITED_TOKEN)).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert!(r.text().await.unwrap().contains("crm"));
    // Another token is not held back by crm's limit.
    assert_eq!(get(a, CHECK, Some(READ_TOKEN)).await.status(), 200);
    let m = metrics(a, None).await;
    assert!(
        m.contains("iys_gate_admin_requests_total{path=\"/v1/check\",result=\"rate_limited\"} 1"),
        "{m}"
    );
    let lines = access_lines(&log, 5).await;
    let limited: Vec<_> = lines.iter().filter(|l| l["status"] == 429).collect();
    assert_eq!(limited.len(), 1, "{lines:?}");
    assert_eq!(limited[0]["token"], "crm");
    assert_eq!(limited[0]["recipient"], "+90532*****11");
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // No access_log file: the lines go to the log.
    let g = gate(dir.path(), &roles()).await;
    let a = g.admin_addr;
    for t in [
        None,
        Some(METRICS_TOKEN),
        Some(READ_TOKEN),
        Some(ADMIN_TOKEN),
        Some("not-a-configured-token-000"),
    ] {
        get(a, CHECK, t).await;
        get(a, "/v1/status", t).await;
    }
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let text = String::from_utf8_lossy(&captured_log().lock().unwrap()).to_string();
        if text.contains("\"token\":\"noc\"") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        log.contains("iys_gate::access"),
        "access lines go to the log"
    );
    assert!(
        log.contains("\"token\":\"noc\""),
        "the token's name is logged"
    );
    assert!(!log.contains("5321111111"), "the recipient is masked");
    assert_no_token_in("gate's log", &log);
    g.shutdown().await;
}

// --- TLS -----------------------------------------------------------------

fn cert() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// Replace a file as deploy tools do: write a new one, rename it over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS GET of `/healthz` by a client that trusts only `ca_pem`; Ok when
/// the gate presented that certificate.
async fn tls_get(addr: SocketAddr, ca_pem: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

async fn until_served(addr: SocketAddr, ca_pem: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match tls_get(addr, ca_pem).await {
            Ok(200) => return,
            r if Instant::now() > deadline => panic!("the new certificate is not served: {r:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn tls_gate(
    dir: &Path,
    reload_check: &str,
) -> (RunningGate, std::path::PathBuf, std::path::PathBuf) {
    let (cert_path, key_path) = (dir.join("admin.crt"), dir.join("admin.key"));
    let admin = format!(
        "access_log = {:?}\n{}[admin.tls]\ncert = {:?}\nkey = {:?}\nreload_check = \"{reload_check}\"\n",
        dir.join("access.jsonl").display().to_string(),
        roles(),
        cert_path.display().to_string(),
        key_path.display().to_string()
    );
    (gate(dir, &admin).await, cert_path, key_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_is_reloaded_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (a_cert, a_key) = cert();
    let (b_cert, b_key) = cert();
    std::fs::write(dir.path().join("admin.crt"), &a_cert).unwrap();
    std::fs::write(dir.path().join("admin.key"), &a_key).unwrap();
    let (g, cert_path, key_path) = tls_gate(dir.path(), "200ms").await;
    let addr = g.admin_addr;
    assert_eq!(tls_get(addr, &a_cert).await, Ok(200));
    assert!(tls_get(addr, &b_cert).await.is_err(), "B is not served yet");
    // Plain HTTP gets no answer from a TLS listener.
    assert!(reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_err());
    // Bearer tokens work over TLS.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(a_cert.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}{CHECK}", addr.port()))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    replace(&key_path, &b_key);
    replace(&cert_path, &b_cert);
    until_served(addr, &b_cert).await;
    assert!(
        tls_get(addr, &a_cert).await.is_err(),
        "A is no longer served"
    );

    // A broken pair is refused and the previous certificate kept.
    replace(&key_path, "not a key\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tls_get(addr, &b_cert).await, Ok(200), "B still served");
    let m = client_metrics(addr, &b_cert).await;
    assert!(
        m.contains("iys_gate_admin_tls_reloads_total{result=\"error\"}"),
        "{m}"
    );
    g.shutdown().await;
}

async fn client_metrics(addr: SocketAddr, ca_pem: &str) -> String {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .build()
        .unwrap()
        .get(format!("https://localhost:{}/metrics", addr.port()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_is_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (a_cert, a_key) = cert();
    let (b_cert, b_key) = cert();
    std::fs::write(dir.path().join("admin.crt"), &a_cert).unwrap();
    std::fs::write(dir.path().join("admin.key"), &a_key).unwrap();
    // reload_check 0s: the files are not watched, only SIGHUP reloads.
    let (g, cert_path, key_path) = tls_gate(dir.path(), "0s").await;
    let addr = g.admin_addr;
    assert_eq!(tls_get(addr, &a_cert).await, Ok(200));
    let log = dir.path().join("access.jsonl");
    assert_eq!(tls_check(addr, &a_cert).await, 200);
    assert_eq!(access_lines(&log, 1).await.len(), 1);
    // logrotate moves the access log away, then sends SIGHUP.
    std::fs::rename(&log, dir.path().join("access.jsonl.1")).unwrap();
    replace(&key_path, &b_key);
    replace(&cert_path, &b_cert);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        tls_get(addr, &a_cert).await,
        Ok(200),
        "no reload before SIGHUP"
    );
    // SAFETY: signalling our own process; the gate installed its handler at start.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    until_served(addr, &b_cert).await;
    assert!(tls_get(addr, &a_cert).await.is_err());
    // The access log was reopened: the next lookup is in a new file.
    assert_eq!(tls_check(addr, &b_cert).await, 200);
    let lines = access_lines(&log, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["token"], "noc");
    g.shutdown().await;
}

/// A `/v1/check` over TLS with the read token.
async fn tls_check(addr: SocketAddr, ca_pem: &str) -> u16 {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .build()
        .unwrap()
        .get(format!("https://localhost:{}{CHECK}", addr.port()))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
