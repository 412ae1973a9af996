//! The SIP gate's per-message work on one core, no sockets: scanning an
//! INVITE, and the whole of what the gate does with one (scan, classify by
//! trunk, decide against a store, build the forwarded bytes with the gate's
//! Via, Max-Forwards and the İYS header cut — or the 608 answer), and a
//! response routed back. Each initial INVITE has its own Call-ID and branch
//! so none is answered from the transaction cache.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iys_gate::consent::{Brand, ConsentTime};
use iys_gate::gate::GateContext;
use iys_gate::observe::audit::Audit;
use iys_gate::observe::metrics::DecisionCounters;
use iys_gate::policy::Policy;
use iys_gate::sip::codec::scan;
use iys_gate::sip::config::SipConfig;
use iys_gate::sip::gating::Trunks;
use iys_gate::sip::metrics::SipMetrics;
use iys_gate::sip::proxy::cache::TxCache;
use iys_gate::sip::proxy::core::{Core, Outbox, Source, Transport, Work};
use iys_gate::store::SnapshotBuilder;
use iys_gate::sync::StoreHandle;

const N: usize = 4096;

fn invite(to: &str, i: usize) -> Vec<u8> {
    let body = "v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:{to}@198.51.100.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{i}-1-0\r\n\
         From: sipp <sip:05320000000@192.0.2.10:5060>;tag={i}SIPpTag001\r\n\
         To: <sip:{to}@198.51.100.5:5060>\r\n\
         Call-ID: {i}-4242@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: sip:sipp@192.0.2.10:5060\r\n\
         Max-Forwards: 70\r\n\
         X-IYS-Message-Type: 11\r\n\
         Subject: Performance Test\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn core() -> Core {
    let brand = Brand::new(700001, 100001);
    let mut b = SnapshotBuilder::new();
    b.add_brand(brand);
    for r in iys_gate::serve::demo_fixed_records(brand) {
        b.add(&r);
    }
    let (snapshot, _) = b.build(ConsentTime::now());
    let store = StoreHandle::new();
    store.publish(snapshot);
    let cfg: SipConfig = toml::from_str(
        "listen_udp = \"127.0.0.1:5060\"\nnext_hop = \"198.51.100.5:5060\"\n\
         [[trunks]]\nname = \"t\"\nnetworks = [\"192.0.2.0/24\"]\niys_code = 700001\nbrand_code = 100001\n",
    )
    .unwrap();
    Core {
        trunks: Trunks::new(&cfg.trunks),
        ctx: GateContext {
            store,
            policy: Policy::default(),
            decisions: DecisionCounters::new(),
            audit: Audit::start(None, false).unwrap(),
            drain: Default::default(),
            reports: Default::default(),
        },
        metrics: SipMetrics::new(),
        default_hop: Some("198.51.100.5:5060".parse().unwrap()),
        trunk_hops: Default::default(),
        via_host: "203.0.113.1".into(),
        via_ports: (5060, 5060),
        // Nothing is remembered: every INVITE is judged.
        cache: TxCache::new(Duration::ZERO, 1),
        cfg,
    }
}

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
