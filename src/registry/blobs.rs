//! `/v2/<name>/blobs/<digest>`: a blob, whole or a byte range, streamed
//! from the store or through from upstream.

use std::ops::Range;

use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use warp::reply::Response as Reply;
use warp::Reply as _;

use super::error::RegistryError;
use super::multipart::Multipart;
use super::range::{self, RangeRequest};
use super::reply::{cache_header, digest_headers, with_namespace};
use super::request::{parse_digest, Request};
use super::Result;
use crate::cache::Route;
use crate::domain::Digest;
use crate::metrics::METRICS;

pub(super) async fn get(request: &Request<'_>, name: &str, digest: &str) -> Result<Reply> {
    let route = request.route(name)?;
    let digest = parse_digest(digest, RegistryError::NotADigest)?;
    let header = |name| {
        request
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let etag = format!("\"{digest}\"");
    // A Range under an If-Range that does not name this blob is ignored.
    let range =
        header(header::RANGE).filter(|_| range::if_range_matches(header(header::IF_RANGE), &etag));
    let resp = blob_reply(&route, &digest, request.is_head(), range).await?;
    Ok(with_namespace(resp, &route))
}

/// How a response with a known size carries the blob.
enum Answer {
    Whole,
    Single(Range<u64>),
    Multi(Multipart),
}

impl Answer {
    fn of(range: Option<&str>, size: u64) -> Result<Answer> {
        let parsed = range::parse(range, size);
        let (answer, label) = match parsed {
            RangeRequest::Full => (Answer::Whole, "whole"),
            RangeRequest::Single(r) => (Answer::Single(r), "single"),
            RangeRequest::Multi(rs) => (Answer::Multi(Multipart::new(rs, size)), "multipart"),
            RangeRequest::Unsatisfiable => {
                METRICS.blob_range("unsatisfiable");
                return Err(RegistryError::RangeNotSatisfiable { size });
            }
        };
        if range.is_some() {
            METRICS.blob_range(label);
        }
        Ok(answer)
    }

    /// Status, length and range headers (the blob's own ones aside).
    fn headers(&self, resp: &mut Reply, size: u64) {
        let headers = resp.headers_mut();
        match self {
            Answer::Whole => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                return;
            }
            Answer::Single(r) => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
                let value = format!("bytes {}-{}/{size}", r.start, r.end - 1);
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            Answer::Multi(m) => {
                headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(m.content_length()),
                );
                if let Ok(v) = HeaderValue::from_str(&m.content_type()) {
                    headers.insert(header::CONTENT_TYPE, v);
                }
            }
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
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
        // As a GET would answer, without the body.
        if let Some(size) = size {
            Answer::of(range, size)?.headers(&mut resp, size);
        }
        return Ok(resp);
    }
    let blob = route
        .cache
        .blob(&route.repo, digest)
        .await
        .map_err(cache_error)?;
    let from_cache = blob.is_stored();
    METRICS.cache_request(route.cache.base_path(), from_cache, None);
    let Some(size) = blob.size() else {
        // Upstream sent no length: stream it whole, chunked.
        let mut resp = warp::reply::stream(blob.stream(0, None)).into_response();
        blob_headers(resp.headers_mut(), digest, None);
        resp.headers_mut()
            .insert("x-cache", cache_header(from_cache));
        return Ok(resp);
    };
    let answer = Answer::of(range, size)?;
    let mut resp = match &answer {
        Answer::Whole => warp::reply::stream(blob.stream(0, Some(size))).into_response(),
        Answer::Single(r) => warp::reply::stream(blob.stream(r.start, Some(r.end))).into_response(),
        Answer::Multi(m) => warp::reply::stream(m.body(blob)).into_response(),
    };
    blob_headers(resp.headers_mut(), digest, None);
    answer.headers(&mut resp, size);
    resp.headers_mut()
        .insert("x-cache", cache_header(from_cache));
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
