//! query_sm (§4.8.1) and query_sm_resp (§4.8.2).

use bytes::BufMut;

use super::error::DecodeError;
use super::primitives::{c_len, time_len, COctetString, Codec, Put, Reader, SmppTime};

/// The body of query_sm: the state of a message submitted earlier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QuerySm {
    /// The SMSC's id for the message.
    pub message_id: COctetString<65>,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The sender address the message was submitted with.
    pub source_addr: COctetString<21>,
}

impl Codec for QuerySm {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(QuerySm {
            message_id: r.c_octet_string("message_id")?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.message_id) + 2 + c_len(&self.source_addr)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.message_id);
        out.put_u8(self.source_addr_ton);
        out.put_u8(self.source_addr_npi);
        out.put_c(&self.source_addr);
    }
}

/// The body of query_sm_resp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QuerySmResp {
    /// The SMSC's id for the message.
    pub message_id: COctetString<65>,
    /// When the message reached its final state; empty if it has not.
    pub final_date: SmppTime,
    /// The message's state (§5.2.28).
    pub message_state: u8,
    /// Network error code when the state is final and failed.
    pub error_code: u8,
}

impl Codec for QuerySmResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(QuerySmResp {
            message_id: r.c_octet_string("message_id")?,
            final_date: r.time("final_date")?,
            message_state: r.u8("message_state")?,
            error_code: r.u8("error_code")?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.message_id) + time_len(&self.final_date) + 2
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.message_id);
        out.put_time(&self.final_date);
        out.put_u8(self.message_state);
        out.put_u8(self.error_code);
    }
}
