//! A minimal registry client over the distribution HTTP API: pushes images
//! (monolithic blob uploads, then manifests) and fetches manifests/blobs.
//! It answers 401 challenges like docker does: Basic with its credentials,
//! or Bearer by fetching a token from the challenge's realm.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use reqwest::{Method, StatusCode};

use super::images::{Blob, Image};
use super::util::http_client;

pub struct RegistryClient {
    base: String,
    creds: Option<(String, String)>,
    http: reqwest::Client,
    /// Authorization header that last worked, tried first on each request.
    auth: Mutex<Option<String>>,
    tokens: Mutex<HashMap<String, String>>,
}

/// Status, headers and full body of a response.
pub struct Fetched {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Fetched {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OCI error answer: `status`, and `code` as the first
    /// error's code.
    pub fn assert_error(&self, status: StatusCode, code: &str, what: &str) {
        assert_eq!(
            self.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(super::util::error_code(&self.body), code, "{what}");
    }
}

pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

impl RegistryClient {
    /// `base` is `http://HOST:PORT`.
    pub fn new(base: &str) -> Self {
        RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            creds: None,
            http: http_client(),
            auth: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Uses `http` instead of the default test client (e.g. one trusting a
    /// test CA, for an HTTPS registry).
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn with_credentials(mut self, user: &str, password: &str) -> Self {
        self.creds = Some((user.into(), password.into()));
        self
    }

    /// Sends a request (path relative to the base, or an absolute URL),
    /// answering one auth challenge if needed.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> reqwest::Response {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let build = |auth: Option<&str>| {
            let mut rb = self.http.request(method.clone(), &url);
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            if let Some(a) = auth {
                rb = rb.header("authorization", a);
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            rb
        };
        let cached = self.auth.lock().unwrap().clone();
        let resp = build(cached.as_deref())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        if resp.status() != StatusCode::UNAUTHORIZED {
            return resp;
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let Some(auth) = self.answer_challenge(&challenge, cached.as_deref()).await else {
            return resp;
        };
        *self.auth.lock().unwrap() = Some(auth.clone());
        build(Some(&auth))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// The Authorization header to retry with; `failed` is the one the
    /// server just rejected (never offered again).
    async fn answer_challenge(&self, challenge: &str, failed: Option<&str>) -> Option<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let (user, pass) = self.creds.clone().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "basic" if self.creds.is_some() => {
                use base64::Engine;
                let raw = format!("{user}:{pass}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            "bearer" => {
                let p = parse_challenge_params(params);
                let scope = p.get("scope").cloned().unwrap_or_default();
                let known = self.tokens.lock().unwrap().get(&scope).cloned();
                if let Some(t) = known.filter(|t| Some(t.as_str()) != failed) {
                    return Some(t);
                }
                let mut rb = self
                    .http
                    .get(p.get("realm")?)
                    .query(&[("service", p.get("service").cloned().unwrap_or_default())]);
                if !scope.is_empty() {
                    rb = rb.query(&[("scope", &scope)]);
                }
                if self.creds.is_some() {
                    rb = rb.basic_auth(user, Some(pass));
                }
                let resp = rb.send().await.ok()?;
                let body: serde_json::Value =
                    serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
                let token = body["token"].as_str().or(body["access_token"].as_str())?;
                let header = format!("Bearer {token}");
                self.tokens.lock().unwrap().insert(scope, header.clone());
                Some(header)
            }
            _ => None,
        }
    }

    pub async fn fetch(&self, method: Method, url: &str, headers: &[(&str, &str)]) -> Fetched {
        let resp = self.send(method, url, headers, None).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("read body");
        Fetched {
            status,
            headers,
            body,
        }
    }

    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Fetched {
        self.fetch(
            Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("accept", ACCEPT_ALL_MANIFESTS)],
        )
        .await
    }

    pub async fn get_blob(&self, repo: &str, digest: &str) -> Fetched {
        self.fetch(Method::GET, &format!("/v2/{repo}/blobs/{digest}"), &[])
            .await
    }

    /// Uploads `blob` unless the registry already has it.
    pub async fn push_blob(&self, repo: &str, blob: &Blob) {
        let head = self
            .send(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{}", blob.digest),
                &[],
                None,
            )
            .await;
        if head.status() == StatusCode::OK {
            return;
        }
        let start = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[("content-length", "0")],
                Some(Bytes::new()),
            )
            .await;
        assert_eq!(
            start.status(),
            StatusCode::ACCEPTED,
            "start upload to {repo}: {}",
            start.text().await.unwrap_or_default()
        );
        let location = start.headers()["location"].to_str().unwrap().to_string();
        // Location may be absolute or relative and may already carry a query.
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={}", blob.digest);
        let len = blob.data.len().to_string();
        let headers = [
            ("content-type", "application/octet-stream"),
            ("content-length", len.as_str()),
        ];
        let put = self
            .send(Method::PUT, &put_url, &headers, Some(blob.data.clone()))
            .await;
        assert_eq!(
            put.status(),
            StatusCode::CREATED,
            "upload {} to {repo}: {}",
            blob.digest,
            put.text().await.unwrap_or_default()
        );
    }

    /// PUTs manifest bytes under `reference` (tag or digest); returns the
    /// digest the registry reports.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> String {
        let url = format!("/v2/{repo}/manifests/{reference}");
        let resp = self
            .send(
                Method::PUT,
                &url,
                &[("content-type", media_type)],
                Some(bytes.clone()),
            )
            .await;
        let status = resp.status();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "PUT {url}: {}",
            resp.text().await.unwrap_or_default()
        );
        digest
    }

    /// Pushes an image or index with everything it references, tagging the
    /// top-level manifest `tag`; children of an index are pushed by digest.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &Image) {
        for child in &image.children {
            Box::pin(self.push_untagged(repo, child)).await;
        }
        for blob in &image.blobs {
            self.push_blob(repo, blob).await;
        }
        let digest = self
            .push_manifest(repo, tag, &image.media_type, &image.manifest)
            .await;
        assert_eq!(
            digest, image.digest,
            "registry computed another digest for {repo}:{tag}"
        );
    }

    async fn push_untagged(&self, repo: &str, image: &Image) {
        for blob in &image.blobs {
            self.push_blob(repo, blob).await;
        }
        self.push_manifest(repo, &image.digest, &image.media_type, &image.manifest)
            .await;
    }
}

/// `realm="x",service="y",scope="a,b"` → map (values may contain commas).
fn parse_challenge_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.insert(key, value.to_string());
        rest = remaining;
    }
    out
}
