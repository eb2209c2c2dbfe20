//! The web dashboard: the files of `web/`, embedded in the binary. `GET /`
//! answers `index.html`, `GET /ui/<file>` the other assets. The page itself
//! talks only to the management API, `/metrics` and the registry.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};
use warp::http::{header, HeaderValue, StatusCode};
use warp::path::Tail;
use warp::reply::Response;
use warp::Filter;

use crate::compress;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// The placeholder in `index.html` replaced by [`asset_version`], so that
/// long-cached assets are fetched again after an upgrade.
const VERSION_PLACEHOLDER: &str = "__ASSET_VERSION__";

/// Assets other than `index.html` may be cached this long (a week): their
/// URLs carry the asset version.
const ASSET_MAX_AGE: &str = "public, max-age=604800";

/// Only the page's own files and API: no inline script, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// For the registry's and the API's answers, which are data, never a page:
/// should a browser be led to open one (a manifest an upstream labelled
/// `text/html`, say), it runs nothing, loads nothing, and is framed nowhere.
const DATA_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// `resp` with the headers that keep a browser from treating data as a page
/// of ferry's origin (no sniffing, the data-only CSP).
pub(crate) fn data_only(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DATA_CSP),
    );
    resp
}

/// `Content-Type` by file extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A short hash of every embedded asset but `index.html`.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut names: Vec<_> = Assets::iter().filter(|n| n != "index.html").collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            if let Some(file) = Assets::get(&name) {
                hasher.update(name.as_bytes());
                hasher.update(file.metadata.sha256_hash());
            }
        }
        hex::encode(&hasher.finalize()[..6])
    })
}

/// An embedded file's bytes, without a copy where they are `'static` (the
/// release build embeds them in the binary).
fn bytes_of(data: Cow<'static, [u8]>) -> Bytes {
    match data {
        Cow::Borrowed(b) => Bytes::from_static(b),
        Cow::Owned(v) => Bytes::from(v),
    }
}

fn response(body: Bytes, path: &str, cache_control: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `index.html`, never cached without revalidation.
fn index() -> Response {
    let Some(file) = Assets::get("index.html") else {
        let mut resp = Response::new("the dashboard is not built in\n".into());
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let html = String::from_utf8_lossy(&file.data).replace(VERSION_PLACEHOLDER, asset_version());
    let mut resp = response(Bytes::from(html), "index.html", "no-cache");
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // No referrer leaves for another site. `same-origin` rather than
    // `no-referrer`: under the latter a form POST (the bundle download) says
    // `Origin: null`, and the API refuses a session write it cannot place.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// One asset under `/ui/`, or `None` (404 from the routes after this).
fn asset(path: &str) -> Option<Response> {
    if path.is_empty() || path == "index.html" {
        return Some(index());
    }
    let file = Assets::get(path)?;
    Some(response(bytes_of(file.data), path, ASSET_MAX_AGE))
}

/// Assets gzipped once, on first request: they never change while ferry runs.
static GZIPPED: Mutex<BTreeMap<String, Bytes>> = Mutex::new(BTreeMap::new());

/// `data` gzipped, compressed on first use only.
async fn gzipped(path: &str, data: &[u8]) -> Option<Bytes> {
    let cached = GZIPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path)
        .cloned();
    if cached.is_some() {
        return cached;
    }
    let bytes = Bytes::from(compress::gzip(data).await.ok()?);
    let mut cache = GZIPPED.lock().unwrap_or_else(|p| p.into_inner());
    cache.insert(path.to_string(), bytes.clone());
    Some(bytes)
}

/// `asset`, gzipped when the browser accepts it and it is text.
async fn encoded_asset(path: &str, gzip_ok: bool) -> Option<Response> {
    let text = path.ends_with(".js") || path.ends_with(".css");
    if !gzip_ok || !text {
        return asset(path);
    }
    let file = Assets::get(path)?;
    let mut resp = response(gzipped(path, &file.data).await?, path, ASSET_MAX_AGE);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Some(resp)
}

/// `GET /` and `GET /ui/<file>`.
pub(crate) fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let accept = warp::header::optional::<String>("accept-encoding")
        .map(|value: Option<String>| compress::gzip_in(value.as_deref()));
    let root = warp::get()
        .and(warp::path::end())
        .and(accept)
        .then(|gzip_ok: bool| async move { compress::maybe_gzip(index(), gzip_ok).await });
    let assets = warp::get()
        .and(warp::path("ui"))
        .and(warp::path::tail())
        .and(accept)
        .and_then(|tail: Tail, gzip_ok: bool| async move {
            encoded_asset(tail.as_str(), gzip_ok)
                .await
                .ok_or_else(warp::reject::not_found)
        });
    root.or(assets).unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_index_and_assets_with_types_and_caching() {
        let index = index();
        assert_eq!(index.status(), 200);
        assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(index.headers()["cache-control"], "no-cache");
        assert!(index.headers().contains_key("content-security-policy"));
        let html = String::from_utf8_lossy(&Assets::get("index.html").unwrap().data).into_owned();
        assert!(html.contains(VERSION_PLACEHOLDER));

        let js = asset("app.js").unwrap();
        assert_eq!(
            js.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(js.headers()["cache-control"], ASSET_MAX_AGE);
        let css = asset("style.css").unwrap();
        assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
        let icon = asset("favicon.svg").unwrap();
        assert_eq!(icon.headers()["content-type"], "image/svg+xml");
        assert!(html.contains("href=\"/ui/favicon.svg?v=__ASSET_VERSION__\""));
        assert_eq!(asset_version().len(), 12);

        for missing in ["nope.js", "../Cargo.toml", "/etc/passwd"] {
            assert!(asset(missing).is_none(), "{missing}");
        }
    }
}
