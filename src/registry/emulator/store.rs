//! The emulator's current consent state for one brand, kept compact: one
//! 8-byte key and one 16-byte slot per (address, channel, recipient type), so
//! tens of millions of consents fit in well under a gigabyte. Retailer data is
//! rare and lives in a side table.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::consent::{AddressKey, Channel, ConsentTime, RecipientType, Source, Status};

/// (address key, channel, recipient type) packed in 64 bits: 2 bits address
/// kind, 2 bits channel, 1 bit recipient type, 59 bits payload.
///
/// Turkish numbers (u32 ids) and foreign numbers (at most 15 digits, < 2^50)
/// fit the payload exactly; e-mail keys keep 59 of their 64 hash bits, so two
/// different e-mails collide with probability about n²/2^60 (3e-4 for 20 M
/// e-mails in one brand), which an emulator can live with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TupleKey(u64);

const PAYLOAD_BITS: u32 = 59;
const PAYLOAD_MASK: u64 = (1 << PAYLOAD_BITS) - 1;

impl TupleKey {
    pub(crate) fn new(
        address: AddressKey,
        channel: Channel,
        recipient_type: RecipientType,
    ) -> Self {
        let (kind, payload) = match address {
            AddressKey::TrPhone(id) => (0u64, u64::from(id)),
            AddressKey::ForeignPhone(digits) => (1, digits),
            AddressKey::Email(hash) => (2, hash),
        };
        let head = kind << 3 | (channel.index() as u64) << 1 | recipient_type.index() as u64;
        TupleKey(head << PAYLOAD_BITS | (payload & PAYLOAD_MASK))
    }
}

/// The stored state of one tuple, 16 bytes: times as u32 Unix seconds (a
/// consent date is never before 2015, so 0 means "none"), the transaction
/// sequence, and flags.
#[derive(Debug, Clone, Copy)]
struct Slot {
    consent_date: u32,
    created: u32,
    transaction: u32,
    /// bit 0: RET; bits 1..=5: source index + 1 (0 = none); bit 6: retailer data.
    flags: u8,
}

const FLAG_RET: u8 = 1;
const FLAG_RETAIL: u8 = 1 << 6;
const SOURCE_SHIFT: u8 = 1;
const SOURCE_MASK: u8 = 0b1_1111;

/// A stored consent, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub status: Status,
    pub consent_date: Option<ConsentTime>,
    pub created: ConsentTime,
    pub source: Option<Source>,
    pub transaction: u32,
    pub retailer_code: Option<u32>,
    pub retailer_access: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Retail {
    code: Option<u32>,
    access: Box<[u32]>,
}

/// Current state of one brand.
#[derive(Debug, Default)]
pub(crate) struct BrandStore {
    slots: FxHashMap<TupleKey, Slot>,
    retail: FxHashMap<TupleKey, Retail>,
}

fn secs(t: ConsentTime) -> u32 {
    t.unix().clamp(0, i64::from(u32::MAX)) as u32
}

impl BrandStore {
    /// Number of tuples held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Status and consent date only: what the write rules need.
    pub(crate) fn rule_view(&self, key: TupleKey) -> Option<(Status, Option<ConsentTime>)> {
        self.slots.get(&key).map(|s| {
            let status = if s.flags & FLAG_RET != 0 {
                Status::Ret
            } else {
                Status::Onay
            };
            let date = (s.consent_date != 0).then(|| ConsentTime(i64::from(s.consent_date)));
            (status, date)
        })
    }

    /// The whole stored record.
    pub(crate) fn get(&self, key: TupleKey) -> Option<Stored> {
        let slot = self.slots.get(&key)?;
        let (status, consent_date) = self.rule_view(key)?;
        let source_bits = (slot.flags >> SOURCE_SHIFT) & SOURCE_MASK;
        let source = source_bits
            .checked_sub(1)
            .and_then(|i| Source::ALL.get(usize::from(i)).copied());
        let (retailer_code, retailer_access) = match self.retail.get(&key) {
            Some(r) if slot.flags & FLAG_RETAIL != 0 => (r.code, r.access.to_vec()),
            _ => (None, Vec::new()),
        };
        Some(Stored {
            status,
            consent_date,
            created: ConsentTime(i64::from(slot.created)),
            source,
            transaction: slot.transaction,
            retailer_code,
            retailer_access,
        })
    }

    /// Insert or replace the state of a tuple.
    pub(crate) fn put(&mut self, key: TupleKey, value: &Stored) {
        let slot = encode(&mut self.retail, key, value);
        self.slots.insert(key, slot);
    }

    /// Insert or replace unless the stored `consentDate` is newer (one hash
    /// lookup: the bulk-load path). Returns whether the value was taken.
    pub(crate) fn put_unless_older(&mut self, key: TupleKey, value: &Stored) -> bool {
        match self.slots.entry(key) {
            Entry::Occupied(mut e) => {
                let stored = e.get().consent_date;
                if stored != 0 && value.consent_date.is_some_and(|d| secs(d) < stored) {
                    return false;
                }
                *e.get_mut() = encode(&mut self.retail, key, value);
            }
            Entry::Vacant(e) => {
                e.insert(encode(&mut self.retail, key, value));
            }
        }
        true
    }
}

impl BrandStore {
    /// Replace the dealers allowed to use a stored consent (sorted, distinct);
    /// `false` when the tuple is not held.
    pub(crate) fn set_access(&mut self, key: TupleKey, access: Vec<u32>) -> bool {
        let Some(mut value) = self.get(key) else {
            return false;
        };
        value.retailer_access = access;
        self.put(key, &value);
        true
    }
}

/// The slot for a value; records or clears its retailer data on the side.
fn encode(retail: &mut FxHashMap<TupleKey, Retail>, key: TupleKey, value: &Stored) -> Slot {
    let mut flags = 0u8;
    if value.status == Status::Ret {
        flags |= FLAG_RET;
    }
    if let Some(source) = value.source {
        flags |= ((source as u8) + 1) << SOURCE_SHIFT;
    }
    if value.retailer_code.is_some() || !value.retailer_access.is_empty() {
        flags |= FLAG_RETAIL;
        retail.insert(
            key,
            Retail {
                code: value.retailer_code,
                access: value.retailer_access.clone().into_boxed_slice(),
            },
        );
    } else if !retail.is_empty() {
        retail.remove(&key);
    }
    Slot {
        consent_date: value.consent_date.map(secs).unwrap_or(0),
        created: secs(value.created),
        transaction: value.transaction,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Email, Phone};

    #[test]
    fn slot_is_sixteen_bytes_and_entry_twenty_four() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert_eq!(std::mem::size_of::<(TupleKey, Slot)>(), 24);
    }

    #[test]
    fn keys_separate_channel_type_and_kind() {
        let phone = Phone::parse("05321234567").unwrap().key();
        let a = TupleKey::new(phone, Channel::Mesaj, RecipientType::Bireysel);
        let b = TupleKey::new(phone, Channel::Arama, RecipientType::Bireysel);
        let c = TupleKey::new(phone, Channel::Mesaj, RecipientType::Tacir);
        let foreign = Phone::parse("+4915112345678").unwrap().key();
        let d = TupleKey::new(foreign, Channel::Mesaj, RecipientType::Bireysel);
        let mail = Email::parse("a@b.c").unwrap().key();
        let e = TupleKey::new(mail, Channel::Eposta, RecipientType::Bireysel);
        let all = [a, b, c, d, e];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn round_trips_every_field() {
        let mut store = BrandStore::default();
        let key = TupleKey::new(
            Phone::parse("05321234567").unwrap().key(),
            Channel::Mesaj,
            RecipientType::Bireysel,
        );
        let mut value = Stored {
            status: Status::Ret,
            consent_date: Some(ConsentTime(1_600_000_000)),
            created: ConsentTime(1_700_000_000),
            source: Some(Source::IysKisaLink),
            transaction: 42,
            retailer_code: Some(7),
            retailer_access: vec![1, 2],
        };
        store.put(key, &value);
        assert_eq!(store.get(key), Some(value.clone()));
        value.source = None;
        value.consent_date = None;
        value.retailer_code = None;
        value.retailer_access.clear();
        value.status = Status::Onay;
        store.put(key, &value);
        assert_eq!(store.get(key), Some(value.clone()));
        assert_eq!(store.len(), 1);
        let mut older = value.clone();
        older.consent_date = Some(ConsentTime(1_500_000_000));
        assert!(
            store.put_unless_older(key, &older),
            "stored record is undated"
        );
        let mut oldest = older.clone();
        oldest.consent_date = Some(ConsentTime(1_400_000_000));
        oldest.status = Status::Ret;
        assert!(!store.put_unless_older(key, &oldest));
        assert_eq!(store.get(key), Some(older));
    }
}
