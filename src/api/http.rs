//! Request context, JSON responses, errors and pagination in the shape of
//! Pulp's (Django REST framework's) API.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};
use warp::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use warp::reply::Response as Reply;

use crate::manage::{Failure, ManageError};

const DEFAULT_LIMIT: usize = 100;

/// What a handler needs of the request.
pub(crate) struct Request {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    /// `scheme://host` the client used, checked (see [`crate::origin`]).
    pub origin: String,
    /// The client's address, for throttling password guesses.
    pub client: Option<std::net::IpAddr>,
    pub headers: HeaderMap,
    /// The body as read (whole, within the limit), or why it was refused.
    pub body: Result<bytes::Bytes, ApiError>,
    /// An upload's body, unread: taken by the one handler that streams it.
    pub upload: std::sync::Mutex<Option<crate::manage::Upload>>,
}

impl Request {
    /// `scheme://host` the client used, for absolute `next`/`previous` links.
    pub(crate) fn origin(&self) -> String {
        self.origin.clone()
    }

    /// The origin without its scheme: `host[:port]`.
    pub(crate) fn host(&self) -> String {
        let origin = &self.origin;
        origin
            .split_once("://")
            .map_or(origin.as_str(), |(_, host)| host)
            .to_string()
    }

    /// The JSON body as `T`, or a 400 in DRF's shape. Endpoints that take
    /// a body need one: an empty body is not read as `{}`.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body = self.body.as_ref().map_err(Clone::clone)?;
        if body.is_empty() {
            return Err(ApiError::bad_request(
                json!({ "detail": "JSON parse error - the request has no body." }),
            ));
        }
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(json!({ "non_field_errors": [format!("Invalid JSON: {e}")] }))
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub(crate) fn bad_request(body: Value) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body,
        }
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({ "detail": "Not found." }),
        }
    }

    /// 413: a body past the API's limit.
    pub(crate) fn too_large(limit: u64) -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            body: json!({ "detail": format!("Request body larger than {limit} bytes.") }),
        }
    }

    /// 415: a body that does not say it is JSON.
    pub(crate) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            body: json!({
                "detail": format!("Unsupported media type \"{content_type}\" in request: send application/json.")
            }),
        }
    }

    pub(crate) fn method_not_allowed(method: &Method) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            body: json!({ "detail": format!("Method \"{method}\" not allowed.") }),
        }
    }

    pub(crate) fn into_response(self) -> Reply {
        let mut resp = json_response(self.status, &self.body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferry\""),
            );
        }
        resp
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::Invalid(body) => ApiError::bad_request(body),
            ManageError::NotFound => ApiError::not_found(),
            ManageError::Conflict(message) => ApiError::bad_request(json!({ "detail": message })),
            ManageError::Unavailable(message) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: json!({ "detail": message }),
            },
            ManageError::Cache(_) => {
                let status = match e.failure() {
                    Failure::Client => StatusCode::NOT_FOUND,
                    Failure::UpstreamNoAnswer => StatusCode::GATEWAY_TIMEOUT,
                    Failure::Upstream => StatusCode::BAD_GATEWAY,
                    Failure::Ferry => {
                        tracing::error!(error = %e, "management request failed");
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                };
                ApiError {
                    status,
                    body: json!({ "detail": e.to_string() }),
                }
            }
        }
    }
}

pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Reply {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut resp = Response::new(text.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn ok(body: &impl Serialize) -> Result<Reply, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

/// What a request to a collection endpoint (`.../` or `.../<id>/`) asks.
pub(super) enum Target<'a> {
    List,
    Create,
    One(&'a str),
}

impl<'a> Target<'a> {
    pub(super) fn of(req: &Request, rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
        match (rest, &req.method) {
            ([], &Method::GET) => Ok(Target::List),
            ([], &Method::POST) => Ok(Target::Create),
            ([], other) => Err(ApiError::method_not_allowed(other)),
            ([id], _) => Ok(Target::One(id)),
            _ => Err(ApiError::not_found()),
        }
    }
}

/// A paginated list: `{count, next, previous, results}` with `limit`/`offset`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Page<T> {
    pub count: usize,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

pub(super) fn paginate<T: Serialize>(items: Vec<T>, req: &Request) -> Result<Reply, ApiError> {
    page_reply(&page_of(items, req), req)
}

/// A page as JSON, each result cut to the `fields` the request names or
/// stripped of its `exclude_fields` (comma-separated, as Pulp takes them).
pub(super) fn page_reply<T: Serialize>(page: &Page<T>, req: &Request) -> Result<Reply, ApiError> {
    let named = |key: &str| {
        req.query
            .get(key)
            .map(|v| v.split(',').filter(|f| !f.is_empty()).collect::<Vec<_>>())
    };
    let (fields, excluded) = (named("fields"), named("exclude_fields"));
    if fields.is_none() && excluded.is_none() {
        return ok(page);
    }
    let mut value = serde_json::to_value(page).unwrap_or(Value::Null);
    let results = value.get_mut("results").and_then(Value::as_array_mut);
    for result in results.into_iter().flatten() {
        if let Some(object) = result.as_object_mut() {
            object.retain(|k, _| {
                fields.as_ref().is_none_or(|f| f.contains(&k.as_str()))
                    && excluded.as_ref().is_none_or(|e| !e.contains(&k.as_str()))
            });
        }
    }
    ok(&value)
}

/// The page of `items` a request's `limit`/`offset` select, with links.
pub(super) fn page_of<T>(items: Vec<T>, req: &Request) -> Page<T> {
    let limit = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT);
    let offset = req
        .query
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0usize);
    let count = items.len();
    let link = |offset: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &req.query {
            if k != "limit" && k != "offset" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("limit", &limit.to_string());
        if offset > 0 {
            query.append_pair("offset", &offset.to_string());
        }
        format!("{}{}?{}", req.origin(), req.path, query.finish())
    };
    Page {
        count,
        next: (offset + limit < count).then(|| link(offset + limit)),
        previous: (offset > 0).then(|| link(offset.saturating_sub(limit))),
        results: items.into_iter().skip(offset).take(limit).collect(),
    }
}

/// Applies the filters Pulp's lists share: exact `name`, `name__contains`,
/// `name__icontains`, `base_path`, `digest`, `media_type` (and ferry's
/// `cache`), and `name__in`/`digest__in` (comma-separated, any of them).
pub(super) fn filter<T: Serialize>(items: Vec<T>, req: &Request) -> Vec<T> {
    let exact = ["name", "base_path", "digest", "media_type", "cache"];
    items
        .into_iter()
        .filter(|item| {
            let Ok(value) = serde_json::to_value(item) else {
                return false;
            };
            let field = |k: &str| {
                value
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            exact
                .iter()
                .all(|k| req.query.get(*k).is_none_or(|wanted| field(k) == *wanted))
                && req
                    .query
                    .get("name__contains")
                    .is_none_or(|w| field("name").contains(w.as_str()))
                && req
                    .query
                    .get("name__icontains")
                    .is_none_or(|w| field("name").to_lowercase().contains(&w.to_lowercase()))
                && ["name", "digest"].iter().all(|k| {
                    req.query
                        .get(&format!("{k}__in"))
                        .is_none_or(|w| w.split(',').any(|one| one == field(k)))
                })
        })
        .collect()
}

/// RFC 3339 with microseconds, as Pulp writes timestamps.
pub(super) fn timestamp(micros: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Seconds-resolution records (cache metadata) as timestamps.
pub(super) fn timestamp_secs(secs: u64) -> String {
    timestamp(secs.saturating_mul(1_000_000))
}

/// Milliseconds-resolution records (pull times) as timestamps.
pub(super) fn timestamp_millis(millis: u64) -> String {
    timestamp(millis.saturating_mul(1_000))
}

/// The id in `<prefix><id>/`, if `href` is one.
pub(super) fn id_from_href<'a>(href: &'a str, prefix: &str) -> Option<&'a str> {
    let href = href
        .split_once("://")
        .map_or(href, |(_, rest)| &rest[rest.find('/').unwrap_or(0)..]);
    let id = href.strip_prefix(prefix)?.trim_end_matches('/');
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Deserializes a field that may be absent (outer None), null (Some(None))
/// or set: PATCH needs to tell "leave as is" from "clear".
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs() {
        let p = "/pulp/api/v3/remotes/container/pull-through/";
        assert_eq!(
            id_from_href("/pulp/api/v3/remotes/container/pull-through/abc/", p),
            Some("abc")
        );
        assert_eq!(
            id_from_href(
                "http://h:1/pulp/api/v3/remotes/container/pull-through/abc/",
                p
            ),
            Some("abc")
        );
        assert_eq!(
            id_from_href("/pulp/api/v3/remotes/container/pull-through/", p),
            None
        );
        assert_eq!(id_from_href("/other/abc/", p), None);
        assert_eq!(timestamp(1_000_001), "1970-01-01T00:00:01.000001Z");
    }

    fn get(query: &[(&str, &str)]) -> Request {
        Request {
            method: Method::GET,
            path: "/pulp/api/v3/content/container/tags/".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            origin: "http://localhost".into(),
            client: None,
            headers: HeaderMap::new(),
            body: Ok(bytes::Bytes::new()),
            upload: Default::default(),
        }
    }

    async fn body(reply: Reply) -> Value {
        use http_body_util::BodyExt;
        let bytes = reply.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn lists_keep_the_fields_pulp_clients_choose() {
        let items = || {
            vec![
                json!({"name": "1.36", "digest": "sha256:a", "size": 1}),
                json!({"name": "1.37", "digest": "sha256:b", "size": 2}),
            ]
        };
        let only = get(&[("fields", "name,size")]);
        let page = body(paginate(items(), &only).unwrap()).await;
        assert_eq!(
            page["results"],
            json!([{"name": "1.36", "size": 1}, {"name": "1.37", "size": 2}])
        );
        let without = get(&[("exclude_fields", "digest")]);
        let page = body(paginate(items(), &without).unwrap()).await;
        assert_eq!(page["results"][1], json!({"name": "1.37", "size": 2}));

        let any_of = get(&[("name__in", "1.37,latest")]);
        assert_eq!(filter(items(), &any_of), items()[1..]);
        let digests = get(&[("digest__in", "sha256:a,sha256:b")]);
        assert_eq!(filter(items(), &digests), items());
    }
}
