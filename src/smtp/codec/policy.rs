//! Postfix policy delegation requests (`SMTPD_POLICY_README`): `name=value`
//! lines, each ended by LF (a CR before it is tolerated), the request ended by
//! an empty line; the answer is one `action=<text>` line and an empty line.
//!
//! [`parse`] reads one request from the front of a buffer without copying:
//! the attributes the gate reads borrow from the buffer, every other name is
//! skipped. It tells "need more bytes" (`Ok(None)`) apart from an invalid
//! request (`Err`), and a request read in pieces gives the same result as
//! the whole: a prefix of a request is either "need more" or already the
//! error the whole request has. Errors name the line and the attribute.
//!
//! What makes a request invalid: more than [`Limits::max_size`] octets up to
//! and including its empty line, more than [`Limits::max_lines`] lines, a line
//! without `=`, an empty name, a value of one of the read attributes that is
//! not UTF-8 or that is given twice, and a request with no attribute at all.
//! Values may contain `=` (only the first one splits); unknown names, and
//! values of unknown names in any encoding, are ignored.

use std::fmt;

/// What the codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most octets in one request, its empty line included.
    pub max_size: usize,
    /// Most lines in one request, its empty line included.
    pub max_lines: usize,
}

/// Lines per request the gate accepts (Postfix 3.7 sends about 30).
pub const DEFAULT_MAX_LINES: usize = 1000;

impl Limits {
    /// `max_size` octets and [`DEFAULT_MAX_LINES`] lines.
    pub const fn new(max_size: usize) -> Limits {
        Limits {
            max_size,
            max_lines: DEFAULT_MAX_LINES,
        }
    }
}

impl Default for Limits {
    /// 16384 octets (the gate's default `max_request_size`), 1000 lines.
    fn default() -> Self {
        Limits::new(16384)
    }
}

/// One policy request: the attributes the gate reads, borrowed from the buffer.
/// An attribute that was not sent is `None`; one sent empty is `Some("")`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyRequest<'a> {
    /// `request` (`smtpd_access_policy` from Postfix's smtpd).
    pub request: Option<&'a str>,
    /// `protocol_state`: `CONNECT`, `EHLO`, `HELO`, `MAIL`, `RCPT`, `DATA`,
    /// `BDAT`, `END-OF-MESSAGE`, `VRFY`, `ETRN`.
    pub protocol_state: Option<&'a str>,
    /// `recipient`: the envelope recipient (at RCPT).
    pub recipient: Option<&'a str>,
    /// `sender`: the envelope sender (empty for the null sender).
    pub sender: Option<&'a str>,
    /// `client_address`: the SMTP client's IP address.
    pub client_address: Option<&'a str>,
    /// `sasl_username`: the authenticated name (empty when none).
    pub sasl_username: Option<&'a str>,
    /// `instance`: ties together the requests of one message.
    pub instance: Option<&'a str>,
    /// `policy_context`: set per `check_policy_service` by the operator.
    pub policy_context: Option<&'a str>,
    /// Attribute lines in the request (read or not).
    pub attributes: usize,
}

/// Why a request is invalid. Lines count from 1 within the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The request runs past [`Limits::max_size`] octets.
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request has more than [`Limits::max_lines`] lines.
    TooManyLines {
        /// The limit.
        limit: usize,
    },
    /// A line has no `=`.
    NoEquals {
        /// Which line.
        line: usize,
    },
    /// A line starts with `=`.
    EmptyName {
        /// Which line.
        line: usize,
    },
    /// The value of an attribute the gate reads is not UTF-8.
    NotUtf8 {
        /// Which line.
        line: usize,
        /// Which attribute.
        name: &'static str,
    },
    /// An attribute the gate reads is given twice.
    Repeated {
        /// Which line (the second).
        line: usize,
        /// Which attribute.
        name: &'static str,
    },
    /// An empty line with no attribute before it.
    Empty,
}

impl PolicyError {
    /// A short label for metrics: `too_large`, `too_many_lines`, `syntax`,
    /// `not_utf8`, `repeated`, `empty`.
    pub const fn kind(&self) -> &'static str {
        match self {
            PolicyError::TooLarge { .. } => "too_large",
            PolicyError::TooManyLines { .. } => "too_many_lines",
            PolicyError::NoEquals { .. } | PolicyError::EmptyName { .. } => "syntax",
            PolicyError::NotUtf8 { .. } => "not_utf8",
            PolicyError::Repeated { .. } => "repeated",
            PolicyError::Empty => "empty",
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::TooLarge { limit } => write!(f, "request exceeds {limit} octets"),
            PolicyError::TooManyLines { limit } => write!(f, "request exceeds {limit} lines"),
            PolicyError::NoEquals { line } => write!(f, "line {line}: no '=' in attribute"),
            PolicyError::EmptyName { line } => write!(f, "line {line}: empty attribute name"),
            PolicyError::NotUtf8 { line, name } => {
                write!(f, "line {line}: value of {name} is not UTF-8")
            }
            PolicyError::Repeated { line, name } => {
                write!(f, "line {line}: attribute {name} given twice")
            }
            PolicyError::Empty => f.write_str("empty request (an empty line before any attribute)"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Read one request from the front of `buf`: `Ok(Some((request, used)))`
/// with the octets it took (its empty line included), `Ok(None)` when the
/// request is not complete yet, `Err` when it is invalid (the connection
/// cannot be read further: there is no way to find the next request).
pub fn parse<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(PolicyRequest<'a>, usize)>, PolicyError> {
    let mut req = PolicyRequest::default();
    let mut pos = 0usize;
    let mut line = 0usize;
    loop {
        let rest = &buf[pos..];
        let Some(nl) = find(b'\n', rest) else {
            if buf.len() > limits.max_size {
                return Err(PolicyError::TooLarge {
                    limit: limits.max_size,
                });
            }
            return Ok(None);
        };
        let end = pos + nl + 1;
        if end > limits.max_size {
            return Err(PolicyError::TooLarge {
                limit: limits.max_size,
            });
        }
        line += 1;
        if line > limits.max_lines {
            return Err(PolicyError::TooManyLines {
                limit: limits.max_lines,
            });
        }
        let mut text = &rest[..nl];
        if let [head @ .., b'\r'] = text {
            text = head;
        }
        pos = end;
        if text.is_empty() {
            if req.attributes == 0 {
                return Err(PolicyError::Empty);
            }
            return Ok(Some((req, pos)));
        }
        req.attributes += 1;
        let Some(eq) = find(b'=', text) else {
            return Err(PolicyError::NoEquals { line });
        };
        if eq == 0 {
            return Err(PolicyError::EmptyName { line });
        }
        let (name, value) = (&text[..eq], &text[eq + 1..]);
        let (slot, name): (&mut Option<&'a str>, &'static str) = match name {
            b"request" => (&mut req.request, "request"),
            b"protocol_state" => (&mut req.protocol_state, "protocol_state"),
            b"recipient" => (&mut req.recipient, "recipient"),
            b"sender" => (&mut req.sender, "sender"),
            b"client_address" => (&mut req.client_address, "client_address"),
            b"sasl_username" => (&mut req.sasl_username, "sasl_username"),
            b"instance" => (&mut req.instance, "instance"),
            b"policy_context" => (&mut req.policy_context, "policy_context"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(PolicyError::Repeated { line, name });
        }
        *slot = Some(std::str::from_utf8(value).map_err(|_| PolicyError::NotUtf8 { line, name })?);
    }
}

/// Where `b` first occurs in `hay`.
#[inline]
fn find(b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

/// Append the answer `action=<action>` and the empty line to `out`. The
/// action must be one line (the gate's reply texts are checked at start-up).
pub fn encode_action(out: &mut Vec<u8>, action: impl fmt::Display) {
    use std::io::Write as _;
    out.extend_from_slice(b"action=");
    let _ = write!(out, "{action}");
    out.extend_from_slice(b"\n\n");
}

/// Append one request made of `attributes` to `out` (load generators and tests).
pub fn encode_request(out: &mut Vec<u8>, attributes: &[(&str, &str)]) {
    for (n, v) in attributes {
        out.extend_from_slice(n.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Read one answer from the front of `buf` (load generators and tests):
/// `Ok(Some((action, used)))`, `Ok(None)` when incomplete, `Err` naming the
/// problem when it is not one `action=` line and an empty line.
pub fn parse_answer(buf: &[u8]) -> Result<Option<(&str, usize)>, String> {
    let Some(nl) = find(b'\n', buf) else {
        return Ok(None);
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(action) = line.strip_prefix(b"action=") else {
        return Err(format!(
            "answer line {:?} does not start with action=",
            String::from_utf8_lossy(line)
        ));
    };
    let rest = &buf[nl + 1..];
    let used = match rest {
        [] => return Ok(None),
        [b'\n', ..] => nl + 2,
        [b'\r'] => return Ok(None),
        [b'\r', b'\n', ..] => nl + 3,
        _ => return Err("answer has more than one line".into()),
    };
    let action = std::str::from_utf8(action).map_err(|_| "action is not UTF-8".to_string())?;
    Ok(Some((action, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Postfix 3.7's smtpd sends at RCPT (attribute order as it sends them).
    const POSTFIX_RCPT: &[u8] = b"request=smtpd_access_policy\n\
protocol_state=RCPT\n\
protocol_name=ESMTP\n\
client_address=127.0.0.1\n\
client_name=localhost\n\
client_port=41234\n\
reverse_client_name=localhost\n\
server_address=127.0.0.1\n\
server_port=25\n\
helo_name=client.example\n\
sender=news@shop.example\n\
recipient=ali@example.com\n\
recipient_count=0\n\
queue_id=\n\
instance=2f1e.6571a0b2.4c3d1.0\n\
size=0\n\
etrn_domain=\n\
stress=\n\
sasl_method=\n\
sasl_username=\n\
sasl_sender=\n\
ccert_subject=\n\
ccert_issuer=\n\
ccert_fingerprint=\n\
ccert_pubkey_fingerprint=\n\
encryption_protocol=\n\
encryption_cipher=\n\
encryption_keysize=0\n\
policy_context=\n\
compatibility_level=3.6\n\
mail_version=3.7.11\n\
\n";

    fn one(buf: &[u8]) -> Result<Option<(PolicyRequest<'_>, usize)>, PolicyError> {
        parse(buf, &Limits::default())
    }

    #[test]
    fn reads_what_postfix_sends() {
        let (r, used) = one(POSTFIX_RCPT).unwrap().unwrap();
        assert_eq!(used, POSTFIX_RCPT.len());
        assert_eq!(r.request, Some("smtpd_access_policy"));
        assert_eq!(r.protocol_state, Some("RCPT"));
        assert_eq!(r.recipient, Some("ali@example.com"));
        assert_eq!(r.sender, Some("news@shop.example"));
        assert_eq!(r.client_address, Some("127.0.0.1"));
        assert_eq!(r.sasl_username, Some(""));
        assert_eq!(r.instance, Some("2f1e.6571a0b2.4c3d1.0"));
        assert_eq!(r.policy_context, Some(""));
        assert_eq!(r.attributes, 31);
    }

    #[test]
    fn split_reads_at_every_offset_need_more_then_agree() {
        let mut two = POSTFIX_RCPT.to_vec();
        two.extend_from_slice(b"request=smtpd_access_policy\r\nrecipient=x=y@z\r\n\r\n");
        let whole = one(&two).unwrap().unwrap();
        for cut in 0..POSTFIX_RCPT.len() {
            assert_eq!(one(&two[..cut]), Ok(None), "prefix of {cut} octets");
        }
        for cut in POSTFIX_RCPT.len()..=two.len() {
            assert_eq!(one(&two[..cut]), Ok(Some(whole)), "prefix of {cut} octets");
        }
        let second = &two[whole.1..];
        let (r, used) = one(second).unwrap().unwrap();
        assert_eq!(used, second.len());
        assert_eq!(
            r.recipient,
            Some("x=y@z"),
            "CRLF tolerated, '=' in a value kept"
        );
        for cut in 0..second.len() {
            assert_eq!(one(&second[..cut]), Ok(None), "prefix of {cut} octets");
        }
    }

    #[test]
    fn errors_name_the_line_and_attribute() {
        let e = |b: &[u8]| one(b).unwrap_err().to_string();
        assert_eq!(
            e(b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient\n\n"),
            "line 3: no '=' in attribute"
        );
        assert_eq!(e(b"a=1\n=2\n\n"), "line 2: empty attribute name");
        assert_eq!(
            e(b"a=1\nrecipient=\xff@x\n\n"),
            "line 2: value of recipient is not UTF-8"
        );
        assert_eq!(
            e(b"recipient=a\nrecipient=b\n\n"),
            "line 2: attribute recipient given twice"
        );
        assert_eq!(
            e(b"\n"),
            "empty request (an empty line before any attribute)"
        );
        // Unknown names may carry any octets, and repeat.
        let (r, _) = one(b"x=\xff\xfe\nx=1\nrecipient=a@b\n\n").unwrap().unwrap();
        assert_eq!(r.recipient, Some("a@b"));
    }

    #[test]
    fn size_and_line_limits() {
        let limits = Limits {
            max_size: 1024,
            max_lines: 10,
        };
        // Exactly at the limit, the empty line included.
        let mut at = b"a=".to_vec();
        at.resize(1022, b'v');
        at.extend_from_slice(b"\n\n");
        assert_eq!(at.len(), 1024);
        assert!(parse(&at, &limits).unwrap().is_some());
        let mut over = b"a=".to_vec();
        over.resize(1023, b'v');
        over.extend_from_slice(b"\n\n");
        assert_eq!(
            parse(&over, &limits).unwrap_err().to_string(),
            "request exceeds 1024 octets"
        );
        // No newline at all: too large once past the limit, not before.
        assert_eq!(parse(&over[..1024], &limits), Ok(None));
        assert!(parse(&over[..1025], &limits).is_err());
        let lines = b"a=1\n".repeat(11);
        assert_eq!(
            parse(&lines, &limits).unwrap_err(),
            PolicyError::TooManyLines { limit: 10 }
        );
        let mut nine = b"a=1\n".repeat(9);
        nine.push(b'\n');
        assert!(parse(&nine, &limits).unwrap().is_some());
        // The default: 16384 octets.
        let big = vec![b'a'; 20000];
        assert_eq!(
            one(&big).unwrap_err().to_string(),
            "request exceeds 16384 octets"
        );
    }

    #[test]
    fn errors_agree_at_every_offset() {
        let limits = Limits {
            max_size: 1024,
            max_lines: 10,
        };
        let mut over = b"a=1\nb=2\n".to_vec();
        over.resize(1100, b'x');
        over.extend_from_slice(b"\n\n");
        for bad in [
            &b"request=x\nprotocol_state=RCPT\nrecipient\n\nrequest=y\n\n"[..],
            &over,
            &b"a=1\n".repeat(12),
        ] {
            let whole = parse(bad, &limits);
            assert!(whole.is_err());
            for cut in 0..bad.len() {
                let part = parse(&bad[..cut], &limits);
                assert!(part == Ok(None) || part == whole, "cut {cut}: {part:?}");
            }
        }
    }

    #[test]
    fn answers() {
        let mut out = Vec::new();
        encode_action(&mut out, "DUNNO");
        encode_action(&mut out, format_args!("550 5.7.1 {}", "no"));
        assert_eq!(out, b"action=DUNNO\n\naction=550 5.7.1 no\n\n");
        let (a, used) = parse_answer(&out).unwrap().unwrap();
        assert_eq!((a, used), ("DUNNO", 14));
        let (b, _) = parse_answer(&out[used..]).unwrap().unwrap();
        assert_eq!(b, "550 5.7.1 no");
        for cut in 0..14 {
            assert_eq!(parse_answer(&out[..cut]), Ok(None), "cut {cut}");
        }
        assert!(parse_answer(b"DUNNO\n\n").is_err());
        assert!(parse_answer(b"action=DUNNO\nx\n").is_err());
        let mut req = Vec::new();
        encode_request(
            &mut req,
            &[("request", "smtpd_access_policy"), ("recipient", "a@b")],
        );
        let (r, used) = one(&req).unwrap().unwrap();
        assert_eq!((r.recipient, used), (Some("a@b"), req.len()));
    }
}
