//! One pass over a whole SIP message: the start line, then each header field
//! (folded lines joined, compact names known), recording the spans the gate
//! needs. No allocation.

use super::error::{bad, ScanError};

/// A byte range of the scanned buffer (`start..end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// `start..end`.
    pub const fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The bytes this span covers in `buf` (empty if out of range).
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    /// Covers nothing.
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The methods the gate treats differently; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// CANCEL
    Cancel,
    /// BYE
    Bye,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// Any other token.
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1).
    pub fn of(token: &[u8]) -> Method {
        match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"CANCEL" => Method::Cancel,
            b"BYE" => Method::Bye,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            _ => Method::Other,
        }
    }

    /// Metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Other => "other",
        }
    }
}

/// Request or response, from the start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `METHOD Request-URI SIP/2.0`
    Request {
        /// The method, if one the gate knows.
        method: Method,
        /// The method token.
        method_span: Span,
        /// The Request-URI.
        uri: Span,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code, 100 to 699.
        code: u16,
    },
}

/// One via-parm: `SIP/2.0/UDP host:port;branch=...;received=...;rport=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Via {
    /// The whole via-parm, trimmed.
    pub value: Span,
    /// Transport token (`UDP`, `TCP`, `TLS`, ...).
    pub transport: Span,
    /// sent-by host (an IPv6 reference keeps its brackets).
    pub host: Span,
    /// sent-by port, when given.
    pub port: Option<u16>,
    /// `branch` value.
    pub branch: Option<Span>,
    /// `received` value.
    pub received: Option<Span>,
    /// `rport` present (`Some`), with its value when it has one.
    pub rport: Option<Option<u16>>,
    /// The parameters (`;...` to the end).
    pub params: Span,
}

impl Via {
    /// Any parameter of this via-parm: `Some(None)` when present without a value.
    pub fn param(&self, buf: &[u8], name: &[u8]) -> Option<Option<Span>> {
        param(buf, self.params, name)
    }

    /// Where to insert `=<port>` to fill an empty `rport` (RFC 3581 §4).
    pub fn empty_rport_end(&self, buf: &[u8]) -> Option<usize> {
        if self.rport != Some(None) {
            return None;
        }
        let text = self.params.of(buf);
        let mut i = 0;
        while let Some(semi) = text[i..].iter().position(|&b| b == b';') {
            let s = i + semi + 1;
            let e = text[s..]
                .iter()
                .position(|&b| b == b';' || b == b'=')
                .map_or(text.len(), |e| s + e);
            let name = trim(buf, Span::new(self.params.start + s, self.params.start + e));
            if name.of(buf).eq_ignore_ascii_case(b"rport") {
                return Some(name.end);
            }
            i = e;
        }
        None
    }
}

/// Most İYS header lines a message may carry (each is cut when forwarding).
pub const MAX_IYS_LINES: usize = 6;

/// Where the `X-IYS-*` headers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IysSpans {
    /// First `X-IYS-Message-Type` value.
    pub message_type: Option<Span>,
    /// First `X-IYS-Brand-Code` value.
    pub brand_code: Option<Span>,
    /// First `X-IYS-Retailer-Code` value.
    pub retailer_code: Option<Span>,
    /// A field came more than once (the first is used; all are cut).
    pub repeated: bool,
    /// The whole lines, folded continuations and line end included.
    pub lines: [Span; MAX_IYS_LINES],
    /// How many of `lines` are used.
    pub count: usize,
}

impl IysSpans {
    /// The lines to cut when forwarding.
    pub fn lines(&self) -> &[Span] {
        &self.lines[..self.count]
    }
}

/// A scanned message: spans into the buffer it was scanned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Request or response.
    pub kind: Kind,
    /// Where the start line begins (after any leading CRLFs).
    pub start: usize,
    /// The topmost via-parm.
    pub top_via: Via,
    /// What to cut to remove the topmost via-parm: its whole line when it is
    /// alone in its Via field, else it and the comma after it.
    pub top_via_cut: Span,
    /// Where the first Via line begins (a proxy inserts its own Via here).
    pub via_line: usize,
    /// The second via-parm (where a response goes after the top one is removed).
    pub second_via: Option<Via>,
    /// Max-Forwards: its value and the value's span.
    pub max_forwards: Option<(u32, Span)>,
    /// From value.
    pub from: Span,
    /// From `tag` value.
    pub from_tag: Option<Span>,
    /// To value.
    pub to: Span,
    /// To `tag` value (none on an initial request).
    pub to_tag: Option<Span>,
    /// Call-ID value.
    pub call_id: Span,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method token.
    pub cseq_method: Span,
    /// Content-Length value, when present.
    pub content_length: Option<usize>,
    /// First P-Asserted-Identity value.
    pub asserted_identity: Option<Span>,
    /// The İYS headers.
    pub iys: IysSpans,
    /// Where the empty line that ends the header section begins.
    pub headers_end: usize,
    /// The body.
    pub body: Span,
}

impl Message {
    /// The message's bytes end here (after the body; extra datagram bytes
    /// past Content-Length are not part of it).
    pub fn end(&self) -> usize {
        self.body.end
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method> {
        match self.kind {
            Kind::Request { method, .. } => Some(method),
            Kind::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        match self.kind {
            Kind::Request { .. } => None,
            Kind::Response { code } => Some(code),
        }
    }

    /// The Request-URI of a request.
    pub fn uri(&self) -> Option<Span> {
        match self.kind {
            Kind::Request { uri, .. } => Some(uri),
            Kind::Response { .. } => None,
        }
    }
}

/// The header fields the scanner tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Via,
    MaxForwards,
    From,
    To,
    CallId,
    CSeq,
    ContentLength,
    AssertedIdentity,
    IysMessageType,
    IysBrandCode,
    IysRetailerCode,
    Other,
}

fn field_of(name: &[u8]) -> Field {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        1 => match name[0].to_ascii_lowercase() {
            b'v' => Field::Via,
            b'f' => Field::From,
            b't' => Field::To,
            b'i' => Field::CallId,
            b'l' => Field::ContentLength,
            _ => Field::Other,
        },
        2 if is(b"to") => Field::To,
        3 if is(b"via") => Field::Via,
        4 if is(b"from") => Field::From,
        4 if is(b"cseq") => Field::CSeq,
        7 if is(b"call-id") => Field::CallId,
        12 if is(b"max-forwards") => Field::MaxForwards,
        14 if is(b"content-length") => Field::ContentLength,
        16 if is(b"x-iys-brand-code") => Field::IysBrandCode,
        18 if is(b"x-iys-message-type") => Field::IysMessageType,
        19 if is(b"x-iys-retailer-code") => Field::IysRetailerCode,
        19 if is(b"p-asserted-identity") => Field::AssertedIdentity,
        _ => Field::Other,
    }
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `span` without leading and trailing whitespace (folding included).
fn trim(buf: &[u8], span: Span) -> Span {
    let mut s = span.start;
    let mut e = span.end;
    while s < e && is_ws(buf[s]) {
        s += 1;
    }
    while e > s && is_ws(buf[e - 1]) {
        e -= 1;
    }
    Span::new(s, e)
}

/// Token characters (RFC 3261 §25.1), as a table.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// A token character (RFC 3261 §25.1).
#[inline]
fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// The end of the line starting at `from`: (index of the LF or the buffer's
/// end, index just past the line end).
#[inline]
fn line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let nl = memchr::memchr(b'\n', &buf[from..])? + from;
    let content_end = if nl > from && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((content_end, nl + 1))
}

/// Scan one whole message (a UDP datagram, or a frame [`super::frame`]
/// delimited). `max` bounds its size.
pub fn scan(buf: &[u8], max: usize) -> Result<Message, ScanError> {
    if buf.len() > max {
        return Err(ScanError::TooLarge {
            size: buf.len(),
            max,
        });
    }
    let mut pos = 0;
    while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        pos += 1;
    }
    let start = pos;
    let Some((line_stop, next)) = line_end(buf, pos) else {
        return bad("start line", "no line end");
    };
    let kind = start_line(buf, Span::new(pos, line_stop))?;
    pos = next;

    let mut m = Message {
        kind,
        start,
        top_via: Via::default(),
        top_via_cut: Span::default(),
        via_line: 0,
        second_via: None,
        max_forwards: None,
        from: Span::default(),
        from_tag: None,
        to: Span::default(),
        to_tag: None,
        call_id: Span::default(),
        cseq: 0,
        cseq_method: Span::default(),
        content_length: None,
        asserted_identity: None,
        iys: IysSpans::default(),
        headers_end: 0,
        body: Span::default(),
    };
    let mut seen = Seen::default();

    // Header fields: each is a line plus any continuation lines.
    let mut current: Option<(Span, Span, usize)> = None; // (name, value, line start)
    loop {
        let Some((content_end, next)) = line_end(buf, pos) else {
            return bad("header section", "no empty line ends it");
        };
        let first = buf.get(pos).copied();
        if content_end == pos {
            // The empty line.
            if let Some((name, value, line_start)) = current.take() {
                header(
                    buf,
                    &mut m,
                    &mut seen,
                    name,
                    value,
                    Span::new(line_start, pos),
                )?;
            }
            m.headers_end = pos;
            pos = next;
            break;
        }
        if matches!(first, Some(b' ' | b'\t')) {
            match current.as_mut() {
                Some((_, value, _)) => value.end = content_end,
                None => return bad("header section", "a continuation line with no field"),
            }
            pos = next;
            continue;
        }
        if let Some((name, value, line_start)) = current.take() {
            header(
                buf,
                &mut m,
                &mut seen,
                name,
                value,
                Span::new(line_start, pos),
            )?;
        }
        let Some(colon) = memchr::memchr(b':', &buf[pos..content_end]) else {
            return bad("header section", "a line without a colon");
        };
        let name = trim(buf, Span::new(pos, pos + colon));
        if name.is_empty() || !name.of(buf).iter().all(|&b| is_token(b)) {
            return bad("header section", "a field name that is not a token");
        }
        current = Some((name, Span::new(pos + colon + 1, content_end), pos));
        pos = next;
    }

    // Required fields (RFC 3261 §8.1.1, §20).
    if !seen.via {
        return bad("Via", "missing");
    }
    if !seen.from {
        return bad("From", "missing");
    }
    if !seen.to {
        return bad("To", "missing");
    }
    if !seen.call_id {
        return bad("Call-ID", "missing");
    }
    if !seen.cseq {
        return bad("CSeq", "missing");
    }
    if let Kind::Request { method_span, .. } = m.kind {
        if method_span.of(buf) != m.cseq_method.of(buf) {
            return bad("CSeq", "method differs from the request line");
        }
    }

    let body_end = match m.content_length {
        Some(n) => match pos.checked_add(n) {
            Some(e) if e <= buf.len() => e,
            _ => return bad("Content-Length", "larger than the body received"),
        },
        None => buf.len(),
    };
    m.body = Span::new(pos, body_end);
    Ok(m)
}

#[derive(Default)]
struct Seen {
    via: bool,
    from: bool,
    to: bool,
    call_id: bool,
    cseq: bool,
    vias: usize,
}

fn start_line(buf: &[u8], line: Span) -> Result<Kind, ScanError> {
    const F: &str = "start line";
    let text = line.of(buf);
    if text.len() >= 4 && text[..4].eq_ignore_ascii_case(b"SIP/") {
        // SIP/2.0 SP 3DIGIT SP Reason-Phrase
        let Some(sp) = text.iter().position(|&b| b == b' ') else {
            return bad(F, "a status line needs a code");
        };
        if !text[..sp].eq_ignore_ascii_case(b"SIP/2.0") {
            return bad(F, "version is not SIP/2.0");
        }
        let rest = &text[sp + 1..];
        if rest.len() < 3
            || !rest[..3].iter().all(u8::is_ascii_digit)
            || rest.get(3).is_some_and(|&b| b != b' ')
        {
            return bad(F, "status code is not three digits");
        }
        let code = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return bad(F, "status code is outside 100 to 699");
        }
        return Ok(Kind::Response { code });
    }
    // Method SP Request-URI SP SIP/2.0
    let Some(sp1) = text.iter().position(|&b| b == b' ') else {
        return bad(
            F,
            "a request line needs a method, a Request-URI and a version",
        );
    };
    let method = &text[..sp1];
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return bad(F, "method is not a token");
    }
    let Some(sp2) = text.iter().rposition(|&b| b == b' ') else {
        return bad(
            F,
            "a request line needs a method, a Request-URI and a version",
        );
    };
    if sp2 <= sp1 + 1 {
        return bad(
            F,
            "a request line needs a method, a Request-URI and a version",
        );
    }
    if !text[sp2 + 1..].eq_ignore_ascii_case(b"SIP/2.0") {
        return bad(F, "version is not SIP/2.0");
    }
    let uri = &text[sp1 + 1..sp2];
    // Space, tab and every other control character are below 0x21.
    if uri.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return bad(F, "Request-URI contains whitespace or a control character");
    }
    if !uri.contains(&b':') {
        return bad(F, "Request-URI has no scheme");
    }
    Ok(Kind::Request {
        method: Method::of(method),
        method_span: Span::new(line.start, line.start + sp1),
        uri: Span::new(line.start + sp1 + 1, line.start + sp2),
    })
}

fn header(
    buf: &[u8],
    m: &mut Message,
    seen: &mut Seen,
    name: Span,
    value: Span,
    line: Span,
) -> Result<(), ScanError> {
    let field = field_of(name.of(buf));
    if field == Field::Other {
        return Ok(());
    }
    let v = trim(buf, value);
    match field {
        Field::Via => via_field(buf, m, seen, value, line)?,
        Field::MaxForwards => {
            if m.max_forwards.is_some() {
                return bad("Max-Forwards", "appears twice");
            }
            let n = number(v.of(buf)).ok_or(ScanError::Field {
                field: "Max-Forwards",
                problem: "not a number",
            })?;
            m.max_forwards = Some((n.min(u64::from(u32::MAX)) as u32, v));
        }
        Field::From => {
            if seen.from {
                return bad("From", "appears twice");
            }
            seen.from = true;
            if v.is_empty() {
                return bad("From", "empty");
            }
            m.from = v;
            m.from_tag = tag_of(buf, v);
        }
        Field::To => {
            if seen.to {
                return bad("To", "appears twice");
            }
            seen.to = true;
            if v.is_empty() {
                return bad("To", "empty");
            }
            m.to = v;
            m.to_tag = tag_of(buf, v);
        }
        Field::CallId => {
            if seen.call_id {
                return bad("Call-ID", "appears twice");
            }
            seen.call_id = true;
            if v.is_empty() || v.of(buf).iter().any(|&b| is_ws(b)) {
                return bad("Call-ID", "empty or contains whitespace");
            }
            m.call_id = v;
        }
        Field::CSeq => {
            if seen.cseq {
                return bad("CSeq", "appears twice");
            }
            seen.cseq = true;
            let text = v.of(buf);
            let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
            let n = number(&text[..digits]).ok_or(ScanError::Field {
                field: "CSeq",
                problem: "sequence number is not a number",
            })?;
            if n >= 1 << 31 {
                return bad("CSeq", "sequence number is 2**31 or more");
            }
            let method = trim(buf, Span::new(v.start + digits, v.end));
            if method.start == v.start + digits
                || method.is_empty()
                || !method.of(buf).iter().all(|&b| is_token(b))
            {
                return bad("CSeq", "needs a number, whitespace and a method");
            }
            m.cseq = n as u32;
            m.cseq_method = method;
        }
        Field::ContentLength => {
            let n = number(v.of(buf)).ok_or(ScanError::Field {
                field: "Content-Length",
                problem: "not a number",
            })?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if m.content_length.is_some_and(|old| old != n) {
                return bad("Content-Length", "appears twice with different values");
            }
            m.content_length = Some(n);
        }
        Field::AssertedIdentity => {
            if m.asserted_identity.is_none() {
                m.asserted_identity = Some(v);
            }
        }
        f @ (Field::IysMessageType | Field::IysBrandCode | Field::IysRetailerCode) => {
            let iys = &mut m.iys;
            if iys.count == MAX_IYS_LINES {
                return bad("X-IYS-Message-Type", "too many X-IYS-* fields");
            }
            iys.lines[iys.count] = line;
            iys.count += 1;
            let slot = match f {
                Field::IysMessageType => &mut iys.message_type,
                Field::IysBrandCode => &mut iys.brand_code,
                _ => &mut iys.retailer_code,
            };
            if slot.is_some() {
                iys.repeated = true;
            } else {
                *slot = Some(v);
            }
        }
        Field::Other => {}
    }
    Ok(())
}

/// Decimal digits, at most 18 of them; `None` for anything else.
fn number(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// The `tag` parameter of a From/To value: after the `>` of a name-addr, else
/// after the addr-spec's first `;`.
fn tag_of(buf: &[u8], v: Span) -> Option<Span> {
    let text = v.of(buf);
    let params_from = match quoted_aware_find(text, b'<') {
        Some(lt) => lt + memchr::memchr(b'>', &text[lt..])? + 1,
        None => memchr::memchr(b';', text)?,
    };
    param(buf, Span::new(v.start + params_from, v.end), b"tag").and_then(|p| p)
}

/// The first `needle` outside a quoted string (`None` also when a quoted
/// string is not closed). Jumps from quote to quote with `memchr`.
fn quoted_aware_find(text: &[u8], needle: u8) -> Option<usize> {
    let mut i = 0;
    loop {
        let at = i + memchr::memchr2(needle, b'"', text.get(i..)?)?;
        if text[at] == needle {
            return Some(at);
        }
        // Inside a quoted string: to its closing quote, `\x` escapes skipped.
        let mut j = at + 1;
        loop {
            let q = j + memchr::memchr2(b'"', b'\\', text.get(j..)?)?;
            if text[q] == b'"' {
                i = q + 1;
                break;
            }
            j = q + 2;
        }
    }
}

/// Find `;name[=value]` in `params` (a `;`-separated list, whitespace
/// allowed around `;` and `=`): `Some(None)` when present without a value.
fn param(buf: &[u8], params: Span, name: &[u8]) -> Option<Option<Span>> {
    let text = params.of(buf);
    let mut i = 0;
    while let Some(semi) = text[i..].iter().position(|&b| b == b';') {
        let p_start = i + semi + 1;
        let p_end = text[p_start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(text.len(), |e| p_start + e);
        let p = Span::new(params.start + p_start, params.start + p_end);
        let (n, val) = match p.of(buf).iter().position(|&b| b == b'=') {
            Some(eq) => (
                trim(buf, Span::new(p.start, p.start + eq)),
                Some(trim(buf, Span::new(p.start + eq + 1, p.end))),
            ),
            None => (trim(buf, p), None),
        };
        if n.of(buf).eq_ignore_ascii_case(name) {
            return Some(val);
        }
        i = p_end;
    }
    None
}

type Param = Option<Option<Span>>;

/// `branch`, `received` and `rport` of a via-parm's parameters, in one pass.
fn via_params(buf: &[u8], params: Span) -> (Param, Param, Param) {
    let (mut branch, mut received, mut rport) = (None, None, None);
    let text = params.of(buf);
    let mut i = 0;
    while let Some(semi) = memchr::memchr(b';', &text[i..]) {
        let p_start = i + semi + 1;
        let p_end = memchr::memchr(b';', &text[p_start..]).map_or(text.len(), |e| p_start + e);
        let p = Span::new(params.start + p_start, params.start + p_end);
        let (n, val) = match memchr::memchr(b'=', p.of(buf)) {
            Some(eq) => (
                trim(buf, Span::new(p.start, p.start + eq)),
                Some(trim(buf, Span::new(p.start + eq + 1, p.end))),
            ),
            None => (trim(buf, p), None),
        };
        let name = n.of(buf);
        let slot = if name.eq_ignore_ascii_case(b"branch") {
            &mut branch
        } else if name.eq_ignore_ascii_case(b"received") {
            &mut received
        } else if name.eq_ignore_ascii_case(b"rport") {
            &mut rport
        } else {
            i = p_end;
            continue;
        };
        if slot.is_none() {
            *slot = Some(val);
        }
        i = p_end;
    }
    (branch, received, rport)
}

/// One Via field: split its via-parms on commas outside quotes; the first two
/// of the message are parsed.
fn via_field(
    buf: &[u8],
    m: &mut Message,
    seen: &mut Seen,
    value: Span,
    line: Span,
) -> Result<(), ScanError> {
    let first_field = !seen.via;
    seen.via = true;
    if first_field {
        m.via_line = line.start;
    }
    let mut rest = value;
    let mut index_in_field = 0;
    loop {
        let text = rest.of(buf);
        let comma = quoted_aware_find(text, b',');
        let piece = trim(
            buf,
            Span::new(rest.start, comma.map_or(rest.end, |c| rest.start + c)),
        );
        if piece.is_empty() {
            return bad("Via", "empty via-parm");
        }
        if seen.vias < 2 {
            let via = via_parm(buf, piece)?;
            if seen.vias == 0 {
                m.top_via = via;
            } else {
                m.second_via = Some(via);
            }
        }
        if first_field && index_in_field == 0 {
            m.top_via_cut = match comma {
                None => line,
                Some(c) => {
                    // The via-parm, its comma and the whitespace up to the next one.
                    let after = trim(buf, Span::new(rest.start + c + 1, rest.end));
                    Span::new(piece.start, after.start)
                }
            };
        }
        seen.vias += 1;
        index_in_field += 1;
        match comma {
            Some(c) => rest = Span::new(rest.start + c + 1, rest.end),
            None => return Ok(()),
        }
    }
}

/// `SIP / 2.0 / transport LWS host[:port] *(; param)`.
fn via_parm(buf: &[u8], v: Span) -> Result<Via, ScanError> {
    const F: &str = "Via";
    let text = v.of(buf);
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < text.len() && is_ws(text[*i]) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let s = *i;
        while *i < text.len() && is_token(text[*i]) && text[*i] != b'/' {
            *i += 1;
        }
        Span::new(v.start + s, v.start + *i)
    };
    // "SIP" "/" "2.0" "/" transport, whitespace allowed around the slashes.
    let name = token(&mut i);
    skip_ws(&mut i);
    if !name.of(buf).eq_ignore_ascii_case(b"SIP") || text.get(i) != Some(&b'/') {
        return bad(F, "sent-protocol is not SIP/2.0/<transport>");
    }
    i += 1;
    skip_ws(&mut i);
    let version = token(&mut i);
    skip_ws(&mut i);
    if version.of(buf) != b"2.0" || text.get(i) != Some(&b'/') {
        return bad(F, "sent-protocol is not SIP/2.0/<transport>");
    }
    i += 1;
    skip_ws(&mut i);
    let transport = token(&mut i);
    if transport.is_empty() {
        return bad(F, "no transport");
    }
    let before_host = i;
    skip_ws(&mut i);
    if i == before_host {
        return bad(F, "no whitespace between transport and sent-by");
    }
    // host: an IPv6 reference in brackets, or up to ':' ';' or whitespace.
    let host_start = i;
    if text.get(i) == Some(&b'[') {
        let Some(close) = text[i..].iter().position(|&b| b == b']') else {
            return bad(F, "IPv6 reference without ']'");
        };
        i += close + 1;
    } else {
        while i < text.len() && !matches!(text[i], b':' | b';' | b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
    }
    let host = Span::new(v.start + host_start, v.start + i);
    if host.is_empty() {
        return bad(F, "no sent-by host");
    }
    skip_ws(&mut i);
    let mut port = None;
    if text.get(i) == Some(&b':') {
        i += 1;
        skip_ws(&mut i);
        let s = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        port = Some(
            number(&text[s..i])
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(ScanError::Field {
                    field: F,
                    problem: "sent-by port is not a port number",
                })?,
        );
        skip_ws(&mut i);
    }
    if i < text.len() && text[i] != b';' {
        return bad(F, "unexpected text after sent-by");
    }
    let params = Span::new(v.start + i, v.end);
    let (branch, received, rport) = via_params(buf, params);
    let rport = match rport {
        None => None,
        Some(None) => Some(None),
        Some(Some(s)) if s.is_empty() => Some(None),
        Some(Some(s)) => Some(Some(
            number(s.of(buf))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(ScanError::Field {
                    field: F,
                    problem: "rport is not a port number",
                })?,
        )),
    };
    Ok(Via {
        value: v,
        transport,
        host,
        port,
        branch: branch.flatten(),
        received: received.flatten(),
        rport,
        params,
    })
}

#[cfg(test)]
mod quoted_find_tests {
    use super::quoted_aware_find;

    /// The byte-by-byte definition the memchr version must match.
    fn reference(text: &[u8], needle: u8) -> Option<usize> {
        let mut quoted = false;
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            if quoted {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    quoted = false;
                }
            } else if b == b'"' {
                quoted = true;
            } else if b == needle {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    #[test]
    fn matches_the_byte_by_byte_definition() {
        let alphabet = b"ab\"\\<,; ";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let text: Vec<u8> = (0..len)
                .map(|k| alphabet[((seed >> (4 + 3 * k)) & 7) as usize])
                .collect();
            for needle in [b'<', b','] {
                assert_eq!(
                    quoted_aware_find(&text, needle),
                    reference(&text, needle),
                    "{:?} {}",
                    String::from_utf8_lossy(&text),
                    needle as char
                );
            }
        }
    }
}
