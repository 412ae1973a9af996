//! The SIP gate's per-message work on one core, no sockets: scanning an
//! INVITE, and the whole of what the gate does with one (scan, classify by
//! trunk, decide against a store, build the forwarded bytes with the gate's
//! Via, Max-Forwards and the İYS header cut — or the 608 answer), and a
//! response routed back. Each initial INVITE has its own Call-ID and branch
//! so none is answered from the transaction cache.

mod sip_common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iys_gate::sip::codec::scan;
use iys_gate::sip::proxy::core::{Outbox, Source, Transport, Work};
use sip_common::{core, invite, N};

fn bench(c: &mut Criterion) {
    let core = core();
    let allowed: Vec<Vec<u8>> = (0..N).map(|i| invite("05300000001", i)).collect();
    let refused: Vec<Vec<u8>> = (0..N).map(|i| invite("05300000009", i)).collect();
    let src = Source {
        transport: Transport::Udp,
        addr: "192.0.2.10:5060".parse::<SocketAddr>().unwrap(),
        conn: None,
    };
    let mut w = Work::default();
    let mut out = Outbox::default();

    let mut g = c.benchmark_group("sip_invite");
    g.throughput(Throughput::Elements(1));
    g.bench_function("scan", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % N;
            black_box(scan(black_box(&allowed[i]), 65535).is_ok())
        })
    });
    g.bench_function("scan_decide_forward", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % N;
            out.items.clear();
            core.handle(
                black_box(&allowed[i]),
                &src,
                Instant::now(),
                &mut w,
                &mut out,
            );
            w.turn = Default::default();
            black_box(out.items.len())
        })
    });
    g.bench_function("scan_decide_refuse_608", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % N;
            out.items.clear();
            core.handle(
                black_box(&refused[i]),
                &src,
                Instant::now(),
                &mut w,
                &mut out,
            );
            w.turn = Default::default();
            black_box(out.items.len())
        })
    });
    // A 180 from the next hop, the gate's Via on top: routed back.
    out.items.clear();
    core.handle(&allowed[0], &src, Instant::now(), &mut w, &mut out);
    let forwarded = String::from_utf8(out.items[0].1.clone()).unwrap();
    let ringing = forwarded
        .replacen(
            "INVITE sip:05300000001@198.51.100.5:5060 SIP/2.0",
            "SIP/2.0 180 Ringing",
            1,
        )
        .into_bytes();
    let hop = Source {
        transport: Transport::Udp,
        addr: "198.51.100.5:5060".parse().unwrap(),
        conn: None,
    };
    g.bench_function("response_route_back", |b| {
        b.iter(|| {
            out.items.clear();
            core.handle(black_box(&ringing), &hop, Instant::now(), &mut w, &mut out);
            black_box(out.items.len())
        })
    });
    g.finish();
    assert_eq!(out.items.len(), 1, "the 180 is routed back");
}

criterion_group!(benches, bench);
criterion_main!(benches);
