//! The DATA reader (RFC 5321 §4.1.1.4, §4.5.2), sans-I/O. It takes the
//! message text as it arrives, in chunks of any size, and
//!
//! - finds the end of data **only** at `<CRLF>.<CRLF>` (the CRLF before the
//!   dot may be the one ending the DATA command). A bare LF or CR before a
//!   dot never ends it; such a sequence (`<LF>.`, `<CR>.`, `<CRLF>.<LF>`,
//!   `<CRLF>.<CR>` not followed by LF) is flagged ([`DataReader::smuggling`]),
//!   because a next hop that reads bare line ends could take it for the end
//!   and see a second, smuggled message in the rest; the hop refuses such
//!   a message instead of passing it on;
//! - copies the text to `out` exactly as sent, dot-stuffing included (the
//!   hop relays it to another SMTP server, which unstuffs it), except for the
//!   final `.<CRLF>`, which the caller sends itself once it has decided;
//! - counts the message size (the octets before the final `.<CRLF>`) and
//!   the longest line against limits;
//! - holds back the header section (up to [`MAX_HEADER_SECTION`]) until
//!   its empty line, offers each field to [`IysHeaders::offer`] (folded
//!   continuation lines unfolded), optionally drops the `X-IYS-*` fields
//!   with their continuation lines, and reports [`Step::HeadersDone`] so the
//!   caller can decide before anything of the message leaves.

use crate::smtp::gating::IysHeaders;

/// Largest header section held back before the body starts.
pub const MAX_HEADER_SECTION: usize = 256 * 1024;

/// Where the byte scanner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Just after CRLF (or at the start of the data).
    LineStart,
    /// `<CRLF>.` held back.
    Dot,
    /// `<CRLF>.<CR>` held back.
    DotCr,
    /// Inside a line.
    Mid,
    /// After a CR inside a line.
    Cr,
    /// After a bare LF.
    BareLf,
}

/// What [`DataReader::feed`] stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// All input consumed; the message goes on.
    NeedMore,
    /// The header section is complete (or over its limit, see
    /// [`DataReader::headers_too_long`]); the headers are in `out` and the
    /// İYS headers in [`DataReader::iys`].
    HeadersDone,
    /// `<CRLF>.<CRLF>` seen; consumed through its last LF. If the header
    /// section had not ended before, it has now (and is in `out`).
    End,
}

/// Reads one message's text.
#[derive(Debug)]
pub struct DataReader {
    max_size: usize,
    max_line: usize,
    strip: bool,
    state: State,
    line_len: usize,
    size: usize,
    longest_line: usize,
    /// `Some` while the header section is being held back.
    headers: Option<Vec<u8>>,
    smuggling: bool,
    headers_too_long: bool,
    iys: IysHeaders,
    repeated: bool,
}

impl DataReader {
    /// A reader for a message of at most `max_size` octets with lines of at
    /// most `max_line` octets (line end included); `strip` drops the
    /// `X-IYS-*` header fields from `out`.
    pub fn new(max_size: usize, max_line: usize, strip: bool) -> DataReader {
        DataReader {
            max_size,
            max_line,
            strip,
            state: State::LineStart,
            line_len: 0,
            size: 0,
            longest_line: 0,
            headers: Some(Vec::new()),
            smuggling: false,
            headers_too_long: false,
            iys: IysHeaders::default(),
            repeated: false,
        }
    }

    /// Message octets so far (the final `.<CRLF>` not counted).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Over the size limit.
    pub fn too_big(&self) -> bool {
        self.size > self.max_size
    }

    /// A line (with its line end) was longer than the limit.
    pub fn line_too_long(&self) -> bool {
        self.longest_line + 2 > self.max_line
    }

    /// A bare LF or CR before a dot was seen (see the module doc).
    pub fn smuggling(&self) -> bool {
        self.smuggling
    }

    /// The header section did not end within [`MAX_HEADER_SECTION`].
    pub fn headers_too_long(&self) -> bool {
        self.headers_too_long
    }

    /// The İYS headers found, and whether one was repeated.
    pub fn iys(&self) -> (&IysHeaders, bool) {
        (&self.iys, self.repeated)
    }

    /// Whether the header section is still being held back.
    pub fn in_headers(&self) -> bool {
        self.headers.is_some()
    }

    /// Read from `input`, appending what to relay to `out`; returns how many
    /// octets were consumed and where it stopped. Call again with the rest
    /// of the input after [`Step::HeadersDone`]; after [`Step::End`] the
    /// rest is the next command.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Step) {
        let mut run = 0usize;
        let mut i = 0usize;
        // Within the headers, text goes to the held-back section first.
        let mut held = self.headers.take();
        macro_rules! emit {
            ($bytes:expr) => {
                match held.as_mut() {
                    Some(h) => h.extend_from_slice($bytes),
                    None => out.extend_from_slice($bytes),
                }
            };
        }
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::LineStart if b == b'.' => {
                    emit!(&input[run..i]);
                    self.state = State::Dot;
                    i += 1;
                    run = i;
                    continue;
                }
                State::Dot => {
                    if b == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                        run = i;
                        continue;
                    }
                    if b == b'\n' {
                        self.smuggling = true;
                    }
                    emit!(b".");
                    self.size += 1;
                    self.line_len = 1;
                    self.state = State::Mid;
                    // `b` is looked at again as part of the line.
                    continue;
                }
                State::DotCr => {
                    if b == b'\n' {
                        i += 1;
                        let consumed = i;
                        if let Some(h) = held.take() {
                            self.finish_headers(h, out);
                        }
                        return (consumed, Step::End);
                    }
                    self.smuggling = true;
                    emit!(b".\r");
                    self.size += 2;
                    self.line_len = 1;
                    self.state = State::Cr;
                    continue;
                }
                _ => {}
            }
            self.size += 1;
            match (self.state, b) {
                (State::Cr, b'\n') => {
                    self.state = State::LineStart;
                    i += 1;
                    let empty = self.line_len == 0;
                    self.line_len = 0;
                    if let Some(h) = held.as_mut() {
                        h.extend_from_slice(&input[run..i]);
                        run = i;
                        if empty || h.len() > MAX_HEADER_SECTION {
                            self.headers_too_long = !empty;
                            let h = held.take().unwrap_or_default();
                            self.finish_headers(h, out);
                            return (i, Step::HeadersDone);
                        }
                    }
                    continue;
                }
                (State::Cr, b'\r') => {
                    self.line_len += 1;
                }
                (State::Cr, _) => {
                    self.smuggling |= b == b'.';
                    self.line_len += 1;
                    self.state = State::Mid;
                }
                (_, b'\r') => self.state = State::Cr,
                (_, b'\n') => {
                    // A bare LF: not a line end for SMTP.
                    self.line_len += 1;
                    self.state = State::BareLf;
                }
                (State::BareLf, _) => {
                    self.smuggling |= b == b'.';
                    self.line_len += 1;
                    self.state = State::Mid;
                }
                _ => {
                    self.line_len += 1;
                    self.state = State::Mid;
                }
            }
            if self.line_len > self.longest_line {
                self.longest_line = self.line_len;
            }
            i += 1;
        }
        emit!(&input[run..]);
        if let Some(h) = held {
            if h.len() > MAX_HEADER_SECTION {
                self.headers_too_long = true;
                self.finish_headers(h, out);
                return (input.len(), Step::HeadersDone);
            }
            self.headers = Some(h);
        }
        (input.len(), Step::NeedMore)
    }

    /// Offer each header field to the İYS headers and copy the section to
    /// `out`, without the İYS fields when stripping.
    fn finish_headers(&mut self, h: Vec<u8>, out: &mut Vec<u8>) {
        let mut fields = Fields::new(&h);
        while let Some((range, name, value)) = fields.next_field() {
            let iys = IysHeaders::is_iys_header(name);
            if iys {
                self.iys.offer(name, &value, &mut self.repeated);
            }
            if !(iys && self.strip) {
                out.extend_from_slice(&h[range]);
            }
        }
        out.extend_from_slice(&h[fields.at..]);
    }
}

/// Header fields of a held-back section: the octet range of each field
/// (first line and continuation lines), its name and its unfolded value.
struct Fields<'a> {
    h: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(h: &'a [u8]) -> Fields<'a> {
        Fields { h, at: 0 }
    }

    fn line_end(&self, from: usize) -> usize {
        self.h[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(self.h.len(), |p| from + p + 2)
    }

    fn next_field(&mut self) -> Option<(std::ops::Range<usize>, &'a [u8], Vec<u8>)> {
        let start = self.at;
        if start >= self.h.len() || self.h[start..].starts_with(b"\r\n") {
            return None;
        }
        let mut end = self.line_end(start);
        while end < self.h.len() && matches!(self.h[end], b' ' | b'\t') {
            end = self.line_end(end);
        }
        self.at = end;
        let field = &self.h[start..end];
        // A header line starting with a dot arrives dot-stuffed.
        let field = field.strip_prefix(b".").unwrap_or(field);
        let (name, value) = match field.iter().position(|&b| b == b':') {
            Some(c) => (&field[..c], &field[c + 1..]),
            None => (&field[..0], field),
        };
        let value: Vec<u8> = value
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        Some((start..end, trim(name), value))
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|&b| b != b' ' && b != b'\t') {
        Some(p) => &s[p..],
        None => return &s[..0],
    };
    let e = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    &s[..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `msg` in chunks of `chunk` octets; returns (out, steps seen, consumed).
    fn run(r: &mut DataReader, msg: &[u8], chunk: usize) -> (Vec<u8>, Vec<Step>, usize) {
        let mut out = Vec::new();
        let mut steps = Vec::new();
        let mut at = 0;
        while at < msg.len() {
            let end = (at + chunk).min(msg.len());
            let mut piece = &msg[at..end];
            loop {
                let (n, step) = r.feed(piece, &mut out);
                at += n;
                piece = &piece[n..];
                if step != Step::NeedMore {
                    steps.push(step);
                }
                if step == Step::End {
                    return (out, steps, at);
                }
                if piece.is_empty() {
                    break;
                }
            }
        }
        (out, steps, at)
    }

    fn reader() -> DataReader {
        DataReader::new(1 << 20, 1000, false)
    }

    const MSG: &[u8] =
        b"From: a@b\r\nX-IYS-Message-Type: 11\r\nSubject: hi\r\n\r\nline\r\n..dot\r\n.\r\nNEXT";

    #[test]
    fn end_only_at_crlf_dot_crlf_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 64, 1000] {
            let mut r = reader();
            let (out, steps, consumed) = run(&mut r, MSG, chunk);
            assert_eq!(steps, vec![Step::HeadersDone, Step::End], "chunk {chunk}");
            assert_eq!(&MSG[consumed..], b"NEXT");
            // Everything but the final ".\r\n", dot-stuffing kept.
            assert_eq!(out, &MSG[..MSG.len() - 7], "chunk {chunk}");
            assert_eq!(r.size(), MSG.len() - 7);
            assert!(!r.smuggling());
            assert_eq!(r.iys().0.message_type.as_deref(), Some("11"));
        }
    }

    #[test]
    fn bare_line_ends_never_end_data_and_are_flagged() {
        for bad in [
            &b"a\r\n\n.\n"[..],
            b"a\n.\r\n",
            b"a\r.\r\n",
            b"a\r\n.\nb",
            b"a\r\n.\rb",
            b"a\r\r.\r\r",
        ] {
            let mut msg = b"\r\n".to_vec();
            msg.extend_from_slice(bad);
            let mut r = reader();
            let (out, steps, _) = run(&mut r, &msg, 1);
            assert_eq!(steps, vec![Step::HeadersDone], "{bad:?}");
            assert_eq!(out, msg, "{bad:?}");
            assert!(r.smuggling(), "{bad:?}");
            msg.extend_from_slice(b"\r\n.\r\n");
            let mut r = reader();
            let (_, steps, n) = run(&mut r, &msg, 3);
            assert_eq!(steps.last(), Some(&Step::End), "{bad:?}");
            assert_eq!(n, msg.len());
        }
        // Bare LFs without a dot are passed and not flagged.
        let mut r = reader();
        let (out, _, _) = run(&mut r, b"\r\na\nb\r\n.\r\n", 5);
        assert_eq!(out, b"\r\na\nb\r\n");
        assert!(!r.smuggling());
    }

    #[test]
    fn empty_message_and_immediate_end() {
        let mut r = reader();
        let mut out = Vec::new();
        assert_eq!(r.feed(b".\r\nQUIT\r\n", &mut out), (3, Step::End));
        assert!(out.is_empty());
        assert_eq!(r.size(), 0);
        // A message with headers only ends the header section at its end.
        let mut r = reader();
        let (out, steps, _) = run(&mut r, b"X-IYS-Brand-Code: 5\r\n.\r\n", 4);
        assert_eq!(steps, vec![Step::End]);
        assert_eq!(out, b"X-IYS-Brand-Code: 5\r\n");
        assert_eq!(r.iys().0.brand_code.as_deref(), Some("5"));
    }

    #[test]
    fn strips_iys_fields_with_folded_lines() {
        let msg = b"From: a@b\r\nx-iys-message-type:\r\n 12\r\nX-IYS-Retailer-Code: 7\r\nX-IYS-Retailer-Code: 8\r\nTo: c@d\r\n\r\nbody\r\n.\r\n";
        let mut r = DataReader::new(1 << 20, 1000, true);
        let (out, _, _) = run(&mut r, msg, 5);
        assert_eq!(out, b"From: a@b\r\nTo: c@d\r\n\r\nbody\r\n");
        let (h, repeated) = r.iys();
        assert_eq!(h.message_type.as_deref(), Some("12"));
        assert_eq!(h.retailer_code.as_deref(), Some("7"));
        assert!(repeated);
    }

    #[test]
    fn limits() {
        let mut r = DataReader::new(10, 1000, false);
        run(&mut r, b"\r\n0123456789\r\n.\r\n", 4);
        assert!(r.too_big());
        let mut r = DataReader::new(1000, 10, false);
        run(&mut r, b"\r\n0123456789\r\n.\r\n", 4);
        assert!(r.line_too_long());
        let mut r = DataReader::new(1000, 12, false);
        run(&mut r, b"\r\n0123456789\r\n.\r\n", 4);
        assert!(!r.line_too_long() && !r.too_big());
        let mut r = DataReader::new(1 << 30, 1 << 30, false);
        let mut big = b"X: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEADER_SECTION + 10));
        big.extend_from_slice(b"\r\n\r\n.\r\n");
        let (out, steps, _) = run(&mut r, &big, 4096);
        assert_eq!(steps, vec![Step::HeadersDone, Step::End]);
        assert!(r.headers_too_long());
        assert_eq!(out, &big[..big.len() - 3]);
    }

    #[test]
    fn random_input_never_panics_and_output_is_input() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
        for _ in 0..2000 {
            let len = rng.gen_range(0..80);
            let msg: Vec<u8> = (0..len)
                .map(|_| {
                    *[b'.', b'\r', b'\n', b'a', b':', b' ']
                        .get(rng.gen_range(0..6))
                        .unwrap()
                })
                .collect();
            let mut r = DataReader::new(1 << 20, 1 << 20, false);
            let chunk = rng.gen_range(1..10);
            let (out, steps, n) = run(&mut r, &msg, chunk);
            if steps.last() == Some(&Step::End) {
                assert_eq!(&msg[n - 3..n], b".\r\n");
                let mut whole = out.clone();
                whole.extend_from_slice(b".\r\n");
                assert_eq!(whole, &msg[..n]);
            } else if r.in_headers() {
                assert!(out.is_empty());
            } else {
                let held = match r.state {
                    State::Dot => 1,
                    State::DotCr => 2,
                    _ => 0,
                };
                assert_eq!(out.len() + held, msg.len());
            }
        }
    }
}
