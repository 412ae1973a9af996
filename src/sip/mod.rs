//! The voice gate, channel `ARAMA`.

pub mod codec;
