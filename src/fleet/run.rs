//! The fleet's tasks: the applier (every gate), the campaign and the leader's
//! duties (polling, snapshots), the local persister, and the webhook path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use metrics::{counter, gauge};
use tokio::sync::watch;

use super::config::FleetConfig;
use super::entry::Entry;
use super::log::{Backend, EntryKind, Lease, LogError};
use super::nats::Nats;
use crate::consent::{Brand, ConsentTime};
use crate::registry::client::{backoff, RegistryClient};
use crate::store::{file, Snapshot};
use crate::sync::follow::{self, Batch, BatchSink, FollowConfig, RoundError};
use crate::sync::StoreHandle;

/// What `/v1/status`, `/readyz`, metrics and logs show of the fleet.
pub struct FleetState {
    /// This gate's name.
    pub name: String,
    leader: AtomicBool,
    leader_name: Mutex<Option<String>>,
    position: watch::Sender<u64>,
    stream_first: AtomicU64,
    stream_last: AtomicU64,
    snapshot_sequence: AtomicU64,
    bootstrapped: AtomicBool,
    connected: Arc<AtomicBool>,
    source: Mutex<String>,
    last_error: Mutex<Option<String>>,
    /// The store as of `position` (for snapshots and the local file).
    applied: ArcSwapOption<(u64, Arc<Snapshot>)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FleetState {
    fn new(name: String, position: u64, connected: Arc<AtomicBool>) -> FleetState {
        FleetState {
            name,
            leader: AtomicBool::new(false),
            leader_name: Mutex::new(None),
            position: watch::channel(position).0,
            stream_first: AtomicU64::new(0),
            stream_last: AtomicU64::new(0),
            snapshot_sequence: AtomicU64::new(0),
            bootstrapped: AtomicBool::new(false),
            connected,
            source: Mutex::new(String::new()),
            last_error: Mutex::new(None),
            applied: ArcSwapOption::empty(),
        }
    }

    /// The last stream sequence applied to this gate's store.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// True while this gate leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// False until the gate has caught up with the stream once (or found
    /// NATS unreachable at start and serves its local data).
    pub fn bootstrapped(&self) -> bool {
        self.bootstrapped.load(Ordering::Relaxed)
    }

    fn set_position(&self, p: u64, store: &StoreHandle) {
        if let Some(s) = store.load() {
            self.applied.store(Some(Arc::new((p, s))));
        }
        self.position.send_replace(p);
        gauge!("iys_gate_fleet_position").set(p as f64);
        self.update_lag();
    }

    fn set_bounds(&self, first: u64, last: u64) {
        self.stream_first.store(first, Ordering::Relaxed);
        self.stream_last.store(last, Ordering::Relaxed);
        gauge!("iys_gate_fleet_stream_last_sequence").set(last as f64);
        self.update_lag();
    }

    fn lag(&self) -> u64 {
        self.stream_last
            .load(Ordering::Relaxed)
            .saturating_sub(self.position())
    }

    fn update_lag(&self) {
        gauge!("iys_gate_fleet_lag_messages").set(self.lag() as f64);
    }

    fn set_error(&self, e: Option<String>) {
        gauge!("iys_gate_fleet_connected").set(if e.is_none() { 1.0 } else { 0.0 });
        *lock(&self.last_error) = e;
    }

    /// Wait until `sequence` is applied here, up to `limit`.
    pub async fn wait_applied(&self, sequence: u64, limit: Duration) -> bool {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|p| *p >= sequence))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The fleet part of `/v1/status` and `/readyz`.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "connected": self.connected.load(Ordering::Relaxed),
            "role": if self.is_leader() { "leader" } else { "follower" },
            "leader": *lock(&self.leader_name),
            "position": self.position(),
            "stream_first_sequence": self.stream_first.load(Ordering::Relaxed),
            "stream_last_sequence": self.stream_last.load(Ordering::Relaxed),
            "lag_messages": self.lag(),
            "snapshot_sequence": self.snapshot_sequence.load(Ordering::Relaxed),
            "bootstrapped": self.bootstrapped(),
            "loaded_from": *lock(&self.source),
            "error": *lock(&self.last_error),
        })
    }
}

/// A gate's membership in the fleet: its state and the backend (NATS).
pub struct Fleet<B: Backend = Nats> {
    /// What the gate shows.
    pub state: Arc<FleetState>,
    nats: Arc<B>,
    store: Arc<StoreHandle>,
}

/// What the webhook answers in a fleet.
#[derive(Debug, serde::Serialize)]
pub struct Published {
    /// Changes in the body.
    pub received: usize,
    /// The stream sequence of each brand's entry.
    pub sequences: Vec<u64>,
    /// True when this gate had applied them before answering.
    pub applied_here: bool,
}

/// Why a webhook push was not published.
#[derive(Debug, thiserror::Error)]
pub enum FleetPushError {
    /// The body is bad (HTTP 400).
    #[error(transparent)]
    Bad(#[from] crate::sync::push::PushError),
    /// NATS did not take it (HTTP 503: the integrator retries).
    #[error("the fleet's change log did not take the push, nothing was applied; retry: {0}")]
    Unavailable(LogError),
}

impl<B: Backend> Fleet<B> {
    /// Publish a webhook body to the stream (one entry per brand), then wait
    /// briefly until this gate has applied it.
    pub async fn push(&self, body: &[u8]) -> Result<Published, FleetPushError> {
        let mut records = crate::sync::push::parse(body)?;
        if let Some(s) = self.store.load() {
            if let Some((index, r)) = records
                .iter()
                .enumerate()
                .find(|(_, r)| s.brand(r.brand).is_none())
            {
                return Err(crate::sync::push::PushError::UnknownBrand {
                    index,
                    brand: r.brand.to_string(),
                }
                .into());
            }
        }
        crate::sync::order_for_apply(&mut records);
        let received = records.len();
        let mut brands: Vec<Brand> = records.iter().map(|r| r.brand).collect();
        brands.sort_unstable();
        brands.dedup();
        let digest = xxhash_rust::xxh3::xxh3_64(body);
        let mut sequences = Vec::new();
        for brand in brands {
            let entry = Entry {
                kind: EntryKind::Push,
                brand,
                records: records
                    .iter()
                    .filter(|r| r.brand == brand)
                    .cloned()
                    .collect(),
                sync: None,
            };
            let id = format!("push-{brand}-{digest:016x}");
            match self
                .nats
                .publish(brand, EntryKind::Push, entry.encode(), id, None)
                .await
            {
                Ok(seq) => {
                    counter!("iys_gate_fleet_published_total", "kind" => "push", "result" => "ok")
                        .increment(1);
                    sequences.push(seq);
                }
                Err(e) => {
                    counter!("iys_gate_fleet_published_total", "kind" => "push", "result" => "error")
                        .increment(1);
                    return Err(FleetPushError::Unavailable(e));
                }
            }
        }
        let last = sequences.iter().copied().max().unwrap_or(0);
        let applied_here = self.state.wait_applied(last, Duration::from_secs(5)).await;
        Ok(Published {
            received,
            sequences,
            applied_here,
        })
    }
}

/// Everything the fleet's tasks need from the gate's configuration.
pub struct FleetSetup {
    /// `[fleet]`.
    pub fleet: FleetConfig,
    /// The registry client and follower settings (none: this gate never leads).
    pub registry: Option<(Arc<RegistryClient>, FollowConfig)>,
    /// `store.snapshot_path`.
    pub snapshot_path: Option<PathBuf>,
    /// `store.persist_interval`.
    pub persist_interval: Duration,
}

/// The sidecar of the local snapshot file: which stream sequence it includes.
fn sidecar(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".fleet.json");
    PathBuf::from(p)
}

/// The stream position the local snapshot file includes, if its sidecar
/// names the version the store holds.
fn local_position(path: Option<&Path>, version: u64) -> u64 {
    let Some(path) = path else { return 0 };
    let Ok(text) = std::fs::read_to_string(sidecar(path)) else {
        return 0;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    if v["version"].as_u64() == Some(version) {
        v["stream_sequence"].as_u64().unwrap_or(0)
    } else {
        0
    }
}

/// Join the fleet: connect and start the applier, the campaign (when a
/// registry is configured) and the local persister.
pub async fn start(
    setup: FleetSetup,
    store: Arc<StoreHandle>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Arc<Fleet>, Vec<tokio::task::JoinHandle<()>>)> {
    describe_metrics();
    let name = setup.fleet.gate_name();
    let version = store.load().map_or(0, |s| s.version);
    let position = local_position(setup.snapshot_path.as_deref(), version);
    let connected = Arc::new(AtomicBool::new(false));
    let nats = Arc::new(Nats::connect(&setup.fleet, &name, connected.clone()).await?);
    let state = Arc::new(FleetState::new(name.clone(), position, connected));
    state.set_position(position, &store);
    state.set_error(Some("connecting".into()));
    *lock(&state.source) = if position > 0 {
        format!("local snapshot file (stream sequence {position})")
    } else {
        "local bootstrap".into()
    };
    gauge!("iys_gate_fleet_leader").set(0.0);
    tracing::info!(gate = %name, url = %setup.fleet.url, position, "fleet: joining");
    let fleet = Arc::new(Fleet {
        state: state.clone(),
        nats: nats.clone(),
        store: store.clone(),
    });
    let mut tasks = vec![tokio::spawn(applier(
        nats.clone(),
        state.clone(),
        store.clone(),
        setup.fleet.timeout,
        stop.clone(),
    ))];
    if let Some((client, follow)) = setup.registry {
        tasks.push(tokio::spawn(campaign(
            nats.clone(),
            state.clone(),
            store.clone(),
            client,
            follow,
            setup.fleet.clone(),
            stop.clone(),
        )));
    } else {
        tracing::info!("fleet: no [registry] configured, this gate follows and never leads");
    }
    if let Some(path) = setup.snapshot_path {
        tasks.push(tokio::spawn(persist(
            state.clone(),
            path,
            setup.persist_interval,
            stop,
        )));
    }
    Ok((fleet, tasks))
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "iys_gate_fleet_leader",
        "1 while this gate leads the fleet (polls the registry)"
    );
    describe_gauge!(
        "iys_gate_fleet_connected",
        "1 while the fleet's NATS server answers"
    );
    describe_gauge!(
        "iys_gate_fleet_position",
        "Last change-stream sequence applied to this gate's store"
    );
    describe_gauge!(
        "iys_gate_fleet_stream_last_sequence",
        "Newest sequence in the change stream (as last seen)"
    );
    describe_gauge!(
        "iys_gate_fleet_lag_messages",
        "Stream entries not yet applied here"
    );
    describe_gauge!(
        "iys_gate_fleet_snapshot_sequence",
        "Stream sequence the newest object-store snapshot includes"
    );
    describe_counter!(
        "iys_gate_fleet_applied_total",
        "Change-stream entries applied, by result"
    );
    describe_counter!(
        "iys_gate_fleet_published_total",
        "Entries published to the change stream, by kind and result"
    );
    describe_counter!(
        "iys_gate_fleet_snapshot_loads_total",
        "Snapshots loaded from the object store, by reason"
    );
    describe_counter!(
        "iys_gate_fleet_snapshot_puts_total",
        "Snapshots put into the object store, by result"
    );
    describe_counter!(
        "iys_gate_fleet_leader_changes_total",
        "Times this gate became leader or stopped leading"
    );
    for r in ["ok", "bad_entry", "error"] {
        counter!("iys_gate_fleet_applied_total", "result" => r).increment(0);
    }
    for reason in ["bootstrap", "position_lost"] {
        counter!("iys_gate_fleet_snapshot_loads_total", "reason" => reason).increment(0);
    }
    for kind in ["feed", "push"] {
        for result in ["ok", "conflict", "error"] {
            counter!("iys_gate_fleet_published_total", "kind" => kind, "result" => result)
                .increment(0);
        }
    }
    for r in ["ok", "error"] {
        counter!("iys_gate_fleet_snapshot_puts_total", "result" => r).increment(0);
    }
}

/// Load the object store's snapshot and publish it; returns its sequence.
async fn load_snapshot<B: Backend>(
    nats: &B,
    state: &FleetState,
    store: &StoreHandle,
    reason: &'static str,
) -> Result<Option<u64>, LogError> {
    let started = Instant::now();
    let Some((bytes, sequence)) = nats.get_snapshot().await? else {
        return Ok(None);
    };
    let size = bytes.len();
    let fetched = started.elapsed();
    let parsed = tokio::task::spawn_blocking(move || file::from_bytes(&bytes))
        .await
        .map_err(|e| LogError::Unavailable(format!("snapshot parser: {e}")))?;
    let snapshot = match parsed {
        Ok(s) => s,
        Err(e) => {
            return Err(LogError::Unavailable(format!(
                "the object store's snapshot is unreadable: {e}"
            )))
        }
    };
    let version = snapshot.version;
    store.publish(snapshot);
    store.update_age_gauge(ConsentTime::now());
    state.set_position(sequence, store);
    state.snapshot_sequence.store(sequence, Ordering::Relaxed);
    gauge!("iys_gate_fleet_snapshot_sequence").set(sequence as f64);
    *lock(&state.source) = format!("object store snapshot (stream sequence {sequence})");
    counter!("iys_gate_fleet_snapshot_loads_total", "reason" => reason).increment(1);
    tracing::info!(
        reason,
        sequence,
        version,
        bytes = size,
        fetch_secs = fetched.as_secs_f64(),
        secs = started.elapsed().as_secs_f64(),
        "fleet: loaded the object store's snapshot"
    );
    Ok(Some(sequence))
}

/// Apply one entry to the store.
async fn apply_entry(store: &StoreHandle, payload: &[u8]) -> Result<(EntryKind, usize), String> {
    let entry = Entry::decode(payload).map_err(|e| e.to_string())?;
    let applied = follow::apply_batch(store, &entry.brand, &entry.records, entry.sync.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    counter!("iys_gate_sync_changes_applied_total").increment(applied);
    Ok((entry.kind, entry.records.len()))
}

/// Every gate: bootstrap from the object store when it is newer than the
/// local data, then apply the stream in order; reload a snapshot when the
/// position aged out of the stream.
async fn applier<B: Backend>(
    nats: Arc<B>,
    state: Arc<FleetState>,
    store: Arc<StoreHandle>,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let mut checked_objects = false;
    let started = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        let result: Result<(), LogError> = async {
            let mut pos = state.position();
            if !checked_objects {
                if let Some(info) = nats.snapshot_info().await? {
                    state.snapshot_sequence.store(info.sequence, Ordering::Relaxed);
                    gauge!("iys_gate_fleet_snapshot_sequence").set(info.sequence as f64);
                    // Newer than the local data, or as new and the local
                    // data is no fleet snapshot (a CSV export, nothing).
                    if info.sequence > pos || pos == 0 {
                        if let Some(seq) = load_snapshot(&*nats, &state, &store, "bootstrap").await? {
                            pos = seq;
                        }
                    } else {
                        tracing::info!(position = pos, snapshot = info.sequence, "fleet: the local snapshot is as new as the object store's; keeping it");
                    }
                }
                checked_objects = true;
            }
            let bounds = nats.bounds().await?;
            state.set_bounds(bounds.first, bounds.last);
            if bounds.last < pos {
                tracing::error!(position = pos, last = bounds.last, "fleet: the stream ends before this gate's position (was it recreated?); applying it again from its start");
                pos = bounds.first.saturating_sub(1);
                state.set_position(pos, &store);
            }
            if bounds.lost_after(pos) {
                tracing::warn!(position = pos, first = bounds.first, "fleet: this gate's position aged out of the stream; reloading the object store's snapshot");
                match load_snapshot(&*nats, &state, &store, "position_lost").await? {
                    Some(seq) if seq + 1 >= bounds.first => pos = seq,
                    other => {
                        tracing::error!(snapshot = ?other, first = bounds.first, "fleet: no snapshot covers the gap; applying from the stream's first entry, changes in between are missing until a newer snapshot");
                        pos = bounds.first - 1;
                        state.set_position(pos, &store);
                    }
                }
            }
            state.set_error(None);
            if pos >= bounds.last && !state.bootstrapped() {
                state.bootstrapped.store(true, Ordering::Relaxed);
                tracing::info!(position = pos, secs = started.elapsed().as_secs_f64(), "fleet: caught up with the stream");
            }
            let mut entries = nats.read_from(pos + 1).await?;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    next = entries.next() => {
                        let d = match next {
                            Some(Ok(d)) => d,
                            Some(Err(e)) => return Err(e),
                            None => return Err(LogError::Unavailable("the stream's reader ended".into())),
                        };
                        if d.sequence <= pos {
                            continue;
                        }
                        if d.sequence > pos + 1 {
                            let b = nats.bounds().await?;
                            state.set_bounds(b.first, b.last);
                            if b.lost_after(pos) {
                                // Aged out or purged: the outer loop reloads a snapshot.
                                return Ok(());
                            }
                            // Deleted one by one (not by a gate): nothing to
                            // reload from; say so and go on.
                            counter!("iys_gate_fleet_applied_total", "result" => "bad_entry").increment(1);
                            tracing::error!(position = pos, got = d.sequence, "fleet: entries {}..{} were deleted from the stream; continuing after them", pos + 1, d.sequence - 1);
                        }
                        match apply_entry(&store, &d.payload).await {
                            Ok((kind, records)) => {
                                counter!("iys_gate_fleet_applied_total", "result" => "ok").increment(1);
                                tracing::debug!(sequence = d.sequence, kind = kind.as_str(), records, "fleet: applied");
                            }
                            Err(e) => {
                                counter!("iys_gate_fleet_applied_total", "result" => "bad_entry").increment(1);
                                tracing::error!(sequence = d.sequence, "fleet: skipped an entry that cannot be applied: {e}");
                            }
                        }
                        pos = d.sequence;
                        if pos > state.stream_last.load(Ordering::Relaxed) {
                            state.set_bounds(state.stream_first.load(Ordering::Relaxed), pos);
                        }
                        state.set_position(pos, &store);
                        if !state.bootstrapped() && pos >= state.stream_last.load(Ordering::Relaxed) {
                            state.bootstrapped.store(true, Ordering::Relaxed);
                            tracing::info!(position = pos, secs = started.elapsed().as_secs_f64(), "fleet: caught up with the stream");
                        }
                    }
                    _ = tick.tick() => {
                        let b = nats.bounds().await?;
                        state.set_bounds(b.first, b.last);
                        ticks += 1;
                        if ticks.is_multiple_of(5) && !state.is_leader() {
                            if let Some(info) = nats.snapshot_info().await? {
                                state.snapshot_sequence.store(info.sequence, Ordering::Relaxed);
                                gauge!("iys_gate_fleet_snapshot_sequence").set(info.sequence as f64);
                            }
                        }
                        store.update_age_gauge(ConsentTime::now());
                        if b.lost_after(pos) || b.last < pos {
                            return Ok(());
                        }
                    }
                    _ = stop.changed() => return Ok(()),
                }
            }
        }
        .await;
        match result {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(
                        position = state.position(),
                        "fleet: {e}; serving from the current snapshot, retrying"
                    );
                }
                state.set_error(Some(e.to_string()));
                counter!("iys_gate_fleet_applied_total", "result" => "error").increment(1);
                if !state.bootstrapped() && started.elapsed() > timeout {
                    // Serve what was loaded locally; the stale rules apply.
                    state.bootstrapped.store(true, Ordering::Relaxed);
                    tracing::warn!("fleet: NATS unreachable at start; serving the local data (its age shows in /v1/status)");
                }
                let pause = backoff(
                    failures.min(6),
                    Duration::from_millis(200),
                    Duration::from_secs(5),
                );
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// How often the leader publishes a brand's poll with no changes (its new
/// `synced_at`): the data age every gate reports lags by at most this.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

fn heartbeat_not_due(batch: &Batch) -> bool {
    match (batch.from.synced_at, batch.sync.synced_at) {
        (Some(before), Some(now)) => now.unix() - before.unix() < HEARTBEAT.as_secs() as i64,
        _ => false,
    }
}

/// The leader's sink: publish each batch with the brand subject's expected
/// last sequence, then wait until this gate applied it (so the next round
/// reads the new cursors).
struct PublishToFleet<B: Backend> {
    nats: Arc<B>,
    state: Arc<FleetState>,
}

impl<B: Backend> BatchSink for PublishToFleet<B> {
    fn mark(&self) -> u64 {
        self.state.position()
    }

    async fn deliver(&self, batch: Batch, mark: u64) -> Result<u64, RoundError> {
        let fleet = |e: LogError| RoundError::Fleet(e.to_string());
        let brand = batch.brand;
        let last = self
            .nats
            .last_sequence(brand, EntryKind::Feed)
            .await
            .map_err(fleet)?;
        if last > mark {
            // The store the cursors came from does not hold the brand's
            // newest batch yet: read again once it does.
            self.state.wait_applied(last, Duration::from_secs(5)).await;
            return Err(RoundError::Fleet(format!(
                "brand {brand}: the stream holds batch {last}, newer than this gate had applied ({mark}); reading again"
            )));
        }
        let records = batch.records.len();
        if records == 0
            && batch.sync.cursor_hs == batch.from.cursor_hs
            && batch.sync.cursor_iys == batch.from.cursor_iys
            && heartbeat_not_due(&batch)
        {
            // Nothing new but the time of the poll: publish that only every
            // HEARTBEAT, so an idle fleet does not fill the stream.
            return Ok(0);
        }
        let entry = Entry {
            kind: EntryKind::Feed,
            brand,
            records: batch.records,
            sync: Some(batch.sync),
        };
        // The id names the content: a retried publish of this batch is
        // dropped by the server, a different batch never is.
        let payload = entry.encode();
        let id = format!(
            "feed-{brand}-{last}-{:016x}",
            xxhash_rust::xxh3::xxh3_64(&payload)
        );
        let seq = match self
            .nats
            .publish(brand, EntryKind::Feed, payload, id, Some(last))
            .await
        {
            Ok(seq) => {
                counter!("iys_gate_fleet_published_total", "kind" => "feed", "result" => "ok")
                    .increment(1);
                seq
            }
            Err(LogError::Conflict) => {
                counter!("iys_gate_fleet_published_total", "kind" => "feed", "result" => "conflict")
                    .increment(1);
                return Err(RoundError::Fleet(format!(
                    "brand {brand}: another leader published first; this batch was refused, not applied twice"
                )));
            }
            Err(e) => {
                counter!("iys_gate_fleet_published_total", "kind" => "feed", "result" => "error")
                    .increment(1);
                return Err(fleet(e));
            }
        };
        if !self.state.wait_applied(seq, Duration::from_secs(10)).await {
            return Err(RoundError::Fleet(format!(
                "brand {brand}: published as {seq} but not applied here within 10s"
            )));
        }
        tracing::debug!(%brand, sequence = seq, records, "fleet: published a registry batch");
        // The applier counts what took effect (on every gate).
        Ok(0)
    }
}

/// Try for the leader lock; while held, poll the registry into the stream
/// and put snapshots; renew it every third of its time to live.
async fn campaign<B: Backend>(
    nats: Arc<B>,
    state: Arc<FleetState>,
    store: Arc<StoreHandle>,
    client: Arc<RegistryClient>,
    mut follow_cfg: FollowConfig,
    cfg: FleetConfig,
    mut stop: watch::Receiver<bool>,
) {
    follow_cfg.budget = Some(Arc::new(crate::registry::budget::SharedBudget::new(
        cfg.request_budget,
    )));
    let every = cfg.lock_ttl / 3;
    let name = state.name.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let lease = match nats.try_acquire(&name).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => {
                let holder = nats.holder().await.ok().flatten();
                let mut known = lock(&state.leader_name);
                if *known != holder {
                    tracing::info!(leader = ?holder, "fleet: following");
                    *known = holder;
                }
                None
            }
            Err(e) => {
                tracing::debug!("fleet: cannot campaign: {e}");
                None
            }
        };
        if let Some(lease) = lease {
            lead(
                &nats,
                &state,
                &store,
                &client,
                &follow_cfg,
                &cfg,
                lease,
                &mut stop,
            )
            .await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn lead<B: Backend>(
    nats: &Arc<B>,
    state: &Arc<FleetState>,
    store: &Arc<StoreHandle>,
    client: &Arc<RegistryClient>,
    follow_cfg: &FollowConfig,
    cfg: &FleetConfig,
    mut lease: Lease,
    stop: &mut watch::Receiver<bool>,
) {
    let name = state.name.clone();
    state.leader.store(true, Ordering::Relaxed);
    *lock(&state.leader_name) = Some(name.clone());
    gauge!("iys_gate_fleet_leader").set(1.0);
    counter!("iys_gate_fleet_leader_changes_total").increment(1);
    tracing::info!(gate = %name, position = state.position(), "fleet: this gate leads: polling the registry for the fleet");
    // Catch up with the stream first: cursors read from an older store
    // would cost registry requests for batches the log then refuses.
    if let Ok(b) = nats.bounds().await {
        if !state.wait_applied(b.last, cfg.lock_ttl / 3).await {
            tracing::info!(
                position = state.position(),
                last = b.last,
                "fleet: leading while still catching up with the stream"
            );
        }
    }
    let (duty_tx, duty_rx) = watch::channel(false);
    let poller = tokio::spawn(follow::run_with(
        store.clone(),
        client.clone(),
        follow_cfg.clone(),
        PublishToFleet {
            nats: nats.clone(),
            state: state.clone(),
        },
        duty_rx.clone(),
    ));
    let snapshots = tokio::spawn(put_snapshots(
        nats.clone(),
        state.clone(),
        cfg.snapshot_interval,
        duty_rx,
    ));
    let every = cfg.lock_ttl / 3;
    let mut last_renewed = Instant::now();
    let mut shutting_down = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => { shutting_down = true; break; }
        }
        match nats.renew(&name, lease).await {
            Ok(l) => {
                lease = l;
                last_renewed = Instant::now();
            }
            Err(LogError::Conflict) => {
                tracing::warn!("fleet: the leader lock was taken over; stepping down");
                break;
            }
            Err(e) => {
                if last_renewed.elapsed() >= cfg.lock_ttl * 2 / 3 {
                    tracing::warn!("fleet: cannot renew the leader lock ({e}); stepping down before it expires");
                    break;
                }
                tracing::warn!("fleet: leader lock renewal failed, retrying: {e}");
            }
        }
    }
    let _ = duty_tx.send(true);
    let _ = poller.await;
    let _ = snapshots.await;
    state.leader.store(false, Ordering::Relaxed);
    gauge!("iys_gate_fleet_leader").set(0.0);
    counter!("iys_gate_fleet_leader_changes_total").increment(1);
    if shutting_down {
        match nats.release(lease).await {
            Ok(()) => tracing::info!("fleet: released the leader lock"),
            Err(e) => tracing::warn!(
                "fleet: could not release the leader lock (it expires by itself): {e}"
            ),
        }
        *lock(&state.leader_name) = None;
    }
}

/// The leader's snapshot duty: every `interval`, when the stream moved, put
/// the store as of its position into the object store.
async fn put_snapshots<B: Backend>(
    nats: Arc<B>,
    state: Arc<FleetState>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(pair) = state.applied.load_full() else {
            continue;
        };
        let (sequence, snapshot) = (pair.0, pair.1.clone());
        if sequence == 0 || sequence <= state.snapshot_sequence.load(Ordering::Relaxed) {
            continue;
        }
        let started = Instant::now();
        let version = snapshot.version;
        let bytes = match tokio::task::spawn_blocking(move || file::to_bytes(&snapshot)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("fleet: snapshot encoder failed: {e}");
                continue;
            }
        };
        let size = bytes.len();
        match nats.put_snapshot(bytes, sequence, version).await {
            Ok(()) => {
                state.snapshot_sequence.store(sequence, Ordering::Relaxed);
                gauge!("iys_gate_fleet_snapshot_sequence").set(sequence as f64);
                counter!("iys_gate_fleet_snapshot_puts_total", "result" => "ok").increment(1);
                tracing::info!(
                    sequence,
                    version,
                    bytes = size,
                    secs = started.elapsed().as_secs_f64(),
                    "fleet: put a snapshot into the object store"
                );
            }
            Err(e) => {
                counter!("iys_gate_fleet_snapshot_puts_total", "result" => "error").increment(1);
                tracing::warn!("fleet: snapshot put failed: {e}");
            }
        }
    }
}

/// Write the store as of the stream position to the snapshot file, with a
/// sidecar naming that position, every `interval` and at shutdown.
async fn persist(
    state: Arc<FleetState>,
    path: PathBuf,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    for result in ["ok", "error"] {
        counter!("iys_gate_snapshot_writes_total", "result" => result).increment(0);
    }
    let mut written = 0u64;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        if let Some(pair) = state.applied.load_full() {
            if pair.1.version != written {
                let path2 = path.clone();
                let (sequence, snapshot) = (pair.0, pair.1.clone());
                let version = snapshot.version;
                let r = tokio::task::spawn_blocking(move || -> Result<u64, String> {
                    let bytes = file::write(&path2, &snapshot).map_err(|e| e.to_string())?;
                    let side = serde_json::json!({"version": version, "stream_sequence": sequence});
                    std::fs::write(sidecar(&path2), side.to_string())
                        .map_err(|e| format!("{}: {e}", sidecar(&path2).display()))?;
                    Ok(bytes)
                })
                .await;
                match r {
                    Ok(Ok(bytes)) => {
                        written = version;
                        counter!("iys_gate_snapshot_writes_total", "result" => "ok").increment(1);
                        tracing::info!(path = %path.display(), version, sequence, bytes, "snapshot written");
                    }
                    Ok(Err(e)) => {
                        counter!("iys_gate_snapshot_writes_total", "result" => "error")
                            .increment(1);
                        tracing::error!("snapshot write failed: {e}");
                    }
                    Err(e) => {
                        counter!("iys_gate_snapshot_writes_total", "result" => "error")
                            .increment(1);
                        tracing::error!("snapshot writer panicked: {e}");
                    }
                }
            }
        }
        if last {
            return;
        }
    }
}
