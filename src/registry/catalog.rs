//! `/v2/_catalog`: the repositories the caller may see, paginated.

use serde_json::json;
use warp::reply::Response as Reply;

use super::error::RegistryError;
use super::pagination::{add_next_link, paginate};
use super::reply::json_reply;
use super::request::Request;
use super::Result;
use crate::visibility::Viewer;

pub(super) async fn get(request: &Request<'_>) -> Result<Reply> {
    let (registry, caller, query) = (request.registry, &request.caller, &request.query);
    if !registry.browse.lets(caller.is_admin()) {
        return Err(request.challenge(Some("registry:catalog:*")));
    }
    let caches = &registry.caches;
    let mut names = caches
        .catalog()
        .await
        .map_err(|e| RegistryError::cache(e, json!({})))?;
    let viewer = Viewer::of(caller.sees_private_catalog(), caches);
    names.retain(|n| viewer.sees_repository(n));
    let (page, more) = paginate(names, query.n, query.last.as_deref());
    let mut resp = json_reply(&json!({ "repositories": page }));
    add_next_link(&mut resp, "/v2/_catalog", query.n, more);
    Ok(resp)
}
