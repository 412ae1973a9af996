//! What a reconciliation found, as JSON (the admin endpoint, `--format json`)
//! and as text (`--format text`), and the statistics of its sample.

use serde::{Deserialize, Serialize};

/// Confidence of the error bound.
pub const CONFIDENCE: f64 = 0.95;

/// The one-sided exact (Clopper–Pearson) upper bound, at [`CONFIDENCE`], on
/// a rate of which `k` in `n` random draws were found: the largest rate `p`
/// for which seeing `k` or fewer would still have had a 5 % chance. For
/// `k = 0` that is `1 - 0.05^(1/n)`, about `3/n` (the "rule of three").
/// `None` for an empty sample.
pub fn upper_bound(k: u64, n: u64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    if k >= n {
        return Some(1.0);
    }
    let alpha = 1.0 - CONFIDENCE;
    if k == 0 {
        return Some(1.0 - alpha.powf(1.0 / n as f64));
    }
    // P(X <= k) falls as p grows: bisect for P(X <= k) = alpha.
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if binomial_cdf(k, n, mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// P(X <= k) for X ~ Binomial(n, p), summed in log space.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // log C(n, i) built up term by term.
    let mut log_choose = 0.0f64;
    let mut sum = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (log_choose + i as f64 * lp + (n - i) as f64 * lq).exp();
    }
    sum.min(1.0)
}

/// One difference between the gate and the registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mismatch {
    /// `status` (ONAY/RET/none differ), `dealers` (the dealers allowed
    /// differ) or `day` (a day's movement file lists other changes than the
    /// gate applied).
    pub kind: String,
    /// Where it was found: `sample_held`, `sample_absent` or `movement_file`.
    pub found_by: String,
    /// Channel (absent for `day`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Recipient type (absent for `day`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    /// The recipient, masked (absent for `day`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The registry day (`day`, and `movement_file` findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// What the gate holds.
    pub gate: String,
    /// What the registry holds.
    pub registry: String,
}

/// One part of the sample.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SamplePart {
    /// Tuples checked with `consents/status`.
    pub checked: u64,
    /// Of these, how many differed.
    pub mismatches: u64,
    /// Changed in the registry after the gate's data was current (created
    /// after its last complete sync less the feed lag): not counted either way.
    pub in_flight: u64,
    /// 95 % upper bound on the mismatch rate ([`upper_bound`]); null for an
    /// empty sample.
    pub upper_bound_95: Option<f64>,
}

/// The sample check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SampleReport {
    /// Tuples the store holds (ONAY and RET), drawn at random.
    pub held: SamplePart,
    /// Tuples the store does not hold: other channels and types of sampled
    /// addresses, and random mobile numbers.
    pub absent: SamplePart,
    /// E-mail tuples held, which cannot be sampled (the store keeps a hash of
    /// each e-mail address, not the address); the movement files still
    /// cover e-mails changed in the last 7 days.
    pub eposta_held_not_sampled: u64,
    /// How the bound is computed.
    pub method: String,
}

/// One day's movement file against the gate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DayReport {
    /// `YYYY-MM-DD`, Turkey time.
    pub date: String,
    /// `compared`, `not_available` (the registry refused the file: today, or
    /// outside its 7 days) or `before_ledger` (the gate's ledger began after
    /// the day ended: only the state check applies).
    pub result: String,
    /// Changes in the file.
    pub registry_changes: u64,
    /// Of these, the ones in the compared window, `[HS, IYS]`.
    pub registry_in_window: [u64; 2],
    /// Changes the gate applied in the same window, `[HS, IYS]`.
    pub gate_applied: [u64; 2],
    /// True when counts and hashes agree on both feeds.
    pub matches: bool,
    /// The registry's message when the file was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The movement-file check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MovementReport {
    /// One entry per day asked for, oldest first.
    pub days: Vec<DayReport>,
    /// Tuples whose newest change in the files was checked against the store.
    pub tuples_checked: u64,
    /// Of these, how many the store holds differently.
    pub mismatches: u64,
    /// Tuples changed after the gate's data was current: not checked.
    pub in_flight: u64,
    /// The gate's ledger counts changes created from this time on.
    pub ledger_since: String,
}

/// A reconciliation's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// `iys/brand`.
    pub brand: String,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// Seconds it took.
    pub seconds: f64,
    /// The snapshot version compared.
    pub snapshot_version: u64,
    /// When the brand's data was last known current.
    pub synced_at: Option<String>,
    /// Registry requests made.
    pub requests: u64,
    /// The budget they kept to.
    pub budget_rps: f64,
    /// The sample check.
    pub sample: SampleReport,
    /// The movement-file check.
    pub movement: MovementReport,
    /// Every difference found (recipients masked).
    pub mismatches: Vec<Mismatch>,
    /// True when nothing differed.
    pub ok: bool,
}

impl Report {
    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let bound = |b: Option<f64>| b.map_or("n/a".to_string(), |b| format!("{:.4}", b));
        out.push_str(&format!(
            "reconciliation of brand {} (snapshot {}, synced at {}): {}\n",
            self.brand,
            self.snapshot_version,
            self.synced_at.as_deref().unwrap_or("never"),
            if self.ok {
                "no mismatches"
            } else {
                "MISMATCHES FOUND"
            }
        ));
        out.push_str(&format!(
            "  {} registry requests at {} per second, {:.1} s\n",
            self.requests, self.budget_rps, self.seconds
        ));
        for (name, part) in [("held", &self.sample.held), ("absent", &self.sample.absent)] {
            out.push_str(&format!(
                "  sample {name:6}: {} checked, {} mismatches, {} in flight; 95% upper bound on the mismatch rate {}\n",
                part.checked, part.mismatches, part.in_flight, bound(part.upper_bound_95)
            ));
        }
        if self.sample.eposta_held_not_sampled > 0 {
            out.push_str(&format!(
                "  {} e-mail tuples held are not sampled (the store keeps only a hash of e-mail addresses)\n",
                self.sample.eposta_held_not_sampled
            ));
        }
        out.push_str(&format!(
            "  movement files: {} tuples checked, {} mismatches, {} in flight (ledger since {})\n",
            self.movement.tuples_checked,
            self.movement.mismatches,
            self.movement.in_flight,
            self.movement.ledger_since
        ));
        for d in &self.movement.days {
            out.push_str(&format!(
                "    {} {:13} file {:6}  window HS {}/{} IYS {}/{} (registry/gate){}\n",
                d.date,
                d.result,
                d.registry_changes,
                d.registry_in_window[0],
                d.gate_applied[0],
                d.registry_in_window[1],
                d.gate_applied[1],
                if d.result == "compared" && !d.matches {
                    "  DIFFERS"
                } else {
                    ""
                }
            ));
        }
        for m in &self.mismatches {
            out.push_str(&format!(
                "  MISMATCH {} ({}): {} {} {} {} gate={} registry={}\n",
                m.kind,
                m.found_by,
                m.date.as_deref().unwrap_or("-"),
                m.channel.as_deref().unwrap_or("-"),
                m.recipient_type.as_deref().unwrap_or("-"),
                m.recipient.as_deref().unwrap_or("-"),
                m.gate,
                m.registry
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(upper_bound(0, 0), None);
        // Rule of three: 0 in 300 → about 1 %.
        let b = upper_bound(0, 300).unwrap();
        assert!((b - 0.00994).abs() < 1e-4, "{b}");
        assert!((b - 3.0 / 300.0).abs() < 1e-3);
        // Known Clopper–Pearson values: 1 in 100 → 0.0466, 5 in 50 → 0.1981.
        assert!((upper_bound(1, 100).unwrap() - 0.0466).abs() < 1e-3);
        assert!((upper_bound(5, 50).unwrap() - 0.1981).abs() < 1e-3);
        assert_eq!(upper_bound(3, 3), Some(1.0));
    }
}
