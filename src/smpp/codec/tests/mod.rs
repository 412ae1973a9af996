//! Codec tests on whole PDUs: spec vectors, malformed input, random round trips.

mod negative;
mod roundtrip;
mod vectors;

use bytes::Bytes;

use super::{frame_len, Pdu, DEFAULT_MAX_COMMAND_LENGTH};

/// Concatenates hand-assembled pieces of a PDU.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes a whole frame both ways, checks it re-encodes to the same octets, and
/// returns the PDU.
fn round_trip(frame: &[u8]) -> Pdu {
    assert_eq!(
        frame_len(frame, DEFAULT_MAX_COMMAND_LENGTH),
        Ok(Some(frame.len()))
    );
    let pdu = match Pdu::decode(frame) {
        Ok(pdu) => pdu,
        Err(e) => panic!("decode failed: {e}"),
    };
    assert_eq!(pdu.to_vec(), frame, "re-encoding {pdu:?}");
    assert_eq!(pdu.encoded_len(), frame.len());
    assert_eq!(pdu.header().command_length as usize, frame.len());
    let shared = Pdu::decode_bytes(Bytes::copy_from_slice(frame)).expect("decode_bytes");
    assert_eq!(shared, pdu);
    let mut buf = bytes::BytesMut::new();
    pdu.encode(&mut buf);
    assert_eq!(&buf[..], frame);
    pdu
}
