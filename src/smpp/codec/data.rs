//! data_sm (§4.7.1) and data_sm_resp (§4.7.2).

use bytes::BufMut;

use super::concat::{concat_info, ConcatInfo};
use super::error::DecodeError;
use super::primitives::{c_len, COctetString, Codec, Put, Reader};
use super::tlv::Tlvs;

/// The body of data_sm: the message travels in the `message_payload` TLV.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DataSm {
    /// The SMS application service, usually empty.
    pub service_type: COctetString<6>,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The sender address (up to 64 characters in data_sm).
    pub source_addr: COctetString<65>,
    /// TON of `destination_addr`.
    pub dest_addr_ton: u8,
    /// NPI of `destination_addr`.
    pub dest_addr_npi: u8,
    /// The recipient address (up to 64 characters in data_sm).
    pub destination_addr: COctetString<65>,
    /// Messaging mode and type (0x40: the payload starts with a UDH).
    pub esm_class: u8,
    /// Which receipts are wanted.
    pub registered_delivery: u8,
    /// The coding scheme of the message.
    pub data_coding: u8,
    /// The TLVs in wire order, `message_payload` among them.
    pub tlvs: Tlvs,
}

impl DataSm {
    /// Which part of a concatenated message this is (UDH in the payload, or SAR TLVs).
    pub fn concat_info(&self) -> Option<ConcatInfo> {
        concat_info(self.esm_class, &[], &self.tlvs)
    }
}

impl Codec for DataSm {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DataSm {
            service_type: r.c_octet_string("service_type")?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.c_octet_string("destination_addr")?,
            esm_class: r.u8("esm_class")?,
            registered_delivery: r.u8("registered_delivery")?,
            data_coding: r.u8("data_coding")?,
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
        out.put_u8(self.registered_delivery);
        out.put_u8(self.data_coding);
        self.tlvs.encode(out);
    }
}

/// The body of data_sm_resp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DataSmResp {
    /// The SMSC's id for the message.
    pub message_id: COctetString<65>,
    /// `delivery_failure_reason`, `network_error_code`, ... in wire order.
    pub tlvs: Tlvs,
}

impl Codec for DataSmResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DataSmResp {
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
