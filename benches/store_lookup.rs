//! Store lookups and the decision function on a generated store (2 M tuples,
//! 100 brands). The full 100 M figures come from `iys-gate snapshot bench`
//! on the standard data set (see the README).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use iys_gate::consent::{Channel, ConsentTime, MessageClass, RecipientType};
use iys_gate::gen::{GenParams, Generator};
use iys_gate::policy::{decide, Policy, Request};
use iys_gate::store::{probe, SnapshotBuilder};

fn lookups(c: &mut Criterion) {
    let generator = Generator::new(&GenParams::new(2_000_000, 100, 1)).expect("generator");
    let mut builder = SnapshotBuilder::new();
    for r in generator.records() {
        builder.add(&r);
    }
    let (s, _) = builder.build(ConsentTime::now());
    let hot = probe::hot(&s, 4096, 7);
    let random = probe::random(&s, 1 << 20, 11);
    let mut g = c.benchmark_group("store");
    let mut i = 0usize;
    g.bench_function("find_hot_brand", |b| {
        b.iter(|| {
            let (br, ch, rt, k) = hot.lookups[i % hot.lookups.len()];
            i += 1;
            black_box(s.find(br, ch, rt, k, None))
        })
    });
    let mut j = 0usize;
    g.bench_function("find_random", |b| {
        b.iter(|| {
            let (br, ch, rt, k) = random.lookups[j % random.lookups.len()];
            j += 1;
            black_box(s.find(br, ch, rt, k, None))
        })
    });
    let policy = Policy::default();
    let now = ConsentTime::now();
    let mut k = 0usize;
    g.bench_function("decide_hot_brand", |b| {
        b.iter(|| {
            let (brand, channel, rtype, address) = hot.lookups[k % hot.lookups.len()];
            k += 1;
            let req = Request {
                brand,
                channel,
                class: MessageClass::Commercial(rtype),
                address: Some(address),
                retailer: None,
            };
            black_box(decide(Some(&s), &policy, now, &req))
        })
    });
    let _ = (Channel::Mesaj, RecipientType::Bireysel);
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
