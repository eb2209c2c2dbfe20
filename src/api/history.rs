//! `/pulp/api/v3/status/history/?span=hour|day|week`: the dashboard's
//! history (see `manage/history/`). The admin sees every cache; anyone else
//! only where `browse = "public"`, and then only the public caches and
//! their repositories (ferry-wide totals included, as `status/` shows them).

use serde_json::json;
use warp::http::Method;
use warp::reply::Response as Reply;

use super::http::{ok, ApiError, Request};
use super::Api;
use crate::manage::Span;
use crate::visibility::Viewer;

pub(super) async fn get(api: &Api, req: &Request, viewer: &Viewer) -> Result<Reply, ApiError> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(&req.method));
    }
    let text = req.query.get("span").map_or("hour", String::as_str);
    let span = Span::parse(text).ok_or_else(|| {
        ApiError::bad_request(json!({
            "span": [format!("\"{text}\" is not a valid choice: hour, day or week.")]
        }))
    })?;
    ok(&api.manager.history(span, viewer).await?)
}
