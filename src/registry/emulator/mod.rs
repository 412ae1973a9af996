//! An İYS-compatible registry emulator: the same paths, JSON and error shape as
//! the real API, so the gate can be developed, demonstrated and tested without
//! the registry, and tests can play a citizen who withdraws consent.
//!
//! This module holds the state and the rules and does no I/O beyond reading a
//! caller's CSV; `http` serves it, `cli` is the `iys-gate registry` command.
//!
//! What it enforces, as İYS does: bearer tokens (H351), the per-second request
//! limit when configured (H124), and on every consent write: a date before
//! 2015-05-01 (H155), a first record that is `RET` (H175), an unchanged status
//! (H174) and a date older than the stored one (H178). Field errors use the
//! emulator's own `H000` with `location` naming the field.

pub mod cli;
pub mod faults;
pub mod http;

pub mod movement;
pub mod retailers;

mod auth;
mod feed;
mod store;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rand::RngCore;
use rustc_hash::FxHashMap;

use crate::consent::{
    Address, Brand, Channel, ConsentRecord, ConsentTime, CsvError, CsvReader, RecipientType,
    RecordError, Status,
};
use crate::registry::api::{
    codes, ApiError, BulkItemResult, BulkResponse, BulkResult, ChangesPage, ConsentBody, ErrorBody,
    StatusQuery, StatusResponse, TokenRequest, TokenResponse, TransactionResponse,
};

pub use auth::User;
pub use cli::{run, RegistryArgs};
pub use faults::{FaultConfig, FaultCounts};
pub use feed::FeedSource;
pub use http::{serve, spawn, EmulatorServer};

use auth::{RateLimit, TokenProblem, Tokens};
use feed::{CursorSeal, Entry, Feed};
use store::{BrandStore, Stored, TupleKey};

/// Largest `limit` the change feed accepts, and its default.
pub const MAX_CHANGES_LIMIT: usize = 999;

/// How many bad CSV rows a load reports individually (all are counted).
pub const LOAD_ERRORS_KEPT: usize = 100;

/// Emulator settings. `Default` gives İYS's values and one user `demo`/`demo`.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Accepted on the password grant.
    pub users: Vec<User>,
    /// Access token lifetime (İYS: 7200 s).
    pub access_ttl: Duration,
    /// Refresh token lifetime (İYS: 14400 s).
    pub refresh_ttl: Duration,
    /// Requests per second over all clients before HTTP 429 / H124; `None` = no limit.
    pub rate_limit: Option<u32>,
    /// The feed leaves out changes younger than this (the real feed: one hour).
    pub feed_lag: Duration,
    /// The feed keeps changes this long (İYS: 7 days).
    pub feed_retention: Duration,
    /// Bulk items stay `enqueue` this long before they are applied.
    pub bulk_delay: Duration,
    /// Most items one bulk request may carry.
    pub max_bulk_items: usize,
    /// Injected faults on the token call and the change feeds (default: none).
    pub faults: FaultConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            users: vec![User::new("demo", "demo")],
            access_ttl: Duration::from_secs(7200),
            refresh_ttl: Duration::from_secs(14_400),
            rate_limit: None,
            feed_lag: Duration::ZERO,
            feed_retention: Duration::from_secs(7 * 24 * 3600),
            bulk_delay: Duration::ZERO,
            max_bulk_items: 1000,
            faults: FaultConfig::default(),
        }
    }
}

/// A refused request: the HTTP status and the registry's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status code.
    pub status: u16,
    /// `{"errors":[...]}`.
    pub body: ErrorBody,
}

impl Rejection {
    /// A rejection with one error.
    pub fn new(
        status: u16,
        code: &str,
        message: impl Into<String>,
        location: Option<&str>,
    ) -> Self {
        Rejection {
            status,
            body: ErrorBody::one(code, message, location),
        }
    }

    /// HTTP 400 with `H000` and the field at fault.
    pub fn invalid(location: &str, message: impl Into<String>) -> Self {
        Rejection::new(400, codes::INVALID, message, Some(location))
    }

    /// HTTP 404 with `H000` and what was not found.
    pub fn not_found(location: &str, message: impl Into<String>) -> Self {
        Rejection::new(404, codes::INVALID, message, Some(location))
    }

    /// The first error's code.
    pub fn code(&self) -> &str {
        self.body.errors.first().map_or("", |e| e.code.as_str())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for e in &self.body.errors {
            write!(f, "; {}: {}", e.code, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// What a CSV load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Data rows read (excluding the header and blank lines).
    pub rows: u64,
    /// Rows that set a tuple's state.
    pub loaded: u64,
    /// Rows for a tuple already holding a newer `consentDate` (kept the newer).
    pub superseded: u64,
    /// Rows that did not parse, skipped.
    pub skipped: u64,
    /// The first [`LOAD_ERRORS_KEPT`] bad rows, each `line N: problem`.
    pub errors: Vec<String>,
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows: {} loaded, {} superseded by a newer row, {} skipped",
            self.rows, self.loaded, self.superseded, self.skipped
        )
    }
}

/// The registry state: users and tokens, per-brand consents, change feeds and
/// bulk requests. Share it as `Arc<Emulator>`; every method takes `&self`.
pub struct Emulator {
    config: EmulatorConfig,
    tokens: Tokens,
    rate: Option<RateLimit>,
    brands: RwLock<FxHashMap<Brand, Arc<RwLock<BrandState>>>>,
    next_transaction: AtomicU64,
    instance: u32,
    seal: CursorSeal,
    faults: faults::Faults,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("config", &self.config)
            .field("brands", &read(&self.brands).len())
            .finish_non_exhaustive()
    }
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator::new(EmulatorConfig::default())
    }
}

#[derive(Default)]
struct BrandState {
    consents: Consents,
    bulk: BulkLog,
}

/// Current state and the two feeds: what a write touches.
#[derive(Default)]
struct Consents {
    store: BrandStore,
    hs: Feed,
    iys: Feed,
}

impl Consents {
    fn feed_mut(&mut self, which: FeedSource) -> &mut Feed {
        match which {
            FeedSource::Hs => &mut self.hs,
            FeedSource::Iys => &mut self.iys,
        }
    }
}

#[derive(Default)]
struct BulkLog {
    requests: HashMap<String, BulkRequest>,
    /// Request ids by submission, for pruning.
    order: VecDeque<(ConsentTime, String)>,
    /// Ids of requests not yet applied, in submission order.
    pending: VecDeque<String>,
}

struct BulkRequest {
    due: ConsentTime,
    items: Vec<BulkItem>,
}

struct BulkItem {
    sub_request_id: String,
    recipient: String,
    outcome: Outcome,
}

enum Outcome {
    Queued(Result<ConsentRecord, ApiError>),
    Done(Result<String, ApiError>),
}

impl BulkLog {
    fn has_due(&self, now: ConsentTime) -> bool {
        // A pending id whose request was pruned counts as due, so it is dropped.
        self.pending
            .front()
            .is_some_and(|id| !matches!(self.requests.get(id), Some(r) if r.due > now))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn api_error(code: &str, location: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        location: Some(location.to_string()),
        code: code.to_string(),
        message: message.into(),
    }
}

/// The registry error for a field that does not validate.
fn record_error(e: &RecordError) -> ApiError {
    let (code, location) = match e {
        RecordError::TooEarly(_) => (codes::TOO_EARLY, "consentDate"),
        RecordError::Date(_) => (codes::INVALID, "consentDate"),
        RecordError::Address(_) => (codes::INVALID, "recipient"),
        RecordError::Missing(field) => (codes::INVALID, *field),
        RecordError::NotANumber { field, .. } => (codes::INVALID, *field),
        RecordError::Value(v) => (codes::INVALID, v.field),
        RecordError::FieldCount { .. } => (codes::INVALID, "body"),
    };
    api_error(code, location, e.to_string())
}

fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn minus(now: ConsentTime, d: Duration) -> ConsentTime {
    ConsentTime(
        now.unix()
            .saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    )
}

fn plus(now: ConsentTime, d: Duration) -> ConsentTime {
    ConsentTime(
        now.unix()
            .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    )
}

impl Emulator {
    /// An empty registry with these settings.
    pub fn new(config: EmulatorConfig) -> Self {
        let mut rng = rand::thread_rng();
        Emulator {
            rate: config.rate_limit.map(RateLimit::new),
            faults: faults::Faults::new(config.faults.clone()),
            config,
            tokens: Tokens::default(),
            brands: RwLock::new(FxHashMap::default()),
            next_transaction: AtomicU64::new(1),
            instance: rng.next_u32(),
            seal: CursorSeal::new(rng.next_u64()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EmulatorConfig {
        &self.config
    }

    /// The fault source (draws and counts of injected faults).
    pub fn faults(&self) -> &faults::Faults {
        &self.faults
    }

    // ---- tokens and limits -------------------------------------------------

    /// Count a request against the per-second limit: HTTP 429 / H124 when spent.
    pub fn admit(&self, now: Instant) -> Result<(), Rejection> {
        match &self.rate {
            Some(rate) if !rate.admit(now) => Err(Rejection::new(
                429,
                codes::RATE_LIMIT,
                format!(
                    "request limit of {} per second exceeded: retry after a pause",
                    rate.per_second()
                ),
                None,
            )),
            _ => Ok(()),
        }
    }

    /// `POST /oauth2/token`: the password grant or the refresh grant.
    pub fn token(&self, req: &TokenRequest, now: Instant) -> Result<TokenResponse, Rejection> {
        match req.grant_type.as_str() {
            "password" => {
                let username = req.username.as_deref().ok_or_else(|| {
                    Rejection::invalid("username", "username is required for grant_type password")
                })?;
                let password = req.password.as_deref().ok_or_else(|| {
                    Rejection::invalid("password", "password is required for grant_type password")
                })?;
                let known = self
                    .config
                    .users
                    .iter()
                    .any(|u| u.username == username && u.password == password);
                if !known {
                    return Err(Rejection::new(
                        401,
                        codes::INVALID,
                        "unknown username or wrong password",
                        Some("password"),
                    ));
                }
            }
            "refresh_token" => {
                let token = req.refresh_token.as_deref().ok_or_else(|| {
                    Rejection::invalid(
                        "refresh_token",
                        "refresh_token is required for grant_type refresh_token",
                    )
                })?;
                self.tokens.redeem_refresh(token, now).map_err(|p| {
                    let what = match p {
                        TokenProblem::Unknown => "unknown or already used",
                        TokenProblem::Expired => "expired",
                    };
                    Rejection::new(
                        401,
                        codes::BAD_TOKEN,
                        format!(
                            "refresh token {what}: authenticate again with grant_type password"
                        ),
                        Some("refresh_token"),
                    )
                })?;
            }
            other => {
                return Err(Rejection::invalid(
                    "grant_type",
                    format!(
                        "grant_type {:?} is not supported: use password or refresh_token",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        }
        let (access, refresh) =
            self.tokens
                .issue(now, self.config.access_ttl, self.config.refresh_ttl);
        Ok(TokenResponse {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.config.access_ttl.as_secs(),
            refresh_expires_in: self.config.refresh_ttl.as_secs(),
            token_type: "bearer".to_string(),
        })
    }

    /// Check an `Authorization` header value: HTTP 401 / H351 unless it is
    /// `Bearer <live access token>`.
    pub fn authorize(&self, authorization: Option<&str>, now: Instant) -> Result<(), Rejection> {
        let refuse = |why: &str| {
            Rejection::new(
                401,
                codes::BAD_TOKEN,
                format!("{why}: get a token from POST /oauth2/token and send `Authorization: Bearer <access_token>`"),
                Some("Authorization"),
            )
        };
        let value = authorization.ok_or_else(|| refuse("missing bearer token"))?;
        let token = value
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refuse("Authorization is not a bearer token"))?;
        self.tokens.check_access(token, now).map_err(|p| match p {
            TokenProblem::Unknown => refuse("invalid access token"),
            TokenProblem::Expired => refuse("access token expired"),
        })
    }

    // ---- consents ----------------------------------------------------------

    fn find(&self, brand: Brand) -> Option<Arc<RwLock<BrandState>>> {
        read(&self.brands).get(&brand).cloned()
    }

    fn brand_state(&self, brand: Brand) -> Arc<RwLock<BrandState>> {
        if let Some(s) = self.find(brand) {
            return s;
        }
        write(&self.brands).entry(brand).or_default().clone()
    }

    /// The brand's state with due bulk requests applied.
    fn settled(&self, brand: Brand, now: ConsentTime) -> Option<Arc<RwLock<BrandState>>> {
        let cell = self.find(brand)?;
        if read(&cell).bulk.has_due(now) {
            self.settle(&mut write(&cell), now);
        }
        Some(cell)
    }

    fn transaction_id(&self, seq: u64) -> String {
        format!("{:08x}{seq:016x}", self.instance)
    }

    /// `POST .../consents`: apply one consent as the provider (or, with an
    /// `IYS_*` source, as the citizen) would. Errors are HTTP 400 bodies.
    pub fn add_consent(
        &self,
        brand: Brand,
        body: &ConsentBody,
        now: ConsentTime,
    ) -> Result<TransactionResponse, ErrorBody> {
        let one = |e: ApiError| ErrorBody { errors: vec![e] };
        let record = body.to_record(brand).map_err(|e| one(record_error(&e)))?;
        let cell = self.brand_state(brand);
        let mut st = write(&cell);
        self.settle(&mut st, now);
        let (tx, created) = self.apply(&mut st.consents, &record, now).map_err(one)?;
        Ok(TransactionResponse {
            transaction_id: tx,
            creation_date: created.to_string(),
        })
    }

    /// The write rules, then the state change and its feed entry.
    fn apply(
        &self,
        c: &mut Consents,
        record: &ConsentRecord,
        now: ConsentTime,
    ) -> Result<(String, ConsentTime), ApiError> {
        let key = TupleKey::new(record.address.key(), record.channel, record.recipient_type);
        match c.store.rule_view(key) {
            None if record.status == Status::Ret => {
                return Err(api_error(
                    codes::FIRST_RET,
                    "status",
                    "the first record for a recipient, channel and recipient type cannot be RET: there is no consent to withdraw",
                ))
            }
            Some((stored, _)) if stored == record.status => {
                return Err(api_error(
                    codes::UNCHANGED,
                    "status",
                    format!("status is already {stored} for this recipient, channel and recipient type"),
                ))
            }
            Some((_, Some(stored))) if record.consent_date.is_some_and(|d| d < stored) => {
                return Err(api_error(
                    codes::OLDER_DATE,
                    "consentDate",
                    format!("consentDate is older than the stored record's ({stored})"),
                ))
            }
            _ => {}
        }
        let seq = self.next_transaction.fetch_add(1, Ordering::Relaxed);
        let tx = self.transaction_id(seq);
        c.store.put(
            key,
            &Stored {
                status: record.status,
                consent_date: record.consent_date,
                created: now,
                source: record.source,
                transaction: seq as u32,
                retailer_code: record.retailer_code,
                retailer_access: record.retailer_access.clone(),
            },
        );
        let oldest = minus(now, self.config.feed_retention);
        let feed = c.feed_mut(FeedSource::of(record.source));
        feed.push(Entry::new(record, now, &tx));
        feed.prune(oldest);
        Ok((tx, now))
    }

    /// Set a tuple's state as existing data, as a CSV load does: no write
    /// rules, no feed entry. A record older (by `consentDate`) than the stored
    /// one is ignored; returns whether the record was taken.
    pub fn seed(&self, record: &ConsentRecord, now: ConsentTime) -> bool {
        let cell = self.brand_state(record.brand);
        let mut st = write(&cell);
        seed_into(&mut st.consents.store, record, now)
    }

    /// Load a consent export (the CSV format of [`crate::consent::record`]) as
    /// existing state. Bad rows are counted and skipped; a bad header or a read
    /// failure stops the load.
    pub fn load_csv<R: Read>(&self, reader: R, now: ConsentTime) -> Result<LoadSummary, CsvError> {
        let io_failure: Arc<Mutex<Option<String>>> = Arc::default();
        let mut rows = CsvReader::new(WatchRead {
            inner: reader,
            failure: io_failure.clone(),
        });
        let mut summary = LoadSummary::default();
        let mut cached: Option<(Brand, Arc<RwLock<BrandState>>)> = None;
        while let Some(row) = rows.next_record() {
            let error = match row {
                Ok(record) => {
                    summary.rows += 1;
                    let cell = match &cached {
                        Some((b, cell)) if *b == record.brand => cell.clone(),
                        _ => {
                            let cell = self.brand_state(record.brand);
                            cached = Some((record.brand, cell.clone()));
                            cell
                        }
                    };
                    if seed_into(&mut write(&cell).consents.store, &record, now) {
                        summary.loaded += 1;
                    } else {
                        summary.superseded += 1;
                    }
                    continue;
                }
                Err(e @ CsvError::Header { .. }) => return Err(e),
                Err(CsvError::Syntax { line, message }) => {
                    if let Some(io) = lock(&io_failure).take() {
                        return Err(CsvError::Syntax {
                            line,
                            message: format!("read failed: {io}"),
                        });
                    }
                    CsvError::Syntax { line, message }
                }
                Err(e) => e,
            };
            summary.rows += 1;
            summary.skipped += 1;
            if summary.errors.len() < LOAD_ERRORS_KEPT {
                summary.errors.push(error.to_string());
            }
        }
        Ok(summary)
    }

    /// Number of (brand, address, channel, recipient type) tuples held.
    pub fn consent_count(&self) -> usize {
        let cells: Vec<_> = read(&self.brands).values().cloned().collect();
        cells.iter().map(|c| read(c).consents.store.len()).sum()
    }

    /// `POST .../consents/status`: the stored record, or 404.
    pub fn status(
        &self,
        brand: Brand,
        query: &StatusQuery,
        now: ConsentTime,
    ) -> Result<StatusResponse, Rejection> {
        let invalid = |e: RecordError| {
            let e = record_error(&e);
            Rejection {
                status: 400,
                body: ErrorBody { errors: vec![e] },
            }
        };
        let recipient_type: RecipientType = query
            .recipient_type
            .trim()
            .parse()
            .map_err(|e| invalid(RecordError::Value(e)))?;
        let channel: Channel = query
            .channel
            .trim()
            .parse()
            .map_err(|e| invalid(RecordError::Value(e)))?;
        let address = Address::parse_for(channel, &query.recipient)
            .map_err(|e| invalid(RecordError::Address(e)))?;
        let missing = || {
            Rejection::not_found(
                "recipient",
                format!(
                "no {recipient_type} {channel} consent record for this recipient in brand {brand}"
            ),
            )
        };
        let cell = self.settled(brand, now).ok_or_else(missing)?;
        let st = read(&cell);
        let key = TupleKey::new(address.key(), channel, recipient_type);
        let s = st.consents.store.get(key).ok_or_else(missing)?;
        Ok(StatusResponse {
            recipient: address.to_string(),
            recipient_type: recipient_type.as_str().to_string(),
            channel: channel.as_str().to_string(),
            source: s.source.map(|x| x.as_str().to_string()).unwrap_or_default(),
            status: s.status.as_str().to_string(),
            consent_date: s.consent_date.map(|d| d.to_string()).unwrap_or_default(),
            creation_date: s.created.to_string(),
            retailer_code: s.retailer_code,
            retailer_access: (!s.retailer_access.is_empty()).then_some(s.retailer_access),
        })
    }

    /// `GET .../consents/changes`: up to `limit` changes after the cursor, in
    /// creation order, leaving out those younger than the feed lag.
    pub fn changes(
        &self,
        brand: Brand,
        feed: FeedSource,
        after: Option<&str>,
        limit: Option<usize>,
        now: ConsentTime,
    ) -> Result<ChangesPage, Rejection> {
        let limit = limit.unwrap_or(MAX_CHANGES_LIMIT);
        if !(1..=MAX_CHANGES_LIMIT).contains(&limit) {
            return Err(Rejection::invalid(
                "limit",
                format!("limit {limit} is out of range: use 1 to {MAX_CHANGES_LIMIT}"),
            ));
        }
        let from = match after.map(str::trim).filter(|a| !a.is_empty()) {
            None => 0,
            Some(cursor) => self
                .seal
                .open(brand, feed, cursor)
                .map_err(|e| Rejection::invalid("after", e.to_string()))?,
        };
        let newest = minus(now, self.config.feed_lag);
        let (list, next) = match self.find(brand) {
            None => (Vec::new(), from),
            Some(cell) => {
                let mut st = write(&cell);
                self.settle(&mut st, now);
                let oldest = minus(now, self.config.feed_retention);
                let log = st.consents.feed_mut(feed);
                log.prune(oldest);
                let from = from.min(log.end());
                log.read(from, limit, newest)
            }
        };
        Ok(ChangesPage {
            after: self.seal.seal(brand, feed, next),
            list,
        })
    }

    // ---- bulk --------------------------------------------------------------

    /// `POST .../consents/request`: queue a batch. Each item is checked and
    /// applied like a single add once the bulk delay has passed (at once by
    /// default); item errors show in [`Emulator::bulk_result`], not here.
    pub fn submit_bulk(
        &self,
        brand: Brand,
        items: &[serde_json::Value],
        now: ConsentTime,
    ) -> Result<BulkResponse, Rejection> {
        if items.is_empty() {
            return Err(Rejection::invalid(
                "body",
                "the request holds no consents: send a JSON array of 1 or more",
            ));
        }
        if items.len() > self.config.max_bulk_items {
            return Err(Rejection::invalid(
                "body",
                format!(
                    "the request holds {} consents: at most {} are allowed, split it",
                    items.len(),
                    self.config.max_bulk_items
                ),
            ));
        }
        let request_id = uuid();
        let items: Vec<BulkItem> = items
            .iter()
            .map(|v| {
                let recipient = v
                    .get("recipient")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let parsed = serde_json::from_value::<ConsentBody>(v.clone())
                    .map_err(|e| api_error(codes::INVALID, "body", format!("invalid consent: {e}")))
                    .and_then(|b| b.to_record(brand).map_err(|e| record_error(&e)));
                BulkItem {
                    sub_request_id: uuid(),
                    recipient,
                    outcome: Outcome::Queued(parsed),
                }
            })
            .collect();
        let sub_requests = items.iter().map(|i| i.sub_request_id.clone()).collect();
        let cell = self.brand_state(brand);
        let mut st = write(&cell);
        let oldest = minus(now, self.config.feed_retention);
        while let Some((created, _)) = st.bulk.order.front() {
            if *created >= oldest {
                break;
            }
            if let Some((_, id)) = st.bulk.order.pop_front() {
                st.bulk.requests.remove(&id);
            }
        }
        st.bulk.requests.insert(
            request_id.clone(),
            BulkRequest {
                due: plus(now, self.config.bulk_delay),
                items,
            },
        );
        st.bulk.order.push_back((now, request_id.clone()));
        st.bulk.pending.push_back(request_id.clone());
        self.settle(&mut st, now);
        Ok(BulkResponse {
            request_id,
            sub_requests,
        })
    }

    /// Apply the bulk requests whose delay has passed, in submission order.
    fn settle(&self, st: &mut BrandState, now: ConsentTime) {
        while st.bulk.has_due(now) {
            let Some(id) = st.bulk.pending.pop_front() else {
                break;
            };
            let Some(req) = st.bulk.requests.get_mut(&id) else {
                continue;
            };
            for item in &mut req.items {
                if let Outcome::Queued(parsed) = &item.outcome {
                    let done = match parsed {
                        Ok(record) => self.apply(&mut st.consents, record, now).map(|(tx, _)| tx),
                        Err(e) => Err(e.clone()),
                    };
                    item.outcome = Outcome::Done(done);
                }
            }
        }
    }

    /// `GET .../consents/request/{requestId}`: each item's outcome.
    pub fn bulk_result(
        &self,
        brand: Brand,
        request_id: &str,
        now: ConsentTime,
    ) -> Result<BulkResult, Rejection> {
        let missing = || {
            Rejection::not_found(
                "requestId",
                format!(
                    "no bulk request {:?} for brand {brand} (results are kept 7 days)",
                    request_id.chars().take(40).collect::<String>()
                ),
            )
        };
        let cell = self.settled(brand, now).ok_or_else(missing)?;
        let st = read(&cell);
        let req = st.bulk.requests.get(request_id).ok_or_else(missing)?;
        let list = req
            .items
            .iter()
            .map(|item| {
                let (status, transaction_id, error) = match &item.outcome {
                    Outcome::Queued(_) => ("enqueue", None, None),
                    Outcome::Done(Ok(tx)) => ("success", Some(tx.clone()), None),
                    Outcome::Done(Err(e)) => ("failure", None, Some(e.clone())),
                };
                BulkItemResult {
                    sub_request_id: item.sub_request_id.clone(),
                    status: status.to_string(),
                    recipient: item.recipient.clone(),
                    transaction_id,
                    error,
                }
            })
            .collect();
        Ok(BulkResult {
            request_id: request_id.to_string(),
            list,
        })
    }
}

fn seed_into(store: &mut BrandStore, record: &ConsentRecord, now: ConsentTime) -> bool {
    let key = TupleKey::new(record.address.key(), record.channel, record.recipient_type);
    store.put_unless_older(
        key,
        &Stored {
            status: record.status,
            consent_date: record.consent_date,
            created: record.consent_date.unwrap_or(now),
            source: record.source,
            transaction: 0,
            retailer_code: record.retailer_code,
            retailer_access: record.retailer_access.clone(),
        },
    )
}

/// Remembers an I/O error so the loader can tell a read failure (stop) from a
/// bad row (skip): the CSV layer reports both the same way.
struct WatchRead<R> {
    inner: R,
    failure: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for WatchRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                *lock(&self.failure) = Some(e.to_string());
            }
        })
    }
}
