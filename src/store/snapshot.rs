//! An immutable view of every brand's consent state. Readers hold an `Arc` to one
//! snapshot per message; sync builds the next one with [`SnapshotEdit`] and
//! publishes it whole. Unchanged brands and key sets are shared, not copied.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::arena::{self, ArenaUsage, Packer};
use super::dictionary::{Dictionary, DictionaryFull};
use super::keyset::{ApplyCounts, Found, KeyChange, KeySet};
use crate::consent::{AddressKey, Brand, Channel, ConsentRecord, ConsentTime, RecipientType};

/// Ids of foreign numbers start here (Turkish numbers use 0..4e9).
pub const FOREIGN_ID_BASE: u32 = 4_000_000_000;

/// Number of (channel, recipient type) keys per brand.
pub const KEYS_PER_BRAND: usize = 6;

/// Index of a (channel, recipient type) key within a brand.
#[inline]
pub const fn key_index(channel: Channel, rtype: RecipientType) -> usize {
    channel.index() * 2 + rtype.index()
}

/// The (channel, recipient type) of a key index.
pub fn key_of_index(i: usize) -> (Channel, RecipientType) {
    (Channel::ALL[i / 2], RecipientType::ALL[i % 2])
}

/// Where a brand's data came from and how current it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// Change feed cursor for `source=HS`.
    pub cursor_hs: Option<String>,
    /// Change feed cursor for `source=IYS`.
    pub cursor_iys: Option<String>,
    /// The data is known current as of this time (export time, or last
    /// complete poll of both feeds).
    pub synced_at: Option<ConsentTime>,
    /// Changes applied from the registry since the base was built.
    pub changes_applied: u64,
}

/// One brand's consent sets and sync state.
#[derive(Debug, Clone, Default)]
pub struct BrandEntry {
    /// Sets by [`key_index`].
    pub sets: [KeySet; KEYS_PER_BRAND],
    /// Sync state.
    pub sync: SyncState,
}

impl BrandEntry {
    /// Describe each ARAMA ONAY set against the MESAJ ONAY set of the same
    /// recipient type when that is smaller (see [`KeySet::rebase`]). A set
    /// described against an older MESAJ set is always re-described; an own
    /// set only when `force` says so for its recipient type (re-deriving costs
    /// a pass over both sets, so it is done at build time and after
    /// compactions, not on every change).
    pub fn relink(&mut self, force: [bool; 2]) {
        for (rt, force) in force.iter().enumerate() {
            let mesaj = key_index(Channel::Mesaj, RecipientType::ALL[rt]);
            let arama = key_index(Channel::Arama, RecipientType::ALL[rt]);
            let super::keyset::BaseSet::Own(of) = self.sets[mesaj].known() else {
                continue;
            };
            let of = of.clone();
            let current = matches!(self.sets[arama].known().derived_from(), Some(o) if o.same(&of));
            let stale = self.sets[arama].known().derived_from().is_some() && !current;
            if stale || (*force && !current) {
                self.sets[arama] = self.sets[arama].rebase(&of);
            }
        }
    }

    /// Hand the sets' arrays to `p`.
    pub fn place_arrays(&mut self, p: &mut Packer) {
        for set in &mut self.sets {
            set.place_arrays(p);
        }
    }
}

/// Everything the gate decides from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases by one with every publish.
    pub version: u64,
    /// When this version was made.
    pub published_at: ConsentTime,
    pub(crate) brands: FxHashMap<Brand, Arc<BrandEntry>>,
    pub(crate) emails: Dictionary,
    pub(crate) foreign: Dictionary,
}

/// What an edit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EditReport {
    /// Records that took effect.
    pub applied: u64,
    /// Records ignored because a newer one was held.
    pub older: u64,
    /// Records for brands the snapshot does not hold.
    pub unknown_brand: u64,
}

impl Snapshot {
    /// The brand's entry.
    #[inline]
    pub fn brand(&self, brand: Brand) -> Option<&BrandEntry> {
        self.brands.get(&brand).map(|b| &**b)
    }

    /// Brands held, sorted.
    pub fn brands(&self) -> Vec<Brand> {
        let mut v: Vec<Brand> = self.brands.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The id of an address on a channel, if the store can know it. An address
    /// of the wrong kind for the channel has none.
    #[inline]
    pub fn address_id(&self, channel: Channel, key: AddressKey) -> Option<u32> {
        match (channel.is_phone(), key) {
            (true, AddressKey::TrPhone(id)) => Some(id),
            (true, AddressKey::ForeignPhone(d)) => self.foreign.get(d).map(|i| FOREIGN_ID_BASE + i),
            (false, AddressKey::Email(h)) => self.emails.get(h),
            _ => None,
        }
    }

    /// What is known of an address for a brand, channel and recipient type;
    /// `None` when the brand is unknown.
    #[inline]
    pub fn find(
        &self,
        brand: Brand,
        channel: Channel,
        rtype: RecipientType,
        key: AddressKey,
        retailer: Option<u32>,
    ) -> Option<Found> {
        let entry = self.brands.get(&brand)?;
        Some(self.find_in(entry, channel, rtype, key, retailer))
    }

    /// [`Self::find`] in a brand's entry already looked up (with
    /// [`Self::brand`]), so a decision hashes the brand once.
    #[inline]
    pub fn find_in(
        &self,
        entry: &BrandEntry,
        channel: Channel,
        rtype: RecipientType,
        key: AddressKey,
        retailer: Option<u32>,
    ) -> Found {
        match self.address_id(channel, key) {
            Some(id) => entry.sets[key_index(channel, rtype)].find(id, retailer),
            None => Found::Unknown,
        }
    }

    /// Records held per channel (ONAY + RET), over all brands.
    pub fn tuples_per_channel(&self) -> [u64; 3] {
        let mut out = [0u64; 3];
        for entry in self.brands.values() {
            for (i, set) in entry.sets.iter().enumerate() {
                let (onay, ret) = set.tuples();
                out[key_of_index(i).0.index()] += onay + ret;
            }
        }
        out
    }

    /// Move every set's and dictionary's arrays into one new huge-page
    /// arena (see [`super::arena`]): what makes a random lookup's cache
    /// misses cheap. False, changing nothing, when the store is too small
    /// to gain, the arena is switched off (`IYS_GATE_HUGE_PAGES=off`) or the
    /// mapping fails. Arrays this snapshot shares with another (an older
    /// version still read) are copied, not moved: then the memory is needed
    /// twice until the other is dropped.
    pub fn pack(&mut self) -> bool {
        self.pack_above(arena::MIN_PACK_BYTES)
    }

    /// [`Snapshot::pack`] when the arrays total at least `min_bytes`.
    pub(crate) fn pack_above(&mut self, min_bytes: usize) -> bool {
        arena::pack(self, min_bytes, Snapshot::survey, Snapshot::place_arrays)
    }

    /// This snapshot packed ([`Snapshot::pack`]) if that pays
    /// ([`ArenaUsage::wants_repack`]: not when it was built in an arena
    /// already), and the heap memory its arrays used handed back to the OS.
    pub fn packed(mut self) -> Snapshot {
        if self.arena_usage().wants_repack() && self.pack() {
            arena::release_free_heap();
        }
        self
    }

    /// Where the arrays live: heap or arena, and how much of the arenas they
    /// still use (sets rebuilt by sync since the last pack are on the heap,
    /// and the arena copies they replaced are dead weight until the next
    /// pack; see [`ArenaUsage::wants_repack`]).
    pub fn arena_usage(&self) -> ArenaUsage {
        arena::usage(self, Snapshot::survey)
    }

    /// Show every array to `p` without changing the snapshot (on copies of
    /// the key sets, which share the arrays).
    fn survey(&self, p: &mut Packer) {
        for entry in self.brands.values() {
            for set in &entry.sets {
                set.clone().place_arrays(p);
            }
        }
        self.emails.clone().place_arrays(p);
        self.foreign.clone().place_arrays(p);
    }

    /// Hand every array to `p`, brands in a fixed order (so the arena's
    /// layout does not depend on the hash map's). An entry shared with
    /// another snapshot is copied first (`Arc::make_mut`); one held only
    /// here is changed in place.
    fn place_arrays(&mut self, p: &mut Packer) {
        let mut brands: Vec<(&Brand, &mut Arc<BrandEntry>)> = self.brands.iter_mut().collect();
        brands.sort_unstable_by_key(|b| *b.0);
        for (_, entry) in brands {
            Arc::make_mut(entry).place_arrays(p);
        }
        self.emails.place_arrays(p);
        self.foreign.place_arrays(p);
    }

    /// Bytes held by sets and dictionaries (on the heap or in the arena).
    pub fn heap_bytes(&self) -> usize {
        self.emails.heap_bytes()
            + self.foreign.heap_bytes()
            + self
                .brands
                .values()
                .map(|b| b.sets.iter().map(KeySet::heap_bytes).sum::<usize>() + 256)
                .sum::<usize>()
    }

    /// Start the next version.
    pub fn edit(&self) -> SnapshotEdit {
        SnapshotEdit {
            next: self.clone(),
            report: EditReport::default(),
        }
    }

    /// The e-mail dictionary.
    pub fn emails(&self) -> &Dictionary {
        &self.emails
    }

    /// The foreign number dictionary.
    pub fn foreign(&self) -> &Dictionary {
        &self.foreign
    }
}

/// A snapshot being changed; `publish` turns it into the next version.
pub struct SnapshotEdit {
    next: Snapshot,
    report: EditReport,
}

/// How long a change keeps its date in the delta before it may be compacted.
pub const DEFAULT_REORDER_WINDOW_SECS: i64 = 900;

impl SnapshotEdit {
    /// Make sure a brand exists (empty if new).
    pub fn add_brand(&mut self, brand: Brand) -> &mut Self {
        self.next.brands.entry(brand).or_default();
        self
    }

    /// Drop a brand and its data; false when it was not held.
    pub fn remove_brand(&mut self, brand: Brand) -> bool {
        self.next.brands.remove(&brand).is_some()
    }

    /// Replace a brand's sync state.
    pub fn set_sync(&mut self, brand: Brand, sync: SyncState) -> &mut Self {
        if let Some(entry) = self.next.brands.get_mut(&brand) {
            Arc::make_mut(entry).sync = sync;
        }
        self
    }

    /// Apply records (any order; per tuple the newest consent date wins).
    /// Records for brands not held are counted and skipped.
    pub fn apply(
        &mut self,
        records: &[ConsentRecord],
        now: ConsentTime,
    ) -> Result<&mut Self, DictionaryFull> {
        let mut grouped: FxHashMap<(Brand, usize), Vec<KeyChange>> = FxHashMap::default();
        for r in records {
            if !self.next.brands.contains_key(&r.brand) {
                self.report.unknown_brand += 1;
                continue;
            }
            let id = match r.address.key() {
                AddressKey::TrPhone(id) => id,
                AddressKey::ForeignPhone(d) => {
                    FOREIGN_ID_BASE
                        + self
                            .next
                            .foreign
                            .get_or_insert(d, u64::from(u32::MAX - FOREIGN_ID_BASE) + 1)?
                }
                AddressKey::Email(h) => self.next.emails.get_or_insert(h, 1 << 32)?,
            };
            grouped
                .entry((r.brand, key_index(r.channel, r.recipient_type)))
                .or_default()
                .push(KeyChange {
                    id,
                    status: r.status,
                    date: r.consent_date.map_or(0, ConsentTime::unix),
                    access: r.retailer_access.clone().into_boxed_slice(),
                });
        }
        for ((brand, idx), mut changes) in grouped {
            // Newest per id; on equal dates the later record wins (stable sort).
            changes.sort_by_key(|c| (c.id, c.date));
            let mut newest: Vec<KeyChange> = Vec::with_capacity(changes.len());
            for c in changes {
                match newest.last_mut() {
                    Some(last) if last.id == c.id => {
                        *last = c;
                        self.report.older += 1;
                    }
                    _ => newest.push(c),
                }
            }
            let Some(entry) = self.next.brands.get_mut(&brand) else {
                continue;
            };
            let entry = Arc::make_mut(entry);
            let (
                set,
                ApplyCounts {
                    applied,
                    older,
                    compacted,
                },
            ) = entry.sets[idx].apply(&newest, now.unix(), DEFAULT_REORDER_WINDOW_SECS);
            // A compaction rebuilt the base: re-describe ARAMA against MESAJ.
            entry.sets[idx] = set;
            if compacted {
                let (channel, rtype) = key_of_index(idx);
                if matches!(channel, Channel::Mesaj | Channel::Arama) {
                    let mut force = [false; 2];
                    force[rtype.index()] = channel == Channel::Arama;
                    entry.relink(force);
                }
            }
            entry.sync.changes_applied += applied;
            self.report.applied += applied;
            self.report.older += older;
        }
        Ok(self)
    }

    /// The state being edited (the base with what was applied so far), so a
    /// writer can check what it is about to change under the write turn.
    pub fn current(&self) -> &Snapshot {
        &self.next
    }

    /// What the edit did so far.
    pub fn report(&self) -> &EditReport {
        &self.report
    }

    /// The next version.
    pub fn publish(mut self, now: ConsentTime) -> Snapshot {
        self.next.version += 1;
        self.next.published_at = now;
        self.next
    }
}

impl Snapshot {
    /// Assemble a snapshot from parts (the builder and the file reader).
    pub(crate) fn from_parts(
        version: u64,
        published_at: ConsentTime,
        brands: FxHashMap<Brand, Arc<BrandEntry>>,
        emails: Dictionary,
        foreign: Dictionary,
    ) -> Snapshot {
        Snapshot {
            version,
            published_at,
            brands,
            emails,
            foreign,
        }
    }

    /// Brand entries (for the file writer and status).
    pub fn brand_entries(&self) -> impl Iterator<Item = (&Brand, &BrandEntry)> {
        self.brands.iter().map(|(b, e)| (b, &**e))
    }
}
