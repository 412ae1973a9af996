//! Faults the gate must ride out (issue 13, item 6): a registry that answers
//! 429, 5xx, slowly or with garbled change-feed pages (the emulator's fault
//! injection), `kill -9` during a snapshot write, and a full disk under the
//! snapshot file.
//!
//! The registry faults run a real gate in process against an emulator served
//! on 127.0.0.1:0; the snapshot faults run the gate binary as a child process,
//! so it can be killed and its file-size limit set.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iys_gate::config::Config;
use iys_gate::consent::{Brand, ConsentTime};
use iys_gate::registry::api::{ConsentBody, StatusQuery};
use iys_gate::registry::emulator::{self, Emulator, EmulatorConfig, FaultConfig, FaultCounts};
use iys_gate::serve::{start, RunningGate};
use serde_json::{json, Value};

const IYS: u32 = 700001;
const BRAND_CODE: u32 = 100001;
const SECRET: &str = "soak-test-webhook-secret-0123";
const READ_TOKEN: &str = "soak-test-read-token-0123456789";
const HEADER: &str = "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n";

fn brand() -> Brand {
    Brand::new(IYS, BRAND_CODE)
}

fn number(i: u32) -> String {
    format!("90533{:07}", 1_000_000 + i)
}

// ---- registry faults (gate in process) --------------------------------------

struct Rig {
    emu: Arc<Emulator>,
    _server: emulator::EmulatorServer,
    gate: RunningGate,
    _dir: tempfile::TempDir,
    /// Consent date of the last write per number (strictly increasing).
    last: std::collections::HashMap<String, i64>,
}

async fn rig(faults: FaultConfig, poll: &str, max_backoff: &str) -> Rig {
    let emu = Arc::new(Emulator::new(EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = emulator::spawn(emu.clone(), listener).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(
        &csv,
        format!("{HEADER}{IYS},{BRAND_CODE},+905320000001,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n"),
    )
    .unwrap();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"t\"\ntoken = \"{READ_TOKEN}\"\nrole = \"read\"\n\
         [store]\nbootstrap_csv = [{csv:?}]\n[policy]\nmax_data_age = \"0s\"\n\
         [registry]\nbase_url = \"{}\"\nusername = \"demo\"\npassword = \"demo\"\npoll_interval = \"{poll}\"\n\
         max_backoff = \"{max_backoff}\"\nrequest_timeout = \"2s\"\n\
         [webhook]\nsecret = \"{SECRET}\"\n[[brands]]\niys_code = {IYS}\nbrand_code = {BRAND_CODE}\n[log]\nlevel = \"warn\"\n",
        server.url()
    );
    let gate = start(Config::from_toml(&text, "test").unwrap())
        .await
        .unwrap();
    Rig {
        emu,
        _server: server,
        gate,
        _dir: dir,
        last: Default::default(),
    }
}

impl Rig {
    /// A citizen or the provider changes a consent in the registry; returns
    /// the record as a webhook push would carry it.
    fn change(&mut self, n: &str, status: &str, source: &str) -> Value {
        let now = ConsentTime::now().unix();
        let when = now.max(self.last.get(n).map_or(0, |t| t + 1));
        self.last.insert(n.to_string(), when);
        let date = ConsentTime(when).to_string();
        self.emu
            .add_consent(
                brand(),
                &ConsentBody {
                    consent_date: date.clone(),
                    source: source.into(),
                    recipient: format!("+{n}"),
                    recipient_type: "BIREYSEL".into(),
                    status: status.into(),
                    channel: "MESAJ".into(),
                    retailer_code: None,
                    retailer_access: None,
                },
                ConsentTime::now(),
            )
            .unwrap_or_else(|e| panic!("the emulator refused {n} {status}: {e:?}"));
        json!({"iyscode": IYS, "brandcode": BRAND_CODE, "recipient": format!("+{n}"), "type": "MESAJ",
               "source": source, "status": status, "consentdate": date, "recipienttype": "BIREYSEL"})
    }

    /// What the emulator holds for `n` (`ONAY`, `RET`, or none).
    fn registry_status(&self, n: &str) -> Option<String> {
        let q = StatusQuery {
            recipient: format!("+{n}"),
            recipient_type: "BIREYSEL".into(),
            channel: "MESAJ".into(),
        };
        self.emu
            .status(brand(), &q, ConsentTime::now())
            .ok()
            .map(|s| s.status)
    }

    async fn admin(&self, path: &str) -> Value {
        let resp = reqwest::Client::new()
            .get(format!("http://{}{path}", self.gate.admin_addr))
            .bearer_auth(READ_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    /// The gate's answer for `n`: ONAY, RET or none, from `/v1/check`.
    async fn gate_status(&self, n: &str) -> Option<String> {
        let v = self
            .admin(&format!(
                "/v1/check?iys_code={IYS}&brand_code={BRAND_CODE}&channel=MESAJ&recipient_type=BIREYSEL&recipient={n}"
            ))
            .await;
        match (v["decision"].as_str(), v["reason"].as_str()) {
            (Some("allow"), Some("consent")) => Some("ONAY".into()),
            (Some("refuse"), Some("withdrawn")) => Some("RET".into()),
            (Some("refuse"), Some("no_consent")) => None,
            other => panic!("unexpected /v1/check answer for {n}: {other:?} {v}"),
        }
    }

    /// Wait until the gate answers as the emulator holds for every number;
    /// panics with the differences after `within`.
    async fn converge(&self, numbers: &[String], within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let mut differ = Vec::new();
            for n in numbers {
                let want = self.registry_status(n);
                let got = self.gate_status(n).await;
                if want != got {
                    differ.push(format!("{n}: registry {want:?}, gate {got:?}"));
                }
            }
            if differ.is_empty() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "after {within:?} the gate still differs from the registry on {} of {} numbers: {:?}; faults injected: {}",
                differ.len(),
                numbers.len(),
                &differ[..differ.len().min(5)],
                self.emu.faults().counts()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn sync_errors(&self, kind: &str) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.gate.admin_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("iys_gate_sync_errors_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    }
}

fn only(f: impl FnOnce(&mut FaultConfig)) -> FaultConfig {
    let mut c = FaultConfig {
        seed: Some(11),
        ..FaultConfig::default()
    };
    f(&mut c);
    c
}

/// Each fault on its own, at 30 % of the feed's requests: the gate backs off,
/// retries and ends with every change the registry holds. (The metrics are
/// the process's, so only increases are checked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_registry_fault_is_ridden_out_with_no_change_lost() {
    let mut r = rig(FaultConfig::default(), "100ms", "1s").await;
    let kinds: [(&str, Option<&str>, FaultConfig); 4] = [
        ("429", Some("rate_limited"), only(|c| c.rate_limited = 0.3)),
        ("5xx", Some("server"), only(|c| c.server_error = 0.3)),
        (
            "slow",
            None,
            only(|c| {
                c.slow = 0.3;
                c.slow_delay = Duration::from_millis(300);
            }),
        ),
        ("garbled", Some("garbled"), only(|c| c.garbled = 0.3)),
    ];
    let mut all = Vec::new();
    for (phase, (name, metric, faults)) in kinds.into_iter().enumerate() {
        let before_counts = r.emu.faults().counts();
        let before_errors = match metric {
            Some(k) => r.sync_errors(k).await,
            None => 0,
        };
        r.emu.faults().set(faults);
        let injected = |counts: FaultCounts| match name {
            "429" => counts.rate_limited - before_counts.rate_limited,
            "5xx" => counts.server_error - before_counts.server_error,
            "slow" => counts.slow - before_counts.slow,
            _ => counts.garbled - before_counts.garbled,
        };
        // New consents, half of them withdrawn again, written while the
        // faults hit, until at least 3 have been injected.
        let mut numbers: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while injected(r.emu.faults().counts()) < 3 || numbers.len() < 12 {
            assert!(
                Instant::now() < deadline,
                "{name}: fewer than 3 faults in 60 s"
            );
            let n = number(phase as u32 * 1000 + numbers.len() as u32);
            r.change(&n, "ONAY", "HS_WEB");
            if numbers.len().is_multiple_of(2) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                r.change(&n, "RET", "IYS_MOBIL");
            }
            numbers.push(n);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        all.extend(numbers.iter().cloned());
        let took = r.converge(&numbers, Duration::from_secs(90)).await;
        let counts = r.emu.faults().counts();
        let injected = injected(counts);
        eprintln!(
            "{name}: {} numbers changed, converged {took:?} after the last change, {injected} faults injected",
            numbers.len()
        );
        assert!(injected > 0, "{name}: no fault was injected ({counts})");
        if let Some(k) = metric {
            let after = r.sync_errors(k).await;
            assert!(
                after > before_errors,
                "{name}: iys_gate_sync_errors_total{{kind=\"{k}\"}} did not rise ({before_errors} -> {after})"
            );
        }
    }
    r.emu.faults().set(FaultConfig::default());
    // Nothing from an earlier phase was lost later on.
    r.converge(&all, Duration::from_secs(30)).await;
}

/// A garbled page is refused whole: while every page is garbled nothing
/// changes (snapshot version, cursors, answers); once pages are sound again
/// the change arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_page_changes_nothing() {
    let mut r = rig(FaultConfig::default(), "100ms", "500ms").await;
    let first = number(1);
    r.change(&first, "ONAY", "HS_WEB");
    r.converge(std::slice::from_ref(&first), Duration::from_secs(30))
        .await;
    let before = r.admin("/v1/status").await;
    r.emu.faults().set(only(|c| c.garbled = 1.0));
    let garbled_before = r.emu.faults().counts().garbled;
    let second = number(2);
    r.change(&first, "RET", "IYS_WEB");
    r.change(&second, "ONAY", "HS_WEB");
    let deadline = Instant::now() + Duration::from_secs(60);
    while r.emu.faults().counts().garbled < garbled_before + 3 {
        assert!(Instant::now() < deadline, "fewer than 3 pages were read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = r.admin("/v1/status").await;
    assert_eq!(
        during["snapshot_version"], before["snapshot_version"],
        "a garbled page published a snapshot"
    );
    for field in [
        "cursor_hs",
        "cursor_iys",
        "synced_at",
        "changes_applied",
        "tuples",
    ] {
        assert_eq!(
            during["brands"][0][field], before["brands"][0][field],
            "{field} moved on a garbled page"
        );
    }
    assert_eq!(r.gate_status(&first).await.as_deref(), Some("ONAY"));
    assert_eq!(r.gate_status(&second).await, None);
    r.emu.faults().set(FaultConfig::default());
    r.converge(&[first, second], Duration::from_secs(30)).await;
}

/// A registry that answers every request 429 is not hammered: the follower
/// backs off (500 ms doubling up to max_backoff) instead of polling every
/// 100 ms, and catches up once the limit lifts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_registry_is_backed_off() {
    let mut r = rig(only(|c| c.rate_limited = 1.0), "100ms", "2s").await;
    let n = number(7);
    r.change(&n, "ONAY", "HS_WEB");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = r.emu.faults().counts().rate_limited;
    let window = Duration::from_secs(8);
    tokio::time::sleep(window).await;
    let refused = r.emu.faults().counts().rate_limited - from;
    // Without back-off: 8 s / 100 ms = 80 rounds. With it: about 8 s / 2 s.
    assert!(
        (1..=12).contains(&refused),
        "{refused} requests in {window:?} against a registry answering 429 to all"
    );
    assert_eq!(r.gate_status(&n).await, None, "a 429 let a change through");
    r.emu.faults().set(FaultConfig::default());
    r.converge(&[n], Duration::from_secs(30)).await;
}

/// Every fault at once, with webhook pushes of some changes racing the feed:
/// at the end the gate holds exactly what the registry holds, number by number
/// and in `/v1/status`'s counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_change_is_lost_under_mixed_faults_and_pushes() {
    let mixed = FaultConfig {
        rate_limited: 0.15,
        server_error: 0.15,
        slow: 0.1,
        slow_delay: Duration::from_millis(2500), // beyond request_timeout: a transport error
        garbled: 0.15,
        seed: Some(5),
    };
    let mut r = rig(mixed, "100ms", "1s").await;
    let http = reqwest::Client::new();
    let webhook = format!("http://{}/v1/webhook", r.gate.admin_addr);
    let numbers: Vec<String> = (0..40).map(|i| number(500 + i)).collect();
    let mut state: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    let mut pushes = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut round = 0;
    // Rounds of changes until every kind of fault has hit at least twice.
    loop {
        let c = r.emu.faults().counts();
        if round >= 3 && c.rate_limited >= 2 && c.server_error >= 2 && c.slow >= 2 && c.garbled >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every fault hit twice in 90 s: {c}"
        );
        round += 1;
        for (i, n) in numbers.iter().enumerate() {
            if (i + round) % 3 == 0 {
                continue;
            }
            let status = match state.get(n).copied() {
                Some("ONAY") => "RET",
                _ => "ONAY",
            };
            let push = r.change(n, status, if i % 2 == 0 { "HS_WEB" } else { "IYS_WEB" });
            state.insert(n.clone(), status);
            if i % 4 == 0 {
                let resp = http
                    .post(&webhook)
                    .bearer_auth(SECRET)
                    .json(&push)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
                pushes += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(pushes > 0);
    let took = r.converge(&numbers, Duration::from_secs(120)).await;
    let counts: FaultCounts = r.emu.faults().counts();
    eprintln!("converged {took:?} after the last change; faults injected: {counts}");
    let status = r.admin("/v1/status").await;
    let b = status["brands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["brand_code"] == BRAND_CODE)
        .unwrap();
    let onay = 1 + state.values().filter(|s| **s == "ONAY").count(); // + the export's one
    let ret = state.values().filter(|s| **s == "RET").count();
    assert_eq!(
        b["tuples"]["MESAJ/BIREYSEL"],
        json!({"onay": onay, "ret": ret}),
        "/v1/status counts differ from the registry's"
    );
}

/// Bad fault flags are refused before the emulator listens, naming the flag.
#[test]
fn bad_fault_flags_are_refused_with_the_flag_named() {
    for (args, says) in [
        (&["--fault-429", "1.5"][..], "--fault-429"),
        (&["--fault-garbled", "x"][..], "--fault-garbled"),
        (
            &["--fault-429", "0.6", "--fault-5xx", "0.6"][..],
            "add up to at most 1",
        ),
        (
            &["--fault-slow", "0.1", "--fault-slow-delay", "0s"][..],
            "--fault-slow-delay",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_iys-gate"))
            .args(["registry", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            err.contains(says),
            "{args:?}: the error does not name {says}: {err}"
        );
        assert!(!err.contains("listening"), "{args:?}: it started: {err}");
    }
}

// ---- snapshot faults (gate binary as a child) -------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gate process, killed on drop, its log in a file.
struct GateProcess {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for GateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GateProcess {
    fn start(config: &Path, admin: SocketAddr, log: &Path, fsize_limit: Option<u64>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iys-gate"));
        cmd.args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        if let Some(limit) = fsize_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // A write past the limit then fails with EFBIG instead of
                    // killing the process (SIGXFSZ); ignored stays ignored across exec.
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("cannot start the iys-gate binary");
        let mut g = GateProcess {
            child,
            admin,
            log: log.to_path_buf(),
        };
        g.wait_ready();
        g
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the gate exited ({status}) while starting:\n{}",
                    self.log_text()
                );
            }
            if let Ok((200, _)) = self.get("/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gate did not get ready in 120 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A blocking HTTP/1.0 GET with the read token: (status, body).
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        self.request("GET", path, READ_TOKEN, "")
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect_timeout(&self.admin, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
        Ok((status, body))
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn verdict(&self, n: &str) -> String {
        let v = self.json(&format!(
            "/v1/check?iys_code={IYS}&brand_code={BRAND_CODE}&channel=MESAJ&recipient_type=BIREYSEL&recipient={n}"
        ));
        format!(
            "{}/{}",
            v["decision"].as_str().unwrap_or("?"),
            v["reason"].as_str().unwrap_or("?")
        )
    }

    fn push(&self, n: &str, status: &str, date: &str) -> Value {
        let body = json!({"iyscode": IYS, "brandcode": BRAND_CODE, "recipient": format!("+{n}"), "type": "MESAJ",
            "source": "HS_WEB", "status": status, "consentdate": date, "recipienttype": "BIREYSEL"});
        let (code, text) = self
            .request("POST", "/v1/webhook", SECRET, &body.to_string())
            .unwrap();
        assert_eq!(code, 200, "push: {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// An export big enough that writing its snapshot takes a while (and does
/// not fit a 256 KiB disk): `rows` consents of the test brand.
fn big_export(dir: &Path, rows: u32) -> PathBuf {
    let path = dir.join("export.csv");
    let mut text = String::with_capacity(rows as usize * 80 + HEADER.len());
    text.push_str(HEADER);
    for i in 0..rows {
        // Spread over the number space so the store does not compress to nothing.
        let n = 5_300_000_000u64 + (i as u64).wrapping_mul(2_654_435_761) % 99_999_999;
        text.push_str(&format!(
            "{IYS},{BRAND_CODE},+90{n},BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn gate_config(dir: &Path, csv: &Path, snapshot: &Path, admin: SocketAddr) -> PathBuf {
    let path = dir.join("gate.toml");
    std::fs::write(
        &path,
        format!(
            "[admin]\nlisten = \"{admin}\"\n[[admin.tokens]]\nname = \"t\"\ntoken = \"{READ_TOKEN}\"\nrole = \"read\"\n\
             [store]\nbootstrap_csv = [{csv:?}]\nsnapshot_path = {snapshot:?}\npersist_interval = \"1s\"\n\
             [policy]\nmax_data_age = \"0s\"\n[webhook]\nsecret = \"{SECRET}\"\n\
             [[brands]]\niys_code = {IYS}\nbrand_code = {BRAND_CODE}\n[log]\nlevel = \"info\"\n"
        ),
    )
    .unwrap();
    path
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().contains(".tmp."))
                .collect()
        })
        .unwrap_or_default()
}

/// `kill -9` while the snapshot file is being written: the file on disk is
/// still the previous snapshot, whole and loadable, the gate restarts from
/// it, and the killed writer's partial file is removed.
#[test]
fn kill_9_during_a_snapshot_write_leaves_the_previous_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let csv = big_export(dir.path(), 400_000);
    let snapdir = dir.path().join("data");
    std::fs::create_dir(&snapdir).unwrap();
    let snapshot = snapdir.join("snapshot.bin");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = gate_config(dir.path(), &csv, &snapshot, admin);
    let log = dir.path().join("gate.log");
    let consented = "905300000000".to_string(); // the export's first row
    let mut attempts = 0;
    let (before, killed_tmp) = loop {
        attempts += 1;
        assert!(
            attempts <= 10,
            "no kill landed inside a snapshot write in 10 tries"
        );
        let mut gate = GateProcess::start(&config, admin, &log, None);
        // The first write (or the one left from an earlier try) is on disk.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !snapshot.exists() || !temp_files(&snapdir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no snapshot written:\n{}",
                gate.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = iys_gate::store::file::read(&snapshot).expect("the first snapshot loads");
        // A change makes a new version; the next tick writes it. Kill the
        // gate the moment the temporary file appears.
        gate.push(&number(attempts), "ONAY", &ConsentTime::now().to_string());
        let deadline = Instant::now() + Duration::from_secs(30);
        let tmp = loop {
            if let Some(t) = temp_files(&snapdir).into_iter().next() {
                break Some(t);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        gate.child.kill().unwrap(); // SIGKILL
        gate.child.wait().unwrap();
        drop(gate);
        let after =
            iys_gate::store::file::read(&snapshot).expect("the snapshot file loads after kill -9");
        match tmp {
            // Killed mid-write: the temporary file is still there and the
            // rename never happened.
            Some(t) if t.exists() && after.version == before.version => break (before, t),
            _ => {
                eprintln!("try {attempts}: the write finished before the kill landed; again");
                for t in temp_files(&snapdir) {
                    std::fs::remove_file(t).unwrap();
                }
            }
        }
    };
    eprintln!(
        "killed during a write after {attempts} tries; the partial file {} has {} bytes",
        killed_tmp.display(),
        std::fs::metadata(&killed_tmp).map(|m| m.len()).unwrap_or(0)
    );
    // The gate restarts from the previous snapshot (not from the CSV: it is gone).
    std::fs::remove_file(&csv).unwrap();
    std::fs::write(&csv, HEADER).unwrap();
    let gate = GateProcess::start(&config, admin, &log, None);
    let status = gate.json("/v1/status");
    assert_eq!(
        status["snapshot_version"].as_u64(),
        Some(before.version),
        "the restarted gate did not load the previous snapshot:\n{}",
        gate.log_text()
    );
    assert_eq!(gate.verdict(&consented), "allow/consent");
    // The partial file of the killed writer is cleaned up at start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while killed_tmp.exists() {
        assert!(
            Instant::now() < deadline,
            "the partial file {} was left in place",
            killed_tmp.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gate.log_text().contains("removed a partial snapshot file"));
    assert_eq!(
        status["tuples"]["MESAJ"].as_u64(),
        Some(before.tuples_per_channel()[0])
    );
}

/// A mounted tmpfs of `size` bytes at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Only as root where mount works (a container may forbid it).
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount of the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// No room for the snapshot file: each write fails, the failure shows in the
/// log, in `iys_gate_snapshot_writes_total{result="error"}` and in
/// `/v1/status` (`snapshot_file`), no partial file is left, and the gate goes
/// on answering and taking changes. Where the test can mount (root), the disk
/// is a 256 KiB tmpfs (ENOSPC) and, once it is enlarged, the next write
/// succeeds; elsewhere the gate runs with RLIMIT_FSIZE at 256 KiB (EFBIG from
/// the same write calls, the same error path; `IYS_TEST_FULL_DISK=rlimit`
/// chooses it as root too).
#[test]
fn a_full_disk_under_the_snapshot_is_reported_and_the_gate_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let csv = big_export(dir.path(), 200_000);
    let snapdir = dir.path().join("data");
    std::fs::create_dir(&snapdir).unwrap();
    // IYS_TEST_FULL_DISK=rlimit takes the RLIMIT_FSIZE path even as root.
    let tmpfs = match std::env::var("IYS_TEST_FULL_DISK").as_deref() {
        Ok("rlimit") => None,
        _ => Tmpfs::mount(&snapdir, "256k"),
    };
    let limit = if tmpfs.is_some() {
        eprintln!("full disk: a 256 KiB tmpfs");
        None
    } else {
        eprintln!("full disk: RLIMIT_FSIZE 256 KiB (no tmpfs mounted)");
        Some(256 * 1024)
    };
    let snapshot = snapdir.join("snapshot.bin");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = gate_config(dir.path(), &csv, &snapshot, admin);
    let log = dir.path().join("gate.log");
    let gate = GateProcess::start(&config, admin, &log, limit);
    let deadline = Instant::now() + Duration::from_secs(60);
    while gate.metric("iys_gate_snapshot_writes_total{result=\"error\"} ") < 2.0 {
        assert!(
            Instant::now() < deadline,
            "no failed snapshot write counted:\n{}",
            gate.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
        // A new version each time, so each tick tries again.
        gate.push(&number(1), "ONAY", &ConsentTime::now().to_string());
    }
    let status = gate.json("/v1/status");
    let file = &status["snapshot_file"];
    assert!(file["failures_in_a_row"].as_u64() >= Some(2), "{file}");
    let err = file["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("No space left") || err.contains("too large"),
        "last_error does not say why: {file}"
    );
    assert_eq!(file["version_on_disk"], Value::Null);
    assert!(
        gate.log_text().contains("snapshot write failed"),
        "no log line:\n{}",
        gate.log_text()
    );
    assert!(
        temp_files(&snapdir).is_empty(),
        "a partial file was left behind"
    );
    assert!(!snapshot.exists());
    // Still serving: ready, answering, taking changes.
    assert_eq!(gate.get("/readyz").unwrap().0, 200);
    let late = number(2);
    let pushed = gate.push(&late, "ONAY", &ConsentTime::now().to_string());
    assert_eq!(pushed["applied"], 1);
    assert_eq!(gate.verdict(&late), "allow/consent");
    if let Some(fs) = &tmpfs {
        fs.resize("64m");
        gate.push(&number(3), "ONAY", &ConsentTime::now().to_string());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let file = gate.json("/v1/status")["snapshot_file"].clone();
            if file["failures_in_a_row"] == 0 && file["version_on_disk"].is_u64() {
                assert_eq!(file["last_error"], Value::Null);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no write succeeded after the disk grew: {file}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(iys_gate::store::file::read(&snapshot).is_ok());
    }
    drop(gate);
    drop(tmpfs);
}
