//! The emulator over HTTP/1.1: the registry's paths, JSON in and out, the
//! registry's error shape for every refusal, and a server with a connection
//! limit and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::faults::{Fault, Target};
use super::{Emulator, FeedSource, Rejection};
use crate::consent::{Brand, ConsentTime};
use crate::registry::api::{
    codes, ConsentBody, RetailerAccessBody, RetailerAccessRemoveAll, StatusQuery, TokenRequest,
};

/// Largest request body accepted (HTTP 413 beyond).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Connections served at once; further ones wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type Body = Full<Bytes>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Token,
    Add,
    Bulk,
    BulkResult(&'a str),
    Status,
    Changes,
    MovementFile(&'a str),
    RetailerAccess,
    RetailerAccessRemove,
    RetailerAccessList,
    RetailerAccessRemoveAll,
}

impl Route<'_> {
    fn method(self) -> Method {
        match self {
            Route::BulkResult(_) | Route::Changes | Route::MovementFile(_) => Method::GET,
            _ => Method::POST,
        }
    }
}

/// Match a path: the route and, for consent paths, the raw (iysCode, brandCode).
fn route(path: &str) -> Option<(Route<'_>, Option<(&str, &str)>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["oauth2", "token"] => Some((Route::Token, None)),
        ["sps", iys, "brands", brand, "consents", rest @ ..] => {
            let r = match rest {
                [] => Route::Add,
                ["request"] => Route::Bulk,
                ["request", id] => Route::BulkResult(id),
                ["status"] => Route::Status,
                ["changes"] => Route::Changes,
                ["changes", date, "file"] => Route::MovementFile(date),
                ["retailers", "access"] => Route::RetailerAccess,
                ["retailers", "access", "remove"] => Route::RetailerAccessRemove,
                ["retailers", "access", "list"] => Route::RetailerAccessList,
                ["retailers", "access", "remove", "all"] => Route::RetailerAccessRemoveAll,
                _ => return None,
            };
            Some((r, Some((iys, brand))))
        }
        _ => None,
    }
}

fn json_response<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let (status, bytes) = match serde_json::to_vec(value) {
        Ok(b) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            b,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                r#"{{"errors":[{{"code":"H000","message":"cannot encode the answer: {e}"}}]}}"#
            )
            .into_bytes(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn rejection_response(r: &Rejection) -> Response<Body> {
    let mut resp = json_response(r.status, &r.body);
    match r.status {
        401 => {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        429 => {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    resp
}

async fn read_json<T: DeserializeOwned>(body: Incoming) -> Result<T, Rejection> {
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                Rejection::new(
                    413,
                    codes::INVALID,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                    Some("body"),
                )
            } else {
                Rejection::invalid("body", format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| Rejection::invalid("body", format!("invalid JSON body: {e}")))
}

fn parse_code(location: &str, text: &str) -> Result<u32, Rejection> {
    text.parse().map_err(|_| {
        Rejection::invalid(
            location,
            format!(
                "{location} {:?} in the path is not a number",
                text.chars().take(40).collect::<String>()
            ),
        )
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of a query parameter, decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
        .next()
}

async fn dispatch(emu: &Emulator, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let started = Instant::now();
    emu.admit(started)?;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let not_found = || {
        Rejection::not_found("path", format!(
            "no such path {:?}: the registry serves /oauth2/token and /sps/{{iysCode}}/brands/{{brandCode}}/consents[/request[/{{requestId}}]|/status|/changes[/{{reportDate}}/file]|/retailers/access[/remove[/all]|/list]]",
            path.chars().take(200).collect::<String>()
        ))
    };
    let (route, codes_in_path) = route(path).ok_or_else(not_found)?;
    if parts.method != route.method() {
        return Err(Rejection::new(
            405,
            codes::INVALID,
            format!(
                "{} is not allowed on {path}: use {}",
                parts.method,
                route.method()
            ),
            Some("method"),
        ));
    }
    if route == Route::Token {
        let request: TokenRequest = read_json(body).await?;
        return Ok(json_response(200, &emu.token(&request, Instant::now())?));
    }
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    emu.authorize(authorization, started)?;
    let (iys, brand) = codes_in_path.ok_or_else(not_found)?;
    let brand = Brand::new(parse_code("iysCode", iys)?, parse_code("brandCode", brand)?);
    let now = ConsentTime::now();
    match route {
        Route::Token => Err(not_found()),
        Route::Add => {
            let consent: ConsentBody = read_json(body).await?;
            emu.add_consent(brand, &consent, now)
                .map(|t| json_response(200, &t))
                .map_err(|body| Rejection { status: 400, body })
        }
        Route::Bulk => {
            let items: Vec<serde_json::Value> = read_json(body).await?;
            Ok(json_response(200, &emu.submit_bulk(brand, &items, now)?))
        }
        Route::BulkResult(id) => Ok(json_response(200, &emu.bulk_result(brand, id, now)?)),
        Route::Status => {
            let query: StatusQuery = read_json(body).await?;
            Ok(json_response(200, &emu.status(brand, &query, now)?))
        }
        Route::MovementFile(date) => Ok(json_response(
            200,
            &emu.movement_file(brand, &percent_decode(date), now)?,
        )),
        Route::RetailerAccess | Route::RetailerAccessRemove => {
            let access: RetailerAccessBody = read_json(body).await?;
            if route == Route::RetailerAccess {
                Ok(json_response(
                    200,
                    &emu.grant_retailer_access(brand, &access, now)?,
                ))
            } else {
                Ok(json_response(
                    202,
                    &emu.withdraw_retailer_access(brand, &access, now)?,
                ))
            }
        }
        Route::RetailerAccessRemoveAll => {
            let all: RetailerAccessRemoveAll = read_json(body).await?;
            Ok(json_response(
                202,
                &emu.withdraw_all_retailer_access(brand, &all, now)?,
            ))
        }
        Route::RetailerAccessList => {
            let offset = match query_param(parts.uri.query(), "offset") {
                None => 0,
                Some(o) => o.trim().parse::<u64>().map_err(|_| {
                    Rejection::invalid(
                        "offset",
                        format!(
                            "offset {:?} is not a number: use 0, 100, 200, ...",
                            o.chars().take(40).collect::<String>()
                        ),
                    )
                })?,
            };
            let query: RetailerAccessBody = read_json(body).await?;
            Ok(json_response(
                200,
                &emu.retailer_access_list(brand, &query, offset, now)?,
            ))
        }
        Route::Changes => {
            let query = parts.uri.query();
            let source = query_param(query, "source").ok_or_else(|| {
                Rejection::invalid(
                    "source",
                    "the source query parameter is required: HS or IYS",
                )
            })?;
            let feed: FeedSource = source.parse().map_err(|e: crate::consent::InvalidValue| {
                Rejection::invalid("source", e.to_string())
            })?;
            let limit = match query_param(query, "limit") {
                None => None,
                Some(l) => Some(l.trim().parse::<usize>().map_err(|_| {
                    Rejection::invalid(
                        "limit",
                        format!(
                            "limit {:?} is not a number: use 1 to {}",
                            l.chars().take(40).collect::<String>(),
                            super::MAX_CHANGES_LIMIT
                        ),
                    )
                })?),
            };
            let after = query_param(query, "after");
            Ok(json_response(
                200,
                &emu.changes(brand, feed, after.as_deref(), limit, now)?,
            ))
        }
    }
}

async fn handle(emu: Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let fault = emu.faults().draw(Target::of(&method, &path));
    let resp = match fault.rejection() {
        Some(rej) => rejection_response(&rej),
        None => {
            if let Fault::Slow(delay) = fault {
                tokio::time::sleep(delay).await;
            }
            match dispatch(&emu, req).await {
                Ok(r) => fault.garble_response(r).await,
                Err(rej) => rejection_response(&rej),
            }
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "registry emulator request");
    resp
}

/// Serve the emulator on `listener` until `shutdown` completes, then let open
/// connections finish their current request (up to 10 s) and return.
pub async fn serve<F>(emulator: Arc<Emulator>, listener: TcpListener, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "registry emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let emu = emulator.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let emu = emu.clone();
                async move { Ok::<_, Infallible>(handle(emu, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "registry emulator: connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            "registry emulator: connections still open after {DRAIN_TIMEOUT:?}, closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// A running in-process emulator server. Dropping it stops the server too.
#[must_use = "dropping the handle stops the server"]
#[derive(Debug)]
pub struct EmulatorServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<io::Result<()>>,
}

impl EmulatorServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL for a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, let open requests finish, and wait for the server to end.
    pub async fn shutdown(self) -> io::Result<()> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| io::Error::other(format!("registry emulator task failed: {e}")))?
    }
}

/// Serve `emulator` on `listener` in a background task (call inside a Tokio
/// runtime). Bind the listener to `127.0.0.1:0` for tests.
pub fn spawn(emulator: Arc<Emulator>, listener: TcpListener) -> io::Result<EmulatorServer> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(serve(emulator, listener, async move {
        // Ends on `shutdown()` or when the handle (the sender) is dropped.
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Ok(EmulatorServer { addr, stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/oauth2/token").map(|r| r.0), Some(Route::Token));
        assert_eq!(
            route("/sps/700001/brands/3/consents/request/abc"),
            Some((Route::BulkResult("abc"), Some(("700001", "3"))))
        );
        assert_eq!(
            route("/sps/1/brands/2/consents/").map(|r| r.0),
            Some(Route::Add)
        );
        assert_eq!(route("/sps/1/brands/2/consent"), None);
        assert_eq!(
            route("/sps/1/brands/2/consents/changes/2026-12-01/file").map(|r| r.0),
            Some(Route::MovementFile("2026-12-01"))
        );
        assert_eq!(
            route("/sps/1/brands/2/consents/retailers/access/list").map(|r| r.0),
            Some(Route::RetailerAccessList)
        );
        assert_eq!(
            route("/sps/1/brands/2/consents/retailers/access/remove").map(|r| r.0),
            Some(Route::RetailerAccessRemove)
        );
        assert_eq!(
            route("/sps/1/brands/2/consents/retailers/access/remove/all").map(|r| r.0),
            Some(Route::RetailerAccessRemoveAll)
        );
        assert_eq!(route("/"), None);
        assert_eq!(route(""), None);
    }

    #[test]
    fn query_decoding() {
        let q = Some("source=IYS&after=ab%2Bc&limit=5&x");
        assert_eq!(query_param(q, "after").as_deref(), Some("ab+c"));
        assert_eq!(query_param(q, "limit").as_deref(), Some("5"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "none"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }
}
