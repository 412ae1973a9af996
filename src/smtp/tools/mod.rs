//! SMTP tools for demos, tests and throughput runs, each a CLI subcommand and
//! an in-process library for tests: a sink server (`iys-gate smtp-sink`), a
//! load generator (`iys-gate smtp-load`) and a policy-service load generator
//! (`iys-gate smtp-policy-load`).

pub mod load;
pub mod policy_load;
pub mod sink;
