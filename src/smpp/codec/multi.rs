//! submit_multi (§4.5.1) and submit_multi_resp (§4.5.2).

use bytes::BufMut;

use super::concat::{concat_info, ConcatInfo};
use super::error::{DecodeError, DecodeErrorKind};
use super::primitives::{
    c_len, counted_len, put_counted, short_message_len, time_len, BoundedVec, COctetString, Codec,
    OctetString, Put, Reader, SmppTime,
};
use super::tlv::Tlvs;

/// One destination of a submit_multi.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DestAddress {
    /// `dest_flag` 1: an SME address.
    Sme {
        /// Type of number.
        ton: u8,
        /// Numbering plan.
        npi: u8,
        /// The address.
        addr: COctetString<21>,
    },
    /// `dest_flag` 2: a distribution list defined on the SMSC, by name.
    DistributionList(COctetString<21>),
}

impl DestAddress {
    const SME: u8 = 1;
    const DISTRIBUTION_LIST: u8 = 2;
}

impl Codec for DestAddress {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("dest_flag")? {
            Self::SME => Ok(DestAddress::Sme {
                ton: r.u8("dest_addr_ton")?,
                npi: r.u8("dest_addr_npi")?,
                addr: r.c_octet_string("destination_addr")?,
            }),
            Self::DISTRIBUTION_LIST => {
                Ok(DestAddress::DistributionList(r.c_octet_string("dl_name")?))
            }
            _ => Err(DecodeError::new(
                "dest_flag",
                DecodeErrorKind::InvalidValue("must be 1 (SME address) or 2 (distribution list)"),
            )),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            DestAddress::Sme { addr, .. } => 3 + c_len(addr),
            DestAddress::DistributionList(name) => 1 + c_len(name),
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            DestAddress::Sme { ton, npi, addr } => {
                out.put_u8(Self::SME);
                out.put_u8(*ton);
                out.put_u8(*npi);
                out.put_c(addr);
            }
            DestAddress::DistributionList(name) => {
                out.put_u8(Self::DISTRIBUTION_LIST);
                out.put_c(name);
            }
        }
    }
}

/// The destinations of a submit_multi: 1 to 254.
pub type DestAddresses = BoundedVec<DestAddress, 1, 254>;

/// The body of submit_multi: submit_sm with a list of destinations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubmitMulti {
    /// The SMS application service, usually empty.
    pub service_type: COctetString<6>,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The sender address.
    pub source_addr: COctetString<21>,
    /// The recipients (`number_of_dests` on the wire is their count).
    pub dest_addresses: DestAddresses,
    /// Messaging mode and type (0x40: UDH present).
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
    /// The message; empty when it is in `message_payload`.
    pub short_message: OctetString<254>,
    /// The TLVs in wire order.
    pub tlvs: Tlvs,
}

impl SubmitMulti {
    /// Which part of a concatenated message this is (UDH or SAR TLVs).
    pub fn concat_info(&self) -> Option<ConcatInfo> {
        concat_info(self.esm_class, &self.short_message, &self.tlvs)
    }
}

impl Codec for SubmitMulti {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SubmitMulti {
            service_type: r.c_octet_string("service_type")?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.c_octet_string("source_addr")?,
            dest_addresses: r.counted("number_of_dests", "must be 1 to 254")?,
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
            + counted_len(&self.dest_addresses)
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
        put_counted(out, &self.dest_addresses);
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

/// A destination the SMSC could not accept, in submit_multi_resp.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnsuccessSme {
    /// Type of number.
    pub ton: u8,
    /// Numbering plan.
    pub npi: u8,
    /// The address.
    pub addr: COctetString<21>,
    /// Why it failed (a `command_status` value).
    pub error_status_code: u32,
}

impl Codec for UnsuccessSme {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UnsuccessSme {
            ton: r.u8("dest_addr_ton")?,
            npi: r.u8("dest_addr_npi")?,
            addr: r.c_octet_string("destination_addr")?,
            error_status_code: r.u32("error_status_code")?,
        })
    }

    fn encoded_len(&self) -> usize {
        2 + c_len(&self.addr) + 4
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.ton);
        out.put_u8(self.npi);
        out.put_c(&self.addr);
        out.put_u32(self.error_status_code);
    }
}

/// The failed destinations of a submit_multi_resp: 0 to 255.
pub type UnsuccessSmes = BoundedVec<UnsuccessSme, 0, 255>;

/// The body of submit_multi_resp. TLVs are not in v3.4 but SMPP v5.0 peers send
/// them; they are carried through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubmitMultiResp {
    /// The SMSC's id for the message.
    pub message_id: COctetString<65>,
    /// The destinations that failed (`no_unsuccess` on the wire is their count).
    pub unsuccess_smes: UnsuccessSmes,
    /// TLVs after the list (none in v3.4).
    pub tlvs: Tlvs,
}

impl Codec for SubmitMultiResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SubmitMultiResp {
            message_id: r.c_octet_string("message_id")?,
            unsuccess_smes: r.counted("no_unsuccess", "must be 0 to 255")?,
            tlvs: Tlvs::decode(r)?,
        })
    }

    fn encoded_len(&self) -> usize {
        c_len(&self.message_id) + counted_len(&self.unsuccess_smes) + self.tlvs.encoded_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_c(&self.message_id);
        put_counted(out, &self.unsuccess_smes);
        self.tlvs.encode(out);
    }
}
