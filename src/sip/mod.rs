//! The voice gate, channel `ARAMA`.

pub mod codec;
pub mod config;
pub mod gating;
