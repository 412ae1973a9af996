//! Who is called and who calls: the number in a Request-URI or in a From /
//! P-Asserted-Identity value, normalised by [`Phone`].
//!
//! - `sip:` / `sips:` (scheme in any case): the user part, before `@`, without
//!   a password (`:`) or user parameters (`;`); `user=phone` or not, a user
//!   part that reads as a number is one, and `alice` is not.
//! - `tel:`: the number up to its parameters (`;phone-context=...`).
//! - Percent escapes are decoded (`%2B90...`); visual separators (`-.()`)
//!   and the Turkish forms (`+90...`, `0090...`, `90...`, `0...`, 10 digits)
//!   are [`Phone`]'s business.

use thiserror::Error;

use crate::consent::{AddressError, Phone};

/// Why a URI gives no phone number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UriError {
    /// Not `sip:`, `sips:` or `tel:`.
    #[error("URI scheme is not sip, sips or tel")]
    Scheme,
    /// A `sip:` URI without a user part (`sip:host`).
    #[error("URI has no user part")]
    NoUser,
    /// A bad percent escape or a user part too long for a number.
    #[error("URI user part is not a number: {0}")]
    Escape(&'static str),
    /// The user part is not a phone number.
    #[error("URI user part is not a phone number: {0}")]
    Number(AddressError),
}

/// The longest user part read as a number (after percent-decoding).
const MAX_USER: usize = 64;

/// The raw user part of a URI (still percent-encoded): the number of a
/// `tel:` URI, the user of a `sip:`/`sips:` URI.
pub fn user_part(uri: &[u8]) -> Result<&[u8], UriError> {
    let colon = memchr::memchr(b':', uri).ok_or(UriError::Scheme)?;
    let scheme = &uri[..colon];
    let rest = &uri[colon + 1..];
    if scheme.eq_ignore_ascii_case(b"tel") {
        let end = memchr::memchr2(b';', b'?', rest).unwrap_or(rest.len());
        if end == 0 {
            return Err(UriError::NoUser);
        }
        return Ok(&rest[..end]);
    }
    if !(scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips")) {
        return Err(UriError::Scheme);
    }
    // The user part ends at the last '@' before any URI parameter or header
    // (an '@' cannot appear unescaped in a user part, but be lenient).
    let hostport_end = memchr::memchr2(b'?', b'>', rest).unwrap_or(rest.len());
    let at = memchr::memrchr(b'@', &rest[..hostport_end]).ok_or(UriError::NoUser)?;
    let userinfo = &rest[..at];
    let end = memchr::memchr2(b':', b';', userinfo).unwrap_or(userinfo.len());
    if end == 0 {
        return Err(UriError::NoUser);
    }
    Ok(&userinfo[..end])
}

/// The phone number a URI names.
pub fn phone(uri: &[u8]) -> Result<Phone, UriError> {
    let user = user_part(uri)?;
    if !user.contains(&b'%') {
        return Phone::parse_octets(user, false).map_err(UriError::Number);
    }
    let mut decoded = [0u8; MAX_USER];
    let mut n = 0;
    let mut i = 0;
    while i < user.len() {
        let b = if user[i] == b'%' {
            let hex = user
                .get(i + 1..i + 3)
                .ok_or(UriError::Escape("a '%' without two hex digits"))?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(UriError::Escape("a '%' without two hex digits"))?;
            i += 3;
            v
        } else {
            i += 1;
            user[i - 1]
        };
        if n == MAX_USER {
            return Err(UriError::Escape("too long"));
        }
        decoded[n] = b;
        n += 1;
    }
    Phone::parse_octets(&decoded[..n], false).map_err(UriError::Number)
}

/// The URI of a From / To / P-Asserted-Identity value: inside `<>` when
/// there are angle brackets, else the addr-spec up to its header parameters.
pub fn addr_uri(value: &[u8]) -> &[u8] {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in value.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => {
                let rest = &value[i + 1..];
                let end = rest.iter().position(|&c| c == b'>').unwrap_or(rest.len());
                return rest[..end].trim_ascii();
            }
            _ => {}
        }
    }
    let end = value
        .iter()
        .position(|&b| b == b';' || b == b',')
        .unwrap_or(value.len());
    value[..end].trim_ascii()
}
