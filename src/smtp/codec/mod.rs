//! Sans-I/O SMTP codecs: no sockets, no clocks. Each tells "need more bytes"
//! apart from "invalid", and its errors name the field.
//!
//! - `policy`: Postfix policy delegation requests and answers;
//! - `command`: SMTP commands (RFC 5321) from senders, replies from the next hop;
//! - `data`: the DATA reader (end of data only at `<CRLF>.<CRLF>`, dot-stuffing kept).

pub mod policy;
