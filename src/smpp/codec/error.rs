//! What can go wrong while framing, decoding or building PDUs.

use thiserror::Error;

use super::status;

/// A frame's `command_length` that no valid PDU can have; the stream cannot be
/// resynchronised after it, so the session answers and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// `command_length` is below the 16-octet header.
    #[error("command_length {0} is shorter than the 16-octet PDU header")]
    TooShort(u32),
    /// `command_length` is above the configured maximum.
    #[error("command_length {len} exceeds the configured maximum of {max} octets")]
    TooLong {
        /// The `command_length` the peer sent.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
}

impl FrameError {
    /// The `command_status` to answer with (in a `generic_nack`).
    pub fn command_status(&self) -> u32 {
        status::ESME_RINVCMDLEN
    }
}

/// A whole frame that is not a valid SMPP v3.4 PDU: which field, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {kind}")]
pub struct DecodeError {
    /// The spec name of the field at fault (`source_addr`, `sm_length`, `tlv_value`, ...).
    pub field: &'static str,
    /// What was wrong with it.
    pub kind: DecodeErrorKind,
}

/// The ways a field can be invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    /// The PDU ends before this field.
    #[error("the PDU ends before this field")]
    UnexpectedEof,
    /// A C-Octet String runs to the end of the PDU without its NUL terminator.
    #[error("no NUL terminator before the end of the PDU")]
    NotNullTerminated,
    /// A field is longer than the spec allows (`max` counts content octets; for a
    /// C-Octet String that is the spec maximum minus its NUL).
    #[error("longer than the maximum of {max} octets")]
    TooLong {
        /// The largest content length allowed.
        max: usize,
    },
    /// A length field points past the end of the PDU.
    #[error("declares {len} octets but only {available} remain in the PDU")]
    LengthOverrun {
        /// The declared length.
        len: usize,
        /// Octets left in the PDU.
        available: usize,
    },
    /// A value outside what the spec allows; the text says what is allowed.
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
    /// Octets left over after the last field of a PDU that takes no TLVs.
    #[error("{0} octets left over after the last field")]
    TrailingBytes(usize),
    /// A TLV whose length runs past the end of the PDU.
    #[error("TLV 0x{tag:04X} declares {len} octets but only {available} remain in the PDU")]
    TlvLengthOverrun {
        /// The TLV's tag.
        tag: u16,
        /// The TLV's declared length.
        len: u16,
        /// Octets left in the PDU after its tag and length.
        available: usize,
    },
    /// A known TLV whose length does not match its definition.
    #[error("TLV 0x{tag:04X} has {len} octets; it must have {expected}")]
    TlvInvalidLength {
        /// The TLV's tag.
        tag: u16,
        /// The TLV's length.
        len: usize,
        /// What the definition requires, in words.
        expected: &'static str,
    },
    /// A `command_id` this codec does not know.
    #[error("unknown command_id 0x{0:08X}")]
    UnknownCommand(u32),
    /// `command_length` disagrees with the frame handed to the decoder.
    #[error("command_length {command_length} disagrees with the {frame_len}-octet frame")]
    LengthMismatch {
        /// The `command_length` in the header.
        command_length: u32,
        /// The length of the frame given to `Pdu::decode`.
        frame_len: usize,
    },
}

impl DecodeError {
    pub(super) const fn new(field: &'static str, kind: DecodeErrorKind) -> Self {
        DecodeError { field, kind }
    }

    /// The `command_status` a proxy should answer the offending request with.
    pub fn command_status(&self) -> u32 {
        use DecodeErrorKind::*;
        match self.kind {
            UnknownCommand(_) => return status::ESME_RINVCMDID,
            LengthMismatch { .. } | TrailingBytes(_) => return status::ESME_RINVCMDLEN,
            TlvLengthOverrun { .. } | TlvInvalidLength { .. } => return status::ESME_RINVPARLEN,
            _ => {}
        }
        match self.field {
            "sm_length" | "short_message" => status::ESME_RINVMSGLEN,
            "tlv_tag" | "tlv_length" => status::ESME_RINVOPTPARSTREAM,
            // A truncated fixed-size field means the command_length is too small.
            _ if self.kind == UnexpectedEof => status::ESME_RINVCMDLEN,
            "source_addr" => status::ESME_RINVSRCADR,
            "destination_addr" => status::ESME_RINVDSTADR,
            "system_id" => status::ESME_RINVSYSID,
            "password" => status::ESME_RINVPASWD,
            "system_type" => status::ESME_RINVSYSTYP,
            "service_type" => status::ESME_RINVSERTYP,
            "message_id" => status::ESME_RINVMSGID,
            "esm_class" => status::ESME_RINVESMCLASS,
            "number_of_dests" => status::ESME_RINVNUMDESTS,
            "dest_flag" => status::ESME_RINVDESTFLAG,
            "dl_name" => status::ESME_RINVDLNAME,
            "schedule_delivery_time" => status::ESME_RINVSCHED,
            "validity_period" => status::ESME_RINVEXPIRY,
            "sar_msg_ref_num"
            | "sar_total_segments"
            | "sar_segment_seqnum"
            | "receipted_message_id"
            | "message_state"
            | "sc_interface_version"
            | "iys_message_type"
            | "iys_brand_code"
            | "iys_retailer_code" => status::ESME_RINVOPTPARAMVAL,
            _ => status::ESME_RSYSERR,
        }
    }
}

/// A value that does not fit the SMPP field it is meant for (when building PDUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ValueError {
    /// Longer than the field allows.
    #[error("{len} octets is longer than the maximum of {max}")]
    TooLong {
        /// The value's length.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// A C-Octet String cannot carry a NUL octet.
    #[error("a C-Octet String cannot contain a NUL octet")]
    ContainsNul,
    /// An SMPP time is empty or exactly 16 characters (`YYMMDDhhmmsstnnp`).
    #[error("{0} octets: an SMPP time must be empty or exactly 16 characters")]
    TimeLength(usize),
    /// A list with too few or too many entries.
    #[error("{len} entries; the field allows {min} to {max}")]
    Count {
        /// The list's length.
        len: usize,
        /// The fewest entries allowed.
        min: usize,
        /// The most entries allowed.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_and_the_fault() {
        let e = DecodeError::new("source_addr", DecodeErrorKind::TooLong { max: 20 });
        assert_eq!(
            e.to_string(),
            "source_addr: longer than the maximum of 20 octets"
        );
        assert_eq!(e.command_status(), status::ESME_RINVSRCADR);
        let e = DecodeError::new(
            "tlv_value",
            DecodeErrorKind::TlvLengthOverrun {
                tag: 0x0424,
                len: 300,
                available: 2,
            },
        );
        assert_eq!(
            e.to_string(),
            "tlv_value: TLV 0x0424 declares 300 octets but only 2 remain in the PDU"
        );
        assert_eq!(e.command_status(), status::ESME_RINVPARLEN);
    }

    #[test]
    fn truncated_fixed_fields_map_to_command_length_but_messages_to_msglen() {
        let eof = |field| DecodeError::new(field, DecodeErrorKind::UnexpectedEof);
        assert_eq!(eof("esm_class").command_status(), status::ESME_RINVCMDLEN);
        assert_eq!(
            eof("short_message").command_status(),
            status::ESME_RINVMSGLEN
        );
        assert_eq!(
            eof("tlv_length").command_status(),
            status::ESME_RINVOPTPARSTREAM
        );
        let bad = DecodeError::new("address_range", DecodeErrorKind::NotNullTerminated);
        assert_eq!(bad.command_status(), status::ESME_RSYSERR);
        assert_eq!(
            FrameError::TooShort(4).command_status(),
            status::ESME_RINVCMDLEN
        );
    }
}
