//! SMTP tools for demos, tests and throughput runs: a sink server and a load
//! generator (`iys-gate smtp-sink`, `iys-gate smtp-load`).

pub mod load;
pub mod sink;
