//! Random valid PDUs of every kind: encode → decode gives the same PDU and the
//! same octets.

use super::super::generate::Generator;
use super::super::*;
use super::round_trip;

#[test]
fn random_pdus_of_every_kind_round_trip() {
    let mut rng = Generator::seeded(0x1A5_6A7E);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20_000 {
        let pdu = rng.pdu();
        seen.insert(pdu.command_id());
        let frame = pdu.to_vec();
        assert_eq!(Header::peek(&frame), Some(pdu.header()));
        let decoded = round_trip(&frame);
        assert_eq!(decoded, pdu);
    }
    assert_eq!(seen.len(), 27, "every command generated");
}

#[test]
fn remapping_the_sequence_number_in_place_equals_re_encoding() {
    let mut rng = Generator::seeded(7);
    for _ in 0..1_000 {
        let mut pdu = rng.pdu();
        let mut frame = pdu.to_vec();
        let new_seq = rng.u32();
        assert_eq!(
            replace_sequence_number(&mut frame, new_seq),
            Some(pdu.sequence_number)
        );
        pdu.sequence_number = new_seq;
        assert_eq!(frame, pdu.to_vec());
    }
}

#[test]
fn the_benches_typical_submit_sm_round_trips() {
    let pdu = super::super::generate::typical_submit_sm();
    let frame = pdu.to_vec();
    assert_eq!(frame.len(), 242, "the size the README quotes");
    assert_eq!(round_trip(&frame), pdu);
}
