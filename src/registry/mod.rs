//! The OCI distribution API (pull side) under `/v2/`: parses and validates
//! what a request names, asks the cache, and writes the answer. Pushes get
//! a clear read-only error.

pub(crate) mod endpoint;
mod error;
pub(crate) mod range;

use std::sync::Arc;

use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use warp::path::Tail;
use warp::reply::Response as Reply;
use warp::{Filter, Reply as _};

use endpoint::Endpoint;
pub use error::error_response;
use error::RegistryError;
use range::RangeRequest;

use crate::auth::{Access, Caller, Grant};
use crate::cache::{Caches, ManifestHit, Route};
use crate::config::Browse;
use crate::domain::{Digest, Reference, ReferenceError, RepoName};
use crate::origin::{origin_of, Connection};
use crate::visibility::Viewer;

type Result<T> = std::result::Result<T, RegistryError>;

/// What every registry request may need.
pub struct Registry {
    pub caches: Arc<Caches>,
    pub access: Arc<Access>,
    /// Whether anonymous clients may list the catalog and tags.
    pub browse: Browse,
    /// The dashboard's login sessions: its cookie opens private
    /// distributions to the page (reads only, like everything here).
    pub sessions: Arc<crate::session::Sessions>,
}

/// `GET`/`HEAD` (and refused pushes) on `/v2/...`, and `/token`.
pub fn routes(
    registry: Arc<Registry>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let for_token = registry.clone();
    let v2 = warp::path("v2")
        .and(warp::path::tail())
        .and(warp::method())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Connection>())
        .and(warp::any().map(move || registry.clone()))
        .then(handle);
    let token = warp::path("token")
        .and(warp::path::end())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Connection>())
        .map(
            move |query: String, headers: HeaderMap, connection: Option<Connection>| {
                token(&for_token.access, &query, &headers, connection.as_ref())
            },
        );
    v2.or(token).unify().map(crate::web::data_only)
}

/// The token endpoint of the registry's Bearer flow: a token grants pulls
/// of the repositories its `scope` names (private ones only on the admin's
/// credentials); anonymous callers get one for public content (what
/// clients ask for before pulling).
fn token(
    access: &Access,
    query: &str,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Reply {
    let admin = match access.caller(authorization(headers), client_ip(connection)) {
        Caller::Admin => true,
        Caller::Anonymous => false,
        Caller::Throttled { retry_after } => return throttled(retry_after),
        _ => {
            return RegistryError::Unauthorized {
                challenge: "Basic realm=\"ferry\"".into(),
            }
            .into_response(false)
        }
    };
    let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    let grant = Grant::for_scopes(admin, scopes.iter().map(String::as_str));
    let (token, expires_in) = access.tokens.issue(grant);
    let issued_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    json_reply(&json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": issued_at,
    }))
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn client_ip(connection: Option<&Connection>) -> Option<std::net::IpAddr> {
    connection.map(|c| c.peer.ip())
}

/// 429 for an address that guessed the admin password wrong too often.
fn throttled(retry_after: std::time::Duration) -> Reply {
    let secs = retry_after.as_secs().max(1);
    let mut resp = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "TOOMANYREQUESTS",
        "too many failed logins from this address; try again later",
        json!({ "retry_after_secs": secs }),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The Bearer challenge pointing clients at `/token` on the origin they
/// came in on (see [`crate::origin`]).
fn challenge(origin: &str, scope: Option<&str>) -> RegistryError {
    let mut challenge = format!("Bearer realm=\"{origin}/token\",service=\"ferry\"");
    if let Some(scope) = scope {
        challenge.push_str(&format!(",scope=\"{scope}\""));
    }
    RegistryError::Unauthorized { challenge }
}

/// The raw query string, empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

async fn handle(
    tail: Tail,
    method: Method,
    query: String,
    headers: HeaderMap,
    connection: Option<Connection>,
    registry: Arc<Registry>,
) -> Reply {
    let query = Query::parse(&query);
    let client = Client {
        origin: origin_of(connection.as_ref(), &headers),
        ip: client_ip(connection.as_ref()),
    };
    let caller = match registry.access.caller(authorization(&headers), client.ip) {
        // The dashboard's session cookie: the admin, reading.
        Caller::Anonymous if registry.sessions.check_request(&headers) => Caller::Admin,
        caller => caller,
    };
    // Only the admin is told the upstream's address in error bodies.
    let admin = caller.is_admin();
    let mut resp = dispatch(
        tail.as_str(),
        &method,
        &query,
        &headers,
        &client,
        &registry,
        caller,
    )
    .await
    .unwrap_or_else(|e| e.into_response(admin));
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// Who is asking, as the accept loop saw it.
struct Client {
    /// Where links and the token realm point (checked, never a raw Host).
    origin: String,
    ip: Option<std::net::IpAddr>,
}

/// The query parameters the pull API uses.
#[derive(Default)]
struct Query {
    ns: Option<String>,
    n: Option<usize>,
    last: Option<String>,
    artifact_type: Option<String>,
}

impl Query {
    fn parse(raw: &str) -> Query {
        let mut query = Query::default();
        let Ok(url) = reqwest::Url::parse(&format!("http://q/?{raw}")) else {
            return query;
        };
        for (key, value) in url.query_pairs() {
            match &*key {
                "ns" => query.ns = Some(value.into_owned()),
                "n" => query.n = value.parse().ok(),
                "last" => query.last = Some(value.into_owned()),
                "artifactType" => query.artifact_type = Some(value.into_owned()),
                _ => {}
            }
        }
        query
    }
}

async fn dispatch(
    tail: &str,
    method: &Method,
    query: &Query,
    headers: &HeaderMap,
    client: &Client,
    registry: &Registry,
    caller: Caller,
) -> Result<Reply> {
    let caches = &registry.caches;
    match caller {
        Caller::Invalid => return Err(challenge(&client.origin, None)),
        Caller::Throttled { retry_after } => return Ok(throttled(retry_after)),
        _ => {}
    }
    // A route is served when public, or to a caller granted its name.
    let route = |name: &str| -> Result<Route> {
        let route = route(caches, name, query)?;
        if route.cache.is_private() && !caller.opens_private(name) {
            let scope = format!("repository:{name}:pull");
            return Err(challenge(&client.origin, Some(&scope)));
        }
        Ok(route)
    };
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return Err(match *method {
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => RegistryError::ReadOnly,
            _ => RegistryError::MethodNotAllowed,
        });
    }
    match endpoint::parse(tail) {
        Endpoint::Base => {
            // Ask anonymous clients to authenticate only when there is
            // something they cannot see (a private cache, or the listings
            // with `browse = "admin"`), so that `podman login` can check
            // passwords and clients send credentials where they are needed.
            let closed = caches.any_private() || !registry.browse.lets(false);
            if caller == Caller::Anonymous && closed {
                return Err(challenge(&client.origin, None));
            }
            Ok(json_reply(&json!({})))
        }
        Endpoint::Catalog => {
            if !registry.browse.lets(caller.is_admin()) {
                return Err(challenge(&client.origin, Some("registry:catalog:*")));
            }
            let mut names = caches
                .catalog()
                .await
                .map_err(|e| RegistryError::cache(e, json!({})))?;
            let viewer = Viewer::of(caller.sees_private_catalog(), caches);
            names.retain(|n| viewer.sees_repository(n));
            let (page, more) = paginate(names, query.n, query.last.as_deref());
            let mut resp = json_reply(&json!({ "repositories": page }));
            add_next_link(&mut resp, "/v2/_catalog", query.n, more);
            Ok(resp)
        }
        Endpoint::Upload => Err(RegistryError::ReadOnly),
        Endpoint::Unknown => Err(RegistryError::NotFound),
        Endpoint::Manifest { name, reference } => {
            let route = route(name)?;
            let reference = Reference::parse(reference).map_err(|e| match e {
                ReferenceError::Tag => RegistryError::TagInvalid(e.to_string()),
                ReferenceError::Digest(d) => RegistryError::DigestInvalid(d.to_string()),
            })?;
            // Clients (skopeo, podman) send several Accept lines: all count.
            let accept: Vec<&str> = headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let accept = (!accept.is_empty()).then(|| accept.join(", "));
            let hit = route
                .cache
                .manifest(&route.repo, &reference, accept.as_deref())
                .await
                .map_err(|e| {
                    let detail = json!({ "reference": reference.to_string() });
                    RegistryError::cache_of(&route, e, detail)
                })?;
            Ok(with_namespace(manifest_reply(hit, head), &route))
        }
        Endpoint::Blob { name, digest } => {
            let route = route(name)?;
            let digest = parse_digest(digest)?;
            let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
            let resp = blob_reply(&route, &digest, head, range).await?;
            Ok(with_namespace(resp, &route))
        }
        Endpoint::Tags { name } => {
            if !registry.browse.lets(caller.is_admin()) {
                let scope = format!("repository:{name}:pull");
                return Err(challenge(&client.origin, Some(&scope)));
            }
            let route = route(name)?;
            let tags = route
                .cache
                .tags(&route.repo)
                .await
                .map_err(|e| RegistryError::cache_of(&route, e, json!({ "name": name })))?;
            let (page, more) = paginate(tags, query.n, query.last.as_deref());
            let mut resp = json_reply(&json!({ "name": name, "tags": page }));
            add_next_link(&mut resp, &format!("/v2/{name}/tags/list"), query.n, more);
            Ok(with_namespace(resp, &route))
        }
        Endpoint::Referrers { name, digest } => {
            let route = route(name)?;
            let digest = parse_digest(digest)?;
            let detail = json!({ "digest": digest.to_string() });
            let mut descriptors = route
                .cache
                .referrers(&route.repo, &digest)
                .await
                .map_err(|e| RegistryError::cache_of(&route, e, detail))?;
            if let Some(wanted) = &query.artifact_type {
                descriptors
                    .retain(|d| d.get("artifactType").and_then(|a| a.as_str()) == Some(wanted));
            }
            let index = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": descriptors,
            });
            let mut resp = json_reply(&index);
            let headers = resp.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
            );
            if query.artifact_type.is_some() {
                headers.insert(
                    "oci-filters-applied",
                    HeaderValue::from_static("artifactType"),
                );
            }
            Ok(with_namespace(resp, &route))
        }
    }
}

/// Validates the name and finds the cache serving it.
fn route(caches: &Caches, name: &str, query: &Query) -> Result<Route> {
    let parsed = RepoName::parse(name).map_err(|e| RegistryError::NameInvalid(e.to_string()))?;
    caches
        .route(&parsed, query.ns.as_deref())
        .ok_or_else(|| RegistryError::NameUnknown(name.to_string()))
}

fn parse_digest(text: &str) -> Result<Digest> {
    text.parse()
        .map_err(|e: crate::domain::DigestError| RegistryError::DigestInvalid(e.to_string()))
}

fn with_namespace(mut resp: Reply, route: &Route) -> Reply {
    if let Some(ns) = route
        .namespace
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok())
    {
        resp.headers_mut().insert("oci-namespace", ns);
    }
    resp
}

fn json_reply(value: &serde_json::Value) -> Reply {
    let mut resp = Response::new(value.to_string().into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn digest_headers(headers: &mut HeaderMap, digest: &Digest) {
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("docker-content-digest", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        headers.insert(header::ETAG, v);
    }
}

fn manifest_reply(hit: ManifestHit, head: bool) -> Reply {
    let len = hit.bytes.len();
    if !head {
        crate::metrics::METRICS.served(len as u64);
    }
    let mut resp = if head {
        Response::new(warp::hyper::body::Bytes::new().into())
    } else {
        Response::new(hit.bytes.into())
    };
    let headers = resp.headers_mut();
    headers.insert("x-cache", cache_header(hit.from_cache));
    if let Ok(v) = HeaderValue::from_str(hit.media_type.as_str()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    digest_headers(headers, &hit.digest);
    resp
}

async fn blob_reply(
    route: &Route,
    digest: &Digest,
    head: bool,
    range: Option<&str>,
) -> Result<Reply> {
    let cache_error =
        |e| RegistryError::cache_of(route, e, json!({ "digest": digest.to_string() }));
    if head {
        let size = route
            .cache
            .blob_size(&route.repo, digest)
            .await
            .map_err(cache_error)?;
        let mut resp = Response::new(warp::hyper::body::Bytes::new().into());
        blob_headers(resp.headers_mut(), digest, size);
        return Ok(resp);
    }
    let blob = route
        .cache
        .blob(&route.repo, digest)
        .await
        .map_err(cache_error)?;
    let from_cache = blob.is_stored();
    let Some(size) = blob.size() else {
        // Upstream sent no length: stream it whole, chunked.
        let mut resp = warp::reply::stream(blob.stream(0, None)).into_response();
        blob_headers(resp.headers_mut(), digest, None);
        resp.headers_mut()
            .insert("x-cache", cache_header(from_cache));
        return Ok(resp);
    };
    let (status, start, end) = match range::parse(range, size) {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        RangeRequest::Unsatisfiable => return Err(RegistryError::RangeNotSatisfiable { size }),
    };
    let mut resp = warp::reply::stream(blob.stream(start, Some(end))).into_response();
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    blob_headers(headers, digest, Some(end - start));
    headers.insert("x-cache", cache_header(from_cache));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            headers.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// `X-Cache: HIT` when answered from the store, `MISS` when fetched upstream.
fn cache_header(from_cache: bool) -> HeaderValue {
    HeaderValue::from_static(if from_cache { "HIT" } else { "MISS" })
}

fn blob_headers(headers: &mut HeaderMap, digest: &Digest, len: Option<u64>) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    digest_headers(headers, digest);
}

/// The page after `last` of a sorted list, at most `n` long, and the
/// page's last item when more follow (for the `Link` header).
fn paginate(
    mut items: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
) -> (Vec<String>, Option<String>) {
    items.sort();
    if let Some(last) = last {
        items.retain(|i| i.as_str() > last);
    }
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            let last = items.last().cloned();
            (items, last)
        }
        _ => (items, None),
    }
}

/// `Link: <path?n=N&last=LAST>; rel="next"` when a further page exists.
fn add_next_link(resp: &mut Reply, path: &str, n: Option<usize>, next_after: Option<String>) {
    let (Some(n), Some(last)) = (n, next_after) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")) {
        resp.headers_mut().insert(header::LINK, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginates_sorted() {
        let items = vec!["c".to_string(), "a".into(), "b".into()];
        assert_eq!(
            paginate(items.clone(), Some(2), None),
            (vec!["a".into(), "b".into()], Some("b".into()))
        );
        assert_eq!(
            paginate(items.clone(), Some(2), Some("b")),
            (vec!["c".into()], None)
        );
        assert_eq!(paginate(items, Some(0), None), (vec![], None));
    }
}
