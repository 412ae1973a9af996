//! The gate's configuration: one TOML file, every key documented in
//! `config/iys-gate.toml`, validated at start with errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::consent::Brand;

/// The built-in demo configuration (`iys-gate serve` without `--config`).
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Everything `iys-gate serve` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Admin HTTP listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Consent store and snapshot file.
    #[serde(default)]
    pub store: StoreConfig,
    /// How decisions are enforced.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The registry to follow.
    pub registry: Option<RegistryConfig>,
    /// Brands the gate holds and follows.
    #[serde(default)]
    pub brands: Vec<BrandConfig>,
    /// Pushed changes.
    pub webhook: Option<WebhookConfig>,
    /// Refusal audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Demo data (the embedded demo only).
    pub demo: Option<DemoConfig>,
    /// The SMS gate (SMPP proxy).
    pub smpp: Option<crate::smpp::config::SmppConfig>,
    /// The mail gate (Postfix policy service and inline SMTP hop).
    pub smtp: Option<crate::smtp::config::SmtpConfig>,
    /// The voice gate (SIP stateless proxy or redirect server).
    pub sip: Option<crate::sip::config::SipConfig>,
    /// The process: how it drains on SIGTERM.
    #[serde(default)]
    pub server: ServerConfig,
    /// Daily reports (`iys-gate report`, `/v1/report`).
    #[serde(default)]
    pub reports: ReportsConfig,
    /// Reconciliation with the registry (`iys-gate reconcile`, `POST /v1/reconcile`).
    #[serde(default)]
    pub reconcile: crate::reconcile::ReconcileConfig,
    /// Keeping dealer (retailer) access current from the registry.
    #[serde(default)]
    pub retailers: crate::sync::retailers::RetailersConfig,
    /// A fleet of gates on NATS JetStream; none: this gate runs alone.
    pub fleet: Option<crate::fleet::config::FleetConfig>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long the graceful drain on SIGTERM (or Ctrl-C) may take: from the
    /// signal until every SMPP sender is unbound with its requests answered,
    /// every SMTP transaction in progress finished, every policy request
    /// answered; whatever is left then is answered with a temporary error
    /// and closed. `/readyz` answers 503 for the whole drain. The last
    /// snapshot write and at most a few seconds of closing come after it,
    /// so an orchestrator's grace period must exceed this (Kubernetes:
    /// `terminationGracePeriodSeconds` > `preStop` pause + this + the
    /// snapshot write; systemd: `TimeoutStopSec`). Default "15s" (below
    /// Kubernetes' default 30 s grace); between 1s and 1h.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            drain_timeout: default_drain_timeout(),
        }
    }
}

/// `[reports]`: the daily counts by brand, channel, decision, reason and
/// dealer (docs/compliance.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Directory of `reports.json`. Default: the directory of
    /// `store.snapshot_path`; with neither, reports are kept in memory only
    /// (lost at restart; the gate warns at start).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How often changed counts are written (and once at shutdown): a crash
    /// loses at most this much. Default 60s; at least 1s.
    #[serde(default = "default_reports_flush", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Days kept in the file (older ones are dropped when it is written).
    /// Default 400; at least 1.
    #[serde(default = "default_reports_retention")]
    pub retention_days: u32,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            state_dir: None,
            flush_interval: default_reports_flush(),
            retention_days: default_reports_retention(),
        }
    }
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(15)
}

fn default_reports_flush() -> Duration {
    Duration::from_secs(60)
}

fn default_reports_retention() -> u32 {
    400
}

impl Config {
    /// Where the daily report file is: `reports.state_dir`, else beside the
    /// snapshot file; `None`: in memory only.
    pub fn reports_path(&self) -> Option<PathBuf> {
        let dir = match &self.reports.state_dir {
            Some(d) => d.clone(),
            None => {
                let snapshot = self.store.snapshot_path.as_ref()?;
                match snapshot.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                }
            }
        };
        Some(dir.join(crate::observe::report::FILE_NAME))
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer tokens and their roles (`[[admin.tokens]]`). Without any,
    /// `/v1/check` and `/v1/status` answer 401 (and say to configure one).
    #[serde(default)]
    pub tokens: Vec<AdminTokenConfig>,
    /// `/metrics` answers without a token (for Prometheus). Default true;
    /// false: a token with role `metrics` (or above) is needed.
    #[serde(default = "default_true")]
    pub metrics_open: bool,
    /// The `/v1/check` rate limit of each token without its own
    /// `check_rate_limit`. Default: none (no limit).
    #[serde(default)]
    pub check_rate_limit: Option<RateLimitConfig>,
    /// JSON-lines file of `/v1/check` requests (who looked up whom); none:
    /// they go to the log (target `iys_gate::access`). Reopened on SIGHUP.
    #[serde(default)]
    pub access_log: Option<PathBuf>,
    /// TLS on the admin listener; none: plain HTTP.
    #[serde(default)]
    pub tls: Option<AdminTlsConfig>,
    /// Serve the web console at `/` (its files need no token; the data it
    /// shows needs one with role `read`). Default true; false: `/` answers
    /// 404 and only the API is served.
    #[serde(default = "default_true")]
    pub console: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            tokens: Vec::new(),
            metrics_open: true,
            check_rate_limit: None,
            access_log: None,
            tls: None,
            console: true,
        }
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

fn default_true() -> bool {
    true
}

/// What a bearer token may do. Roles nest: `admin` ⊃ `read` ⊃ `metrics`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Scrape `/metrics`.
    Metrics,
    /// Also `/v1/check` and `/v1/status`.
    Read,
    /// Also anything that changes state.
    Admin,
}

impl Role {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Metrics => "metrics",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// `[[admin.tokens]]`: one of `token`, `token_env`, `token_file`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenConfig {
    /// Who holds it: written to the access log, never the token itself.
    pub name: String,
    /// The token (at least 16 characters; prefer `token_env` or `token_file`).
    #[serde(default)]
    pub token: Option<String>,
    /// Environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `metrics`, `read` or `admin`.
    pub role: Role,
    /// This token's `/v1/check` rate limit (overrides `admin.check_rate_limit`).
    #[serde(default)]
    pub check_rate_limit: Option<RateLimitConfig>,
}

impl std::fmt::Debug for AdminTokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokenConfig")
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("role", &self.role)
            .field("check_rate_limit", &self.check_rate_limit)
            .finish()
    }
}

/// A token bucket: `per_second` requests a second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second (> 0).
    pub per_second: f64,
    /// Requests allowed at once (>= 1).
    pub burst: u32,
}

/// `[admin.tls]`: PEM files, reloaded on SIGHUP and when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// How often the files' modification times are checked; `0s`: only on
    /// SIGHUP. Default "5s".
    #[serde(default = "default_tls_reload_check", with = "humantime_serde")]
    pub reload_check: Duration,
}

fn default_tls_reload_check() -> Duration {
    Duration::from_secs(5)
}

/// A configured admin token with its value read (from the file, the
/// environment or a file).
#[derive(Clone)]
pub struct ResolvedToken {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The token.
    pub secret: String,
    /// Its `/v1/check` rate limit.
    pub check_rate_limit: Option<RateLimitConfig>,
}

impl std::fmt::Debug for ResolvedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Shortest token or secret accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// What to do with a CSV row that does not parse.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// Stop the load and report the row.
    #[default]
    Abort,
    /// Skip it, count it, report the first few.
    Skip,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Snapshot file: loaded at start, written periodically and at shutdown.
    pub snapshot_path: Option<PathBuf>,
    /// Full exports loaded when there is no snapshot file.
    #[serde(default)]
    pub bootstrap_csv: Vec<PathBuf>,
    /// CSV rows that do not parse: `abort` or `skip`.
    #[serde(default)]
    pub bad_rows: BadRows,
    /// How often a changed snapshot is written.
    #[serde(default = "default_persist_interval", with = "humantime_serde")]
    pub persist_interval: Duration,
    /// Export rows (and snapshot-file brands) of brands not in `[[brands]]`:
    /// `skip` (default: nothing keeps them current, so the gate does not
    /// answer from them; counted in
    /// `iys_gate_bootstrap_rows_skipped_total{reason="unfollowed_brand"}`
    /// and logged) or `load` (answered from the export as it was). Without
    /// any `[[brands]]` every brand is loaded.
    #[serde(default)]
    pub unfollowed_brands: UnfollowedBrands,
}

/// What bootstrap does with brands the config does not follow.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnfollowedBrands {
    /// Leave them out (counted and logged).
    #[default]
    Skip,
    /// Load them; nothing keeps them current.
    Load,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            snapshot_path: None,
            bootstrap_csv: Vec::new(),
            bad_rows: BadRows::default(),
            persist_interval: default_persist_interval(),
            unfollowed_brands: UnfollowedBrands::default(),
        }
    }
}

fn default_persist_interval() -> Duration {
    Duration::from_secs(300)
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Record decisions but enforce none.
    #[serde(default)]
    pub monitor: bool,
    /// Data older than this defers commercial traffic; `0s` disables the limit.
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_data_age: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            monitor: false,
            max_data_age: default_max_age(),
        }
    }
}

fn default_max_age() -> Duration {
    Duration::from_secs(6 * 3600)
}

/// `[registry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// API base URL (`https://api.iys.org.tr`); ignored when `emulator = true`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// API user.
    #[serde(default)]
    pub username: String,
    /// API password (prefer `password_env`).
    #[serde(default)]
    pub password: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// How often the change feeds are polled.
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Changes per page (1..=999).
    #[serde(default = "default_page_limit")]
    pub page_limit: u32,
    /// Per-request timeout.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest back-off after 429/5xx/transport errors.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How far back the registry's change feeds reach (İYS: 7 days). A feed
    /// that refuses the stored cursor is read again from its start only when
    /// the brand's data is younger than this less one hour, so no change can
    /// fall in the gap.
    #[serde(default = "default_feed_retention", with = "humantime_serde")]
    pub feed_retention: Duration,
    /// Run the built-in registry emulator in this process and follow it.
    #[serde(default)]
    pub emulator: bool,
    /// Listen address of the in-process emulator.
    #[serde(default = "default_emulator_listen")]
    pub emulator_listen: SocketAddr,
}

fn default_base_url() -> String {
    "https://api.iys.org.tr".into()
}
fn default_poll() -> Duration {
    Duration::from_secs(10)
}
fn default_page_limit() -> u32 {
    999
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
fn default_feed_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_emulator_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8480))
}

/// `[[brands]]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandConfig {
    /// Service provider code.
    pub iys_code: u32,
    /// Brand code.
    pub brand_code: u32,
}

impl BrandConfig {
    /// As a [`Brand`].
    pub fn brand(&self) -> Brand {
        Brand::new(self.iys_code, self.brand_code)
    }
}

/// `[webhook]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Shared secret expected as `Authorization: Bearer <secret>` (prefer `secret_env`).
    pub secret: Option<String>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines file for refusals; none: audit records go to the log.
    /// Each line carries `seq` and the previous line's SHA-256 (`prev`), a
    /// chain `iys-gate audit verify` checks (docs/compliance.md).
    pub path: Option<PathBuf>,
    /// Write addresses in clear (off: masked, as KVKK asks).
    #[serde(default)]
    pub unmasked: bool,
    /// Start a new file each day, Turkey time (UTC+3): the day's file is
    /// renamed `path.YYYY-MM-DD` when the first record of the next day
    /// comes. Default true.
    #[serde(default = "default_true")]
    pub rotate_daily: bool,
    /// Delete rotated files older than this many days (checked at start and
    /// at each rotation); 0 keeps every file. Default 0: deleting the
    /// regulator's evidence is the operator's decision.
    #[serde(default)]
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: None,
            unmasked: false,
            rotate_daily: true,
            retention_days: 0,
        }
    }
}

impl AuditConfig {
    /// How the audit file is rotated and kept.
    pub fn chain(&self) -> crate::observe::chain::ChainConfig {
        crate::observe::chain::ChainConfig {
            rotate_daily: self.rotate_daily,
            retention_days: self.retention_days,
        }
    }
}

/// Log format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter (`info`, `iys_gate=debug`, ...); `RUST_LOG` overrides.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

/// `[demo]`: synthetic data loaded into the in-process emulator and the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Generated tuples.
    #[serde(default = "default_demo_tuples")]
    pub tuples: u64,
    /// Generator seed.
    #[serde(default = "default_demo_seed")]
    pub seed: u64,
    /// Run the built-in sinks in this process, before the protocol listeners:
    /// the SMSC sink on `smpp.upstream` and the SMTP sink on
    /// `smtp.hop.next_hop` (each must then be a literal `ip:port`; port 0
    /// takes any free port, and the gate then relays to the port it got).
    /// The SMTP sink logs each message's envelope; both keep the last 100
    /// messages (`RunningGate::demo_sinks`). Default false.
    #[serde(default)]
    pub sinks: bool,
}

fn default_demo_tuples() -> u64 {
    100_000
}
fn default_demo_seed() -> u64 {
    1
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (the message names the key).
    #[error("config {origin}: {message}")]
    Parse {
        /// File name or `embedded demo`.
        origin: String,
        /// The TOML parser's message.
        message: String,
    },
    /// A value out of range.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What to change.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The embedded demo configuration.
    pub fn demo() -> Config {
        match Config::from_toml(DEMO_CONFIG, "embedded demo") {
            Ok(c) => c,
            Err(e) => unreachable!("the embedded demo config is tested: {e}"),
        }
    }

    /// Check values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.reconcile.validate()?;
        self.retailers.validate()?;
        let mut seen = std::collections::HashSet::new();
        for (i, b) in self.brands.iter().enumerate() {
            if !seen.insert(b.brand()) {
                return Err(invalid(
                    &format!("brands[{i}]"),
                    format!("brand {} is listed twice", b.brand()),
                ));
            }
        }
        if let Some(r) = &self.registry {
            if self.brands.is_empty() {
                return Err(invalid(
                    "brands",
                    "a [registry] is configured but no [[brands]] to follow",
                ));
            }
            if !(1..=999).contains(&r.page_limit) {
                return Err(invalid(
                    "registry.page_limit",
                    "must be between 1 and 999 (the registry's maximum)",
                ));
            }
            if r.poll_interval < Duration::from_millis(100) {
                return Err(invalid("registry.poll_interval", "must be at least 100ms"));
            }
            if r.feed_retention <= Duration::from_secs(3600) {
                return Err(invalid(
                    "registry.feed_retention",
                    "must be longer than 1h (İYS keeps 7 days of changes)",
                ));
            }
            if !r.emulator {
                if !(r.base_url.starts_with("https://") || r.base_url.starts_with("http://")) {
                    return Err(invalid(
                        "registry.base_url",
                        "must start with https:// (or http:// for a local emulator)",
                    ));
                }
                if r.username.is_empty() {
                    return Err(invalid(
                        "registry.username",
                        "is required unless registry.emulator = true",
                    ));
                }
                if r.password.is_none() && r.password_env.is_none() {
                    return Err(invalid(
                        "registry.password",
                        "set registry.password or registry.password_env",
                    ));
                }
            }
        }
        if let Some(w) = &self.webhook {
            match (&w.secret, &w.secret_env) {
                (Some(s), _) if s.len() < 16 => {
                    return Err(invalid("webhook.secret", "must be at least 16 characters"))
                }
                (None, None) => {
                    return Err(invalid(
                        "webhook.secret",
                        "set webhook.secret or webhook.secret_env",
                    ))
                }
                _ => {}
            }
        }
        if let Some(smpp) = &self.smpp {
            smpp.validate()
                .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()
                .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        }
        if self.demo.as_ref().is_some_and(|d| d.sinks) {
            if let Some(smpp) = &self.smpp {
                if smpp.upstream.parse::<SocketAddr>().is_err() {
                    return Err(invalid(
                        "smpp.upstream",
                        "must be an ip:port with demo.sinks = true (the SMSC sink listens there)",
                    ));
                }
            }
            if let Some(hop) = self.sip.as_ref().and_then(|s| s.next_hop.as_ref()) {
                if hop.parse::<SocketAddr>().is_err() {
                    return Err(invalid(
                        "sip.next_hop",
                        "must be an ip:port with demo.sinks = true (the answering UAS listens there)",
                    ));
                }
            }
            if let Some(hop) = self.smtp.as_ref().and_then(|s| s.hop.as_ref()) {
                if hop.next_hop.parse::<SocketAddr>().is_err() {
                    return Err(invalid(
                        "smtp.hop.next_hop",
                        "must be an ip:port with demo.sinks = true (the SMTP sink listens there)",
                    ));
                }
            }
        }
        if let Some(sip) = &self.sip {
            let demo_sinks = self.demo.as_ref().is_some_and(|d| d.sinks);
            if sip.next_hop.as_deref().is_some_and(|h| h.ends_with(":0")) && !demo_sinks {
                return Err(invalid(
                    "sip.next_hop",
                    "port 0 is only for the demo's answering UAS (demo.sinks = true)",
                ));
            }
            sip.validate()
                .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        }
        if let Some(fleet) = &self.fleet {
            fleet
                .validate()
                .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
            if self.registry.as_ref().is_some_and(|r| r.emulator) {
                return Err(invalid(
                    "registry.emulator",
                    "a fleet follows one registry: run `iys-gate registry` and set registry.base_url instead of an emulator per gate",
                ));
            }
        }
        self.validate_admin()?;
        if self.store.persist_interval < Duration::from_secs(1) {
            return Err(invalid("store.persist_interval", "must be at least 1s"));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&self.server.drain_timeout)
        {
            return Err(invalid("server.drain_timeout", "must be between 1s and 1h"));
        }
        if self.reports.flush_interval < Duration::from_secs(1) {
            return Err(invalid("reports.flush_interval", "must be at least 1s"));
        }
        if self.reports.retention_days == 0 {
            return Err(invalid("reports.retention_days", "must be at least 1"));
        }
        if self.audit.retention_days > 0 && !self.audit.rotate_daily {
            return Err(invalid(
                "audit.retention_days",
                "needs audit.rotate_daily = true (retention deletes whole rotated days)",
            ));
        }
        Ok(())
    }

    fn validate_admin(&self) -> Result<(), ConfigError> {
        let a = &self.admin;
        let check_limit = |key: &str, l: &RateLimitConfig| {
            if !(l.per_second.is_finite() && l.per_second > 0.0) {
                return Err(invalid(
                    &format!("{key}.per_second"),
                    "must be a number above 0",
                ));
            }
            if l.burst == 0 {
                return Err(invalid(&format!("{key}.burst"), "must be at least 1"));
            }
            Ok(())
        };
        if let Some(l) = &a.check_rate_limit {
            check_limit("admin.check_rate_limit", l)?;
        }
        let mut names = std::collections::HashMap::new();
        for (i, t) in a.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{i}]");
            if t.name.trim().is_empty() {
                return Err(invalid(&format!("{key}.name"), "must not be empty"));
            }
            if let Some(first) = names.insert(t.name.as_str(), i) {
                return Err(invalid(
                    &format!("{key}.name"),
                    format!(
                        "{:?} is also the name of admin.tokens[{first}]; names must be unique (the access log names the token)",
                        t.name
                    ),
                ));
            }
            let sources = [
                t.token.is_some(),
                t.token_env.is_some(),
                t.token_file.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => {
                    return Err(invalid(
                        &format!("{key}.token"),
                        "set one of token, token_env or token_file",
                    ))
                }
                1 => {}
                _ => {
                    return Err(invalid(
                        &format!("{key}.token"),
                        "set only one of token, token_env or token_file",
                    ))
                }
            }
            if t.token
                .as_ref()
                .is_some_and(|v| v.trim().len() < MIN_TOKEN_LEN)
            {
                return Err(invalid(
                    &format!("{key}.token"),
                    format!("must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            if let Some(l) = &t.check_rate_limit {
                check_limit(&format!("{key}.check_rate_limit"), l)?;
            }
        }
        if !a.metrics_open && a.tokens.is_empty() {
            return Err(invalid(
                "admin.metrics_open",
                "is false but no [[admin.tokens]] are configured: every scrape would be refused",
            ));
        }
        Ok(())
    }

    /// The admin tokens with their values read from the config, the
    /// environment or their files. Errors name the key, never the token.
    pub fn admin_tokens(&self) -> Result<Vec<ResolvedToken>, ConfigError> {
        let mut out: Vec<ResolvedToken> = Vec::new();
        for (i, t) in self.admin.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{i}]");
            let (secret, from) = if let Some(v) = &t.token {
                (v.trim().to_string(), format!("{key}.token"))
            } else if let Some(var) = &t.token_env {
                let v = std::env::var(var).map_err(|_| {
                    invalid(
                        &format!("{key}.token_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?;
                (v.trim().to_string(), format!("{key}.token_env"))
            } else if let Some(path) = &t.token_file {
                let v = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        &format!("{key}.token_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                (v.trim().to_string(), format!("{key}.token_file"))
            } else {
                return Err(invalid(
                    &format!("{key}.token"),
                    "set one of token, token_env or token_file",
                ));
            };
            if secret.len() < MIN_TOKEN_LEN {
                return Err(invalid(
                    &from,
                    format!("the token must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            if let Some(j) = out.iter().position(|o| o.secret == secret) {
                return Err(invalid(
                    &from,
                    format!("the same token as admin.tokens[{j}]; each token must be different"),
                ));
            }
            out.push(ResolvedToken {
                name: t.name.clone(),
                role: t.role,
                secret,
                check_rate_limit: t.check_rate_limit.or(self.admin.check_rate_limit),
            });
        }
        Ok(out)
    }

    /// The registry password, from the file or the environment.
    pub fn registry_password(&self) -> Result<String, ConfigError> {
        let Some(r) = &self.registry else {
            return Ok(String::new());
        };
        if r.emulator {
            return Ok(r.password.clone().unwrap_or_else(|| "demo".into()));
        }
        secret_value(
            "registry.password_env",
            r.password.as_deref(),
            r.password_env.as_deref(),
        )
    }

    /// The webhook secret, from the file or the environment.
    pub fn webhook_secret(&self) -> Result<Option<String>, ConfigError> {
        let Some(w) = &self.webhook else {
            return Ok(None);
        };
        let s = secret_value(
            "webhook.secret_env",
            w.secret.as_deref(),
            w.secret_env.as_deref(),
        )?;
        if s.len() < 16 {
            return Err(invalid(
                "webhook.secret_env",
                "the secret must be at least 16 characters",
            ));
        }
        Ok(Some(s))
    }

    /// The policy the decision function applies.
    pub fn policy(&self) -> crate::policy::Policy {
        crate::policy::Policy {
            max_data_age_secs: (!self.policy.max_data_age.is_zero())
                .then_some(self.policy.max_data_age.as_secs() as i64),
            monitor: self.policy.monitor,
        }
    }
}

fn secret_value(
    env_key: &str,
    value: Option<&str>,
    env: Option<&str>,
) -> Result<String, ConfigError> {
    if let Some(v) = value {
        return Ok(v.to_string());
    }
    let var = env.unwrap_or_default();
    std::env::var(var)
        .map_err(|_| invalid(env_key, format!("environment variable {var} is not set")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let c = Config::demo();
        assert!(c.registry.as_ref().unwrap().emulator);
        assert!(!c.brands.is_empty());
        // Every protocol runs, in front of the in-process sinks.
        assert!(c.demo.as_ref().unwrap().sinks);
        let smpp = c.smpp.as_ref().expect("[smpp]");
        assert_eq!(smpp.upstream, "127.0.0.1:2776");
        assert!(smpp.accounts.iter().any(|a| a.system_id == "demo"));
        let smtp = c.smtp.as_ref().expect("[smtp]");
        assert!(smtp.policy.is_some());
        assert_eq!(
            smtp.hop.as_ref().expect("[smtp.hop]").next_hop,
            "127.0.0.1:2526"
        );
        let a = smtp
            .accounts
            .iter()
            .find(|a| a.name == "demo")
            .expect("demo account");
        assert_eq!((a.iys_code, a.brand_code), (700001, 100001));
    }

    #[test]
    fn demo_sinks_need_literal_addresses() {
        let base = "[demo]\nsinks = true\n[smtp]\n[smtp.hop]\nnext_hop = \"mx.example:25\"\n";
        let e = Config::from_toml(base, "t").unwrap_err().to_string();
        assert!(e.contains("smtp.hop.next_hop"), "{e}");
        let ok = base.replace("mx.example:25", "127.0.0.1:0");
        Config::from_toml(&ok, "t").unwrap();
        let e = Config::from_toml(
            "[demo]\nsinks = true\n[smpp]\nupstream = \"smsc.example:2775\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("smpp.upstream"), "{e}");
    }

    #[test]
    fn documented_example_is_valid() {
        std::env::set_var("IYS_GATE_TEST_PW", "pw");
        std::env::set_var("IYS_GATE_TEST_SECRET", "0123456789abcdef0123");
        let text = include_str!("../config/iys-gate.toml");
        let c = Config::from_toml(text, "iys-gate.toml").unwrap();
        assert!(c.registry.is_some());
        assert_eq!(c.admin_tokens().unwrap().len(), 2);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[admin]\nlisten = \"nope\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = Config::from_toml("[store]\nsnapshot = \"x\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("snapshot"), "{e}");
        let e = Config::from_toml("[registry]\nemulator = true\npage_limit = 5000\n[[brands]]\niys_code = 1\nbrand_code = 2\n", "t").unwrap_err().to_string();
        assert!(e.contains("registry.page_limit"), "{e}");
        let e = Config::from_toml("[registry]\nemulator = true\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("brands"), "{e}");
        for (text, key) in [
            (
                "[reports]\nflush_interval = \"0s\"\n",
                "reports.flush_interval",
            ),
            ("[reports]\nretention_days = 0\n", "reports.retention_days"),
            (
                "[audit]\nrotate_daily = false\nretention_days = 7\n",
                "audit.retention_days",
            ),
            (
                "[store]\nunfollowed_brands = \"keep\"\n",
                "unfollowed_brands",
            ),
        ] {
            let e = Config::from_toml(text, "t").unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        let e = Config::from_toml("[policy]\nmax_data_age = \"soon\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_data_age"), "{e}");
        let e = Config::from_toml("[webhook]\nsecret = \"short\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook.secret"), "{e}");
    }

    #[test]
    fn admin_token_errors_name_the_key_and_never_the_token() {
        let t = |body: &str| {
            Config::from_toml(&format!("[admin]\n{body}"), "t")
                .unwrap_err()
                .to_string()
        };
        let e = t("[[admin.tokens]]\nname = \"a\"\ntoken = \"short-secret\"\nrole = \"read\"\n");
        assert!(
            e.contains("admin.tokens[0].token") && e.contains("16"),
            "{e}"
        );
        assert!(!e.contains("short-secret"), "{e}");
        let two = "[[admin.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef-1\"\nrole = \"read\"\n\
                   [[admin.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef-2\"\nrole = \"read\"\n";
        let e = t(two);
        assert!(
            e.contains("admin.tokens[1].name") && e.contains("unique"),
            "{e}"
        );
        let e =
            t("[[admin.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef-1\"\nrole = \"root\"\n");
        assert!(e.contains("role") && e.contains("root"), "{e}");
        let e = t("[[admin.tokens]]\nname = \"a\"\nrole = \"read\"\n");
        assert!(e.contains("admin.tokens[0].token"), "{e}");
        let e = t("metrics_open = false\n");
        assert!(e.contains("admin.metrics_open"), "{e}");
        let e = t("check_rate_limit = { per_second = 0, burst = 5 }\n");
        assert!(e.contains("admin.check_rate_limit.per_second"), "{e}");
        // The same token under two names.
        let same = "[[admin.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef-1\"\nrole = \"read\"\n\
                    [[admin.tokens]]\nname = \"b\"\ntoken = \"0123456789abcdef-1\"\nrole = \"admin\"\n";
        let c = Config::from_toml(&format!("[admin]\n{same}"), "t").unwrap();
        let e = c.admin_tokens().unwrap_err().to_string();
        assert!(e.contains("admin.tokens[1].token"), "{e}");
        assert!(!e.contains("0123456789abcdef"), "{e}");
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "Debug redacts tokens"
        );
        // Roles nest.
        assert!(Role::Admin > Role::Read && Role::Read > Role::Metrics);
    }

    #[test]
    fn admin_tokens_are_read_from_the_config_the_environment_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "file-token-0123456789abcdef\n").unwrap();
        std::env::set_var("IYS_GATE_TEST_ADMIN_TOKEN", "env-token-0123456789abcdef");
        let text = format!(
            "[admin]\ncheck_rate_limit = {{ per_second = 10, burst = 20 }}\n\
             [[admin.tokens]]\nname = \"a\"\ntoken = \"inline-token-0123456789\"\nrole = \"metrics\"\n\
             [[admin.tokens]]\nname = \"b\"\ntoken_env = \"IYS_GATE_TEST_ADMIN_TOKEN\"\nrole = \"read\"\n\
             [[admin.tokens]]\nname = \"c\"\ntoken_file = {:?}\nrole = \"admin\"\n\
             check_rate_limit = {{ per_second = 0.5, burst = 1 }}\n",
            file.display().to_string()
        );
        let t = Config::from_toml(&text, "t")
            .unwrap()
            .admin_tokens()
            .unwrap();
        let got: Vec<(&str, Role, &str, f64)> = t
            .iter()
            .map(|t| {
                let l = t.check_rate_limit.unwrap();
                (t.name.as_str(), t.role, t.secret.as_str(), l.per_second)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", Role::Metrics, "inline-token-0123456789", 10.0),
                ("b", Role::Read, "env-token-0123456789abcdef", 10.0),
                ("c", Role::Admin, "file-token-0123456789abcdef", 0.5),
            ]
        );
        // A short token in a file is refused, naming the key, not the token.
        std::fs::write(&file, "tiny\n").unwrap();
        let e = Config::from_toml(&text, "t")
            .unwrap()
            .admin_tokens()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("admin.tokens[2].token_file") && !e.contains("tiny"),
            "{e}"
        );
        std::fs::remove_file(&file).unwrap();
        let e = Config::from_toml(&text, "t")
            .unwrap()
            .admin_tokens()
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin.tokens[2].token_file"), "{e}");
    }

    #[test]
    fn drain_timeout_has_a_default_and_a_range() {
        let c = Config::from_toml("", "t").unwrap();
        assert_eq!(c.server.drain_timeout, Duration::from_secs(15));
        let c = Config::from_toml("[server]\ndrain_timeout = \"25s\"\n", "t").unwrap();
        assert_eq!(c.server.drain_timeout, Duration::from_secs(25));
        for bad in ["0s", "500ms", "2h"] {
            let e = Config::from_toml(&format!("[server]\ndrain_timeout = \"{bad}\"\n"), "t")
                .unwrap_err()
                .to_string();
            assert!(e.contains("server.drain_timeout"), "{bad}: {e}");
        }
        let e = Config::from_toml("[server]\ndrain = \"5s\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("drain"), "{e}");
    }
}
