//! bind_transmitter / bind_receiver / bind_transceiver, their responses, and outbind.

use bytes::BufMut;

use super::error::DecodeError;
use super::primitives::{c_len, COctetString, Codec, Put, Reader};
use super::tlv::Tlvs;

/// The body of the three bind requests (§4.1.1, §4.1.3, §4.1.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Bind {
    /// The account name.
    pub system_id: COctetString<16>,
    /// The account password.
    pub password: COctetString<9>,
    /// The kind of ESME.
    pub system_type: COctetString<13>,
    /// The SMPP version the ESME speaks (0x34 for v3.4).
    pub interface_version: u8,
    /// TON of `address_range`.
    pub addr_ton: u8,
    /// NPI of `address_range`.
    pub addr_npi: u8,
    /// The addresses a receiver serves (a regular expression), often empty.
    pub address_range: COctetString<41>,
}

impl Codec for Bind {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Bind {
            system_id: r.c_octet_string("system_id")?,
            password: r.c_octet_string("password")?,
            system_type: r.c_octet_string("system_type")?,
            interface_version: r.u8("interface_version")?,
            addr_ton: r.u8("addr_ton")?,
            addr_npi: r.u8("addr_npi")?,
            address_range: r.c_octet_string("address_range")?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.system_id)
            + c_len(&self.password)
            + c_len(&self.system_type)
            + 3
            + c_len(&self.address_range)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.system_id);
        out.put_c(&self.password);
        out.put_c(&self.system_type);
        out.put_u8(self.interface_version);
        out.put_u8(self.addr_ton);
        out.put_u8(self.addr_npi);
        out.put_c(&self.address_range);
    }
}

/// The body of the three bind responses (§4.1.2, §4.1.4, §4.1.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BindResp {
    /// The SMSC's name.
    pub system_id: COctetString<16>,
    /// `sc_interface_version` and any other TLVs.
    pub tlvs: Tlvs,
}

impl Codec for BindResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BindResp {
            system_id: r.c_octet_string("system_id")?,
            tlvs: Tlvs::decode(r)?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.system_id) + self.tlvs.encoded_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.system_id);
        self.tlvs.encode(out);
    }
}

/// The body of outbind (§4.1.7): the SMSC asks an ESME to bind as a receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Outbind {
    /// The SMSC's name.
    pub system_id: COctetString<16>,
    /// The password the ESME expects.
    pub password: COctetString<9>,
}

impl Codec for Outbind {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Outbind {
            system_id: r.c_octet_string("system_id")?,
            password: r.c_octet_string("password")?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.system_id) + c_len(&self.password)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.system_id);
        out.put_c(&self.password);
    }
}
