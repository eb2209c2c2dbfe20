//! `/v2/`: the API version check clients (and `podman login`) start with.

use serde_json::json;
use warp::reply::Response as Reply;

use super::reply::json_reply;
use super::request::Request;
use super::Result;
use crate::auth::Caller;

/// Asks anonymous clients to authenticate only when there is something
/// they cannot see (a private cache, or the listings with `browse =
/// "admin"`), so that `podman login` can check passwords and clients send
/// credentials where they are needed.
pub(super) fn get(request: &Request<'_>) -> Result<Reply> {
    let registry = request.registry;
    let closed = registry.caches.any_private() || !registry.browse.lets(false);
    if request.caller == Caller::Anonymous && closed {
        return Err(request.challenge(None));
    }
    Ok(json_reply(&json!({})))
}
