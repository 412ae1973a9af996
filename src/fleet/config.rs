//! `[fleet]`: join a fleet of gates on a NATS JetStream server. Without the
//! table a gate runs alone, as before.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[fleet]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// NATS server URL(s), comma-separated (`nats://nats-0:4222,nats://nats-1:4222`;
    /// `tls://` for TLS).
    pub url: String,
    /// This gate's name in the fleet (the leader lock holds it; logs and
    /// `/v1/status` show it). Default: the host name and process id.
    #[serde(default)]
    pub name: Option<String>,
    /// NATS token (prefer `token_env`).
    #[serde(default)]
    pub token: Option<String>,
    /// Environment variable holding the NATS token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// NATS credentials file (`.creds`: user JWT and NKey seed).
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// PEM file of the CA that signed the NATS server's certificate (implies TLS).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The JetStream stream of changes. Default `IYS_CHANGES`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subject prefix of the stream: one subject per brand and source,
    /// `<prefix>.<iys_code>.<brand_code>.feed|push`. Default `iys.changes`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// How long the stream keeps changes; a gate away longer reloads a
    /// snapshot (the leader puts one every `snapshot_interval`). Default "24h".
    #[serde(default = "default_stream_max_age", with = "humantime_serde")]
    pub stream_max_age: Duration,
    /// Key-value bucket of the leader lock. Default `IYS_LEADER`.
    #[serde(default = "default_lock_bucket")]
    pub lock_bucket: String,
    /// Object store bucket of snapshots. Default `IYS_SNAPSHOTS`.
    #[serde(default = "default_snapshot_bucket")]
    pub snapshot_bucket: String,
    /// Replicas of the stream and buckets (1 or 3 on a three-node cluster). Default 1.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Time to live of the leader lock: a leader that stops renewing it is
    /// replaced after at most `lock_ttl` plus a third of it. Default "10s".
    #[serde(default = "default_lock_ttl", with = "humantime_serde")]
    pub lock_ttl: Duration,
    /// Registry requests per second for the whole fleet (only the leader
    /// polls), shared by every brand in turn. Default 10.
    #[serde(default = "default_request_budget")]
    pub request_budget: f64,
    /// How often the leader puts a snapshot into the object store (when the
    /// stream moved). Default "5m".
    #[serde(default = "default_snapshot_interval", with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// Connect and request timeout towards NATS. Default "5s".
    #[serde(default = "default_nats_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("credentials", &self.credentials)
            .field("tls_ca", &self.tls_ca)
            .field("stream", &self.stream)
            .field("lock_ttl", &self.lock_ttl)
            .field("request_budget", &self.request_budget)
            .field("snapshot_interval", &self.snapshot_interval)
            .finish_non_exhaustive()
    }
}

fn default_stream() -> String {
    "IYS_CHANGES".into()
}
fn default_subject_prefix() -> String {
    "iys.changes".into()
}
fn default_stream_max_age() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_lock_bucket() -> String {
    "IYS_LEADER".into()
}
fn default_snapshot_bucket() -> String {
    "IYS_SNAPSHOTS".into()
}
fn default_replicas() -> usize {
    1
}
fn default_lock_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_request_budget() -> f64 {
    10.0
}
fn default_snapshot_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_nats_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A JetStream name: letters, digits, `-` and `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FleetConfig {
    /// Check values serde cannot: `(key, message)` of the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, m: &str| Err((format!("fleet.{key}"), m.to_string()));
        if self.url.trim().is_empty()
            || !self.url.split(',').all(|u| {
                let u = u.trim();
                u.starts_with("nats://") || u.starts_with("tls://")
            })
        {
            return bad(
                "url",
                "must be one or more comma-separated nats:// or tls:// URLs",
            );
        }
        if self.name.as_deref().is_some_and(|n| !is_name(n)) {
            return bad(
                "name",
                "must be 1 to 64 letters, digits, '-' or '_' (it is a key-value value and a log field)",
            );
        }
        if [&self.token, &self.token_env]
            .iter()
            .filter(|t| t.is_some())
            .count()
            + usize::from(self.credentials.is_some())
            > 1
        {
            return bad(
                "token",
                "set at most one of token, token_env or credentials",
            );
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return bad("token", "must not be empty");
        }
        for (key, v) in [
            ("stream", &self.stream),
            ("lock_bucket", &self.lock_bucket),
            ("snapshot_bucket", &self.snapshot_bucket),
        ] {
            if !is_name(v) {
                return bad(key, "must be 1 to 64 letters, digits, '-' or '_'");
            }
        }
        if self.subject_prefix.is_empty()
            || self
                .subject_prefix
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
        {
            return bad(
                "subject_prefix",
                "must be dot-separated tokens without wildcards or spaces",
            );
        }
        if !matches!(self.replicas, 1..=5) {
            return bad("replicas", "must be between 1 and 5");
        }
        if self.lock_ttl < Duration::from_secs(1) {
            return bad("lock_ttl", "must be at least 1s");
        }
        if !(self.request_budget.is_finite() && self.request_budget > 0.0) {
            return bad(
                "request_budget",
                "must be a number of requests per second above 0",
            );
        }
        if self.snapshot_interval < Duration::from_secs(1) {
            return bad("snapshot_interval", "must be at least 1s");
        }
        if self.stream_max_age < Duration::from_secs(60) {
            return bad("stream_max_age", "must be at least 1m");
        }
        if self.timeout < Duration::from_millis(100) {
            return bad("timeout", "must be at least 100ms");
        }
        Ok(())
    }

    /// This gate's name in the fleet.
    pub fn gate_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "gate".into());
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{host}-{}", std::process::id())
    }

    /// The NATS token, from the config or the environment.
    pub fn token_value(&self) -> Result<Option<String>, (String, String)> {
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_string()));
        }
        if let Some(var) = &self.token_env {
            return std::env::var(var)
                .map(|v| Some(v.trim().to_string()))
                .map_err(|_| {
                    (
                        "fleet.token_env".to_string(),
                        format!("environment variable {var} is not set"),
                    )
                });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(body: &str) -> String {
        Config::from_toml(&format!("[fleet]\n{body}"), "t")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = Config::from_toml("[fleet]\nurl = \"nats://127.0.0.1:4222\"\n", "t").unwrap();
        let f = c.fleet.expect("[fleet]");
        assert_eq!(f.stream, "IYS_CHANGES");
        assert_eq!(f.lock_ttl, std::time::Duration::from_secs(10));
        assert_eq!(f.request_budget, 10.0);
        assert!(Config::from_toml("", "t").unwrap().fleet.is_none());
        for (body, key) in [
            ("url = \"http://x\"\n", "fleet.url"),
            (
                "url = \"nats://x\"\nlock_ttl = \"100ms\"\n",
                "fleet.lock_ttl",
            ),
            (
                "url = \"nats://x\"\nrequest_budget = 0\n",
                "fleet.request_budget",
            ),
            ("url = \"nats://x\"\nstream = \"a.b\"\n", "fleet.stream"),
            (
                "url = \"nats://x\"\nsubject_prefix = \"a.>\"\n",
                "fleet.subject_prefix",
            ),
            (
                "url = \"nats://x\"\ntoken = \"t\"\ntoken_env = \"T\"\n",
                "fleet.token",
            ),
            (
                "url = \"nats://x\"\nsnapshot_interval = \"0s\"\n",
                "fleet.snapshot_interval",
            ),
            ("url = \"nats://x\"\nreplicas = 0\n", "fleet.replicas"),
            ("url = \"nats://x\"\nname = \"a b\"\n", "fleet.name"),
            ("url = \"nats://x\"\nlock = 1\n", "lock"),
        ] {
            let e = err(body);
            assert!(e.contains(key), "{body}: {e}");
        }
        let c = Config::from_toml(
            "[fleet]\nurl = \"nats://x\"\ntoken = \"secret-nats-token\"\n",
            "t",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("secret-nats-token"));
    }
}
