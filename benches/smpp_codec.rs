//! Decode and encode of a typical submit_sm: 160-octet GSM text, a validity
//! period, and the İYS class and brand TLVs. One PDU per iteration, one core;
//! `view_and_forward` is what the gate does with one.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iys_gate::smpp::codec::generate::typical_submit_sm;
use iys_gate::smpp::codec::{frame_len, MessageView, Pdu, DEFAULT_MAX_COMMAND_LENGTH};

fn bench(c: &mut Criterion) {
    let pdu = typical_submit_sm();
    let frame = pdu.to_vec();
    let shared = Bytes::from(frame.clone());

    let mut group = c.benchmark_group("submit_sm");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let len = frame_len(black_box(&frame), DEFAULT_MAX_COMMAND_LENGTH);
            black_box(len).ok();
            Pdu::decode(black_box(&frame)).ok()
        })
    });
    group.bench_function("decode_bytes", |b| {
        b.iter(|| Pdu::decode_bytes(black_box(shared.clone())).ok())
    });
    // The gate's path: read in place, then forward without the İYS TLVs.
    let mut fwd = Vec::with_capacity(frame.len());
    group.bench_function("view_and_forward", |b| {
        b.iter(|| {
            fwd.clear();
            if let Ok(view) = MessageView::read(black_box(&frame)) {
                view.forward(7, true, &mut fwd);
            }
            black_box(fwd.len())
        })
    });
    let mut out = Vec::with_capacity(frame.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&pdu).encode(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
