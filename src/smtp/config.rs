//! `[smtp]`: the mail gate's accounts (who sends for which brand), the reply
//! texts, the Postfix policy service (`[smtp.policy]`) and the inline hop
//! (`[smtp.hop]`). Every key is documented in `config/iys-gate.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::gate::Network;
use serde::Deserialize;

use crate::consent::{Brand, MessageClass};

/// `[smtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Senders and the brands they send for.
    #[serde(default)]
    pub accounts: Vec<SmtpAccountConfig>,
    /// Reply texts and codes.
    #[serde(default)]
    pub replies: ReplyConfig,
    /// The Postfix policy service, when configured.
    pub policy: Option<PolicyServiceConfig>,
    /// The inline SMTP hop, when configured.
    pub hop: Option<HopConfig>,
}

/// `[[smtp.accounts]]`: a sender of mail for one brand. A request or session
/// is matched to an account by, in this order: the authenticated name
/// (`sasl_username` / AUTH), the client address (longest matching network),
/// the envelope sender (whole address first, then its domain).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpAccountConfig {
    /// The SASL / AUTH user name.
    pub name: String,
    /// Password for AUTH at the hop (prefer `password_env`); an account
    /// without one cannot authenticate at the hop.
    pub password: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// İYS code of the brand this account sends for.
    pub iys_code: u32,
    /// Brand code.
    pub brand_code: u32,
    /// Other brand codes (same İYS code) the account may name in `X-IYS-Brand-Code`.
    #[serde(default)]
    pub override_brands: Vec<u32>,
    /// Class of mail without `X-IYS-Message-Type`: 0, 11 or 12. Default: 11
    /// (commercial to an individual, the safe side).
    pub default_message_type: Option<u8>,
    /// Client networks (CIDR, or a bare address) whose mail is this account's.
    #[serde(default)]
    pub client_networks: Vec<Network>,
    /// Envelope senders whose mail is this account's: a whole address
    /// (`news@shop.example`) or a domain (`shop.example`, also matching its
    /// addresses). ESPs keep separate sender domains for commercial and
    /// transactional streams; map each to an account with its own default class.
    #[serde(default)]
    pub senders: Vec<String>,
}

impl SmtpAccountConfig {
    /// The brand this account sends for.
    pub fn brand(&self) -> Brand {
        Brand::new(self.iys_code, self.brand_code)
    }

    /// The class for mail without `X-IYS-Message-Type`.
    pub fn default_class(&self) -> MessageClass {
        self.default_message_type
            .and_then(MessageClass::from_code)
            .unwrap_or(MessageClass::DEFAULT)
    }
}

/// What a request or session that matches no account gets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Not the gate's business: Postfix `DUNNO` / the hop relays it unjudged.
    Pass,
    /// Refused for good (`550 5.7.1`).
    Reject,
    /// Refused for now (`451 4.7.1`).
    Defer,
}

/// `[smtp.replies]`: the reply for each refusal reason. The text follows the
/// code and enhanced status (`550 5.7.1 <text>`); it must be one line of
/// printable ASCII.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyConfig {
    /// No consent on record.
    #[serde(default = "t_no_consent")]
    pub no_consent: String,
    /// Consent withdrawn (RET).
    #[serde(default = "t_withdrawn")]
    pub withdrawn: String,
    /// Brand unknown to the gate.
    #[serde(default = "t_unknown_brand")]
    pub unknown_brand: String,
    /// The dealer may not use the consent.
    #[serde(default = "t_retailer")]
    pub retailer_not_allowed: String,
    /// The gate cannot decide now (no data, stale data, or over its deadline).
    #[serde(default = "t_defer")]
    pub defer: String,
    /// The sender matches no account (with `unmatched = "reject"` or `"defer"`).
    #[serde(default = "t_unmatched")]
    pub unmatched: String,
}

impl Default for ReplyConfig {
    fn default() -> Self {
        ReplyConfig {
            no_consent: t_no_consent(),
            withdrawn: t_withdrawn(),
            unknown_brand: t_unknown_brand(),
            retailer_not_allowed: t_retailer(),
            defer: t_defer(),
            unmatched: t_unmatched(),
        }
    }
}

fn t_no_consent() -> String {
    "IYS: recipient has not consented to commercial mail from this brand (no_consent)".into()
}
fn t_withdrawn() -> String {
    "IYS: recipient has withdrawn consent for commercial mail from this brand (withdrawn)".into()
}
fn t_unknown_brand() -> String {
    "IYS: brand is not known to this gate (unknown_brand)".into()
}
fn t_retailer() -> String {
    "IYS: the named retailer may not use this consent (retailer_not_allowed)".into()
}
fn t_defer() -> String {
    "IYS: consent cannot be checked now, try again later (stale)".into()
}
fn t_unmatched() -> String {
    "IYS: sender is not a configured account of this gate (unmatched)".into()
}

/// `[smtp.policy]`: the Postfix policy delegation service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyServiceConfig {
    /// Where Postfix connects (`check_policy_service inet:host:port`). Default "127.0.0.1:10040".
    #[serde(default = "default_policy_listen")]
    pub listen: SocketAddr,
    /// The action for an allowed recipient. Default "DUNNO" (let the rest of
    /// Postfix's restrictions decide); "OK" accepts outright.
    #[serde(default = "default_allow_action")]
    pub allow_action: String,
    /// What a request matching no account gets: "pass" (default: `DUNNO`, the
    /// gate judges only configured senders' mail), "reject" or "defer".
    #[serde(default = "default_policy_unmatched")]
    pub unmatched: Unmatched,
    /// The gate answers within this, `451 4.7.1` if it cannot decide by then,
    /// so Postfix never waits for its own `smtpd_policy_service_timeout`. Default "2s".
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// Most concurrent Postfix connections. Default 1000.
    #[serde(default = "default_policy_sessions")]
    pub max_connections: usize,
    /// A connection idle this long is closed (Postfix reconnects). Default "300s".
    #[serde(default = "default_policy_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Largest request in octets. Default 16384.
    #[serde(default = "default_max_request")]
    pub max_request_size: usize,
    /// Read `policy_context` (set per `check_policy_service` with
    /// `policy_context=...`) as an account name. Default false.
    #[serde(default)]
    pub use_policy_context: bool,
}

fn default_policy_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10040))
}
fn default_allow_action() -> String {
    "DUNNO".into()
}
fn default_policy_unmatched() -> Unmatched {
    Unmatched::Pass
}
fn default_deadline() -> Duration {
    Duration::from_secs(2)
}
fn default_policy_sessions() -> usize {
    1000
}
fn default_policy_idle() -> Duration {
    Duration::from_secs(300)
}
fn default_max_request() -> usize {
    16384
}

/// `[smtp.hop]`: the inline SMTP hop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopConfig {
    /// Where senders connect. Default "0.0.0.0:2525".
    #[serde(default = "default_hop_listen")]
    pub listen: SocketAddr,
    /// The next hop, `host:port`.
    pub next_hop: String,
    /// The name the hop gives in its greeting and EHLO. Default "iys-gate".
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// STARTTLS towards senders, when configured.
    pub tls: Option<HopTlsConfig>,
    /// Use STARTTLS to the next hop when it offers it. Default true.
    #[serde(default = "yes")]
    pub next_hop_starttls: bool,
    /// Skip verifying the next hop's certificate (test rigs only). Default false.
    #[serde(default)]
    pub next_hop_tls_insecure: bool,
    /// What a session matching no account gets: "pass", "reject" (default) or "defer".
    #[serde(default = "default_hop_unmatched")]
    pub unmatched: Unmatched,
    /// Remove the X-IYS-* headers before relaying (breaks a DKIM signature
    /// that covers them). Default false.
    #[serde(default)]
    pub strip_iys_headers: bool,
    /// Most recipients per message (`452` past it). Default 100 (RFC 5321's minimum).
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Largest message in octets, advertised as SIZE (`552` past it). Default 36700160 (35 MiB).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Longest command or text line in octets. Default 4096.
    #[serde(default = "default_max_line")]
    pub max_line_length: usize,
    /// Most concurrent sender connections. Default 1000.
    #[serde(default = "default_hop_sessions")]
    pub max_connections: usize,
    /// Waiting for a command (RFC 5321 §4.5.3.2: 5 min). Default "300s".
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Waiting for a block of message text (§4.5.3.2: 3 min). Default "180s".
    #[serde(default = "default_data_block_timeout", with = "humantime_serde")]
    pub data_block_timeout: Duration,
    /// Connecting to the next hop and reading its greeting. Default "30s".
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub next_hop_connect_timeout: Duration,
    /// Waiting for a next-hop reply to MAIL/RCPT (§4.5.3.2: 5 min). Default "300s".
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub next_hop_reply_timeout: Duration,
    /// Waiting for the next hop's reply to the final dot (§4.5.3.2: 10 min). Default "600s".
    #[serde(default = "default_final_dot_timeout", with = "humantime_serde")]
    pub next_hop_data_timeout: Duration,
}

/// `[smtp.hop.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopTlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Refuse MAIL and AUTH before STARTTLS. Default false.
    #[serde(default)]
    pub required: bool,
}

fn default_hop_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 2525))
}
fn default_hostname() -> String {
    "iys-gate".into()
}
fn yes() -> bool {
    true
}
fn default_hop_unmatched() -> Unmatched {
    Unmatched::Reject
}
fn default_max_recipients() -> usize {
    100
}
fn default_max_message_size() -> usize {
    35 << 20
}
fn default_max_line() -> usize {
    4096
}
fn default_hop_sessions() -> usize {
    1000
}
fn default_command_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_data_block_timeout() -> Duration {
    Duration::from_secs(180)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_final_dot_timeout() -> Duration {
    Duration::from_secs(600)
}

fn one_line(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl SmtpConfig {
    /// Check values serde cannot; errors name the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("smtp.{k}"), m.to_string()));
        let mut names = std::collections::HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if a.name.is_empty() || !one_line(&a.name) || a.name.contains(' ') {
                return bad(
                    &format!("accounts[{i}].name"),
                    "must be a non-empty name of printable ASCII without spaces",
                );
            }
            if !names.insert(a.name.clone()) {
                return bad(&format!("accounts[{i}].name"), "is listed twice");
            }
            if let Some(t) = a.default_message_type {
                if MessageClass::from_code(t).is_none() {
                    return bad(
                        &format!("accounts[{i}].default_message_type"),
                        "must be 0, 11 or 12",
                    );
                }
            }
            for (j, s) in a.senders.iter().enumerate() {
                let t = s.trim();
                if t.is_empty() || t.chars().any(char::is_whitespace) || t.ends_with('@') {
                    return bad(
                        &format!("accounts[{i}].senders[{j}]"),
                        "must be an address (news@shop.example) or a domain (shop.example)",
                    );
                }
            }
        }
        let r = &self.replies;
        for (k, v) in [
            ("no_consent", &r.no_consent),
            ("withdrawn", &r.withdrawn),
            ("unknown_brand", &r.unknown_brand),
            ("retailer_not_allowed", &r.retailer_not_allowed),
            ("defer", &r.defer),
            ("unmatched", &r.unmatched),
        ] {
            if !one_line(v) || v.len() > 400 {
                return bad(
                    &format!("replies.{k}"),
                    "must be one line of printable ASCII, at most 400 characters",
                );
            }
        }
        if let Some(p) = &self.policy {
            let action = p.allow_action.trim();
            if !one_line(action) {
                return bad(
                    "policy.allow_action",
                    "must be one line of printable ASCII (DUNNO, OK, ...)",
                );
            }
            if p.deadline.is_zero() || p.deadline > Duration::from_secs(60) {
                return bad(
                    "policy.deadline",
                    "must be between 1ms and 60s (Postfix waits 100s by default)",
                );
            }
            if p.max_connections == 0 {
                return bad("policy.max_connections", "must be at least 1");
            }
            if p.max_request_size < 1024 {
                return bad("policy.max_request_size", "must be at least 1024");
            }
        }
        if let Some(h) = &self.hop {
            if h.next_hop.is_empty() {
                return bad(
                    "hop.next_hop",
                    "the next hop's address (host:port) is required",
                );
            }
            if !one_line(&h.hostname) || h.hostname.contains(' ') {
                return bad("hop.hostname", "must be a host name");
            }
            if h.max_recipients < 1 {
                return bad(
                    "hop.max_recipients",
                    "must be at least 1 (RFC 5321 asks for 100)",
                );
            }
            if h.max_line_length < 1000 {
                return bad(
                    "hop.max_line_length",
                    "must be at least 1000 (RFC 5321 §4.5.3.1.6)",
                );
            }
            if h.max_message_size < 1024 {
                return bad("hop.max_message_size", "must be at least 1024");
            }
            if h.max_connections == 0 {
                return bad("hop.max_connections", "must be at least 1");
            }
        }
        Ok(())
    }
}
