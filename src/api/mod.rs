//! The management API under `/pulp/api/v3/`, in the shape of Pulp's
//! pull-through caching API so that existing scripts work unchanged. Every
//! endpoint but status and the OpenAPI document needs the admin account.

mod content;
mod distributions;
mod http;
mod openapi;
mod remotes;
mod repositories;
mod status;
mod tasks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::Tail;
use warp::reply::Response as Reply;
use warp::Filter;

use http::{json_response, ApiError, Request};
use openapi::openapi_json;

use crate::auth::AdminAuth;
use crate::manage::Manager;

/// The largest request body the API reads.
const MAX_BODY: u64 = 1024 * 1024;

pub struct Api {
    pub manager: Arc<Manager>,
    pub auth: Arc<AdminAuth>,
    pub data_dir: PathBuf,
}

impl Api {
    /// 202 with a finished task, as Pulp answers its asynchronous calls.
    async fn task_reply(&self, name: &str, created: Vec<String>) -> Result<Reply, ApiError> {
        let id = self.manager.finish_task(name, created).await?;
        Ok(json_response(
            StatusCode::ACCEPTED,
            &tasks::AsyncOperationResponse {
                task: format!("{}{id}/", tasks::COLLECTION),
            },
        ))
    }
}

pub fn routes(api: Arc<Api>) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let body = warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .or(warp::any().map(Bytes::new))
        .unify();
    warp::path!("pulp" / "api" / "v3" / ..)
        .and(warp::path::full())
        .and(warp::path::tail())
        .and(warp::method())
        .and(
            warp::query::<HashMap<String, String>>()
                .or(warp::any().map(HashMap::new))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(body)
        .and(warp::any().map(move || api.clone()))
        .then(
            |full: warp::path::FullPath,
             tail: Tail,
             method: Method,
             query: HashMap<String, String>,
             headers: HeaderMap,
             body: Bytes,
             api: Arc<Api>| async move {
                let gzip_ok = crate::compress::accepts_gzip(&headers);
                let req = Request {
                    method,
                    path: full.as_str().to_string(),
                    query,
                    headers,
                    body,
                };
                let resp = dispatch(&api, &req, tail.as_str())
                    .await
                    .unwrap_or_else(ApiError::into_response);
                crate::compress::maybe_gzip(resp, gzip_ok).await
            },
        )
}

async fn dispatch(api: &Api, req: &Request, tail: &str) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let public = matches!(segments.as_slice(), ["status"] | ["docs", "api.json"]);
    let authorization = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let admin = api.auth.check_basic(authorization);
    if !public && !admin {
        let detail = if authorization.is_some() {
            "Invalid username/password."
        } else {
            "Authentication credentials were not provided."
        };
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            body: json!({ "detail": detail }),
        });
    }
    match segments.as_slice() {
        ["status"] => status::get(api, admin).await,
        ["docs", "api.json"] => {
            let mut resp = warp::http::Response::new(openapi_json().into());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        ["tasks", id] => tasks::one(api, id).await,
        ["remotes", "container", "pull-through", rest @ ..] => {
            remotes::handle(api, req, rest).await
        }
        ["distributions", "container", "pull-through", rest @ ..] => {
            distributions::handle(api, req, rest).await
        }
        ["distributions", "container", "container", rest @ ..] => {
            repositories::handle_distributions(api, req, rest).await
        }
        ["repositories", "container", "container", rest @ ..] => {
            repositories::handle(api, req, rest).await
        }
        ["content", "container", rest @ ..] => content::handle(api, req, rest).await,
        _ => Err(ApiError::not_found()),
    }
}
