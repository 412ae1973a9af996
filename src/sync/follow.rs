//! Following the registry's change feeds. Per brand and round: drain the
//! `source=HS` and `source=IYS` feeds from the stored cursors, check every
//! change, then apply all of them and the new cursors in one publish. Any
//! failure (unreachable registry, a garbled page, a change that does not parse)
//! leaves the published snapshot and the cursors untouched; the round is retried
//! after a back-off.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;

use super::StoreHandle;
use crate::consent::{Brand, ConsentRecord, ConsentTime};
use crate::registry::client::{backoff, ClientError, FeedSource, RegistryClient};

/// Follower settings.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Brands to follow.
    pub brands: Vec<Brand>,
    /// Pause between rounds when caught up.
    pub poll_interval: Duration,
    /// Changes per page.
    pub page_limit: u32,
    /// Pages per feed per round before applying what was read.
    pub max_pages_per_round: u32,
    /// Longest back-off.
    pub max_backoff: Duration,
}

/// Why one brand's round failed.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The registry call failed.
    #[error("{feed} feed: {error}")]
    Client {
        /// Which feed.
        feed: &'static str,
        /// The failure.
        error: ClientError,
    },
    /// A change in the feed does not parse.
    #[error("{feed} feed: change {index} of the page is invalid: {message}")]
    BadChange {
        /// Which feed.
        feed: &'static str,
        /// Position in the page.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl RoundError {
    fn kind(&self) -> &'static str {
        match self {
            RoundError::Client { error, .. } => error.kind(),
            RoundError::BadChange { .. } => "bad_change",
        }
    }
}

/// What one brand's round did.
#[derive(Debug, Clone, Default)]
pub struct RoundResult {
    /// Changes read from both feeds.
    pub read: usize,
    /// Changes that took effect.
    pub applied: u64,
    /// True when both feeds were read to their end.
    pub caught_up: bool,
}

/// One round for one brand.
pub async fn sync_brand(
    store: &StoreHandle,
    client: &RegistryClient,
    brand: Brand,
    cfg: &FollowConfig,
) -> Result<RoundResult, RoundError> {
    let started = ConsentTime::now();
    let current = store
        .load()
        .and_then(|s| s.brand(brand).map(|e| e.sync.clone()))
        .unwrap_or_default();
    let mut records: Vec<ConsentRecord> = Vec::new();
    let mut sync = current.clone();
    let mut caught_up = true;
    for source in [FeedSource::Hs, FeedSource::Iys] {
        let cursor = match source {
            FeedSource::Hs => &mut sync.cursor_hs,
            FeedSource::Iys => &mut sync.cursor_iys,
        };
        let mut drained = false;
        for _ in 0..cfg.max_pages_per_round {
            let page = client
                .changes(brand, source, cursor.as_deref(), cfg.page_limit)
                .await
                .map_err(|error| RoundError::Client {
                    feed: source.as_str(),
                    error,
                })?;
            for (index, change) in page.list.iter().enumerate() {
                let record = change.to_record(brand).map_err(|e| RoundError::BadChange {
                    feed: source.as_str(),
                    index,
                    message: e.to_string(),
                })?;
                records.push(record);
            }
            let n = page.list.len();
            if !page.after.is_empty() {
                *cursor = Some(page.after);
            }
            if n < cfg.page_limit as usize {
                drained = true;
                break;
            }
        }
        caught_up &= drained;
    }
    super::order_for_apply(&mut records);
    let read = records.len();
    if caught_up {
        sync.synced_at = Some(started);
    }
    if read == 0 && sync == current {
        return Ok(RoundResult {
            read,
            applied: 0,
            caught_up,
        });
    }
    let (applied, _) = store
        .edit(
            |edit| -> Result<u64, crate::store::dictionary::DictionaryFull> {
                let before = edit.report().applied;
                edit.add_brand(brand);
                edit.apply(&records, ConsentTime::now())?;
                let applied = edit.report().applied - before;
                let mut next = sync.clone();
                next.changes_applied = current.changes_applied + applied;
                edit.set_sync(brand, next);
                Ok(applied)
            },
        )
        .await
        .map_err(|e| RoundError::BadChange {
            feed: "store",
            index: 0,
            message: e.to_string(),
        })?;
    Ok(RoundResult {
        read,
        applied,
        caught_up,
    })
}

/// Follow every configured brand until `shutdown` fires.
pub async fn run(
    store: Arc<StoreHandle>,
    client: Arc<RegistryClient>,
    cfg: FollowConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let applied_total = counter!("iys_gate_sync_changes_applied_total");
    let mut failures: u32 = 0;
    loop {
        let mut all_caught_up = true;
        let mut failed = false;
        for &brand in &cfg.brands {
            match sync_brand(&store, &client, brand, &cfg).await {
                Ok(r) => {
                    counter!("iys_gate_sync_batches_total", "result" => "ok").increment(1);
                    applied_total.increment(r.applied);
                    if r.read > 0 {
                        tracing::info!(%brand, read = r.read, applied = r.applied, "applied registry changes");
                    }
                    all_caught_up &= r.caught_up;
                }
                Err(e) => {
                    counter!("iys_gate_sync_batches_total", "result" => "error").increment(1);
                    counter!("iys_gate_sync_errors_total", "kind" => e.kind()).increment(1);
                    tracing::warn!(%brand, "sync round failed, snapshot unchanged: {e}");
                    failed = true;
                }
            }
        }
        store.update_age_gauge(ConsentTime::now());
        let pause = if failed {
            failures = failures.saturating_add(1);
            backoff(
                failures.min(10),
                Duration::from_millis(500),
                cfg.max_backoff,
            )
            .max(cfg.poll_interval.min(Duration::from_secs(1)))
        } else {
            failures = 0;
            if all_caught_up {
                cfg.poll_interval
            } else {
                Duration::ZERO
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}
