//! A response the gate writes itself (RFC 3261 §8.2.6): the request's Via
//! fields (all of them, in order), From, To (with the gate's tag when the
//! request had none), Call-ID and CSeq copied as they came, then the
//! caller's extra fields and an empty body.

use super::scan::{Message, Span};

/// Append the response `code phrase` to the request `req` (scanned as `m`)
/// to `out`. `to_tag` is added to To when the request's To has no tag (not
/// for 100 Trying); `extra` holds whole header lines, each ending in CRLF.
pub fn write_response(
    req: &[u8],
    m: &Message,
    code: u16,
    phrase: &str,
    to_tag: &[u8],
    extra: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    out.push(b' ');
    out.extend_from_slice(phrase.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut pos = match req[m.start..].iter().position(|&b| b == b'\n') {
        Some(nl) => m.start + nl + 1,
        None => return,
    };
    while pos < m.headers_end {
        // One field: its first line and any continuation lines.
        let mut end = pos;
        loop {
            let nl = req[end..m.headers_end]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(m.headers_end, |n| end + n + 1);
            end = nl;
            if end >= m.headers_end || !matches!(req[end], b' ' | b'\t') {
                break;
            }
        }
        let line = Span::new(pos, end);
        pos = end;
        let text = line.of(req);
        let Some(colon) = text.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = text[..colon].trim_ascii();
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"via")
            || is(b"v")
            || is(b"from")
            || is(b"f")
            || is(b"call-id")
            || is(b"i")
            || is(b"cseq")
        {
            out.extend_from_slice(text);
            if !text.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        } else if is(b"to") || is(b"t") {
            let content = text.trim_ascii_end();
            out.extend_from_slice(content);
            if m.to_tag.is_none() && code > 100 && !to_tag.is_empty() {
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(to_tag);
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}
