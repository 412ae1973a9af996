//! A real Postfix and smtp-sink for integration tests, run from a temp folder.
//!
//! [`Postfix::start`] writes a `main.cf` and `master.cf` into its own
//! `config_directory`, with `queue_directory` and `data_directory` beside
//! them, smtpd on free loopback ports, `mynetworks` = loopback, relaying
//! everything to `relayhost`, logging to a file (`maillog`), no chroot; then
//! `postfix -c DIR start`, and `postfix -c DIR stop` (then a kill of the
//! master) when dropped. As root it needs the `postfix` user and the
//! `postdrop` group, which Debian's `postfix` package creates. The system
//! Postfix is never touched.
//!
//! [`SmtpSink`] runs Postfix's `smtp-sink` on a free loopback port, dumping
//! every transaction (envelope as `X-Mail-Args:` / `X-Rcpt-Args:` lines, then
//! the message) to one file.
//!
//! A missing binary fails the test with what to install.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts Postfix and its tools.
pub const POSTFIX: &str = "/usr/sbin/postfix";
/// Postfix's test SMTP server.
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// Postfix's test SMTP client.
pub const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";
/// The SMTP test client.
pub const SWAKS: &str = "/usr/bin/swaks";

/// The path of a peer binary, or a failed test saying what to install.
pub fn require(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if !p.exists() {
        let package = if path.contains("swaks") {
            "swaks"
        } else {
            "postfix"
        };
        panic!("{path} is missing: install {package} (bash .ci/run does)");
    }
    p
}

/// A loopback port free right now (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts connections at `addr`.
pub fn wait_listening(addr: SocketAddr, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} not listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `postfix` user's ids (uid, gid).
fn postfix_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postfix")).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .expect("no postfix user: install postfix (bash .ci/run does)")
}

/// A Postfix instance in a temp folder.
pub struct Postfix {
    dir: tempfile::TempDir,
    /// smtpd listeners, in the order of `Postfix::start`'s `smtpd` argument.
    pub smtpd: Vec<SocketAddr>,
    stopped: bool,
}

impl Postfix {
    /// Start Postfix relaying to `relayhost`; `main_cf` is appended to the
    /// generated `main.cf`; each entry of `smtpd` adds one smtpd listener,
    /// its `-o name=value` overrides as given (no spaces inside a value).
    pub fn start(relayhost: SocketAddr, main_cf: &str, smtpd: &[&[&str]]) -> Postfix {
        let postfix = require(POSTFIX);
        let dir = tempfile::Builder::new()
            .prefix("iys-postfix-")
            .tempdir()
            .unwrap();
        world_readable(dir.path());
        let etc = dir.path().join("etc");
        let queue = dir.path().join("queue");
        let data = dir.path().join("data");
        for d in [&etc, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
            world_readable(d);
        }
        let (uid, gid) = postfix_ids();
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
        let d = dir.path().display();
        let main = format!(
            "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-test.example
mydomain = example
myorigin = postfix-test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [{ip}]:{port}
alias_maps =
alias_database =
biff = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
{main_cf}
",
            ip = relayhost.ip(),
            port = relayhost.port(),
        );
        std::fs::write(etc.join("main.cf"), main).unwrap();
        let mut master = String::new();
        let mut listeners = Vec::new();
        for overrides in smtpd {
            let port = free_port();
            listeners.push(SocketAddr::from(([127, 0, 0, 1], port)));
            master += &format!("127.0.0.1:{port} inet n - n - - smtpd");
            for o in overrides.iter() {
                master += &format!("\n  -o {o}");
            }
            master.push('\n');
        }
        master += MASTER_CF;
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let mut p = Postfix {
            dir,
            smtpd: listeners,
            stopped: true,
        };
        let status = Command::new(&postfix)
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "postfix -c {} start failed ({status}); its log:\n{}",
            etc.display(),
            p.maillog()
        );
        p.stopped = false;
        for addr in p.smtpd.clone() {
            wait_listening(addr, Duration::from_secs(30), "Postfix smtpd");
        }
        p
    }

    /// The config directory (`postfix -c`, `postqueue -c`).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// What Postfix logged so far.
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Stop Postfix (also done on drop).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.config_dir())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `postfix stop` asks the master to end; make sure it has.
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The services Postfix needs besides smtpd, none chrooted.
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// Postfix's smtp-sink on a free loopback port, dumping every transaction to a file.
pub struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl SmtpSink {
    /// Start it; it accepts every command.
    pub fn start() -> SmtpSink {
        let bin = require(SMTP_SINK);
        let dir = tempfile::Builder::new()
            .prefix("iys-sink-")
            .tempdir()
            .unwrap();
        world_readable(dir.path());
        let (uid, gid) = postfix_ids();
        let dumps = dir.path().join("dump");
        std::fs::create_dir_all(&dumps).unwrap();
        std::os::unix::fs::chown(&dumps, Some(uid), Some(gid)).unwrap();
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("sink.log")).unwrap();
        let mut cmd = Command::new(bin);
        // As root smtp-sink must be told whom to run as.
        if is_root() {
            cmd.args(["-u", "postfix"]);
        }
        let child = cmd
            .arg("-D")
            .arg(dumps.join("transactions"))
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let sink = SmtpSink { child, dir, addr };
        wait_listening(addr, Duration::from_secs(10), "smtp-sink");
        sink
    }

    /// Everything dumped so far.
    pub fn dump(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dump/transactions")).unwrap_or_default()
    }

    /// The envelope recipients dumped so far, in order.
    pub fn recipients(&self) -> Vec<String> {
        self.dump()
            .lines()
            .filter_map(|l| l.strip_prefix("X-Rcpt-Args: <"))
            .filter_map(|l| l.split_once('>').map(|(a, _)| a.to_string()))
            .collect()
    }

    /// Wait until `recipient` has arrived; all recipients dumped by then.
    pub fn wait_for(&self, recipient: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let r = self.recipients();
            if r.iter().any(|x| x == recipient) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{recipient} did not arrive at the sink; it has {r:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// One swaks transaction's replies: the reply to each `RCPT TO:<addr>`, and the
/// reply to the final dot (if DATA got that far).
#[derive(Debug)]
pub struct Swaks {
    /// (recipient, reply line) in order.
    pub rcpt: Vec<(String, String)>,
    /// The reply after the message's final dot.
    pub data: Option<String>,
    /// swaks's whole transcript.
    pub transcript: String,
}

impl Swaks {
    /// The reply to one recipient.
    pub fn reply(&self, recipient: &str) -> &str {
        self.rcpt
            .iter()
            .find(|(r, _)| r == recipient)
            .map(|(_, reply)| reply.as_str())
            .unwrap_or_else(|| panic!("no RCPT for {recipient}:\n{}", self.transcript))
    }
}

/// Send one message with swaks to `server`, from `from` to each of `to`
/// (one transaction); `extra` adds swaks options.
pub fn swaks(server: SocketAddr, from: &str, to: &[&str], extra: &[&str]) -> Swaks {
    let bin = require(SWAKS);
    let out = Command::new(bin)
        .arg("--server")
        .arg(server.to_string())
        .args(["--from", from, "--to", &to.join(",")])
        .args(["--helo", "client.example", "--timeout", "60"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let transcript =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut rcpt = Vec::new();
    let mut data = None;
    let mut waiting: Option<String> = None;
    let mut after_dot = false;
    for line in transcript.lines() {
        if let Some(cmd) = line.strip_prefix(" -> ") {
            if let Some(addr) = cmd.strip_prefix("RCPT TO:<") {
                waiting = addr.split_once('>').map(|(a, _)| a.to_string());
            } else if cmd == "." {
                after_dot = true;
            }
        } else if let Some(reply) = line.strip_prefix("<-  ").or(line.strip_prefix("<** ")) {
            if let Some(addr) = waiting.take() {
                rcpt.push((addr, reply.to_string()));
            } else if after_dot && data.is_none() {
                data = Some(reply.to_string());
            }
        }
    }
    Swaks {
        rcpt,
        data,
        transcript,
    }
}
