//! SMPP v3.4 PDU codec, sans-I/O: bytes in, typed PDUs out, and back. Fields are
//! read by nom parsers (`primitives::field`), written with `bytes::BufMut`.
//!
//! A session reads into a buffer and asks [`frame_len`] whether a whole frame has
//! arrived (`Ok(None)`: read more; `Err`: the length itself is impossible). It then
//! hands exactly that frame to [`Pdu::decode`] (or [`Pdu::decode_bytes`] to share
//! the buffer) and writes PDUs with [`Pdu::encode`]. A proxy that only remaps
//! sequence numbers uses [`Header::peek`] and [`replace_sequence_number`] on the
//! raw frame and skips decoding. The gate's hot path reads submit_sm and
//! data_sm through [`MessageView`]: the same checks as [`Pdu::decode`], in place,
//! nothing copied, and forwards the frame with its İYS TLVs cut out.
//!
//! Spec length limits are enforced while decoding, so hostile input cannot make the
//! decoder scan or allocate beyond them; errors name the field and map to the
//! `command_status` to answer with ([`DecodeError::command_status`]). Strings are
//! kept as octets and TLVs as an ordered raw list, so `encode(decode(frame)) ==
//! frame` for every valid PDU, unknown TLVs included.

mod alert;
mod bind;
mod cancel;
mod concat;
mod data;
mod error;
pub mod generate;
mod header;
mod multi;
mod pdu;
mod primitives;
mod query;
mod replace;
pub mod status;
mod submit;
mod tlv;
mod view;

#[cfg(test)]
mod tests;

pub use self::alert::AlertNotification;
pub use self::bind::{Bind, BindResp, Outbind};
pub use self::cancel::CancelSm;
pub use self::concat::{ConcatInfo, ESM_CLASS_UDHI};
pub use self::data::{DataSm, DataSmResp};
pub use self::error::{DecodeError, DecodeErrorKind, FrameError, ValueError};
pub use self::header::{
    frame_len, replace_sequence_number, CommandId, Header, DEFAULT_MAX_COMMAND_LENGTH, HEADER_LEN,
};
pub use self::multi::{
    DestAddress, DestAddresses, SubmitMulti, SubmitMultiResp, UnsuccessSme, UnsuccessSmes,
};
pub use self::pdu::{Body, Pdu};
pub use self::primitives::{BoundedVec, COctetString, OctetString, SmppTime};
pub use self::query::{QuerySm, QuerySmResp};
pub use self::replace::ReplaceSm;
pub use self::submit::{DeliverSm, DeliverSmResp, SubmitSm, SubmitSmResp};
pub use self::tlv::{is_iys, tag, IysMessageType, RawTlvs, Tlv, TlvRead, Tlvs};
pub use self::view::MessageView;
