//! A fleet of gates on NATS JetStream (`[fleet]`): one leader polls the
//! registry and publishes each verified batch to a stream; every gate, the
//! leader too, applies the stream in order; webhook pushes go to the stream
//! too; the leader puts snapshots into an object store that new gates
//! bootstrap from. See docs/fleet.md.

pub mod config;
pub mod entry;
pub mod log;
pub mod nats;
pub mod run;

pub use run::{start, Fleet, FleetSetup, FleetState};
