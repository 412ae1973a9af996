//! Admin routes. Each answers JSON (or Prometheus text) and never a recipient
//! address in clear.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use metrics::{counter, gauge};
use serde_json::json;

use super::access::AccessRecord;
use super::auth::{Caller, Token};
use super::AdminState;
use crate::config::Role;
use crate::consent::{
    address_key, mask_text, Address, Brand, Channel, ConsentTime, MessageClass, RecipientType,
};
use crate::policy::{decide, Request as DecisionRequest};
use crate::store::key_index;
use crate::sync::push;

const MAX_WEBHOOK_BODY: usize = 8 << 20;

/// Route one request (`peer`: the client, for the access log). Each is
/// counted in `iys_gate_admin_requests_total{path,result}`.
pub async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let label = match path.as_str() {
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/v1/check" => "/v1/check",
        "/v1/status" => "/v1/status",
        "/v1/webhook" => "/v1/webhook",
        "/v1/rates" => "/v1/rates",
        "/v1/sessions" => "/v1/sessions",
        "/v1/refusals" => "/v1/refusals",
        p if super::console::is_asset(p) => "console",
        "/v1/report" => "/v1/report",
        "/v1/reconcile" => "/v1/reconcile",
        _ => "other",
    };
    let response = route(state, req, &path, peer).await;
    let result = match response.status() {
        StatusCode::OK | StatusCode::NOT_MODIFIED => "ok",
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "other",
    };
    counter!("iys_gate_admin_requests_total", "path" => label, "result" => result).increment(1);
    response
}

async fn route(
    state: &AdminState,
    req: Request<Incoming>,
    path: &str,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    match (req.method(), path) {
        (&Method::GET, "/metrics") => {
            if !state.metrics_open {
                if let Err(d) = authorize(state, req.headers(), Role::Metrics, "/metrics") {
                    return d.response();
                }
            }
            metrics_page(state)
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => readyz(state),
        (&Method::GET, "/v1/check") => check_access(state, &req, peer),
        (&Method::GET, "/v1/status") => {
            match authorize(state, req.headers(), Role::Read, "/v1/status") {
                Ok(_) => status(state),
                Err(d) => d.response(),
            }
        }
        (&Method::POST, "/v1/webhook") => webhook(state, req).await,
        (&Method::GET | &Method::HEAD, p) if super::console::is_asset(p) => {
            if state.console_enabled {
                super::console::asset(p, req.headers())
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "the web console is off (admin.console = false)",
                )
            }
        }
        (&Method::GET, "/v1/rates" | "/v1/sessions") => {
            match authorize(state, req.headers(), Role::Read, path) {
                Ok(_) if path == "/v1/rates" => super::console::rates(state),
                Ok(_) => super::console::sessions(state),
                Err(d) => d.response(),
            }
        }
        (&Method::GET, "/v1/refusals") => refusals_access(state, &req, peer),
        (_, "/v1/rates" | "/v1/sessions" | "/v1/refusals") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this path",
        ),
        (&Method::GET, "/v1/report") => report_access(state, &req, peer),
        (&Method::POST, "/v1/reconcile") => reconcile(state, &req, peer).await,
        (_, "/v1/reconcile") => error(StatusCode::METHOD_NOT_ALLOWED, "use POST /v1/reconcile"),
        (
            _,
            "/metrics" | "/healthz" | "/readyz" | "/v1/check" | "/v1/status" | "/v1/webhook"
            | "/v1/report",
        ) => {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path",
            )
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such path: try /metrics, /healthz, /readyz, /v1/check, /v1/status, /v1/report, /v1/webhook",
        ),
    }
}

/// Why a request was refused access.
enum Denied {
    /// No token, or an unknown one: 401 with `WWW-Authenticate: Bearer`.
    Unauthorized(String),
    /// A token (its name) whose role is too small: 403.
    Forbidden(String, String),
}

impl Denied {
    fn response(self) -> Response<Full<Bytes>> {
        match self {
            Denied::Unauthorized(message) => {
                let mut r = error(StatusCode::UNAUTHORIZED, message);
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static("Bearer"),
                );
                r
            }
            Denied::Forbidden(_, message) => error(StatusCode::FORBIDDEN, message),
        }
    }
}

/// The token these headers carry when its role is `need` or above; else
/// why not: no or an unknown token (401), a token whose role is below
/// `need` (403).
fn authorize<'a>(
    state: &'a AdminState,
    headers: &hyper::HeaderMap,
    need: Role,
    path: &str,
) -> Result<&'a Token, Denied> {
    let needs = match need {
        Role::Metrics => "metrics, read or admin",
        Role::Read => "read or admin",
        Role::Admin => "admin",
    };
    if state.tokens.is_empty() {
        return Err(Denied::Unauthorized(format!(
            "{path} needs a bearer token with role {needs}, and none is configured: \
             add an [[admin.tokens]] entry (name, token_file or token_env, role = \"read\") \
             to the config and send it as Authorization: Bearer <token>"
        )));
    }
    match state.tokens.caller(headers) {
        Caller::Anonymous => Err(Denied::Unauthorized(format!(
            "{path} needs Authorization: Bearer <token> with role {needs}"
        ))),
        Caller::Unknown => Err(Denied::Unauthorized("unknown bearer token".into())),
        Caller::Known(t) if t.role >= need => Ok(t),
        Caller::Known(t) => Err(Denied::Forbidden(
            t.name.clone(),
            format!(
                "token {:?} has role {}; {path} needs role {needs}",
                t.name,
                t.role.as_str()
            ),
        )),
    }
}

/// `/v1/check` behind its token and the token's rate limit; every request
/// gets one access-log line, whatever the answer.
fn check_access(
    state: &AdminState,
    req: &Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("");
    let (response, mut record) = match authorize(state, req.headers(), Role::Read, "/v1/check") {
        Err(d) => {
            let name = match &d {
                Denied::Forbidden(name, _) => Some(name.clone()),
                Denied::Unauthorized(_) => None,
            };
            let r = d.response();
            let mut record = AccessRecord::now("/v1/check", r.status().as_u16());
            record.token = name;
            (r, record)
        }
        Ok(token) => {
            let (response, mut record) = match token.take_check(Instant::now()) {
                Ok(()) => check(state, query),
                Err(wait) => {
                    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "token {:?} is over its /v1/check rate limit; retry in {secs}s",
                            token.name
                        ),
                    );
                    if let Ok(v) = secs.to_string().parse() {
                        r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
                    }
                    (r, AccessRecord::now("/v1/check", 429))
                }
            };
            record.token = Some(token.name.clone());
            (response, record)
        }
    };
    if record.recipient.is_none() {
        // Not decided: what was asked, as far as it reads (masked).
        let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let short = |k: &str| {
            q.get(k)
                .map(|v| v.trim().chars().take(32).collect::<String>())
        };
        let channel = q
            .get("channel")
            .and_then(|c| c.trim().parse::<Channel>().ok());
        record.recipient = q.get("recipient").map(|r| {
            channel
                .and_then(|c| Address::parse_for(c, r).ok())
                .map(|a| a.masked())
                .unwrap_or_else(|| mask_text(r))
        });
        record.channel = short("channel");
        if let (Some(i), Some(b)) = (short("iys_code"), short("brand_code")) {
            record.brand = Some(format!("{i}/{b}"));
        }
    }
    record.peer = peer.map(|p| p.ip().to_string());
    state.access.write(&record);
    response
}

/// `/v1/refusals` behind its token; the latest refusals carry (masked)
/// recipients, so each read gets an access-log line naming the token.
fn refusals_access(
    state: &AdminState,
    req: &Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let (response, token) = match authorize(state, req.headers(), Role::Read, "/v1/refusals") {
        Ok(t) => (
            super::console::refusals(state, req.uri().query()),
            Some(t.name.clone()),
        ),
        Err(Denied::Forbidden(name, message)) => (
            Denied::Forbidden(name.clone(), message).response(),
            Some(name),
        ),
        Err(d) => (d.response(), None),
    };
    let mut record = AccessRecord::now("/v1/refusals", response.status().as_u16());
    record.token = token;
    record.peer = peer.map(|p| p.ip().to_string());
    state.access.write(&record);
    response
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    text(status, "application/json", format!("{value}\n"))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, json!({ "error": message.into() }))
}

/// `/metrics`: the data age and `iys_gate_ready` are brought up to date
/// first, so a scrape sees them as of now even when no sync round has run
/// for a while (registry down and backing off, or no registry at all).
fn metrics_page(state: &AdminState) -> Response<Full<Bytes>> {
    state.store.update_age_gauge(ConsentTime::now());
    let ready = readiness(state).is_ok();
    gauge!("iys_gate_ready").set(if ready { 1.0 } else { 0.0 });
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        state.metrics.render(),
    )
}

fn readyz(state: &AdminState) -> Response<Full<Bytes>> {
    let fleet = state.fleet.as_ref().map(|f| f.state.status_json());
    match readiness(state) {
        Ok(version) => {
            let mut body = json!({"ready": true, "snapshot_version": version});
            if let Some(f) = fleet {
                body["fleet"] = f;
            }
            json_response(StatusCode::OK, body)
        }
        Err(mut why) => {
            if let Some(f) = fleet {
                why["fleet"] = f;
            }
            json_response(StatusCode::SERVICE_UNAVAILABLE, why)
        }
    }
}

/// Ready (the snapshot version) when the gate is not draining, a snapshot is
/// loaded and every followed brand's data is younger than
/// `policy.max_data_age`; otherwise the body of
/// the 503 answer, saying why. `/readyz` answers with it and `/metrics`
/// exports it as `iys_gate_ready` (1/0).
fn readiness(state: &AdminState) -> Result<u64, serde_json::Value> {
    if state.drain.is_draining() {
        // Taken out of the load balancer while the sessions drain.
        return Err(json!({"ready": false, "reason": "draining (shutting down)"}));
    }
    let Some(s) = state.store.load() else {
        return Err(json!({"ready": false, "reason": "no snapshot loaded"}));
    };
    if state
        .fleet
        .as_ref()
        .is_some_and(|f| !f.state.bootstrapped())
    {
        return Err(
            json!({"ready": false, "reason": "fleet: loading the snapshot and catching up with the change stream"}),
        );
    }
    let now = ConsentTime::now();
    let mut stale = Vec::new();
    for b in &state.brands {
        let age = s
            .brand(*b)
            .and_then(|e| e.sync.synced_at)
            .map(|t| now.unix() - t.unix());
        let fresh = match (age, state.policy.max_data_age_secs) {
            (_, None) => true,
            (Some(age), Some(max)) => age <= max,
            (None, Some(_)) => false,
        };
        if !fresh {
            stale.push(json!({"brand": b.to_string(), "data_age_seconds": age}));
        }
    }
    if stale.is_empty() {
        Ok(s.version)
    } else {
        Err(
            json!({"ready": false, "reason": "data older than policy.max_data_age", "stale": stale}),
        )
    }
}

fn check(state: &AdminState, query: &str) -> (Response<Full<Bytes>>, AccessRecord) {
    let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
    let number = |name: &'static str| -> Result<Option<u32>, String> {
        field(name)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{name} must be a positive integer, got {v:?}"))
            })
            .transpose()
    };
    let parsed = (|| -> Result<(DecisionRequest, String), String> {
        let iys = number("iys_code")?.ok_or("iys_code is required")?;
        let brand = number("brand_code")?.ok_or("brand_code is required")?;
        let channel: Channel = field("channel")
            .ok_or("channel is required (MESAJ, ARAMA or EPOSTA)")?
            .parse()
            .map_err(|e: crate::consent::InvalidValue| e.to_string())?;
        let recipient = field("recipient").ok_or("recipient is required")?;
        let rtype: RecipientType = match field("recipient_type") {
            Some(v) => v
                .parse()
                .map_err(|e: crate::consent::InvalidValue| e.to_string())?,
            None => RecipientType::Bireysel,
        };
        let class = match field("message_type") {
            Some(v) => v.parse::<MessageClass>().map_err(|e| e.to_string())?,
            None => MessageClass::Commercial(rtype),
        };
        let address = address_key(channel, recipient).map_err(|e| format!("recipient: {e}"))?;
        let retailer = number("retailer_code")?;
        let masked = Address::parse_for(channel, recipient)
            .map(|a| a.masked())
            .unwrap_or_else(|_| mask_text(recipient));
        Ok((
            DecisionRequest {
                brand: Brand::new(iys, brand),
                channel,
                class,
                address: Some(address),
                retailer,
            },
            masked,
        ))
    })();
    let (req, masked) = match parsed {
        Ok(p) => p,
        Err(message) => {
            return (
                error(StatusCode::BAD_REQUEST, message),
                AccessRecord::now("/v1/check", 400),
            )
        }
    };
    let snapshot = state.store.guard();
    let d = decide(snapshot.as_deref(), &state.policy, ConsentTime::now(), &req);
    let mut tally = crate::observe::metrics::DecisionTally::default();
    tally.record(req.channel, &d);
    state.decisions.add(&mut tally);
    let mut record = AccessRecord::now("/v1/check", 200);
    record.brand = Some(req.brand.to_string());
    record.channel = Some(req.channel.to_string());
    record.recipient = Some(masked.clone());
    record.decision = Some(d.verdict.as_str());
    record.reason = Some(d.reason.as_str());
    record.snapshot_version = Some(d.snapshot_version);
    let response = json_response(
        StatusCode::OK,
        json!({
            "decision": d.verdict,
            "reason": d.reason,
            "enforced_decision": d.enforced(),
            "monitor": d.monitor,
            "snapshot_version": d.snapshot_version,
            "data_age_seconds": d.data_age_seconds,
            "brand": req.brand.to_string(),
            "channel": req.channel,
            "message_type": req.class.code(),
            "recipient": masked,
        }),
    );
    (response, record)
}

fn status(state: &AdminState) -> Response<Full<Bytes>> {
    let Some(s) = state.store.load() else {
        return json_response(
            StatusCode::OK,
            json!({"snapshot_version": null, "brands": []}),
        );
    };
    let now = ConsentTime::now();
    let brands: Vec<serde_json::Value> = s
        .brands()
        .into_iter()
        .filter_map(|b| s.brand(b).map(|e| (b, e)))
        .map(|(b, e)| {
            let mut tuples = serde_json::Map::new();
            for ch in Channel::ALL {
                for rt in RecipientType::ALL {
                    let (onay, ret) = e.sets[key_index(*ch, *rt)].tuples();
                    tuples.insert(format!("{ch}/{rt}"), json!({"onay": onay, "ret": ret}));
                }
            }
            json!({
                "iys_code": b.iys_code,
                "brand_code": b.brand_code,
                "followed": state.brands.contains(&b),
                "cursor_hs": e.sync.cursor_hs,
                "cursor_iys": e.sync.cursor_iys,
                "synced_at": e.sync.synced_at,
                "data_age_seconds": e.sync.synced_at.map(|t| now.unix() - t.unix()),
                "changes_applied": e.sync.changes_applied,
                "tuples": tuples,
            })
        })
        .collect();
    let per_channel = s.tuples_per_channel();
    let mut body = json!({
        "snapshot_version": s.version,
        "published_at": s.published_at,
        "monitor": state.policy.monitor,
        "max_data_age_seconds": state.policy.max_data_age_secs,
        "tuples": {"MESAJ": per_channel[0], "ARAMA": per_channel[1], "EPOSTA": per_channel[2]},
        "store_bytes": s.heap_bytes(),
        "brands": brands,
        "snapshot_file": state.store.persist_status(),
    });
    if let Some(f) = &state.fleet {
        body["fleet"] = f.state.status_json();
    }
    json_response(StatusCode::OK, body)
}

async fn webhook(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let result =
        |r: &'static str| counter!("iys_gate_webhook_requests_total", "result" => r).increment(1);
    let Some(secret) = &state.webhook_secret else {
        result("disabled");
        return error(
            StatusCode::NOT_FOUND,
            "the webhook is not configured ([webhook] secret)",
        );
    };
    let authorized = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| constant_time_eq(token.trim().as_bytes(), secret.as_bytes()));
    if !authorized {
        result("unauthorized");
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let body = match Limited::new(req.into_body(), MAX_WEBHOOK_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            result("bad_request");
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read body (limit {MAX_WEBHOOK_BODY} bytes): {e}"),
            );
        }
    };
    if let Some(fleet) = &state.fleet {
        return match fleet.push(&body).await {
            Ok(r) => {
                result("ok");
                json_response(StatusCode::OK, json!(r))
            }
            Err(crate::fleet::run::FleetPushError::Bad(e)) => {
                result("bad_request");
                error(StatusCode::BAD_REQUEST, e.to_string())
            }
            Err(e) => {
                result("unavailable");
                error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        };
    }
    match push::apply(&state.store, &body).await {
        Ok(r) => {
            result("ok");
            counter!("iys_gate_sync_changes_applied_total").increment(r.applied);
            json_response(StatusCode::OK, json!(r))
        }
        Err(e) => {
            result("bad_request");
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /v1/report?date=YYYY-MM-DD` (role read): the day's counts by brand,
/// channel, decision, reason and dealer (Turkey time); 404 when nothing was
/// counted that day. Written to the access log (who read reports).
fn report_access(
    state: &AdminState,
    req: &Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let (response, token) = match authorize(state, req.headers(), Role::Read, "/v1/report") {
        Err(d) => {
            let name = match &d {
                Denied::Forbidden(name, _) => Some(name.clone()),
                Denied::Unauthorized(_) => None,
            };
            (d.response(), name)
        }
        Ok(token) => (
            report(state, req.uri().query().unwrap_or("")),
            Some(token.name.clone()),
        ),
    };
    let mut record = AccessRecord::now("/v1/report", response.status().as_u16());
    record.token = token;
    record.peer = peer.map(|p| p.ip().to_string());
    state.access.write(&record);
    response
}

fn report(state: &AdminState, query: &str) -> Response<Full<Bytes>> {
    let date = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "date")
        .map(|(_, v)| v.trim().to_string());
    let Some(date) = date else {
        return error(
            StatusCode::BAD_REQUEST,
            "date is required: /v1/report?date=YYYY-MM-DD (Turkey time)",
        );
    };
    let day = match crate::observe::day::Day::parse(&date) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("date: {e}")),
    };
    match state.reports.day(day) {
        Some(r) => json_response(StatusCode::OK, json!(r)),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no decisions counted on {day} (Turkey time)"),
        ),
    }
}

/// `POST /v1/reconcile?brand=IYS/BRAND[&sample=N][&budget=RPS]` (role admin):
/// run a reconciliation and answer its report; one access-log line.
async fn reconcile(
    state: &AdminState,
    req: &Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let q: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let (response, token) = match authorize(state, req.headers(), Role::Admin, "/v1/reconcile") {
        Err(d) => {
            let name = match &d {
                Denied::Forbidden(name, _) => Some(name.clone()),
                Denied::Unauthorized(_) => None,
            };
            (d.response(), name)
        }
        Ok(token) => (run_reconcile(state, &q).await, Some(token.name.clone())),
    };
    let mut record = AccessRecord::now("/v1/reconcile", response.status().as_u16());
    record.token = token;
    record.brand = q.get("brand").map(|b| b.trim().chars().take(32).collect());
    record.peer = peer.map(|p| p.ip().to_string());
    state.access.write(&record);
    response
}

async fn run_reconcile(state: &AdminState, q: &HashMap<String, String>) -> Response<Full<Bytes>> {
    use crate::reconcile::{parse_brand, ReconcileError, RunRequest};
    let Some(reconciler) = &state.reconcile else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "reconciliation needs a [registry] in the config",
        );
    };
    let parsed = (|| -> Result<RunRequest, String> {
        let brand = parse_brand(
            q.get("brand")
                .ok_or("brand is required (IYS_CODE/BRAND_CODE)")?,
        )?;
        let sample = q
            .get("sample")
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("sample must be a whole number, got {v:?}"))
            })
            .transpose()?;
        let budget_rps = q
            .get("budget")
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("budget must be requests per second, got {v:?}"))
            })
            .transpose()?;
        Ok(RunRequest {
            brand,
            sample,
            budget_rps,
        })
    })();
    let request = match parsed {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match reconciler.run(request).await {
        Ok(report) => match serde_json::to_value(&report) {
            Ok(v) => json_response(StatusCode::OK, v),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(e) => {
            let status = match e {
                ReconcileError::Invalid(_) | ReconcileError::UnknownBrand(_) => {
                    StatusCode::BAD_REQUEST
                }
                ReconcileError::Busy => StatusCode::CONFLICT,
                ReconcileError::NoSnapshot => StatusCode::SERVICE_UNAVAILABLE,
                ReconcileError::Registry(_) => StatusCode::BAD_GATEWAY,
            };
            error(status, e.to_string())
        }
    }
}
