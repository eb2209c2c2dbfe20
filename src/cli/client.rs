//! `ferry remote|distribution|repository ...`: the management API from the
//! command line, for hosts without HTTPie. It talks to a running ferry and
//! hands back the API's JSON; the command line decides how to print it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::domain::Secret;

#[derive(Debug, thiserror::Error)]
pub(super) enum ClientError {
    #[error("cannot reach ferry at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("ferry answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
    #[error("{0}")]
    Failed(String),
    #[error("no {kind} named {name:?}")]
    NotFound { kind: &'static str, name: String },
}

impl ClientError {
    /// The API did not take the admin password.
    pub(super) fn is_unauthorized(&self) -> bool {
        matches!(self, ClientError::Refused { status, .. } if *status == StatusCode::UNAUTHORIZED)
    }
}

pub(super) struct Client {
    base: String,
    password: Secret,
    http: reqwest::Client,
}

pub(super) const REMOTES: &str = "/pulp/api/v3/remotes/container/pull-through/";
pub(super) const DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/pull-through/";
pub(super) const REPOSITORIES: &str = "/pulp/api/v3/repositories/container/container/";
pub(super) const TAGS: &str = "/pulp/api/v3/content/container/tags/";

/// What `remote create` and `remote update` set; `None` leaves a field as it is.
#[derive(Default)]
pub(super) struct RemoteFields {
    pub upstream: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl RemoteFields {
    fn to_json(&self, name: Option<&str>) -> Value {
        let mut body = Map::new();
        if let Some(name) = name {
            body.insert("name".into(), name.into());
        }
        if let Some(url) = &self.upstream {
            body.insert("url".into(), url.as_str().into());
        }
        if let Some(user) = &self.username {
            body.insert("username".into(), user.as_str().into());
        }
        if let Some(password) = &self.password {
            body.insert("password".into(), password.expose().into());
        }
        Value::Object(body)
    }
}

impl Client {
    pub(super) fn new(base: &str, password: Secret) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            password,
            // Bounded: a CLI must not hang on a ferry that does not answer.
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The address the client talks to.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self
            .http
            .request(method, &url)
            .basic_auth(crate::auth::ADMIN_USER, Some(self.password.expose()));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = request.send().await.map_err(unreachable(&url))?;
        json_answer(resp).await
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// POSTs `body` and hands back the response as it arrives, for what
    /// may be large or slow (a bundle): no overall time limit, only one
    /// between reads. A refusal is an error with the API's answer.
    pub(super) async fn post_download(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let http = long_transfer_client(std::time::Duration::from_secs(300));
        let resp = http
            .post(&url)
            .basic_auth(crate::auth::ADMIN_USER, Some(self.password.expose()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(unreachable(&url))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(ClientError::Refused { status, body });
        }
        Ok(resp)
    }

    /// Every item of a paginated list.
    pub(super) async fn list(&self, collection: &str) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut next = Some(format!("{collection}?limit=1000"));
        while let Some(path) = next.take() {
            let page = self.call(Method::GET, &path, None).await?;
            items.extend(page["results"].as_array().cloned().unwrap_or_default());
            next = page["next"].as_str().map(str::to_string);
        }
        Ok(items)
    }

    /// The href of the item named `name` in `collection`.
    pub(super) async fn href_of(
        &self,
        collection: &str,
        kind: &'static str,
        name: &str,
    ) -> Result<String, ClientError> {
        self.list(collection)
            .await?
            .iter()
            .find(|i| i["name"] == name)
            .and_then(|i| i["pulp_href"].as_str().map(str::to_string))
            .ok_or_else(|| ClientError::NotFound {
                kind,
                name: name.to_string(),
            })
    }

    /// Deletes the item named `name`; the API's answer (a task reference).
    pub(super) async fn delete(
        &self,
        collection: &str,
        kind: &'static str,
        name: &str,
    ) -> Result<(String, Value), ClientError> {
        let href = self.href_of(collection, kind, name).await?;
        let answer = self.call(Method::DELETE, &href, None).await?;
        Ok((href, answer))
    }

    /// POSTs an action without a body (e.g. `<href>pin/`); the answer.
    pub(super) async fn post_action(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::POST, path, None).await
    }

    /// Creates a remote; the API's representation of it.
    pub(super) async fn create_remote(
        &self,
        name: &str,
        fields: &RemoteFields,
    ) -> Result<Value, ClientError> {
        self.call(Method::POST, REMOTES, Some(fields.to_json(Some(name))))
            .await
    }

    /// Changes the given fields of a remote; its representation afterwards.
    pub(super) async fn update_remote(
        &self,
        name: &str,
        fields: &RemoteFields,
    ) -> Result<Value, ClientError> {
        let href = self.href_of(REMOTES, "remote", name).await?;
        self.call(Method::PATCH, &href, Some(fields.to_json(None)))
            .await?;
        self.call(Method::GET, &href, None).await
    }

    /// Creates a distribution of the remote named `remote`; the API's
    /// representation of it (creation answers with a task naming it).
    pub(super) async fn create_distribution(
        &self,
        name: &str,
        base_path: &str,
        remote: &str,
        private: bool,
    ) -> Result<Value, ClientError> {
        let remote = self.href_of(REMOTES, "remote", remote).await?;
        let body =
            json!({ "name": name, "base_path": base_path, "remote": remote, "private": private });
        let answer = self.call(Method::POST, DISTRIBUTIONS, Some(body)).await?;
        let Some(task) = answer["task"].as_str() else {
            return Ok(answer);
        };
        let task = self.call(Method::GET, task, None).await?;
        match task["created_resources"][0].as_str() {
            Some(href) => self.call(Method::GET, href, None).await,
            None => Ok(task),
        }
    }

    /// POSTs a large body (a bundle) as a stream, with query parameters,
    /// and reads the JSON answer. No overall timeout (a bundle may take
    /// hours to send); a stalled answer still ends after `STALL`.
    pub(super) async fn upload<S>(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: S,
    ) -> Result<Value, ClientError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        const STALL: std::time::Duration = std::time::Duration::from_secs(3600);
        let url = format!("{}{path}", self.base);
        let http = long_transfer_client(STALL);
        let resp = http
            .post(&url)
            .query(query)
            .basic_auth(crate::auth::ADMIN_USER, Some(self.password.expose()))
            .header("content-type", content_type)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(unreachable(&url))?;
        json_answer(resp).await
    }
}

/// The JSON an answer carries (null when it has none), or the refusal with
/// its body.
async fn json_answer(resp: reqwest::Response) -> Result<Value, ClientError> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ClientError::Refused { status, body: text });
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A client for transfers that may be long (a bundle): no overall time
/// limit, only `stall` between reads.
fn long_transfer_client(stall: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(stall)
        .build()
        .unwrap_or_default()
}

fn unreachable(url: &str) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
    move |e| ClientError::Unreachable {
        url: url.to_string(),
        reason: crate::upstream::error_chain(&e),
    }
}
