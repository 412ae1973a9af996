//! cancel_sm (§4.9.1); its response is header-only.

use bytes::BufMut;

use super::error::DecodeError;
use super::primitives::{c_len, COctetString, Codec, Put, Reader};

/// The body of cancel_sm: cancel one pending message, or all from a source to a
/// destination (and service type) when `message_id` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CancelSm {
    /// The service type of the messages to cancel.
    pub service_type: COctetString<6>,
    /// The SMSC's id for the message; empty to cancel by addresses.
    pub message_id: COctetString<65>,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The sender address the messages were submitted with.
    pub source_addr: COctetString<21>,
    /// TON of `destination_addr`.
    pub dest_addr_ton: u8,
    /// NPI of `destination_addr`.
    pub dest_addr_npi: u8,
    /// The recipient address.
    pub destination_addr: COctetString<21>,
}

impl Codec for CancelSm {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CancelSm {
            service_type: r.c_octet_string("service_type")?,
            message_id: r.c_octet_string("message_id")?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.c_octet_string("destination_addr")?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.service_type)
            + c_len(&self.message_id)
            + 2
            + c_len(&self.source_addr)
            + 2
            + c_len(&self.destination_addr)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.service_type);
        out.put_c(&self.message_id);
        out.put_u8(self.source_addr_ton);
        out.put_u8(self.source_addr_npi);
        out.put_c(&self.source_addr);
        out.put_u8(self.dest_addr_ton);
        out.put_u8(self.dest_addr_npi);
        out.put_c(&self.destination_addr);
    }
}
