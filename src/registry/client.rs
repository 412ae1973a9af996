//! A client for the İYS API: password token with refresh, re-authentication on
//! 401/H351, and errors that say whether a retry makes sense.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{
    ChangesPage, ErrorBody, MovementFile, RetailerAccessBody, RetailerAccessPage, StatusQuery,
    StatusResponse, TokenRequest, TokenResponse,
};
use crate::consent::Brand;

/// Which change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedSource {
    /// Changes the provider made (`source=HS`).
    Hs,
    /// Changes citizens made through İYS (`source=IYS`).
    Iys,
}

impl FeedSource {
    /// Query value and label.
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedSource::Hs => "HS",
            FeedSource::Iys => "IYS",
        }
    }
}

/// A failed registry call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP 429 / H124.
    #[error("registry rate limit (429)")]
    RateLimited,
    /// HTTP 5xx.
    #[error("registry server error {0}")]
    Server(u16),
    /// The token was refused even after re-authenticating.
    #[error("registry refused the credentials: {0}")]
    Unauthorized(String),
    /// Connect, timeout or read error.
    #[error("registry unreachable: {0}")]
    Transport(String),
    /// A 4xx with the registry's error body.
    #[error("registry refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Codes and messages.
        message: String,
    },
    /// A body that is not the JSON the API documents.
    #[error("registry sent a malformed body: {0}")]
    Garbled(String),
}

impl ClientError {
    /// True when the same call may succeed later (back off and retry).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ClientError::RateLimited
                | ClientError::Server(_)
                | ClientError::Transport(_)
                | ClientError::Garbled(_)
        )
    }

    /// True when the registry refused the request itself (a 4xx other than
    /// 401 and 429): sending it again unchanged will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { .. })
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::RateLimited => "rate_limited",
            ClientError::Server(_) => "server",
            ClientError::Unauthorized(_) => "unauthorized",
            ClientError::Transport(_) => "transport",
            ClientError::Refused { .. } => "refused",
            ClientError::Garbled(_) => "garbled",
        }
    }
}

struct Token {
    access: String,
    refresh: String,
    access_until: Instant,
    refresh_until: Instant,
}

/// An authenticated İYS API client.
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    username: String,
    password: String,
    token: Mutex<Option<Token>>,
}

impl RegistryClient {
    /// A client for `base_url` (no trailing slash needed).
    pub fn new(
        base_url: &str,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<RegistryClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("iys-gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(RegistryClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            username: username.to_string(),
            password: password.to_string(),
            token: Mutex::new(None),
        })
    }

    /// One page of a brand's change feed.
    pub async fn changes(
        &self,
        brand: Brand,
        source: FeedSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ChangesPage, ClientError> {
        let url = format!(
            "{}/sps/{}/brands/{}/consents/changes",
            self.base, brand.iys_code, brand.brand_code
        );
        let mut query: Vec<(&str, String)> = vec![
            ("source", source.as_str().into()),
            ("limit", limit.to_string()),
        ];
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        let mut reauth = true;
        loop {
            let token = self.access_token().await?;
            let resp = self
                .http
                .get(&url)
                .query(&query)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && reauth {
                // Token expired or revoked: forget it and log in again once.
                reauth = false;
                *self.token.lock().await = None;
                continue;
            }
            let bytes = check(resp).await?;
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Garbled(e.to_string()));
        }
    }

    /// `POST .../consents/status`: the registry's current record for a
    /// tuple, or `None` when it holds none (HTTP 404).
    pub async fn status(
        &self,
        brand: Brand,
        query: &StatusQuery,
    ) -> Result<Option<StatusResponse>, ClientError> {
        match self
            .call(reqwest::Method::POST, brand, "status", &[], Some(query))
            .await
        {
            Err(ClientError::Refused { status: 404, .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// `GET .../consents/changes/{reportDate}/file`: one day's movement file
    /// (`report_date` is `YYYY-MM-DD`, Turkey time).
    pub async fn movement_file(
        &self,
        brand: Brand,
        report_date: &str,
    ) -> Result<MovementFile, ClientError> {
        let path = format!("changes/{report_date}/file");
        self.call::<(), _>(reqwest::Method::GET, brand, &path, &[], None)
            .await
    }

    /// One page of `POST .../consents/retailers/access/list` from `offset`;
    /// `None` when the registry holds no such consent (HTTP 404).
    pub async fn retailer_access_page(
        &self,
        brand: Brand,
        query: &StatusQuery,
        offset: u64,
    ) -> Result<Option<RetailerAccessPage>, ClientError> {
        let body = RetailerAccessBody {
            recipient: query.recipient.clone(),
            recipient_type: query.recipient_type.clone(),
            channel: query.channel.clone(),
            retailer_access: None,
        };
        let offset = offset.to_string();
        match self
            .call(
                reqwest::Method::POST,
                brand,
                "retailers/access/list",
                &[("offset", offset.as_str())],
                Some(&body),
            )
            .await
        {
            Err(ClientError::Refused { status: 404, .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// One authenticated call under `/sps/{iysCode}/brands/{brandCode}/consents/`,
    /// logging in again once on HTTP 401.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        brand: Brand,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!(
            "{}/sps/{}/brands/{}/consents/{path}",
            self.base, brand.iys_code, brand.brand_code
        );
        let mut reauth = true;
        loop {
            let token = self.access_token().await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .query(query)
                .bearer_auth(&token);
            if let Some(b) = body {
                request = request.json(b);
            }
            let resp = request.send().await.map_err(transport)?;
            if resp.status() == StatusCode::UNAUTHORIZED && reauth {
                reauth = false;
                *self.token.lock().await = None;
                continue;
            }
            let bytes = check(resp).await?;
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Garbled(e.to_string()));
        }
    }

    async fn access_token(&self) -> Result<String, ClientError> {
        let mut guard = self.token.lock().await;
        let now = Instant::now();
        if let Some(t) = guard.as_ref() {
            if t.access_until > now {
                return Ok(t.access.clone());
            }
            if t.refresh_until > now {
                let req = TokenRequest {
                    grant_type: "refresh_token".into(),
                    username: None,
                    password: None,
                    refresh_token: Some(t.refresh.clone()),
                };
                if let Ok(t) = self.token_call(&req).await {
                    let access = t.access.clone();
                    *guard = Some(t);
                    return Ok(access);
                }
            }
        }
        let req = TokenRequest {
            grant_type: "password".into(),
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            refresh_token: None,
        };
        let t = self.token_call(&req).await?;
        let access = t.access.clone();
        *guard = Some(t);
        Ok(access)
    }

    async fn token_call(&self, req: &TokenRequest) -> Result<Token, ClientError> {
        let started = Instant::now();
        let resp = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .json(req)
            .send()
            .await
            .map_err(transport)?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST
        ) {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::Unauthorized(error_text(&bytes)));
        }
        let bytes = check(resp).await?;
        let t: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Garbled(e.to_string()))?;
        // Renew a little early so a token never expires mid-request.
        let margin = |secs: u64| Duration::from_secs(secs.saturating_sub(secs / 10).max(1));
        Ok(Token {
            access: t.access_token,
            refresh: t.refresh_token,
            access_until: started + margin(t.expires_in),
            refresh_until: started + margin(t.refresh_expires_in),
        })
    }
}

fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

async fn check(resp: reqwest::Response) -> Result<bytes::Bytes, ClientError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        return Ok(bytes);
    }
    Err(match status.as_u16() {
        429 => ClientError::RateLimited,
        401 => ClientError::Unauthorized(error_text(&bytes)),
        s @ 500..=599 => ClientError::Server(s),
        s => ClientError::Refused {
            status: s,
            message: error_text(&bytes),
        },
    })
}

fn error_text(bytes: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => b
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
    }
}

/// Exponential back-off with jitter: `base * 2^attempt`, capped at `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(max);
    let jitter = rand::random::<f64>() * 0.25 + 0.875;
    capped.mul_f64(jitter).min(max)
}
