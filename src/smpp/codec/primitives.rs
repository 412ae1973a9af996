//! The SMPP field types (C-Octet Strings, Octet Strings, times, bounded lists) and
//! the reader that decodes them, bounded by the spec limits.
//!
//! The fields are read by nom parsers (the [`field`] module): nom's `be_u8`,
//! `be_u16`, `be_u32` and `take` over complete input, each wrapped so its error
//! becomes a [`DecodeError`] naming the field. The PDU bodies are sequences of
//! these, run by [`Cursor`] (borrowed) and [`Reader`] (typed, zero-copy). One
//! shape is not nom's: a C-Octet String's NUL is looked for eight octets at a
//! time. nom's `take_till` went octet by octet (a fifth of the gate's
//! read-and-forward: 772 instructions with it, 690 without), and `take_until`,
//! which calls memchr, cost more still on fields this short (846).
//!
//! What nom costs, measured in exact instruction counts under valgrind
//! (`bash benches/smpp_codec_count.sh`) against the hand-written slice reader
//! this codec had before (2026-12-02): a full decode of a typical submit_sm 2090
//! against 2084, the gate's read-and-forward 735 against 680. The 55 extra
//! instructions are mostly nom reading integers one octet at a time; they are
//! about 2 % of the gate's CPU per message (0.73 µs), below what end-to-end runs
//! on this machine resolve. Earlier tries lost more (up to 10 % of the gate's
//! profile) because LLVM left nom's parsers as calls in the gate's loop; written
//! as closures from parser factories, or run through nom's `Parser::parse`, they
//! still are. Plain functions forced inline are not.
//!
//! Limits live in the types (`COctetString<21>` as in the spec tables), so a value
//! that can be built can be encoded, and decoding never scans or allocates past
//! the spec maximum whatever the peer sends.

use std::fmt;
use std::ops::Deref;

use bytes::{BufMut, Bytes};
use nom::IResult;

use super::error::{DecodeError, DecodeErrorKind, ValueError};

/// A NUL-terminated string of at most `MAX` octets, the NUL included (the spec's
/// "Var. max MAX"). Holds the octets without the NUL; the text is not assumed to
/// be UTF-8 so what a peer sent is forwarded unchanged.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct COctetString<const MAX: usize>(Bytes);

impl<const MAX: usize> COctetString<MAX> {
    /// The most content octets the field holds (the spec maximum minus the NUL).
    pub const MAX_LEN: usize = MAX - 1;

    /// The empty string (a lone NUL on the wire).
    pub const fn empty() -> Self {
        COctetString(Bytes::new())
    }

    /// A string from its octets, without the NUL terminator.
    pub fn new(value: impl Into<Bytes>) -> Result<Self, ValueError> {
        let value = value.into();
        if value.len() > Self::MAX_LEN {
            return Err(ValueError::TooLong {
                len: value.len(),
                max: Self::MAX_LEN,
            });
        }
        if value.contains(&0) {
            return Err(ValueError::ContainsNul);
        }
        Ok(COctetString(value))
    }

    /// A string copied from a slice (for values that are not `'static`).
    pub fn copy_from(value: &[u8]) -> Result<Self, ValueError> {
        Self::new(Bytes::copy_from_slice(value))
    }

    /// The octets, without the NUL terminator.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The octets as shared `Bytes`, without the NUL terminator.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The text, if it is UTF-8 (addresses and ids normally are ASCII).
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    fn encoded_len(&self) -> usize {
        self.0.len() + 1
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(&self.0);
        out.put_u8(0);
    }
}

impl<const MAX: usize> Deref for COctetString<MAX> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for COctetString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Raw octets of at most `MAX` (the `short_message` field with its `sm_length`).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct OctetString<const MAX: usize>(Bytes);

impl<const MAX: usize> OctetString<MAX> {
    /// The empty value.
    pub const fn empty() -> Self {
        OctetString(Bytes::new())
    }

    /// A value from its octets.
    pub fn new(value: impl Into<Bytes>) -> Result<Self, ValueError> {
        let value = value.into();
        if value.len() > MAX {
            return Err(ValueError::TooLong {
                len: value.len(),
                max: MAX,
            });
        }
        Ok(OctetString(value))
    }

    /// A value copied from a slice.
    pub fn copy_from(value: &[u8]) -> Result<Self, ValueError> {
        Self::new(Bytes::copy_from_slice(value))
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The octets as shared `Bytes`.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl<const MAX: usize> Deref for OctetString<MAX> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for OctetString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// An SMPP time (`schedule_delivery_time`, `validity_period`, `final_date`): a
/// C-Octet String that is empty or exactly 16 characters `YYMMDDhhmmsstnnp`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SmppTime(Bytes);

impl SmppTime {
    /// Length of a present time, without its NUL.
    pub const LEN: usize = 16;

    /// No time (a lone NUL on the wire): "immediate" or "SMSC default".
    pub const fn empty() -> Self {
        SmppTime(Bytes::new())
    }

    /// A time from its 16 characters (or none).
    pub fn new(value: impl Into<Bytes>) -> Result<Self, ValueError> {
        let value = value.into();
        if !value.is_empty() && value.len() != Self::LEN {
            return Err(ValueError::TimeLength(value.len()));
        }
        if value.contains(&0) {
            return Err(ValueError::ContainsNul);
        }
        Ok(SmppTime(value))
    }

    /// The characters, without the NUL (empty when absent).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether no time is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn encoded_len(&self) -> usize {
        self.0.len() + 1
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(&self.0);
        out.put_u8(0);
    }
}

impl fmt::Debug for SmppTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// A list whose length the spec bounds to `MIN..=MAX` (it travels as a one-octet count).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const MIN: usize, const MAX: usize>(Vec<T>);

impl<T, const MIN: usize, const MAX: usize> BoundedVec<T, MIN, MAX> {
    /// A list from its entries.
    pub fn new(items: Vec<T>) -> Result<Self, ValueError> {
        if (MIN..=MAX).contains(&items.len()) {
            Ok(BoundedVec(items))
        } else {
            Err(ValueError::Count {
                len: items.len(),
                min: MIN,
                max: MAX,
            })
        }
    }

    /// The entries.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }

    /// The count octet: fits because `MAX` is at most 255 for every use here.
    fn count(&self) -> u8 {
        u8::try_from(self.0.len()).unwrap_or(u8::MAX)
    }
}

impl<T, const MIN: usize, const MAX: usize> Deref for BoundedVec<T, MIN, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

/// How each PDU body (and each structure inside one) reads and writes itself.
pub(super) trait Codec: Sized {
    /// Reads the value from the reader's current position.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// The number of octets `encode` writes.
    fn encoded_len(&self) -> usize;
    /// Writes the value.
    fn encode<B: BufMut>(&self, out: &mut B);
}

/// What a field parser returns: the rest of the body and the value, or this
/// codec's error naming the field.
pub(super) type FieldResult<'a, T> = IResult<&'a [u8], T, DecodeError>;

/// What nom's own parsers return here: their error carries nothing (`()` costs
/// nothing to build); each field parser below replaces it with a [`DecodeError`]
/// that names the field and says what was wrong.
type Bare<'a, T> = IResult<&'a [u8], T, ()>;

/// `result` with nom's bare error replaced by `kind` for `field`.
#[inline(always)]
fn named<'a, T>(
    field: &'static str,
    kind: DecodeErrorKind,
    result: Bare<'a, T>,
) -> FieldResult<'a, T> {
    result.map_err(|e| e.map(|()| DecodeError::new(field, kind)))
}

/// The SMPP field shapes as nom parsers over a PDU body: each is a parser
/// function (`input -> IResult<rest, value, DecodeError>`) that also takes the
/// spec name of the field it reads, for the error. Input is complete (the
/// framing layer hands over whole PDUs), so running out is an error, never
/// "incomplete". They are plain functions forced inline rather than closures
/// from parser factories: as closures LLVM left some of them as calls in the
/// gate's loop (`bash benches/smpp_codec_count.sh`: 746 instructions per
/// read-and-forward against 735 as functions).
pub(super) mod field {
    use nom::bytes::complete::take;
    use nom::number::complete::{be_u16, be_u32, be_u8};

    use super::{named, DecodeError, DecodeErrorKind, FieldResult, SmppTime};

    /// An Integer of one octet.
    #[inline(always)]
    pub(in super::super) fn u8<'a>(field: &'static str, input: &'a [u8]) -> FieldResult<'a, u8> {
        named(field, DecodeErrorKind::UnexpectedEof, be_u8(input))
    }

    /// An Integer of two octets, big-endian.
    #[inline(always)]
    pub(in super::super) fn u16<'a>(field: &'static str, input: &'a [u8]) -> FieldResult<'a, u16> {
        named(field, DecodeErrorKind::UnexpectedEof, be_u16(input))
    }

    /// An Integer of four octets, big-endian.
    #[inline(always)]
    pub(in super::super) fn u32<'a>(field: &'static str, input: &'a [u8]) -> FieldResult<'a, u32> {
        named(field, DecodeErrorKind::UnexpectedEof, be_u32(input))
    }

    /// `len` octets.
    #[inline(always)]
    pub(in super::super) fn octets<'a>(
        field: &'static str,
        len: usize,
        input: &'a [u8],
    ) -> FieldResult<'a, &'a [u8]> {
        named(field, DecodeErrorKind::UnexpectedEof, take(len)(input))
    }

    /// A C-Octet String of at most `MAX` octets with its NUL; the value is
    /// without the NUL. Looks for the NUL only within the first `MAX` octets, so a
    /// peer cannot make it scan further.
    #[inline(always)]
    pub(in super::super) fn c_octet_string<'a, const MAX: usize>(
        field: &'static str,
        input: &'a [u8],
    ) -> FieldResult<'a, &'a [u8]> {
        let window = &input[..input.len().min(MAX)];
        let Some(value) = nul_at(window).map(|n| &window[..n]) else {
            let kind = if input.is_empty() {
                DecodeErrorKind::UnexpectedEof
            } else if input.len() >= MAX {
                DecodeErrorKind::TooLong { max: MAX - 1 }
            } else {
                DecodeErrorKind::NotNullTerminated
            };
            return Err(nom::Err::Error(DecodeError::new(field, kind)));
        };
        Ok((&input[value.len() + 1..], value))
    }

    /// Where the first NUL is in `window`, eight octets at a time: the
    /// fields are short, so a word-wide test beats both an octet loop and
    /// memchr's call (measured with `benches/smpp_codec_count.sh`).
    #[inline(always)]
    pub(in super::super) fn nul_at(window: &[u8]) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let mut words = window.chunks_exact(8);
        let mut at = 0;
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([1; 8]));
            // The lowest flagged octet is always a zero one (a borrow only
            // flags octets above a zero).
            let zeros = w.wrapping_sub(ONES) & !w & HIGHS;
            if zeros != 0 {
                return Some(at + (zeros.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        let tail = words.remainder();
        tail.iter().position(|&b| b == 0).map(|i| at + i)
    }

    /// An SMPP time: a C-Octet String of 17 that is empty or 16 characters.
    #[inline(always)]
    pub(in super::super) fn time<'a>(
        field: &'static str,
        input: &'a [u8],
    ) -> FieldResult<'a, &'a [u8]> {
        let (rest, value) = c_octet_string::<17>(field, input)?;
        if !value.is_empty() && value.len() != SmppTime::LEN {
            return Err(nom::Err::Error(DecodeError::new(
                field,
                DecodeErrorKind::InvalidValue("must be empty or 16 characters (YYMMDDhhmmsstnnp)"),
            )));
        }
        Ok((rest, value))
    }

    /// `sm_length` and the `short_message` it counts.
    #[inline(always)]
    pub(in super::super) fn short_message(input: &[u8]) -> FieldResult<'_, &[u8]> {
        let (rest, len) = u8("sm_length", input)?;
        let len = usize::from(len);
        if len > 254 {
            let kind = DecodeErrorKind::TooLong { max: 254 };
            return Err(nom::Err::Error(DecodeError::new("sm_length", kind)));
        }
        if len > rest.len() {
            let available = rest.len();
            let kind = DecodeErrorKind::LengthOverrun { len, available };
            return Err(nom::Err::Error(DecodeError::new("sm_length", kind)));
        }
        octets("short_message", len, rest)
    }

    /// One TLV: its tag and value.
    #[inline(always)]
    pub(in super::super) fn tlv(input: &[u8]) -> FieldResult<'_, (u16, &[u8])> {
        let (rest, tag) = u16("tlv_tag", input)?;
        let (rest, len) = u16("tlv_length", rest)?;
        let available = rest.len();
        if usize::from(len) > available {
            let kind = DecodeErrorKind::TlvLengthOverrun {
                tag,
                len,
                available,
            };
            return Err(nom::Err::Error(DecodeError::new("tlv_value", kind)));
        }
        let (rest, value) = octets("tlv_value", usize::from(len), rest)?;
        Ok((rest, (tag, value)))
    }
}

/// A borrowed cursor over one PDU body that runs the [`field`] parsers in turn:
/// every field check the decoders share lives there, so the typed decoder
/// ([`Reader`]) and the gate's allocation-free view of a message
/// ([`super::view`]) accept exactly the same input and fail with the same errors.
#[derive(Clone, Copy)]
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        Cursor { rest: body }
    }

    /// Octets not yet read.
    #[inline]
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The octets not yet read.
    #[inline]
    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Moves past what a field parser run on [`Self::rest`] took, or hands on its error.
    #[inline(always)]
    fn advance<T>(&mut self, parsed: FieldResult<'a, T>) -> Result<T, DecodeError> {
        match parsed {
            Ok((rest, value)) => {
                self.rest = rest;
                Ok(value)
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
            // The field parsers are nom's "complete" kind and never ask for more.
            Err(nom::Err::Incomplete(_)) => Err(DecodeError::new(
                "command_length",
                DecodeErrorKind::UnexpectedEof,
            )),
        }
    }

    #[inline(always)]
    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.advance(field::u8(field, self.rest))
    }

    #[inline(always)]
    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.advance(field::u32(field, self.rest))
    }

    /// A C-Octet String of at most `MAX` octets with its NUL, without the NUL.
    #[inline(always)]
    pub(super) fn c_octet_string<const MAX: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        self.advance(field::c_octet_string::<MAX>(field, self.rest))
    }

    /// An SMPP time: empty or 16 characters.
    #[inline(always)]
    pub(super) fn time(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        self.advance(field::time(field, self.rest))
    }

    /// `sm_length` and the `short_message` it counts.
    #[inline(always)]
    pub(super) fn short_message(&mut self) -> Result<&'a [u8], DecodeError> {
        self.advance(field::short_message(self.rest))
    }

    /// One TLV: its tag and value.
    #[inline(always)]
    pub(super) fn tlv(&mut self) -> Result<(u16, &'a [u8]), DecodeError> {
        self.advance(field::tlv(self.rest))
    }

    /// Fails unless the whole body has been read.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(
                "command_length",
                DecodeErrorKind::TrailingBytes(self.rest.len()),
            ))
        }
    }
}

/// A cursor over one PDU body that hands out typed values. Values are sliced
/// out of the body's `Bytes`, so decoding copies nothing.
pub(super) struct Reader<'a> {
    body: &'a Bytes,
    cur: Cursor<'a>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(body: &'a Bytes) -> Self {
        Reader {
            body,
            cur: Cursor::new(body.as_ref()),
        }
    }

    /// Octets not yet read.
    pub(super) fn remaining(&self) -> usize {
        self.cur.remaining()
    }

    #[inline]
    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.cur.u8(field)
    }

    #[inline]
    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.cur.u32(field)
    }

    /// A C-Octet String of at most `MAX` octets with its NUL.
    #[inline]
    pub(super) fn c_octet_string<const MAX: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<COctetString<MAX>, DecodeError> {
        let value = self.cur.c_octet_string::<MAX>(field)?;
        Ok(COctetString(self.body.slice_ref(value)))
    }

    /// An SMPP time: empty or 16 characters.
    #[inline]
    pub(super) fn time(&mut self, field: &'static str) -> Result<SmppTime, DecodeError> {
        let value = self.cur.time(field)?;
        Ok(SmppTime(self.body.slice_ref(value)))
    }

    /// `sm_length` and the `short_message` it counts.
    #[inline]
    pub(super) fn short_message(&mut self) -> Result<OctetString<254>, DecodeError> {
        let value = self.cur.short_message()?;
        Ok(OctetString(self.body.slice_ref(value)))
    }

    /// One TLV: its tag and shared value.
    #[inline]
    pub(super) fn tlv(&mut self) -> Result<(u16, Bytes), DecodeError> {
        let (tag, value) = self.cur.tlv()?;
        Ok((tag, self.body.slice_ref(value)))
    }

    /// A one-octet count followed by that many entries, the count bounded to `MIN..=MAX`.
    pub(super) fn counted<T: Codec, const MIN: usize, const MAX: usize>(
        &mut self,
        field: &'static str,
        invalid: &'static str,
    ) -> Result<BoundedVec<T, MIN, MAX>, DecodeError> {
        let count = usize::from(self.u8(field)?);
        if !(MIN..=MAX).contains(&count) {
            return Err(DecodeError::new(
                field,
                DecodeErrorKind::InvalidValue(invalid),
            ));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(BoundedVec(items))
    }

    /// Fails unless the whole body has been read.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        self.cur.finish()
    }
}

/// Encoding of the field types, used by the PDU bodies.
pub(super) trait Put {
    fn put_c<const MAX: usize>(&mut self, value: &COctetString<MAX>);
    fn put_time(&mut self, value: &SmppTime);
    fn put_short_message(&mut self, value: &OctetString<254>);
}

impl<B: BufMut> Put for B {
    fn put_c<const MAX: usize>(&mut self, value: &COctetString<MAX>) {
        value.encode(self);
    }

    fn put_time(&mut self, value: &SmppTime) {
        value.encode(self);
    }

    fn put_short_message(&mut self, value: &OctetString<254>) {
        // At most 254 octets by construction.
        self.put_u8(u8::try_from(value.len()).unwrap_or(u8::MAX));
        self.put_slice(value);
    }
}

/// Encoded lengths of the field types.
pub(super) fn c_len<const MAX: usize>(value: &COctetString<MAX>) -> usize {
    value.encoded_len()
}

pub(super) fn time_len(value: &SmppTime) -> usize {
    value.encoded_len()
}

pub(super) fn short_message_len(value: &OctetString<254>) -> usize {
    1 + value.len()
}

pub(super) fn put_counted<T: Codec, B: BufMut, const MIN: usize, const MAX: usize>(
    out: &mut B,
    list: &BoundedVec<T, MIN, MAX>,
) {
    out.put_u8(list.count());
    for item in list.iter() {
        item.encode(out);
    }
}

pub(super) fn counted_len<T: Codec, const MIN: usize, const MAX: usize>(
    list: &BoundedVec<T, MIN, MAX>,
) -> usize {
    1 + list.iter().map(Codec::encoded_len).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nul_is_found_wherever_it_is() {
        // Octets around zero and around 0x80 are where a word-wide zero test
        // could go wrong; every window length up to three words and a tail.
        for fill in [0x01u8, 0x80, 0x81, 0xFF, b'9'] {
            for len in 0..=27 {
                let none = vec![fill; len];
                assert_eq!(field::nul_at(&none), None, "{fill:#x} len {len}");
                for at in 0..len {
                    let mut w = vec![fill; len];
                    w[at] = 0;
                    // A second NUL later must not win.
                    if at + 3 < len {
                        w[at + 3] = 0;
                    }
                    assert_eq!(field::nul_at(&w), Some(at), "{fill:#x} len {len} at {at}");
                }
            }
        }
    }

    fn read_c<const MAX: usize>(
        input: &'static [u8],
    ) -> Result<(COctetString<MAX>, usize), DecodeError> {
        let body = Bytes::from_static(input);
        let mut r = Reader::new(&body);
        let value = r.c_octet_string::<MAX>("source_addr")?;
        Ok((value, r.remaining()))
    }

    #[test]
    fn c_octet_string_stops_at_the_nul_and_keeps_the_rest() {
        let (v, rest) = read_c::<21>(b"12345\0xy").unwrap();
        assert_eq!(v.as_bytes(), b"12345");
        assert_eq!(rest, 2);
        let (v, rest) = read_c::<21>(b"\0").unwrap();
        assert!(v.is_empty());
        assert_eq!(rest, 0);
    }

    #[test]
    fn c_octet_string_at_the_limit_is_accepted_one_past_is_too_long() {
        let (v, _) = read_c::<6>(b"ABCDE\0").unwrap();
        assert_eq!(v.len(), 5);
        let err = read_c::<6>(b"ABCDEF\0").unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TooLong { max: 5 });
        assert_eq!(err.field, "source_addr");
    }

    #[test]
    fn c_octet_string_without_nul_or_absent() {
        let err = read_c::<21>(b"123").unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::NotNullTerminated);
        let err = read_c::<21>(b"").unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::UnexpectedEof);
    }

    #[test]
    fn constructors_enforce_the_limits() {
        assert!(COctetString::<6>::new("CMT").is_ok());
        assert_eq!(
            COctetString::<6>::new("TOOLONG"),
            Err(ValueError::TooLong { len: 7, max: 5 })
        );
        assert_eq!(
            COctetString::<6>::new(&b"a\0b"[..]),
            Err(ValueError::ContainsNul)
        );
        assert_eq!(SmppTime::new("0101"), Err(ValueError::TimeLength(4)));
        assert!(SmppTime::new("250101120000000+").is_ok());
        assert!(OctetString::<254>::new(vec![0u8; 255]).is_err());
        assert!(BoundedVec::<u8, 1, 254>::new(vec![]).is_err());
    }
}
