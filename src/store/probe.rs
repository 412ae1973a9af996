//! Lookup timing on a loaded snapshot: the figures `iys-gate snapshot bench`
//! prints and the criterion bench reuses. Two workloads:
//!
//! - **hot**: one brand's MESAJ/BIREYSEL set (a campaign), addresses drawn from a
//!   small working set, half with consent and half without;
//! - **random**: any brand, channel and recipient type, any Turkish mobile
//!   number: every lookup a likely cache miss.
//!
//! Each sample times a batch of lookups; the median over samples is reported,
//! with the 10th and 90th percentiles as the spread. Samples are short (1000
//! lookups: ~50 µs hot, ~0.5 ms random) and many (2000): on a shared machine
//! a sample the scheduler or a neighbour interrupts is an outlier the median
//! ignores, where a 10 ms sample would almost always contain one and shift
//! the median itself. One untimed pass warms the caches first (the hot
//! workload is meant to find its lines in cache, as a campaign does).

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

/// Nanoseconds per lookup over a run's samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Median sample.
    pub median: f64,
    /// 10th percentile sample.
    pub p10: f64,
    /// 90th percentile sample.
    pub p90: f64,
    /// Timed lookups that found consent.
    pub hits: usize,
}

/// Run the workload `samples` times in batches of `batch` (after one
/// untimed pass over it); nanoseconds per lookup, and how many timed
/// lookups found consent.
pub fn time(s: &Snapshot, w: &Workload, samples: usize, batch: usize) -> Timing {
    let (samples, batch) = (samples.max(1), batch.max(1));
    if w.lookups.is_empty() {
        return Timing::default();
    }
    let run = |at: &mut usize, n: usize| {
        let mut hits = 0usize;
        for _ in 0..n {
            let (b, ch, rt, key) = w.lookups[*at];
            *at = (*at + 1) % w.lookups.len();
            if black_box(s.find(b, ch, rt, key, None)) == Some(super::Found::Consent) {
                hits += 1;
            }
        }
        hits
    };
    let mut at = 0usize;
    run(&mut at, w.lookups.len().min(samples * batch));
    let mut per_lookup: Vec<f64> = Vec::with_capacity(samples);
    let mut hits = 0usize;
    for _ in 0..samples {
        let started = Instant::now();
        hits += run(&mut at, batch);
        per_lookup.push(started.elapsed().as_nanos() as f64 / batch as f64);
    }
    per_lookup.sort_by(|a, b| a.total_cmp(b));
    let at = |q: usize| per_lookup[(per_lookup.len() * q / 100).min(per_lookup.len() - 1)];
    Timing {
        median: at(50),
        p10: at(10),
        p90: at(90),
        hits,
    }
}
