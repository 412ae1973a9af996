//! Following the registry's change feeds. Per brand and round: drain the
//! `source=HS` and `source=IYS` feeds from the stored cursors, check every
//! change, then apply all of them and the new cursors in one publish. Any
//! failure (unreachable registry, a garbled page, a change that does not parse)
//! leaves the published snapshot and the cursors untouched; the round is retried
//! after a back-off.
//!
//! A feed that refuses a stored cursor (the registry lost or changed its
//! cursors, or the gate was away for longer than it keeps changes) cannot be
//! followed from it again. When the brand's data is younger than the feeds'
//! retention (`registry.feed_retention`) less [`RESUME_MARGIN`], both feeds are
//! read again from their start in one round, keeping only the changes created
//! from that margin before the brand's last complete sync on: every change the
//! gate may have missed is in that span, and reading both feeds whole before
//! applying keeps the newest record winning across them. Older data cannot be
//! resumed without a gap: the round fails (`cursor_expired`), the brand goes
//! stale, and the log says a fresh export is needed.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;

use super::ledger::Seen;
use super::StoreHandle;
use crate::consent::{Brand, ConsentRecord, ConsentTime};
use crate::registry::budget::SharedBudget;
use crate::registry::client::{backoff, ClientError, FeedSource, RegistryClient};
use crate::store::SyncState;

/// How far before the brand's last complete sync a resumed read starts: the
/// feed holds back its newest hour, and an hour more covers clocks that differ.
pub const RESUME_MARGIN: Duration = Duration::from_secs(2 * 3600);

/// Most pages per feed one resumed read takes before giving up (a million
/// changes at the usual page size).
const RESUME_MAX_PAGES: u32 = 1000;

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
    /// How far back the registry's feeds reach.
    pub feed_retention: Duration,
    /// Registry requests per second shared by every brand (the fleet's
    /// budget): one turn before each change-feed page, brand after brand, so
    /// every brand gets its turn and a fleet's leader stays within the rate
    /// the operator gives it; `None`: as fast as the registry answers.
    pub budget: Option<Arc<SharedBudget>>,
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
    /// The feed refused the stored cursor.
    #[error("{feed} feed refused the stored cursor: {error}")]
    CursorRefused {
        /// Which feed.
        feed: &'static str,
        /// The refusal.
        error: ClientError,
    },
    /// The cursor was refused and the brand's data is too old to resume from
    /// the start of the feeds without missing changes.
    #[error("{feed} feed refused the stored cursor and the brand's data ({synced}) is older than the feeds reach back (registry.feed_retention less 2h): rebuild the snapshot from a fresh full export (iys-gate snapshot build --csv ...) and restart")]
    CursorExpired {
        /// Which feed.
        feed: &'static str,
        /// When the brand was last synced completely.
        synced: String,
    },
    /// A resumed read found more changes than it reads in one round.
    #[error("{feed} feed holds more than {RESUME_MAX_PAGES} pages since the brand's last sync: rebuild the snapshot from a fresh full export")]
    ResumeTooLarge {
        /// Which feed.
        feed: &'static str,
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
    /// The fleet's change log did not take the batch (it was not applied
    /// anywhere; the round is read again).
    #[error("fleet: {0}")]
    Fleet(String),
}

impl RoundError {
    fn kind(&self) -> &'static str {
        match self {
            RoundError::Client { error, .. } => error.kind(),
            RoundError::CursorRefused { .. } => "cursor_refused",
            RoundError::CursorExpired { .. } | RoundError::ResumeTooLarge { .. } => {
                "cursor_expired"
            }
            RoundError::BadChange { .. } => "bad_change",
            RoundError::Fleet(_) => "fleet",
        }
    }
}

/// Every `kind` of `iys_gate_sync_errors_total` ([`RoundError::kind`] and
/// [`crate::registry::client::ClientError::kind`]), registered at zero when
/// the follower starts.
const ERROR_KINDS: [&str; 10] = [
    "rate_limited",
    "server",
    "unauthorized",
    "transport",
    "refused",
    "garbled",
    "cursor_refused",
    "cursor_expired",
    "bad_change",
    "fleet",
];

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

/// One brand's verified changes from one round, with the cursors after them:
/// what the poller hands to a [`BatchSink`].
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Whose changes.
    pub brand: Brand,
    /// Every change read, checked and ordered for applying.
    pub records: Vec<ConsentRecord>,
    /// The brand's sync state after them (cursors, `synced_at`).
    pub sync: SyncState,
    /// The brand's sync state the round started from.
    pub from: SyncState,
    /// True when both feeds were read to their end.
    pub caught_up: bool,
}

/// Where the poller's verified batches go: applied to the local store (a gate
/// alone) or published to the fleet's change log (every gate applies it).
pub trait BatchSink: Send + Sync {
    /// Called before the round reads the store's cursors; returned to
    /// [`BatchSink::deliver`] with the batch (the fleet's stream position, so
    /// a batch read from an outdated store is refused).
    fn mark(&self) -> u64 {
        0
    }

    /// Deliver one batch: the changes that took effect (0 when unknown).
    fn deliver(
        &self,
        batch: Batch,
        mark: u64,
    ) -> impl std::future::Future<Output = Result<u64, RoundError>> + Send;
}

/// The sink of a gate alone: apply each batch to its own store.
pub struct ApplyLocally<'a>(pub &'a StoreHandle);

impl BatchSink for ApplyLocally<'_> {
    async fn deliver(&self, batch: Batch, _mark: u64) -> Result<u64, RoundError> {
        apply_batch(self.0, &batch.brand, &batch.records, Some(&batch.sync))
            .await
            .map_err(|e| RoundError::BadChange {
                feed: "store",
                index: 0,
                message: e.to_string(),
            })
    }
}

/// Apply checked, ordered changes (and, from the registry's feeds, the
/// brand's new sync state) in one publish; returns the changes that took
/// effect. The new sync state's `changes_applied` (the count the round
/// started from) grows by them.
pub async fn apply_batch(
    store: &StoreHandle,
    brand: &Brand,
    records: &[ConsentRecord],
    sync: Option<&SyncState>,
) -> Result<u64, crate::store::dictionary::DictionaryFull> {
    let brand = *brand;
    let (applied, _) = store
        .edit(
            |edit| -> Result<u64, crate::store::dictionary::DictionaryFull> {
                let before = edit.report().applied;
                edit.add_brand(brand);
                edit.apply(records, ConsentTime::now())?;
                let applied = edit.report().applied - before;
                if let Some(sync) = sync {
                    let mut next = sync.clone();
                    next.changes_applied += applied;
                    edit.set_sync(brand, next);
                }
                Ok(applied)
            },
        )
        .await?;
    Ok(applied)
}

/// One round for one brand, applied to the local store.
pub async fn sync_brand(
    store: &StoreHandle,
    client: &RegistryClient,
    brand: Brand,
    cfg: &FollowConfig,
) -> Result<RoundResult, RoundError> {
    round(store, client, brand, cfg, &ApplyLocally(store)).await
}

/// One round for one brand: read and check both feeds, then hand the batch
/// to `sink` (nothing when there is nothing new).
pub async fn round<S: BatchSink>(
    store: &StoreHandle,
    client: &RegistryClient,
    brand: Brand,
    cfg: &FollowConfig,
    sink: &S,
) -> Result<RoundResult, RoundError> {
    let started = ConsentTime::now();
    let mark = sink.mark();
    let current = store
        .load()
        .and_then(|s| s.brand(brand).map(|e| e.sync.clone()))
        .unwrap_or_default();
    let (mut records, mut sync, caught_up, seen) = match read_feeds(
        client,
        brand,
        cfg,
        current.clone(),
        None,
    )
    .await
    {
        Err(RoundError::CursorRefused { feed, error }) => {
            let Some(since) = resume_point(current.synced_at, started, cfg.feed_retention) else {
                let synced = current
                    .synced_at
                    .map_or_else(|| "never synced".to_string(), |t| format!("synced at {t}"));
                return Err(RoundError::CursorExpired { feed, synced });
            };
            counter!("iys_gate_sync_cursor_resets_total").increment(1);
            // The re-read repeats changes already counted: count afresh.
            store.applied.restart(brand, started);
            tracing::warn!(%brand, "{feed} feed refused the stored cursor ({error}); reading both feeds again from their start, keeping changes created since {since}");
            let fresh = SyncState {
                cursor_hs: None,
                cursor_iys: None,
                ..current.clone()
            };
            read_feeds(client, brand, cfg, fresh, Some(since)).await?
        }
        other => other?,
    };
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
    sync.changes_applied = current.changes_applied;
    // Kept apart for the dealer refresh, which runs once the batch is applied.
    let named_dealers: Vec<ConsentRecord> = records
        .iter()
        .filter(|r| r.retailer_code.is_some() || !r.retailer_access.is_empty())
        .cloned()
        .collect();
    let batch = Batch {
        brand,
        records,
        sync,
        from: current,
        caught_up,
    };
    let applied = sink.deliver(batch, mark).await?;
    store.applied.record_feed(brand, &seen);
    store.applied.note_dealers(&named_dealers);
    Ok(RoundResult {
        read,
        applied,
        caught_up,
    })
}

/// Read both feeds from the cursors in `sync`: the changes, the cursors after
/// them, and whether both feeds were read to their end. With `since` (a resumed
/// read from the feeds' start) only changes created at or after it are kept,
/// and each feed is read to its end or the read fails.
async fn read_feeds(
    client: &RegistryClient,
    brand: Brand,
    cfg: &FollowConfig,
    mut sync: SyncState,
    since: Option<ConsentTime>,
) -> Result<(Vec<ConsentRecord>, SyncState, bool, Vec<Seen>), RoundError> {
    let mut records: Vec<ConsentRecord> = Vec::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut caught_up = true;
    let max_pages = match since {
        Some(_) => RESUME_MAX_PAGES,
        None => cfg.max_pages_per_round,
    };
    for source in [FeedSource::Hs, FeedSource::Iys] {
        let feed = source.as_str();
        let cursor = match source {
            FeedSource::Hs => &mut sync.cursor_hs,
            FeedSource::Iys => &mut sync.cursor_iys,
        };
        let mut drained = false;
        for _ in 0..max_pages {
            if let Some(budget) = &cfg.budget {
                budget.take().await;
            }
            let page = client
                .changes(brand, source, cursor.as_deref(), cfg.page_limit)
                .await
                .map_err(|error| {
                    if cursor.is_some() && error.is_refusal() {
                        RoundError::CursorRefused { feed, error }
                    } else {
                        RoundError::Client { feed, error }
                    }
                })?;
            for (index, change) in page.list.iter().enumerate() {
                let bad = |message: String| RoundError::BadChange {
                    feed,
                    index,
                    message,
                };
                if let Some(since) = since {
                    let created = ConsentTime::parse(&change.creation_date)
                        .map_err(|e| bad(format!("creationDate: {e}")))?;
                    if created < since {
                        continue;
                    }
                }
                records.push(change.to_record(brand).map_err(|e| bad(e.to_string()))?);
                seen.extend(Seen::of(source, change));
            }
            if !page.after.is_empty() {
                *cursor = Some(page.after);
            }
            if page.list.len() < cfg.page_limit as usize {
                drained = true;
                break;
            }
        }
        if since.is_some() && !drained {
            return Err(RoundError::ResumeTooLarge { feed });
        }
        caught_up &= drained;
    }
    Ok((records, sync, caught_up, seen))
}

/// Where a resumed read starts keeping changes: [`RESUME_MARGIN`] before the
/// brand's last complete sync, if that is within what the feeds still hold.
fn resume_point(
    synced_at: Option<ConsentTime>,
    now: ConsentTime,
    retention: Duration,
) -> Option<ConsentTime> {
    let since = ConsentTime(synced_at?.unix() - RESUME_MARGIN.as_secs() as i64);
    let reach = ConsentTime(now.unix() - retention.as_secs() as i64);
    (since >= reach).then_some(since)
}

/// Follow every configured brand until `shutdown` fires, applying to `store`.
pub async fn run(
    store: Arc<StoreHandle>,
    client: Arc<RegistryClient>,
    cfg: FollowConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    run_with(store.clone(), client, cfg, ApplyLocally(&store), shutdown).await
}

/// Follow every configured brand until `shutdown` fires, handing each
/// verified batch to `sink` (reading cursors from `store`).
pub async fn run_with<S: BatchSink>(
    store: Arc<StoreHandle>,
    client: Arc<RegistryClient>,
    cfg: FollowConfig,
    sink: S,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let applied_total = counter!("iys_gate_sync_changes_applied_total");
    // Every series an alert reads exists from the start (at zero), so the
    // first failure already shows as an increase.
    for result in ["ok", "error"] {
        counter!("iys_gate_sync_batches_total", "result" => result).increment(0);
    }
    for kind in ERROR_KINDS {
        counter!("iys_gate_sync_errors_total", "kind" => kind).increment(0);
    }
    let mut failures: u32 = 0;
    loop {
        let mut all_caught_up = true;
        let mut failed = false;
        for &brand in &cfg.brands {
            if *shutdown.borrow() {
                return;
            }
            match round(&store, &client, brand, &cfg, &sink).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_starts_two_hours_before_the_last_sync_if_the_feeds_reach_that_far() {
        let now = ConsentTime(1_800_000_000);
        let week = Duration::from_secs(7 * 24 * 3600);
        let synced = ConsentTime(now.unix() - 3600);
        assert_eq!(
            resume_point(Some(synced), now, week),
            Some(ConsentTime(now.unix() - 3 * 3600))
        );
        let old = ConsentTime(now.unix() - week.as_secs() as i64);
        assert_eq!(resume_point(Some(old), now, week), None, "too old");
        let edge = ConsentTime(now.unix() - week.as_secs() as i64 + 2 * 3600);
        assert!(resume_point(Some(edge), now, week).is_some());
        assert_eq!(resume_point(None, now, week), None, "never synced");
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_spaces_requests_evenly() {
        let b = SharedBudget::new(100.0);
        b.take().await;
        // Idle for a while: no burst builds up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        for _ in 0..51 {
            b.take().await;
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(490) && took <= Duration::from_secs(3),
            "51 at 100/s after an idle pause: {took:?}"
        );
    }
}
