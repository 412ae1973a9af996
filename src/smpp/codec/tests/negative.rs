//! Malformed input: every error names its field and maps to a status; nothing panics.

use super::super::*;
use super::vectors::submit_sm_with_iys_tlvs;
use super::{cat, round_trip};

fn decode_err(frame: &[u8]) -> DecodeError {
    match Pdu::decode(frame) {
        Ok(pdu) => panic!("decoded {pdu:?}"),
        Err(e) => e,
    }
}

/// `frame` with its command_length set to its actual length.
fn fix_len(mut frame: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(frame.len()).unwrap().to_be_bytes();
    frame[..4].copy_from_slice(&len);
    frame
}

/// A submit_sm whose body is `body` (length fixed up).
fn submit_sm(body: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1]];
    parts.extend_from_slice(body);
    fix_len(cat(&parts))
}

const ADDRS: &[u8] = b"\0\x05\x00MARKA\0\x01\x01905321234567\0";
const FLAGS: &[u8] = b"\x00\x00\x00\0\0\x01\x00\x00\x00";

fn all_vectors() -> Vec<Vec<u8>> {
    let mut v = vec![submit_sm_with_iys_tlvs()];
    let mut pdu = Pdu::decode(&submit_sm_with_iys_tlvs()).unwrap();
    pdu.body = Body::SubmitMulti(SubmitMulti {
        service_type: COctetString::empty(),
        source_addr_ton: 5,
        source_addr_npi: 0,
        source_addr: COctetString::new("MARKA").unwrap(),
        dest_addresses: DestAddresses::new(vec![
            DestAddress::Sme {
                ton: 1,
                npi: 1,
                addr: COctetString::new("905321234567").unwrap(),
            },
            DestAddress::DistributionList(COctetString::new("DL").unwrap()),
        ])
        .unwrap(),
        esm_class: 0,
        protocol_id: 0,
        priority_flag: 0,
        schedule_delivery_time: SmppTime::empty(),
        validity_period: SmppTime::new("250101120000000+").unwrap(),
        registered_delivery: 1,
        replace_if_present_flag: 0,
        data_coding: 0,
        sm_default_msg_id: 0,
        short_message: OctetString::new("hi").unwrap(),
        tlvs: Tlvs::new(),
    });
    v.push(pdu.to_vec());
    v.push(cat(&[
        &[0, 0, 0, 0x2F, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
        b"SMPP3TEST\0secret08\0SUBMIT1\0\x34\x01\x01\0",
    ]));
    v
}

#[test]
fn every_truncation_is_incomplete_for_framing_and_an_error_for_decode() {
    for frame in all_vectors() {
        for cut in 0..frame.len() {
            let part = &frame[..cut];
            assert_eq!(
                frame_len(part, DEFAULT_MAX_COMMAND_LENGTH),
                Ok(None),
                "cut {cut}"
            );
            let err = decode_err(part);
            assert!(!err.field.is_empty());
            assert!(err.to_string().starts_with(err.field), "{err}");
        }
    }
}

#[test]
fn every_truncation_with_a_matching_command_length_names_the_field() {
    for frame in all_vectors() {
        let mut failures = 0;
        for cut in 16..frame.len() {
            let part = fix_len(frame[..cut].to_vec());
            match Pdu::decode(&part) {
                // Cutting between two TLVs leaves a shorter valid PDU.
                Ok(pdu) => assert_eq!(pdu.to_vec(), part, "cut {cut}"),
                Err(e) => {
                    failures += 1;
                    assert!(e.to_string().starts_with(e.field));
                    assert_ne!(e.field, "command_length", "cut {cut}: {e}");
                }
            }
        }
        assert!(failures > frame.len() / 2, "{failures} failures");
    }
}

#[test]
fn a_short_header_names_the_header_field() {
    assert_eq!(decode_err(&[]).field, "command_length");
    assert_eq!(decode_err(&[0, 0, 0, 16, 0]).field, "command_id");
    assert_eq!(
        decode_err(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0]).field,
        "command_status"
    );
    assert_eq!(
        decode_err(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0]).field,
        "sequence_number"
    );
}

#[test]
fn command_length_disagreeing_with_the_frame() {
    let mut frame = submit_sm_with_iys_tlvs();
    frame[3] += 1;
    let err = decode_err(&frame);
    assert_eq!(err.field, "command_length");
    assert!(matches!(err.kind, DecodeErrorKind::LengthMismatch { .. }));
    assert_eq!(err.command_status(), status::ESME_RINVCMDLEN);
    frame[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode_err(&frame).field, "command_length");
}

#[test]
fn framing_rejects_command_length_below_16_and_above_the_maximum() {
    assert_eq!(
        frame_len(&[0, 0, 0, 15, 0, 0], 4096),
        Err(FrameError::TooShort(15))
    );
    assert_eq!(
        frame_len(&[0, 0, 0x10, 1], 4096),
        Err(FrameError::TooLong {
            len: 4097,
            max: 4096
        })
    );
    let frame = submit_sm_with_iys_tlvs();
    assert_eq!(frame_len(&frame, 106), Ok(Some(106)));
    assert!(frame_len(&frame, 105).is_err());
}

#[test]
fn over_long_c_octet_strings() {
    let bind = |system_id: &[u8], password: &[u8]| {
        fix_len(cat(&[
            &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
            system_id,
            password,
            b"\0\x34\x00\x00\0",
        ]))
    };
    assert!(Pdu::decode(&bind(b"123456789012345\0", b"12345678\0")).is_ok());
    let err = decode_err(&bind(b"1234567890123456\0", b"pw\0"));
    assert_eq!(
        (err.field, &err.kind),
        ("system_id", &DecodeErrorKind::TooLong { max: 15 })
    );
    assert_eq!(err.command_status(), status::ESME_RINVSYSID);
    let err = decode_err(&bind(b"id\0", b"123456789\0"));
    assert_eq!(err.field, "password");
    assert_eq!(err.command_status(), status::ESME_RINVPASWD);

    let err = decode_err(&submit_sm(&[b"\0\x05\x00", b"123456789012345678901\0"]));
    assert_eq!(
        (err.field, err.command_status()),
        ("source_addr", status::ESME_RINVSRCADR)
    );
    let err = decode_err(&submit_sm(&[b"\0\x05\x00A\0\x01\x01", &[b'9'; 40], b"\0"]));
    assert_eq!(err.field, "destination_addr");
    assert_eq!(err.command_status(), status::ESME_RINVDSTADR);
    assert_eq!(
        err.to_string(),
        "destination_addr: longer than the maximum of 20 octets"
    );
    let err = decode_err(&submit_sm(&[b"CMTXYZ\0"]));
    assert_eq!(
        (err.field, err.command_status()),
        ("service_type", status::ESME_RINVSERTYP)
    );
}

#[test]
fn a_string_running_into_the_end_of_the_pdu() {
    let err = decode_err(&submit_sm(&[b"\0\x05\x00MAR"]));
    assert_eq!(
        (err.field, &err.kind),
        ("source_addr", &DecodeErrorKind::NotNullTerminated)
    );
}

#[test]
fn sm_length_past_the_end_or_above_254() {
    let err = decode_err(&submit_sm(&[ADDRS, FLAGS, b"\xC8Hello world"]));
    assert_eq!(err.field, "sm_length");
    assert_eq!(
        err.kind,
        DecodeErrorKind::LengthOverrun {
            len: 200,
            available: 11
        }
    );
    assert_eq!(err.command_status(), status::ESME_RINVMSGLEN);
    let long = [b'x'; 255];
    let err = decode_err(&submit_sm(&[ADDRS, FLAGS, b"\xFF", &long]));
    assert_eq!(
        (err.field, &err.kind),
        ("sm_length", &DecodeErrorKind::TooLong { max: 254 })
    );
    assert!(Pdu::decode(&submit_sm(&[ADDRS, FLAGS, b"\xFE", &long[..254]])).is_ok());
}

#[test]
fn time_fields_are_empty_or_16_characters() {
    let err = decode_err(&submit_sm(&[
        ADDRS,
        b"\x00\x00\x00\0",
        b"2501011200\0",
        b"\x01\x00\x00\x00\x00",
    ]));
    assert_eq!(err.field, "validity_period");
    assert_eq!(err.command_status(), status::ESME_RINVEXPIRY);
    let err = decode_err(&submit_sm(&[
        ADDRS,
        b"\x00\x00\x00",
        b"25010112000000000+\0",
    ]));
    assert_eq!(err.field, "schedule_delivery_time");
    assert_eq!(err.command_status(), status::ESME_RINVSCHED);
}

#[test]
fn tlv_length_overrun_and_truncated_tlv_header() {
    let err = decode_err(&submit_sm(&[ADDRS, FLAGS, b"\x00", b"\x04\x24\x00\x0Aabc"]));
    assert_eq!(err.field, "tlv_value");
    assert_eq!(
        err.kind,
        DecodeErrorKind::TlvLengthOverrun {
            tag: 0x0424,
            len: 10,
            available: 3
        }
    );
    assert_eq!(err.command_status(), status::ESME_RINVTLVLEN);
    let err = decode_err(&submit_sm(&[ADDRS, FLAGS, b"\x00", b"\x14\x00\x00"]));
    assert_eq!(err.field, "tlv_length");
    assert_eq!(err.command_status(), status::ESME_RINVTLVSTREAM);
    let err = decode_err(&submit_sm(&[ADDRS, FLAGS, b"\x00", b"\x14"]));
    assert_eq!(err.field, "tlv_tag");
}

#[test]
fn submit_multi_counts_and_flags() {
    let multi = |dests: &[u8]| {
        fix_len(cat(&[
            &[0, 0, 0, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0, 0, 0, 1],
            b"\0\x05\x00MARKA\0",
            dests,
            FLAGS,
            b"\x00",
        ]))
    };
    assert!(Pdu::decode(&multi(b"\x01\x02DL\0")).is_ok());
    let err = decode_err(&multi(b"\x00"));
    assert_eq!(
        (err.field, err.command_status()),
        ("number_of_dests", status::ESME_RINVNUMDESTS)
    );
    let err = decode_err(&multi(b"\xFF\x02DL\0"));
    assert_eq!(err.field, "number_of_dests");
    let err = decode_err(&multi(b"\x01\x03DL\0"));
    assert_eq!(
        (err.field, err.command_status()),
        ("dest_flag", status::ESME_RINVDESTFLAG)
    );
    let err = decode_err(&multi(b"\x01\x02123456789012345678901\0"));
    assert_eq!(
        (err.field, err.command_status()),
        ("dl_name", status::ESME_RINVDLNAME)
    );
}

#[test]
fn unknown_commands_and_trailing_bytes() {
    let err = decode_err(&[0, 0, 0, 16, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(err.kind, DecodeErrorKind::UnknownCommand(0x0A));
    assert_eq!(err.command_status(), status::ESME_RINVCMDID);
    assert_eq!(err.to_string(), "command_id: unknown command_id 0x0000000A");

    let err = decode_err(&[0, 0, 0, 17, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(err.kind, DecodeErrorKind::TrailingBytes(1));
    assert_eq!(err.command_status(), status::ESME_RINVCMDLEN);

    let query = cat(&[
        &[0, 0, 0, 0x23, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1],
        b"msg-0001\0\x05\x00MARKA\0\x00\x00",
    ]);
    assert_eq!(decode_err(&query).kind, DecodeErrorKind::TrailingBytes(2));
}

#[test]
fn mutated_vectors_never_panic_and_what_decodes_round_trips() {
    let mut rng = super::super::generate::Generator::seeded(0x5EED);
    let vectors = all_vectors();
    for i in 0..20_000 {
        let mut frame = vectors[i % vectors.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(frame.len());
            frame[at] = rng.bits() as u8;
        }
        if rng.below(4) == 0 {
            frame = fix_len(frame);
        }
        let _ = frame_len(&frame, DEFAULT_MAX_COMMAND_LENGTH);
        if let Ok(pdu) = Pdu::decode(&frame) {
            round_trip(&frame);
            assert_eq!(pdu.to_vec(), frame);
        }
    }
}

#[test]
fn random_octets_never_panic() {
    let mut rng = super::super::generate::Generator::seeded(42);
    for _ in 0..20_000 {
        let len = rng.below(80);
        let mut frame: Vec<u8> = (0..len).map(|_| rng.bits() as u8).collect();
        if len >= 16 && rng.below(2) == 0 {
            frame = fix_len(frame);
            frame[4..8].copy_from_slice(&[0, 0, 0, [1, 2, 4, 5, 9, 0x21][rng.below(6)]]);
        }
        let _ = frame_len(&frame, DEFAULT_MAX_COMMAND_LENGTH);
        let _ = Header::peek(&frame);
        if let Ok(pdu) = Pdu::decode(&frame) {
            assert_eq!(pdu.to_vec(), frame);
        }
    }
}
