//! SIP message scanner, sans-I/O: bytes in, byte ranges out, never a socket.
//!
//! The gate needs a handful of header fields out of every SIP message (the
//! top two Via values with `branch`/`received`/`rport`, Max-Forwards, the To
//! tag, From, Call-ID, CSeq, Content-Length, P-Asserted-Identity and the
//! `X-IYS-*` headers) and must forward everything else exactly as it came.
//! So [`scan`] walks the message once and records *where* those fields are
//! ([`Span`]s: offsets into the caller's buffer); it builds no header tree
//! and never prints a message again. What the gate forwards is the original
//! bytes plus a short [`Edits`] list (insert its Via on top, decrement or add
//! Max-Forwards, cut the İYS headers, cut its own Via from a response, add
//! Content-Length), applied by [`write_edited`] as the message is written —
//! the way Kamailio's "lumps" work. Header case, order, compact forms,
//! folding and the body all survive untouched.
//!
//! What the scanner accepts: a request or status line (SIP/2.0 only), header
//! names in any letter case and in compact form (`v`, `f`, `t`, `i`, `m`,
//! `l`, `k`, `c`, `s`, `e`, `o`, ...), whitespace before the colon, obsolete
//! line folding (a line starting with a space or tab continues the field),
//! repeated and comma-joined Via (a comma inside a quoted string does not
//! split), leading CRLFs before the start line (RFC 3261 §7.5), and LF-only
//! line ends from sloppy peers. On UDP a datagram is one message
//! ([`scan`]; Content-Length, when present, cuts the body); on TCP
//! [`frame`] says "read more", "here is a complete message of n bytes" or
//! "this stream is broken", and Content-Length is required (§18.3). A
//! configured maximum size bounds every message. Errors ([`ScanError`]) name
//! the field at fault.
//!
//! [`uri`] reads the called number out of a Request-URI (`sip:`, `sips:`,
//! `tel:`, `user=phone`, visual separators, percent escapes) and the calling
//! number out of From / P-Asserted-Identity, normalised by
//! [`crate::consent::Phone`] like every other phone number of the gate.
//!
//! Why not a SIP library: `rsip` 0.4 (the maintained-looking Rust SIP
//! parser, unmaintained since 2022) was measured and rejected: it took
//! 5.4 µs per INVITE to parse into its tree, rewrote header-name case when
//! printing, dropped compact forms and refused `tel:` URIs. A proxy that must
//! not change what it forwards is better served by ranges over the original
//! bytes, which is what this module is.

mod answer;
mod edit;
mod error;
mod frame;
mod scan;
pub mod uri;

#[cfg(test)]
mod tests;

pub use self::answer::write_response;
pub use self::edit::{write_edited, EditError, Edits};
pub use self::error::ScanError;
pub use self::frame::{frame, Frame};
pub use self::scan::{scan, IysSpans, Kind, Message, Method, Span, Via, MAX_IYS_LINES};
