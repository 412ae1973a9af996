//! submit_sm and deliver_sm (the same body, §4.4.1 and §4.6.1) and their responses.

use bytes::BufMut;

use super::concat::{concat_info, ConcatInfo};
use super::error::DecodeError;
use super::primitives::{
    c_len, short_message_len, time_len, COctetString, Codec, OctetString, Put, Reader, SmppTime,
};
use super::tlv::{TlvRead, Tlvs};

/// The body of submit_sm and deliver_sm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SubmitSm {
    /// The SMS application service (`CMT`, ...), usually empty.
    pub service_type: COctetString<6>,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The sender (originator) address.
    pub source_addr: COctetString<21>,
    /// TON of `destination_addr`.
    pub dest_addr_ton: u8,
    /// NPI of `destination_addr`.
    pub dest_addr_npi: u8,
    /// The recipient address.
    pub destination_addr: COctetString<21>,
    /// Messaging mode and type; 0x40 means `short_message` starts with a UDH, 0x04
    /// (in deliver_sm) marks a delivery receipt.
    pub esm_class: u8,
    /// GSM protocol id.
    pub protocol_id: u8,
    /// Priority level.
    pub priority_flag: u8,
    /// When to deliver; empty for "now".
    pub schedule_delivery_time: SmppTime,
    /// Until when to try; empty for the SMSC default.
    pub validity_period: SmppTime,
    /// Which receipts are wanted.
    pub registered_delivery: u8,
    /// Whether to replace a pending message.
    pub replace_if_present_flag: u8,
    /// The coding scheme of the message.
    pub data_coding: u8,
    /// A canned message's id, or 0.
    pub sm_default_msg_id: u8,
    /// The message (its length is the wire's `sm_length`); empty when the text is
    /// in the `message_payload` TLV.
    pub short_message: OctetString<254>,
    /// The TLVs in wire order.
    pub tlvs: Tlvs,
}

/// deliver_sm has the submit_sm body.
pub type DeliverSm = SubmitSm;

impl SubmitSm {
    /// Which part of a concatenated message this is, from the UDH (when esm_class
    /// has 0x40) or else the SAR TLVs; `None` for a single message or invalid info.
    pub fn concat_info(&self) -> Option<ConcatInfo> {
        concat_info(self.esm_class, &self.short_message, &self.tlvs)
    }

    /// The message text octets: `short_message`, or `message_payload` when that is empty.
    pub fn payload(&self) -> &[u8] {
        if self.short_message.is_empty() {
            if let Some(payload) = self.tlvs.message_payload() {
                return payload;
            }
        }
        &self.short_message
    }
}

impl Codec for SubmitSm {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SubmitSm {
            service_type: r.c_octet_string("service_type")?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.c_octet_string("destination_addr")?,
            esm_class: r.u8("esm_class")?,
            protocol_id: r.u8("protocol_id")?,
            priority_flag: r.u8("priority_flag")?,
            schedule_delivery_time: r.time("schedule_delivery_time")?,
            validity_period: r.time("validity_period")?,
            registered_delivery: r.u8("registered_delivery")?,
            replace_if_present_flag: r.u8("replace_if_present_flag")?,
            data_coding: r.u8("data_coding")?,
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: r.short_message()?,
            tlvs: Tlvs::decode(r)?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.service_type)
            + 2
            + c_len(&self.source_addr)
            + 2
            + c_len(&self.destination_addr)
            + 3
            + time_len(&self.schedule_delivery_time)
            + time_len(&self.validity_period)
            + 4
            + short_message_len(&self.short_message)
            + self.tlvs.encoded_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.service_type);
        out.put_u8(self.source_addr_ton);
        out.put_u8(self.source_addr_npi);
        out.put_c(&self.source_addr);
        out.put_u8(self.dest_addr_ton);
        out.put_u8(self.dest_addr_npi);
        out.put_c(&self.destination_addr);
        out.put_u8(self.esm_class);
        out.put_u8(self.protocol_id);
        out.put_u8(self.priority_flag);
        out.put_time(&self.schedule_delivery_time);
        out.put_time(&self.validity_period);
        out.put_u8(self.registered_delivery);
        out.put_u8(self.replace_if_present_flag);
        out.put_u8(self.data_coding);
        out.put_u8(self.sm_default_msg_id);
        out.put_short_message(&self.short_message);
        self.tlvs.encode(out);
    }
}

/// The body of submit_sm_resp and deliver_sm_resp (§4.4.2, §4.6.2). TLVs are
/// not in v3.4 but SMPP v5.0 peers send them; they are carried through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SubmitSmResp {
    /// The SMSC's id for the message (unused, normally empty, in deliver_sm_resp).
    pub message_id: COctetString<65>,
    /// TLVs after the message id (none in v3.4).
    pub tlvs: Tlvs,
}

/// deliver_sm_resp has the submit_sm_resp body.
pub type DeliverSmResp = SubmitSmResp;

impl Codec for SubmitSmResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SubmitSmResp {
            message_id: r.c_octet_string("message_id")?,
            tlvs: Tlvs::decode(r)?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.message_id) + self.tlvs.encoded_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.message_id);
        self.tlvs.encode(out);
    }
}
