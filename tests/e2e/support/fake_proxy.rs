//! FAKE: a counting, fault-injecting reverse proxy put between ferry and a
//! real upstream. It is not a registry; it forwards each request verbatim
//! (method, path, query, headers incl. Authorization; no redirect following)
//! and relays the upstream's status, headers and body, so tests can count
//! what ferry asked upstream for and break the upstream in controlled ways.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::Filter;

use super::util::{http_client, BackgroundServer};

/// What the proxy does to the traffic; switchable at runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Blob GET bodies stop after N bytes and the connection is closed while
    /// Content-Length still promises the full size.
    CutBlobAfter(usize),
    /// Blob GET bodies have one byte flipped in the middle (same length).
    CorruptBlob,
    /// Every request gets 429 TOOMANYREQUESTS with `Retry-After: 30`.
    TooManyRequests,
    /// Every request gets 503.
    Unavailable,
    /// Every request gets 401 with a Basic challenge that no credentials
    /// satisfy: an upstream whose token service broke or that no longer
    /// accepts ferry's credentials (docker-registry cannot be made to
    /// refuse credentials it accepted a moment ago).
    Unauthorized,
    /// Every response sends its headers and then no body byte, ever.
    Stall,
    /// Every request is held unanswered (no status, no headers) until the
    /// client gives up: a hung upstream, before its headers.
    StallBeforeHeaders,
    /// Blob GETs are held, not yet forwarded and unanswered, until
    /// [`FakeFaultProxy::release_held`]; everything else passes.
    HoldBlobGets,
    /// Blob GET bodies are relayed in pieces of `piece` bytes with a pause
    /// of `pause_ms` after each: a slow upstream (rate shaping, not a fault).
    SlowBlob { piece: usize, pause_ms: u64 },
    /// Successful manifest answers (GET and HEAD) carry this `Content-Type`
    /// instead of the upstream's; the bytes are untouched, so their digest
    /// still matches (a hostile upstream labelling a manifest `text/html`).
    ManifestAs(&'static str),
    /// Blob GET answers lose their `Content-Length` (sent chunked): an
    /// upstream that does not say a blob's size before sending it.
    BlobsWithoutLength,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    Base,
    Manifest,
    Blob,
    Upload,
    Tags,
    Catalog,
    Referrers,
    Other,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub method: String,
    pub path: String,
    pub kind: PathKind,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    fault: Mutex<Option<Fault>>,
    log: Mutex<Vec<Record>>,
    /// Blob body bytes relayed to the client, by digest.
    blob_bytes: Mutex<HashMap<String, u64>>,
    /// Requests held unanswered right now.
    held: AtomicUsize,
    /// Bumped by `release_held`: held blob GETs go on.
    releases: tokio::sync::watch::Sender<u64>,
    /// Docker Hub's rate-limit headers to add to manifest answers.
    ratelimit: Mutex<Option<RateLimitHeaders>>,
}

/// Docker Hub's `ratelimit-limit: 100;w=21600` and
/// `ratelimit-remaining: 76;w=21600`, which docker-registry never sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: u64,
    pub remaining: u64,
    /// The window's length in seconds (`w`).
    pub window_secs: u64,
}

/// Counts one held request for as long as it is held (its future may be
/// dropped when the client gives up).
struct Holding<'a>(&'a AtomicUsize);

impl<'a> Holding<'a> {
    fn new(held: &'a AtomicUsize) -> Self {
        held.fetch_add(1, Ordering::SeqCst);
        Holding(held)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct FakeFaultProxy {
    state: Arc<State>,
    server: BackgroundServer,
}

impl FakeFaultProxy {
    /// Starts a proxy on 127.0.0.1:0 forwarding to `upstream` (`http://H:P`).
    pub fn start(upstream: &str) -> FakeFaultProxy {
        let state = Arc::new(State::default());
        let upstream = upstream.trim_end_matches('/').to_string();
        let st = state.clone();
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      body: Bytes| {
                    let req = Incoming {
                        method,
                        path: path.as_str().to_string(),
                        query,
                        headers,
                        body,
                    };
                    handle(st.clone(), upstream.clone(), req)
                },
            );
        let server = BackgroundServer::start(move |l| warp::serve(route).incoming(l).run());
        FakeFaultProxy { state, server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = Some(fault);
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Record> {
        self.state.log.lock().unwrap().clone()
    }

    /// Requests with `method` to paths of `kind`.
    pub fn count(&self, method: &str, kind: PathKind) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.kind == kind)
            .count()
    }

    /// GETs of one blob.
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.kind == PathKind::Blob && r.path.ends_with(digest))
            .count()
    }

    /// Body bytes of `digest` relayed to the client so far.
    pub fn blob_bytes_sent(&self, digest: &str) -> u64 {
        self.state
            .blob_bytes
            .lock()
            .unwrap()
            .get(digest)
            .copied()
            .unwrap_or(0)
    }

    /// Requests held unanswered right now (`StallBeforeHeaders`,
    /// `HoldBlobGets`).
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Lets the blob GETs held by `HoldBlobGets` go on (and holds no more).
    pub fn release_held(&self) {
        self.set_fault(Fault::None);
        self.state.releases.send_modify(|n| *n += 1);
    }

    /// Adds these rate-limit headers to every manifest answer from now on
    /// (as Docker Hub does, to GETs and HEADs alike), or stops adding them.
    pub fn set_ratelimit(&self, headers: Option<RateLimitHeaders>) {
        *self.state.ratelimit.lock().unwrap() = headers;
    }

    pub fn reset_counters(&self) {
        self.state.log.lock().unwrap().clear();
        self.state.blob_bytes.lock().unwrap().clear();
    }
}

struct Incoming {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

fn classify(path: &str) -> PathKind {
    let p = path.trim_end_matches('/');
    if p == "/v2" {
        PathKind::Base
    } else if p == "/v2/_catalog" {
        PathKind::Catalog
    } else if p.ends_with("/tags/list") {
        PathKind::Tags
    } else if p.contains("/manifests/") {
        PathKind::Manifest
    } else if p.contains("/blobs/uploads") {
        PathKind::Upload
    } else if p.contains("/blobs/") {
        PathKind::Blob
    } else if p.contains("/referrers/") {
        PathKind::Referrers
    } else {
        PathKind::Other
    }
}

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

async fn handle(state: Arc<State>, upstream: String, req: Incoming) -> warp::reply::Response {
    let kind = classify(&req.path);
    state.log.lock().unwrap().push(Record {
        method: req.method.to_string(),
        path: req.path.clone(),
        kind,
        authorization: req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    });
    // Subscribed before the fault is read: a release after that read wakes it.
    let mut releases = state.releases.subscribe();
    let fault = state.fault.lock().unwrap().unwrap_or(Fault::None);
    match fault {
        Fault::StallBeforeHeaders => {
            let _holding = Holding::new(&state.held);
            std::future::pending::<()>().await;
        }
        Fault::HoldBlobGets if kind == PathKind::Blob && req.method == Method::GET => {
            let _holding = Holding::new(&state.held);
            let _ = releases.changed().await;
        }
        Fault::TooManyRequests => return too_many_requests(),
        Fault::Unavailable => {
            return simple(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream unavailable (injected)\n",
            )
        }
        Fault::Unauthorized => return unauthorized(),
        _ => {}
    }

    let url = if req.query.is_empty() {
        format!("{upstream}{}", req.path)
    } else {
        format!("{upstream}{}?{}", req.path, req.query)
    };
    let mut rb = http_client().request(req.method.clone(), url);
    for (name, value) in req
        .headers
        .iter()
        .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
    {
        rb = rb.header(name, value);
    }
    if !req.body.is_empty() {
        rb = rb.body(req.body);
    }
    let upstream_resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            return simple(
                StatusCode::BAD_GATEWAY,
                &format!("fake proxy: upstream error: {e}\n"),
            )
        }
    };

    let status = upstream_resp.status();
    let mut headers = HeaderMap::new();
    let unsized_blob =
        fault == Fault::BlobsWithoutLength && kind == PathKind::Blob && req.method == Method::GET;
    for (name, value) in upstream_resp.headers() {
        if name == "content-length" && unsized_blob {
            continue;
        }
        if !HOP_BY_HOP.contains(&name.as_str()) || name == "content-length" {
            headers.append(name, value.clone());
        }
    }
    let ratelimit = *state.ratelimit.lock().unwrap();
    if let Some(r) = ratelimit.filter(|_| kind == PathKind::Manifest) {
        for (name, count) in [
            ("ratelimit-limit", r.limit),
            ("ratelimit-remaining", r.remaining),
        ] {
            let value = format!("{count};w={}", r.window_secs);
            headers.insert(name, value.parse().unwrap());
        }
    }
    if let Fault::ManifestAs(content_type) = fault {
        if kind == PathKind::Manifest && status.is_success() {
            headers.insert(
                "content-type",
                warp::http::HeaderValue::from_static(content_type),
            );
        }
    }
    let is_blob_body = req.method == Method::GET && kind == PathKind::Blob && status.is_success();
    let digest = req.path.rsplit('/').next().unwrap_or("").to_string();
    let content_length = upstream_resp.content_length().unwrap_or(0) as usize;
    let body_fault = match fault {
        Fault::Stall => Fault::Stall,
        f if is_blob_body => f,
        _ => Fault::None,
    };

    // A pump task relays the body through a channel; the fault decides what
    // it sends. Ending the stream with an error makes hyper abort the
    // connection, which is what a client sees when an upstream dies mid-body.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(pump(
        upstream_resp,
        tx,
        body_fault,
        content_length,
        move |n| {
            if is_blob_body {
                *state
                    .blob_bytes
                    .lock()
                    .unwrap()
                    .entry(digest.clone())
                    .or_default() += n as u64;
            }
        },
    ));
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = warp::reply::Reply::into_response(warp::reply::stream(stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

async fn pump(
    mut resp: reqwest::Response,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    fault: Fault,
    content_length: usize,
    count: impl Fn(usize),
) {
    if fault == Fault::Stall {
        // Headers are out; hold the body open until the client gives up.
        tx.closed().await;
        return;
    }
    let corrupt_at = content_length / 2;
    let mut sent = 0usize;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
        };
        let mut chunk = chunk.to_vec();
        if let Fault::CutBlobAfter(limit) = fault {
            let room = limit.saturating_sub(sent);
            if chunk.len() >= room {
                chunk.truncate(room);
                count(chunk.len());
                let _ = tx.send(Ok(Bytes::from(chunk))).await;
                let _ = tx
                    .send(Err(std::io::Error::other("cut by fake proxy")))
                    .await;
                return;
            }
        }
        if fault == Fault::CorruptBlob && (sent..sent + chunk.len()).contains(&corrupt_at) {
            chunk[corrupt_at - sent] ^= 0xff;
        }
        if let Fault::SlowBlob { piece, pause_ms } = fault {
            for part in chunk.chunks(piece.max(1)) {
                sent += part.len();
                count(part.len());
                if tx.send(Ok(Bytes::copy_from_slice(part))).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            }
            continue;
        }
        sent += chunk.len();
        count(chunk.len());
        if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return;
        }
    }
}

fn too_many_requests() -> warp::reply::Response {
    let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit (injected)","detail":null}]}"#;
    let mut resp = simple(StatusCode::TOO_MANY_REQUESTS, body);
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut()
        .insert("retry-after", "30".parse().unwrap());
    resp
}

fn unauthorized() -> warp::reply::Response {
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required (injected)","detail":null}]}"#;
    let mut resp = simple(StatusCode::UNAUTHORIZED, body);
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut().insert(
        "www-authenticate",
        "Basic realm=\"fake-refusing-upstream\"".parse().unwrap(),
    );
    resp
}

fn simple(status: StatusCode, body: &str) -> warp::reply::Response {
    let mut resp = warp::reply::Reply::into_response(body.to_string());
    *resp.status_mut() = status;
    resp
}
