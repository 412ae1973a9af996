//! SMPP v3.4 codec: framing and decoding never panic, whatever decodes
//! re-encodes to the same octets and decodes again to the same PDU, and every
//! valid PDU the generator builds from the input's bytes round-trips.

#![no_main]

use iys_gate::smpp::codec::generate::{FromBytes, Generator};
use iys_gate::smpp::codec::{
    frame_len, replace_sequence_number, Body, CommandId, Header, MessageView, Pdu, TlvRead,
    DEFAULT_MAX_COMMAND_LENGTH, HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

/// Every command id, so synthesised frames reach every body decoder.
const COMMANDS: [u32; 27] = [
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x0000_0002,
    0x8000_0002,
    0x0000_0003,
    0x8000_0003,
    0x0000_0004,
    0x8000_0004,
    0x0000_0005,
    0x8000_0005,
    0x0000_0006,
    0x8000_0006,
    0x0000_0007,
    0x8000_0007,
    0x0000_0008,
    0x8000_0008,
    0x0000_0009,
    0x8000_0009,
    0x0000_000B,
    0x0000_0015,
    0x8000_0015,
    0x0000_0021,
    0x8000_0021,
    0x0000_0102,
    0x0000_0103,
    0x8000_0103,
];

fuzz_target!(|data: &[u8]| {
    // The input as a byte stream: frame it, then decode the frame.
    let _ = Header::peek(data);
    if let Ok(Some(len)) = frame_len(data, DEFAULT_MAX_COMMAND_LENGTH) {
        assert!(len >= HEADER_LEN && len <= data.len());
        check(&data[..len]);
    }
    check(data);

    // The input as a body behind a well-formed header, so the fuzzer need not
    // guess command_length to reach the body decoders.
    if let Some((&selector, body)) = data.split_first() {
        let command_id = COMMANDS[usize::from(selector) % COMMANDS.len()];
        let status = if selector >= 128 { 0x58 } else { 0 };
        let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
        frame.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_be_bytes());
        frame.extend_from_slice(&command_id.to_be_bytes());
        frame.extend_from_slice(&u32::to_be_bytes(status));
        frame.extend_from_slice(&7u32.to_be_bytes());
        check(&frame);
    }

    // The input as the choices of a generated valid PDU: it must decode to
    // itself (and pass every check above).
    let pdu = Generator::new(FromBytes::new(data)).pdu();
    let frame = pdu.to_vec();
    assert_eq!(frame_len(&frame, u32::MAX), Ok(Some(frame.len())));
    assert_eq!(Pdu::decode(&frame).as_ref(), Ok(&pdu), "generated PDU");
    check(&frame);
});

fn check(frame: &[u8]) {
    check_view(frame);
    let Ok(pdu) = Pdu::decode(frame) else {
        return;
    };
    let encoded = pdu.to_vec();
    assert_eq!(encoded, frame, "encode(decode(frame)) != frame");
    assert_eq!(pdu.encoded_len(), encoded.len());
    let again = Pdu::decode(&encoded).expect("a re-encoded PDU must decode");
    assert_eq!(again, pdu);
    assert_eq!(again.to_vec(), encoded);
    assert!(!matches!(pdu.command_id(), CommandId::Unknown(_)));

    // The in-place sequence rewrite agrees with re-encoding.
    let mut remapped = encoded.clone();
    assert_eq!(
        replace_sequence_number(&mut remapped, !pdu.sequence_number),
        Some(pdu.sequence_number)
    );
    let mut expected = pdu.clone();
    expected.sequence_number = !pdu.sequence_number;
    assert_eq!(remapped, expected.to_vec());

    // The typed accessors read peer-controlled octets too.
    let (tlvs, concat) = match &pdu.body {
        Body::SubmitSm(sm) | Body::DeliverSm(sm) => (&sm.tlvs, sm.concat_info()),
        Body::SubmitMulti(m) => (&m.tlvs, m.concat_info()),
        Body::DataSm(d) => (&d.tlvs, d.concat_info()),
        _ => return,
    };
    if let Some(c) = concat {
        assert!(c.seq >= 1 && c.seq <= c.total);
    }
    let _ = tlvs.iys_message_type();
    let _ = tlvs.iys_brand_code();
    let _ = tlvs.iys_retailer_code();
    let _ = tlvs.receipted_message_id();
    let _ = tlvs.message_state();
    let _ = tlvs.sar_msg_ref_num();
    let mut stripped = tlvs.clone();
    stripped.remove_iys();
    assert!(stripped
        .iter()
        .all(|t| !(0x1400..=0x1402).contains(&t.tag())));
}

/// The gate's in-place view of submit_sm and data_sm accepts exactly what the
/// decoder accepts, fails with the same error, reads the same fields, and
/// forwards exactly what stripping and re-encoding would.
fn check_view(frame: &[u8]) {
    let is_message = Header::peek(frame).is_some_and(|h| {
        matches!(h.command(), CommandId::SubmitSm | CommandId::DataSm)
    });
    if !is_message {
        return;
    }
    let view = MessageView::read(frame);
    let pdu = Pdu::decode(frame);
    let (view, pdu) = match (view, pdu) {
        (Ok(v), Ok(p)) => (v, p),
        (Err(a), Err(b)) => return assert_eq!(a, b),
        (v, p) => panic!("view {v:?} but decoder {p:?}"),
    };
    let (ton, dest, tlvs, concat) = match &pdu.body {
        Body::SubmitSm(sm) => (sm.dest_addr_ton, sm.destination_addr.as_bytes(), &sm.tlvs, sm.concat_info()),
        Body::DataSm(d) => (d.dest_addr_ton, d.destination_addr.as_bytes(), &d.tlvs, d.concat_info()),
        _ => unreachable!("checked above"),
    };
    assert_eq!((view.dest_addr_ton, view.destination_addr), (ton, dest));
    assert_eq!(view.concat_info(), concat);
    assert_eq!(view.tlvs.iys_message_type(), tlvs.iys_message_type());
    assert_eq!(view.tlvs.iys_brand_code(), tlvs.iys_brand_code());
    assert_eq!(view.tlvs.iys_retailer_code(), tlvs.iys_retailer_code());
    let mut forwarded = Vec::new();
    view.forward(9, true, &mut forwarded);
    let mut want = pdu.clone();
    want.sequence_number = 9;
    match &mut want.body {
        Body::SubmitSm(sm) => sm.tlvs.remove_iys(),
        Body::DataSm(d) => d.tlvs.remove_iys(),
        _ => 0,
    };
    assert_eq!(forwarded, want.to_vec());
}
