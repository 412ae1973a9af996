//! `[sip]`: the voice gate's listeners, its mode (inline stateless proxy or
//! redirect server), next hops, trunks (who calls for which brand) and the
//! answers it gives.
//!
//! ```toml
//! [sip]
//! listen_udp = "0.0.0.0:5060"
//! listen_tcp = "0.0.0.0:5060"
//! mode = "proxy"                # or "redirect"
//! next_hop = "10.0.0.5:5060"    # the softswitch / SBC (proxy mode)
//! via_host = "gate.example.net" # sent-by of the gate's Via; default: the listen address
//!
//! [[sip.trunks]]
//! name = "callcentre-a"
//! networks = ["192.0.2.0/24"]
//! iys_code = 700001
//! brand_code = 100001
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::consent::{Brand, MessageClass, Phone};
use crate::gate::Network;

/// Inline proxy or redirect server.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Stateless proxy (RFC 3261 §16.11) between trunks and the next hop.
    #[default]
    Proxy,
    /// Redirect server: `302` with the original target, or the refusal.
    Redirect,
}

/// What an initial INVITE from an address that matches no trunk gets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Forwarded (proxy) or redirected (redirect) unjudged.
    Pass,
    /// `403 Forbidden` with a Reason naming `unmatched`.
    Reject,
    /// The defer answer (`503` + Retry-After, or `480`).
    Defer,
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listener, when configured.
    pub listen_udp: Option<SocketAddr>,
    /// TCP listener, when configured.
    pub listen_tcp: Option<SocketAddr>,
    /// "proxy" (default) or "redirect".
    #[serde(default)]
    pub mode: Mode,
    /// Where requests go when their trunk names no next hop (`host:port` or
    /// `ip:port`). Required in proxy mode unless every trunk has one.
    pub next_hop: Option<String>,
    /// The host (and optional port) the gate writes in its own Via. Default:
    /// the listener's address (must then not be a wildcard address).
    pub via_host: Option<String>,
    /// Trunks: the callers the gate judges.
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// An initial INVITE from no trunk: "pass", "reject" (default) or "defer".
    #[serde(default = "default_unmatched")]
    pub unmatched: Unmatched,
    /// A UDP request that would leave the gate larger than 1300 bytes goes to
    /// the next hop over TCP instead (RFC 3261 §18.1.1: path MTU unknown),
    /// with the gate's Via saying TCP. Set false for a next hop without TCP:
    /// such requests then go over UDP as they are (IP fragmentation). Default true.
    #[serde(default = "yes")]
    pub large_requests_over_tcp: bool,
    /// Remove `X-IYS-*` headers before forwarding. Default true.
    #[serde(default = "yes")]
    pub strip_iys_headers: bool,
    /// Largest message in bytes, either transport. Default 65535.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// How long the gate remembers its own answer to an INVITE, so a
    /// retransmission gets the same one and its ACK is absorbed. Default
    /// "32s" (64 × T1, an INVITE client transaction's lifetime).
    #[serde(default = "default_transaction_lifetime", with = "humantime_serde")]
    pub transaction_lifetime: Duration,
    /// Most answers remembered at once (the oldest go first). Default 200000.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// Most concurrent TCP connections, in and out. Default 1000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP connection idle this long is closed. Default "300s".
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Answer codes.
    #[serde(default)]
    pub answers: AnswerConfig,
    /// SIP over TLS (`[sip.tls]`), a listener beside UDP and TCP.
    pub tls: Option<SipTlsConfig>,
}

/// `[sip.tls]`: a TLS listener (RFC 3261 §26: `SIP/2.0/TLS`, `transport=tls`).
/// Requests that arrive over TLS are handled like TCP ones and go on to the
/// next hop over TCP (the gate sits in front of the operator's own network);
/// responses come back on the caller's TLS connection. Counts towards
/// `max_connections` and `idle_timeout` like TCP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTlsConfig {
    /// TLS listener address (5061 is SIP's TLS port).
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
}

/// `[[sip.trunks]]`: a source of calls for one brand.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// A name for logs and the audit trail.
    pub name: String,
    /// Source networks (CIDR or one address); the longest match wins.
    pub networks: Vec<Network>,
    /// İYS code of the brand this trunk calls for.
    pub iys_code: u32,
    /// Brand code.
    pub brand_code: u32,
    /// Other brand codes (same İYS code) the trunk may name in
    /// `X-IYS-Brand-Code` or through `callers`.
    #[serde(default)]
    pub override_brands: Vec<u32>,
    /// Class of calls without `X-IYS-Message-Type`: 0, 11 or 12. Default 11.
    pub default_message_type: Option<u8>,
    /// Believe `P-Asserted-Identity` from this trunk (RFC 3325 trust
    /// domain) as the calling number; otherwise From is used. Default false.
    #[serde(default)]
    pub trusted: bool,
    /// Calling numbers that call for another of the trunk's brands.
    #[serde(default)]
    pub callers: Vec<CallerConfig>,
    /// Where this trunk's requests go; default `sip.next_hop`.
    pub next_hop: Option<String>,
}

/// `[[sip.trunks.callers]]`: a calling number and the brand it calls for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// The calling number, any accepted spelling (`+905320000000`, `0532...`).
    pub number: String,
    /// The brand code (the trunk's own or one of `override_brands`).
    pub brand_code: u32,
}

impl TrunkConfig {
    /// The brand this trunk calls for by default.
    pub fn brand(&self) -> Brand {
        Brand::new(self.iys_code, self.brand_code)
    }

    /// The class for calls without `X-IYS-Message-Type`.
    pub fn default_class(&self) -> MessageClass {
        self.default_message_type
            .and_then(MessageClass::from_code)
            .unwrap_or(MessageClass::DEFAULT)
    }

    /// Whether the trunk may call for brand `code`.
    pub fn may_name(&self, code: u32) -> bool {
        code == self.brand_code || self.override_brands.contains(&code)
    }
}

/// `[sip.answers]`: the status code for each refusal reason. Refusals may be
/// 608 (Rejected, RFC 8688: default), 603 (Decline) or 403 (Forbidden).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerConfig {
    /// No consent on record. Default 608.
    #[serde(default = "default_refusal")]
    pub no_consent: u16,
    /// Consent withdrawn (RET). Default 608.
    #[serde(default = "default_refusal")]
    pub withdrawn: u16,
    /// The brand is not one the gate holds. Default 608.
    #[serde(default = "default_refusal")]
    pub unknown_brand: u16,
    /// The named dealer may not use the consent. Default 608.
    #[serde(default = "default_refusal")]
    pub retailer_not_allowed: u16,
    /// The gate cannot decide now (no or stale data): 503 (default, with
    /// Retry-After: the SBC tries another gate, RFC 3261 §21.5.4) or 480
    /// (Temporarily Unavailable: the call fails now, the caller may retry).
    #[serde(default = "default_defer")]
    pub defer: u16,
    /// Retry-After seconds with a 503. Default 30.
    #[serde(default = "default_retry_after")]
    pub retry_after: u32,
    /// A `Call-Info` value added to refusals (e.g.
    /// `<https://iys.example/itiraz>;purpose=info`), for redress.
    pub call_info: Option<String>,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        AnswerConfig {
            no_consent: default_refusal(),
            withdrawn: default_refusal(),
            unknown_brand: default_refusal(),
            retailer_not_allowed: default_refusal(),
            defer: default_defer(),
            retry_after: default_retry_after(),
            call_info: None,
        }
    }
}

fn default_unmatched() -> Unmatched {
    Unmatched::Reject
}
fn yes() -> bool {
    true
}
fn default_max_message_size() -> usize {
    65535
}
fn default_transaction_lifetime() -> Duration {
    Duration::from_secs(32)
}
fn default_max_transactions() -> usize {
    200_000
}
fn default_max_connections() -> usize {
    1000
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_refusal() -> u16 {
    608
}
fn default_defer() -> u16 {
    503
}
fn default_retry_after() -> u32 {
    30
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl SipConfig {
    /// Check values serde cannot; errors name the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("sip.{k}"), m.to_string()));
        if self.listen_udp.is_none() && self.listen_tcp.is_none() {
            return bad("listen_udp", "set listen_udp, listen_tcp or both");
        }
        if let Some(h) = &self.next_hop {
            // Port 0 only for the demo's in-process UAS (checked by Config).
            let demo_port = h.strip_suffix(":0").map(|host| format!("{host}:1"));
            if !is_host_port(demo_port.as_deref().unwrap_or(h)) {
                return bad("next_hop", "must be host:port");
            }
        }
        if let Some(v) = &self.via_host {
            if !printable(v) || v.contains([' ', ';', ',']) {
                return bad(
                    "via_host",
                    "must be a host name or address, with an optional :port",
                );
            }
        } else {
            let wildcard = [
                self.listen_udp,
                self.listen_tcp,
                self.tls.as_ref().map(|t| t.listen),
            ]
            .into_iter()
            .flatten()
            .any(|a| a.ip().is_unspecified());
            if wildcard {
                return bad(
                    "via_host",
                    "required when a listener binds a wildcard address (0.0.0.0, ::)",
                );
            }
        }
        if !(1500..=65535).contains(&self.max_message_size) {
            return bad("max_message_size", "must be between 1500 and 65535");
        }
        if self.transaction_lifetime < Duration::from_secs(1) {
            return bad(
                "transaction_lifetime",
                "must be at least 1s (32s covers an INVITE's retransmissions)",
            );
        }
        if self.max_transactions == 0 {
            return bad("max_transactions", "must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        let a = &self.answers;
        for (k, code) in [
            ("no_consent", a.no_consent),
            ("withdrawn", a.withdrawn),
            ("unknown_brand", a.unknown_brand),
            ("retailer_not_allowed", a.retailer_not_allowed),
        ] {
            if ![608, 603, 403].contains(&code) {
                return bad(&format!("answers.{k}"), "must be 608, 603 or 403");
            }
        }
        if ![503, 480].contains(&a.defer) {
            return bad("answers.defer", "must be 503 (with Retry-After) or 480");
        }
        if a.retry_after == 0 || a.retry_after > 86400 {
            return bad("answers.retry_after", "must be between 1 and 86400 seconds");
        }
        if let Some(c) = &a.call_info {
            if !printable(c) {
                return bad("answers.call_info", "must be one line of printable ASCII");
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let key = |k: &str| format!("trunks[{i}].{k}");
            if !printable(&t.name) || t.name.contains(' ') {
                return bad(
                    &key("name"),
                    "must be a non-empty name of printable ASCII without spaces",
                );
            }
            if !names.insert(t.name.clone()) {
                return bad(&key("name"), "is listed twice");
            }
            if t.networks.is_empty() {
                return bad(
                    &key("networks"),
                    "list at least one network (CIDR or address)",
                );
            }
            if let Some(m) = t.default_message_type {
                if MessageClass::from_code(m).is_none() {
                    return bad(&key("default_message_type"), "must be 0, 11 or 12");
                }
            }
            if let Some(h) = &t.next_hop {
                if !is_host_port(h) {
                    return bad(&key("next_hop"), "must be host:port");
                }
            }
            if self.mode == Mode::Proxy && t.next_hop.is_none() && self.next_hop.is_none() {
                return bad(
                    &key("next_hop"),
                    "needed when sip.next_hop is not set (proxy mode)",
                );
            }
            for (j, c) in t.callers.iter().enumerate() {
                if Phone::parse(&c.number).is_err() {
                    return bad(
                        &key(&format!("callers[{j}].number")),
                        "is not a phone number",
                    );
                }
                if !t.may_name(c.brand_code) {
                    return bad(
                        &key(&format!("callers[{j}].brand_code")),
                        "must be the trunk's brand_code or one of its override_brands",
                    );
                }
            }
        }
        if self.mode == Mode::Proxy && self.next_hop.is_none() && self.unmatched == Unmatched::Pass
        {
            return bad("next_hop", "needed in proxy mode when unmatched = \"pass\"");
        }
        if self.mode == Mode::Proxy && self.next_hop.is_none() && self.trunks.is_empty() {
            return bad("next_hop", "required in proxy mode");
        }
        Ok(())
    }
}

/// `host:port` with a port number.
fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<SipConfig, (String, String)> {
        let text =
            format!("listen_udp = \"127.0.0.1:5060\"\nnext_hop = \"127.0.0.1:5070\"\n{extra}");
        let c: SipConfig = toml::from_str(&text).map_err(|e| ("parse".into(), e.to_string()))?;
        c.validate().map(|_| c)
    }

    #[test]
    fn defaults_and_errors_that_name_the_key() {
        let c = parse("").unwrap();
        assert_eq!(c.mode, Mode::Proxy);
        assert_eq!(c.answers.no_consent, 608);
        assert_eq!(c.answers.defer, 503);
        assert!(c.strip_iys_headers);
        assert_eq!(c.unmatched, Unmatched::Reject);
        let trunk =
            "[[trunks]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\niys_code = 1\nbrand_code = 2\n";
        assert!(parse(trunk).is_ok());
        for (extra, key) in [
            ("[answers]\nno_consent = 486\n", "sip.answers.no_consent"),
            ("[answers]\ndefer = 500\n", "sip.answers.defer"),
            ("max_message_size = 100\n", "sip.max_message_size"),
            ("via_host = \"a b\"\n", "sip.via_host"),
            (
                &format!("{trunk}default_message_type = 5\n"),
                "sip.trunks[0].default_message_type",
            ),
            (
                &format!("{trunk}[[trunks.callers]]\nnumber = \"05320000000\"\nbrand_code = 9\n"),
                "sip.trunks[0].callers[0].brand_code",
            ),
            (
                &format!("{trunk}[[trunks.callers]]\nnumber = \"abc\"\nbrand_code = 2\n"),
                "sip.trunks[0].callers[0].number",
            ),
            (&format!("{trunk}{}", trunk), "sip.trunks[1].name"),
        ] {
            let err = parse(extra).unwrap_err();
            assert_eq!(err.0, key, "{extra}: {err:?}");
        }
        let wildcard: SipConfig =
            toml::from_str("listen_udp = \"0.0.0.0:5060\"\nnext_hop = \"h:1\"").unwrap();
        assert_eq!(wildcard.validate().unwrap_err().0, "sip.via_host");
    }
}
