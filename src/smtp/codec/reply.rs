//! Replies from the next hop (RFC 5321 §4.2), sans-I/O: [`parse`] finds one
//! complete reply, single- or multi-line (`250-...` lines then `250 ...`),
//! at the start of a buffer, and [`Capabilities::from_ehlo`] reads the
//! extensions an EHLO reply offers. The hop passes a next-hop reply to the
//! sender byte for byte, so a reply is its code and its length in the buffer.

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 asks for 512; be lenient).
pub const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one reply (an EHLO reply has a few dozen at most).
pub const MAX_REPLY_LINES: usize = 100;

/// One complete reply at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyView {
    /// The three-digit code (all lines share it).
    pub code: u16,
    /// Octets of the whole reply, line endings included.
    pub len: usize,
}

impl ReplyView {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// What is wrong with a reply; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line does not start with three digits and ` `, `-` or its end.
    #[error("reply line {line}: code: not three digits 2-5 followed by ' ' or '-'")]
    Code {
        /// 1-based line number within the reply.
        line: usize,
    },
    /// A continuation line's code differs from the first.
    #[error("reply line {line}: code: {got} differs from the first line's {first}")]
    Mixed {
        /// 1-based line.
        line: usize,
        /// First line's code.
        first: u16,
        /// This line's code.
        got: u16,
    },
    /// A line or the line count is over the limit.
    #[error("reply: longer than {MAX_REPLY_LINE} octets a line or {MAX_REPLY_LINES} lines")]
    TooLong,
}

fn code_of(line: &[u8], n: usize) -> Result<(u16, bool), ReplyError> {
    let d = |i: usize| line.get(i).filter(|b| b.is_ascii_digit()).map(|b| b - b'0');
    let (Some(a), Some(b), Some(c)) = (d(0), d(1), d(2)) else {
        return Err(ReplyError::Code { line: n });
    };
    if !(2..=5).contains(&a) {
        return Err(ReplyError::Code { line: n });
    }
    let more = match line.get(3) {
        Some(b'-') => true,
        Some(b' ') | Some(b'\r') | Some(b'\n') | None => false,
        _ => return Err(ReplyError::Code { line: n }),
    };
    Ok((u16::from(a) * 100 + u16::from(b) * 10 + u16::from(c), more))
}

/// One complete reply at the start of `buf`; `Ok(None)`: need more octets.
pub fn parse(buf: &[u8]) -> Result<Option<ReplyView>, ReplyError> {
    let mut at = 0;
    let mut first = None;
    for n in 1..=MAX_REPLY_LINES {
        let rest = &buf[at..];
        let Some(end) = rest.iter().take(MAX_REPLY_LINE).position(|&b| b == b'\n') else {
            if rest.len() >= MAX_REPLY_LINE {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        let line = &rest[..end + 1];
        let (code, more) = code_of(line, n)?;
        match first {
            None => first = Some(code),
            Some(f) if f != code => {
                return Err(ReplyError::Mixed {
                    line: n,
                    first: f,
                    got: code,
                })
            }
            _ => {}
        }
        at += end + 1;
        if !more {
            return Ok(Some(ReplyView { code, len: at }));
        }
    }
    Err(ReplyError::TooLong)
}

/// The text of each line of a complete reply (after `ddd-`/`ddd `), without line endings.
pub fn lines(reply: &[u8]) -> impl Iterator<Item = &[u8]> {
    reply
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 3)
        .map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            l.get(4..).unwrap_or(&[])
        })
}

/// What an EHLO reply offers, as far as the hop cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` without a limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
}

impl Capabilities {
    /// Read an EHLO reply (the whole reply, as [`parse`] found it). The
    /// first line is the greeting; each further line is `KEYWORD [params]`.
    pub fn from_ehlo(reply: &[u8]) -> Capabilities {
        let mut c = Capabilities::default();
        for line in lines(reply).skip(1) {
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let Some(kw) = words.next() else { continue };
            let is = |k: &str| kw.eq_ignore_ascii_case(k.as_bytes());
            if is("PIPELINING") {
                c.pipelining = true;
            } else if is("SIZE") {
                let n = words
                    .next()
                    .and_then(|w| std::str::from_utf8(w).ok())
                    .and_then(|w| w.parse().ok());
                c.size = Some(n.unwrap_or(0));
            } else if is("8BITMIME") {
                c.eight_bit_mime = true;
            } else if is("SMTPUTF8") {
                c.smtputf8 = true;
            } else if is("DSN") {
                c.dsn = true;
            } else if is("STARTTLS") {
                c.starttls = true;
            } else if is("ENHANCEDSTATUSCODES") {
                c.enhanced_status_codes = true;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(
            parse(b"250 2.1.0 Ok\r\n354"),
            Ok(Some(ReplyView { code: 250, len: 14 }))
        );
        assert_eq!(parse(b"250 2.1.0 Ok"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        let ehlo = b"250-sink.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n";
        let v = parse(ehlo).unwrap().unwrap();
        assert_eq!(v.code, 250);
        assert_eq!(v.len, ehlo.len());
        assert_eq!(parse(&ehlo[..ehlo.len() - 3]), Ok(None));
        assert_eq!(parse(b"220\r\n"), Ok(Some(ReplyView { code: 220, len: 5 })));
        assert_eq!(parse(b"250\n"), Ok(Some(ReplyView { code: 250, len: 4 })));
    }

    #[test]
    fn bad_replies_name_the_line() {
        assert_eq!(parse(b"hello\r\n"), Err(ReplyError::Code { line: 1 }));
        assert_eq!(parse(b"650 x\r\n"), Err(ReplyError::Code { line: 1 }));
        assert_eq!(parse(b"250x\r\n"), Err(ReplyError::Code { line: 1 }));
        assert_eq!(
            parse(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::Mixed {
                line: 2,
                first: 250,
                got: 251
            })
        );
        assert_eq!(parse(&[b'2'; 3000]), Err(ReplyError::TooLong));
        let many = "250-x\r\n".repeat(200);
        assert_eq!(parse(many.as_bytes()), Err(ReplyError::TooLong));
        assert!(ReplyError::Mixed {
            line: 2,
            first: 250,
            got: 251
        }
        .to_string()
        .starts_with("reply line 2: code:"));
    }

    #[test]
    fn ehlo_capabilities() {
        let ehlo = b"250-sink.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-DSN\r\n250-starttls\r\n250 SMTPUTF8\r\n";
        let c = Capabilities::from_ehlo(ehlo);
        assert!(c.pipelining && c.eight_bit_mime && c.dsn && c.smtputf8 && c.starttls);
        assert_eq!(c.size, Some(10_240_000));
        assert!(!c.enhanced_status_codes);
        let c = Capabilities::from_ehlo(b"250-a\r\n250 SIZE\r\n");
        assert_eq!(c.size, Some(0));
        assert!(!c.pipelining);
        // The greeting line is not a keyword.
        assert_eq!(
            Capabilities::from_ehlo(b"250 PIPELINING\r\n"),
            Capabilities::default()
        );
    }
}
