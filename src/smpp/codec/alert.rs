//! alert_notification (§4.12.1): a mobile became reachable; it has no response.

use bytes::BufMut;

use super::error::DecodeError;
use super::primitives::{c_len, COctetString, Codec, Put, Reader};
use super::tlv::Tlvs;

/// The body of alert_notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AlertNotification {
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The mobile that became reachable.
    pub source_addr: COctetString<65>,
    /// TON of `esme_addr`.
    pub esme_addr_ton: u8,
    /// NPI of `esme_addr`.
    pub esme_addr_npi: u8,
    /// The ESME that asked to be alerted.
    pub esme_addr: COctetString<65>,
    /// `ms_availability_status` and any other TLVs.
    pub tlvs: Tlvs,
}

impl Codec for AlertNotification {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AlertNotification {
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
            esme_addr_ton: r.u8("esme_addr_ton")?,
            esme_addr_npi: r.u8("esme_addr_npi")?,
            esme_addr: r.c_octet_string("esme_addr")?,
            tlvs: Tlvs::decode(r)?,
        })
    }

    fn encoded_len(&self) -> usize {
        2 + c_len(&self.source_addr) + 2 + c_len(&self.esme_addr) + self.tlvs.encoded_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.source_addr_ton);
        out.put_u8(self.source_addr_npi);
        out.put_c(&self.source_addr);
        out.put_u8(self.esme_addr_ton);
        out.put_u8(self.esme_addr_npi);
        out.put_c(&self.esme_addr);
        self.tlvs.encode(out);
    }
}
