//! Sans-I/O SMTP codecs: no sockets, no clocks. Each tells "need more bytes"
//! apart from "invalid", and its errors name the field.
//!
//! - `policy`: Postfix policy delegation requests and answers;
//! - `command`: SMTP commands (RFC 5321) from senders;
//! - `reply`: replies from the next hop, EHLO capabilities;
//! - `data`: the DATA reader (end of data only at `<CRLF>.<CRLF>`, dot-stuffing kept).

pub mod command;
pub mod data;
pub mod policy;
pub mod reply;
