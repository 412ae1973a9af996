//! What the gate tells the people who run it: Prometheus metrics, the audit
//! trail of refusals, and its log.

pub mod audit;
pub mod chain;
pub mod day;
pub mod metrics;
pub mod recent;
pub mod report;
pub mod tools;

use crate::config::LogFormat;

/// Set up tracing from the config (`RUST_LOG` overrides the level).
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
