//! Where SMTP meets policy: the brand and class of mail from its account (and,
//! at the hop, its `X-IYS-*` headers), the recipient's decision, and the one
//! mapping from a [`Decision`] to an SMTP reply. Both the Postfix policy
//! service (`action=<reply>`) and the hop (the reply itself) answer with
//! [`Reply`]. No sockets here.
//!
//! Wire conventions (design.md): `X-IYS-Message-Type: 0/11/12`, else the
//! account's default, else commercial to an individual; `X-IYS-Brand-Code`
//! may name another brand of the same İYS code if the account lists it;
//! `X-IYS-Retailer-Code` names a dealer.

use std::fmt;

use super::accounts::Account;
use super::config::{ReplyConfig, Unmatched};
use crate::consent::{Channel, Email};
use crate::gate::{Classified, IysFields, TurnClock, TurnRecord};
use crate::policy::{decide, Decision, Policy, Reason, Request, Verdict};
use crate::store::Snapshot;

/// An SMTP reply the gate gives itself: code, enhanced status (RFC 3463) and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Three-digit reply code.
    pub code: u16,
    /// Enhanced status code, `class.subject.detail`.
    pub status: (u8, u16, u16),
    /// One line of text.
    pub text: &'a str,
}

impl fmt::Display for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, s, d) = self.status;
        write!(f, "{} {c}.{s}.{d} {}", self.code, self.text)
    }
}

impl Reply<'_> {
    /// A permanent refusal (5xx).
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

/// The brand and class of mail from `account` before its headers are seen.
pub fn classify(account: &Account) -> Classified {
    Classified {
        brand: account.config.brand(),
        class: account.config.default_class(),
        retailer: None,
    }
}

/// The İYS headers of one message, as found (values trimmed, not yet checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IysHeaders {
    /// `X-IYS-Message-Type`.
    pub message_type: Option<String>,
    /// `X-IYS-Brand-Code`.
    pub brand_code: Option<String>,
    /// `X-IYS-Retailer-Code`.
    pub retailer_code: Option<String>,
}

impl IysHeaders {
    /// Whether a header field name is one of the İYS headers (any letter case).
    pub fn is_iys_header(name: &[u8]) -> bool {
        [
            &b"x-iys-message-type"[..],
            b"x-iys-brand-code",
            b"x-iys-retailer-code",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
    }

    /// Keep the value of one header field if it is an İYS header (the first
    /// of each wins; a repeated one is reported by [`IysHeaders::apply`]).
    pub fn offer(&mut self, name: &[u8], value: &[u8], repeated: &mut bool) {
        let slot = if name.eq_ignore_ascii_case(b"x-iys-message-type") {
            &mut self.message_type
        } else if name.eq_ignore_ascii_case(b"x-iys-brand-code") {
            &mut self.brand_code
        } else if name.eq_ignore_ascii_case(b"x-iys-retailer-code") {
            &mut self.retailer_code
        } else {
            return;
        };
        if slot.is_some() {
            *repeated = true;
            return;
        }
        *slot = Some(String::from_utf8_lossy(value).trim().to_string());
    }

    /// The classification these headers give mail from `account`; an
    /// unreadable value, or a brand the account may not name, is an error
    /// whose text says which header and why.
    pub fn apply(&self, account: &Account) -> Result<Classified, String> {
        let cfg = &account.config;
        let fields = IysFields {
            message_type: self.message_type.as_deref(),
            brand_code: self.brand_code.as_deref(),
            retailer_code: self.retailer_code.as_deref(),
        };
        classify(account).with_iys_fields(
            fields,
            |code| code == cfg.brand_code || cfg.override_brands.contains(&code),
            "account",
        )
    }
}

/// Decide one recipient (an envelope address as given in RCPT TO or the
/// policy request). An address that cannot be an e-mail address has no consent.
pub fn judge(
    policy: &Policy,
    snapshot: Option<&Snapshot>,
    what: &Classified,
    recipient: &str,
    at: TurnClock,
) -> Decision {
    let req = Request {
        brand: what.brand,
        channel: Channel::Eposta,
        class: what.class,
        address: Email::key_of(recipient).ok(),
        retailer: what.retailer,
    };
    decide(snapshot, policy, at.consent, &req)
}

/// Count a decision and audit it unless it allowed the mail (refused,
/// deferred, or let through only by monitor mode). `protocol` is
/// `"smtp_policy"` or `"smtp_hop"`.
pub fn record(
    turn: &mut TurnRecord,
    protocol: &'static str,
    account: &str,
    what: &Classified,
    recipient: &str,
    at: TurnClock,
    d: &Decision,
) {
    turn.reports
        .record(at.wall, what.brand, Channel::Eposta, what.retailer, d);
    turn.decided(
        at,
        protocol,
        Channel::Eposta,
        account,
        what.brand,
        recipient,
        d,
    );
}

/// The reply a decision is answered with; `None`: let the recipient through.
/// Monitor mode lets everything through.
pub fn refusal<'a>(replies: &'a ReplyConfig, d: &Decision) -> Option<Reply<'a>> {
    match d.enforced() {
        Verdict::Allow => None,
        Verdict::Defer => Some(temporary(&replies.defer)),
        Verdict::Refuse => Some(permanent(match d.reason {
            Reason::Withdrawn => &replies.withdrawn,
            Reason::UnknownBrand => &replies.unknown_brand,
            Reason::RetailerNotAllowed => &replies.retailer_not_allowed,
            _ => &replies.no_consent,
        })),
    }
}

/// The reply for mail that matches no account; `None` with `unmatched = "pass"`.
pub fn unmatched<'a>(replies: &'a ReplyConfig, rule: Unmatched) -> Option<Reply<'a>> {
    match rule {
        Unmatched::Pass => None,
        Unmatched::Reject => Some(permanent(&replies.unmatched)),
        Unmatched::Defer => Some(temporary(&replies.unmatched)),
    }
}

/// `550 5.7.1 <text>`: delivery not authorised (RFC 3463 X.7.1).
pub fn permanent(text: &str) -> Reply<'_> {
    Reply {
        code: 550,
        status: (5, 7, 1),
        text,
    }
}

/// `451 4.7.1 <text>`: not authorised now, try again later.
pub fn temporary(text: &str) -> Reply<'_> {
    Reply {
        code: 451,
        status: (4, 7, 1),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Reason;

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
    fn each_decision_has_its_reply() {
        let r = ReplyConfig::default();
        assert_eq!(
            refusal(&r, &decision(Verdict::Allow, Reason::Consent, false)),
            None
        );
        let no = refusal(&r, &decision(Verdict::Refuse, Reason::NoConsent, false)).unwrap();
        assert!(no.to_string().starts_with("550 5.7.1 IYS: "), "{no}");
        assert!(no.to_string().ends_with("(no_consent)"), "{no}");
        let w = refusal(&r, &decision(Verdict::Refuse, Reason::Withdrawn, false)).unwrap();
        assert!(w.to_string().ends_with("(withdrawn)"), "{w}");
        let d = refusal(&r, &decision(Verdict::Defer, Reason::Stale, false)).unwrap();
        assert!(d.to_string().starts_with("451 4.7.1 "), "{d}");
        assert!(!d.is_permanent());
        assert_eq!(
            refusal(&r, &decision(Verdict::Refuse, Reason::NoConsent, true)),
            None
        );
        assert_eq!(unmatched(&r, Unmatched::Pass), None);
        assert_eq!(unmatched(&r, Unmatched::Defer).unwrap().code, 451);
    }
}
