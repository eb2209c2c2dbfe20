//! Every registry-side failure, mapped to the OCI error format and a status
//! code in this one place.
//!
//! What clients print: containers/image (podman, skopeo) shows the OCI
//! `errors[].message` of a 4xx answer but only the status line of a 5xx
//! one ("received unexpected HTTP status: 504 Gateway Timeout"), and
//! containerd shows the status line for both. So a 5xx (and a 429) carries
//! its cause in the HTTP/1.1 reason phrase as well as in the body: the user
//! reads "504 upstream of cache docker-cache could not be resolved (DNS)".
//!
//! Who reads it: a cache is named by its base path; the upstream's address
//! (a private registry's host, say) only to the admin and in the log.

use serde_json::{json, Value};
use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::reply::Response as Reply;

use crate::cache::{CacheError, Cause, Route};
use crate::upstream::UpstreamError;

#[derive(Debug)]
pub(super) enum RegistryError {
    /// A name of a valid form but over the spec's length (400, as
    /// distribution means it).
    NameInvalid(String),
    /// No cache serves the name.
    NameUnknown(String),
    /// A name that cannot exist (a component outside the grammar): 404,
    /// as for a path docker-registry does not route, with `why`.
    NameMalformed {
        name: String,
        why: String,
    },
    /// Of a digest's form but invalid or of an algorithm ferry does not
    /// verify (400, as docker-registry answers on blobs).
    DigestInvalid(String),
    /// A reference that is neither a tag nor of a digest's form: it names
    /// no manifest (404, as docker-registry and the reference
    /// registry answer).
    ReferenceUnknown(String),
    /// A blob address not of a digest's form: it names no blob (404).
    NotADigest(String),
    /// A referrers subject not of a digest's form: it names no manifest.
    SubjectNotADigest(String),
    /// A push, upload or delete; `allow` lists what the path does answer.
    ReadOnly {
        allow: &'static str,
    },
    MethodNotAllowed {
        allow: &'static str,
    },
    NotFound,
    RangeNotSatisfiable {
        size: u64,
    },
    /// Credentials are needed (private distribution) or were wrong.
    Unauthorized {
        challenge: String,
    },
    /// A cache failure, with what the request named (for `detail`) and
    /// the cache that failed, if one was chosen.
    Cache {
        error: CacheError,
        detail: Value,
        source: Option<Source>,
    },
}

/// The cache a failure comes from, to name it in the message.
#[derive(Debug)]
pub(super) struct Source {
    base_path: String,
    /// `host[:port]` of its upstream: for the admin only.
    upstream: String,
}

impl RegistryError {
    pub(super) fn cache(error: CacheError, detail: Value) -> Self {
        RegistryError::Cache {
            error,
            detail,
            source: None,
        }
    }

    /// A failure of the cache `route` chose.
    pub(super) fn cache_of(route: &Route, error: CacheError, detail: Value) -> Self {
        let config = route.cache.config();
        let url = &config.upstream;
        let mut upstream = url.host_str().unwrap_or_default().to_string();
        if let Some(port) = url.port() {
            upstream.push_str(&format!(":{port}"));
        }
        RegistryError::Cache {
            error,
            detail,
            source: Some(Source {
                base_path: config.base_path.clone(),
                upstream,
            }),
        }
    }

    /// The answer; `admin` readers also learn the upstream's address.
    pub(super) fn into_response(self, admin: bool) -> Reply {
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
            RegistryError::NameMalformed { name, why } => (
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("repository name not known to this registry: {why}"),
                json!({ "name": name }),
            ),
            RegistryError::DigestInvalid(e) => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID", e, json!({}))
            }
            RegistryError::ReferenceUnknown(reference) => (
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!(
                    "manifest unknown: the reference is {}",
                    crate::domain::ReferenceError::NeitherTagNorDigest
                ),
                json!({ "reference": reference }),
            ),
            RegistryError::NotADigest(text) => (
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown: a blob is named by its digest (algorithm:hex)".into(),
                json!({ "digest": text }),
            ),
            RegistryError::SubjectNotADigest(text) => (
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown: referrers are listed for a manifest's digest (algorithm:hex)"
                    .into(),
                json!({ "digest": text }),
            ),
            RegistryError::ReadOnly { allow } => return method_not_allowed(
                "ferry is a read-only pull-through cache: pushes and deletes are not accepted here",
                allow,
            ),
            RegistryError::MethodNotAllowed { allow } => {
                return method_not_allowed("method not supported on this endpoint", allow)
            }
            // The spec's codes have no "no such path"; UNSUPPORTED is its
            // "the operation is unsupported".
            RegistryError::NotFound => (
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
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
            RegistryError::Cache {
                error,
                detail,
                source,
            } => return cache_error_response(error, detail, source.as_ref(), admin),
        };
        error_response(status, code, &message, detail)
    }
}

/// 405 with the `Allow` header RFC 9110 (15.5.6) requires.
fn method_not_allowed(message: &str, allow: &'static str) -> Reply {
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        message,
        json!({}),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// What a client is told of a cache failure: the reason phrase (short,
/// fit for a status line) and the body's message (with the full story for
/// the admin).
fn describe(error: &CacheError, source: Option<&Source>, admin: bool) -> (String, String) {
    let who = match source {
        Some(s) if admin => format!("upstream {} of cache {}", s.upstream, s.base_path),
        Some(s) => format!("upstream of cache {}", s.base_path),
        None => "upstream".to_string(),
    };
    match error {
        CacheError::Upstream(e) => {
            let short = format!("{who} {}", e.cause());
            // The details may hold the upstream's URL: the admin's only.
            let message = match e.detail() {
                Some(detail) if admin => format!("{short}: {detail}"),
                _ => short.clone(),
            };
            (short, message)
        }
        CacheError::DigestMismatch(_) | CacheError::Truncated { .. } => {
            let text = match source {
                Some(s) => format!("{error} (cache {})", s.base_path),
                None => error.to_string(),
            };
            (text.clone(), text)
        }
        // The details name the store's endpoint: the admin's only.
        CacheError::Store(e) if e.is_unavailable() => {
            let short = "the blob store (object store) is unavailable".to_string();
            let message = if admin {
                error.to_string()
            } else {
                short.clone()
            };
            (short, message)
        }
        _ => (error.to_string(), error.to_string()),
    }
}

fn cache_error_response(
    error: CacheError,
    detail: Value,
    source: Option<&Source>,
    admin: bool,
) -> Reply {
    let (reason, message) = describe(&error, source, admin);
    let (status, code) = match &error {
        CacheError::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        CacheError::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        CacheError::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        CacheError::Upstream(UpstreamError::RateLimited { .. }) => {
            (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS")
        }
        // Not even tried: the breaker is open until the probe sees it back.
        CacheError::Upstream(UpstreamError::KnownDown { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN")
        }
        // ferry's own cap on upstream connections, not the upstream's fault.
        CacheError::Upstream(UpstreamError::Busy { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN")
        }
        CacheError::Upstream(e) if e.is_no_answer() => (StatusCode::GATEWAY_TIMEOUT, "UNKNOWN"),
        CacheError::Store(e) if e.is_disk_full() => (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN"),
        // The object store is down or unreachable: passes by itself.
        CacheError::Store(e) if e.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        }
        _ if error.cause() == Cause::Upstream => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    };
    if status.is_server_error() {
        let base_path = source.map(|s| s.base_path.as_str());
        tracing::warn!(%status, cache = base_path, error = %error, "request failed");
    }
    let mut resp = error_response(status, code, &message, detail);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        set_reason(&mut resp, &reason);
    }
    let retry_after = match &error {
        CacheError::Upstream(UpstreamError::RateLimited { retry_after }) => {
            Some(retry_after.map_or(10, |d| d.as_secs().max(1)))
        }
        // The probe rechecks a down upstream at least this often.
        CacheError::Upstream(UpstreamError::KnownDown { .. }) => Some(5),
        CacheError::Upstream(UpstreamError::Busy { .. }) => Some(5),
        CacheError::Store(e) if e.is_unavailable() => Some(5),
        _ => None,
    };
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The longest reason phrase sent: a status line, not an essay.
const MAX_REASON: usize = 200;

/// Puts `text` in the HTTP/1.1 status line (hyper writes it in place of the
/// canonical phrase; HTTP/2 has none, and clients fall back to the status).
fn set_reason(resp: &mut Reply, text: &str) {
    let clean: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_REASON)
        .collect();
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(clean) {
        resp.extensions_mut().insert(reason);
    }
}

/// `{"errors":[{"code","message","detail"}]}` with the given status.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: Value,
) -> Reply {
    let body = json!({ "errors": [{ "code": code, "message": message, "detail": detail }] });
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::NoAnswer;

    fn unresolvable() -> CacheError {
        CacheError::Upstream(UpstreamError::Unreachable {
            why: NoAnswer::Unresolvable,
            detail: "error sending request for url (http://registry.internal:5000/v2/)".into(),
        })
    }

    fn source() -> Source {
        Source {
            base_path: "docker-cache".into(),
            upstream: "registry.internal:5000".into(),
        }
    }

    #[test]
    fn anonymous_readers_get_the_base_path_and_the_admin_the_address() {
        let (reason, message) = describe(&unresolvable(), Some(&source()), false);
        assert_eq!(
            reason,
            "upstream of cache docker-cache could not be resolved (DNS)"
        );
        assert_eq!(message, reason);
        let (reason, message) = describe(&unresolvable(), Some(&source()), true);
        assert_eq!(
            reason,
            "upstream registry.internal:5000 of cache docker-cache could not be resolved (DNS)"
        );
        assert!(
            message.contains("http://registry.internal:5000/v2/"),
            "{message}"
        );
    }

    #[test]
    fn the_status_line_carries_the_cause() {
        let resp = cache_error_response(unresolvable(), json!({}), Some(&source()), false);
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(
            reason.as_bytes(),
            b"upstream of cache docker-cache could not be resolved (DNS)"
        );
        let mut resp = error_response(StatusCode::BAD_GATEWAY, "UNKNOWN", "x", json!({}));
        set_reason(&mut resp, "bad\r\nInjected: header\u{e9}");
        let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"bad??Injected: header?");
    }
}
