//! What the gate tells the people who run it: Prometheus metrics and the audit
//! trail of refusals.

pub mod audit;
pub mod metrics;
