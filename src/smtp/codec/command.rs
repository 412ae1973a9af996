//! SMTP commands from senders (RFC 5321 §4.1), sans-I/O: [`split_line`]
//! finds one command line in a buffer (or says it is too long), [`parse`]
//! reads it into a [`Command`] that borrows from the line.
//!
//! **Why not `smtp_proto::Request::parse`.** Stalwart's grammar is complete
//! and maintained, but it parses `MAIL`/`RCPT` parameters into flags and
//! decoded values (ORCPT's xtext decoded, unknown parameters an error of its
//! own) and keeps nothing of the original text. The hop must pass DSN
//! parameters (NOTIFY, ORCPT, RET, ENVID) to the next hop *verbatim*, so it
//! forwards the sender's own command line and only needs the verb, the path
//! and the parameter keywords. That is a few lines of nom (the project's
//! parser library), keeps the parameters as one borrowed slice, allocates
//! nothing, and lets every error name the field it is about (`MAIL FROM
//! path`, `RCPT TO parameter NOTIFY`, ...), which the sender sees in its
//! `501` reply. Measured on this machine (release, `cargo test --release
//! --lib smtp::codec::command::tests::speed -- --ignored --nocapture`), an
//! `RCPT TO:<demo@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;...`
//! line: this parser 139 ns, `smtp_proto::Request::parse` 128 ns. Both are
//! far below the cost of the socket calls around a command (the hop spends
//! about 50 µs of CPU per relayed message), so the choice is about verbatim
//! forwarding and field-naming errors, not speed.
//!
//! Limits: a command line longer than the configured limit (RFC 5321
//! §4.5.3.1.4 asks for at least 512 octets) is [`Line::TooLong`], answered
//! `500 5.5.2`; a path longer than 256 octets (§4.5.3.1.3) is a syntax error.

use nom::bytes::complete::{tag_no_case, take_while, take_while1};
use nom::IResult;
use nom::Parser;

/// Longest path, `<` and `>` included (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// One line found by [`split_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A complete line of this many octets, its line ending included.
    Complete(usize),
    /// No line ending yet, and the buffer is within the limit.
    NeedMore,
    /// Longer than the limit without a line ending: skip to the next LF.
    TooLong,
}

/// Find the first command line in `buf`. A line ends at LF (a CR before it
/// is part of the ending; a bare LF is accepted for commands, as most MTAs
/// do). `max` counts the whole line with its ending.
pub fn split_line(buf: &[u8], max: usize) -> Line {
    match buf.iter().take(max).position(|&b| b == b'\n') {
        Some(i) => Line::Complete(i + 1),
        None if buf.len() >= max => Line::TooLong,
        None => Line::NeedMore,
    }
}

/// An SMTP command, borrowing from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `EHLO domain`.
    Ehlo(&'a str),
    /// `HELO domain`.
    Helo(&'a str),
    /// `MAIL FROM:<path> [params]`.
    Mail(MailFrom<'a>),
    /// `RCPT TO:<path> [params]`.
    Rcpt(RcptTo<'a>),
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// Upper-cased by the caller if needed; as sent.
        mechanism: &'a str,
        /// The initial response, base64 (or `=` for an empty one).
        initial: Option<&'a str>,
    },
    /// `VRFY string`.
    Vrfy,
    /// `EXPN string`.
    Expn,
    /// `HELP [string]`.
    Help,
    /// `BDAT` (CHUNKING), which the hop does not offer.
    Bdat,
}

impl Command<'_> {
    /// The verb, for metric labels.
    pub const fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
            Command::Vrfy => "VRFY",
            Command::Expn => "EXPN",
            Command::Help => "HELP",
            Command::Bdat => "BDAT",
        }
    }
}

/// `MAIL FROM:` as the hop needs it; the line itself is forwarded verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom<'a> {
    /// The reverse path without `<>` and source route; empty for the null sender.
    pub address: &'a str,
    /// The parameters as sent (`SIZE=123 BODY=8BITMIME RET=HDRS ENVID=x`).
    pub params: &'a str,
    /// `SIZE=`, when given.
    pub size: Option<u64>,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
}

/// `RCPT TO:` as the hop needs it; the line itself is forwarded verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo<'a> {
    /// The forward path without `<>` and source route.
    pub address: &'a str,
    /// The parameters as sent (`NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y`).
    pub params: &'a str,
}

/// What is wrong with a command line; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The line is longer than the limit.
    #[error("line too long (limit {limit} octets)")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// Not a command this server knows.
    #[error("command not recognized")]
    Unknown,
    /// A known command with a bad argument.
    #[error("{field}: {why}")]
    Syntax {
        /// `MAIL FROM path`, `RCPT TO parameter NOTIFY`, `EHLO domain`, ...
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A MAIL/RCPT parameter the hop does not know (RFC 5321 §4.1.1.11: `555`).
    #[error("{field}: parameter {name} not supported")]
    UnknownParameter {
        /// `MAIL FROM parameters` or `RCPT TO parameters`.
        field: &'static str,
        /// The keyword as sent (at most 32 characters).
        name: String,
    },
}

impl CommandError {
    /// The reply code and enhanced status for this error.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            CommandError::LineTooLong { .. } => (500, "5.5.2"),
            CommandError::Unknown => (500, "5.5.1"),
            CommandError::Syntax { field, .. } if field.starts_with("MAIL FROM path") => {
                (501, "5.1.7")
            }
            CommandError::Syntax { field, .. } if field.starts_with("RCPT TO path") => {
                (501, "5.1.3")
            }
            CommandError::Syntax { .. } => (501, "5.5.4"),
            CommandError::UnknownParameter { .. } => (555, "5.5.4"),
        }
    }
}

fn syntax(field: &'static str, why: &'static str) -> CommandError {
    CommandError::Syntax { field, why }
}

/// Parse one command line (with or without its line ending).
pub fn parse(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = strip_ending(line);
    let verb_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let (verb, rest) = line.split_at(verb_len);
    // One space after the verb; be lenient about more.
    let rest = trim_spaces(rest);
    let no_arg = |c: Command<'static>, name: &'static str| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(syntax(name, "takes no argument"))
        }
    };
    if verb.len() > 8 {
        return Err(CommandError::Unknown);
    }
    let mut upper = [0u8; 8];
    upper[..verb.len()].copy_from_slice(verb);
    upper.make_ascii_uppercase();
    match &upper[..verb.len()] {
        b"EHLO" => Ok(Command::Ehlo(domain(rest, "EHLO domain")?)),
        b"HELO" => Ok(Command::Helo(domain(rest, "HELO domain")?)),
        b"MAIL" => mail(rest),
        b"RCPT" => rcpt(rest),
        b"DATA" => no_arg(Command::Data, "DATA"),
        b"RSET" => no_arg(Command::Rset, "RSET"),
        b"QUIT" => no_arg(Command::Quit, "QUIT"),
        b"STARTTLS" => no_arg(Command::StartTls, "STARTTLS"),
        b"NOOP" => Ok(Command::Noop),
        b"VRFY" => Ok(Command::Vrfy),
        b"EXPN" => Ok(Command::Expn),
        b"HELP" => Ok(Command::Help),
        b"BDAT" => Ok(Command::Bdat),
        b"AUTH" => auth(rest),
        _ => Err(CommandError::Unknown),
    }
}

fn strip_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

fn text<'a>(s: &'a [u8], field: &'static str) -> Result<&'a str, CommandError> {
    std::str::from_utf8(s).map_err(|_| syntax(field, "is not UTF-8"))
}

fn domain<'a>(rest: &'a [u8], field: &'static str) -> Result<&'a str, CommandError> {
    if rest.is_empty() {
        return Err(syntax(field, "is missing"));
    }
    if rest.len() > 255 || rest.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return Err(syntax(field, "is not a domain or address literal"));
    }
    text(rest, field)
}

fn auth(rest: &[u8]) -> Result<Command<'_>, CommandError> {
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mechanism = words
        .next()
        .ok_or_else(|| syntax("AUTH mechanism", "is missing"))?;
    let mechanism = text(mechanism, "AUTH mechanism")?;
    let initial = words
        .next()
        .map(|w| text(w, "AUTH initial response"))
        .transpose()?;
    if words.next().is_some() {
        return Err(syntax("AUTH", "takes a mechanism and one initial response"));
    }
    Ok(Command::Auth { mechanism, initial })
}

type Res<'a, T> = IResult<&'a [u8], T>;

fn is_space(b: u8) -> bool {
    b == b' '
}

/// `FROM:` / `TO:` with optional spaces around the colon's right side.
fn keyword<'a>(kw: &'static str) -> impl Fn(&'a [u8]) -> Res<'a, ()> {
    move |i: &'a [u8]| {
        let (i, _) = (tag_no_case(kw), take_while(is_space)).parse(i)?;
        Ok((i, ()))
    }
}

/// `<path>` with a possible source route and quoted local part; returns the
/// address (without `<>` and route). A path without `<>` is accepted (some
/// senders omit them) when it holds no space.
fn path(i: &[u8]) -> Res<'_, &[u8]> {
    if let Some(inner) = i.strip_prefix(b"<") {
        let mut quoted = false;
        let mut escaped = false;
        for (n, &b) in inner.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b'>' if !quoted => {
                    let addr = &inner[..n];
                    // Drop a source route `@a,@b:`.
                    let addr = if addr.starts_with(b"@") {
                        match addr.iter().position(|&c| c == b':') {
                            Some(p) => &addr[p + 1..],
                            None => return nom_fail(i),
                        }
                    } else {
                        addr
                    };
                    return Ok((&inner[n + 1..], addr));
                }
                b'\r' | b'\n' | 0 => return nom_fail(i),
                _ => {}
            }
        }
        nom_fail(i)
    } else {
        take_while1(|b: u8| b != b' ' && b != b'<' && b != b'>').parse(i)
    }
}

fn nom_fail<T>(i: &[u8]) -> Res<'_, T> {
    Err(nom::Err::Error(nom::error::Error::new(
        i,
        nom::error::ErrorKind::Verify,
    )))
}

/// Split the path from the parameters.
fn envelope<'a>(
    rest: &'a [u8],
    kw: &'static str,
    field_kw: &'static str,
    field_path: &'static str,
) -> Result<(&'a str, &'a [u8]), CommandError> {
    let (i, ()) = keyword(kw)(rest).map_err(|_| syntax(field_kw, "expected"))?;
    if i.is_empty() {
        return Err(syntax(field_path, "is missing"));
    }
    let (i, addr) = path(i).map_err(|_| syntax(field_path, "is not a <path>"))?;
    if addr.len() + 2 > MAX_PATH {
        return Err(syntax(field_path, "is longer than 256 octets"));
    }
    if addr.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(syntax(field_path, "holds a control character"));
    }
    let addr = text(addr, field_path)?;
    if !i.is_empty() && !i.starts_with(b" ") {
        return Err(syntax(field_path, "must be followed by a space"));
    }
    Ok((addr, trim_spaces(i)))
}

/// Each `keyword[=value]` of a parameter list.
fn params(p: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    p.split(|&b| b == b' ').filter(|w| !w.is_empty()).map(|w| {
        match w.iter().position(|&b| b == b'=') {
            Some(e) => (&w[..e], Some(&w[e + 1..])),
            None => (w, None),
        }
    })
}

fn unknown(field: &'static str, name: &[u8]) -> CommandError {
    let name = String::from_utf8_lossy(&name[..name.len().min(32)]).into_owned();
    CommandError::UnknownParameter { field, name }
}

/// An xtext value (RFC 3461 §4): printable ASCII without `=` and space.
fn xtext(v: Option<&[u8]>, field: &'static str) -> Result<(), CommandError> {
    match v {
        Some(v) if !v.is_empty() && v.iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'=') => {
            Ok(())
        }
        _ => Err(syntax(field, "needs a printable value")),
    }
}

fn mail(rest: &[u8]) -> Result<Command<'_>, CommandError> {
    let (address, p) = envelope(rest, "FROM:", "MAIL FROM:", "MAIL FROM path")?;
    let mut m = MailFrom {
        address,
        params: text(p, "MAIL FROM parameters")?,
        size: None,
        eight_bit: false,
        smtputf8: false,
    };
    for (k, v) in params(p) {
        if k.eq_ignore_ascii_case(b"SIZE") {
            let n = v
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| syntax("MAIL FROM parameter SIZE", "is not a number"))?;
            m.size = Some(n);
        } else if k.eq_ignore_ascii_case(b"BODY") {
            match v {
                Some(v) if v.eq_ignore_ascii_case(b"8BITMIME") => m.eight_bit = true,
                Some(v) if v.eq_ignore_ascii_case(b"7BIT") => {}
                _ => {
                    return Err(syntax(
                        "MAIL FROM parameter BODY",
                        "must be 7BIT or 8BITMIME",
                    ))
                }
            }
        } else if k.eq_ignore_ascii_case(b"SMTPUTF8") {
            if v.is_some() {
                return Err(syntax("MAIL FROM parameter SMTPUTF8", "takes no value"));
            }
            m.smtputf8 = true;
        } else if k.eq_ignore_ascii_case(b"RET") {
            match v {
                Some(v) if v.eq_ignore_ascii_case(b"FULL") || v.eq_ignore_ascii_case(b"HDRS") => {}
                _ => return Err(syntax("MAIL FROM parameter RET", "must be FULL or HDRS")),
            }
        } else if k.eq_ignore_ascii_case(b"ENVID") {
            xtext(v, "MAIL FROM parameter ENVID")?;
        } else if k.eq_ignore_ascii_case(b"AUTH") {
            xtext(v, "MAIL FROM parameter AUTH")?;
        } else {
            return Err(unknown("MAIL FROM parameters", k));
        }
    }
    if !m.smtputf8 && !address.is_ascii() {
        return Err(syntax(
            "MAIL FROM path",
            "is not ASCII (a UTF-8 address needs SMTPUTF8)",
        ));
    }
    Ok(Command::Mail(m))
}

fn rcpt(rest: &[u8]) -> Result<Command<'_>, CommandError> {
    let (address, p) = envelope(rest, "TO:", "RCPT TO:", "RCPT TO path")?;
    if address.is_empty() {
        return Err(syntax("RCPT TO path", "is empty"));
    }
    for (k, v) in params(p) {
        if k.eq_ignore_ascii_case(b"NOTIFY") {
            let ok = v.is_some_and(|v| {
                let words: Vec<&[u8]> = v.split(|&b| b == b',').collect();
                let never = words.iter().any(|w| w.eq_ignore_ascii_case(b"NEVER"));
                words.iter().all(|w| {
                    [&b"NEVER"[..], b"SUCCESS", b"FAILURE", b"DELAY"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k))
                }) && (!never || words.len() == 1)
            });
            if !ok {
                return Err(syntax(
                    "RCPT TO parameter NOTIFY",
                    "must be NEVER or a list of SUCCESS, FAILURE, DELAY",
                ));
            }
        } else if k.eq_ignore_ascii_case(b"ORCPT") {
            xtext(v, "RCPT TO parameter ORCPT")?;
            if !v.is_some_and(|v| v.contains(&b';')) {
                return Err(syntax(
                    "RCPT TO parameter ORCPT",
                    "must be addr-type;address",
                ));
            }
        } else {
            return Err(unknown("RCPT TO parameters", k));
        }
    }
    Ok(Command::Rcpt(RcptTo {
        address,
        params: text(p, "RCPT TO parameters")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_and_limited() {
        assert_eq!(split_line(b"NOOP\r\nQUIT\r\n", 512), Line::Complete(6));
        assert_eq!(split_line(b"NOOP", 512), Line::NeedMore);
        assert_eq!(split_line(&[b'a'; 600], 512), Line::TooLong);
        let mut l = vec![b'a'; 510];
        l.extend_from_slice(b"\r\n");
        assert_eq!(split_line(&l, 512), Line::Complete(512));
        l.insert(0, b'a');
        assert_eq!(split_line(&l, 512), Line::TooLong);
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse(b"EHLO client.example\r\n"),
            Ok(Command::Ehlo("client.example"))
        );
        assert_eq!(
            parse(b"helo [127.0.0.1]\r\n"),
            Ok(Command::Helo("[127.0.0.1]"))
        );
        assert_eq!(parse(b"DATA\r\n"), Ok(Command::Data));
        assert_eq!(parse(b"data\n"), Ok(Command::Data));
        assert_eq!(parse(b"NOOP hello\r\n"), Ok(Command::Noop));
        assert_eq!(parse(b"StartTLS\r\n"), Ok(Command::StartTls));
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg==\r\n"),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial: Some("AGEAYg==")
            })
        );
        let Ok(Command::Mail(m)) =
            parse(b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ314159\r\n")
        else {
            panic!()
        };
        assert_eq!(m.address, "a@b.example");
        assert_eq!(m.size, Some(1000));
        assert!(m.eight_bit);
        assert_eq!(m.params, "SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ314159");
        let Ok(Command::Mail(m)) = parse(b"MAIL FROM:<>\r\n") else {
            panic!()
        };
        assert_eq!(m.address, "");
        let Ok(Command::Mail(m)) = parse(b"MAIL FROM: <@relay.example:a@b.example>\r\n") else {
            panic!()
        };
        assert_eq!(m.address, "a@b.example");
        let Ok(Command::Mail(m)) =
            parse("MAIL FROM:<gönderen@örnek.example> SMTPUTF8\r\n".as_bytes())
        else {
            panic!()
        };
        assert_eq!(m.address, "gönderen@örnek.example");
        assert!(m.smtputf8);
        let Ok(Command::Rcpt(r)) =
            parse(b"RCPT TO:<\"a >b\"@c.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@c\r\n")
        else {
            panic!()
        };
        assert_eq!(r.address, "\"a >b\"@c.example");
        assert_eq!(r.params, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@c");
        let Ok(Command::Rcpt(r)) = parse(b"rcpt to:x@y.example\r\n") else {
            panic!()
        };
        assert_eq!(r.address, "x@y.example");
    }

    #[test]
    fn errors_name_the_field() {
        let e = |l: &[u8]| parse(l).unwrap_err().to_string();
        assert_eq!(parse(b"FOO bar\r\n"), Err(CommandError::Unknown));
        assert_eq!(parse(b"\r\n"), Err(CommandError::Unknown));
        assert_eq!(e(b"EHLO\r\n"), "EHLO domain: is missing");
        assert_eq!(e(b"MAIL TO:<a@b>\r\n"), "MAIL FROM:: expected");
        assert_eq!(e(b"MAIL FROM:<a@b\r\n"), "MAIL FROM path: is not a <path>");
        assert_eq!(
            e(b"MAIL FROM:<a@b> SIZE=x\r\n"),
            "MAIL FROM parameter SIZE: is not a number"
        );
        assert_eq!(
            e(b"MAIL FROM:<a@b> FOO=1\r\n"),
            "MAIL FROM parameters: parameter FOO not supported"
        );
        assert_eq!(parse(b"MAIL FROM:<a@b> FOO=1").unwrap_err().code().0, 555);
        assert_eq!(
            e("MAIL FROM:<ö@b>\r\n".as_bytes()),
            "MAIL FROM path: is not ASCII (a UTF-8 address needs SMTPUTF8)"
        );
        assert_eq!(e(b"RCPT TO:<>\r\n"), "RCPT TO path: is empty");
        assert_eq!(parse(b"RCPT TO:<>").unwrap_err().code(), (501, "5.1.3"));
        assert_eq!(
            e(b"RCPT TO:<a@b> NOTIFY=NEVER,DELAY\r\n"),
            "RCPT TO parameter NOTIFY: must be NEVER or a list of SUCCESS, FAILURE, DELAY"
        );
        assert_eq!(e(b"DATA now\r\n"), "DATA: takes no argument");
        let long = format!("MAIL FROM:<{}@b>\r\n", "a".repeat(300));
        assert_eq!(
            e(long.as_bytes()),
            "MAIL FROM path: is longer than 256 octets"
        );
        assert_eq!(
            e(b"MAIL FROM:<a@b>x\r\n"),
            "MAIL FROM path: must be followed by a space"
        );
        assert_eq!(
            e(b"RCPT TO:<a\x01@b>\r\n"),
            "RCPT TO path: holds a control character"
        );
    }

    #[test]
    fn never_panics_on_prefixes_of_valid_lines() {
        let line = "MAIL FROM:<\"q\\\"x\"@örnek.example> SIZE=10 SMTPUTF8 BODY=8BITMIME\r\n";
        for n in 0..=line.len() {
            let _ = parse(&line.as_bytes()[..n]);
        }
        for b in 0..=255u8 {
            let _ = parse(&[b'R', b'C', b'P', b'T', b' ', b'T', b'O', b':', b'<', b]);
        }
    }

    /// Compare with smtp-proto's parser (run in release with --ignored --nocapture).
    #[test]
    #[ignore]
    fn speed() {
        let line =
            b"RCPT TO:<demo@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;demo@example.com\r\n";
        let n = 2_000_000;
        let t = std::time::Instant::now();
        let mut ok = 0usize;
        for _ in 0..n {
            ok += usize::from(parse(std::hint::black_box(line)).is_ok());
        }
        let ours = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let l = std::hint::black_box(&line[..]);
            ok += usize::from(smtp_proto::Request::parse(&mut l.iter()).is_ok());
        }
        let theirs = t.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(ok, 2 * n);
        println!(
            "RCPT TO line: command::parse {ours:.0} ns, smtp_proto::Request::parse {theirs:.0} ns"
        );
    }
}
