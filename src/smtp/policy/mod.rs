//! The Postfix policy service: listener, connection limit, one session per
//! Postfix connection.

use std::sync::Arc;

use super::config::PolicyServiceConfig;
use super::SmtpShared;
use crate::gate::{Started, Stop};

/// Bind `[smtp.policy]`'s listener and serve it until `stop` (`"smtp_policy"`).
pub async fn start(
    shared: Arc<SmtpShared>,
    cfg: &PolicyServiceConfig,
    stop: &Stop,
    started: &mut Started,
) -> anyhow::Result<()> {
    let _ = (shared, cfg, stop, started);
    anyhow::bail!("smtp.policy: not built yet")
}
