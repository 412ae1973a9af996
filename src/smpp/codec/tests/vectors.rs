//! Byte-exact PDUs assembled by hand from the SMPP v3.4 field tables.

use super::super::*;
use super::{cat, round_trip};

fn header(len: u8, id: [u8; 4], status: u8, seq: u8) -> Vec<u8> {
    cat(&[&[0, 0, 0, len], &id, &[0, 0, 0, status], &[0, 0, 0, seq]])
}

#[test]
fn bind_transmitter_receiver_and_transceiver() {
    let body: &[u8] = b"SMPP3TEST\0secret08\0SUBMIT1\0\x34\x01\x01\0";
    for (id, cmd) in [
        (2u8, CommandId::BindTransmitter),
        (1, CommandId::BindReceiver),
        (9, CommandId::BindTransceiver),
    ] {
        let frame = cat(&[&header(0x2F, [0, 0, 0, id], 0, 1), body]);
        let pdu = round_trip(&frame);
        assert_eq!(pdu.command_id(), cmd);
        assert_eq!(pdu.sequence_number, 1);
        let (Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b)) =
            &pdu.body
        else {
            panic!("not a bind: {pdu:?}");
        };
        assert_eq!(b.system_id.as_bytes(), b"SMPP3TEST");
        assert_eq!(b.password.as_bytes(), b"secret08");
        assert_eq!(b.system_type.as_bytes(), b"SUBMIT1");
        assert_eq!(b.interface_version, 0x34);
        assert_eq!((b.addr_ton, b.addr_npi), (1, 1));
        assert!(b.address_range.is_empty());
    }
}

#[test]
fn bind_transceiver_resp_with_sc_interface_version() {
    let frame = cat(&[
        &header(0x1A, [0x80, 0, 0, 9], 0, 1),
        b"SMSC\0",
        &[0x02, 0x10, 0x00, 0x01, 0x34],
    ]);
    let pdu = round_trip(&frame);
    let Body::BindTransceiverResp(Some(resp)) = &pdu.body else {
        panic!("{pdu:?}");
    };
    assert_eq!(resp.system_id.as_bytes(), b"SMSC");
    assert_eq!(resp.tlvs.sc_interface_version(), Ok(Some(0x34)));
}

#[test]
fn error_responses_without_a_body() {
    for (id, status) in [
        ([0x80, 0, 0, 1], 0x0D),    // bind_receiver_resp ESME_RBINDFAIL
        ([0x80, 0, 0, 2], 0x0E),    // bind_transmitter_resp ESME_RINVPASWD
        ([0x80, 0, 0, 9], 0x0F),    // bind_transceiver_resp ESME_RINVSYSID
        ([0x80, 0, 0, 4], 0x58),    // submit_sm_resp ESME_RTHROTTLED
        ([0x80, 0, 0, 5], 0x66),    // deliver_sm_resp ESME_RX_R_APPN
        ([0x80, 0, 0, 0x21], 0x45), // submit_multi_resp ESME_RSUBMITFAIL
        ([0x80, 0, 1, 3], 0xFE),    // data_sm_resp ESME_RDELIVERYFAILURE
        ([0x80, 0, 0, 3], 0x67),    // query_sm_resp ESME_RQUERYFAIL
    ] {
        let frame = header(0x10, id, status, 7);
        let pdu = round_trip(&frame);
        assert_eq!(pdu.command_status, u32::from(status));
        assert_eq!(
            pdu,
            Pdu::error_response(&request_of(&frame), u32::from(status))
        );
        let empty = match &pdu.body {
            Body::BindReceiverResp(b)
            | Body::BindTransmitterResp(b)
            | Body::BindTransceiverResp(b) => b.is_none(),
            Body::SubmitSmResp(b) | Body::DeliverSmResp(b) => b.is_none(),
            Body::SubmitMultiResp(b) => b.is_none(),
            Body::DataSmResp(b) => b.is_none(),
            Body::QuerySmResp(b) => b.is_none(),
            other => panic!("{other:?}"),
        };
        assert!(empty, "{pdu:?}");
    }
}

/// The request header a response frame answers.
fn request_of(response: &[u8]) -> Header {
    let h = Header::peek(response).unwrap();
    Header {
        command_length: 16,
        command_id: h.command_id & !0x8000_0000,
        command_status: 0,
        sequence_number: h.sequence_number,
    }
}

#[test]
fn header_only_pdus() {
    for (id, cmd) in [
        ([0, 0, 0, 6], CommandId::Unbind),
        ([0x80, 0, 0, 6], CommandId::UnbindResp),
        ([0, 0, 0, 0x15], CommandId::EnquireLink),
        ([0x80, 0, 0, 0x15], CommandId::EnquireLinkResp),
        ([0x80, 0, 0, 8], CommandId::CancelSmResp),
        ([0x80, 0, 0, 7], CommandId::ReplaceSmResp),
        ([0x80, 0, 0, 0], CommandId::GenericNack),
    ] {
        let frame = header(0x10, id, 0, 0x2A);
        assert_eq!(round_trip(&frame).command_id(), cmd);
    }
    let nack = round_trip(&header(0x10, [0x80, 0, 0, 0], 3, 9));
    assert_eq!(nack.command_status, status::ESME_RINVCMDID);
}

#[test]
fn outbind() {
    let frame = cat(&[&header(0x18, [0, 0, 0, 0x0B], 0, 1), b"SMSC\0pw\0"]);
    let Body::Outbind(o) = round_trip(&frame).body else {
        panic!()
    };
    assert_eq!(
        (o.system_id.as_bytes(), o.password.as_bytes()),
        (&b"SMSC"[..], &b"pw"[..])
    );
}

/// submit_sm carrying the İYS TLVs and an unknown vendor TLV after them.
pub(super) fn submit_sm_with_iys_tlvs() -> Vec<u8> {
    cat(&[
        &header(0x6A, [0, 0, 0, 4], 0, 2),
        b"\0",                           // service_type
        b"\x05\x00MARKA\0",              // source ton, npi, addr
        b"\x01\x01905321234567\0",       // dest ton, npi, addr
        b"\x00\x00\x00",                 // esm_class, protocol_id, priority_flag
        b"\0",                           // schedule_delivery_time
        b"250101120000000+\0",           // validity_period
        b"\x01\x00\x00\x00",             // registered_delivery, replace, data_coding, default id
        b"\x0BHello world",              // sm_length, short_message
        b"\x14\x00\x00\x0211",           // iys_message_type "11"
        b"\x14\x01\x00\x06123456",       // iys_brand_code
        b"\x14\x02\x00\x0242",           // iys_retailer_code
        b"\x15\x00\x00\x03\x01\x02\x03", // unknown 0x1500
    ])
}

#[test]
fn submit_sm_with_iys_and_unknown_tlvs() {
    let frame = submit_sm_with_iys_tlvs();
    let pdu = round_trip(&frame);
    assert_eq!(pdu.sequence_number, 2);
    let Body::SubmitSm(sm) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(sm.service_type.is_empty());
    assert_eq!((sm.source_addr_ton, sm.source_addr_npi), (5, 0));
    assert_eq!(sm.source_addr.as_bytes(), b"MARKA");
    assert_eq!((sm.dest_addr_ton, sm.dest_addr_npi), (1, 1));
    assert_eq!(sm.destination_addr.to_str(), Some("905321234567"));
    assert!(sm.schedule_delivery_time.is_empty());
    assert_eq!(sm.validity_period.as_bytes(), b"250101120000000+");
    assert_eq!(sm.registered_delivery, 1);
    assert_eq!(sm.short_message.as_bytes(), b"Hello world");
    assert_eq!(sm.payload(), b"Hello world");
    assert_eq!(sm.concat_info(), None);
    assert_eq!(sm.tlvs.len(), 4);
    assert_eq!(
        sm.tlvs.iys_message_type(),
        Ok(Some(IysMessageType::CommercialIndividual))
    );
    assert_eq!(sm.tlvs.iys_brand_code(), Ok(Some(123456)));
    assert_eq!(sm.tlvs.iys_retailer_code(), Ok(Some(42)));
    assert_eq!(
        sm.tlvs.get(0x1500).map(|t| &t.value()[..]),
        Some(&[1u8, 2, 3][..])
    );

    // The gate strips its own TLVs before forwarding; the rest is unchanged.
    let mut forwarded = pdu.clone();
    let Body::SubmitSm(sm) = &mut forwarded.body else {
        unreachable!()
    };
    assert_eq!(sm.tlvs.remove_iys(), 3);
    let mut expected = frame[..frame.len() - 29].to_vec();
    expected.extend_from_slice(b"\x15\x00\x00\x03\x01\x02\x03");
    expected[3] = 0x54;
    assert_eq!(forwarded.to_vec(), expected);
    round_trip(&expected);
}

#[test]
fn submit_sm_with_a_concatenation_udh() {
    let frame = cat(&[
        &header(0x3C, [0, 0, 0, 4], 0, 3),
        b"\0\x00\x004545\0\x01\x01905321234567\0",
        b"\x40\x00\x00\0\0\x00\x00\x00\x00",
        b"\x0B\x05\x00\x03\xA7\x02\x01part1",
    ]);
    let Body::SubmitSm(sm) = round_trip(&frame).body else {
        panic!()
    };
    assert_eq!(sm.esm_class, ESM_CLASS_UDHI);
    assert_eq!(
        sm.concat_info(),
        Some(ConcatInfo {
            reference: 0xA7,
            total: 2,
            seq: 1
        })
    );
}

#[test]
fn deliver_sm_delivery_receipt_and_its_resp() {
    let frame = cat(&[
        &header(0x58, [0, 0, 0, 5], 0, 0x11),
        b"\0\x01\x01905321234567\0\x05\x00MARKA\0",
        b"\x04\x00\x00\0\0\x00\x00\x00\x00",
        b"\x16id:abc123 stat:DELIVRD",
        b"\x00\x1E\x00\x07abc123\0",
        b"\x04\x27\x00\x01\x02",
    ]);
    let pdu = round_trip(&frame);
    let Body::DeliverSm(dlr) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(dlr.esm_class, 0x04);
    assert_eq!(dlr.tlvs.receipted_message_id(), Ok(Some(&b"abc123"[..])));
    assert_eq!(dlr.tlvs.message_state(), Ok(Some(2)));

    let resp = cat(&[&header(0x11, [0x80, 0, 0, 5], 0, 0x11), b"\0"]);
    let Body::DeliverSmResp(Some(r)) = round_trip(&resp).body else {
        panic!()
    };
    assert!(r.message_id.is_empty());
    // Some ESMEs leave out the unused message_id even on success.
    let bare = header(0x10, [0x80, 0, 0, 5], 0, 0x11);
    assert_eq!(round_trip(&bare).body, Body::DeliverSmResp(None));
}

#[test]
fn submit_sm_resp_success_and_error_with_empty_message_id() {
    let ok = cat(&[&header(0x19, [0x80, 0, 0, 4], 0, 2), b"msg-0001\0"]);
    let Body::SubmitSmResp(Some(r)) = round_trip(&ok).body else {
        panic!()
    };
    assert_eq!(r.message_id.as_bytes(), b"msg-0001");
    // Many SMSCs answer errors with a lone NUL rather than no body; both round-trip.
    let err = cat(&[&header(0x11, [0x80, 0, 0, 4], 0x45, 2), b"\0"]);
    let pdu = round_trip(&err);
    assert_eq!(pdu.command_status, status::ESME_RSUBMITFAIL);
    assert!(matches!(pdu.body, Body::SubmitSmResp(Some(ref r)) if r.message_id.is_empty()));
}

#[test]
fn submit_multi_with_an_sme_and_a_distribution_list() {
    let frame = cat(&[
        &header(0x42, [0, 0, 0, 0x21], 0, 4),
        b"\0\x05\x00MARKA\0",
        b"\x02",                       // number_of_dests
        b"\x01\x01\x01905321234567\0", // SME address
        b"\x02VIP-LIST\0",             // distribution list
        b"\x00\x00\x00\0\0\x00\x00\x08\x00",
        b"\x04\x00H\x00i",
    ]);
    let Body::SubmitMulti(m) = round_trip(&frame).body else {
        panic!()
    };
    assert_eq!(m.source_addr.as_bytes(), b"MARKA");
    assert_eq!(m.dest_addresses.len(), 2);
    assert_eq!(
        m.dest_addresses[0],
        DestAddress::Sme {
            ton: 1,
            npi: 1,
            addr: COctetString::new("905321234567").unwrap()
        }
    );
    assert_eq!(
        m.dest_addresses[1],
        DestAddress::DistributionList(COctetString::new("VIP-LIST").unwrap())
    );
    assert_eq!(m.data_coding, 8);
    assert_eq!(m.short_message.as_bytes(), b"\x00H\x00i");
}

#[test]
fn submit_multi_resp_with_unsuccessful_destinations() {
    let frame = cat(&[
        &header(0x3A, [0x80, 0, 0, 0x21], 0, 4),
        b"m1\0\x02",
        b"\x01\x01905321234567\0\x00\x00\x00\x0B",
        b"\x01\x01905551112233\0\x00\x00\x04\x01",
    ]);
    let Body::SubmitMultiResp(Some(r)) = round_trip(&frame).body else {
        panic!()
    };
    assert_eq!(r.message_id.as_bytes(), b"m1");
    let failed: Vec<(&[u8], u32)> = r
        .unsuccess_smes
        .iter()
        .map(|u| (u.addr.as_bytes(), u.error_status_code))
        .collect();
    assert_eq!(
        failed,
        [(&b"905321234567"[..], 0x0B), (&b"905551112233"[..], 0x401)]
    );
    assert_eq!((r.unsuccess_smes[1].ton, r.unsuccess_smes[1].npi), (1, 1));
}

#[test]
fn data_sm_with_message_payload_and_its_resp() {
    let frame = cat(&[
        &header(0x40, [0, 0, 1, 3], 0, 5),
        b"\0\x05\x00MARKA\0\x01\x01905321234567\0\x00\x00\x00",
        b"\x04\x24\x00\x0Cpayload text",
        b"\x14\x00\x00\x01\x0C", // iys_message_type as one integer octet
    ]);
    let Body::DataSm(d) = round_trip(&frame).body else {
        panic!()
    };
    assert_eq!(d.tlvs.message_payload(), Some(&b"payload text"[..]));
    assert_eq!(
        d.tlvs.iys_message_type(),
        Ok(Some(IysMessageType::CommercialMerchant))
    );
    assert_eq!(d.concat_info(), None);

    let resp = cat(&[
        &header(0x18, [0x80, 0, 1, 3], 0, 5),
        b"d1\0\x04\x25\x00\x01\x00",
    ]);
    let Body::DataSmResp(Some(r)) = round_trip(&resp).body else {
        panic!()
    };
    assert_eq!(r.message_id.as_bytes(), b"d1");
    assert_eq!(
        r.tlvs
            .get(tag::DELIVERY_FAILURE_REASON)
            .map(|t| t.value().len()),
        Some(1)
    );
}

#[test]
fn query_sm_and_query_sm_resp() {
    let q = cat(&[
        &header(0x21, [0, 0, 0, 3], 0, 6),
        b"msg-0001\0\x05\x00MARKA\0",
    ]);
    let Body::QuerySm(q) = round_trip(&q).body else {
        panic!()
    };
    assert_eq!(q.message_id.as_bytes(), b"msg-0001");
    let r = cat(&[
        &header(0x2C, [0x80, 0, 0, 3], 0, 6),
        b"msg-0001\x00250101120000000+\0\x02\x00",
    ]);
    let Body::QuerySmResp(Some(r)) = round_trip(&r).body else {
        panic!()
    };
    assert_eq!(r.final_date.as_bytes(), b"250101120000000+");
    assert_eq!((r.message_state, r.error_code), (2, 0));
}

#[test]
fn cancel_sm_and_replace_sm() {
    let c = cat(&[
        &header(0x31, [0, 0, 0, 8], 0, 7),
        b"\0msg-0001\0\x05\x00MARKA\0\x01\x01905321234567\0",
    ]);
    let Body::CancelSm(c) = round_trip(&c).body else {
        panic!()
    };
    assert_eq!(c.destination_addr.as_bytes(), b"905321234567");
    let r = cat(&[
        &header(0x39, [0, 0, 0, 7], 0, 8),
        b"msg-0001\0\x05\x00MARKA\0\x00250102120000000+\0\x01\x00\x03new",
    ]);
    let Body::ReplaceSm(r) = round_trip(&r).body else {
        panic!()
    };
    assert_eq!(r.short_message.as_bytes(), b"new");
    assert_eq!(r.validity_period.as_bytes(), b"250102120000000+");
}

#[test]
fn alert_notification() {
    let frame = cat(&[
        &header(0x2C, [0, 0, 1, 2], 0, 9),
        b"\x01\x01905321234567\0\x05\x00MARKA\0",
        b"\x04\x22\x00\x01\x00",
    ]);
    let Body::AlertNotification(a) = round_trip(&frame).body else {
        panic!()
    };
    assert_eq!(a.esme_addr.as_bytes(), b"MARKA");
    assert_eq!(
        a.tlvs
            .get(tag::MS_AVAILABILITY_STATUS)
            .map(|t| t.value()[0]),
        Some(0)
    );
}

#[test]
fn error_response_picks_the_matching_response_or_generic_nack() {
    let req = |id: u32| Header {
        command_length: 16,
        command_id: id,
        command_status: 0,
        sequence_number: 77,
    };
    let refused = Pdu::error_response(&req(4), 0x401);
    assert_eq!(
        refused.to_vec(),
        [0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 4, 1, 0, 0, 0, 77]
    );
    assert_eq!(
        Pdu::error_response(&req(0x15), 8).body,
        Body::EnquireLinkResp
    );
    assert_eq!(Pdu::error_response(&req(8), 0x11).body, Body::CancelSmResp);
    assert_eq!(
        Pdu::error_response(&req(0x103), 0xC4).body,
        Body::DataSmResp(None)
    );
    for no_own_response in [0x0B, 0x102, 0x0A, 0x8000_0004, 0x8000_0000] {
        assert_eq!(
            Pdu::error_response(&req(no_own_response), 3).body,
            Body::GenericNack
        );
    }
}
