//! `/v2/<name>/blobs/<digest>`: a blob, whole or a byte range, streamed
//! from the store or through from upstream.

use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use warp::reply::Response as Reply;
use warp::Reply as _;

use super::error::RegistryError;
use super::range::{self, RangeRequest};
use super::reply::{cache_header, digest_headers, with_namespace};
use super::request::{parse_digest, Request};
use super::Result;
use crate::cache::Route;
use crate::domain::Digest;

pub(super) async fn get(request: &Request<'_>, name: &str, digest: &str) -> Result<Reply> {
    let route = request.route(name)?;
    let digest = parse_digest(digest, RegistryError::NotADigest)?;
    let range = request
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let resp = blob_reply(&route, &digest, request.is_head(), range).await?;
    Ok(with_namespace(resp, &route))
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
