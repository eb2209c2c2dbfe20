//! Headers and bodies several endpoints write the same way.

use warp::http::{header, HeaderMap, HeaderValue, Response};
use warp::reply::Response as Reply;

use crate::cache::Route;
use crate::domain::Digest;

pub(super) fn json_reply(value: &serde_json::Value) -> Reply {
    let mut resp = Response::new(value.to_string().into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The answer to `OPTIONS`: which methods the path answers (RFC 9110
/// 9.3.7), with no body; docker-registry answers 200 too.
pub(super) fn allow(methods: &'static str) -> Reply {
    let mut resp = Response::new(warp::hyper::body::Bytes::new().into());
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    resp
}

/// `OCI-Namespace`: echoes the `?ns=` that chose the cache.
pub(super) fn with_namespace(mut resp: Reply, route: &Route) -> Reply {
    if let Some(ns) = route
        .namespace
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok())
    {
        resp.headers_mut().insert("oci-namespace", ns);
    }
    resp
}

pub(super) fn digest_headers(headers: &mut HeaderMap, digest: &Digest) {
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("docker-content-digest", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        headers.insert(header::ETAG, v);
    }
}

/// `X-Cache: HIT` when answered from the store, `MISS` when fetched upstream.
pub(super) fn cache_header(from_cache: bool) -> HeaderValue {
    HeaderValue::from_static(if from_cache { "HIT" } else { "MISS" })
}
