//! Reconciliation: does the gate's store agree with the registry?
//!
//! For one brand, within a request budget:
//!
//! 1. **Sample.** `n` tuples drawn at random from those the store holds (ONAY
//!    and RET, phone channels) and `n` it does not hold (another channel or
//!    recipient type of a sampled address, or a random mobile number), each
//!    asked with `POST .../consents/status`. For a held ONAY, the dealers the
//!    registry allows are compared too. Each part reports its mismatches and
//!    the exact one-sided 95 % upper bound on the mismatch rate
//!    ([`report::upper_bound`]: Clopper–Pearson; for none found about `3/n`).
//! 2. **Movement files.** `GET .../consents/changes/{day}/file` for today and
//!    the 7 days before. Per day and feed, the changes the registry lists are
//!    compared by count and hash with those the gate applied
//!    ([`crate::sync::ledger`]) within the window the gate must have read:
//!    from the ledger's start to the brand's last complete sync less
//!    `reconcile.feed_lag` (or the newest change read, if later). And every
//!    tuple's newest change in the files is checked against the store
//!    (e-mails included: the files name addresses in clear).
//!
//! A change the registry made after the gate's data was current is
//! "in flight", not a mismatch. Every mismatch is logged as an error, listed
//! (masked) in the report, and counted in `iys_gate_reconcile_mismatches`.

pub mod cli;
pub mod config;
pub mod report;
mod sample;

pub use config::{ReconcileConfig, MAX_SAMPLE};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use metrics::{counter, gauge};

use crate::consent::{Address, Brand, Channel, ConsentTime, RecipientType, Source};
use crate::registry::api::{Change, StatusQuery, StatusResponse};
use crate::registry::budget::Budget;
use crate::registry::client::{ClientError, FeedSource, RegistryClient};
use crate::store::{Found, Snapshot};
use crate::sync::ledger::{day_of, feed_index, fingerprint, Tally};
use crate::sync::retailers::held_dealers;
use crate::sync::StoreHandle;
use report::{upper_bound, DayReport, Mismatch, Report, SamplePart};

/// Days before today whose movement files are compared (İYS keeps 7).
pub const MOVEMENT_DAYS: i64 = 7;

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A parameter out of range (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The brand is not followed by this gate (HTTP 400).
    #[error("brand {0} is not followed by this gate: use one of the [[brands]] in the config")]
    UnknownBrand(Brand),
    /// Another run is going on (HTTP 409).
    #[error("a reconciliation is already running: wait for it to finish")]
    Busy,
    /// No snapshot loaded yet (HTTP 503).
    #[error("no snapshot is loaded yet")]
    NoSnapshot,
    /// A registry call failed (HTTP 502).
    #[error("registry call failed: {0}")]
    Registry(#[from] ClientError),
}

/// Parse `IYS/BRAND` (e.g. `700001/1`).
pub fn parse_brand(text: &str) -> Result<Brand, String> {
    let bad = || {
        format!(
            "brand {:?} is not IYS_CODE/BRAND_CODE (e.g. 700001/1)",
            text.chars().take(40).collect::<String>()
        )
    };
    let (i, b) = text.trim().split_once('/').ok_or_else(bad)?;
    Ok(Brand::new(
        i.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

/// A run's parameters; `None` takes the `[reconcile]` default.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest {
    /// The brand.
    pub brand: Brand,
    /// Sample size per part.
    pub sample: Option<u32>,
    /// Requests per second.
    pub budget_rps: Option<f64>,
}

/// Runs reconciliations for the gate (one at a time).
pub struct Reconciler {
    store: Arc<StoreHandle>,
    client: Arc<RegistryClient>,
    brands: Vec<Brand>,
    cfg: ReconcileConfig,
    running: tokio::sync::Mutex<()>,
    /// Per brand: the latest run's mismatches and when it finished.
    last: std::sync::Mutex<HashMap<Brand, (u64, i64)>>,
}

/// Describe the reconciliation metrics.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "iys_gate_reconcile_runs_total",
        "Reconciliation runs by result (ok, mismatch, error)"
    );
    describe_counter!(
        "iys_gate_reconcile_requests_total",
        "Registry requests made by reconciliation runs"
    );
    describe_gauge!(
        "iys_gate_reconcile_mismatches",
        "Mismatches found by each brand's latest reconciliation, summed over brands"
    );
    describe_gauge!(
        "iys_gate_reconcile_sample_size",
        "Tuples the latest reconciliation checked, by part (held, absent)"
    );
    describe_gauge!(
        "iys_gate_reconcile_mismatch_rate_upper_bound",
        "95% upper bound on the mismatch rate from the latest reconciliation's sample, by part"
    );
    describe_gauge!(
        "iys_gate_reconcile_last_run_timestamp_seconds",
        "When the latest reconciliation (any brand) finished, Unix seconds"
    );
    describe_gauge!(
        "iys_gate_reconcile_oldest_brand_run_timestamp_seconds",
        "When the least recently reconciled followed brand was last reconciled, Unix seconds (0: a brand never was)"
    );
}

/// Index (`[HS, IYS]`) of the change feed a record with `source` is on.
fn feed_of(source: &str) -> usize {
    let citizen = source.parse::<Source>().is_ok_and(Source::is_citizen);
    feed_index(if citizen {
        FeedSource::Iys
    } else {
        FeedSource::Hs
    })
}

/// The registry's status as the report shows it.
fn registry_status(r: &Option<StatusResponse>) -> String {
    r.as_ref().map_or("none".to_string(), |s| s.status.clone())
}

/// The store's status as the report shows it.
fn gate_status(f: Found) -> &'static str {
    match f {
        Found::Consent | Found::RetailerDenied => "ONAY",
        Found::Withdrawn => "RET",
        Found::Unknown => "none",
    }
}

impl Reconciler {
    /// A reconciler for the gate's store and registry.
    pub fn new(
        store: Arc<StoreHandle>,
        client: Arc<RegistryClient>,
        brands: Vec<Brand>,
        cfg: ReconcileConfig,
    ) -> Reconciler {
        describe_metrics();
        for result in ["ok", "mismatch", "error"] {
            counter!("iys_gate_reconcile_runs_total", "result" => result).increment(0);
        }
        // Exported from the start, so an alert on "never reconciled" (0) or
        // on mismatches has its series.
        gauge!("iys_gate_reconcile_mismatches").set(0.0);
        gauge!("iys_gate_reconcile_last_run_timestamp_seconds").set(0.0);
        gauge!("iys_gate_reconcile_oldest_brand_run_timestamp_seconds").set(0.0);
        Reconciler {
            store,
            client,
            brands,
            cfg,
            running: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::default(),
        }
    }

    /// Run one reconciliation.
    pub async fn run(&self, req: RunRequest) -> Result<Report, ReconcileError> {
        let result = self.run_inner(req).await;
        match &result {
            Ok(r) if r.ok => {
                counter!("iys_gate_reconcile_runs_total", "result" => "ok").increment(1)
            }
            Ok(_) => counter!("iys_gate_reconcile_runs_total", "result" => "mismatch").increment(1),
            Err(ReconcileError::Busy) => {}
            Err(e) => {
                counter!("iys_gate_reconcile_runs_total", "result" => "error").increment(1);
                tracing::warn!(brand = %req.brand, "reconciliation failed: {e}");
            }
        }
        result
    }

    async fn run_inner(&self, req: RunRequest) -> Result<Report, ReconcileError> {
        let sample = req.sample.unwrap_or(self.cfg.sample);
        if sample > MAX_SAMPLE {
            return Err(ReconcileError::Invalid(format!(
                "sample {sample} is too large: at most {MAX_SAMPLE}"
            )));
        }
        let rps = req.budget_rps.unwrap_or(self.cfg.budget_rps);
        config::check_budget("budget", rps).map_err(|e| ReconcileError::Invalid(e.to_string()))?;
        if !self.brands.contains(&req.brand) {
            return Err(ReconcileError::UnknownBrand(req.brand));
        }
        let _turn = self.running.try_lock().map_err(|_| ReconcileError::Busy)?;
        let brand = req.brand;
        let began = Instant::now();
        let started_at =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let mut budget = Budget::new(rps);
        let mut mismatches: Vec<Mismatch> = Vec::new();

        // 1. The sample, drawn from the snapshot current now.
        let snapshot = self.store.load().ok_or(ReconcileError::NoSnapshot)?;
        let n = sample as usize;
        let drawn = {
            let s = snapshot.clone();
            tokio::task::spawn_blocking(move || sample::draw(&s, brand, n))
                .await
                .map_err(|e| ReconcileError::Invalid(format!("sampling failed: {e}")))?
        };
        let mut held = SamplePart::default();
        let mut absent = SamplePart::default();
        for (probes, part, found_by) in [
            (&drawn.held, &mut held, "sample_held"),
            (&drawn.absent, &mut absent, "sample_absent"),
        ] {
            for p in probes {
                let query = StatusQuery {
                    recipient: p.address.to_string(),
                    recipient_type: p.rtype.as_str().to_string(),
                    channel: p.channel.as_str().to_string(),
                };
                // The store and what the gate has read, as they are before
                // the registry is asked: a registry record newer than that
                // is in flight, and the store cannot be ahead of the answer.
                let now_snapshot = self.store.load().ok_or(ReconcileError::NoSnapshot)?;
                let ledger = self.store.applied.brand(brand);
                let answer = budget.call(|| self.client.status(brand, &query)).await?;
                let found = now_snapshot
                    .find(brand, p.channel, p.rtype, p.address.key(), None)
                    .unwrap_or(Found::Unknown);
                if answer.as_ref().is_some_and(|a| {
                    let f = feed_of(&a.source);
                    ConsentTime::parse(&a.creation_date)
                        .is_ok_and(|c| c > self.cut(&now_snapshot, brand, ledger.newest[f]))
                }) {
                    part.in_flight += 1;
                    continue;
                }
                part.checked += 1;
                let gate = gate_status(found);
                let registry = registry_status(&answer);
                let base = |kind: &str, gate: String, registry: String| Mismatch {
                    kind: kind.into(),
                    found_by: found_by.into(),
                    channel: Some(p.channel.as_str().into()),
                    recipient_type: Some(p.rtype.as_str().into()),
                    recipient: Some(p.address.masked()),
                    date: None,
                    gate,
                    registry,
                };
                if gate != registry {
                    part.mismatches += 1;
                    mismatches.push(base("status", gate.into(), registry));
                    continue;
                }
                // Same ONAY: are the same dealers allowed?
                if let (Some(a), Some(id)) = (
                    answer.as_ref().filter(|a| a.status == "ONAY"),
                    now_snapshot.address_id(p.channel, p.address.key()),
                ) {
                    let mut want = a.retailer_access.clone().unwrap_or_default();
                    want.sort_unstable();
                    want.dedup();
                    let have = held_dealers(&now_snapshot, brand, p.channel, p.rtype, id)
                        .map(|(d, _)| d)
                        .unwrap_or_default();
                    if want != have {
                        part.mismatches += 1;
                        mismatches.push(base("dealers", format!("{have:?}"), format!("{want:?}")));
                    }
                }
            }
            part.upper_bound_95 = upper_bound(part.mismatches, part.checked);
        }

        // 2. The movement files.
        let movement = self.movement(brand, &mut budget, &mut mismatches).await?;

        let snapshot = self.store.load().ok_or(ReconcileError::NoSnapshot)?;
        let synced_at = snapshot
            .brand(brand)
            .and_then(|e| e.sync.synced_at)
            .map(|t| t.to_string());
        let ok = mismatches.is_empty();
        let label = brand.to_string();
        // No per-brand label (the house rule): per-brand results stay here,
        // the metrics carry their sum and the oldest run.
        let finished = ConsentTime::now().unix();
        let (total, oldest) = {
            let mut last = self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            last.insert(brand, (mismatches.len() as u64, finished));
            let total: u64 = last.values().map(|(m, _)| m).sum();
            let oldest = self
                .brands
                .iter()
                .map(|b| last.get(b).map_or(0, |(_, t)| *t))
                .min()
                .unwrap_or(0);
            (total, oldest)
        };
        gauge!("iys_gate_reconcile_mismatches").set(total as f64);
        gauge!("iys_gate_reconcile_sample_size", "part" => "held").set(held.checked as f64);
        gauge!("iys_gate_reconcile_sample_size", "part" => "absent").set(absent.checked as f64);
        if let Some(b) = held.upper_bound_95 {
            gauge!("iys_gate_reconcile_mismatch_rate_upper_bound", "part" => "held").set(b);
        }
        if let Some(b) = absent.upper_bound_95 {
            gauge!("iys_gate_reconcile_mismatch_rate_upper_bound", "part" => "absent").set(b);
        }
        gauge!("iys_gate_reconcile_last_run_timestamp_seconds").set(finished as f64);
        gauge!("iys_gate_reconcile_oldest_brand_run_timestamp_seconds").set(oldest as f64);
        counter!("iys_gate_reconcile_requests_total").increment(budget.used());
        for m in &mismatches {
            tracing::error!(
                brand = %brand,
                kind = %m.kind,
                found_by = %m.found_by,
                channel = m.channel.as_deref().unwrap_or("-"),
                recipient_type = m.recipient_type.as_deref().unwrap_or("-"),
                recipient = m.recipient.as_deref().unwrap_or("-"),
                date = m.date.as_deref().unwrap_or("-"),
                gate = %m.gate,
                registry = %m.registry,
                "reconciliation mismatch: the gate and the registry differ"
            );
        }
        tracing::info!(%brand, mismatches = mismatches.len(), held = held.checked, absent = absent.checked, requests = budget.used(), "reconciliation done");
        Ok(Report {
            brand: label,
            started_at,
            seconds: began.elapsed().as_secs_f64(),
            snapshot_version: snapshot.version,
            synced_at,
            requests: budget.used(),
            budget_rps: rps,
            sample: report::SampleReport {
                held,
                absent,
                eposta_held_not_sampled: drawn.eposta_held,
                method: "exact one-sided 95% upper bound (Clopper-Pearson) on the mismatch rate; for 0 found 1-0.05^(1/n), about 3/n".into(),
            },
            movement,
            mismatches,
            ok,
        })
    }

    /// The time before which the gate must have every registry change of
    /// `brand` on feed `f`: its last complete sync less the feed lag, or the
    /// newest change it read from that feed if later.
    fn cut(&self, snapshot: &Snapshot, brand: Brand, newest: Option<ConsentTime>) -> ConsentTime {
        let synced = snapshot
            .brand(brand)
            .and_then(|e| e.sync.synced_at)
            .map_or(ConsentTime(0), |t| {
                ConsentTime(t.unix() - self.cfg.feed_lag.as_secs() as i64)
            });
        synced.max(newest.unwrap_or(ConsentTime(0)))
    }

    async fn movement(
        &self,
        brand: Brand,
        budget: &mut Budget,
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<report::MovementReport, ReconcileError> {
        let now = ConsentTime::now();
        let today = day_of(now);
        let mut days = Vec::new();
        // Newest change per tuple over all files: (consent date, created, change).
        let mut newest: HashMap<(String, String, String), (ConsentTime, ConsentTime, Change)> =
            HashMap::new();
        // The store and what the gate has read, before the files are
        // fetched: everything the files list up to the cut must be in them,
        // and nothing newer than the files can be.
        let snapshot = self.store.load().ok_or(ReconcileError::NoSnapshot)?;
        let ledger = self.store.applied.brand(brand);
        let mut files: Vec<(i64, Option<Vec<Change>>, Option<String>)> = Vec::new();
        for back in (0..=MOVEMENT_DAYS).rev() {
            let day = today - back * 86_400;
            let date = ConsentTime(day).turkey_date();
            match budget
                .call(|| self.client.movement_file(brand, &date))
                .await
            {
                Ok(f) => files.push((day, Some(f.list), None)),
                Err(e @ ClientError::Refused { .. }) => {
                    files.push((day, None, Some(e.to_string())))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let cuts = [
            self.cut(&snapshot, brand, ledger.newest[0]),
            self.cut(&snapshot, brand, ledger.newest[1]),
        ];
        let mut report = report::MovementReport {
            ledger_since: ledger.since.to_string(),
            ..Default::default()
        };
        for (day, list, note) in files {
            let date = ConsentTime(day).turkey_date();
            let Some(list) = list else {
                days.push(DayReport {
                    date,
                    result: "not_available".into(),
                    registry_changes: 0,
                    registry_in_window: [0, 0],
                    gate_applied: [0, 0],
                    matches: true,
                    note,
                });
                continue;
            };
            let mut window = [Tally::default(); 2];
            for c in &list {
                let Ok(created) = ConsentTime::parse(&c.creation_date) else {
                    continue;
                };
                let f = feed_of(&c.source);
                if created >= ledger.since && created <= cuts[f] {
                    window[f].add(fingerprint(c));
                }
                let consent = ConsentTime::parse(&c.consent_date).unwrap_or(ConsentTime(0));
                let key = (
                    c.recipient.clone(),
                    c.channel.clone(),
                    c.recipient_type.clone(),
                );
                let newer = newest
                    .get(&key)
                    .is_none_or(|(d, t, _)| (consent, created) >= (*d, *t));
                if newer {
                    newest.insert(key, (consent, created, c.clone()));
                }
            }
            let before_ledger = day + 86_400 <= ledger.since.unix();
            let gate = ledger.days.get(&day).copied().unwrap_or_default();
            let matches = before_ledger || window == gate;
            if !matches {
                for f in 0..2 {
                    if window[f] != gate[f] {
                        mismatches.push(Mismatch {
                            kind: "day".into(),
                            found_by: "movement_file".into(),
                            channel: None,
                            recipient_type: None,
                            recipient: None,
                            date: Some(format!("{date} {}", if f == 0 { "HS" } else { "IYS" })),
                            gate: format!("{} changes applied", gate[f].count),
                            registry: format!("{} changes listed", window[f].count),
                        });
                    }
                }
            }
            days.push(DayReport {
                date,
                result: if before_ledger {
                    "before_ledger"
                } else {
                    "compared"
                }
                .into(),
                registry_changes: list.len() as u64,
                registry_in_window: [window[0].count, window[1].count],
                gate_applied: [gate[0].count, gate[1].count],
                matches,
                note: None,
            });
        }
        // Each tuple's newest change against the store.
        for ((recipient, channel, rtype), (_, created, change)) in newest {
            if created > cuts[feed_of(&change.source)] {
                report.in_flight += 1;
                continue;
            }
            let (Ok(ch), Ok(rt)) = (channel.parse::<Channel>(), rtype.parse::<RecipientType>())
            else {
                continue;
            };
            let Ok(address) = Address::parse_for(ch, &recipient) else {
                continue;
            };
            report.tuples_checked += 1;
            let found = snapshot
                .find(brand, ch, rt, address.key(), None)
                .unwrap_or(Found::Unknown);
            let gate = gate_status(found);
            if gate != change.status {
                report.mismatches += 1;
                mismatches.push(Mismatch {
                    kind: "status".into(),
                    found_by: "movement_file".into(),
                    channel: Some(channel),
                    recipient_type: Some(rtype),
                    recipient: Some(address.masked()),
                    date: Some(change.creation_date.clone()),
                    gate: gate.into(),
                    registry: change.status.clone(),
                });
            }
        }
        report.days = days;
        Ok(report)
    }
}

/// What [`start`] started.
#[derive(Default)]
pub struct Compliance {
    /// For `POST /v1/reconcile`; `None` without a registry.
    pub reconciler: Option<Arc<Reconciler>>,
    /// The dealer-access refresh task, when it runs.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Wire reconciliation and the dealer-access refresh for `iys-gate serve`:
/// with a registry, a [`Reconciler`] for `POST /v1/reconcile` and (unless
/// `retailers.enabled = false`) the refresh task. Both use a registry client
/// of their own, apart from the change-feed follower's.
pub fn start(
    config: &crate::config::Config,
    store: &Arc<StoreHandle>,
    registry_url: Option<String>,
    brands: &[Brand],
    stop: &crate::gate::Stop,
) -> anyhow::Result<Compliance> {
    let (Some(r), Some(url)) = (&config.registry, registry_url) else {
        return Ok(Compliance::default());
    };
    let password = config.registry_password()?;
    let client = || -> anyhow::Result<Arc<RegistryClient>> {
        Ok(Arc::new(RegistryClient::new(
            &url,
            &r.username,
            &password,
            r.request_timeout,
        )?))
    };
    let mut tasks = Vec::new();
    if config.retailers.enabled {
        tasks.push(tokio::spawn(crate::sync::retailers::run(
            store.clone(),
            client()?,
            brands.to_vec(),
            config.retailers.clone(),
            stop.clone(),
        )));
    }
    let reconciler = Arc::new(Reconciler::new(
        store.clone(),
        client()?,
        brands.to_vec(),
        config.reconcile.clone(),
    ));
    Ok(Compliance {
        reconciler: Some(reconciler),
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn config_errors_name_the_key() {
        for (text, key) in [
            ("[reconcile]\nbudget_rps = 0\n", "reconcile.budget_rps"),
            ("[reconcile]\nsample = 1000000\n", "reconcile.sample"),
            ("[reconcile]\nfeed_lag = \"soon\"\n", "feed_lag"),
            (
                "[retailers]\nrefresh_interval = \"10ms\"\n",
                "retailers.refresh_interval",
            ),
            ("[retailers]\nbudget_rps = 1000\n", "retailers.budget_rps"),
            ("[retailers]\nbudget = 1\n", "budget"),
        ] {
            let e = crate::config::Config::from_toml(text, "t")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let c = crate::config::Config::from_toml("", "t").unwrap();
        assert_eq!(c.reconcile.sample, 200);
        assert_eq!(c.reconcile.feed_lag, Duration::from_secs(3600));
        assert!(c.retailers.enabled);
        assert_eq!(c.retailers.refresh_interval, Duration::from_secs(300));
    }

    #[test]
    fn brands_parse() {
        assert_eq!(parse_brand("700001/1"), Ok(Brand::new(700001, 1)));
        assert!(parse_brand("700001")
            .unwrap_err()
            .contains("IYS_CODE/BRAND_CODE"));
        assert!(parse_brand("a/1").is_err());
    }
}
