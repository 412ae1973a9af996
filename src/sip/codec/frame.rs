//! Message boundaries on a stream transport (TCP): the header section ends
//! at the first empty line and Content-Length says how much body follows
//! (RFC 3261 §18.3: required on a stream).

use super::error::{bad, ScanError};

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet: read more.
    NeedMore,
    /// `n` bytes of CRLF between messages (keep-alives, RFC 5626 §3.5.1):
    /// drop them. `n` is 4 for a `CRLFCRLF` ping that asks for a `CRLF` pong.
    Keepalive(usize),
    /// A whole message of `n` bytes.
    Message(usize),
}

/// Where the first message in `buf` ends. `max` bounds a message: past it
/// without an end in sight the stream is broken.
pub fn frame(buf: &[u8], max: usize) -> Result<Frame, ScanError> {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::Keepalive(crlf));
    }
    // A start line opens with a method token or "SIP/2.0", then a space:
    // anything else is not SIP, and waiting for more would only waste time.
    let word = buf.iter().take(33).take_while(|&&b| b != b' ').count();
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~/".contains(b);
    if !buf[..word].iter().all(token) || (word == 33) || (word == 0 && !buf.is_empty()) {
        return bad("start line", "not a SIP request or status line");
    }
    let window = &buf[..buf.len().min(max)];
    let Some(body_start) = header_end(window) else {
        if buf.len() > max {
            return Err(ScanError::TooLarge {
                size: buf.len(),
                max,
            });
        }
        return Ok(Frame::NeedMore);
    };
    let length = content_length(&buf[..body_start])?;
    let total = body_start.saturating_add(length);
    if total > max {
        return Err(ScanError::TooLarge { size: total, max });
    }
    if buf.len() < total {
        return Ok(Frame::NeedMore);
    }
    Ok(Frame::Message(total))
}

/// Index just past the empty line that ends the header section.
fn header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let after = i + nl + 1;
        match buf.get(after) {
            Some(b'\n') => return Some(after + 1),
            Some(b'\r') if buf.get(after + 1) == Some(&b'\n') => return Some(after + 2),
            Some(_) => i = after,
            None => return None,
        }
    }
    None
}

/// The Content-Length of a header section (long or compact name, any case).
fn content_length(head: &[u8]) -> Result<usize, ScanError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue; // a folded continuation
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
            return bad("Content-Length", "not a number");
        }
        let n = value
            .iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return bad("Content-Length", "appears twice with different values");
        }
        found = Some(n);
    }
    found.ok_or(super::ScanError::Field {
        field: "Content-Length",
        problem: "required on a stream transport (RFC 3261 §18.3)",
    })
}
