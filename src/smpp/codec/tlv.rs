//! Optional parameters (TLVs): kept as an ordered list of raw values so every TLV,
//! known or not, is forwarded byte for byte; typed accessors decode the few the
//! gate reads, when it reads them.

use std::fmt;

use bytes::{BufMut, Bytes};

use super::error::{DecodeError, DecodeErrorKind, ValueError};
use super::primitives::{Cursor, Reader};

/// TLV tags (SMPP v3.4 §5.3.2, plus iys-gate's vendor-specific ones).
pub mod tag {
    #![allow(missing_docs)]
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const DEST_NETWORK_TYPE: u16 = 0x0006;
    pub const DEST_BEARER_TYPE: u16 = 0x0007;
    pub const DEST_TELEMATICS_ID: u16 = 0x0008;
    pub const SOURCE_ADDR_SUBUNIT: u16 = 0x000D;
    pub const SOURCE_NETWORK_TYPE: u16 = 0x000E;
    pub const SOURCE_BEARER_TYPE: u16 = 0x000F;
    pub const SOURCE_TELEMATICS_ID: u16 = 0x0010;
    pub const QOS_TIME_TO_LIVE: u16 = 0x0017;
    pub const PAYLOAD_TYPE: u16 = 0x0019;
    pub const ADDITIONAL_STATUS_INFO_TEXT: u16 = 0x001D;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MS_MSG_WAIT_FACILITIES: u16 = 0x0030;
    pub const PRIVACY_INDICATOR: u16 = 0x0201;
    pub const SOURCE_SUBADDRESS: u16 = 0x0202;
    pub const DEST_SUBADDRESS: u16 = 0x0203;
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    pub const USER_RESPONSE_CODE: u16 = 0x0205;
    pub const SOURCE_PORT: u16 = 0x020A;
    pub const DESTINATION_PORT: u16 = 0x020B;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const LANGUAGE_INDICATOR: u16 = 0x020D;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const CALLBACK_NUM_PRES_IND: u16 = 0x0302;
    pub const CALLBACK_NUM_ATAG: u16 = 0x0303;
    pub const NUMBER_OF_MESSAGES: u16 = 0x0304;
    pub const CALLBACK_NUM: u16 = 0x0381;
    pub const DPF_RESULT: u16 = 0x0420;
    pub const SET_DPF: u16 = 0x0421;
    pub const MS_AVAILABILITY_STATUS: u16 = 0x0422;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const DELIVERY_FAILURE_REASON: u16 = 0x0425;
    pub const MORE_MESSAGES_TO_SEND: u16 = 0x0426;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const USSD_SERVICE_OP: u16 = 0x0501;
    pub const DISPLAY_TIME: u16 = 0x1201;
    pub const SMS_SIGNAL: u16 = 0x1203;
    pub const MS_VALIDITY: u16 = 0x1204;
    pub const ALERT_ON_MESSAGE_DELIVERY: u16 = 0x130C;
    pub const ITS_REPLY_TYPE: u16 = 0x1380;
    pub const ITS_SESSION_INFO: u16 = 0x1383;
    /// iys-gate: the message class, ASCII `0` / `11` / `12` (the `iysfilter` convention).
    pub const IYS_MESSAGE_TYPE: u16 = 0x1400;
    /// iys-gate: the İYS brand code overriding the account's, ASCII digits.
    pub const IYS_BRAND_CODE: u16 = 0x1401;
    /// iys-gate: the retailer (bayi) code, ASCII digits.
    pub const IYS_RETAILER_CODE: u16 = 0x1402;
}

/// One TLV: a tag and its raw value (at most 65535 octets).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    tag: u16,
    value: Bytes,
}

impl Tlv {
    /// A TLV from its tag and raw value.
    pub fn new(tag: u16, value: impl Into<Bytes>) -> Result<Tlv, ValueError> {
        let value = value.into();
        if value.len() > usize::from(u16::MAX) {
            return Err(ValueError::TooLong {
                len: value.len(),
                max: usize::from(u16::MAX),
            });
        }
        Ok(Tlv { tag, value })
    }

    /// A TLV holding one integer octet.
    pub fn from_u8(tag: u16, value: u8) -> Tlv {
        Tlv {
            tag,
            value: Bytes::copy_from_slice(&[value]),
        }
    }

    /// A TLV holding a big-endian two-octet integer.
    pub fn from_u16(tag: u16, value: u16) -> Tlv {
        Tlv {
            tag,
            value: Bytes::copy_from_slice(&value.to_be_bytes()),
        }
    }

    /// The tag.
    pub fn tag(&self) -> u16 {
        self.tag
    }

    /// The raw value.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    fn encoded_len(&self) -> usize {
        4 + self.value.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16(self.tag);
        // At most u16::MAX octets by construction.
        out.put_u16(u16::try_from(self.value.len()).unwrap_or(u16::MAX));
        out.put_slice(&self.value);
    }
}

impl fmt::Debug for Tlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}=b\"{}\"", self.tag, self.value.escape_ascii())
    }
}

/// The class a sender declares in `iys_message_type` (0x1400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IysMessageType {
    /// `0`: informational (bilgilendirme), no consent needed.
    Informational,
    /// `11`: commercial, to an individual (BIREYSEL).
    CommercialIndividual,
    /// `12`: commercial, to a merchant (TACIR).
    CommercialMerchant,
}

impl IysMessageType {
    /// The `iysfilter` code: 0, 11 or 12.
    pub fn code(self) -> u8 {
        match self {
            IysMessageType::Informational => 0,
            IysMessageType::CommercialIndividual => 11,
            IysMessageType::CommercialMerchant => 12,
        }
    }

    /// The type for an `iysfilter` code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(IysMessageType::Informational),
            11 => Some(IysMessageType::CommercialIndividual),
            12 => Some(IysMessageType::CommercialMerchant),
            _ => None,
        }
    }

    /// The TLV that declares this type, in the ASCII form.
    pub fn to_tlv(self) -> Tlv {
        let text: &'static [u8] = match self {
            IysMessageType::Informational => b"0",
            IysMessageType::CommercialIndividual => b"11",
            IysMessageType::CommercialMerchant => b"12",
        };
        Tlv {
            tag: tag::IYS_MESSAGE_TYPE,
            value: Bytes::from_static(text),
        }
    }
}

/// The TLVs of a PDU, in wire order, duplicates and unknown tags included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tlvs(Vec<Tlv>);

impl Tlvs {
    /// No TLVs.
    pub const fn new() -> Self {
        Tlvs(Vec::new())
    }

    /// The TLVs in wire order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tlv> {
        self.0.iter()
    }

    /// How many TLVs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends a TLV.
    pub fn push(&mut self, tlv: Tlv) {
        self.0.push(tlv);
    }

    /// The first TLV with this tag.
    pub fn get(&self, tag: u16) -> Option<&Tlv> {
        self.0.iter().find(|t| t.tag == tag)
    }

    /// Removes every TLV with this tag; returns how many were removed.
    pub fn remove(&mut self, tag: u16) -> usize {
        self.retain(|t| t.tag != tag)
    }

    /// Keeps only the TLVs the predicate accepts; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Tlv) -> bool) -> usize {
        let before = self.0.len();
        self.0.retain(|t| keep(t));
        before - self.0.len()
    }

    /// Removes iys-gate's own TLVs (0x1400–0x1402), which must not reach the SMSC.
    pub fn remove_iys(&mut self) -> usize {
        self.retain(|t| !is_iys(t.tag))
    }

    /// Reads TLVs up to the end of the body.
    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Tlvs, DecodeError> {
        let mut tlvs = Vec::new();
        while r.remaining() > 0 {
            let (tag, value) = r.tlv()?;
            tlvs.push(Tlv { tag, value });
        }
        Ok(Tlvs(tlvs))
    }

    pub(super) fn encoded_len(&self) -> usize {
        self.0.iter().map(Tlv::encoded_len).sum()
    }

    pub(super) fn encode<B: BufMut>(&self, out: &mut B) {
        for tlv in &self.0 {
            tlv.encode(out);
        }
    }
}

/// The TLVs the gate interprets, read the same way from the decoded list
/// ([`Tlvs`]) and from the raw TLV area of a frame ([`RawTlvs`]).
pub trait TlvRead {
    /// The values of the TLVs with this tag, in wire order.
    fn values(&self, tag: u16) -> impl Iterator<Item = &[u8]>;

    /// What an index already knows of this tag, without a walk:
    /// `Some(None)` when it is absent, `Some(Some(value))` when it occurs
    /// exactly once; `None` when only a walk of [`Self::values`] can tell.
    fn indexed(&self, _tag: u16) -> Option<Option<&[u8]>> {
        None
    }

    /// The value of the only TLV with this tag; a repeated tag is an error because
    /// the two values could disagree.
    #[inline(always)]
    fn single(&self, tag: u16, field: &'static str) -> Result<Option<&[u8]>, DecodeError> {
        if let Some(known) = self.indexed(tag) {
            return Ok(known);
        }
        let mut found = self.values(tag);
        let first = found.next();
        if found.next().is_some() {
            return Err(DecodeError::new(
                field,
                DecodeErrorKind::InvalidValue("the TLV appears more than once"),
            ));
        }
        Ok(first)
    }

    fn fixed<const N: usize>(
        &self,
        tag: u16,
        field: &'static str,
        expected: &'static str,
    ) -> Result<Option<[u8; N]>, DecodeError> {
        let Some(value) = self.single(tag, field)? else {
            return Ok(None);
        };
        match <[u8; N]>::try_from(value) {
            Ok(array) => Ok(Some(array)),
            Err(_) => Err(DecodeError::new(
                field,
                DecodeErrorKind::TlvInvalidLength {
                    tag,
                    len: value.len(),
                    expected,
                },
            )),
        }
    }

    /// `sar_msg_ref_num` (0x020C): the reference shared by a concatenated message's parts.
    fn sar_msg_ref_num(&self) -> Result<Option<u16>, DecodeError> {
        let v = self.fixed::<2>(tag::SAR_MSG_REF_NUM, "sar_msg_ref_num", "2 octets")?;
        Ok(v.map(u16::from_be_bytes))
    }

    /// `sar_total_segments` (0x020E): how many parts the message has.
    fn sar_total_segments(&self) -> Result<Option<u8>, DecodeError> {
        let v = self.fixed::<1>(tag::SAR_TOTAL_SEGMENTS, "sar_total_segments", "1 octet")?;
        Ok(v.map(|[b]| b))
    }

    /// `sar_segment_seqnum` (0x020F): this part's number, from 1.
    fn sar_segment_seqnum(&self) -> Result<Option<u8>, DecodeError> {
        let v = self.fixed::<1>(tag::SAR_SEGMENT_SEQNUM, "sar_segment_seqnum", "1 octet")?;
        Ok(v.map(|[b]| b))
    }

    /// `message_payload` (0x0424): the message when it is not in `short_message`.
    /// When repeated, the first one.
    fn message_payload(&self) -> Option<&[u8]> {
        if let Some(known) = self.indexed(tag::MESSAGE_PAYLOAD) {
            return known;
        }
        self.values(tag::MESSAGE_PAYLOAD).next()
    }

    /// `receipted_message_id` (0x001E) of a delivery receipt, without its NUL. A
    /// missing NUL is tolerated (some SMSCs omit it); more than 64 characters is not.
    fn receipted_message_id(&self) -> Result<Option<&[u8]>, DecodeError> {
        const FIELD: &str = "receipted_message_id";
        let Some(value) = self.single(tag::RECEIPTED_MESSAGE_ID, FIELD)? else {
            return Ok(None);
        };
        let id = value.strip_suffix(&[0]).unwrap_or(value);
        if id.len() > 64 {
            return Err(DecodeError::new(
                FIELD,
                DecodeErrorKind::TlvInvalidLength {
                    tag: tag::RECEIPTED_MESSAGE_ID,
                    len: value.len(),
                    expected: "at most 65 octets including the NUL",
                },
            ));
        }
        if id.contains(&0) {
            return Err(DecodeError::new(
                FIELD,
                DecodeErrorKind::InvalidValue("a NUL inside the message id"),
            ));
        }
        Ok(Some(id))
    }

    /// `message_state` (0x0427) of a delivery receipt.
    fn message_state(&self) -> Result<Option<u8>, DecodeError> {
        let v = self.fixed::<1>(tag::MESSAGE_STATE, "message_state", "1 octet")?;
        Ok(v.map(|[b]| b))
    }

    /// `sc_interface_version` (0x0210) of a bind response.
    fn sc_interface_version(&self) -> Result<Option<u8>, DecodeError> {
        let v = self.fixed::<1>(tag::SC_INTERFACE_VERSION, "sc_interface_version", "1 octet")?;
        Ok(v.map(|[b]| b))
    }

    /// `iys_message_type` (0x1400): ASCII `0` / `11` / `12` (a trailing NUL is
    /// tolerated), or one integer octet 0 / 11 / 12.
    #[inline(always)]
    fn iys_message_type(&self) -> Result<Option<IysMessageType>, DecodeError> {
        const FIELD: &str = "iys_message_type";
        let Some(value) = self.single(tag::IYS_MESSAGE_TYPE, FIELD)? else {
            return Ok(None);
        };
        let parsed = match value {
            [b'0'] | [b'0', 0] => Some(IysMessageType::Informational),
            [b'1', b'1'] | [b'1', b'1', 0] => Some(IysMessageType::CommercialIndividual),
            [b'1', b'2'] | [b'1', b'2', 0] => Some(IysMessageType::CommercialMerchant),
            [code] => IysMessageType::from_code(*code),
            _ => None,
        };
        parsed.map(Some).ok_or(DecodeError::new(
            FIELD,
            DecodeErrorKind::InvalidValue(
                "must be \"0\", \"11\" or \"12\" (or one octet 0, 11 or 12)",
            ),
        ))
    }

    /// `iys_brand_code` (0x1401): the brand code overriding the bound account's.
    #[inline(always)]
    fn iys_brand_code(&self) -> Result<Option<u32>, DecodeError> {
        self.ascii_u32(tag::IYS_BRAND_CODE, "iys_brand_code")
    }

    /// `iys_retailer_code` (0x1402): the retailer (bayi) the message is sent for.
    #[inline(always)]
    fn iys_retailer_code(&self) -> Result<Option<u32>, DecodeError> {
        self.ascii_u32(tag::IYS_RETAILER_CODE, "iys_retailer_code")
    }

    #[inline(always)]
    fn ascii_u32(&self, tag: u16, field: &'static str) -> Result<Option<u32>, DecodeError> {
        let Some(value) = self.single(tag, field)? else {
            return Ok(None);
        };
        let digits = value.strip_suffix(&[0]).unwrap_or(value);
        let invalid = || {
            DecodeError::new(
                field,
                DecodeErrorKind::InvalidValue(
                    "must be ASCII decimal digits of a number up to 4294967295",
                ),
            )
        };
        if digits.is_empty() {
            return Err(invalid());
        }
        // Digit by digit (no UTF-8 check and str parse: this runs per message).
        digits
            .iter()
            .try_fold(0u32, |n, &b| {
                let digit = b.wrapping_sub(b'0');
                (digit <= 9)
                    .then_some(n)?
                    .checked_mul(10)?
                    .checked_add(u32::from(digit))
            })
            .map(Some)
            .ok_or_else(invalid)
    }
}

impl TlvRead for Tlvs {
    fn values(&self, tag: u16) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .filter(move |t| t.tag == tag)
            .map(|t| t.value.as_ref())
    }
}

/// The TLV area of a frame, checked (see [`super::MessageView`]): read in place,
/// nothing copied or allocated. The check, one walk of the area, also indexes
/// the tags the gate reads (whether each occurs, once or more, and where it
/// first does) and where the İYS TLVs are, so reading a tag or forwarding
/// without the İYS TLVs walks the area again only in rare cases (a repeated
/// tag, İYS TLVs between others).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawTlvs<'a> {
    area: &'a [u8],
    /// Bit [`read_index`] of each read tag that occurs.
    present: u16,
    /// The same for each that occurs more than once.
    repeated: u16,
    /// Where in `area` the first TLV with each read tag starts.
    first: [u32; READ_TAGS],
    /// Octets (headers included) of the İYS TLVs.
    iys_len: u32,
    /// Whether the İYS TLVs are all together at the end of the area.
    iys_at_end: bool,
}

/// How many tags the gate reads, each with a bit in [`RawTlvs`]'s index;
/// every other tag shares bit [`READ_TAGS`].
const READ_TAGS: usize = 9;

/// A read tag's index (the first three are the İYS tags); [`READ_TAGS`] for
/// any other tag.
#[inline(always)]
fn read_index(tag: u16) -> usize {
    match tag {
        tag::IYS_MESSAGE_TYPE => 0,
        tag::IYS_BRAND_CODE => 1,
        tag::IYS_RETAILER_CODE => 2,
        tag::SAR_MSG_REF_NUM => 3,
        tag::SAR_TOTAL_SEGMENTS => 4,
        tag::SAR_SEGMENT_SEQNUM => 5,
        tag::MESSAGE_PAYLOAD => 6,
        tag::RECEIPTED_MESSAGE_ID => 7,
        tag::MESSAGE_STATE => 8,
        _ => READ_TAGS,
    }
}

impl<'a> RawTlvs<'a> {
    /// The TLVs in `area`, or the error the typed decoder reports for it.
    pub(super) fn check(area: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(area);
        let mut raw = RawTlvs {
            area,
            ..RawTlvs::default()
        };
        // Whether a TLV of another tag follows an İYS one.
        let mut other_after_iys = false;
        while cur.remaining() > 0 {
            let at = area.len() - cur.remaining();
            let (tag, value) = cur.tlv()?;
            let i = read_index(tag);
            let bit = 1 << i;
            if raw.present & bit == 0 {
                if let Some(first) = raw.first.get_mut(i) {
                    // The area is a frame's, whose length fitted in a u32.
                    *first = u32::try_from(at).unwrap_or(u32::MAX);
                }
            } else {
                raw.repeated |= bit;
            }
            raw.present |= bit;
            if is_iys(tag) {
                raw.iys_len += u32::try_from(4 + value.len()).unwrap_or(u32::MAX);
            } else if raw.iys_len > 0 {
                other_after_iys = true;
            }
        }
        raw.iys_at_end = raw.iys_len > 0 && !other_after_iys;
        Ok(raw)
    }

    /// The area's octets.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.area
    }

    /// Each TLV as (tag, value, its whole encoding), in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &'a [u8], &'a [u8])> {
        let mut cur = Cursor::new(self.area);
        std::iter::from_fn(move || {
            let before = cur.rest();
            let (tag, value) = cur.tlv().ok()?;
            Some((tag, value, &before[..before.len() - cur.remaining()]))
        })
    }

    /// Whether iys-gate's own TLVs (0x1400–0x1402) are among them.
    pub fn has_iys(&self) -> bool {
        self.iys_len > 0
    }

    /// Octets of iys-gate's own TLVs, headers included.
    pub fn iys_len(&self) -> usize {
        usize::try_from(self.iys_len).unwrap_or(usize::MAX)
    }

    /// The area without iys-gate's own TLVs when they are all at its end
    /// (one slice to copy); `None` when they are not.
    pub fn without_trailing_iys(&self) -> Option<&'a [u8]> {
        self.iys_at_end
            .then(|| &self.area[..self.area.len() - self.iys_len()])
    }
}

impl TlvRead for RawTlvs<'_> {
    fn values(&self, tag: u16) -> impl Iterator<Item = &[u8]> {
        let maybe = self.present & (1 << read_index(tag)) != 0;
        let area = if maybe { self.area } else { &[] };
        RawTlvs { area, ..*self }
            .iter()
            .filter(move |t| t.0 == tag)
            .map(|t| t.1)
    }

    // Inlined where the tag is a constant, the tag's index folds away.
    #[inline(always)]
    fn indexed(&self, tag: u16) -> Option<Option<&[u8]>> {
        let i = read_index(tag);
        let bit = 1 << i;
        if i == READ_TAGS || self.repeated & bit != 0 {
            return None;
        }
        if self.present & bit == 0 {
            return Some(None);
        }
        // Checked when the area was: a whole TLV starts there.
        let at = usize::try_from(*self.first.get(i)?).ok()?;
        let (_, value) = Cursor::new(self.area.get(at..)?).tlv().ok()?;
        Some(Some(value))
    }
}

/// Whether a tag is one of iys-gate's own (0x1400–0x1402), which must not
/// reach the SMSC.
pub fn is_iys(tag: u16) -> bool {
    (tag::IYS_MESSAGE_TYPE..=tag::IYS_RETAILER_CODE).contains(&tag)
}

impl From<Vec<Tlv>> for Tlvs {
    fn from(tlvs: Vec<Tlv>) -> Self {
        Tlvs(tlvs)
    }
}

impl<'a> IntoIterator for &'a Tlvs {
    type Item = &'a Tlv;
    type IntoIter = std::slice::Iter<'a, Tlv>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlvs(list: &[(u16, &'static [u8])]) -> Tlvs {
        Tlvs(
            list.iter()
                .map(|&(tag, v)| Tlv::new(tag, v).unwrap())
                .collect(),
        )
    }

    #[test]
    fn iys_message_type_accepts_ascii_with_or_without_nul_and_one_octet_integers() {
        let t = |v| tlvs(&[(0x1400, v)]).iys_message_type().unwrap();
        assert_eq!(t(b"0"), Some(IysMessageType::Informational));
        assert_eq!(t(b"11"), Some(IysMessageType::CommercialIndividual));
        assert_eq!(t(b"12\0"), Some(IysMessageType::CommercialMerchant));
        assert_eq!(t(&[0]), Some(IysMessageType::Informational));
        assert_eq!(t(&[11]), Some(IysMessageType::CommercialIndividual));
        assert_eq!(t(&[12]), Some(IysMessageType::CommercialMerchant));
        assert_eq!(tlvs(&[]).iys_message_type().unwrap(), None);
    }

    #[test]
    fn iys_message_type_rejects_other_values_and_repeats() {
        for bad in [&b"1"[..], b"13", b"011", b"", &[13], b"11\0\0"] {
            let err = tlvs(&[(0x1400, bad)]).iys_message_type().unwrap_err();
            assert_eq!(err.field, "iys_message_type", "{bad:?}");
            assert_eq!(err.command_status(), 0xC4);
        }
        let twice = tlvs(&[(0x1400, b"0"), (0x1400, b"11")]);
        assert_eq!(
            twice.iys_message_type().unwrap_err().field,
            "iys_message_type"
        );
    }

    #[test]
    fn brand_and_retailer_codes_are_ascii_digits() {
        let t = tlvs(&[(0x1401, b"654321"), (0x1402, b"42\0")]);
        assert_eq!(t.iys_brand_code().unwrap(), Some(654321));
        assert_eq!(t.iys_retailer_code().unwrap(), Some(42));
        let max = tlvs(&[(0x1401, b"4294967295"), (0x1402, b"0000000000042")]);
        assert_eq!(max.iys_brand_code().unwrap(), Some(u32::MAX));
        assert_eq!(max.iys_retailer_code().unwrap(), Some(42), "leading zeros");
        for bad in [
            &b""[..],
            b"12a",
            b"-1",
            b"+1",
            b"4294967296",
            b"99999999999999999999",
            b" 1",
            b"1\0\0",
            b"\0",
        ] {
            let err = tlvs(&[(0x1401, bad)]).iys_brand_code().unwrap_err();
            assert_eq!(err.field, "iys_brand_code", "{bad:?}");
        }
    }

    #[test]
    fn the_raw_area_index_reads_what_the_decoded_list_reads() {
        let cases: [&[(u16, &'static [u8])]; 10] = [
            &[],
            &[(0x1400, b"11")],
            &[(0x1500, b"x"), (0x1400, b"0"), (0x1402, b"42\0")],
            &[(0x1400, b"11"), (0x1500, b"x"), (0x1401, b"654321")],
            &[(0x1400, b"0"), (0x1400, b"11")],
            &[(0x1401, b"1"), (0x1500, b"x"), (0x1401, b"2")],
            &[
                (0x020C, &[0, 1]),
                (0x020E, &[2]),
                (0x020F, &[1]),
                (0x0424, b"p"),
            ],
            &[(0x020C, &[0, 1]), (0x020C, &[0, 2])],
            &[(0x0424, b"a"), (0x0424, b"b")],
            &[(0x1400, b"13"), (0x1401, b"x1")],
        ];
        for list in cases {
            let decoded = tlvs(list);
            let mut area = Vec::new();
            decoded.encode(&mut area);
            let raw = RawTlvs::check(&area).unwrap();
            let field = |e: DecodeError| e.field;
            assert_eq!(
                raw.iys_message_type().map_err(field),
                decoded.iys_message_type().map_err(field),
                "{list:?}"
            );
            assert_eq!(
                raw.iys_brand_code().map_err(field),
                decoded.iys_brand_code().map_err(field),
                "{list:?}"
            );
            assert_eq!(
                raw.iys_retailer_code().map_err(field),
                decoded.iys_retailer_code().map_err(field),
                "{list:?}"
            );
            assert_eq!(raw.sar_msg_ref_num(), decoded.sar_msg_ref_num());
            assert_eq!(raw.sar_total_segments(), decoded.sar_total_segments());
            assert_eq!(raw.sar_segment_seqnum(), decoded.sar_segment_seqnum());
            assert_eq!(raw.message_payload(), decoded.message_payload());
            // Without the İYS TLVs: the length, and the one slice when they
            // are all at the end.
            let mut kept = decoded.clone();
            kept.remove_iys();
            let mut want = Vec::new();
            kept.encode(&mut want);
            assert_eq!(area.len() - raw.iys_len(), want.len(), "{list:?}");
            assert_eq!(raw.has_iys(), kept.len() < decoded.len());
            let last_other = list.iter().rposition(|(t, _)| !is_iys(*t));
            let all_at_end = raw.has_iys()
                && list.iter().skip(last_other.map_or(0, |i| i + 1)).count()
                    == decoded.len() - kept.len();
            match raw.without_trailing_iys() {
                Some(slice) => assert_eq!(slice, &want[..], "{list:?}"),
                None => assert!(!all_at_end, "{list:?}"),
            }
            assert_eq!(raw.without_trailing_iys().is_some(), all_at_end);
        }
    }

    #[test]
    fn fixed_size_tlvs_check_their_length() {
        let t = tlvs(&[(0x020C, &[0x12, 0x34]), (0x020E, &[3]), (0x020F, &[1])]);
        assert_eq!(t.sar_msg_ref_num().unwrap(), Some(0x1234));
        assert_eq!(t.sar_total_segments().unwrap(), Some(3));
        assert_eq!(t.sar_segment_seqnum().unwrap(), Some(1));
        let err = tlvs(&[(0x020C, &[1])]).sar_msg_ref_num().unwrap_err();
        assert_eq!(err.command_status(), 0xC2);
        assert_eq!(
            err.to_string(),
            "sar_msg_ref_num: TLV 0x020C has 1 octets; it must have 2 octets"
        );
    }

    #[test]
    fn receipted_message_id_with_and_without_nul() {
        assert_eq!(
            tlvs(&[(0x001E, b"abc\0")]).receipted_message_id().unwrap(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            tlvs(&[(0x001E, b"abc")]).receipted_message_id().unwrap(),
            Some(&b"abc"[..])
        );
        assert!(tlvs(&[(0x001E, &[b'1'; 65])])
            .receipted_message_id()
            .is_err());
    }

    #[test]
    fn remove_iys_strips_only_the_vendor_tags_and_keeps_order() {
        let mut t = tlvs(&[
            (0x1500, b"x"),
            (0x1400, b"11"),
            (0x020C, &[0, 1]),
            (0x1401, b"1"),
            (0x1402, b"2"),
            (0x1403, b"y"),
        ]);
        assert_eq!(t.remove_iys(), 3);
        let tags: Vec<u16> = t.iter().map(Tlv::tag).collect();
        assert_eq!(tags, [0x1500, 0x020C, 0x1403]);
        assert_eq!(t.remove(0x1500), 1);
        assert_eq!(t.remove(0x1500), 0);
    }
}
