//! Daily reports: per Turkey day, per brand × channel × decision × reason ×
//! dealer, how many messages (recipients, calls) the protocol gates decided.
//! Kept outside Prometheus (brands and dealers are many), in a small JSON
//! file beside the snapshot that survives restarts.
//!
//! The data path counts into the session's turn ([`ReportTally`], a short
//! list searched from its last entry: a turn mostly holds one brand and a
//! few reasons) and hands the turn's counts to the shared [`ReportBook`]
//! under one lock when the turn ends, next to the decision counters. A task
//! writes the book to its file every `reports.flush_interval` when it
//! changed, and once more at shutdown: a crash loses at most one interval.
//! `/v1/check` lookups are not traffic and are not counted here (they are
//! in `iys_gate_decisions_total{source="check_api"}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use super::day::Day;
use crate::consent::{Brand, Channel};
use crate::policy::{Decision, Reason};

/// The file name inside the state directory.
pub const FILE_NAME: &str = "reports.json";

/// What one count is of. Channel and reason by index, so the key is small
/// and hashes fast; the decision follows from the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    day: Day,
    brand: Brand,
    channel: u8,
    reason: u8,
    dealer: Option<u32>,
}

/// One turn's counts, handed to the [`ReportBook`] when the turn ends.
#[derive(Debug, Default)]
pub struct ReportTally {
    counts: Vec<(Key, u64)>,
    /// The day of the last time seen: a turn's decisions share one clock
    /// reading, so the day is worked out once per turn, not per message.
    day_of: Option<(SystemTime, Day)>,
}

impl ReportTally {
    /// Count one decision for `brand` (and `dealer`, when the message named
    /// one) on `channel`, decided at `at`.
    #[inline]
    pub fn record(
        &mut self,
        at: SystemTime,
        brand: Brand,
        channel: Channel,
        dealer: Option<u32>,
        d: &Decision,
    ) {
        let day = match self.day_of {
            Some((t, day)) if t == at => day,
            _ => {
                let day = Day::of(at);
                self.day_of = Some((at, day));
                day
            }
        };
        let key = Key {
            day,
            brand,
            channel: channel.index() as u8,
            reason: d.reason.index() as u8,
            dealer,
        };
        // Most recent first: consecutive messages mostly share the key.
        match self.counts.iter_mut().rev().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((key, 1)),
        }
    }

    /// Nothing counted since the last hand-over.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// One row of a day's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    /// `iys_code/brand_code`.
    pub brand: String,
    /// `MESAJ`, `ARAMA` or `EPOSTA`.
    pub channel: Channel,
    /// `allow`, `refuse` or `defer` (what the rules said; in monitor mode
    /// nothing was enforced).
    pub decision: String,
    /// `consent`, `exempt`, `no_consent`, `withdrawn`, `unknown_brand`,
    /// `retailer_not_allowed` or `stale`.
    pub reason: String,
    /// The dealer (retailer code) the message named, if any.
    pub dealer: Option<u32>,
    /// Messages (SMS parts, mail recipients, calls) decided so.
    pub count: u64,
}

/// A day's report, as `iys-gate report` and `/v1/report` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayReport {
    /// `YYYY-MM-DD`, Turkey time.
    pub date: String,
    /// Always `+03:00` (Turkey, no daylight saving time).
    pub utc_offset: String,
    /// Sum of the rows' counts.
    pub total: u64,
    /// By brand, channel, reason, dealer.
    pub rows: Vec<ReportRow>,
}

/// The file: format version and rows by date.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportFile {
    format: u32,
    days: BTreeMap<String, Vec<ReportRow>>,
}

const FORMAT: u32 = 1;

fn reason_of(name: &str) -> Option<usize> {
    Reason::ALL.iter().position(|(_, r)| r.as_str() == name)
}

fn brand_of(s: &str) -> Option<Brand> {
    let (i, b) = s.split_once('/')?;
    Some(Brand::new(i.parse().ok()?, b.parse().ok()?))
}

/// How the book is kept.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// The file (`<state_dir>/reports.json`); `None`: in memory only.
    pub path: Option<PathBuf>,
    /// Days kept (older ones are dropped at each flush).
    pub retention_days: u32,
}

struct Inner {
    counts: Mutex<HashMap<Key, u64>>,
    dirty: AtomicBool,
    cfg: ReportConfig,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last turns handed over after the final flush (sessions end
        // after the stop signal).
        if self.dirty.load(Ordering::Relaxed) {
            if let Err(e) = write_file(&self.cfg, &self.counts) {
                tracing::error!(error = %e, "cannot write the daily report file at exit");
            }
        }
    }
}

/// The gate's daily counts (cheap to clone: shared). [`ReportBook::default`]
/// is a book that counts nothing (tools, tests).
#[derive(Clone, Default)]
pub struct ReportBook {
    inner: Option<Arc<Inner>>,
}

impl ReportBook {
    /// A book kept in `cfg.path` (loaded from it when it exists). A file
    /// that cannot be read is moved aside (`reports.json.unreadable`) and
    /// the book starts empty, so the gate still starts; the error is logged.
    pub fn open(cfg: ReportConfig) -> ReportBook {
        let mut counts = HashMap::default();
        if let Some(path) = cfg.path.as_deref().filter(|p| p.exists()) {
            match read_file(path) {
                Ok(c) => counts = c,
                Err(e) => {
                    let aside = PathBuf::from(format!("{}.unreadable", path.display()));
                    let _ = std::fs::rename(path, &aside);
                    tracing::error!(file = %path.display(), moved_to = %aside.display(), error = %e, "the daily report file cannot be read: moved aside, reports start empty");
                }
            }
        }
        ReportBook {
            inner: Some(Arc::new(Inner {
                counts: Mutex::new(counts),
                dirty: AtomicBool::new(false),
                cfg,
            })),
        }
    }

    /// Add a turn's counts (and empty the tally).
    pub fn add(&self, tally: &mut ReportTally) {
        if tally.counts.is_empty() {
            return;
        }
        let Some(inner) = &self.inner else {
            tally.counts.clear();
            return;
        };
        let mut counts = inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (k, n) in tally.counts.drain(..) {
            *counts.entry(k).or_insert(0) += n;
        }
        drop(counts);
        if !inner.dirty.load(Ordering::Relaxed) {
            inner.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The report for `day`; `None` when nothing was counted that day.
    pub fn day(&self, day: Day) -> Option<DayReport> {
        let inner = self.inner.as_ref()?;
        let counts = inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<(Key, u64)> = counts
            .iter()
            .filter(|(k, _)| k.day == day)
            .map(|(k, n)| (*k, *n))
            .collect();
        drop(counts);
        if keys.is_empty() {
            return None;
        }
        keys.sort();
        Some(day_report(day, keys.into_iter()))
    }

    /// Write the file now if anything changed since the last write.
    pub fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        if inner.cfg.path.is_none() || !inner.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Err(e) = write_file(&inner.cfg, &inner.counts) {
            inner.dirty.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot write the daily report file (retried at the next flush)");
        }
    }
}

fn day_report(day: Day, keys: impl Iterator<Item = (Key, u64)>) -> DayReport {
    let rows: Vec<ReportRow> = keys
        .map(|(k, n)| {
            let (verdict, reason) = Reason::ALL[usize::from(k.reason)];
            ReportRow {
                brand: k.brand.to_string(),
                channel: Channel::ALL[usize::from(k.channel)],
                decision: verdict.as_str().into(),
                reason: reason.as_str().into(),
                dealer: k.dealer,
                count: n,
            }
        })
        .collect();
    DayReport {
        date: day.to_string(),
        utc_offset: "+03:00".into(),
        total: rows.iter().map(|r| r.count).sum(),
        rows,
    }
}

/// Read a report file into counts.
fn read_file(path: &Path) -> Result<HashMap<Key, u64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: ReportFile = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if file.format != FORMAT {
        return Err(format!(
            "format {} (this version reads {FORMAT})",
            file.format
        ));
    }
    let mut counts = HashMap::default();
    for (date, rows) in &file.days {
        let day = Day::parse(date)?;
        for (i, r) in rows.iter().enumerate() {
            let bad = |field: &str| format!("days.{date}[{i}].{field}: {:?} unknown", r);
            let key = Key {
                day,
                brand: brand_of(&r.brand).ok_or_else(|| bad("brand"))?,
                channel: r.channel.index() as u8,
                reason: reason_of(&r.reason).ok_or_else(|| bad("reason"))? as u8,
                dealer: r.dealer,
            };
            *counts.entry(key).or_insert(0) += r.count;
        }
    }
    Ok(counts)
}

/// Write the counts (days within retention) to the file: a temporary file
/// beside it, synced, then renamed over it.
fn write_file(cfg: &ReportConfig, counts: &Mutex<HashMap<Key, u64>>) -> std::io::Result<()> {
    let Some(path) = &cfg.path else {
        return Ok(());
    };
    let oldest = Day::today().plus(-i64::from(cfg.retention_days));
    let mut keys: Vec<(Key, u64)> = {
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|k, _| k.day >= oldest);
        c.iter().map(|(k, n)| (*k, *n)).collect()
    };
    keys.sort();
    let mut file = ReportFile {
        format: FORMAT,
        days: BTreeMap::new(),
    };
    let mut i = 0;
    while i < keys.len() {
        let day = keys[i].0.day;
        let j = i + keys[i..].iter().take_while(|(k, _)| k.day == day).count();
        let report = day_report(day, keys[i..j].iter().copied());
        file.days.insert(report.date, report.rows);
        i = j;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, &file)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The report for `day` from a report file (`iys-gate report`); `Ok(None)`
/// when the file has no row for that day.
pub fn read_day(path: &Path, day: Day) -> Result<Option<DayReport>, String> {
    let counts = read_file(path)?;
    let mut keys: Vec<(Key, u64)> = counts.into_iter().filter(|(k, _)| k.day == day).collect();
    if keys.is_empty() {
        return Ok(None);
    }
    keys.sort();
    Ok(Some(day_report(day, keys.into_iter())))
}

/// A day's report as CSV: a header, then one line per row.
pub fn to_csv(report: &DayReport) -> String {
    let mut out = String::from("date,brand,channel,decision,reason,dealer,count\n");
    for r in &report.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            report.date,
            r.brand,
            r.channel,
            r.decision,
            r.reason,
            r.dealer.map(|d| d.to_string()).unwrap_or_default(),
            r.count
        ));
    }
    out
}

/// Write the book every `interval` (when it changed) and once more when
/// `stop` flips.
pub async fn run(book: ReportBook, interval: Duration, mut stop: crate::gate::Stop) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        let b = book.clone();
        let _ = tokio::task::spawn_blocking(move || b.flush()).await;
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Verdict;

    fn decision(reason: Reason) -> Decision {
        let verdict = Reason::ALL.iter().find(|(_, r)| *r == reason).unwrap().0;
        Decision {
            verdict,
            reason,
            monitor: false,
            snapshot_version: 1,
            data_age_seconds: None,
        }
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn counts_by_turkey_day_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ReportConfig {
            path: Some(dir.path().join(FILE_NAME)),
            retention_days: 100_000,
        };
        let book = ReportBook::open(cfg.clone());
        let brand = Brand::new(700001, 100001);
        let mut t = ReportTally::default();
        for _ in 0..3 {
            t.record(
                at("2026-12-03T20:59:59Z"),
                brand,
                Channel::Mesaj,
                None,
                &decision(Reason::NoConsent),
            );
        }
        t.record(
            at("2026-12-03T21:00:00Z"),
            brand,
            Channel::Mesaj,
            Some(501),
            &decision(Reason::Consent),
        );
        t.record(
            at("2026-12-03T21:00:01Z"),
            brand,
            Channel::Eposta,
            None,
            &decision(Reason::Withdrawn),
        );
        book.add(&mut t);
        assert!(t.is_empty());
        let dec3 = book.day(Day::parse("2026-12-03").unwrap()).unwrap();
        assert_eq!(dec3.total, 3);
        assert_eq!(dec3.rows[0].decision, Verdict::Refuse.as_str());
        let dec4 = book.day(Day::parse("2026-12-04").unwrap()).unwrap();
        assert_eq!(dec4.total, 2);
        assert_eq!(dec4.rows[0].dealer, Some(501));
        assert!(book.day(Day::parse("2026-12-05").unwrap()).is_none());
        book.flush();
        drop(book);
        let again = ReportBook::open(cfg.clone());
        assert_eq!(again.day(Day::parse("2026-12-04").unwrap()).unwrap(), dec4);
        assert_eq!(
            read_day(
                cfg.path.as_ref().unwrap(),
                Day::parse("2026-12-03").unwrap()
            )
            .unwrap(),
            Some(dec3.clone())
        );
        assert_eq!(
            to_csv(&dec3),
            "date,brand,channel,decision,reason,dealer,count\n2026-12-03,700001/100001,MESAJ,refuse,no_consent,,3\n"
        );
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "{not json").unwrap();
        let book = ReportBook::open(ReportConfig {
            path: Some(path.clone()),
            retention_days: 10,
        });
        assert!(book.day(Day::today()).is_none());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("reports.json.unreadable")).unwrap(),
            "{not json"
        );
    }
}
