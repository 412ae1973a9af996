//! `[smpp]`: the SMS gate's listener, upstream SMSC, timers, window, answers
//! and sender accounts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::consent::{Brand, MessageClass};

/// `[smpp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    /// Where senders (ESMEs) bind, plain TCP. Default "0.0.0.0:2775".
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Optional TLS listener beside the plain one.
    pub tls: Option<TlsConfig>,
    /// The SMSC, `host:port`.
    pub upstream: String,
    /// Largest `command_length` accepted from either side. Default 69632 (the
    /// codec's `DEFAULT_MAX_COMMAND_LENGTH`: a data_sm with a full 64 KiB
    /// `message_payload` fits).
    #[serde(default = "default_max_len")]
    pub max_command_length: u32,
    /// Requests in flight per session towards the SMSC. Default 64.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Most concurrent sender connections. Default 1000.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// A new connection must bind within this. Default "10s".
    #[serde(default = "default_bind_timeout", with = "humantime_serde")]
    pub bind_timeout: Duration,
    /// A bound sender that sends no whole PDU this long, or takes none of what
    /// the gate sends it this long, is unbound. Default "120s".
    #[serde(default = "default_inactivity", with = "humantime_serde")]
    pub inactivity_timeout: Duration,
    /// A request unanswered this long gets a temporary error. Default "30s".
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// The gate's own enquire_link to the SMSC when the link is idle. Default "30s".
    #[serde(default = "default_enquire", with = "humantime_serde")]
    pub enquire_link_interval: Duration,
    /// Strip the İYS TLVs (0x1400–0x1402) before forwarding. Default true.
    #[serde(default = "yes")]
    pub strip_iys_tlvs: bool,
    /// When the SMSC link drops: `unbind` the sender (default) or `rebind` upstream.
    #[serde(default)]
    pub on_upstream_loss: UpstreamLoss,
    /// command_status answers for refusals.
    #[serde(default)]
    pub status: StatusConfig,
    /// Sender accounts.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
}

/// What to do when the SMSC link drops.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamLoss {
    /// Answer in-flight requests with ESME_RSYSERR and unbind the sender.
    #[default]
    Unbind,
    /// Answer in-flight requests with ESME_RSYSERR and bind upstream again (three tries).
    Rebind,
}

/// `[smpp.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// TLS listener address.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[smpp.status]`: command_status per refusal reason (vendor range 0x400–0x4FF by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// No consent on record. Default 0x401.
    #[serde(default = "s401")]
    pub no_consent: u32,
    /// Consent withdrawn (RET). Default 0x402.
    #[serde(default = "s402")]
    pub withdrawn: u32,
    /// Brand unknown to the gate. Default 0x403.
    #[serde(default = "s403")]
    pub unknown_brand: u32,
    /// The dealer may not use the consent. Default 0x404.
    #[serde(default = "s404")]
    pub retailer_not_allowed: u32,
    /// The gate cannot decide now (stale data): a status the sender retries.
    /// Default 0x58 (ESME_RTHROTTLED).
    #[serde(default = "s58")]
    pub defer: u32,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            no_consent: 0x401,
            withdrawn: 0x402,
            unknown_brand: 0x403,
            retailer_not_allowed: 0x404,
            defer: 0x58,
        }
    }
}

/// `[[smpp.accounts]]`: a sender allowed to bind, and the brand it sends for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// `system_id` the sender binds with.
    pub system_id: String,
    /// Its password (prefer `password_env`).
    pub password: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// İYS code of the brand this account sends for.
    pub iys_code: u32,
    /// Brand code.
    pub brand_code: u32,
    /// Other brand codes (same İYS code) the sender may name in TLV 0x1401.
    #[serde(default)]
    pub override_brands: Vec<u32>,
    /// Class when a message carries no 0x1400 TLV: 0, 11 or 12. Default: 11
    /// (commercial to an individual, the safe side).
    pub default_message_type: Option<u8>,
    /// Credentials for the upstream bind; default: the sender's own.
    pub upstream_system_id: Option<String>,
    /// Upstream password; default: the sender's own.
    pub upstream_password: Option<String>,
}

impl AccountConfig {
    /// The brand this account sends for.
    pub fn brand(&self) -> Brand {
        Brand::new(self.iys_code, self.brand_code)
    }

    /// The class for messages without a 0x1400 TLV.
    pub fn default_class(&self) -> MessageClass {
        self.default_message_type
            .and_then(MessageClass::from_code)
            .unwrap_or(MessageClass::DEFAULT)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 2775))
}
fn default_max_len() -> u32 {
    crate::smpp::codec::DEFAULT_MAX_COMMAND_LENGTH
}
fn default_window() -> usize {
    64
}
fn default_max_sessions() -> usize {
    1000
}
fn default_bind_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_inactivity() -> Duration {
    Duration::from_secs(120)
}
fn default_response_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_enquire() -> Duration {
    Duration::from_secs(30)
}
fn yes() -> bool {
    true
}
fn s401() -> u32 {
    0x401
}
fn s402() -> u32 {
    0x402
}
fn s403() -> u32 {
    0x403
}
fn s404() -> u32 {
    0x404
}
fn s58() -> u32 {
    0x58
}

impl SmppConfig {
    /// Check values serde cannot; errors name the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("smpp.{k}"), m.to_string()));
        if self.window == 0 || self.window > 10_000 {
            return bad("window", "must be between 1 and 10000");
        }
        if self.max_command_length < 64 || self.max_command_length > 16 << 20 {
            return bad("max_command_length", "must be between 64 and 16777216");
        }
        if self.max_sessions == 0 {
            return bad("max_sessions", "must be at least 1");
        }
        if self.upstream.is_empty() {
            return bad("upstream", "the SMSC address (host:port) is required");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if a.system_id.is_empty() || a.system_id.len() > 15 {
                return bad(
                    &format!("accounts[{i}].system_id"),
                    "must be 1 to 15 characters (SMPP limit)",
                );
            }
            if !seen.insert(a.system_id.clone()) {
                return bad(&format!("accounts[{i}].system_id"), "is listed twice");
            }
            if a.password.is_none() && a.password_env.is_none() {
                return bad(
                    &format!("accounts[{i}].password"),
                    "set password or password_env",
                );
            }
            if a.password.as_ref().is_some_and(|p| p.len() > 8) {
                return bad(
                    &format!("accounts[{i}].password"),
                    "must be at most 8 characters (SMPP limit)",
                );
            }
            if let Some(t) = a.default_message_type {
                if MessageClass::from_code(t).is_none() {
                    return bad(
                        &format!("accounts[{i}].default_message_type"),
                        "must be 0, 11 or 12",
                    );
                }
            }
        }
        Ok(())
    }
}
