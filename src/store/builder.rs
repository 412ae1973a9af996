//! Builds a snapshot from a full export (CSV rows, or the generator directly):
//! per key, sort the records by (address, consent date) and keep the newest.

use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::dictionary::Dictionary;
use super::keyset::KeySet;
use super::snapshot::{key_index, BrandEntry, Snapshot, SyncState, FOREIGN_ID_BASE};
use crate::consent::{AddressKey, Brand, ConsentRecord, ConsentTime, Status};

/// Address kinds in a raw entry before ids are assigned.
const KIND_TR: u8 = 0;
const KIND_FOREIGN: u8 = 1;
const KIND_EMAIL: u8 = 2;

#[derive(Clone, Copy)]
struct Raw {
    key: u64,
    /// Unix seconds of the consent date (0 when absent).
    date: i64,
    /// Index into `access_lists` + 1, or 0.
    access: u32,
    kind: u8,
    status: Status,
}

/// Accumulates records, then builds a snapshot.
#[derive(Default)]
pub struct SnapshotBuilder {
    keys: FxHashMap<(Brand, usize), Vec<Raw>>,
    access_lists: Vec<Box<[u32]>>,
    brands: Vec<Brand>,
    records: u64,
}

/// Figures from a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Records added.
    pub records: u64,
    /// Distinct tuples kept (newest per tuple).
    pub tuples: u64,
    /// Records superseded by a newer one for the same tuple.
    pub superseded: u64,
}

impl SnapshotBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make a brand exist even if no record names it.
    pub fn add_brand(&mut self, brand: Brand) {
        self.brands.push(brand);
    }

    /// Add one record.
    pub fn add(&mut self, r: &ConsentRecord) {
        let (kind, key) = match r.address.key() {
            AddressKey::TrPhone(id) => (KIND_TR, u64::from(id)),
            AddressKey::ForeignPhone(d) => (KIND_FOREIGN, d),
            AddressKey::Email(h) => (KIND_EMAIL, h),
        };
        let access = if r.retailer_access.is_empty() {
            0
        } else {
            self.access_lists
                .push(r.retailer_access.clone().into_boxed_slice());
            self.access_lists.len() as u32
        };
        self.keys
            .entry((r.brand, key_index(r.channel, r.recipient_type)))
            .or_default()
            .push(Raw {
                key,
                date: r.consent_date.map_or(0, ConsentTime::unix),
                access,
                kind,
                status: r.status,
            });
        self.records += 1;
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Build the snapshot; every brand's data is marked current as of `as_of`.
    pub fn build(self, as_of: ConsentTime) -> (Snapshot, BuildStats) {
        let SnapshotBuilder {
            keys,
            access_lists,
            brands,
            records,
        } = self;
        let mut emails: Vec<u64> = Vec::new();
        let mut foreign: Vec<u64> = Vec::new();
        for raws in keys.values() {
            for r in raws {
                match r.kind {
                    KIND_EMAIL => emails.push(r.key),
                    KIND_FOREIGN => foreign.push(r.key),
                    _ => {}
                }
            }
        }
        emails.par_sort_unstable();
        emails.dedup();
        foreign.par_sort_unstable();
        foreign.dedup();
        let emails = Dictionary::from_sorted(emails);
        let foreign = Dictionary::from_sorted(foreign);

        let keys: Vec<((Brand, usize), Vec<Raw>)> = keys.into_iter().collect();
        let built: Vec<((Brand, usize), KeySet, u64)> = keys
            .into_par_iter()
            .map(|(k, raws)| {
                let (set, kept) = build_key(raws, &emails, &foreign, &access_lists);
                (k, set, kept)
            })
            .collect();

        let mut table: FxHashMap<Brand, BrandEntry> = FxHashMap::default();
        for b in brands {
            table.entry(b).or_default();
        }
        let mut tuples = 0u64;
        for ((brand, idx), set, kept) in built {
            table.entry(brand).or_default().sets[idx] = set;
            tuples += kept;
        }
        let brands = table
            .into_par_iter()
            .map(|(b, mut e)| {
                e.relink([true, true]);
                e.sync = SyncState {
                    synced_at: Some(as_of),
                    ..SyncState::default()
                };
                (b, Arc::new(e))
            })
            .collect();
        let stats = BuildStats {
            records,
            tuples,
            superseded: records - tuples,
        };
        (
            Snapshot::from_parts(1, as_of, brands, emails, foreign).packed(),
            stats,
        )
    }
}

fn build_key(
    mut raws: Vec<Raw>,
    emails: &Dictionary,
    foreign: &Dictionary,
    access_lists: &[Box<[u32]>],
) -> (KeySet, u64) {
    // Assign ids in place (key becomes the id).
    for r in raws.iter_mut() {
        r.key = match r.kind {
            KIND_EMAIL => u64::from(emails.get(r.key).unwrap_or(u32::MAX)),
            KIND_FOREIGN => u64::from(foreign.get(r.key).map_or(u32::MAX, |i| FOREIGN_ID_BASE + i)),
            _ => r.key,
        };
    }
    // Stable: on equal dates the record given later wins.
    raws.sort_by_key(|r| (r.key, r.date));
    // Newest record per id, ascending: (id, is RET).
    let mut records: Vec<(u32, bool)> = Vec::new();
    let mut grants: Vec<(u32, u32)> = Vec::new();
    let mut kept = 0u64;
    let n = raws.len();
    for i in 0..n {
        if i + 1 < n && raws[i + 1].key == raws[i].key {
            continue; // a newer record for this tuple follows
        }
        let r = raws[i];
        kept += 1;
        let id = r.key as u32;
        records.push((id, r.status == Status::Ret));
        // Dealer grants come with ONAY records only.
        if r.status == Status::Onay && r.access > 0 {
            if let Some(list) = access_lists.get(r.access as usize - 1) {
                grants.extend(list.iter().map(|code| (*code, id)));
            }
        }
    }
    drop(raws);
    grants.sort_unstable();
    // Sorted by (retailer, id), so the grant keys come out sorted too.
    let grants: Vec<u64> = grants
        .iter()
        .map(|(r, id)| super::keyset::grant(*r, *id))
        .collect();
    (KeySet::from_records(&records, &grants), kept)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::consent::{AddressKey, Channel};
    use crate::gen::{GenParams, Generator};
    use crate::store::keyset::BaseSet;
    use crate::store::{file, Found};

    /// Every record's answer, from the store and from a plain map of the newest records.
    fn check_against_records(s: &Snapshot, records: &[ConsentRecord]) {
        let mut newest: HashMap<
            (Brand, Channel, crate::consent::RecipientType, AddressKey),
            (i64, Status),
        > = HashMap::new();
        for r in records {
            let k = (r.brand, r.channel, r.recipient_type, r.address.key());
            let d = r.consent_date.map_or(0, ConsentTime::unix);
            match newest.get(&k) {
                Some((old, _)) if *old > d => {}
                _ => {
                    newest.insert(k, (d, r.status));
                }
            }
        }
        for ((b, ch, rt, key), (_, status)) in &newest {
            let want = match status {
                Status::Onay => Found::Consent,
                Status::Ret => Found::Withdrawn,
            };
            assert_eq!(
                s.find(*b, *ch, *rt, *key, None),
                Some(want),
                "{b} {ch} {rt} {key:?}"
            );
            // A neighbouring number the records do not hold is unknown.
            if let AddressKey::TrPhone(id) = key {
                let next = AddressKey::TrPhone(id + 1);
                if !newest.contains_key(&(*b, *ch, *rt, next)) {
                    assert_eq!(s.find(*b, *ch, *rt, next, None), Some(Found::Unknown));
                }
            }
        }
    }

    /// 60 000 generated records over 5 brands, and the snapshot built from them.
    fn generated(seed: u64) -> (Vec<ConsentRecord>, Snapshot) {
        let generator = Generator::new(&GenParams::new(60_000, 5, seed)).unwrap();
        let records: Vec<ConsentRecord> = generator.records().collect();
        let mut b = SnapshotBuilder::new();
        for r in &records {
            b.add(r);
        }
        let (s, _) = b.build(ConsentTime(1_800_000_000));
        (records, s)
    }

    /// The brand with the most addresses in its first key.
    fn biggest_brand(s: &Snapshot) -> crate::consent::Brand {
        s.brand_entries()
            .max_by_key(|(_, e)| e.sets[0].known().len())
            .map(|(b, _)| *b)
            .unwrap()
    }

    #[test]
    fn packed_into_an_arena_answers_like_the_records() {
        use crate::store::arena::{self, HugePages};
        let (records, s) = generated(4);
        assert!(
            !s.arena_usage().wants_repack(),
            "a small store stays on the heap"
        );
        let mut packed = s.clone();
        if arena::huge_pages() == HugePages::Off {
            assert!(!packed.pack_above(0));
            return;
        }
        assert!(packed.pack_above(0));
        let usage = packed.arena_usage();
        assert_eq!(usage.heap, 0, "{usage:?}");
        assert_eq!(usage.in_arenas, s.arena_usage().heap);
        assert_eq!(usage.arena_capacity % arena::HUGE_PAGE, 0);
        for (_, e) in packed.brand_entries() {
            if let (BaseSet::Own(mesaj), Some(of)) =
                (e.sets[0].known(), e.sets[2].known().derived_from())
            {
                assert!(
                    mesaj.same(of) && of.in_arena(),
                    "shared MESAJ set stays shared"
                );
            }
        }
        check_against_records(&packed, &records);
        check_against_records(&s, &records);
        let bytes = file::to_bytes(&s);
        assert_eq!(file::to_bytes(&packed), bytes, "same snapshot file");

        // Parsed straight into an arena, as `file::read` does for big files.
        let loaded = arena::build_in_arena(2 * bytes.len(), || file::from_bytes(&bytes)).unwrap();
        assert_eq!(loaded.arena_usage().heap, 0);
        check_against_records(&loaded, &records);

        // A compaction puts the rebuilt sets on the heap; answers stay right.
        let big = biggest_brand(&packed);
        let mut changes: Vec<ConsentRecord> = records
            .iter()
            .filter(|r| r.brand == big && r.channel == Channel::Mesaj)
            .take(3000)
            .cloned()
            .collect();
        for r in changes.iter_mut() {
            r.status = Status::Ret;
            r.consent_date = Some(ConsentTime(1_795_000_000));
        }
        let mut e = packed.edit();
        e.apply(&changes, ConsentTime(1_800_000_000)).unwrap();
        let mid = e.publish(ConsentTime(1_800_000_000));
        let mut e = mid.edit();
        e.apply(&changes[..1], ConsentTime(1_800_010_000)).unwrap();
        let mut after = e.publish(ConsentTime(1_800_010_000));
        assert!(
            after.arena_usage().heap > 0,
            "compacted sets are on the heap"
        );
        let mut all = records.clone();
        all.extend(changes.iter().cloned());
        check_against_records(&after, &all);
        assert!(after.pack_above(0));
        assert_eq!(after.arena_usage().heap, 0);
        check_against_records(&after, &all);
    }

    #[test]
    fn arama_described_against_mesaj_answers_like_the_records() {
        let (records, s) = generated(3);
        let derived = s
            .brand_entries()
            .filter(|(_, e)| {
                matches!(
                    e.sets[key_index(Channel::Arama, crate::consent::RecipientType::Bireysel)]
                        .known(),
                    BaseSet::Derived { .. }
                )
            })
            .count();
        assert!(
            derived > 0,
            "overlapping ARAMA sets are stored relative to MESAJ"
        );
        check_against_records(&s, &records);

        // Through the snapshot file.
        let back = file::from_bytes(&file::to_bytes(&s)).unwrap();
        check_against_records(&back, &records);

        // Enough changes to compact the biggest brand's MESAJ and ARAMA sets:
        // the answers stay right and ARAMA is re-described against the new MESAJ set.
        let big = biggest_brand(&s);
        let mut changes: Vec<ConsentRecord> = records
            .iter()
            .filter(|r| r.brand == big && r.channel != Channel::Eposta)
            .take(8000)
            .cloned()
            .collect();
        for r in changes.iter_mut() {
            r.status = match r.status {
                Status::Onay => Status::Ret,
                Status::Ret => Status::Onay,
            };
            r.consent_date = Some(ConsentTime(1_795_000_000)); // after every generated date
        }
        let mut e = back.edit();
        e.apply(&changes, ConsentTime(1_800_000_000)).unwrap();
        let mid = e.publish(ConsentTime(1_800_000_000));
        // Past the reorder window, the next change to each key folds the delta.
        let mut later: Vec<ConsentRecord> = Vec::new();
        for ch in [Channel::Mesaj, Channel::Arama] {
            let mut r = records
                .iter()
                .find(|r| {
                    r.brand == big
                        && r.channel == ch
                        && r.recipient_type == crate::consent::RecipientType::Bireysel
                })
                .unwrap()
                .clone();
            r.consent_date = Some(ConsentTime(1_796_000_000));
            r.status = Status::Ret;
            later.push(r);
        }
        let mut e = mid.edit();
        e.apply(&later, ConsentTime(1_800_001_000)).unwrap();
        let after = e.publish(ConsentTime(1_800_001_000));
        let mut all = records.clone();
        all.extend(changes);
        all.extend(later);
        check_against_records(&after, &all);
        let entry = after.brand(big).unwrap();
        assert!(
            entry.sets[0].delta().len() <= 1 && entry.sets[2].delta().len() <= 1,
            "the edit compacted MESAJ and ARAMA"
        );
        assert!(
            entry.sets[2].known().derived_from().is_some(),
            "ARAMA is described against MESAJ again"
        );
        if let (BaseSet::Own(mesaj), Some(of)) =
            (entry.sets[0].known(), entry.sets[2].known().derived_from())
        {
            assert!(mesaj.same(of), "ARAMA follows the current MESAJ set");
        }
        check_against_records(&file::from_bytes(&file::to_bytes(&after)).unwrap(), &all);
    }
}
