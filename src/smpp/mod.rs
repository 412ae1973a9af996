//! The SMS gate: an SMPP v3.4 proxy between senders (ESMEs) and the SMSC.
//! `codec` is sans-I/O; `gating` turns a PDU into decisions (no sockets);
//! `proxy` owns the sockets, sessions, windows and timers.

pub mod codec;
pub mod config;
pub mod gating;
pub mod proxy;
pub mod tools;
