//! The İYS registry: its API shapes, a client, and an emulator with the same paths.
pub mod api;
pub mod budget;
pub mod client;
pub mod emulator;
