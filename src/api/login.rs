//! `/pulp/api/v3/login/`, in Pulp's shape: `POST` with the admin password
//! (Basic) starts a session held in an `HttpOnly` cookie, `GET` says who is
//! logged in, `DELETE` logs out. And the checks that keep other web pages
//! from acting with that session: browsers say where a request comes from
//! (`Origin`, `Sec-Fetch-Site`), and writes from anywhere but ferry's own
//! page are refused.

use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response as Reply;

use super::http::{json_response, ApiError, Request};
use super::Api;
use crate::auth::ADMIN_USER;
use crate::session;

/// How a request proved it is the admin's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Credential {
    /// `Authorization: Basic` with the admin password.
    Password,
    /// The dashboard's session cookie.
    Session,
}

pub(super) async fn handle(
    api: &Api,
    req: &Request,
    credential: Credential,
) -> Result<Reply, ApiError> {
    let user = json!({ "username": ADMIN_USER });
    let secure = https_page(&req.headers);
    match req.method {
        Method::GET => Ok(json_response(StatusCode::OK, &user)),
        Method::POST if credential == Credential::Password => {
            let id = api.sessions.create();
            Ok(with_cookie(
                json_response(StatusCode::CREATED, &user),
                &session::set_cookie(&id, secure),
            ))
        }
        Method::POST => Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            body: json!({ "detail": "Log in with the admin password." }),
        }),
        Method::DELETE => {
            if let Some(id) = session::cookie(&req.headers) {
                api.sessions.end(id);
            }
            let mut resp = warp::http::Response::new(Vec::new().into());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(with_cookie(resp, &session::clear_cookie(secure)))
        }
        ref other => Err(ApiError::method_not_allowed(other)),
    }
}

fn with_cookie(mut resp: Reply, cookie: &str) -> Reply {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Whether the page asking is served over HTTPS (its cookie then gets
/// `Secure`). The dashboard's writes always carry `Origin`.
fn https_page(headers: &HeaderMap) -> bool {
    header_str(headers, header::ORIGIN.as_str()).is_some_and(|o| o.starts_with("https://"))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `Origin` names the host this request was sent to.
fn origin_is_own(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = header_str(headers, header::HOST.as_str()) else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| r.eq_ignore_ascii_case(host))
}

/// Whether a browser says the request comes from a page of ferry's own
/// origin.
pub(super) fn proven_same_origin(headers: &HeaderMap) -> bool {
    match header_str(headers, header::ORIGIN.as_str()) {
        Some(origin) => origin_is_own(origin, headers),
        None => header_str(headers, "sec-fetch-site") == Some("same-origin"),
    }
}

/// Whether a browser says the request comes from another origin's page.
fn from_other_origin(headers: &HeaderMap) -> bool {
    if let Some(origin) = header_str(headers, header::ORIGIN.as_str()) {
        return !origin_is_own(origin, headers);
    }
    header_str(headers, "sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none")
}

/// Whether the request comes from a browser (which sends these on every
/// request; HTTPie, curl and pulp-cli send none of them).
pub(super) fn from_browser(headers: &HeaderMap) -> bool {
    [
        header::ORIGIN.as_str(),
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-fetch-dest",
    ]
    .iter()
    .any(|h| headers.contains_key(*h))
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses (403) a write that a browser says another origin's page sent,
/// whatever its credentials: cross-site request forgery.
pub(super) fn refuse_foreign_write(req: &Request) -> Result<(), ApiError> {
    if is_write(&req.method) && from_other_origin(&req.headers) {
        return Err(forbidden(
            "Writes from another origin's page are refused (CSRF).",
        ));
    }
    Ok(())
}

/// A write made with the session cookie must also prove it comes from
/// ferry's own page: a cookie rides along with requests of any origin of
/// the same site (another port of the same host, say).
pub(super) fn require_own_page(req: &Request, credential: Credential) -> Result<(), ApiError> {
    if credential == Credential::Session
        && is_write(&req.method)
        && !proven_same_origin(&req.headers)
    {
        return Err(forbidden(
            "CSRF check failed: a write with the session cookie needs ferry's own Origin.",
        ));
    }
    Ok(())
}

fn forbidden(detail: &str) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        body: json!({ "detail": detail }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("ferry.test:24817"));
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn tells_own_page_from_others() {
        let own = headers(&[("origin", "http://ferry.test:24817")]);
        assert!(proven_same_origin(&own) && !from_other_origin(&own));
        let tls = headers(&[("origin", "https://ferry.test:24817")]);
        assert!(proven_same_origin(&tls) && https_page(&tls));
        for foreign in [
            "http://ferry.test:9999",
            "http://evil.test",
            "null",
            "http://ferry.test:24817.evil.test",
        ] {
            let h = {
                let mut h = headers(&[]);
                h.insert(header::ORIGIN, HeaderValue::from_static(foreign));
                h
            };
            assert!(
                from_other_origin(&h) && !proven_same_origin(&h),
                "{foreign}"
            );
        }
        let site = headers(&[("sec-fetch-site", "same-site")]);
        assert!(from_other_origin(&site) && from_browser(&site));
        // curl, HTTPie, pulp-cli: no browser headers, not refused.
        let cli = headers(&[]);
        assert!(!from_other_origin(&cli) && !from_browser(&cli) && !proven_same_origin(&cli));
    }
}
