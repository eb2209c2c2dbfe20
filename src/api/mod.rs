//! The management API under `/pulp/api/v3/`, in the shape of Pulp's
//! pull-through caching API so that existing scripts work unchanged. Every
//! endpoint but status and the OpenAPI document needs the admin account.

mod content;
mod distributions;
mod http;
mod remotes;
mod repositories;
mod status;
mod tasks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use utoipa::OpenApi;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::Tail;
use warp::reply::Response as Reply;
use warp::Filter;

use http::{json_response, ApiError, Request};

use crate::auth::{AdminAuth, Login};
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

#[derive(OpenApi)]
#[openapi(
    info(title = "ferry management API", description = "Pulp-compatible pull-through caching API of ferry"),
    paths(
        remotes::list, remotes::create, remotes::one,
        distributions::list, distributions::create, distributions::one,
        repositories::handle, repositories::handle_distributions,
        content::handle, tasks::one, status::get
    ),
    components(schemas(
        remotes::RemoteResponse, remotes::RemoteInput, remotes::HiddenField,
        distributions::DistributionResponse, distributions::DistributionInput,
        repositories::RepositoryResponse, repositories::RepositoryVersionResponse,
        repositories::RepositoryDistributionResponse, repositories::RemoveInput,
        content::TagResponse, content::ManifestResponse, content::BlobResponse,
        tasks::TaskResponse, tasks::AsyncOperationResponse, status::StatusResponse
    )),
    modifiers(&BasicAuth)
)]
struct ApiDoc;

struct BasicAuth;

impl utoipa::Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers and types above.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into())
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
        .and(warp::ext::optional::<crate::origin::Connection>())
        .and(warp::any().map(move || api.clone()))
        .then(
            |full: warp::path::FullPath,
             tail: Tail,
             method: Method,
             query: HashMap<String, String>,
             headers: HeaderMap,
             body: Bytes,
             connection: Option<crate::origin::Connection>,
             api: Arc<Api>| async move {
                let gzip_ok = crate::compress::accepts_gzip(&headers);
                let req = Request {
                    method,
                    path: full.as_str().to_string(),
                    query,
                    origin: crate::origin::origin_of(connection.as_ref(), &headers),
                    client: connection.map(|c| c.peer.ip()),
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
    let login = api.auth.login(req.client, authorization, "api");
    let admin = login == Login::Admin;
    if !public && !admin {
        let (status, detail) = match login {
            Login::Throttled { retry_after } => {
                let mut resp = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({ "detail": "Too many failed logins from this address; try again later." }),
                );
                let secs = retry_after.as_secs().max(1);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return Ok(resp);
            }
            Login::Missing if authorization.is_none() => (
                StatusCode::UNAUTHORIZED,
                "Authentication credentials were not provided.",
            ),
            _ => (StatusCode::UNAUTHORIZED, "Invalid username/password."),
        };
        return Err(ApiError {
            status,
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
