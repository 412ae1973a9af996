//! replace_sm (§4.10.1); its response is header-only.

use bytes::BufMut;

use super::error::DecodeError;
use super::primitives::{
    c_len, short_message_len, time_len, COctetString, Codec, OctetString, Put, Reader, SmppTime,
};

/// The body of replace_sm: new content for a message that is still pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ReplaceSm {
    /// The SMSC's id for the message.
    pub message_id: COctetString<65>,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The sender address the message was submitted with.
    pub source_addr: COctetString<21>,
    /// New delivery time; empty to keep the old one.
    pub schedule_delivery_time: SmppTime,
    /// New validity period; empty to keep the old one.
    pub validity_period: SmppTime,
    /// Which receipts are wanted.
    pub registered_delivery: u8,
    /// A canned message's id, or 0.
    pub sm_default_msg_id: u8,
    /// The new message.
    pub short_message: OctetString<254>,
}

impl Codec for ReplaceSm {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplaceSm {
            message_id: r.c_octet_string("message_id")?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
            schedule_delivery_time: r.time("schedule_delivery_time")?,
            validity_period: r.time("validity_period")?,
            registered_delivery: r.u8("registered_delivery")?,
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: r.short_message()?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.message_id)
            + 2
            + c_len(&self.source_addr)
            + time_len(&self.schedule_delivery_time)
            + time_len(&self.validity_period)
            + 2
            + short_message_len(&self.short_message)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.message_id);
        out.put_u8(self.source_addr_ton);
        out.put_u8(self.source_addr_npi);
        out.put_c(&self.source_addr);
        out.put_time(&self.schedule_delivery_time);
        out.put_time(&self.validity_period);
        out.put_u8(self.registered_delivery);
        out.put_u8(self.sm_default_msg_id);
        out.put_short_message(&self.short_message);
    }
}
