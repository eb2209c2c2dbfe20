//! `/v2/<name>/tags/list`: a repository's tags, paginated.

use serde_json::json;
use warp::reply::Response as Reply;

use super::error::RegistryError;
use super::pagination::{add_next_link, paginate};
use super::reply::{json_reply, with_namespace};
use super::request::Request;
use super::Result;

pub(super) async fn list(request: &Request<'_>, name: &str) -> Result<Reply> {
    if !request.registry.browse.lets(request.caller.is_admin()) {
        let scope = format!("repository:{name}:pull");
        return Err(request.challenge(Some(&scope)));
    }
    let route = request.route(name)?;
    let tags = route
        .cache
        .tags(&route.repo)
        .await
        .map_err(|e| RegistryError::cache_of(&route, e, json!({ "name": name })))?;
    let query = &request.query;
    let (page, more) = paginate(tags, query.n, query.last.as_deref());
    let mut resp = json_reply(&json!({ "name": name, "tags": page }));
    add_next_link(&mut resp, &format!("/v2/{name}/tags/list"), query.n, more);
    Ok(with_namespace(resp, &route))
}
