//! Where SMPP meets policy: the brand, class and retailer of a message from the
//! account and the İYS TLVs, the destination's store key, the one decision, and
//! its wire answer. No sockets here.
//!
//! Wire conventions (design.md): TLV 0x1400 `iys_message_type` (`0`, `11`,
//! `12`), else the account default, else commercial to an individual; TLV
//! 0x1401 `iys_brand_code` may name another brand of the same provider if the
//! account lists it; TLV 0x1402 `iys_retailer_code` names a dealer.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use super::codec::{status, ConcatInfo, TlvRead};
use super::config::{AccountConfig, StatusConfig};
use crate::consent::{AddressKey, Brand, Channel, MessageClass, Phone};
pub use crate::gate::{Classified, TurnClock, TurnRecord};
use crate::policy::{decide, Decision, Policy, Reason, Request, Verdict};
use crate::store::Snapshot;

/// Read the account and the İYS TLVs. An unreadable İYS TLV or a brand the
/// account may not name is answered with `ESME_RINVOPTPARAMVAL`.
pub fn classify(account: &AccountConfig, tlvs: &impl TlvRead) -> Result<Classified, u32> {
    let bad = |_| status::ESME_RINVOPTPARAMVAL;
    let class = match tlvs.iys_message_type().map_err(bad)? {
        Some(t) => MessageClass::from_code(t.code()).ok_or(status::ESME_RINVOPTPARAMVAL)?,
        None => account.default_class(),
    };
    let brand = match tlvs.iys_brand_code().map_err(bad)? {
        None => account.brand(),
        Some(code) if code == account.brand_code || account.override_brands.contains(&code) => {
            Brand::new(account.iys_code, code)
        }
        Some(_) => return Err(status::ESME_RINVOPTPARAMVAL),
    };
    let retailer = tlvs.iys_retailer_code().map_err(bad)?;
    Ok(Classified {
        brand,
        class,
        retailer,
    })
}

/// The store key of an SMPP destination, or `None` when it cannot be a phone
/// number (alphanumeric TON 5, short codes, malformed).
pub fn destination_key(ton: u8, addr: &[u8]) -> Option<AddressKey> {
    if ton == 5 {
        return None;
    }
    // International TON (1): the digits start with the country code.
    Phone::parse_octets(addr, ton == 1).ok().map(Phone::key)
}

/// The command_status a decision is answered with; `None`: forward it.
/// Monitor mode forwards everything.
pub fn refusal_status(cfg: &StatusConfig, d: &Decision) -> Option<u32> {
    match d.enforced() {
        Verdict::Allow => None,
        Verdict::Defer => Some(cfg.defer),
        Verdict::Refuse => Some(match d.reason {
            Reason::Withdrawn => cfg.withdrawn,
            Reason::UnknownBrand => cfg.unknown_brand,
            Reason::RetailerNotAllowed => cfg.retailer_not_allowed,
            _ => cfg.no_consent,
        }),
    }
}

/// Decide one destination at `at` (the caller's clock reading: sessions read
/// it once per loop turn). Counting and auditing are [`record`]'s, so a
/// decision reused for a later part of a concatenated message is recorded too.
/// The snapshot is the caller's too: a session takes the store's current one
/// once per turn of its loop, not once per message.
pub fn judge(
    policy: &Policy,
    snapshot: Option<&Snapshot>,
    what: &Classified,
    ton: u8,
    addr: &[u8],
    at: TurnClock,
) -> Decision {
    let req = Request {
        brand: what.brand,
        channel: Channel::Mesaj,
        class: what.class,
        address: destination_key(ton, addr),
        retailer: what.retailer,
    };
    decide(snapshot, policy, at.consent, &req)
}

/// Count a decision in `turn`, and add it to the turn's audit batch unless it
/// allowed the message: one record for every message (or part) refused,
/// deferred, or let through only by monitor mode.
pub fn record(
    turn: &mut TurnRecord,
    account: &str,
    what: &Classified,
    addr: &[u8],
    at: TurnClock,
    d: &Decision,
) {
    turn.decisions.record(Channel::Mesaj, d);
    turn.reports
        .record(at.wall, what.brand, Channel::Mesaj, what.retailer, d);
    if d.verdict != Verdict::Allow {
        let text = String::from_utf8_lossy(addr);
        turn.audit.refusal(
            at.wall,
            "smpp",
            Channel::Mesaj,
            what.brand,
            &text,
            d,
            Some(account),
        );
    }
}

/// Decisions taken for the first part of a concatenated message, so every
/// part gets the same answer even if the data changes between parts.
pub struct ConcatMemory {
    entries: HashMap<u64, (Decision, Instant)>,
    order: VecDeque<(u64, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl ConcatMemory {
    /// Remember at most `capacity` messages for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        ConcatMemory {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ttl,
        }
    }

    /// The decision for a part: the one remembered for its message, or `fresh()`.
    pub fn decide(
        &mut self,
        class: &Classified,
        addr: &[u8],
        info: ConcatInfo,
        now: Instant,
        fresh: impl FnOnce() -> Decision,
    ) -> Decision {
        while let Some((key, at)) = self.order.front().copied() {
            if now.duration_since(at) < self.ttl && self.order.len() <= self.capacity {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|e| e.1 == at) {
                self.entries.remove(&key);
            }
        }
        let mut h = rustc_hash::FxHasher::default();
        (
            addr,
            info.reference,
            info.total,
            class.brand,
            class.retailer,
            class.class.code(),
        )
            .hash(&mut h);
        let key = h.finish();
        if let Some((d, _)) = self.entries.get(&key) {
            return *d;
        }
        let d = fresh();
        self.entries.insert(key, (d, now));
        self.order.push_back((key, now));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::codec::{IysMessageType, Tlv, Tlvs};

    fn account() -> AccountConfig {
        AccountConfig {
            system_id: "acme".into(),
            password: Some("pw".into()),
            password_env: None,
            iys_code: 700001,
            brand_code: 1,
            override_brands: vec![2],
            default_message_type: None,
            upstream_system_id: None,
            upstream_password: None,
        }
    }

    #[test]
    fn class_brand_and_retailer_from_tlvs() {
        let a = account();
        let none = Tlvs::new();
        assert_eq!(
            classify(&a, &none).unwrap(),
            Classified {
                brand: Brand::new(700001, 1),
                class: MessageClass::DEFAULT,
                retailer: None
            }
        );
        let mut t = Tlvs::new();
        t.push(IysMessageType::from_code(0).unwrap().to_tlv());
        t.push(Tlv::new(0x1401, &b"2"[..]).unwrap());
        t.push(Tlv::new(0x1402, &b"77"[..]).unwrap());
        let c = classify(&a, &t).unwrap();
        assert_eq!(
            (c.class, c.brand.brand_code, c.retailer),
            (MessageClass::Informational, 2, Some(77))
        );
        let mut t = Tlvs::new();
        t.push(Tlv::new(0x1401, &b"3"[..]).unwrap());
        assert_eq!(
            classify(&a, &t),
            Err(status::ESME_RINVOPTPARAMVAL),
            "brand not allowed for the account"
        );
        let mut t = Tlvs::new();
        t.push(Tlv::new(0x1400, &b"7"[..]).unwrap());
        assert_eq!(classify(&a, &t), Err(status::ESME_RINVOPTPARAMVAL));
        let mut a = account();
        a.default_message_type = Some(0);
        assert_eq!(
            classify(&a, &none).unwrap().class,
            MessageClass::Informational
        );
    }

    #[test]
    fn destinations() {
        let tr = destination_key(1, b"905321234567");
        assert_eq!(tr, destination_key(0, b"05321234567"));
        assert_eq!(tr, destination_key(1, b"+905321234567"));
        assert!(matches!(
            destination_key(1, b"4915112345678"),
            Some(AddressKey::ForeignPhone(4915112345678))
        ));
        assert_eq!(destination_key(5, b"ACME"), None);
        assert_eq!(destination_key(0, b"4545"), None);
        assert_eq!(destination_key(0, &[0xff, 0xfe]), None);
    }
}
