//! Prometheus metrics, all prefixed `iys_gate_`. Hot-path counters are
//! registered once and held, so counting a decision is an atomic add. No
//! label ever carries a recipient address or a brand.

use std::sync::OnceLock;

use metrics::{counter, gauge, Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::consent::Channel;
use crate::policy::{Decision, Reason};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder (once per process) and return its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = with_buckets(PrometheusBuilder::new()).build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding the
            // gate twice); the handle then renders an empty page, never fails.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Histograms exported with buckets (Prometheus `histogram`, not a summary).
/// `iys_gate_sip_added_latency_seconds`: microsecond steps up to 1 ms, then
/// coarser up to 100 ms.
fn with_buckets(b: PrometheusBuilder) -> PrometheusBuilder {
    const SIP_LATENCY: &[f64] = &[
        5e-6, 10e-6, 20e-6, 30e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,
        1e-3, 2e-3, 5e-3, 10e-3, 100e-3,
    ];
    let matcher = metrics_exporter_prometheus::Matcher::Full(
        "iys_gate_sip_added_latency_seconds".to_string(),
    );
    match b.set_buckets_for_metric(matcher, SIP_LATENCY) {
        Ok(b) => b,
        // Only an empty bucket list fails.
        Err(_) => PrometheusBuilder::new(),
    }
}

/// How often histogram samples are folded into their buckets or summaries.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A recorder built with `build_recorder` keeps every histogram sample (8
/// bytes each, one per forwarded SMPP message or SMTP hop) until the next
/// render or upkeep, so a gate that nobody scrapes grows its heap by 8 bytes
/// a forwarded message (30 kB a minute at 64 a second, 0.3 GB an hour at
/// 10 000 a second). Upkeep every few seconds bounds it whether or not
/// Prometheus scrapes. See docs/soak.md for the before/after soak figures.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the metrics upkeep thread ({e}): histogram samples are kept until /metrics is scraped");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "iys_gate_decisions_total",
        "Decisions by channel, decision, reason and source (traffic or check_api)"
    );
    describe_gauge!(
        "iys_gate_tuples",
        "Consent records held (ONAY and RET) by channel"
    );
    describe_gauge!(
        "iys_gate_sync_age_seconds",
        "Age of the oldest brand's data"
    );
    describe_gauge!(
        "iys_gate_snapshot_version",
        "Version of the published snapshot"
    );
    describe_counter!(
        "iys_gate_sync_changes_applied_total",
        "Registry changes applied to the store"
    );
    describe_counter!(
        "iys_gate_sync_batches_total",
        "Sync batches by source and result"
    );
    describe_counter!(
        "iys_gate_sync_errors_total",
        "Registry call failures by kind"
    );
    describe_counter!(
        "iys_gate_webhook_requests_total",
        "Webhook pushes by result"
    );
    describe_counter!(
        "iys_gate_snapshot_writes_total",
        "Snapshot file writes by result"
    );
    describe_gauge!(
        "iys_gate_ready",
        "1 when /readyz answers 200 (snapshot loaded, every followed brand's data younger than policy.max_data_age), else 0; set at each scrape"
    );
    describe_counter!(
        "iys_gate_audit_dropped_total",
        "Audit records dropped because the writer fell behind"
    );
    describe_counter!(
        "iys_gate_bootstrap_rows_skipped_total",
        "Bootstrap rows left out by reason: bad_row (store.bad_rows = skip), unfollowed_brand (a brand not in [[brands]]; for a snapshot file, its tuples)"
    );
}

/// Pre-registered decision counters, one per (channel, reason), for one
/// source of decisions: `source="traffic"` for messages through a protocol
/// gate, `source="check_api"` for `/v1/check` answers, so dashboards can tell
/// lookups from traffic.
#[derive(Clone)]
pub struct DecisionCounters {
    by: [[Counter; Reason::ALL.len()]; 3],
}

impl DecisionCounters {
    /// The counters for messages through the protocol gates (`source="traffic"`).
    pub fn new() -> Self {
        Self::for_source("traffic")
    }

    /// The counters for `/v1/check` answers (`source="check_api"`).
    pub fn for_check_api() -> Self {
        Self::for_source("check_api")
    }

    /// Register every (channel, decision, reason) series of one source.
    fn for_source(source: &'static str) -> Self {
        let by = std::array::from_fn(|c| {
            let channel = Channel::ALL[c].as_str();
            std::array::from_fn(|r| {
                let (verdict, reason) = Reason::ALL[r];
                counter!("iys_gate_decisions_total", "channel" => channel, "decision" => verdict.as_str(), "reason" => reason.as_str(), "source" => source)
            })
        });
        DecisionCounters { by }
    }

    /// Hand over what `tally` counted (and empty it).
    pub fn add(&self, tally: &mut DecisionTally) {
        if !tally.any {
            return;
        }
        for (counters, counts) in self.by.iter().zip(tally.counts.iter_mut()) {
            for (counter, n) in counters.iter().zip(counts.iter_mut()) {
                if *n > 0 {
                    counter.increment(std::mem::take(n));
                }
            }
        }
        tally.any = false;
    }
}

/// Decisions counted locally (a session's turn), handed to the shared
/// [`DecisionCounters`] at once: one update per kind of decision per turn
/// instead of a shared atomic per message.
#[derive(Default)]
pub struct DecisionTally {
    counts: [[u64; Reason::ALL.len()]; 3],
    any: bool,
}

impl DecisionTally {
    /// Count one decision.
    #[inline]
    pub fn record(&mut self, channel: Channel, d: &Decision) {
        self.counts[channel.index()][d.reason.index()] += 1;
        self.any = true;
    }
}

impl Default for DecisionCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Store gauges, updated after each publish.
pub struct StoreGauges {
    tuples: [Gauge; 3],
    version: Gauge,
    age: Gauge,
}

impl StoreGauges {
    /// Register the gauges.
    pub fn new() -> Self {
        StoreGauges {
            tuples: std::array::from_fn(
                |c| gauge!("iys_gate_tuples", "channel" => Channel::ALL[c].as_str()),
            ),
            version: gauge!("iys_gate_snapshot_version"),
            age: gauge!("iys_gate_sync_age_seconds"),
        }
    }

    /// Publish the store's figures.
    pub fn set(&self, tuples: [u64; 3], version: u64) {
        for (g, t) in self.tuples.iter().zip(tuples) {
            g.set(t as f64);
        }
        self.version.set(version as f64);
    }

    /// Publish the data age.
    pub fn set_age(&self, secs: f64) {
        self.age.set(secs);
    }
}

impl Default for StoreGauges {
    fn default() -> Self {
        Self::new()
    }
}
