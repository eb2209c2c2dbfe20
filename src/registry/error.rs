//! Every registry-side failure, mapped to the OCI error format and a status
//! code in this one place.

use serde_json::{json, Value};
use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::reply::Response as Reply;

use crate::cache::{CacheError, Cause};
use crate::store::StoreError;
use crate::upstream::UpstreamError;

#[derive(Debug)]
pub enum RegistryError {
    NameInvalid(String),
    NameUnknown(String),
    DigestInvalid(String),
    TagInvalid(String),
    ReadOnly,
    MethodNotAllowed,
    NotFound,
    RangeNotSatisfiable {
        size: u64,
    },
    /// Credentials are needed (private distribution) or were wrong.
    Unauthorized {
        challenge: String,
    },
    /// A cache failure, with what the request named (for `detail`).
    Cache {
        error: CacheError,
        detail: Value,
    },
}

impl RegistryError {
    pub fn cache(error: CacheError, detail: Value) -> Self {
        RegistryError::Cache { error, detail }
    }

    pub fn into_response(self) -> Reply {
        let (status, code, message, detail) = match self {
            RegistryError::NameInvalid(e) => {
                (StatusCode::BAD_REQUEST, "NAME_INVALID", e, json!({}))
            }
            RegistryError::NameUnknown(name) => (
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to this registry: no cache serves it".into(),
                json!({ "name": name }),
            ),
            RegistryError::DigestInvalid(e) => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID", e, json!({}))
            }
            RegistryError::TagInvalid(e) => {
                (StatusCode::BAD_REQUEST, "MANIFEST_INVALID", e, json!({}))
            }
            RegistryError::ReadOnly => (
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "ferry is a read-only pull-through cache: pushes and deletes are not accepted here"
                    .into(),
                json!({}),
            ),
            RegistryError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "method not supported on this endpoint".into(),
                json!({}),
            ),
            RegistryError::NotFound => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such endpoint of the distribution API".into(),
                json!({}),
            ),
            RegistryError::RangeNotSatisfiable { size } => {
                let mut resp = error_response(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "SIZE_INVALID",
                    "requested range not satisfiable",
                    json!({ "size": size }),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return resp;
            }
            RegistryError::Unauthorized { challenge } => {
                let mut resp = error_response(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required: log in with ferry's admin account",
                    json!({}),
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                return resp;
            }
            RegistryError::Cache { error, detail } => return cache_error_response(error, detail),
        };
        error_response(status, code, &message, detail)
    }
}

fn cache_error_response(error: CacheError, detail: Value) -> Reply {
    let message = error.to_string();
    let (status, code) = match &error {
        CacheError::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        CacheError::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        CacheError::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        CacheError::Upstream(UpstreamError::RateLimited { retry_after }) => {
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                &message,
                detail,
            );
            let secs = retry_after.map_or(10, |d| d.as_secs().max(1));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return resp;
        }
        CacheError::Upstream(e) if e.is_no_answer() => (StatusCode::GATEWAY_TIMEOUT, "UNKNOWN"),
        CacheError::Store(e) if e.is_disk_full() => (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN"),
        _ if error.cause() == Cause::Upstream => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    };
    if status.is_server_error() {
        tracing::warn!(%status, error = %message, "request failed");
    }
    error_response(status, code, &message, detail)
}

/// `{"errors":[{"code","message","detail"}]}` with the given status.
pub fn error_response(status: StatusCode, code: &str, message: &str, detail: Value) -> Reply {
    let body = json!({ "errors": [{ "code": code, "message": message, "detail": detail }] });
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        RegistryError::cache(e.into(), json!({}))
    }
}
