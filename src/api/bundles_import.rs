//! `POST /pulp/api/v3/bundles/import/` (the bundle as the request body,
//! streamed into the import; options as query parameters; answers a JSON
//! report) and `GET /pulp/api/v3/bundles/inventory/` (what this ferry
//! holds, for a differential export). ferry's additions, admin only.

use serde::Serialize;
use warp::http::{header, Method, StatusCode};
use warp::reply::Response as Reply;

use super::http::{json_response, ApiError, Request};
use super::Api;
use crate::manage::{ImportMark, ImportRequest, Upload};

/// Body types an upload may declare: none a browser form can send, so a
/// cross-site page cannot post one without CORS asking first.
const UPLOAD_TYPES: [&str; 4] = [
    "application/x-tar",
    "application/zstd",
    "application/octet-stream",
    "application/vnd.oci.image.layout.v1+tar",
];

/// Whether this request's body is an upload, streamed to its handler
/// instead of read whole as JSON.
pub(super) fn is_upload(method: &Method, tail: &str) -> bool {
    *method == Method::POST && tail.trim_matches('/') == "bundles/import"
}

/// A tag's provenance (ferry's addition to tags): null unless an import
/// pointed it where it points now.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ImportedResponse {
    /// The bundle's id.
    pub bundle: String,
    /// Where the bundle was made, or `oci-layout`.
    pub source: String,
    pub imported_at: String,
}

impl From<ImportMark> for ImportedResponse {
    fn from(mark: ImportMark) -> Self {
        ImportedResponse {
            bundle: mark.bundle,
            source: mark.source,
            imported_at: super::http::timestamp_secs(mark.imported_at),
        }
    }
}

/// What an import answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ImportResponse {
    /// The bundle's id (a fresh one for a plain OCI layout).
    bundle: String,
    /// Where it was made (its `source.name`), or `oci-layout`.
    source: String,
    /// `<base_path>/<repository>:<tag>` of each tag pointed by this import.
    imported: Vec<String>,
    /// Tags that already pointed at the bundle's content (a re-import).
    unchanged: Vec<String>,
    blobs_stored: u64,
    bytes_stored: u64,
    /// Blobs of the bundle already held (read through, not stored again).
    blobs_present: u64,
    pinned: Vec<String>,
    /// Pins refused, each with why (the content is imported all the same).
    pin_refused: Vec<String>,
}

pub(super) async fn handle(api: &Api, req: &Request, rest: &[&str]) -> Result<Reply, ApiError> {
    match (rest, &req.method) {
        (["import"], &Method::POST) => import(api, req).await,
        (["inventory"], &Method::GET) => {
            let inventory = api.manager.bundle_inventory().await?;
            Ok(json_response(StatusCode::OK, &inventory))
        }
        (["import"] | ["inventory"], method) => Err(ApiError::method_not_allowed(method)),
        _ => Err(ApiError::not_found()),
    }
}

async fn import(api: &Api, req: &Request) -> Result<Reply, ApiError> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !UPLOAD_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            body: serde_json::json!({ "detail": format!(
                "Unsupported media type \"{content_type}\" in request: send the bundle as {}.",
                UPLOAD_TYPES.join(", ")
            ) }),
        });
    }
    let upload: Option<Upload> = req.upload.lock().unwrap_or_else(|p| p.into_inner()).take();
    let upload = upload.ok_or_else(ApiError::not_found)?;
    let query = |key: &str| req.query.get(key).filter(|v| !v.is_empty()).cloned();
    let request = ImportRequest {
        map: query("map")
            .map(|m| m.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        to: query("to"),
        pin: query("pin").is_some_and(|p| p == "true" || p == "1"),
        trusted_key: query("trusted_key"),
    };
    let report = api.manager.import_bundle(upload, request).await?;
    Ok(json_response(
        StatusCode::OK,
        &ImportResponse {
            bundle: report.bundle,
            source: report.source,
            imported: report.imported,
            unchanged: report.unchanged,
            blobs_stored: report.blobs_stored,
            bytes_stored: report.bytes_stored,
            blobs_present: report.blobs_present,
            pinned: report.pinned,
            pin_refused: report.pin_refused,
        },
    ))
}
