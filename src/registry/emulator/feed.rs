//! One brand's change feed for one source (HS or IYS): an append-only log with
//! a sliding retention window, read by position. The cursor a client gets back
//! is the log position after the last change it received, sealed with a
//! checksum over the emulator instance, brand and feed, so a cursor from another
//! feed or another run is refused instead of silently skipping changes.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use crate::consent::{
    Brand, Channel, ConsentRecord, ConsentTime, InvalidValue, RecipientType, Source, Status,
};
use crate::registry::api::Change;

/// Which change feed: changes the provider made (`HS`) or citizens made through
/// İYS (`IYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedSource {
    /// `source=HS`: `HS_*` sources (and source-less TACIR records).
    Hs,
    /// `source=IYS`: `IYS_*` sources.
    Iys,
}

impl FeedSource {
    /// The feed a record's change belongs to.
    pub fn of(source: Option<Source>) -> FeedSource {
        match source {
            Some(s) if s.is_citizen() => FeedSource::Iys,
            _ => FeedSource::Hs,
        }
    }

    /// The query spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedSource::Hs => "HS",
            FeedSource::Iys => "IYS",
        }
    }
}

impl fmt::Display for FeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FeedSource {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "HS" => Ok(FeedSource::Hs),
            "IYS" => Ok(FeedSource::Iys),
            _ => Err(InvalidValue {
                field: "source",
                value: s.chars().take(40).collect(),
                expected: "HS IYS",
            }),
        }
    }
}

/// One logged change, compact until rendered.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub created: ConsentTime,
    pub recipient: Box<str>,
    pub recipient_type: RecipientType,
    pub channel: Channel,
    pub status: Status,
    pub consent_date: Option<ConsentTime>,
    pub source: Option<Source>,
    pub transaction_id: Box<str>,
    pub retailer_code: Option<u32>,
    pub retailer_access: Box<[u32]>,
}

impl Entry {
    pub(crate) fn new(record: &ConsentRecord, created: ConsentTime, transaction_id: &str) -> Self {
        Entry {
            created,
            recipient: record.address.to_string().into_boxed_str(),
            recipient_type: record.recipient_type,
            channel: record.channel,
            status: record.status,
            consent_date: record.consent_date,
            source: record.source,
            transaction_id: transaction_id.into(),
            retailer_code: record.retailer_code,
            retailer_access: record.retailer_access.clone().into_boxed_slice(),
        }
    }

    fn to_change(&self) -> Change {
        Change {
            consent_date: self.consent_date.map(|d| d.to_string()).unwrap_or_default(),
            creation_date: self.created.to_string(),
            source: self
                .source
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            recipient: self.recipient.to_string(),
            recipient_type: self.recipient_type.as_str().to_string(),
            status: self.status.as_str().to_string(),
            channel: self.channel.as_str().to_string(),
            transaction_id: self.transaction_id.to_string(),
            retailer_code: self.retailer_code,
            retailer_access: (!self.retailer_access.is_empty())
                .then(|| self.retailer_access.to_vec()),
        }
    }
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CursorError {
    #[error("after {0:?} is not a cursor: pass the `after` value of a previous page unchanged")]
    Malformed(String),
    #[error("after {0:?} was not issued for this brand and feed by this registry instance (it restarted, or the cursor belongs to another feed): start again without `after`")]
    Foreign(String),
}

/// Seals log positions into cursors for one emulator instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CursorSeal {
    nonce: u64,
}

impl CursorSeal {
    pub(crate) fn new(nonce: u64) -> Self {
        CursorSeal { nonce }
    }

    fn check(&self, brand: Brand, feed: FeedSource, position: u64) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.nonce.to_le_bytes());
        h.update(&brand.iys_code.to_le_bytes());
        h.update(&brand.brand_code.to_le_bytes());
        h.update(feed.as_str().as_bytes());
        h.update(&position.to_le_bytes());
        h.finalize()
    }

    /// The opaque cursor for a position: 16 hex digits of position, 8 of check.
    pub(crate) fn seal(&self, brand: Brand, feed: FeedSource, position: u64) -> String {
        format!("{position:016x}{:08x}", self.check(brand, feed, position))
    }

    /// The position a cursor names.
    pub(crate) fn open(
        &self,
        brand: Brand,
        feed: FeedSource,
        cursor: &str,
    ) -> Result<u64, CursorError> {
        let shown = || cursor.chars().take(40).collect::<String>();
        if cursor.len() != 24 || !cursor.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CursorError::Malformed(shown()));
        }
        let (pos, check) = cursor.split_at(16);
        let pos = u64::from_str_radix(pos, 16).map_err(|_| CursorError::Malformed(shown()))?;
        let check = u32::from_str_radix(check, 16).map_err(|_| CursorError::Malformed(shown()))?;
        if check != self.check(brand, feed, pos) {
            return Err(CursorError::Foreign(shown()));
        }
        Ok(pos)
    }
}

/// The log: `entries[i]` has position `base + i`.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    base: u64,
    entries: VecDeque<Entry>,
}

impl Feed {
    pub(crate) fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }

    /// Drop changes created before `oldest`.
    pub(crate) fn prune(&mut self, oldest: ConsentTime) {
        while self.entries.front().is_some_and(|e| e.created < oldest) {
            self.entries.pop_front();
            self.base += 1;
        }
    }

    /// One past the newest position.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Up to `limit` changes from position `from` (clamped to the kept window),
    /// stopping at the first change created after `newest`. Returns the
    /// changes and the position after the last one.
    pub(crate) fn read(&self, from: u64, limit: usize, newest: ConsentTime) -> (Vec<Change>, u64) {
        let start = from.max(self.base);
        let skip = usize::try_from(start - self.base)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        let list: Vec<Change> = self
            .entries
            .range(skip..)
            .take(limit)
            .take_while(|e| e.created <= newest)
            .map(Entry::to_change)
            .collect();
        let next = start + list.len() as u64;
        (list, next)
    }

    /// Every kept change created in `[from, to)`, with its creation time (the
    /// movement file's rows).
    pub(crate) fn created_between(
        &self,
        from: ConsentTime,
        to: ConsentTime,
    ) -> Vec<(ConsentTime, Change)> {
        self.entries
            .iter()
            .filter(|e| e.created >= from && e.created < to)
            .map(|e| (e.created, e.to_change()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_refusals() {
        let seal = CursorSeal::new(99);
        let brand = Brand::new(700001, 1);
        let c = seal.seal(brand, FeedSource::Iys, 12345);
        assert_eq!(seal.open(brand, FeedSource::Iys, &c), Ok(12345));
        assert!(matches!(
            seal.open(brand, FeedSource::Hs, &c),
            Err(CursorError::Foreign(_))
        ));
        assert!(matches!(
            CursorSeal::new(98).open(brand, FeedSource::Iys, &c),
            Err(CursorError::Foreign(_))
        ));
        assert!(matches!(
            seal.open(brand, FeedSource::Iys, "xyz"),
            Err(CursorError::Malformed(_))
        ));
    }
}
