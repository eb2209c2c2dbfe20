//! A small client for ferry's HTTP API as its users drive it with curl or a
//! script: the Pulp-style management API under `/pulp/api/v3/` (HTTP Basic
//! as the admin, another user, or nobody), and any other JSON endpoint of
//! the same server (`/token`, `/v2/_catalog`). Calls answer status, headers
//! and text; the typed helpers assert only what every caller of them
//! asserted before (a create's 201, a task's completion), nothing more.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::ferry::{Ferry, ADMIN_PASSWORD};
use super::util::{http_client, http_client_builder};

pub const REMOTES: &str = "/pulp/api/v3/remotes/container/pull-through/";
pub const DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/pull-through/";
pub const REPOSITORIES: &str = "/pulp/api/v3/repositories/container/container/";
pub const REPO_DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/container/";
pub const TAGS: &str = "/pulp/api/v3/content/container/tags/";
pub const MANIFESTS: &str = "/pulp/api/v3/content/container/manifests/";
pub const BLOBS: &str = "/pulp/api/v3/content/container/blobs/";
pub const TASKS: &str = "/pulp/api/v3/tasks/";
pub const STATUS: &str = "/pulp/api/v3/status/";
pub const OPENAPI: &str = "/pulp/api/v3/docs/api.json";
/// A well-formed id no object has.
pub const NO_SUCH_ID: &str = "00000000-0000-4000-8000-000000000000";

/// ferry's HTTP API, as one caller.
pub struct PulpApi {
    base: String,
    http: reqwest::Client,
    creds: Option<(String, String)>,
}

/// Status, headers and body of one call.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics, with status and body, if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the answer is `status` with exactly the JSON body `expected`.
    pub fn assert_is(&self, status: StatusCode, expected: &Value, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.text);
        assert_eq!(self.json(), *expected, "{what}");
    }

    /// Asserts the answer is a success (any 2xx); returns its JSON.
    pub fn success_json(&self, what: &str) -> Value {
        assert!(
            self.status.is_success(),
            "{what}: {} {}",
            self.status,
            self.text
        );
        self.json()
    }

    /// Asserts the answer is `status` with a string `detail` (the text is
    /// ferry's to choose); returns the body.
    pub fn assert_detail(&self, status: StatusCode, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {}", self.text);
        let v = self.json();
        assert!(v["detail"].is_string(), "{what}: {v}");
        v
    }
}

impl PulpApi {
    /// As the admin, with the password `Ferry::start_with` sets.
    pub fn admin(ferry: &Ferry) -> PulpApi {
        PulpApi::as_user(ferry, "admin", ADMIN_PASSWORD)
    }

    pub fn as_user(ferry: &Ferry, user: &str, password: &str) -> PulpApi {
        PulpApi {
            base: ferry.url(),
            http: http_client(),
            creds: Some((user.into(), password.into())),
        }
    }

    /// As `as_user`, connecting from `source` (a loopback address): wrong
    /// passwords are throttled per client address.
    pub fn as_user_from(ferry: &Ferry, user: &str, password: &str, source: [u8; 4]) -> PulpApi {
        PulpApi {
            base: ferry.url(),
            http: http_client_builder()
                .local_address(std::net::IpAddr::from(source))
                .build()
                .unwrap(),
            creds: Some((user.into(), password.into())),
        }
    }

    pub fn anonymous(ferry: &Ferry) -> PulpApi {
        PulpApi {
            base: ferry.url(),
            http: http_client(),
            creds: None,
        }
    }

    /// One call to `path` (from the server's root, or a whole URL such as
    /// a list's `next` link); `body` is sent as JSON.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.request(method, path, &[], body).await
    }

    /// `call` with extra request headers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut rb = self.http.request(method.clone(), &url);
        if let Some((u, p)) = &self.creds {
            rb = rb.basic_auth(u, Some(p));
        }
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// GET that must answer 200 with JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.text);
        a.json()
    }

    /// `results` of a list (asserting the page holds all of them).
    pub async fn list(&self, path: &str) -> Vec<Value> {
        let page = self.ok(path).await;
        let results = page["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            page["count"].as_u64(),
            Some(results.len() as u64),
            "GET {path}: {page}"
        );
        results
    }

    /// The 202 `{"task": href}` answer of an asynchronous call, followed:
    /// returns the (completed) task.
    pub async fn task(&self, answer: Answer, what: &str) -> Value {
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "{what}: {}",
            answer.text
        );
        let body = answer.json();
        let href = body["task"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no task in {body}"));
        assert!(href.starts_with(TASKS), "{what}: task href {href}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{what}: {body}");
        let task = self.ok(href).await;
        assert_eq!(task["state"], "completed", "{what}: {task}");
        assert_eq!(task["pulp_href"], href, "{what}: {task}");
        task
    }

    /// Creates a remote (201); returns it.
    pub async fn create_remote(&self, body: Value) -> Value {
        let a = self.post(REMOTES, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create remote {body}: {}",
            a.text
        );
        a.json()
    }

    /// Creates a remote `name` of `url` with nothing else set; returns its
    /// href.
    pub async fn remote_href(&self, name: &str, url: &str) -> String {
        let remote = self.create_remote(json!({"name": name, "url": url})).await;
        href_of(&remote)
    }

    /// Creates a distribution; returns its href (from the task).
    pub async fn create_distribution(
        &self,
        name: &str,
        base_path: &str,
        remote: &str,
        private: bool,
    ) -> String {
        let a = self
            .post(
                DISTRIBUTIONS,
                json!({"name": name, "base_path": base_path, "remote": remote, "private": private}),
            )
            .await;
        let task = self.task(a, &format!("create distribution {name}")).await;
        let created = task["created_resources"].as_array().unwrap();
        assert_eq!(created.len(), 1, "{task}");
        let href = created[0].as_str().unwrap().to_string();
        assert!(href.starts_with(DISTRIBUTIONS), "{href}");
        href
    }

    /// The local repository named `name`, if any.
    pub async fn repository(&self, name: &str) -> Option<Value> {
        let mut found = self
            .list(&format!("{REPOSITORIES}?name={}", urlencode(name)))
            .await;
        assert!(found.len() <= 1, "two repositories named {name}");
        found.pop()
    }

    /// (tag, digest) at a repository version, sorted by tag.
    pub async fn tags(&self, version_href: &str) -> Vec<(String, String)> {
        let mut tags: Vec<(String, String)> = self
            .list(&format!(
                "{TAGS}?repository_version={}",
                urlencode(version_href)
            ))
            .await
            .iter()
            .map(|t| {
                let digest = t["digest"].as_str().unwrap().to_string();
                assert_eq!(
                    t["tagged_manifest"].as_str().unwrap(),
                    format!("{MANIFESTS}{digest}/"),
                    "{t}"
                );
                (t["name"].as_str().unwrap().to_string(), digest)
            })
            .collect();
        tags.sort();
        tags
    }

    /// `status/` as this caller sees it (whatever its status code).
    pub async fn status(&self) -> Value {
        self.get(STATUS).await.json()
    }

    /// The `status/` entry of the cache at `base_path`.
    pub async fn upstream_status(&self, base_path: &str) -> Value {
        let status = self.status().await;
        status["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["base_path"] == base_path)
            .unwrap_or_else(|| panic!("no {base_path} in {status}"))
            .clone()
    }
}

/// An object's `pulp_href`.
pub fn href_of(object: &Value) -> String {
    object["pulp_href"]
        .as_str()
        .unwrap_or_else(|| panic!("no pulp_href in {object}"))
        .to_string()
}

/// The string `field` of each object, in order.
pub fn field_of(objects: &[Value], field: &str) -> Vec<String> {
    objects
        .iter()
        .map(|o| o[field].as_str().unwrap().to_string())
        .collect()
}

/// The strings of a JSON array (`_catalog`'s `repositories`), sorted.
pub fn sorted_strings(array: &Value) -> Vec<String> {
    let mut strings: Vec<String> = array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    strings.sort();
    strings
}

/// `results` of a list page.
pub fn results(page: &Value) -> &[Value] {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {page}"))
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Owned `(tag, digest)` pairs, as `PulpApi::tags` returns them.
pub fn tag_list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect()
}
