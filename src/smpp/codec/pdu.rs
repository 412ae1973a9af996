//! A whole PDU: header fields plus one typed body per command.

use bytes::{BufMut, Bytes};

use super::alert::AlertNotification;
use super::bind::{Bind, BindResp, Outbind};
use super::cancel::CancelSm;
use super::data::{DataSm, DataSmResp};
use super::error::{DecodeError, DecodeErrorKind};
use super::header::{CommandId, Header, HEADER_LEN};
use super::multi::{SubmitMulti, SubmitMultiResp};
use super::primitives::{Codec, Cursor, Reader};
use super::query::{QuerySm, QuerySmResp};
use super::replace::ReplaceSm;
use super::submit::{DeliverSm, DeliverSmResp, SubmitSm, SubmitSmResp};

/// One SMPP PDU. `command_length` and `command_id` are not stored: they follow
/// from the body, so they cannot disagree with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pdu {
    /// The status of a response; 0 in requests.
    pub command_status: u32,
    /// Pairs a response with its request.
    pub sequence_number: u32,
    /// The command and its fields.
    pub body: Body,
}

macro_rules! bodies {
    (
        with_body { $($(#[$rd:meta])* $r:ident($rt:ty),)* }
        optional_body { $($(#[$od:meta])* $o:ident($ot:ty),)* }
        header_only { $($(#[$ed:meta])* $e:ident,)* }
    ) => {
        /// The body of each command. A response whose body is `None` had none on
        /// the wire: the spec omits it when `command_status` is not 0, and some
        /// peers omit the unused message_id of deliver_sm_resp.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Body {
            $($(#[$rd])* $r($rt),)*
            $($(#[$od])* $o(Option<$ot>),)*
            $($(#[$ed])* $e,)*
        }

        impl Body {
            /// The command this body belongs to.
            pub fn command_id(&self) -> CommandId {
                match self {
                    $(Body::$r(_) => CommandId::$r,)*
                    $(Body::$o(_) => CommandId::$o,)*
                    $(Body::$e => CommandId::$e,)*
                }
            }

            /// The response to answer a request with when it has to be refused:
            /// a body-less one (header only, or `None`). `None` when `response`
            /// is not a response command.
            pub fn empty_response(response: CommandId) -> Option<Body> {
                match response {
                    $(CommandId::$o => Some(Body::$o(None)),)*
                    $(CommandId::$e if response.is_response() => Some(Body::$e),)*
                    _ => None,
                }
            }

            fn decode(command_id: u32, r: &mut Reader<'_>) -> Result<Body, DecodeError> {
                let body = match CommandId::from_u32(command_id) {
                    $(CommandId::$r => Body::$r(<$rt>::decode(r)?),)*
                    $(CommandId::$o => Body::$o(if r.remaining() == 0 {
                        None
                    } else {
                        Some(<$ot>::decode(r)?)
                    }),)*
                    $(CommandId::$e => Body::$e,)*
                    CommandId::Unknown(id) => {
                        return Err(DecodeError::new(
                            "command_id",
                            DecodeErrorKind::UnknownCommand(id),
                        ))
                    }
                };
                r.finish()?;
                Ok(body)
            }

            fn encoded_len(&self) -> usize {
                match self {
                    $(Body::$r(b) => b.encoded_len(),)*
                    $(Body::$o(b) => b.as_ref().map_or(0, Codec::encoded_len),)*
                    $(Body::$e => 0,)*
                }
            }

            fn encode<B: BufMut>(&self, out: &mut B) {
                match self {
                    $(Body::$r(b) => b.encode(out),)*
                    $(Body::$o(b) => if let Some(b) = b { b.encode(out) },)*
                    $(Body::$e => {})*
                }
            }
        }
    };
}

bodies! {
    with_body {
        /// bind_transmitter: bind to send.
        BindTransmitter(Bind),
        /// bind_receiver: bind to receive.
        BindReceiver(Bind),
        /// bind_transceiver: bind to send and receive.
        BindTransceiver(Bind),
        /// outbind: the SMSC asks the ESME to bind.
        Outbind(Outbind),
        /// submit_sm: one message to one recipient.
        SubmitSm(SubmitSm),
        /// deliver_sm: a message or delivery receipt to the ESME.
        DeliverSm(DeliverSm),
        /// submit_multi: one message to several recipients.
        SubmitMulti(SubmitMulti),
        /// data_sm: a message either way, payload in a TLV.
        DataSm(DataSm),
        /// query_sm: ask a message's state.
        QuerySm(QuerySm),
        /// cancel_sm: cancel pending messages.
        CancelSm(CancelSm),
        /// replace_sm: replace a pending message.
        ReplaceSm(ReplaceSm),
        /// alert_notification: a mobile became reachable.
        AlertNotification(AlertNotification),
    }
    optional_body {
        /// bind_transmitter_resp.
        BindTransmitterResp(BindResp),
        /// bind_receiver_resp.
        BindReceiverResp(BindResp),
        /// bind_transceiver_resp.
        BindTransceiverResp(BindResp),
        /// submit_sm_resp.
        SubmitSmResp(SubmitSmResp),
        /// deliver_sm_resp.
        DeliverSmResp(DeliverSmResp),
        /// submit_multi_resp.
        SubmitMultiResp(SubmitMultiResp),
        /// data_sm_resp.
        DataSmResp(DataSmResp),
        /// query_sm_resp.
        QuerySmResp(QuerySmResp),
    }
    header_only {
        /// generic_nack: the request could not be understood.
        GenericNack,
        /// unbind.
        Unbind,
        /// unbind_resp.
        UnbindResp,
        /// cancel_sm_resp.
        CancelSmResp,
        /// replace_sm_resp.
        ReplaceSmResp,
        /// enquire_link: keep-alive.
        EnquireLink,
        /// enquire_link_resp.
        EnquireLinkResp,
    }
}

impl Pdu {
    /// A request (status 0).
    pub fn new(sequence_number: u32, body: Body) -> Pdu {
        Pdu {
            command_status: 0,
            sequence_number,
            body,
        }
    }

    /// The answer to a request that is refused or could not be decoded: its own
    /// response without a body, or `generic_nack` when it has no response of its
    /// own (unknown commands, outbind, alert_notification, responses).
    pub fn error_response(request: &Header, command_status: u32) -> Pdu {
        let body = request
            .command()
            .response()
            .and_then(Body::empty_response)
            .unwrap_or(Body::GenericNack);
        Pdu {
            command_status,
            sequence_number: request.sequence_number,
            body,
        }
    }

    /// The command.
    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }

    /// The header this PDU encodes with.
    pub fn header(&self) -> Header {
        Header {
            command_length: u32::try_from(self.encoded_len()).unwrap_or(u32::MAX),
            command_id: self.command_id().as_u32(),
            command_status: self.command_status,
            sequence_number: self.sequence_number,
        }
    }

    /// Decodes exactly one whole frame (as delimited by `frame_len`), copying its
    /// body once.
    pub fn decode(frame: &[u8]) -> Result<Pdu, DecodeError> {
        let header = read_header(frame)?;
        let body = Bytes::copy_from_slice(frame.get(HEADER_LEN..).unwrap_or_default());
        Self::decode_body(&header, &body)
    }

    /// Decodes exactly one whole frame without copying: the fields share `frame`.
    pub fn decode_bytes(frame: Bytes) -> Result<Pdu, DecodeError> {
        let header = read_header(&frame)?;
        let body = frame.slice(HEADER_LEN..);
        Self::decode_body(&header, &body)
    }

    fn decode_body(header: &Header, body: &Bytes) -> Result<Pdu, DecodeError> {
        let mut reader = Reader::new(body);
        Ok(Pdu {
            command_status: header.command_status,
            sequence_number: header.sequence_number,
            body: Body::decode(header.command_id, &mut reader)?,
        })
    }

    /// Octets `encode` writes, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.encoded_len()
    }

    /// Appends the PDU, header with the right `command_length` first.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        self.header().encode(out);
        self.body.encode(out);
    }

    /// The PDU as a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// The header of a whole frame, checked against the frame's length.
pub(super) fn read_header(frame: &[u8]) -> Result<Header, DecodeError> {
    let mut r = Cursor::new(frame);
    let command_length = r.u32("command_length")?;
    let command_id = r.u32("command_id")?;
    let command_status = r.u32("command_status")?;
    let sequence_number = r.u32("sequence_number")?;
    if usize::try_from(command_length).ok() != Some(frame.len()) {
        return Err(DecodeError::new(
            "command_length",
            DecodeErrorKind::LengthMismatch {
                command_length,
                frame_len: frame.len(),
            },
        ));
    }
    Ok(Header {
        command_length,
        command_id,
        command_status,
        sequence_number,
    })
}
