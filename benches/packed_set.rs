//! `PackedSet::contains` against plain roaring, on the synthetic shapes of the
//! consent store: one big hot set, and many mid-sized sets hit at random.
//!
//! Run: `cargo bench --bench packed_set` (set `PACKED_BENCH_SETS` to build
//! fewer than 10 000 random sets on a small machine). Every lookup depends on
//! the previous result, so the numbers are latencies, not overlapped throughput.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use iys_gate::store::packed::PackedSet;
use roaring::RoaringBitmap;

/// Mobile numbers 50x–55x as ids (national number − 2 000 000 000).
const MOBILE_LO: u32 = 3_000_000_000;
const MOBILE_SPAN: u64 = 600_000_000;
const BIG_SET: usize = 5_000_000;
const SMALL_SET: usize = 20_000;
/// Roaring copies of the random sets are kept only for this many (memory).
const ROARING_SETS: usize = 2_000;
const HOT_QUERIES: usize = 1 << 10;
const RANDOM_QUERIES: usize = 1 << 20;

/// splitmix64, so the data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn mobile(&mut self) -> u32 {
        MOBILE_LO + self.below(MOBILE_SPAN) as u32
    }
}

/// `n` distinct ids uniformly spread over the mobile range, ascending.
fn mobile_ids(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let missing = n - ids.len();
        ids.extend((0..missing).map(|_| rng.mobile()));
        ids.sort_unstable();
        ids.dedup();
    }
    ids
}

fn roaring_of(ids: &[u32]) -> RoaringBitmap {
    let mut rb = RoaringBitmap::from_sorted_iter(ids.iter().copied()).expect("sorted");
    rb.optimize();
    rb
}

/// Roaring's values plus ~48 bytes per container (struct + allocation).
fn roaring_heap(rb: &RoaringBitmap) -> usize {
    let s = rb.statistics();
    s.n_values_array_containers as usize * 2
        + s.n_bitset_containers as usize * 8192
        + s.n_bytes_run_containers as usize
        + s.n_containers as usize * 48
}

/// Looks up `queries` in a dependent chain (next index depends on the answer).
fn chase<F: Fn(usize, u32) -> bool>(queries: &[(usize, u32)], i: &mut usize, f: F) -> bool {
    let (s, id) = queries[*i];
    let hit = f(s, id);
    *i = (*i + 1 + hit as usize) & (queries.len() - 1);
    hit
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x1f5_6a7e);
    let n_sets: usize = std::env::var("PACKED_BENCH_SETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);

    // (a) one big set, 5 million ids over the mobile range (density ~1/120).
    let a_ids = mobile_ids(&mut rng, BIG_SET);
    let t = Instant::now();
    let a = PackedSet::from_sorted(&a_ids).expect("sorted");
    let a_build = t.elapsed();
    let a_rb = roaring_of(&a_ids);
    let hot: Vec<(usize, u32)> = (0..HOT_QUERIES)
        .map(|k| {
            let id = if k % 2 == 0 {
                a_ids[rng.below(a_ids.len() as u64) as usize]
            } else {
                rng.mobile()
            };
            (0, id)
        })
        .collect();
    let n = a_ids.len() as f64;
    eprintln!(
        "(a) {} ids, {:?}, built in {a_build:.2?}: packed {:.3} B/id in memory, {:.3} B/id serialized; \
         roaring {:.3} B/id serialized, ~{:.3} B/id in memory",
        a.len(),
        a.representation(),
        a.heap_bytes() as f64 / n,
        a.serialized_size() as f64 / n,
        a_rb.serialized_size() as f64 / n,
        roaring_heap(&a_rb) as f64 / n,
    );
    drop(a_ids);

    // (b) many sets of 20 000 ids each; keep a few members of each for hits.
    let mut sets = Vec::with_capacity(n_sets);
    let mut members = Vec::with_capacity(n_sets);
    let mut rbs = Vec::new();
    let (mut packed_heap, mut packed_ser, mut rb_ser, mut rb_heap, mut rb_ids) = (0, 0, 0, 0, 0);
    for s in 0..n_sets {
        let ids = mobile_ids(&mut rng, SMALL_SET);
        let set = PackedSet::from_sorted(&ids).expect("sorted");
        packed_heap += set.heap_bytes();
        packed_ser += set.serialized_size();
        if s < ROARING_SETS {
            let rb = roaring_of(&ids);
            rb_ser += rb.serialized_size();
            rb_heap += roaring_heap(&rb);
            rb_ids += ids.len();
            rbs.push(rb);
        }
        members.push(
            (0..16)
                .map(|_| ids[rng.below(ids.len() as u64) as usize])
                .collect::<Vec<_>>(),
        );
        sets.push(set);
    }
    let total = (n_sets * SMALL_SET) as f64;
    eprintln!(
        "(b) {n_sets} sets x {SMALL_SET} ids: packed {:.3} B/id in memory, {:.3} B/id serialized; \
         roaring ({} sets) {:.3} B/id serialized, ~{:.3} B/id in memory",
        packed_heap as f64 / total,
        packed_ser as f64 / total,
        rbs.len(),
        rb_ser as f64 / rb_ids as f64,
        rb_heap as f64 / rb_ids as f64,
    );
    let mut random_queries = |limit: usize| -> Vec<(usize, u32)> {
        (0..RANDOM_QUERIES)
            .map(|k| {
                let s = rng.below(limit as u64) as usize;
                let id = if k % 2 == 0 {
                    members[s][rng.below(16) as usize]
                } else {
                    rng.mobile()
                };
                (s, id)
            })
            .collect()
    };
    let random_all = random_queries(n_sets);
    let random_rb = random_queries(rbs.len());

    let mut g = c.benchmark_group("contains_hot_5M");
    let mut i = 0;
    g.bench_function("packed", |b| {
        b.iter(|| chase(&hot, &mut i, |_, id| black_box(&a).contains(id)))
    });
    g.bench_function("roaring", |b| {
        b.iter(|| chase(&hot, &mut i, |_, id| black_box(&a_rb).contains(id)))
    });
    g.finish();

    let mut g = c.benchmark_group("contains_random_set");
    g.bench_function(format!("packed_{n_sets}_sets"), |b| {
        b.iter(|| chase(&random_all, &mut i, |s, id| sets[s].contains(id)))
    });
    if rbs.len() < n_sets {
        g.bench_function(format!("packed_{}_sets", rbs.len()), |b| {
            b.iter(|| chase(&random_rb, &mut i, |s, id| sets[s].contains(id)))
        });
    }
    g.bench_function(format!("roaring_{}_sets", rbs.len()), |b| {
        b.iter(|| chase(&random_rb, &mut i, |s, id| rbs[s].contains(id)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
