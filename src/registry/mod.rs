//! The OCI distribution API (pull side) under `/v2/`: parses and validates
//! what a request names, asks the cache, and writes the answer. Pushes get
//! a clear read-only error.
//!
//! One file per endpoint family (`base`, `catalog`, `tags`, `manifests`,
//! `blobs`, `referrers`, and `token` for the Bearer flow); this module
//! only routes a request to one of them.

mod base;
mod blobs;
mod catalog;
mod challenge;
pub(crate) mod endpoint;
mod error;
mod manifests;
mod multipart;
mod pagination;
pub(crate) mod range;
mod referrers;
mod reply;
mod request;
mod tags;
mod token;

use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, Method};
use warp::path::Tail;
use warp::reply::Response as Reply;
use warp::Filter;

use endpoint::Endpoint;
pub(crate) use error::error_response;
use error::RegistryError;
use request::{authorization, client_ip, Client, Query, Request};

use crate::auth::{Access, Caller};
use crate::cache::Caches;
use crate::config::Browse;
use crate::origin::{origin_of, Connection};

type Result<T> = std::result::Result<T, RegistryError>;

/// What every registry request may need.
pub(crate) struct Registry {
    pub caches: Arc<Caches>,
    pub access: Arc<Access>,
    /// Whether anonymous clients may list the catalog and tags.
    pub browse: Browse,
    /// The dashboard's login sessions: its cookie opens private
    /// distributions to the page (reads only, like everything here).
    pub sessions: Arc<crate::session::Sessions>,
}

/// `GET`/`HEAD` (and refused pushes) on `/v2/...`, and `/token`.
pub(crate) fn routes(
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
                token::issue(&for_token.access, &query, &headers, connection.as_ref())
            },
        );
    v2.or(token).unify().map(crate::web::data_only)
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
    let member = is_member(&registry, &method, tail.as_str(), &query, &headers);
    let query = Query::parse(&query);
    let client = Client {
        origin: origin_of(connection.as_ref(), &headers),
        ip: client_ip(connection.as_ref()),
    };
    let caller = match registry.access.caller(authorization(&headers), client.ip) {
        // Another member, forwarding a pull it already authorized: it may
        // read what the admin may (private caches too).
        _ if member => Caller::Admin,
        // The dashboard's session cookie: the admin, reading.
        Caller::Anonymous if registry.sessions.check_request(&headers) => Caller::Admin,
        caller => caller,
    };
    // Only the admin is told the upstream's address in error bodies.
    let admin = caller.is_admin();
    let request = Request {
        method,
        query,
        headers: &headers,
        client,
        registry: &registry,
        caller,
    };
    let answer = dispatch(&request, tail.as_str());
    let answer = if member {
        crate::cache::as_member(answer).await
    } else {
        answer.await
    };
    let mut resp = answer.unwrap_or_else(|e| e.into_response(admin));
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// Whether the request carries a valid signature of a cluster member (over
/// its method, path and query, within the time window). Anything else,
/// a forged or an old one included, is an ordinary client's request.
fn is_member(
    registry: &Registry,
    method: &Method,
    tail: &str,
    query: &str,
    headers: &HeaderMap,
) -> bool {
    let Some(cluster) = registry.caches.storage().cluster() else {
        return false;
    };
    let Some(signature) = headers
        .get(crate::cluster::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let path = if query.is_empty() {
        format!("/v2/{tail}")
    } else {
        format!("/v2/{tail}?{query}")
    };
    let valid = cluster.verify(method.as_str(), &path, signature);
    if !valid {
        tracing::warn!(%path, "request with an invalid cluster signature: served as any client's");
    }
    valid
}

/// Refuses callers and methods the pull API does not serve, then hands the
/// request to the endpoint its path names.
async fn dispatch(request: &Request<'_>, tail: &str) -> Result<Reply> {
    match request.caller {
        Caller::Invalid => return Err(request.challenge(None)),
        Caller::Throttled { retry_after } => return Ok(challenge::throttled(retry_after)),
        _ => {}
    }
    let endpoint = endpoint::parse(tail);
    // A path naming nothing is a 404 whatever the method, as a router
    // answers (docker-registry's too); a method the path does not answer
    // is a 405 naming the ones it does.
    if endpoint == Endpoint::Unknown {
        return Err(RegistryError::NotFound);
    }
    let allow = endpoint.allowed_methods();
    match request.method {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => return Ok(reply::allow(allow)),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            return Err(RegistryError::ReadOnly { allow })
        }
        _ => return Err(RegistryError::MethodNotAllowed { allow }),
    }
    match endpoint {
        Endpoint::Base => base::get(request),
        Endpoint::Catalog => catalog::get(request).await,
        Endpoint::Upload => Err(RegistryError::ReadOnly { allow }),
        Endpoint::Unknown => Err(RegistryError::NotFound),
        Endpoint::Manifest { name, reference } => manifests::get(request, &name, &reference).await,
        Endpoint::Blob { name, digest } => blobs::get(request, &name, &digest).await,
        Endpoint::Tags { name } => tags::list(request, &name).await,
        Endpoint::Referrers { name, digest } => referrers::list(request, &name, &digest).await,
    }
}
