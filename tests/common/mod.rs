//! Helpers shared by integration tests: real third-party peers run from temp folders.

#![allow(dead_code)]

pub mod postfix;
