//! SMPP test and measurement tools: a sink SMSC, a load generator and a plain TCP
//! relay (the baseline a proxy is measured against). Each is a CLI subcommand
//! (`run`) and an in-process library for tests (`spawn` / `run_load`).

pub mod conn;
pub mod loadgen;
pub mod relay;
pub mod send;
pub mod sink;
