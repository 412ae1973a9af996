//! The web console: static files embedded in the binary (served at `/` and
//! `/console/...` without a token: they hold no data) and the read-role JSON
//! endpoints the page polls: `/v1/rates` (decisions per second by channel and
//! reason, from `iys_gate_decisions_total`), `/v1/sessions` (SMPP/SMTP/SIP
//! from the gauges the protocols keep) and `/v1/refusals` (the latest
//! refusals, masked, from the audit writer's ring). Authorization happens in
//! `routes.rs` before any of these runs.
//!
//! The page's script and style come from the binary only: a strict
//! Content-Security-Policy (`default-src 'none'`, script, style, image and
//! fetch from this origin only, no framing) rules out inline script and
//! anything from the net. The files are revalidated on each load (`no-cache`
//! with an `ETag`), so a new binary's console is picked up at once; the JSON
//! answers are `no-store` (they may carry masked personal data).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use super::AdminState;
use crate::observe::recent::RecentRefusals;

/// The console's Content-Security-Policy: everything from this origin only,
/// no inline script or style, no plugins, no framing, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("console/index.html"),
    },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("console/app.js"),
    },
    Asset {
        path: "/console/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("console/app.css"),
    },
    Asset {
        path: "/console/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("console/icon.svg"),
    },
];

/// True for a path the console serves a file at.
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// The embedded file at `path` (see [`is_asset`]): 200, or 304 when the
/// client's `If-None-Match` names the current version.
pub fn asset(path: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return json(StatusCode::NOT_FOUND, json!({"error": "no such file"}));
    };
    let etag = format!("\"{:016x}\"", fnv1a(a.body));
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Full::new(Bytes::from_static(a.body)))
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, hv(a.content_type));
    h.insert(CACHE_CONTROL, hv("no-cache"));
    if let Ok(v) = etag.parse() {
        h.insert(ETAG, v);
    }
    security_headers(h);
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(CONTENT_SECURITY_POLICY, hv(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, hv("nosniff"));
    h.insert(X_FRAME_OPTIONS, hv("DENY"));
    h.insert(REFERRER_POLICY, hv("no-referrer"));
}

fn hv(s: &'static str) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_static(s)
}

/// 64-bit FNV-1a: the files' version for `ETag`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A JSON answer that no cache keeps.
fn json(status: StatusCode, value: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{value}\n"))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, hv("application/json"));
    h.insert(CACHE_CONTROL, hv("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, hv("nosniff"));
    r
}

/// What the console's endpoints keep between requests.
#[derive(Debug, Default)]
pub struct ConsoleState {
    /// The latest refusals, fed by the audit writer.
    pub recent: RecentRefusals,
    /// Decision counter samples for `/v1/rates`.
    rates: Mutex<VecDeque<RateSample>>,
}

impl ConsoleState {
    /// With the ring the audit writer feeds.
    pub fn new(recent: RecentRefusals) -> Self {
        ConsoleState {
            recent,
            rates: Mutex::new(VecDeque::new()),
        }
    }
}

/// The span `/v1/rates` averages over.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Samples closer together than this are not kept (several consoles polling).
const SAMPLE_SPACING: Duration = Duration::from_secs(1);

/// `(channel, decision, reason, source)`.
type SeriesKey = (String, String, String, String);

#[derive(Debug)]
struct RateSample {
    at: Instant,
    totals: HashMap<SeriesKey, f64>,
}

/// `/v1/rates`: per (channel, decision, reason, source) the total since the
/// gate started and the rate per second over about the last minute. The
/// rate compares the counters with the oldest sample of the last minute
/// kept from earlier requests (every request samples, at most one a
/// second; after a longer pause, the newest sample before it), so the
/// first request answers `null` rates.
pub fn rates(state: &AdminState) -> Response<Full<Bytes>> {
    let text = state.metrics.render();
    let mut totals: HashMap<SeriesKey, f64> = HashMap::new();
    for s in text.lines().filter_map(parse_sample) {
        if s.name != "iys_gate_decisions_total" {
            continue;
        }
        let key = (
            s.label("channel").to_string(),
            s.label("decision").to_string(),
            s.label("reason").to_string(),
            s.label("source").to_string(),
        );
        *totals.entry(key).or_default() += s.value;
    }
    let mut samples = state
        .console
        .rates
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let body = rates_body(&mut samples, Instant::now(), totals);
    drop(samples);
    json(StatusCode::OK, body)
}

/// The `/v1/rates` answer for `totals` read at `now`, against the kept
/// `samples` (which it updates).
fn rates_body(
    samples: &mut VecDeque<RateSample>,
    now: Instant,
    totals: HashMap<SeriesKey, f64>,
) -> Value {
    while samples.len() >= 2 && now.duration_since(samples[1].at) > RATE_WINDOW {
        samples.pop_front();
    }
    // The oldest sample of the window; after a longer pause between
    // requests, the newest one before it.
    let age = |s: &RateSample| now.duration_since(s.at);
    let reference = samples
        .iter()
        .find(|s| (SAMPLE_SPACING..=RATE_WINDOW).contains(&age(s)))
        .or_else(|| samples.iter().rev().find(|s| age(s) >= SAMPLE_SPACING));
    let span = reference.map(|r| now.duration_since(r.at).as_secs_f64());
    let mut series: Vec<(&SeriesKey, f64)> = totals
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| (k, *v))
        .collect();
    series.sort_by(|a, b| a.0.cmp(b.0));
    let mut per_channel: BTreeMap<&str, (f64, Option<f64>)> = BTreeMap::new();
    let rows: Vec<Value> = series
        .iter()
        .map(|(k, total)| {
            let rate = reference.zip(span).map(|(r, span)| {
                let before = r.totals.get(*k).copied().unwrap_or(0.0);
                // A counter never goes down; if it did (a restart), count from 0.
                let delta = if *total >= before {
                    total - before
                } else {
                    *total
                };
                delta / span
            });
            let c = per_channel.entry(k.0.as_str()).or_insert((0.0, Some(0.0)));
            c.0 += total;
            c.1 = c.1.zip(rate).map(|(a, b)| a + b);
            json!({
                "channel": k.0, "decision": k.1, "reason": k.2, "source": k.3,
                "total": total, "per_second": rate,
            })
        })
        .collect();
    let channels: serde_json::Map<String, Value> = per_channel
        .into_iter()
        .map(|(c, (total, rate))| {
            (
                c.to_string(),
                json!({"total": total, "per_second": if span.is_some() { rate } else { None }}),
            )
        })
        .collect();
    let body = json!({
        "window_seconds": span,
        "series": rows,
        "per_channel": channels,
    });
    if samples
        .back()
        .is_none_or(|s| now.duration_since(s.at) >= SAMPLE_SPACING)
    {
        samples.push_back(RateSample { at: now, totals });
    }
    body
}

/// `/v1/sessions`: what each protocol gate holds open now, from its gauges.
/// A protocol that is not running here is `null`. The SIP gate is a
/// stateless proxy: it holds no sessions, so it shows its message counts.
pub fn sessions(state: &AdminState) -> Response<Full<Bytes>> {
    let text = state.metrics.render();
    let mut found: HashMap<&str, f64> = HashMap::new();
    let (mut invites, mut answers, mut sip_seen) = (0.0, 0.0, false);
    let mut refusals = 0.0;
    for s in text.lines().filter_map(parse_sample) {
        match s.name {
            "iys_gate_smpp_sessions"
            | "iys_gate_smpp_in_flight"
            | "iys_gate_smtp_policy_connections"
            | "iys_gate_smtp_hop_sessions" => {
                *found.entry(s.name).or_default() += s.value;
            }
            "iys_gate_sip_messages_total" => {
                sip_seen = true;
                if s.label("message") == "INVITE" {
                    invites += s.value;
                }
            }
            "iys_gate_sip_answers_total" => {
                sip_seen = true;
                answers += s.value;
                // The gate's own 4xx/6xx answers are its refusals.
                if matches!(s.label("code").as_bytes().first(), Some(b'4' | b'6')) {
                    refusals += s.value;
                }
            }
            _ => {}
        }
    }
    let get = |n: &str| found.get(n).copied();
    let body = json!({
        "smpp": get("iys_gate_smpp_sessions").map(|s| json!({
            "sessions": s,
            "in_flight": get("iys_gate_smpp_in_flight"),
        })),
        "smtp_policy": get("iys_gate_smtp_policy_connections").map(|c| json!({"connections": c})),
        "smtp_hop": get("iys_gate_smtp_hop_sessions").map(|s| json!({"sessions": s})),
        "sip": sip_seen.then(|| json!({
            "stateless": true,
            "invites_received": invites,
            "answers_given": answers,
            "refusal_answers": refusals,
        })),
    });
    json(StatusCode::OK, body)
}

/// Most refusals one `/v1/refusals` answer carries.
pub const MAX_REFUSALS_LIMIT: usize = crate::observe::recent::RECENT_REFUSALS;

/// `/v1/refusals?limit=N`: the latest refusals, newest first, masked. On a
/// bad `limit`, the error names it.
pub fn refusals(state: &AdminState, query: Option<&str>) -> Response<Full<Bytes>> {
    let mut limit = 50;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "limit" {
            match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_REFUSALS_LIMIT).contains(&n) => limit = n,
                _ => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!(
                            "limit must be a number from 1 to {MAX_REFUSALS_LIMIT}, got {:?}",
                            v.chars().take(20).collect::<String>()
                        )}),
                    )
                }
            }
        }
    }
    let latest = state.console.recent.latest(limit);
    json(
        StatusCode::OK,
        serde_json::to_value(latest).unwrap_or(Value::Null),
    )
}

/// One line of the Prometheus text format.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Parse `name{label="value",...} value [timestamp]`; `None` for comments,
/// blank lines and anything that does not read.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start_matches([',', ' ']);
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = r.find('=')?;
            let key = r[..eq].trim();
            let mut chars = r[eq + 1..].strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key, value));
            r = &r[eq + 1..][1 + end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_lines() {
        let s = parse_sample(
            r#"iys_gate_decisions_total{channel="MESAJ",decision="refuse",reason="no_consent",source="traffic"} 3"#,
        )
        .unwrap();
        assert_eq!(s.name, "iys_gate_decisions_total");
        assert_eq!(s.label("reason"), "no_consent");
        assert_eq!(s.label("source"), "traffic");
        assert_eq!(s.value, 3.0);
        let s = parse_sample("iys_gate_smpp_sessions 2").unwrap();
        assert_eq!(
            (s.name, s.value, s.labels.len()),
            ("iys_gate_smpp_sessions", 2.0, 0)
        );
        let s = parse_sample(r#"x{a="q\"uo,te}",b="\\"} 1.5 1700000000"#).unwrap();
        assert_eq!(s.label("a"), "q\"uo,te}");
        assert_eq!(s.label("b"), "\\");
        assert_eq!(s.value, 1.5);
        assert_eq!(parse_sample("# TYPE x counter"), None);
        assert_eq!(parse_sample(""), None);
        assert_eq!(parse_sample(r#"x{a="unterminated} 1"#), None);
        assert_eq!(parse_sample("x{a=1} 1"), None);
        assert_eq!(parse_sample("x notanumber"), None);
    }

    #[test]
    fn every_asset_has_a_type_and_the_page_loads_only_its_own_files() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for a in &ASSETS[1..] {
            assert!(page.contains(a.path), "index.html does not load {}", a.path);
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<script>"), "inline script breaks the CSP");
        assert!(!page.contains("style="), "inline style breaks the CSP");
    }

    fn totals(v: &[(&str, &str, f64)]) -> HashMap<SeriesKey, f64> {
        v.iter()
            .map(|(channel, reason, n)| {
                let key = (
                    channel.to_string(),
                    "refuse".to_string(),
                    reason.to_string(),
                    "traffic".to_string(),
                );
                (key, *n)
            })
            .collect()
    }

    #[test]
    fn rates_compare_with_a_sample_about_a_window_old() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut samples = VecDeque::new();
        // First request: totals, no rate yet; series at 0 are left out.
        let b = rates_body(
            &mut samples,
            t0,
            totals(&[("MESAJ", "withdrawn", 10.0), ("ARAMA", "withdrawn", 0.0)]),
        );
        assert_eq!(b["window_seconds"], Value::Null);
        assert_eq!(b["series"].as_array().unwrap().len(), 1);
        assert_eq!(b["series"][0]["total"], 10.0);
        assert_eq!(b["series"][0]["per_second"], Value::Null);
        assert_eq!(b["per_channel"]["MESAJ"]["per_second"], Value::Null);
        // Half a second later: still too close to compare, and not kept.
        let b = rates_body(
            &mut samples,
            ms(500),
            totals(&[("MESAJ", "withdrawn", 11.0)]),
        );
        assert_eq!(b["window_seconds"], Value::Null);
        assert_eq!(samples.len(), 1);
        // 10 s on, 20 more: 2 per second; a new series counts from 0.
        let b = rates_body(
            &mut samples,
            at(10),
            totals(&[("MESAJ", "withdrawn", 30.0), ("MESAJ", "no_consent", 5.0)]),
        );
        assert_eq!(b["window_seconds"], 10.0);
        let rate = |b: &Value, reason: &str| {
            b["series"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["reason"] == reason)
                .map(|s| s["per_second"].as_f64().unwrap())
                .unwrap()
        };
        assert_eq!(rate(&b, "withdrawn"), 2.0);
        assert_eq!(rate(&b, "no_consent"), 0.5);
        assert_eq!(b["per_channel"]["MESAJ"]["per_second"], 2.5);
        assert_eq!(b["per_channel"]["MESAJ"]["total"], 35.0);
        // 100 s on, nothing in the last minute: compared with the newest
        // sample before it (10 s); the older one is dropped.
        let b = rates_body(
            &mut samples,
            at(100),
            totals(&[("MESAJ", "withdrawn", 120.0)]),
        );
        assert_eq!(b["window_seconds"], 90.0);
        assert_eq!(rate(&b, "withdrawn"), 1.0);
        assert_eq!(samples.len(), 2);
        // The oldest sample of the window (100 s) now; a counter that went
        // down (a restart) counts from 0.
        let b = rates_body(
            &mut samples,
            at(110),
            totals(&[("MESAJ", "withdrawn", 20.0)]),
        );
        assert_eq!(b["window_seconds"], 10.0);
        assert_eq!(rate(&b, "withdrawn"), 2.0);
    }

    #[test]
    fn an_unchanged_file_answers_304() {
        let r = asset("/console/app.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()[ETAG].clone();
        assert_eq!(r.headers()[CONTENT_SECURITY_POLICY], CSP);
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, etag);
        assert_eq!(
            asset("/console/app.js", &h).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
