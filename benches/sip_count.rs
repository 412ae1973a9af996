//! A fixed number of iterations of one SIP operation, for counting
//! instructions under valgrind (the one figure that repeats exactly on a
//! shared machine whose speed drifts): `bash benches/sip_count.sh`.
//!
//! `cargo bench --bench sip_count -- OP N` with OP one of `none` (builds the
//! messages and the handler, then stops: the fixed cost to subtract),
//! `scan`, `forward` (an allowed initial INVITE: scan, classify, decide,
//! forwarded bytes; nothing remembered, as in `sip_scan`), `forward_cached`
//! (the same with the default transaction cache, 32 s and 200 000 entries,
//! so every INVITE is also remembered), `refuse` (the 608 path) and
//! `response` (a 180 routed back).

mod sip_common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iys_gate::sip::codec::scan;
use iys_gate::sip::proxy::cache::TxCache;
use iys_gate::sip::proxy::core::{Outbox, Source, Transport, Work};
use sip_common::{core, core_with, invite, N};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let op = args.first().map(String::as_str).unwrap_or("forward");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let core = if op == "forward_cached" {
        core_with(TxCache::new(Duration::from_secs(32), 200_000))
    } else {
        core()
    };
    let allowed: Vec<Vec<u8>> = (0..N).map(|i| invite("05300000001", i)).collect();
    let refused: Vec<Vec<u8>> = (0..N).map(|i| invite("05300000009", i)).collect();
    let src = Source {
        transport: Transport::Udp,
        addr: "192.0.2.10:5060".parse::<SocketAddr>().unwrap(),
        conn: None,
    };
    let hop = Source {
        transport: Transport::Udp,
        addr: "198.51.100.5:5060".parse().unwrap(),
        conn: None,
    };
    let mut w = Work::default();
    let mut out = Outbox::default();
    core.handle(&allowed[0], &src, Instant::now(), &mut w, &mut out);
    let ringing = String::from_utf8(out.items[0].1.clone())
        .unwrap()
        .replacen(
            "INVITE sip:05300000001@198.51.100.5:5060 SIP/2.0",
            "SIP/2.0 180 Ringing",
            1,
        )
        .into_bytes();
    let mut fresh = invite("05300000001", 0);
    let call_at = fresh.windows(9).position(|w| w == b"Call-ID: ").unwrap() + 9;
    fresh.splice(call_at..call_at + 1, *b"000000000");
    let mut sink = 0usize;
    let now = Instant::now();
    for k in 0..n {
        let i = k % N;
        out.items.clear();
        match op {
            "none" => {}
            "scan" => sink += scan(black_box(&allowed[i]), 65535).is_ok() as usize,
            "forward" => core.handle(black_box(&allowed[i]), &src, now, &mut w, &mut out),
            "forward_cached" => {
                // A new transaction each time: k in the Call-ID's 9 digits.
                let mut v = k;
                for d in fresh[call_at..call_at + 9].iter_mut().rev() {
                    *d = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                core.handle(black_box(&fresh), &src, now, &mut w, &mut out)
            }
            "refuse" => core.handle(black_box(&refused[i]), &src, now, &mut w, &mut out),
            "response" => core.handle(black_box(&ringing), &hop, now, &mut w, &mut out),
            other => panic!("unknown op {other}"),
        }
        w.turn = Default::default();
        sink += out.items.len();
    }
    black_box(sink);
}
