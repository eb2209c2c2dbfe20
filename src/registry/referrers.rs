//! `/v2/<name>/referrers/<digest>`: the OCI 1.1 referrers index,
//! optionally filtered by `?artifactType=`.

use serde_json::json;
use warp::http::{header, HeaderValue};
use warp::reply::Response as Reply;

use super::error::RegistryError;
use super::reply::{json_reply, with_namespace};
use super::request::{parse_digest, Request};
use super::Result;

pub(super) async fn list(request: &Request<'_>, name: &str, digest: &str) -> Result<Reply> {
    let route = request.route(name)?;
    let digest = parse_digest(digest, RegistryError::SubjectNotADigest)?;
    let detail = json!({ "digest": digest.to_string() });
    let mut descriptors = route
        .cache
        .referrers(&route.repo, &digest)
        .await
        .map_err(|e| RegistryError::cache_of(&route, e, detail))?;
    let wanted = request.query.artifact_type.as_ref();
    if let Some(wanted) = wanted {
        descriptors.retain(|d| d.get("artifactType").and_then(|a| a.as_str()) == Some(wanted));
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
    if wanted.is_some() {
        headers.insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(with_namespace(resp, &route))
}
