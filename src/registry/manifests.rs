//! `/v2/<name>/manifests/<reference>`: a manifest by tag or digest.

use serde_json::json;
use warp::http::{header, HeaderValue, Response};
use warp::reply::Response as Reply;

use super::error::RegistryError;
use super::reply::{cache_header, digest_headers, with_namespace};
use super::request::Request;
use super::Result;
use crate::cache::ManifestHit;
use crate::domain::{Reference, ReferenceError};

pub(super) async fn get(request: &Request<'_>, name: &str, reference: &str) -> Result<Reply> {
    let route = request.route(name)?;
    let reference = Reference::parse(reference).map_err(|e| match e {
        ReferenceError::NeitherTagNorDigest => RegistryError::ReferenceUnknown(reference.into()),
        ReferenceError::Digest(d) => RegistryError::DigestInvalid(d.to_string()),
    })?;
    // Clients (skopeo, podman) send several Accept lines: all count.
    let accept: Vec<&str> = request
        .headers
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
    // A pull, for the history: a GET by tag, or of an index by digest (a
    // platform's manifest fetched by digest is the same pull's second step).
    let pull =
        !request.is_head() && (matches!(reference, Reference::Tag(_)) || hit.media_type.is_index());
    let local = pull.then(|| route.cache.local_name(&route.repo));
    crate::metrics::METRICS.cache_request(
        route.cache.base_path(),
        hit.from_cache,
        local.as_deref(),
    );
    // Starts in the background (for a cache with `complete_images`).
    route.cache.complete_in_background(&route.repo, &hit);
    Ok(with_namespace(
        manifest_reply(hit, request.is_head()),
        &route,
    ))
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
