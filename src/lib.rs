//! iys-gate: an operator-side consent gate for Turkey's İYS.
//!
//! The data path, by folder: `consent` (domain model, normalisation, CSV rows),
//! `store` (the compressed consent sets and the snapshot file), `policy` (the one
//! decision function), `registry` (İYS API client and the built-in emulator),
//! `sync` (keeping the store current), `admin` (HTTP: metrics, health, check,
//! webhook), `gate` (what every protocol gate shares: the context a decision
//! is taken and recorded with), `smpp` (the SMS gate) and `smtp` (the mail
//! gate); each protocol keeps its codec apart from its sessions.

pub mod admin;
pub mod cli;
pub mod config;
pub mod consent;
pub mod fleet;
pub mod gate;
pub mod gen;
pub mod observe;
pub mod policy;
pub mod reconcile;
pub mod registry;
pub mod serve;
pub mod sip;
pub mod smpp;
pub mod smtp;
pub mod store;
pub mod sync;
