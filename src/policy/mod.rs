//! The one decision function every gate calls: `decide(snapshot, request)`.
//! Pure: no I/O, no allocation, the clock passed in. Each protocol maps a
//! [`Decision`] to its wire answer in exactly one place.

use serde::Serialize;

use crate::consent::{AddressKey, Brand, Channel, ConsentTime, MessageClass};
use crate::store::{Found, Snapshot};

/// What a gate asks about one message to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The brand the message is sent for.
    pub brand: Brand,
    /// The channel it travels on.
    pub channel: Channel,
    /// What the sender declared it to be.
    pub class: MessageClass,
    /// The recipient's store key (see [`crate::consent::address_key`]);
    /// `None` when the destination cannot be an İYS address at all (a short
    /// code, an alphanumeric or malformed address): no consent can exist for it.
    pub address: Option<AddressKey>,
    /// The dealer the message is sent for, if any.
    pub retailer: Option<u32>,
}

/// The rules' answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Refuse it for good.
    Refuse,
    /// Refuse it for now; the sender should retry later.
    Defer,
}

/// Why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// ONAY on record.
    Consent,
    /// Informational message: no check needed.
    Exempt,
    /// No record for this address.
    NoConsent,
    /// The newest record is RET.
    Withdrawn,
    /// The brand is not one the gate holds data for.
    UnknownBrand,
    /// Consent exists, but not for the named dealer.
    RetailerNotAllowed,
    /// No data, or data older than the configured limit.
    Stale,
}

impl Verdict {
    /// Label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Refuse => "refuse",
            Verdict::Defer => "defer",
        }
    }

    /// Every verdict.
    pub const ALL: [Verdict; 3] = [Verdict::Allow, Verdict::Refuse, Verdict::Defer];
}

impl Reason {
    /// Label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Consent => "consent",
            Reason::Exempt => "exempt",
            Reason::NoConsent => "no_consent",
            Reason::Withdrawn => "withdrawn",
            Reason::UnknownBrand => "unknown_brand",
            Reason::RetailerNotAllowed => "retailer_not_allowed",
            Reason::Stale => "stale",
        }
    }

    /// Where this reason is in [`Reason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Every reason with the verdict it comes with (in declaration order:
    /// see [`Reason::index`]).
    pub const ALL: [(Verdict, Reason); 7] = [
        (Verdict::Allow, Reason::Consent),
        (Verdict::Allow, Reason::Exempt),
        (Verdict::Refuse, Reason::NoConsent),
        (Verdict::Refuse, Reason::Withdrawn),
        (Verdict::Refuse, Reason::UnknownBrand),
        (Verdict::Refuse, Reason::RetailerNotAllowed),
        (Verdict::Defer, Reason::Stale),
    ];
}

/// How the gate applies the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Data older than this (seconds) cannot decide commercial traffic.
    /// `None`: no limit.
    pub max_data_age_secs: Option<i64>,
    /// Record decisions but enforce none.
    pub monitor: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_data_age_secs: Some(24 * 3600),
            monitor: false,
        }
    }
}

/// The outcome for one message to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What the rules say.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// Monitor mode: the gate forwards whatever the verdict.
    pub monitor: bool,
    /// The snapshot version decided from (0 when none).
    pub snapshot_version: u64,
    /// Age of the brand's data in seconds, when known.
    pub data_age_seconds: Option<i64>,
}

impl Decision {
    /// The verdict the gate acts on: `Allow` in monitor mode.
    #[inline]
    pub fn enforced(&self) -> Verdict {
        if self.monitor {
            Verdict::Allow
        } else {
            self.verdict
        }
    }
}

/// Decide one message to one recipient.
#[inline]
pub fn decide(
    snapshot: Option<&Snapshot>,
    policy: &Policy,
    now: ConsentTime,
    req: &Request,
) -> Decision {
    let mut d = Decision {
        verdict: Verdict::Allow,
        reason: Reason::Exempt,
        monitor: policy.monitor,
        snapshot_version: snapshot.map_or(0, |s| s.version),
        data_age_seconds: None,
    };
    let set = |d: &mut Decision, verdict, reason| {
        d.verdict = verdict;
        d.reason = reason;
    };
    let Some(snapshot) = snapshot else {
        if req.class != MessageClass::Informational {
            set(&mut d, Verdict::Defer, Reason::Stale);
        }
        return d;
    };
    let Some(entry) = snapshot.brand(req.brand) else {
        if req.class != MessageClass::Informational {
            set(&mut d, Verdict::Refuse, Reason::UnknownBrand);
        }
        return d;
    };
    d.data_age_seconds = entry.sync.synced_at.map(|t| (now.unix() - t.unix()).max(0));
    let MessageClass::Commercial(rtype) = req.class else {
        return d;
    };
    if let Some(max) = policy.max_data_age_secs {
        if d.data_age_seconds.is_none_or(|age| age > max) {
            set(&mut d, Verdict::Defer, Reason::Stale);
            return d;
        }
    }
    let found = req.address.map_or(Found::Unknown, |address| {
        snapshot.find_in(entry, req.channel, rtype, address, req.retailer)
    });
    let (verdict, reason) = match found {
        Found::Consent => (Verdict::Allow, Reason::Consent),
        Found::RetailerDenied => (Verdict::Refuse, Reason::RetailerNotAllowed),
        Found::Withdrawn => (Verdict::Refuse, Reason::Withdrawn),
        Found::Unknown => (Verdict::Refuse, Reason::NoConsent),
    };
    set(&mut d, verdict, reason);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{ConsentRecord, RecipientType};
    use crate::store::SnapshotBuilder;

    const NOW: ConsentTime = ConsentTime(1_800_000_000);

    #[test]
    fn reason_index_is_its_place_in_all() {
        for (i, (_, reason)) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
    }
    const BRAND: Brand = Brand::new(700001, 1);

    fn rec(row: &str) -> ConsentRecord {
        ConsentRecord::from_csv_fields(row.split(',')).unwrap()
    }

    fn snapshot(rows: &[&str], as_of: ConsentTime) -> Snapshot {
        let mut b = SnapshotBuilder::new();
        b.add_brand(BRAND);
        for r in rows {
            b.add(&rec(r));
        }
        b.build(as_of).0
    }

    fn ask(
        s: Option<&Snapshot>,
        policy: Policy,
        class: MessageClass,
        channel: Channel,
        addr: &str,
        retailer: Option<u32>,
    ) -> (Verdict, Reason) {
        let req = Request {
            brand: BRAND,
            channel,
            class,
            address: Some(crate::consent::address_key(channel, addr).unwrap()),
            retailer,
        };
        let d = decide(s, &policy, NOW, &req);
        (d.verdict, d.reason)
    }

    const B: MessageClass = MessageClass::Commercial(RecipientType::Bireysel);
    const T: MessageClass = MessageClass::Commercial(RecipientType::Tacir);
    const I: MessageClass = MessageClass::Informational;

    #[test]
    fn each_rule() {
        let s = snapshot(
            &[
                "700001,1,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
                "700001,1,05322222222,BIREYSEL,MESAJ,RET,2024-02-01 10:00:00,IYS_WEB,,",
                "700001,1,05322222222,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
                "700001,1,05323333333,TACIR,MESAJ,ONAY,,,,",
                "700001,1,05324444444,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,5,7;8",
                "700001,1,ali@example.com,BIREYSEL,EPOSTA,ONAY,2024-01-01 10:00:00,HS_WEB,,",
            ],
            NOW,
        );
        let p = Policy::default();
        let s = Some(&s);
        use Channel::*;
        assert_eq!(
            ask(s, p, B, Mesaj, "5321111111", None),
            (Verdict::Allow, Reason::Consent)
        );
        assert_eq!(
            ask(s, p, B, Arama, "5321111111", None),
            (Verdict::Refuse, Reason::NoConsent),
            "per channel"
        );
        assert_eq!(
            ask(s, p, B, Mesaj, "5322222222", None),
            (Verdict::Refuse, Reason::Withdrawn),
            "RET after ONAY, either order"
        );
        assert_eq!(
            ask(s, p, T, Mesaj, "5323333333", None),
            (Verdict::Allow, Reason::Consent)
        );
        assert_eq!(
            ask(s, p, B, Mesaj, "5323333333", None),
            (Verdict::Refuse, Reason::NoConsent),
            "TACIR record is not BIREYSEL consent"
        );
        assert_eq!(
            ask(s, p, T, Mesaj, "5321111111", None),
            (Verdict::Refuse, Reason::NoConsent)
        );
        assert_eq!(
            ask(s, p, I, Mesaj, "5329999999", None),
            (Verdict::Allow, Reason::Exempt)
        );
        assert_eq!(
            ask(s, p, B, Mesaj, "5324444444", Some(7)),
            (Verdict::Allow, Reason::Consent)
        );
        assert_eq!(
            ask(s, p, B, Mesaj, "5324444444", Some(5)),
            (Verdict::Refuse, Reason::RetailerNotAllowed),
            "collector is not in access"
        );
        assert_eq!(
            ask(s, p, B, Mesaj, "5321111111", Some(7)),
            (Verdict::Refuse, Reason::RetailerNotAllowed)
        );
        assert_eq!(
            ask(s, p, B, Eposta, "ALI@example.com", None),
            (Verdict::Allow, Reason::Consent)
        );
        assert_eq!(
            ask(s, p, B, Eposta, "veli@example.com", None),
            (Verdict::Refuse, Reason::NoConsent)
        );
        let other = Request {
            brand: Brand::new(700001, 2),
            channel: Mesaj,
            class: B,
            address: Some(crate::consent::address_key(Mesaj, "5321111111").unwrap()),
            retailer: None,
        };
        assert_eq!(
            decide(s, &p, NOW, &other).reason,
            Reason::UnknownBrand,
            "consent is per brand"
        );
        assert_eq!(
            decide(s, &p, NOW, &Request { class: I, ..other }).verdict,
            Verdict::Allow
        );
    }

    #[test]
    fn stale_data_defers_commercial_only() {
        let s = snapshot(
            &["700001,1,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,"],
            ConsentTime(NOW.0 - 7200),
        );
        let strict = Policy {
            max_data_age_secs: Some(3600),
            monitor: false,
        };
        assert_eq!(
            ask(Some(&s), strict, B, Channel::Mesaj, "5321111111", None),
            (Verdict::Defer, Reason::Stale)
        );
        assert_eq!(
            ask(Some(&s), strict, I, Channel::Mesaj, "5321111111", None),
            (Verdict::Allow, Reason::Exempt)
        );
        assert_eq!(
            ask(None, strict, B, Channel::Mesaj, "5321111111", None),
            (Verdict::Defer, Reason::Stale)
        );
        assert_eq!(
            ask(None, strict, I, Channel::Mesaj, "5321111111", None),
            (Verdict::Allow, Reason::Exempt)
        );
        let lax = Policy {
            max_data_age_secs: Some(10_000),
            monitor: false,
        };
        assert_eq!(
            ask(Some(&s), lax, B, Channel::Mesaj, "5321111111", None),
            (Verdict::Allow, Reason::Consent)
        );
    }

    #[test]
    fn an_address_that_cannot_hold_consent_is_refused_unless_informational() {
        let s = snapshot(&[], NOW);
        let req = Request {
            brand: BRAND,
            channel: Channel::Mesaj,
            class: B,
            address: None,
            retailer: None,
        };
        assert_eq!(
            decide(Some(&s), &Policy::default(), NOW, &req).reason,
            Reason::NoConsent
        );
        let req = Request { class: I, ..req };
        assert_eq!(
            decide(Some(&s), &Policy::default(), NOW, &req).reason,
            Reason::Exempt
        );
    }

    #[test]
    fn monitor_mode_records_but_allows() {
        let s = snapshot(&[], NOW);
        let p = Policy {
            monitor: true,
            ..Policy::default()
        };
        let req = Request {
            brand: BRAND,
            channel: Channel::Mesaj,
            class: B,
            address: Some(crate::consent::address_key(Channel::Mesaj, "5321111111").unwrap()),
            retailer: None,
        };
        let d = decide(Some(&s), &p, NOW, &req);
        assert_eq!(
            (d.verdict, d.reason, d.enforced()),
            (Verdict::Refuse, Reason::NoConsent, Verdict::Allow)
        );
    }

    #[test]
    fn newest_wins_through_edits_in_any_order() {
        let s = snapshot(&[], NOW);
        let onay = rec("700001,1,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,");
        let ret = rec("700001,1,05321111111,BIREYSEL,MESAJ,RET,2024-02-01 10:00:00,IYS_WEB,,");
        let p = Policy::default();
        for order in [[&ret, &onay], [&onay, &ret]] {
            // one batch
            let mut e = s.edit();
            e.apply(&[order[0].clone(), order[1].clone()], NOW).unwrap();
            let one = e.publish(NOW);
            assert_eq!(
                ask(Some(&one), p, B, Channel::Mesaj, "5321111111", None).1,
                Reason::Withdrawn
            );
            // two batches
            let mut e = s.edit();
            e.apply(&[order[0].clone()], NOW).unwrap();
            let mid = e.publish(NOW);
            let mut e = mid.edit();
            e.apply(&[order[1].clone()], NOW).unwrap();
            let two = e.publish(NOW);
            assert_eq!(
                ask(Some(&two), p, B, Channel::Mesaj, "5321111111", None).1,
                Reason::Withdrawn
            );
            assert_eq!(two.version, s.version + 2);
        }
    }
}
