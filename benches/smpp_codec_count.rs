//! A fixed number of iterations of one codec operation on the typical submit_sm
//! of `smpp_codec.rs`, for counting instructions under valgrind: on a shared
//! machine whose speed drifts by tens of percent an hour, an instruction count is
//! the one figure that repeats exactly, so two variants of the codec can be
//! compared to the percent (`bash benches/smpp_codec_count.sh`).
//!
//! `cargo bench --bench smpp_codec_count -- OP N` with OP one of `none`,
//! `view_and_forward`, `gate_view` (the view, the TLVs the gate reads, then
//! forward), `decode`, `decode_bytes`, `encode`; `none` builds the PDU and
//! stops, so its count is the fixed cost to subtract.

use std::hint::black_box;

use bytes::Bytes;
use iys_gate::smpp::codec::generate::typical_submit_sm;
use iys_gate::smpp::codec::{frame_len, MessageView, Pdu, TlvRead, DEFAULT_MAX_COMMAND_LENGTH};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let op = args
        .first()
        .map(String::as_str)
        .unwrap_or("view_and_forward");
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let pdu = typical_submit_sm();
    let frame = pdu.to_vec();
    let shared = Bytes::from(frame.clone());
    let mut out = Vec::with_capacity(frame.len());
    let mut sink = 0usize;
    for _ in 0..n {
        sink += match op {
            "none" => 0,
            "view_and_forward" => {
                out.clear();
                if let Ok(view) = MessageView::read(black_box(&frame)) {
                    view.forward(7, true, &mut out);
                }
                out.len()
            }
            "gate_view" => {
                // What the gate reads of a message besides the view: the
                // İYS TLVs (classify) and the concatenation info.
                out.clear();
                if let Ok(view) = MessageView::read(black_box(&frame)) {
                    let class = view.tlvs.iys_message_type().ok().flatten();
                    let brand = view.tlvs.iys_brand_code().ok().flatten();
                    let retailer = view.tlvs.iys_retailer_code().ok().flatten();
                    black_box((class, brand, retailer, view.concat_info()));
                    view.forward(7, true, &mut out);
                }
                out.len()
            }
            "decode" => {
                let len = frame_len(black_box(&frame), DEFAULT_MAX_COMMAND_LENGTH);
                black_box(len).ok();
                usize::from(Pdu::decode(black_box(&frame)).is_ok())
            }
            "decode_bytes" => usize::from(Pdu::decode_bytes(black_box(shared.clone())).is_ok()),
            "encode" => {
                out.clear();
                black_box(&pdu).encode(&mut out);
                out.len()
            }
            other => {
                eprintln!("unknown operation {other}");
                std::process::exit(2);
            }
        };
    }
    black_box(sink);
}
