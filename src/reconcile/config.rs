//! `[reconcile]`: the defaults of a reconciliation run.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// Largest sample one run may ask for (per part).
pub const MAX_SAMPLE: u32 = 100_000;

/// `[reconcile]`: defaults for `iys-gate reconcile` and `POST /v1/reconcile`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Tuples sampled from those the store holds, and again from those it
    /// does not. Default 200 (0 found bounds the rate below 1.5 % at 95 %).
    /// 0 to 100000.
    #[serde(default = "default_sample")]
    pub sample: u32,
    /// Registry requests per second a run may use. Default 2; 0.1 to 100.
    #[serde(default = "default_budget_rps")]
    pub budget_rps: f64,
    /// How long the registry holds back the newest changes from the change
    /// feed (İYS: one hour). Changes younger than the brand's last complete
    /// sync less this are "in flight", not mismatches. Default 1h.
    #[serde(default = "default_feed_lag", with = "humantime_serde")]
    pub feed_lag: Duration,
}

fn default_sample() -> u32 {
    200
}
fn default_budget_rps() -> f64 {
    2.0
}
fn default_feed_lag() -> Duration {
    Duration::from_secs(3600)
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            sample: default_sample(),
            budget_rps: default_budget_rps(),
            feed_lag: default_feed_lag(),
        }
    }
}

pub(crate) fn check_budget(key: &str, rps: f64) -> Result<(), ConfigError> {
    if (0.1..=100.0).contains(&rps) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("{rps} is out of range: use 0.1 to 100 requests per second"),
        })
    }
}

impl ReconcileConfig {
    /// Check the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sample > MAX_SAMPLE {
            return Err(ConfigError::Invalid {
                key: "reconcile.sample".into(),
                message: format!("must be at most {MAX_SAMPLE}"),
            });
        }
        check_budget("reconcile.budget_rps", self.budget_rps)
    }
}
