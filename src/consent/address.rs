//! Address normalisation: one function per address kind, used identically when
//! loading consents and when checking a message.
//!
//! Phones: `+905321234567`, `905321234567`, `05321234567` and `5321234567` are the
//! same Turkish subscriber. Other E.164 numbers are written `+<country><number>` or
//! `00<country><number>`. Spaces, dots, dashes and parentheses are ignored.
//! E-mail: trimmed and lower-cased (Unicode), then checked for one `@` with text on
//! both sides.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64;

use super::model::Channel;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Empty after trimming.
    #[error("address is empty")]
    Empty,
    /// A character that has no place in a phone number.
    #[error("phone number contains {0:?}: only digits, a leading '+', spaces, '-', '.', '(' and ')' are allowed")]
    PhoneCharacter(char),
    /// Digit count does not fit any accepted phone form.
    #[error("phone number has {0} digits: expected a Turkish number (10 digits, or 11 with a leading 0, or +90 and 10 digits) or an international number (+ and 8 to 15 digits)")]
    PhoneLength(usize),
    /// A Turkish number outside 2xx–5xx.
    #[error("Turkish number must start with 2, 3, 4 or 5 after the country code, got {0}")]
    PhonePrefix(char),
    /// E-mail without exactly one usable `@`.
    #[error("e-mail address needs text on both sides of a single '@'")]
    EmailShape,
    /// E-mail with whitespace or control characters inside.
    #[error("e-mail address contains whitespace or a control character")]
    EmailCharacter,
    /// E-mail longer than RFC 5321 allows.
    #[error("e-mail address is {0} bytes long (UTF-8, lower-cased): at most 254 are allowed")]
    EmailLength(usize),
}

/// The first Turkish national number a compact id can hold (`2000000000`).
const TR_NATIONAL_BASE: u64 = 2_000_000_000;
/// One past the last (`5999999999`).
const TR_NATIONAL_END: u64 = 6_000_000_000;
/// `90` followed by ten digits.
const TR_COUNTRY_PREFIX: u64 = 900_000_000_000;

/// A normalised phone number: the full E.164 digits as an integer
/// (`+905321234567` is `905321234567`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(u64);

/// `str::trim` for ASCII octets (its whitespace includes the vertical tab,
/// which `<[u8]>::trim_ascii` keeps).
fn trim_ascii_like_str(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b'\t'..=b'\r' | b' ');
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

impl Phone {
    /// Normalise any accepted spelling of a phone number.
    pub fn parse(input: &str) -> Result<Phone, AddressError> {
        Self::parse_as(input, false)
    }

    /// Normalise a number known to be international (SMPP TON 1): its digits
    /// start with the country code even without `+` or `00`.
    pub fn parse_international(input: &str) -> Result<Phone, AddressError> {
        Self::parse_as(input, true)
    }

    /// Normalise a phone number given as octets (an SMPP address field): the
    /// same result as [`Phone::parse`] / [`Phone::parse_international`] on its
    /// text, without a UTF-8 pass for the usual all-ASCII field.
    pub fn parse_octets(input: &[u8], international: bool) -> Result<Phone, AddressError> {
        if let Some(phone) = Self::turkish_digits(input, international) {
            return Ok(phone);
        }
        if input.is_ascii() {
            Self::parse_ascii(trim_ascii_like_str(input), international)
        } else {
            // Unicode whitespace is trimmed like `str::trim`; anything else
            // non-ASCII is refused naming the character.
            let text =
                std::str::from_utf8(input).map_err(|_| AddressError::PhoneCharacter('\u{FFFD}'))?;
            Self::parse_as(text, international)
        }
    }

    /// The usual SMPP destination, a bare Turkish number (`905321234567`,
    /// `05321234567`, `5321234567`), read in one pass; `None` for anything
    /// else, which takes the general path.
    #[inline]
    fn turkish_digits(input: &[u8], international: bool) -> Option<Phone> {
        let national = match (input.len(), international) {
            (12, _) if input.starts_with(b"90") => &input[2..],
            (11, false) if input[0] == b'0' && input[1] != b'0' => &input[1..],
            (10, false) => input,
            _ => return None,
        };
        if !(b'2'..=b'5').contains(&national[0]) {
            return None;
        }
        let (first, last) = national.split_at(8);
        let mut n = eight_digits(first.try_into().ok()?)?;
        for &c in last {
            let digit = c.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            n = n * 10 + u64::from(digit);
        }
        Some(Phone(TR_COUNTRY_PREFIX + n))
    }

    fn parse_as(input: &str, international: bool) -> Result<Phone, AddressError> {
        let s = input.trim();
        Self::parse_ascii(s.as_bytes(), international)
    }

    /// `s`: trimmed octets, valid UTF-8 (a bad character is named in the error).
    fn parse_ascii(s: &[u8], international: bool) -> Result<Phone, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let (international, rest) = match s.strip_prefix(b"+") {
            Some(rest) => (true, rest),
            None => (international && !s.starts_with(b"00"), s),
        };
        let mut digits = [0u8; 20];
        let mut n = 0usize;
        for (i, &c) in rest.iter().enumerate() {
            match c {
                b'0'..=b'9' => {
                    if n == digits.len() {
                        return Err(AddressError::PhoneLength(n + 1));
                    }
                    digits[n] = c - b'0';
                    n += 1;
                }
                b' ' | b'-' | b'.' | b'(' | b')' => {}
                _ => {
                    // Every octet before `i` was ASCII: `i` starts a character.
                    let bad = std::str::from_utf8(&rest[i..])
                        .ok()
                        .and_then(|t| t.chars().next())
                        .unwrap_or('\u{FFFD}');
                    return Err(AddressError::PhoneCharacter(bad));
                }
            }
        }
        let mut d: &[u8] = &digits[..n];
        let mut international = international;
        if !international && d.len() > 2 && d[0] == 0 && d[1] == 0 {
            d = &d[2..];
            international = true;
        }
        let national: &[u8] = if international {
            if d.len() == 12 && d[0] == 9 && d[1] == 0 {
                &d[2..]
            } else if d.first() == Some(&0) || !(8..=15).contains(&d.len()) {
                return Err(AddressError::PhoneLength(d.len()));
            } else if d.starts_with(&[9, 0]) {
                // +90 with the wrong number of digits.
                return Err(AddressError::PhoneLength(d.len()));
            } else {
                return Ok(Phone(to_u64(d)));
            }
        } else {
            match d.len() {
                12 if d[0] == 9 && d[1] == 0 => &d[2..],
                11 if d[0] == 0 => &d[1..],
                10 => d,
                len => return Err(AddressError::PhoneLength(len)),
            }
        };
        let first = national[0];
        if !(2..=5).contains(&first) {
            return Err(AddressError::PhonePrefix((b'0' + first) as char));
        }
        Ok(Phone(TR_COUNTRY_PREFIX + to_u64(national)))
    }

    /// The E.164 digits as an integer.
    pub const fn digits(self) -> u64 {
        self.0
    }

    /// The Turkish national number (10 digits), if this is a Turkish number.
    pub fn tr_national(self) -> Option<u64> {
        let national = self.0.checked_sub(TR_COUNTRY_PREFIX)?;
        (TR_NATIONAL_BASE..TR_NATIONAL_END)
            .contains(&national)
            .then_some(national)
    }

    /// The key the store uses: a compact id for Turkish numbers, the digits otherwise.
    pub fn key(self) -> AddressKey {
        match self.tr_national() {
            Some(n) => AddressKey::TrPhone((n - TR_NATIONAL_BASE) as u32),
            None => AddressKey::ForeignPhone(self.0),
        }
    }

    /// Rebuild from a store key of a Turkish number.
    pub fn from_tr_id(id: u32) -> Phone {
        Phone(TR_COUNTRY_PREFIX + TR_NATIONAL_BASE + u64::from(id))
    }

    /// Rebuild from E.164 digits, if they form an accepted number.
    pub fn from_digits(digits: u64) -> Result<Phone, AddressError> {
        Phone::parse(&format!("+{digits}"))
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

fn to_u64(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d))
}

/// A normalised e-mail address (trimmed, lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(Box<str>);

impl Email {
    /// Normalise and validate an e-mail address.
    pub fn parse(input: &str) -> Result<Email, AddressError> {
        let s = input.trim();
        let lower = if s.is_ascii() {
            s.to_ascii_lowercase()
        } else {
            s.to_lowercase()
        };
        // Checked after lower-casing: it can lengthen text (`Ⱦ` is 2 bytes,
        // `ⱦ` 3), and the normalised form must parse again to itself.
        validate_email(&lower)?;
        Ok(Email(lower.into_boxed_str()))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the store uses: a 64-bit hash of the normalised text.
    pub fn key(&self) -> AddressKey {
        AddressKey::Email(xxh3_64(self.0.as_bytes()))
    }

    /// The store key of an e-mail without allocating for ASCII addresses (the
    /// check path). Gives the same key as `Email::parse(s)?.key()`.
    pub fn key_of(input: &str) -> Result<AddressKey, AddressError> {
        let s = input.trim();
        if !s.is_ascii() {
            // Lower-casing may change the length: validate the normalised form.
            return Ok(Email::parse(s)?.key());
        }
        validate_email(s)?;
        {
            let mut buf = [0u8; 254];
            let out = &mut buf[..s.len()];
            out.copy_from_slice(s.as_bytes());
            out.make_ascii_lowercase();
            Ok(AddressKey::Email(xxh3_64(out)))
        }
    }
}

fn validate_email(s: &str) -> Result<(), AddressError> {
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    if s.len() > 254 {
        return Err(AddressError::EmailLength(s.len()));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AddressError::EmailCharacter);
    }
    match s.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(AddressError::EmailShape),
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recipient address of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A phone number (MESAJ and ARAMA).
    Phone(Phone),
    /// An e-mail address (EPOSTA).
    Email(Email),
}

impl Address {
    /// Parse an address of the kind the channel uses.
    pub fn parse_for(channel: Channel, input: &str) -> Result<Address, AddressError> {
        if channel.is_phone() {
            Phone::parse(input).map(Address::Phone)
        } else {
            Email::parse(input).map(Address::Email)
        }
    }

    /// The key the store uses.
    pub fn key(&self) -> AddressKey {
        match self {
            Address::Phone(p) => p.key(),
            Address::Email(e) => e.key(),
        }
    }

    /// The address with its middle masked, for logs and audit (KVKK).
    pub fn masked(&self) -> String {
        match self {
            Address::Phone(p) => mask_text(&p.to_string()),
            Address::Email(e) => mask_text(e.as_str()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Phone(p) => p.fmt(f),
            Address::Email(e) => e.fmt(f),
        }
    }
}

/// The store key of an address for a channel, without allocating on the check path.
pub fn address_key(channel: Channel, input: &str) -> Result<AddressKey, AddressError> {
    if channel.is_phone() {
        Phone::parse(input).map(Phone::key)
    } else {
        Email::key_of(input)
    }
}

/// Mask an address for logs: `+905321234567` → `+90532*****67`,
/// `ali.veli@example.com` → `a*******@example.com`. Works on raw input too, so a
/// malformed address is never logged in clear.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    mask_into(text, &mut out);
    out
}

/// [`mask_text`] appended to `out` (no allocation once `out` has room).
pub fn mask_into(text: &str, out: &mut String) {
    let text = text.trim();
    if let Some((local, domain)) = text.rsplit_once('@') {
        let mut chars = local.chars();
        if let Some(first) = chars.next() {
            out.push(first);
        }
        out.extend(chars.map(|_| '*'));
        out.push('@');
        out.push_str(domain);
        return;
    }
    if text.is_ascii() {
        // The usual case (digits): whole slices instead of char by char.
        let len = text.len();
        let (keep_head, keep_tail) = if len >= 10 { (6, 2) } else { (1, 1) };
        if len <= keep_head + keep_tail {
            out.push_str(text);
        } else {
            out.push_str(&text[..keep_head]);
            out.extend(std::iter::repeat_n('*', len - keep_head - keep_tail));
            out.push_str(&text[len - keep_tail..]);
        }
        return;
    }
    mask_chars(text, out);
}

/// The masking rule for a number-like text, char by char: the first six and
/// last two of ten or more kept, else the first and last.
fn mask_chars(text: &str, out: &mut String) {
    let len = text.chars().count();
    let (keep_head, keep_tail) = if len >= 10 { (6, 2) } else { (1, 1) };
    out.extend(text.chars().enumerate().map(|(i, c)| {
        if i < keep_head || i + keep_tail >= len {
            c
        } else {
            '*'
        }
    }));
}

/// What the store keys an address by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKey {
    /// A Turkish national number as `national - 2_000_000_000` (fits in a u32).
    TrPhone(u32),
    /// Any other E.164 number, as its digits.
    ForeignPhone(u64),
    /// An e-mail: xxh3-64 of the normalised text.
    Email(u64),
}

/// Eight ASCII digits as their number, or `None` if any octet is not a digit:
/// one word at a time (three multiplications instead of eight steps; the
/// usual SMPP destination's ten digits are read per message).
#[inline]
fn eight_digits(octets: [u8; 8]) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let w = u64::from_le_bytes(octets);
    // Each octet is 0x30..=0x39: its high nibble is 3, and still 3 with 6
    // added (a carry out of an octet above 0xF9 only comes from one that
    // already failed the first test).
    let digits =
        w & HIGH_NIBBLES == ZEROS && w.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == ZEROS;
    if !digits {
        return None;
    }
    // The first digit is the lowest octet. Pairs, then fours, then all
    // eight, each step a multiply-add of neighbours.
    let d = w - ZEROS;
    let pairs = (d * 10 + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let fours = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((fours * 10_000 + (fours >> 32)) & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_digits_reads_every_digit_and_refuses_the_rest() {
        let slow = |o: &[u8; 8]| -> Option<u64> {
            o.iter().try_fold(0u64, |n, &c| {
                let d = c.wrapping_sub(b'0');
                (d <= 9).then_some(n * 10 + u64::from(d))
            })
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut cases: Vec<[u8; 8]> = vec![*b"00000000", *b"99999999", *b"53212345", *b"10000001"];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut o = [0u8; 8];
            for (i, b) in o.iter_mut().enumerate() {
                *b = b'0' + ((x >> (i * 5)) % 10) as u8;
            }
            cases.push(o);
            // One octet off: every position, values around the digits and
            // ones whose +6 carries.
            let mut bad = o;
            bad[(x % 8) as usize] =
                [b'/', b':', 0x00, 0x20, 0x7F, 0xFA, 0xFF, 0xB5][(x >> 40) as usize % 8];
            cases.push(bad);
        }
        for o in cases {
            assert_eq!(
                eight_digits(o),
                slow(&o),
                "{:?}",
                String::from_utf8_lossy(&o)
            );
        }
    }

    #[test]
    fn octets_parse_as_their_text() {
        let inputs: [&[u8]; 18] = [
            b"905321234567",
            b"05321234567",
            b"5321234567",
            b"00532123456",
            b"6321234567",
            b"90532123456x",
            b"9053212345",
            b" 05321234567\x0b",
            b"\t+90 532 123 45 67\r\n",
            b"4915112345678",
            b"0049151123456",
            b"532123456A",
            b"\xc2\xa05321234567",
            b"5321234567\xe2\x80\x83",
            b"53212\xc3\xa734567",
            b"",
            b"   ",
            b"1234",
        ];
        for input in inputs {
            let text = std::str::from_utf8(input).unwrap();
            for international in [false, true] {
                assert_eq!(
                    Phone::parse_octets(input, international),
                    Phone::parse_as(text, international),
                    "{text:?} international={international}"
                );
            }
        }
        assert_eq!(
            Phone::parse_octets(b"53212\xc3\xa734567", false),
            Err(AddressError::PhoneCharacter('ç'))
        );
        assert!(Phone::parse_octets(b"5321\xff234567", false).is_err());
    }

    #[test]
    fn turkish_forms_are_one_subscriber() {
        let forms = [
            "+905321234567",
            "905321234567",
            "05321234567",
            "5321234567",
            " +90 (532) 123-45-67 ",
            "00905321234567",
        ];
        let want = Phone::parse(forms[0]).unwrap();
        for f in forms {
            assert_eq!(Phone::parse(f).unwrap(), want, "{f}");
        }
        assert_eq!(want.to_string(), "+905321234567");
        assert!(matches!(want.key(), AddressKey::TrPhone(_)));
        match want.key() {
            AddressKey::TrPhone(id) => assert_eq!(Phone::from_tr_id(id), want),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn landlines_and_foreign_numbers() {
        assert!(matches!(
            Phone::parse("02121234567").unwrap().key(),
            AddressKey::TrPhone(_)
        ));
        let de = Phone::parse("+4915112345678").unwrap();
        assert_eq!(de.key(), AddressKey::ForeignPhone(4915112345678));
        assert_eq!(Phone::parse("004915112345678").unwrap(), de);
    }

    #[test]
    fn bad_phones_are_named() {
        assert_eq!(Phone::parse(""), Err(AddressError::Empty));
        assert_eq!(
            Phone::parse("0532ABC4567"),
            Err(AddressError::PhoneCharacter('A'))
        );
        assert_eq!(Phone::parse("532123456"), Err(AddressError::PhoneLength(9)));
        assert_eq!(
            Phone::parse("8501234567"),
            Err(AddressError::PhonePrefix('8'))
        );
        assert_eq!(
            Phone::parse("+90532123456"),
            Err(AddressError::PhoneLength(11))
        );
        assert!(Phone::parse("+1234567890123456").is_err());
        assert!(Phone::parse("++905321234567").is_err());
        assert!(Phone::parse(&"9".repeat(40)).is_err());
    }

    #[test]
    fn email_is_trimmed_and_case_folded() {
        let a = Email::parse("  Ali.Veli@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "ali.veli@example.com");
        assert_eq!(a.key(), Email::key_of("ALI.VELI@example.com").unwrap());
        // Lower-casing can lengthen the text; the limit applies to the result,
        // so a normalised address always parses again to itself.
        let grows = format!("{}@m\u{23E}", "a".repeat(250));
        assert_eq!(grows.len(), 254);
        assert!(matches!(
            Email::parse(&grows),
            Err(AddressError::EmailLength(255))
        ));
        assert!(Email::key_of(&grows).is_err());
        // ...and can shorten it: the Kelvin sign (3 bytes) becomes `k` (1 byte).
        let shrinks = format!("{}@{}", "a".repeat(200), "\u{212A}".repeat(18));
        assert!(shrinks.len() > 254);
        assert_eq!(
            Email::key_of(&shrinks),
            Ok(Email::parse(&shrinks).unwrap().key())
        );
        let tr = Email::parse("ÇAĞRI@örnek.com.tr").unwrap();
        assert_eq!(tr.key(), Email::key_of("çağri@ÖRNEK.com.tr").unwrap());
        assert_eq!(Email::parse("a@"), Err(AddressError::EmailShape));
        assert_eq!(Email::parse("@b"), Err(AddressError::EmailShape));
        assert_eq!(Email::parse("ab"), Err(AddressError::EmailShape));
        assert_eq!(Email::parse("a b@c"), Err(AddressError::EmailCharacter));
        assert!(matches!(
            Email::parse(&format!("{}@x.com", "a".repeat(260))),
            Err(AddressError::EmailLength(_))
        ));
    }

    #[test]
    fn masking_hides_the_middle() {
        let p = Address::Phone(Phone::parse("05321234567").unwrap());
        assert_eq!(p.masked(), "+90532*****67");
        let e = Address::Email(Email::parse("ali@example.com").unwrap());
        assert_eq!(e.masked(), "a**@example.com");
        assert_eq!(mask_text("garbage"), "g*****e");
        // Plain ASCII takes a faster path than other text: the same rule.
        for (text, masked) in [
            ("12", "12"),
            ("123", "1*3"),
            ("905321234567", "905321****67"),
            (" 905321234567 ", "905321****67"),
            ("çğü", "ç*ü"),
            ("çğüşöıabcd", "çğüşöı**cd"),
            ("ç1", "ç1"),
        ] {
            assert_eq!(mask_text(text), masked, "{text:?}");
        }
        // The ASCII path against the char-by-char rule, every length to 24.
        let mut seed = 0x2545_f491_u32;
        for len in 0..=24 {
            for _ in 0..50 {
                let text: String = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        char::from(b"0123456789+ -*x"[seed as usize % 15])
                    })
                    .collect();
                let mut want = String::new();
                mask_chars(text.trim(), &mut want);
                assert_eq!(mask_text(&text), want, "{text:?}");
            }
        }
    }
}
