//! What the daily reports add to a session's turn: each decision counted in
//! the turn's report tally as well as in the decision tally, and the turn's
//! counts handed to the shared report book under one lock. One turn of 32
//! decisions per iteration (a pipelining SMPP session's read), per-message
//! figures via `Throughput::Elements(32)`; one core, no contention.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iys_gate::consent::{Brand, Channel};
use iys_gate::observe::metrics::{DecisionCounters, DecisionTally};
use iys_gate::observe::report::{ReportBook, ReportConfig, ReportTally};
use iys_gate::policy::{Decision, Reason, Verdict};

const TURN: usize = 32;

fn decision(reason: Reason) -> Decision {
    let verdict = Reason::ALL
        .iter()
        .find(|(_, r)| *r == reason)
        .map_or(Verdict::Allow, |(v, _)| *v);
    Decision {
        verdict,
        reason,
        monitor: false,
        snapshot_version: 7,
        data_age_seconds: Some(10),
    }
}

fn bench(c: &mut Criterion) {
    let counters = DecisionCounters::new();
    let book = ReportBook::open(ReportConfig {
        path: None,
        retention_days: 400,
    });
    // Four in five consented, one in five refused for no consent.
    let turn: Vec<Decision> = (0..TURN)
        .map(|i| {
            decision(if i % 5 == 4 {
                Reason::NoConsent
            } else {
                Reason::Consent
            })
        })
        .collect();
    let one_brand = [Brand::new(700001, 100001)];
    let brands: Vec<Brand> = (0..8).map(|i| Brand::new(700001, 100001 + i)).collect();
    let now = SystemTime::now();

    let mut group = c.benchmark_group("turn_of_32");
    group.throughput(Throughput::Elements(TURN as u64));
    let mut tally = DecisionTally::default();
    group.bench_function("decision_tally_only", |b| {
        b.iter(|| {
            for d in black_box(&turn) {
                tally.record(Channel::Mesaj, d);
            }
            counters.add(&mut tally);
        })
    });
    let mut reports = ReportTally::default();
    // The turn's tally alone, emptied into a book that keeps nothing.
    let nothing = ReportBook::default();
    group.bench_function("report_tally_only", |b| {
        b.iter(|| {
            for d in black_box(&turn) {
                reports.record(now, one_brand[0], Channel::Mesaj, None, d);
            }
            nothing.add(&mut reports);
        })
    });
    for (name, brands, dealers) in [
        ("with_reports_one_brand", &one_brand[..], false),
        ("with_reports_8_brands_dealers", &brands[..], true),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, d) in black_box(&turn).iter().enumerate() {
                    tally.record(Channel::Mesaj, d);
                    let dealer = dealers.then_some(500 + (i % 3) as u32);
                    reports.record(now, brands[i % brands.len()], Channel::Mesaj, dealer, d);
                }
                counters.add(&mut tally);
                book.add(&mut reports);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
