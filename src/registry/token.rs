//! `/token`: the token endpoint of the registry's Bearer flow.

use serde_json::json;
use warp::http::HeaderMap;
use warp::reply::Response as Reply;

use super::challenge::throttled;
use super::error::RegistryError;
use super::reply::json_reply;
use super::request::{authorization, client_ip};
use crate::auth::{Access, Caller, Grant};
use crate::origin::Connection;

/// A token grants pulls of the repositories its `scope` names (private
/// ones only on the admin's credentials); anonymous callers get one for
/// public content (what clients ask for before pulling).
pub(super) fn issue(
    access: &Access,
    query: &str,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Reply {
    let admin = match access.caller(authorization(headers), client_ip(connection)) {
        Caller::Admin => true,
        Caller::Anonymous => false,
        Caller::Throttled { retry_after } => return throttled(retry_after),
        _ => {
            return RegistryError::Unauthorized {
                challenge: "Basic realm=\"ferry\"".into(),
            }
            .into_response(false)
        }
    };
    let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    let grant = Grant::for_scopes(admin, scopes.iter().map(String::as_str));
    let (token, expires_in) = access.tokens.issue(grant);
    let issued_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    json_reply(&json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": issued_at,
    }))
}
