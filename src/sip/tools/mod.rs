//! SIP tools for the demo and tests: an answering UAS (`iys-gate sip-uas`)
//! and a one-call client (`iys-gate sip-call`). Load generation uses SIPp
//! (scenarios under `benches/sip/`).

pub mod call;
pub mod uas;
