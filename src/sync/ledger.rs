//! What the gate applied, kept for reconciliation and the dealer refresh.
//!
//! **Per brand, per registry day (Turkey time, by `creationDate`) and per feed
//! (HS, IYS):** the number of changes the follower read and committed, an
//! order-free hash of them (the wrapping sum of a 64-bit fingerprint of each
//! change's `transactionId`), and the newest `creationDate` seen on the feed.
//! That is 24 bytes a day and feed, whatever the traffic; days older than
//! [`KEEP_DAYS`] are dropped. A reconciliation compares it with the
//! registry's movement file for the same day and feed: equal counts and
//! hashes mean the gate applied exactly the changes the registry lists.
//!
//! Only changes **created since the ledger began** count (the process start,
//! or the last time the follower had to re-read a feed from its start, which
//! may repeat changes): those are exactly the changes this process must read
//! itself, while older ones may have been read before a restart. The ledger
//! lives in memory; a restart begins it again. Webhook pushes are not
//! counted: they are a shortcut, and the same change arrives through the feed.
//!
//! **Dealer-named changes:** every applied change (feed or webhook) that
//! names a dealer (`retailerCode` or `retailerAccess`) is queued here for the
//! dealer-access refresh ([`super::retailers`]), which asks the registry for
//! the consent's current dealers.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;

use crate::consent::{Brand, Channel, ConsentRecord, ConsentTime, RecipientType};
use crate::registry::api::Change;
use crate::registry::client::FeedSource;

/// Registry days the ledger keeps (the movement files reach back 7 days, plus today).
pub const KEEP_DAYS: i64 = 8;

/// Most dealer-named changes waiting for a refresh; beyond this the oldest
/// are dropped (the periodic refresh still covers them) and counted.
pub const MAX_PENDING_DEALER_TUPLES: usize = 100_000;

const DAY: i64 = 86_400;

/// One change as the ledger counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Which feed delivered it.
    pub feed: FeedSource,
    /// Its `creationDate`.
    pub created: ConsentTime,
    /// [`fingerprint`] of it.
    pub fingerprint: u64,
}

impl Seen {
    /// The ledger entry of a change from `feed`; `None` when its
    /// `creationDate` does not parse.
    pub fn of(feed: FeedSource, change: &Change) -> Option<Seen> {
        Some(Seen {
            feed,
            created: ConsentTime::parse(&change.creation_date).ok()?,
            fingerprint: fingerprint(change),
        })
    }
}

/// A change's fingerprint: a hash of its `transactionId` (unique in the
/// registry), or of its fields when it has none.
pub fn fingerprint(change: &Change) -> u64 {
    let mut h = FxHasher::default();
    if change.transaction_id.is_empty() {
        (
            &change.recipient,
            &change.recipient_type,
            &change.channel,
            &change.status,
            &change.consent_date,
            &change.creation_date,
        )
            .hash(&mut h);
    } else {
        change.transaction_id.hash(&mut h);
    }
    h.finish()
}

/// The start (Turkey midnight, Unix seconds) of the registry day of `t`.
pub fn day_of(t: ConsentTime) -> i64 {
    t.turkey_day_start().unix()
}

/// Count and hash of one day's changes on one feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Changes.
    pub count: u64,
    /// Wrapping sum of their fingerprints.
    pub hash: u64,
}

impl Tally {
    /// Count one change in.
    pub fn add(&mut self, fingerprint: u64) {
        self.count += 1;
        self.hash = self.hash.wrapping_add(fingerprint);
    }
}

/// One brand's ledger, as a reconciliation reads it.
#[derive(Debug, Clone, Default)]
pub struct BrandLedger {
    /// Changes created at or after this are counted.
    pub since: ConsentTime,
    /// By day start (Unix seconds): `[HS, IYS]`.
    pub days: BTreeMap<i64, [Tally; 2]>,
    /// Newest `creationDate` read per feed `[HS, IYS]`.
    pub newest: [Option<ConsentTime>; 2],
}

/// A consent tuple whose dealers should be asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DealerTuple {
    /// The brand.
    pub brand: Brand,
    /// Channel.
    pub channel: Channel,
    /// Recipient type.
    pub recipient_type: RecipientType,
    /// The address, normalised (as the registry is asked with it).
    pub recipient: String,
}

/// Index of a feed in `[HS, IYS]`.
pub fn feed_index(feed: FeedSource) -> usize {
    match feed {
        FeedSource::Hs => 0,
        FeedSource::Iys => 1,
    }
}

/// The applied-change ledger and the queue of dealer-named changes.
#[derive(Debug)]
pub struct AppliedLog {
    started: ConsentTime,
    brands: Mutex<FxHashMap<Brand, BrandLedger>>,
    dealers: Mutex<VecDeque<DealerTuple>>,
    dealer_wake: tokio::sync::Notify,
}

impl Default for AppliedLog {
    fn default() -> Self {
        AppliedLog::new(ConsentTime::now())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppliedLog {
    /// A ledger counting changes created from `started` on.
    pub fn new(started: ConsentTime) -> AppliedLog {
        AppliedLog {
            started,
            brands: Mutex::default(),
            dealers: Mutex::default(),
            dealer_wake: tokio::sync::Notify::new(),
        }
    }

    /// Count committed feed changes of `brand`.
    pub fn record_feed(&self, brand: Brand, seen: &[Seen]) {
        if seen.is_empty() {
            return;
        }
        let mut brands = lock(&self.brands);
        let started = self.started;
        let ledger = brands.entry(brand).or_insert_with(|| BrandLedger {
            since: started,
            ..BrandLedger::default()
        });
        for s in seen {
            let f = feed_index(s.feed);
            ledger.newest[f] = ledger.newest[f].max(Some(s.created));
            if s.created < ledger.since {
                continue;
            }
            ledger.days.entry(day_of(s.created)).or_default()[f].add(s.fingerprint);
        }
        if let Some(&last) = ledger.days.keys().next_back() {
            let oldest = last - (KEEP_DAYS - 1) * DAY;
            ledger.days.retain(|&d, _| d >= oldest);
        }
    }

    /// Begin `brand`'s ledger again at `now` (its feeds are being re-read
    /// from their start, which repeats changes already counted).
    pub fn restart(&self, brand: Brand, now: ConsentTime) {
        lock(&self.brands).insert(
            brand,
            BrandLedger {
                since: now,
                ..BrandLedger::default()
            },
        );
    }

    /// `brand`'s ledger as it stands (empty, counting from the process
    /// start, if nothing was recorded yet).
    pub fn brand(&self, brand: Brand) -> BrandLedger {
        lock(&self.brands)
            .get(&brand)
            .cloned()
            .unwrap_or_else(|| BrandLedger {
                since: self.started,
                ..BrandLedger::default()
            })
    }

    /// Queue the applied records that name a dealer for a dealer refresh.
    pub fn note_dealers(&self, records: &[ConsentRecord]) {
        let mut queued = false;
        let mut dealers = lock(&self.dealers);
        for r in records
            .iter()
            .filter(|r| r.retailer_code.is_some() || !r.retailer_access.is_empty())
        {
            if dealers.len() >= MAX_PENDING_DEALER_TUPLES {
                dealers.pop_front();
                metrics::counter!("iys_gate_retailer_refresh_dropped_total").increment(1);
            }
            dealers.push_back(DealerTuple {
                brand: r.brand,
                channel: r.channel,
                recipient_type: r.recipient_type,
                recipient: r.address.to_string(),
            });
            queued = true;
        }
        drop(dealers);
        if queued {
            self.dealer_wake.notify_one();
        }
    }

    /// Take every queued dealer-named tuple.
    pub fn take_dealers(&self) -> Vec<DealerTuple> {
        lock(&self.dealers).drain(..).collect()
    }

    /// Wait until a dealer-named change is queued.
    pub async fn dealers_queued(&self) {
        self.dealer_wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(tx: &str, created: &str) -> Change {
        Change {
            consent_date: "2026-12-01 10:00:00".into(),
            creation_date: created.into(),
            source: "HS_WEB".into(),
            recipient: "+905321112233".into(),
            recipient_type: "BIREYSEL".into(),
            status: "ONAY".into(),
            channel: "MESAJ".into(),
            transaction_id: tx.into(),
            retailer_code: None,
            retailer_access: None,
        }
    }

    #[test]
    fn counts_by_turkey_day_and_feed_from_its_start() {
        let start = ConsentTime::parse("2026-12-01 12:00:00").unwrap();
        let log = AppliedLog::new(start);
        let brand = Brand::new(1, 2);
        let seen: Vec<Seen> = [
            (FeedSource::Hs, "a", "2026-12-01 11:59:59"), // before the start: not counted
            (FeedSource::Hs, "b", "2026-12-01 12:00:00"),
            (FeedSource::Iys, "c", "2026-12-01 23:59:59"),
            (FeedSource::Hs, "d", "2026-12-02 00:00:00"), // next Turkey day
        ]
        .iter()
        .map(|(f, tx, at)| Seen::of(*f, &change(tx, at)).unwrap())
        .collect();
        log.record_feed(brand, &seen);
        let l = log.brand(brand);
        let day1 = day_of(start);
        assert_eq!(l.days[&day1][0].count, 1);
        assert_eq!(l.days[&day1][0].hash, fingerprint(&change("b", "")));
        assert_eq!(l.days[&day1][1].count, 1);
        assert_eq!(l.days[&(day1 + DAY)][0].count, 1);
        assert_eq!(
            l.newest[0],
            Some(ConsentTime::parse("2026-12-02 00:00:00").unwrap())
        );
        // Order does not matter to the hash.
        let mut a = Tally::default();
        a.add(1);
        a.add(u64::MAX);
        let mut b = Tally::default();
        b.add(u64::MAX);
        b.add(1);
        assert_eq!(a, b);
        log.restart(brand, ConsentTime(start.unix() + 10));
        assert!(log.brand(brand).days.is_empty());
    }

    #[test]
    fn keeps_eight_days() {
        let start = ConsentTime::parse("2026-12-01 12:00:00").unwrap();
        let log = AppliedLog::new(start);
        let brand = Brand::new(1, 2);
        for d in 0..10 {
            let at = ConsentTime(start.unix() + d * DAY);
            let c = change(&format!("t{d}"), &at.to_string());
            log.record_feed(brand, &[Seen::of(FeedSource::Iys, &c).unwrap()]);
        }
        let days: Vec<i64> = log.brand(brand).days.keys().copied().collect();
        assert_eq!(days.len(), KEEP_DAYS as usize);
        assert_eq!(days[0], day_of(ConsentTime(start.unix() + 2 * DAY)));
    }

    #[test]
    fn queues_only_changes_naming_a_dealer() {
        let log = AppliedLog::default();
        let rows = [
            "700001,1,+905321112233,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,",
            "700001,1,+905321112244,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,7,",
            "700001,1,+905321112255,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,8;9",
        ];
        let records: Vec<ConsentRecord> = rows
            .iter()
            .map(|r| ConsentRecord::from_csv_fields(r.split(',')).unwrap())
            .collect();
        log.note_dealers(&records);
        let queued: Vec<String> = log
            .take_dealers()
            .into_iter()
            .map(|t| t.recipient)
            .collect();
        assert_eq!(queued, vec!["+905321112244", "+905321112255"]);
        assert!(log.take_dealers().is_empty());
    }
}
