//! FAKE upstreams for hostile answers no real registry gives (a tag list
//! whose `Link` or redirect leads to another origin, a Bearer realm in
//! plain HTTP on another origin, a tag list of huge pages), and an
//! [`AuthRecorder`]: the "other origin", which records whether it received
//! an `Authorization` header. Both listen on 127.0.0.1 on free ports (another
//! port is another origin).

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::upstream::{PASSWORD, USER};
use super::util::BackgroundServer;

/// How the fake upstream misbehaves.
#[derive(Clone)]
pub enum Hostile {
    /// Basic auth (`USER`/`PASSWORD`); the tag list's first page links its
    /// next page on `other` (an absolute URL of another origin).
    TagsLinkTo(String),
    /// Basic auth; `tags/list` answers 307 to the same path on `other`.
    TagsRedirectTo(String),
    /// Every request: 401 with a Bearer challenge whose realm is `realm`.
    BearerRealm(String),
    /// No auth; the tag list has `pages` pages of about `page_bytes` bytes
    /// each (tags of 100 characters), linked with relative `Link`s.
    HugeTags { pages: usize, page_bytes: usize },
}

pub struct FakeUpstream {
    server: BackgroundServer,
}

impl FakeUpstream {
    pub fn start(hostile: Hostile) -> FakeUpstream {
        let route = warp::path::full()
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("authorization"))
            .map(move |path: warp::path::FullPath, query: String, auth| {
                answer(&hostile, path.as_str(), &query, auth)
            });
        let server = BackgroundServer::start(move |l| warp::serve(route).incoming(l).run());
        FakeUpstream { server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

fn answer(hostile: &Hostile, path: &str, query: &str, auth: Option<String>) -> Response {
    let basic = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let needs_basic = matches!(hostile, Hostile::TagsLinkTo(_) | Hostile::TagsRedirectTo(_));
    if needs_basic && auth.as_deref() != Some(basic.as_str()) {
        return challenge("Basic realm=\"fake\"".into());
    }
    let tags_list = path.ends_with("/tags/list");
    match hostile {
        Hostile::BearerRealm(realm) => {
            challenge(format!("Bearer realm=\"{realm}\",service=\"fake\""))
        }
        Hostile::TagsLinkTo(other) if tags_list => {
            let next = format!("<{other}{path}?last=1.0&n=1000>; rel=\"next\"");
            let body = warp::reply::json(&serde_json::json!({"name": "x", "tags": ["1.0"]}));
            warp::reply::with_header(body, "link", next).into_response()
        }
        Hostile::TagsRedirectTo(other) if tags_list => {
            let to = format!("{other}{path}");
            let reply = warp::reply::with_status(warp::reply(), StatusCode::TEMPORARY_REDIRECT);
            warp::reply::with_header(reply, "location", to).into_response()
        }
        Hostile::HugeTags { pages, page_bytes } if tags_list => {
            let page: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("page="))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let body = huge_page(page, *page_bytes);
            let reply = warp::reply::with_header(body, "content-type", "application/json");
            if page + 1 < *pages {
                let next = format!("<{path}?page={}>; rel=\"next\"", page + 1);
                warp::reply::with_header(reply, "link", next).into_response()
            } else {
                reply.into_response()
            }
        }
        _ if path == "/v2/" => warp::reply::json(&serde_json::json!({})).into_response(),
        _ => {
            let body = serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "fake"}]});
            warp::reply::with_status(warp::reply::json(&body), StatusCode::NOT_FOUND)
                .into_response()
        }
    }
}

fn challenge(value: String) -> Response {
    let body = serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "fake"}]});
    let reply = warp::reply::with_status(warp::reply::json(&body), StatusCode::UNAUTHORIZED);
    warp::reply::with_header(reply, "www-authenticate", value).into_response()
}

/// `{"name":"library/big","tags":[...]}` of about `bytes` bytes, its tags
/// distinct across pages.
fn huge_page(page: usize, bytes: usize) -> String {
    let mut body = String::with_capacity(bytes + 128);
    body.push_str(r#"{"name":"library/big","tags":["#);
    let mut i = 0;
    while body.len() < bytes {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("\"p{page:04}-{i:08}-{}\"", "x".repeat(85)));
        i += 1;
    }
    body.push_str("]}");
    body
}

/// How many tags a page of `bytes` bytes lists.
pub fn huge_page_tags(bytes: usize) -> usize {
    let page: serde_json::Value = serde_json::from_str(&huge_page(0, bytes)).unwrap();
    page["tags"].as_array().unwrap().len()
}

/// Another origin: answers every request `200 {"token":..,"tags":[]}` and
/// records each request's `Authorization` header (or its absence).
pub struct AuthRecorder {
    server: BackgroundServer,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl AuthRecorder {
    pub fn start() -> AuthRecorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let route =
            warp::header::optional::<String>("authorization").map(move |auth: Option<String>| {
                log.lock().unwrap().push(auth);
                warp::reply::json(
                    &serde_json::json!({"token": "recorded", "name": "x", "tags": []}),
                )
            });
        let server = BackgroundServer::start(move |l| warp::serve(route).incoming(l).run());
        AuthRecorder { server, seen }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// How many requests arrived.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The `Authorization` headers received (requests without one left out).
    pub fn authorizations(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
}
