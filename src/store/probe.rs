//! Lookup timing on a loaded snapshot: the figures `iys-gate snapshot bench`
//! prints and the criterion bench reuses. Two workloads:
//!
//! - **hot**: one brand's MESAJ/BIREYSEL set (a campaign), addresses drawn from a
//!   small working set, half with consent and half without;
//! - **random**: any brand, channel and recipient type, any Turkish mobile
//!   number: every lookup a likely cache miss.
//!
//! Each sample times a batch of lookups; the median over samples is reported.

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::snapshot::{key_index, Snapshot};
use crate::consent::{AddressKey, Brand, Channel, RecipientType};

/// One workload's lookups and the brand/key they go to.
pub struct Workload {
    /// (brand, channel, recipient type, address) per lookup.
    pub lookups: Vec<(Brand, Channel, RecipientType, AddressKey)>,
}

/// The brand with the most MESAJ/BIREYSEL consents.
pub fn hottest_brand(s: &Snapshot) -> Option<Brand> {
    let k = key_index(Channel::Mesaj, RecipientType::Bireysel);
    s.brand_entries()
        .max_by_key(|(b, e)| (e.sets[k].onay_len(), std::cmp::Reverse(**b)))
        .map(|(b, _)| *b)
}

/// The hot workload: `n` lookups in the hottest brand, half members.
pub fn hot(s: &Snapshot, n: usize, seed: u64) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let Some(brand) = hottest_brand(s) else {
        return Workload {
            lookups: Vec::new(),
        };
    };
    let k = key_index(Channel::Mesaj, RecipientType::Bireysel);
    let members: Vec<u32> = s
        .brand(brand)
        .map(|e| {
            e.sets[k]
                .onay_ids()
                .filter(|id| *id < 4_000_000_000)
                .step_by(97)
                .take(n)
                .collect()
        })
        .unwrap_or_default();
    let lookups = (0..n)
        .map(|i| {
            let id = if i % 2 == 0 && !members.is_empty() {
                members[rng.gen_range(0..members.len())]
            } else {
                rng.gen_range(3_000_000_000..3_600_000_000)
            };
            (
                brand,
                Channel::Mesaj,
                RecipientType::Bireysel,
                AddressKey::TrPhone(id),
            )
        })
        .collect();
    Workload { lookups }
}

/// The random workload: `n` lookups over all brands and keys.
pub fn random(s: &Snapshot, n: usize, seed: u64) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let brands = s.brands();
    if brands.is_empty() {
        return Workload {
            lookups: Vec::new(),
        };
    }
    let lookups = (0..n)
        .map(|_| {
            let b = brands[rng.gen_range(0..brands.len())];
            let ch = if rng.gen_bool(0.5) {
                Channel::Mesaj
            } else {
                Channel::Arama
            };
            let rt = if rng.gen_bool(0.9) {
                RecipientType::Bireysel
            } else {
                RecipientType::Tacir
            };
            (
                b,
                ch,
                rt,
                AddressKey::TrPhone(rng.gen_range(3_000_000_000..3_600_000_000)),
            )
        })
        .collect();
    Workload { lookups }
}

/// Run the workload `samples` times in batches of `batch`; the median
/// nanoseconds per lookup, and how many lookups found consent.
pub fn median_ns(s: &Snapshot, w: &Workload, samples: usize, batch: usize) -> (f64, usize) {
    let mut per_lookup: Vec<f64> = Vec::with_capacity(samples);
    let mut hits = 0usize;
    if w.lookups.is_empty() {
        return (0.0, 0);
    }
    let mut at = 0usize;
    for _ in 0..samples {
        let started = Instant::now();
        for _ in 0..batch {
            let (b, ch, rt, key) = w.lookups[at];
            at = (at + 1) % w.lookups.len();
            if black_box(s.find(b, ch, rt, key, None)) == Some(super::Found::Consent) {
                hits += 1;
            }
        }
        per_lookup.push(started.elapsed().as_nanos() as f64 / batch as f64);
    }
    per_lookup.sort_by(|a, b| a.total_cmp(b));
    (per_lookup[per_lookup.len() / 2], hits)
}
