//! `ferry remote|distribution|repository ...`: the management API from the
//! command line, for hosts without HTTPie. It talks to a running ferry.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach ferry at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("ferry answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
    #[error("no {kind} named {name:?}")]
    NotFound { kind: &'static str, name: String },
}

pub struct Client {
    base: String,
    password: String,
    http: reqwest::Client,
}

const REMOTES: &str = "/pulp/api/v3/remotes/container/pull-through/";
const DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/pull-through/";
const REPOSITORIES: &str = "/pulp/api/v3/repositories/container/container/";

impl Client {
    pub fn new(base: &str, password: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            password: password.to_string(),
            http: reqwest::Client::new(),
        }
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
            .basic_auth(crate::auth::ADMIN_USER, Some(&self.password));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = request.send().await.map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: crate::upstream::error_chain(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ClientError::Refused { status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every item of a paginated list.
    async fn list(&self, collection: &str) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut next = Some(format!("{collection}?limit=1000"));
        while let Some(path) = next.take() {
            let page = self.call(Method::GET, &path, None).await?;
            items.extend(page["results"].as_array().cloned().unwrap_or_default());
            next = page["next"].as_str().map(str::to_string);
        }
        Ok(items)
    }

    async fn href_of(
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

    pub async fn remotes(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .list(REMOTES)
            .await?
            .iter()
            .map(|r| {
                format!(
                    "{}\t{}\t{}",
                    r["name"].as_str().unwrap_or(""),
                    r["url"].as_str().unwrap_or(""),
                    r["ferry_source"].as_str().unwrap_or("")
                )
            })
            .collect())
    }

    pub async fn create_remote(&self, name: &str, url: &str) -> Result<String, ClientError> {
        let created = self
            .call(
                Method::POST,
                REMOTES,
                Some(json!({ "name": name, "url": url })),
            )
            .await?;
        Ok(created["pulp_href"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub async fn delete_remote(&self, name: &str) -> Result<(), ClientError> {
        let href = self.href_of(REMOTES, "remote", name).await?;
        self.call(Method::DELETE, &href, None).await.map(|_| ())
    }

    pub async fn distributions(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .list(DISTRIBUTIONS)
            .await?
            .iter()
            .map(|d| {
                format!(
                    "{}\t{}\tprivate={}",
                    d["name"].as_str().unwrap_or(""),
                    d["base_path"].as_str().unwrap_or(""),
                    d["private"]
                )
            })
            .collect())
    }

    pub async fn create_distribution(
        &self,
        name: &str,
        base_path: &str,
        remote: &str,
        private: bool,
    ) -> Result<(), ClientError> {
        let remote = self.href_of(REMOTES, "remote", remote).await?;
        let body =
            json!({ "name": name, "base_path": base_path, "remote": remote, "private": private });
        self.call(Method::POST, DISTRIBUTIONS, Some(body))
            .await
            .map(|_| ())
    }

    pub async fn delete_distribution(&self, name: &str) -> Result<(), ClientError> {
        let href = self.href_of(DISTRIBUTIONS, "distribution", name).await?;
        self.call(Method::DELETE, &href, None).await.map(|_| ())
    }

    pub async fn repositories(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .list(REPOSITORIES)
            .await?
            .iter()
            .map(|r| {
                format!(
                    "{}\t{}",
                    r["name"].as_str().unwrap_or(""),
                    r["latest_version_href"].as_str().unwrap_or("")
                )
            })
            .collect())
    }

    pub async fn delete_repository(&self, name: &str) -> Result<(), ClientError> {
        let href = self.href_of(REPOSITORIES, "repository", name).await?;
        self.call(Method::DELETE, &href, None).await.map(|_| ())
    }
}
