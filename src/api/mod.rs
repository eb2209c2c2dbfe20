//! The management API under `/pulp/api/v3/`, in the shape of Pulp's
//! pull-through caching API so that existing scripts work unchanged. Status
//! and the OpenAPI document are public; with `browse = "public"` anyone may
//! also read what public caches hold (repositories, their distributions,
//! tags, manifests, blobs), filtered by [`Viewer`]. Everything else (every
//! change, remotes with their upstream credentials, tasks) needs the admin.

mod body;
mod bundles;
mod bundles_import;
mod content;
pub(crate) mod distributions;
mod history;
mod hrefs;
mod http;
mod login;
mod openapi;
pub(crate) mod remotes;
mod repositories;
mod status;
mod tasks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::Tail;
use warp::reply::Response as Reply;
use warp::Filter;

use http::{json_response, ApiError, Request};
use openapi::openapi_json;

use crate::auth::{AdminAuth, Login};
use crate::config::Browse;
use crate::manage::Manager;
use crate::session::Sessions;
use login::Credential;

/// The largest request body the API reads.
const MAX_BODY: u64 = 1024 * 1024;
/// ... and for `bundles/plan/` and `bundles/export/` (some 100,000 blobs).
const MAX_EXPORT_BODY: u64 = 16 * 1024 * 1024;

pub(crate) struct Api {
    pub manager: Arc<Manager>,
    pub auth: Arc<AdminAuth>,
    /// The dashboard's login sessions (shared with the registry, which
    /// lets them pull from private distributions).
    pub sessions: Arc<Sessions>,
    pub data_dir: PathBuf,
    pub browse: Browse,
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

pub(crate) fn routes(
    api: Arc<Api>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
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
        .and(warp::body::stream())
        .and(warp::ext::optional::<crate::origin::Connection>())
        .and(warp::any().map(move || api.clone()))
        .then(
            |full: warp::path::FullPath,
             tail: Tail,
             method: Method,
             query: HashMap<String, String>,
             headers: HeaderMap,
             stream,
             connection: Option<crate::origin::Connection>,
             api: Arc<Api>| async move {
                let gzip_ok = crate::compress::accepts_gzip(&headers);
                // A bundle upload is streamed to its handler, not read here.
                let uploading = bundles_import::is_upload(&method, tail.as_str());
                let (body, upload) = if uploading {
                    (Ok(bytes::Bytes::new()), Some(upload_of(stream)))
                } else {
                    (
                        body::read(&method, &headers, stream, body_limit(tail.as_str())).await,
                        None,
                    )
                };
                let req = Request {
                    method,
                    path: full.as_str().to_string(),
                    query,
                    origin: crate::origin::origin_of(connection.as_ref(), &headers),
                    client: connection.map(|c| c.peer.ip()),
                    headers,
                    body,
                    upload: std::sync::Mutex::new(upload),
                };
                let mut resp = dispatch(&api, &req, tail.as_str())
                    .await
                    .unwrap_or_else(ApiError::into_response);
                // A Basic challenge makes a browser prompt for the password
                // and then send it with every request, other sites' forms
                // included: only non-browser clients get it.
                if login::from_browser(&req.headers) {
                    resp.headers_mut().remove(header::WWW_AUTHENTICATE);
                }
                // A body refused unread (too large, not JSON) is still on the
                // wire: the connection cannot carry another request, and the
                // client must not try one on it.
                if req.body.is_err() || (uploading && !resp.status().is_success()) {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                // A download (a bundle) is streamed as written: never
                // collected to be gzipped.
                if resp.headers().contains_key(header::CONTENT_DISPOSITION) {
                    return crate::web::data_only(resp);
                }
                crate::web::data_only(crate::compress::maybe_gzip(resp, gzip_ok).await)
            },
        )
}

/// The largest body `tail` takes: a selection lists the blobs the receiver
/// has, and a signed export hands back its manifest, which lists every blob.
fn body_limit(tail: &str) -> u64 {
    if matches!(
        tail.trim_end_matches('/'),
        "bundles/export" | "bundles/plan"
    ) {
        MAX_EXPORT_BODY
    } else {
        MAX_BODY
    }
}

async fn dispatch(api: &Api, req: &Request, tail: &str) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let public = matches!(segments.as_slice(), ["status"] | ["docs", "api.json"]);
    let authorization = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    login::refuse_foreign_write(req)?;
    // One throttled check of the admin password, whichever endpoint (the
    // dashboard's login included) it comes to.
    let login = api.auth.login(req.client, authorization, "api");
    let credential = match authorization {
        Some(_) => (login == Login::Admin).then_some(Credential::Password),
        None => api
            .sessions
            .check_request(&req.headers)
            .then_some(Credential::Session),
    };
    let admin = credential.is_some();
    // Anonymous reads of content, when browsing is open. Wrong credentials
    // stay an error rather than falling back to anonymous.
    let browsing = authorization.is_none()
        && req.method == Method::GET
        && reads_content(&segments)
        && api.browse.lets(false);
    if !public && !admin && !browsing {
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
    if let Some(credential) = credential {
        login::require_own_page(req, credential)?;
    }
    // Only now: an unauthenticated or forged request learns nothing of it.
    req.body.as_ref().map_err(Clone::clone)?;
    let viewer = &api.manager.viewer(admin);
    match segments.as_slice() {
        ["status"] => status::get(api, admin).await,
        ["status", "history"] => history::get(api, req, viewer).await,
        ["docs", "api.json"] => {
            let mut resp = warp::http::Response::new(openapi_json().into());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        ["login"] => match credential {
            Some(credential) => login::handle(api, req, credential).await,
            None => Err(ApiError::not_found()),
        },
        ["tasks", id] => tasks::one(api, id).await,
        ["remotes", "container", "pull-through", rest @ ..] => {
            remotes::handle(api, req, rest).await
        }
        ["distributions", "container", "pull-through", rest @ ..] => {
            distributions::handle(api, req, rest, viewer).await
        }
        ["distributions", "container", "container", rest @ ..] => {
            repositories::handle_distributions(api, req, rest, viewer).await
        }
        ["repositories", "container", "container", rest @ ..] => {
            repositories::handle(api, req, rest, viewer).await
        }
        ["content", "container", rest @ ..] => content::handle(api, req, rest, viewer).await,
        ["bundles", rest @ ("import" | "inventory")] => {
            bundles_import::handle(api, req, &[rest]).await
        }
        ["bundles", rest @ ..] => bundles::handle(api, req, rest).await,
        _ => Err(ApiError::not_found()),
    }
}

/// An upload's body as chunks of bytes.
fn upload_of<S, B>(stream: S) -> crate::manage::Upload
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    Box::pin(stream.map(|chunk| {
        chunk
            .map(|mut b| b.copy_to_bytes(b.remaining()))
            .map_err(std::io::Error::other)
    }))
}

/// The read-only endpoints of what the caches hold (a GET on them never
/// changes anything and shows no upstream URL or credential).
fn reads_content(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["repositories", "container", "container", ..]
            | [
                "distributions",
                "container",
                "container" | "pull-through",
                ..
            ]
            | ["content", "container", ..]
            | ["status", "history"]
    )
}
