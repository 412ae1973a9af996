//! iys-gate: an operator-side consent gate for Turkey's İYS.
//!
//! The data path, by folder: `consent` (domain model, normalisation, CSV rows),
//! `store` (the compressed consent sets and the snapshot file), `policy` (the one
//! decision function), `registry` (İYS API client and the built-in emulator),
//! `sync` (keeping the store current), `admin` (HTTP: metrics, health, check,
//! webhook) and `smpp` (the SMS gate: codec apart from sessions).

pub mod admin;
pub mod cli;
pub mod config;
pub mod consent;
pub mod gen;
pub mod observe;
pub mod policy;
pub mod registry;
pub mod serve;
pub mod smpp;
pub mod store;
pub mod sync;
