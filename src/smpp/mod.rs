//! SMPP v3.4: the sans-I/O codec and the proxy sessions built on it.
pub mod codec;
