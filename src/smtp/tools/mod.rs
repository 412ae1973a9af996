//! SMTP test and measurement tools, each a CLI subcommand and an in-process
//! library for tests.

pub mod policy_load;
