//! The two ways the registry turns a caller away before any endpoint runs:
//! a Bearer challenge (log in, or use a token for this scope) and the 429
//! of the login throttle.

use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response as Reply;

use super::error::{error_response, RegistryError};

/// 429 for an address that guessed the admin password wrong too often.
pub(super) fn throttled(retry_after: std::time::Duration) -> Reply {
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
pub(super) fn challenge(origin: &str, scope: Option<&str>) -> RegistryError {
    let mut challenge = format!("Bearer realm=\"{origin}/token\",service=\"ferry\"");
    if let Some(scope) = scope {
        challenge.push_str(&format!(",scope=\"{scope}\""));
    }
    RegistryError::Unauthorized { challenge }
}
