//! The 16-octet PDU header, command ids, and the framing steps that need no decode:
//! finding a frame's end, peeking at its header, rewriting its sequence number.

use bytes::BufMut;

use super::error::FrameError;

/// Octets in a PDU header.
pub const HEADER_LEN: usize = 16;

/// Default cap on `command_length`: room for a full 64 KiB `message_payload`
/// plus the mandatory fields.
pub const DEFAULT_MAX_COMMAND_LENGTH: u32 = 68 * 1024;

/// A PDU header as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Octets in the whole PDU, header included.
    pub command_length: u32,
    /// The command (see [`CommandId`]).
    pub command_id: u32,
    /// The status of a response; 0 in requests.
    pub command_status: u32,
    /// Pairs a response with its request.
    pub sequence_number: u32,
}

impl Header {
    /// The header at the start of `buf`, if 16 octets have arrived. Validates nothing.
    pub fn peek(buf: &[u8]) -> Option<Header> {
        let word = |i: usize| -> Option<u32> {
            let octets: [u8; 4] = buf.get(i..i + 4)?.try_into().ok()?;
            Some(u32::from_be_bytes(octets))
        };
        Some(Header {
            command_length: word(0)?,
            command_id: word(4)?,
            command_status: word(8)?,
            sequence_number: word(12)?,
        })
    }

    /// The command, typed.
    pub fn command(&self) -> CommandId {
        CommandId::from_u32(self.command_id)
    }

    /// Writes the 16 octets.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32(self.command_length);
        out.put_u32(self.command_id);
        out.put_u32(self.command_status);
        out.put_u32(self.sequence_number);
    }
}

/// The length of the frame at the start of `buf`: `Ok(None)` while it is
/// incomplete, an error as soon as its `command_length` is impossible (below the
/// header, or above `max_command_length`).
pub fn frame_len(buf: &[u8], max_command_length: u32) -> Result<Option<usize>, FrameError> {
    let Some(octets) = buf.get(..4) else {
        return Ok(None);
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(octets);
    let len = u32::from_be_bytes(len);
    if len < HEADER_LEN as u32 {
        return Err(FrameError::TooShort(len));
    }
    if len > max_command_length {
        return Err(FrameError::TooLong {
            len,
            max: max_command_length,
        });
    }
    let len = len as usize;
    Ok((buf.len() >= len).then_some(len))
}

/// Rewrites the `sequence_number` of an encoded frame in place and returns the old
/// one, so a proxy can remap sequence numbers without re-encoding; `None` (and
/// nothing written) if `frame` is shorter than a header.
pub fn replace_sequence_number(frame: &mut [u8], sequence_number: u32) -> Option<u32> {
    let field = frame.get_mut(12..16)?;
    let mut old = [0u8; 4];
    old.copy_from_slice(field);
    field.copy_from_slice(&sequence_number.to_be_bytes());
    Some(u32::from_be_bytes(old))
}

macro_rules! command_ids {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:literal;)*) => {
        /// SMPP v3.4 command ids (§5.1.2); anything else is `Unknown`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandId {
            $($(#[$doc])* $name,)*
            /// A command id the spec does not define.
            Unknown(u32),
        }

        impl CommandId {
            /// The command for a wire value.
            pub const fn from_u32(value: u32) -> Self {
                match value {
                    $($value => CommandId::$name,)*
                    other => CommandId::Unknown(other),
                }
            }

            /// The wire value.
            pub const fn as_u32(self) -> u32 {
                match self {
                    $(CommandId::$name => $value,)*
                    CommandId::Unknown(other) => other,
                }
            }

            /// The spec name (`submit_sm`, ...), or `unknown`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(CommandId::$name => $text,)*
                    CommandId::Unknown(_) => "unknown",
                }
            }
        }
    };
}

command_ids! {
    /// generic_nack
    GenericNack = 0x8000_0000, "generic_nack";
    /// bind_receiver
    BindReceiver = 0x0000_0001, "bind_receiver";
    /// bind_receiver_resp
    BindReceiverResp = 0x8000_0001, "bind_receiver_resp";
    /// bind_transmitter
    BindTransmitter = 0x0000_0002, "bind_transmitter";
    /// bind_transmitter_resp
    BindTransmitterResp = 0x8000_0002, "bind_transmitter_resp";
    /// query_sm
    QuerySm = 0x0000_0003, "query_sm";
    /// query_sm_resp
    QuerySmResp = 0x8000_0003, "query_sm_resp";
    /// submit_sm
    SubmitSm = 0x0000_0004, "submit_sm";
    /// submit_sm_resp
    SubmitSmResp = 0x8000_0004, "submit_sm_resp";
    /// deliver_sm
    DeliverSm = 0x0000_0005, "deliver_sm";
    /// deliver_sm_resp
    DeliverSmResp = 0x8000_0005, "deliver_sm_resp";
    /// unbind
    Unbind = 0x0000_0006, "unbind";
    /// unbind_resp
    UnbindResp = 0x8000_0006, "unbind_resp";
    /// replace_sm
    ReplaceSm = 0x0000_0007, "replace_sm";
    /// replace_sm_resp
    ReplaceSmResp = 0x8000_0007, "replace_sm_resp";
    /// cancel_sm
    CancelSm = 0x0000_0008, "cancel_sm";
    /// cancel_sm_resp
    CancelSmResp = 0x8000_0008, "cancel_sm_resp";
    /// bind_transceiver
    BindTransceiver = 0x0000_0009, "bind_transceiver";
    /// bind_transceiver_resp
    BindTransceiverResp = 0x8000_0009, "bind_transceiver_resp";
    /// outbind
    Outbind = 0x0000_000B, "outbind";
    /// enquire_link
    EnquireLink = 0x0000_0015, "enquire_link";
    /// enquire_link_resp
    EnquireLinkResp = 0x8000_0015, "enquire_link_resp";
    /// submit_multi
    SubmitMulti = 0x0000_0021, "submit_multi";
    /// submit_multi_resp
    SubmitMultiResp = 0x8000_0021, "submit_multi_resp";
    /// alert_notification
    AlertNotification = 0x0000_0102, "alert_notification";
    /// data_sm
    DataSm = 0x0000_0103, "data_sm";
    /// data_sm_resp
    DataSmResp = 0x8000_0103, "data_sm_resp";
}

impl CommandId {
    /// Whether this is a response (bit 31 set), `generic_nack` included.
    pub const fn is_response(self) -> bool {
        self.as_u32() & 0x8000_0000 != 0
    }

    /// The response this request expects; `None` for responses and for the
    /// requests that have none (`outbind`, `alert_notification`) or are unknown.
    pub const fn response(self) -> Option<CommandId> {
        match self {
            CommandId::Outbind | CommandId::AlertNotification | CommandId::Unknown(_) => None,
            _ if self.is_response() => None,
            _ => Some(CommandId::from_u32(self.as_u32() | 0x8000_0000)),
        }
    }
}

impl From<u32> for CommandId {
    fn from(value: u32) -> Self {
        CommandId::from_u32(value)
    }
}

impl From<CommandId> for u32 {
    fn from(id: CommandId) -> u32 {
        id.as_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_len_waits_for_the_whole_frame() {
        let frame = [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7, 0xAA];
        for cut in 0..16 {
            assert_eq!(frame_len(&frame[..cut], 1024), Ok(None), "cut at {cut}");
        }
        assert_eq!(frame_len(&frame[..16], 1024), Ok(Some(16)));
        assert_eq!(frame_len(&frame, 1024), Ok(Some(16)));
    }

    #[test]
    fn frame_len_rejects_impossible_lengths_early() {
        assert_eq!(
            frame_len(&[0, 0, 0, 15], 1024),
            Err(FrameError::TooShort(15))
        );
        assert_eq!(frame_len(&[0, 0, 0, 0], 1024), Err(FrameError::TooShort(0)));
        assert_eq!(
            frame_len(&[0, 0, 4, 1], 1024),
            Err(FrameError::TooLong {
                len: 1025,
                max: 1024
            })
        );
        assert_eq!(
            frame_len(&[0xFF, 0xFF, 0xFF, 0xFF], DEFAULT_MAX_COMMAND_LENGTH),
            Err(FrameError::TooLong {
                len: u32::MAX,
                max: DEFAULT_MAX_COMMAND_LENGTH
            })
        );
        assert_eq!(frame_len(&[0, 0, 4, 0], 1024), Ok(None));
    }

    #[test]
    fn peek_and_replace_sequence_number() {
        let mut frame = [0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 1, 2];
        let h = Header::peek(&frame).unwrap();
        assert_eq!(h.command(), CommandId::SubmitSmResp);
        assert_eq!(h.command_status, 0x58);
        assert_eq!(h.sequence_number, 0x102);
        assert_eq!(Header::peek(&frame[..15]), None);
        assert_eq!(
            replace_sequence_number(&mut frame, 0xDEAD_BEEF),
            Some(0x102)
        );
        assert_eq!(&frame[12..], &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(replace_sequence_number(&mut frame[..15], 1), None);
    }

    #[test]
    fn command_ids_round_trip_and_pair_with_their_responses() {
        for raw in [
            0x8000_0000,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            0xB,
            0x15,
            0x21,
            0x102,
            0x103,
        ] {
            assert_eq!(CommandId::from_u32(raw).as_u32(), raw);
            assert!(!matches!(CommandId::from_u32(raw), CommandId::Unknown(_)));
        }
        assert_eq!(CommandId::from_u32(0x0A), CommandId::Unknown(0x0A));
        assert_eq!(
            CommandId::SubmitSm.response(),
            Some(CommandId::SubmitSmResp)
        );
        assert_eq!(CommandId::DataSm.response(), Some(CommandId::DataSmResp));
        assert_eq!(CommandId::Outbind.response(), None);
        assert_eq!(CommandId::SubmitSmResp.response(), None);
        assert!(CommandId::GenericNack.is_response());
    }
}
