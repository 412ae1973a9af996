//! Where SIP meets policy: which trunk a call comes from and so which brand
//! and class it has (plus its `X-IYS-*` headers and, if configured, its
//! calling number), the callee's store key, the one decision, and the one
//! mapping from a [`Decision`] to the SIP answer the gate gives. No sockets.
//!
//! Wire conventions (design.md): `X-IYS-Message-Type: 0/11/12`, else the
//! trunk's default, else commercial to an individual; `X-IYS-Brand-Code` may
//! name another brand of the same İYS code if the trunk lists it;
//! `X-IYS-Retailer-Code` names a dealer. Refusals are `608 Rejected` (RFC
//! 8688) unless configured as 603 or 403, with a `Reason` header (RFC 3326)
//! naming the İYS reason; "cannot decide now" is `503` with `Retry-After`
//! (ask another gate) or `480`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::codec::{uri, IysSpans, Message};
use super::config::{AnswerConfig, SipConfig, TrunkConfig, Unmatched};
use crate::consent::{AddressKey, Brand, Channel, Phone};
use crate::gate::{Classified, IysFields, NetworkIndex, TurnClock, TurnRecord};
use crate::policy::{decide, Decision, Policy, Reason, Request, Verdict};
use crate::store::Snapshot;

/// A trunk as the gate uses it.
#[derive(Debug)]
pub struct Trunk {
    /// `[[sip.trunks]]`.
    pub config: TrunkConfig,
    /// Calling number → brand code.
    pub callers: HashMap<Phone, u32>,
}

/// Every trunk, by source network (longest prefix first).
#[derive(Debug, Default)]
pub struct Trunks {
    list: Vec<Trunk>,
    networks: NetworkIndex,
}

impl Trunks {
    /// Index the configured trunks (validated: numbers parse).
    pub fn new(configs: &[TrunkConfig]) -> Trunks {
        let mut t = Trunks::default();
        for (i, c) in configs.iter().enumerate() {
            for n in &c.networks {
                t.networks.insert(*n, i);
            }
            let callers = c
                .callers
                .iter()
                .filter_map(|k| Phone::parse(&k.number).ok().map(|p| (p, k.brand_code)))
                .collect();
            t.list.push(Trunk {
                config: c.clone(),
                callers,
            });
        }
        t.networks.finish();
        t
    }

    /// The trunk whose networks hold `ip`.
    pub fn find(&self, ip: IpAddr) -> Option<&Trunk> {
        self.networks.find(ip).map(|i| &self.list[i])
    }

    /// Every trunk.
    pub fn iter(&self) -> impl Iterator<Item = &Trunk> {
        self.list.iter()
    }
}

/// The calling number: P-Asserted-Identity from a trusted trunk, else From.
pub fn caller(buf: &[u8], m: &Message, trunk: &Trunk) -> Option<Phone> {
    let value = match m.asserted_identity {
        Some(pai) if trunk.config.trusted => pai,
        _ => m.from,
    };
    uri::phone(uri::addr_uri(value.of(buf))).ok()
}

/// The callee's store key: the Request-URI's number, or `None` when it
/// names no phone number (no consent can exist for it).
pub fn callee(buf: &[u8], m: &Message) -> Option<AddressKey> {
    uri::phone(m.uri()?.of(buf)).ok().map(Phone::key)
}

/// The brand, class and dealer of a call from `trunk`: the trunk's brand, or
/// the one its calling number is mapped to, then the `X-IYS-*` headers. An
/// unreadable header or a brand the trunk may not name is an error whose
/// text names the header.
pub fn classify(
    buf: &[u8],
    trunk: &Trunk,
    caller: Option<Phone>,
    iys: &IysSpans,
) -> Result<Classified, String> {
    let cfg = &trunk.config;
    let mut c = Classified {
        brand: cfg.brand(),
        class: cfg.default_class(),
        retailer: None,
    };
    if let Some(code) = caller.and_then(|p| trunk.callers.get(&p)) {
        c.brand = Brand::new(cfg.iys_code, *code);
    }
    let text = |s: Option<crate::sip::codec::Span>| s.map(|s| String::from_utf8_lossy(s.of(buf)));
    let (message_type, brand_code, retailer_code) = (
        text(iys.message_type),
        text(iys.brand_code),
        text(iys.retailer_code),
    );
    let fields = IysFields {
        message_type: message_type.as_deref(),
        brand_code: brand_code.as_deref(),
        retailer_code: retailer_code.as_deref(),
    };
    c.with_iys_fields(fields, |code| cfg.may_name(code), "trunk")
}

/// Decide one call.
pub fn judge(
    policy: &Policy,
    snapshot: Option<&Snapshot>,
    what: &Classified,
    callee: Option<AddressKey>,
    at: TurnClock,
) -> Decision {
    let req = Request {
        brand: what.brand,
        channel: Channel::Arama,
        class: what.class,
        address: callee,
        retailer: what.retailer,
    };
    decide(snapshot, policy, at.consent, &req)
}

/// Count a decision (`iys_gate_decisions_total{channel="ARAMA"}`) and audit
/// it unless it allowed the call. `protocol` is `"sip_proxy"` or
/// `"sip_redirect"`; `callee` is the Request-URI's user part (masked by the
/// audit writer).
pub fn record(
    turn: &mut TurnRecord,
    protocol: &'static str,
    trunk: &str,
    what: &Classified,
    callee: &str,
    at: TurnClock,
    d: &Decision,
) {
    turn.reports
        .record(at.wall, what.brand, Channel::Arama, what.retailer, d);
    turn.decided(at, protocol, Channel::Arama, trunk, what.brand, callee, d);
}

/// An answer the gate gives itself instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub code: u16,
    /// Why, for the `Reason` header (`IYS <why>`).
    pub why: &'static str,
    /// Retry-After seconds (503 only).
    pub retry_after: Option<u32>,
    /// A refusal that may carry the configured Call-Info.
    pub refusal: bool,
}

/// The reason phrase the gate writes for `code`.
pub fn phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        200 => "OK",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        513 => "Message Too Large",
        603 => "Decline",
        608 => "Rejected",
        _ => "Unknown",
    }
}

fn defer(cfg: &AnswerConfig, why: &'static str) -> Answer {
    Answer {
        code: cfg.defer,
        why,
        retry_after: (cfg.defer == 503).then_some(cfg.retry_after),
        refusal: false,
    }
}

/// The answer a decision gets; `None`: let the call through. Monitor mode
/// lets everything through.
pub fn refusal(cfg: &AnswerConfig, d: &Decision) -> Option<Answer> {
    let refuse = |code, why| Answer {
        code,
        why,
        retry_after: None,
        refusal: true,
    };
    match d.enforced() {
        Verdict::Allow => None,
        Verdict::Defer => Some(defer(cfg, d.reason.as_str())),
        Verdict::Refuse => Some(match d.reason {
            Reason::Withdrawn => refuse(cfg.withdrawn, "withdrawn"),
            Reason::UnknownBrand => refuse(cfg.unknown_brand, "unknown_brand"),
            Reason::RetailerNotAllowed => refuse(cfg.retailer_not_allowed, "retailer_not_allowed"),
            r => refuse(cfg.no_consent, r.as_str()),
        }),
    }
}

/// The answer for an initial INVITE from no trunk; `None` with `unmatched = "pass"`.
pub fn unmatched(cfg: &SipConfig) -> Option<Answer> {
    match cfg.unmatched {
        Unmatched::Pass => None,
        Unmatched::Reject => Some(Answer {
            code: 403,
            why: "unmatched",
            retry_after: None,
            refusal: true,
        }),
        Unmatched::Defer => Some(defer(&cfg.answers, "unmatched")),
    }
}

/// `400 Bad Request` for an INVITE whose İYS headers are unreadable.
pub fn bad_iys_header() -> Answer {
    Answer {
        code: 400,
        why: "bad_iys_header",
        retry_after: None,
        refusal: false,
    }
}

/// The header lines an answer carries: `Reason` (RFC 3326) naming the İYS
/// reason, `Retry-After` for a 503, the configured `Call-Info` on refusals,
/// and a `Warning` (399) with `detail` when given (e.g. which header was bad).
pub fn write_answer_headers(
    cfg: &AnswerConfig,
    a: &Answer,
    detail: Option<&str>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"Reason: SIP;cause=");
    out.extend_from_slice(itoa::Buffer::new().format(a.code).as_bytes());
    out.extend_from_slice(b";text=\"IYS ");
    out.extend_from_slice(a.why.as_bytes());
    out.extend_from_slice(b"\"\r\n");
    if let Some(s) = a.retry_after {
        out.extend_from_slice(b"Retry-After: ");
        out.extend_from_slice(itoa::Buffer::new().format(s).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if a.refusal {
        if let Some(c) = &cfg.call_info {
            out.extend_from_slice(b"Call-Info: ");
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(d) = detail {
        out.extend_from_slice(b"Warning: 399 iys-gate \"");
        for b in d.bytes() {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                out.push(b);
            }
        }
        out.extend_from_slice(b"\"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::MessageClass;
    use crate::sip::codec::scan;

    fn trunks(trusted: bool) -> Trunks {
        let t: TrunkConfig = toml::from_str(&format!(
            "name = \"a\"\nnetworks = [\"10.0.0.0/8\", \"10.1.0.0/16\"]\niys_code = 7\nbrand_code = 1\n\
             override_brands = [2, 3]\ntrusted = {trusted}\n\
             [[callers]]\nnumber = \"0532 000 00 00\"\nbrand_code = 2\n"
        ))
        .unwrap();
        let mut other = t.clone();
        other.name = "b".into();
        other.networks = vec!["10.1.2.0/24".parse().unwrap()];
        other.brand_code = 9;
        other.callers.clear();
        Trunks::new(&[t, other])
    }

    fn invite(from: &str, pai: &str, extra: &str) -> Vec<u8> {
        format!(
            "INVITE tel:+90-530-000-0001 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <{from}>;tag=1\r\nTo: <tel:+905300000001>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             P-Asserted-Identity: <{pai}>\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn trunk_caller_and_headers_give_brand_and_class() {
        let t = trunks(false);
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(
            t.find(ip("10.1.2.3")).unwrap().config.name,
            "b",
            "longest prefix"
        );
        assert_eq!(t.find(ip("10.200.0.1")).unwrap().config.name, "a");
        assert!(t.find(ip("192.0.2.1")).is_none());
        let a = t.find(ip("10.0.0.1")).unwrap();

        // The From number is mapped to brand 2; P-Asserted-Identity is ignored untrusted.
        let b = invite("sip:+905320000000@x", "sip:+905329999999@x", "");
        let m = scan(&b, 65535).unwrap();
        let who = caller(&b, &m, a);
        assert_eq!(who, Phone::parse("05320000000").ok());
        let c = classify(&b, a, who, &m.iys).unwrap();
        assert_eq!(c.brand, Brand::new(7, 2));
        assert_eq!(c.class, MessageClass::DEFAULT);
        assert_eq!(
            callee(&b, &m),
            Phone::parse("05300000001").ok().map(Phone::key)
        );

        // Trusted: P-Asserted-Identity names the caller (not mapped: brand 1).
        let trusted = trunks(true);
        let a = trusted.find(ip("10.0.0.1")).unwrap();
        let who = caller(&b, &m, a);
        assert_eq!(who, Phone::parse("05329999999").ok());
        assert_eq!(
            classify(&b, a, who, &m.iys).unwrap().brand,
            Brand::new(7, 1)
        );

        // Headers: class, brand override (allowed or not), retailer.
        let b = invite(
            "sip:x@y",
            "sip:x@y",
            "x-iys-message-type: 0\r\nX-IYS-Brand-Code: 3\r\nX-IYS-Retailer-Code: 501\r\n",
        );
        let m = scan(&b, 65535).unwrap();
        let c = classify(&b, a, None, &m.iys).unwrap();
        assert_eq!(
            (c.brand, c.class.code(), c.retailer),
            (Brand::new(7, 3), 0, Some(501))
        );
        for (bad, names) in [
            ("X-IYS-Brand-Code: 4\r\n", "X-IYS-Brand-Code 4"),
            ("X-IYS-Message-Type: 5\r\n", "X-IYS-Message-Type"),
            ("X-IYS-Retailer-Code: x\r\n", "X-IYS-Retailer-Code"),
        ] {
            let b = invite("sip:x@y", "sip:x@y", bad);
            let m = scan(&b, 65535).unwrap();
            let err = classify(&b, a, None, &m.iys).unwrap_err();
            assert!(err.contains(names), "{err}");
        }
    }

    fn decision(verdict: Verdict, reason: Reason, monitor: bool) -> Decision {
        Decision {
            verdict,
            reason,
            monitor,
            snapshot_version: 1,
            data_age_seconds: None,
        }
    }

    #[test]
    fn each_decision_has_its_answer() {
        let mut cfg = AnswerConfig::default();
        assert_eq!(
            refusal(&cfg, &decision(Verdict::Allow, Reason::Consent, false)),
            None
        );
        let no = refusal(&cfg, &decision(Verdict::Refuse, Reason::NoConsent, false)).unwrap();
        assert_eq!((no.code, no.why), (608, "no_consent"));
        let d = refusal(&cfg, &decision(Verdict::Defer, Reason::Stale, false)).unwrap();
        assert_eq!((d.code, d.retry_after), (503, Some(30)));
        assert_eq!(
            refusal(&cfg, &decision(Verdict::Refuse, Reason::Withdrawn, true)),
            None
        );
        cfg.withdrawn = 603;
        cfg.defer = 480;
        cfg.call_info = Some("<https://iys.example/itiraz>;purpose=info".into());
        let w = refusal(&cfg, &decision(Verdict::Refuse, Reason::Withdrawn, false)).unwrap();
        assert_eq!(w.code, 603);
        let d = refusal(&cfg, &decision(Verdict::Defer, Reason::Stale, false)).unwrap();
        assert_eq!((d.code, d.retry_after), (480, None));
        let mut out = Vec::new();
        write_answer_headers(&cfg, &w, Some("bad \"x\""), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Reason: SIP;cause=603;text=\"IYS withdrawn\"\r\nCall-Info: <https://iys.example/itiraz>;purpose=info\r\nWarning: 399 iys-gate \"bad x\"\r\n"
        );
    }
}
