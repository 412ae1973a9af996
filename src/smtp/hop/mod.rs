//! The inline SMTP hop: listener, connection limit, one session per sender
//! connection, each with its own next-hop connection.

use std::sync::Arc;

use super::config::HopConfig;
use super::SmtpShared;
use crate::gate::{Started, Stop};

/// Bind `[smtp.hop]`'s listener and serve it until `stop` (`"smtp_hop"`).
pub async fn start(
    shared: Arc<SmtpShared>,
    cfg: &HopConfig,
    stop: &Stop,
    started: &mut Started,
) -> anyhow::Result<()> {
    let _ = (shared, cfg, stop, started);
    anyhow::bail!("smtp.hop: not built yet")
}
