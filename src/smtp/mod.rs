//! The mail gate, channel `EPOSTA`, in the two ways mail operators plug a
//! check in:
//!
//! - `policy`: a Postfix policy delegation service (`check_policy_service`):
//!   Postfix stays the MTA and asks about each recipient;
//! - `hop`: an inline SMTP hop in a relay chain that answers each RCPT itself
//!   or with the next hop's own reply, and has no queue.
//!
//! `codec` is sans-I/O (SMTP commands and replies, the DATA reader, policy
//! requests); `accounts` says which brand mail is sent for; `gating` is the
//! one place where a decision becomes an SMTP reply. [`start`] is the one
//! entry `serve` calls.

pub mod accounts;
pub mod codec;
pub mod config;
pub mod gating;
pub mod hop;
pub mod policy;
pub mod tools;

use std::sync::Arc;

use crate::gate::{GateContext, Started, Stop};

/// What every SMTP session shares.
pub struct SmtpShared {
    /// Store, policy, counters, audit.
    pub ctx: GateContext,
    /// `[smtp]`.
    pub cfg: config::SmtpConfig,
    /// The accounts, indexed.
    pub accounts: accounts::Accounts,
}

/// Start what `[smtp]` configures: `"smtp_policy"` and `"smtp_hop"` in the result.
pub async fn start(
    ctx: &GateContext,
    cfg: &config::SmtpConfig,
    stop: &Stop,
) -> anyhow::Result<Started> {
    let shared = Arc::new(SmtpShared {
        ctx: ctx.clone(),
        cfg: cfg.clone(),
        accounts: accounts::Accounts::new(&cfg.accounts)?,
    });
    let mut started = Started::default();
    if let Some(p) = &cfg.policy {
        policy::start(shared.clone(), p, stop, &mut started).await?;
    }
    if let Some(h) = &cfg.hop {
        hop::start(shared.clone(), h, stop, &mut started).await?;
    }
    Ok(started)
}
