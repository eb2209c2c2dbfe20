//! The client of one upstream registry: the pull half of the distribution
//! API, with Docker's token flow, Basic auth, redirects (Docker Hub sends
//! blobs to a CDN), timeouts, proxies from the environment, and a circuit
//! breaker so a dead upstream costs no wait per request.

mod auth;
mod body;
mod budget;
mod error;
mod health;
mod ratelimit;
pub(crate) mod tag_page;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};
use serde::de::DeserializeSeed as _;

pub(crate) use auth::{parse_challenge, Challenge};
use auth::{TokenCache, TokenResponse};
pub(crate) use body::BlobBody;
#[cfg(test)]
pub(crate) use error::NoAnswer;
pub(crate) use error::{error_chain, UpstreamError};
pub(crate) use health::{Health, Reachability};
pub(crate) use ratelimit::RateBudgetStatus;

use budget::{Bandwidth, Slot, Slots};
use error::Cap;
use ratelimit::RateBudget;

use crate::config::{CacheConfig, Secret};
use crate::domain::{Digest, RepoName};

/// The distribution spec's recommended ceiling for a manifest.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Bounds on one repository's tag list from upstream, so a hostile or
/// looping upstream cannot make ferry hold hundreds of MiB. Sized for real
/// registries: ferry asks for 1,000 tags a page; 200,000 tags of a typical
/// 10 to 40 characters are 3 to 9 MiB of JSON, and a tag is at most 128
/// characters (the distribution spec's grammar).
const MAX_TAG_PAGES: usize = 200;
const MAX_TAGS: usize = 200_000;
const MAX_TAG_LIST_BYTES: usize = 16 * 1024 * 1024;
/// Longest wait between background probes of a down upstream.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A manifest as fetched upstream.
pub(crate) struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: Option<String>,
    /// What the upstream's `Docker-Content-Digest` claims (unverified).
    pub digest: Option<Digest>,
    /// Fetched from another cluster member, not the upstream (the
    /// upstream byte count leaves it out).
    pub from_member: bool,
}

/// What a `HEAD` of a manifest says: its digest, when the upstream names
/// it (all ferry needs to tell whether a tag moved).
pub(crate) struct ManifestHead {
    pub digest: Option<Digest>,
}

pub(crate) struct Upstream {
    base: String,
    /// Where the upstream's credentials may go (besides an HTTPS realm).
    origin: url::Origin,
    http: reqwest::Client,
    username: Option<String>,
    password: Option<Secret>,
    tokens: TokenCache,
    /// The last challenge seen, so later requests authenticate up front.
    challenge: Mutex<Option<Challenge>>,
    health: Arc<Health>,
    /// `download_concurrency`: blob downloads at once.
    downloads: Option<Slots>,
    /// `rate_limit`: the interval between requests and the next free slot.
    pacing: Option<(Duration, Mutex<Instant>)>,
    /// `max_upstream_connections`: requests in flight, bodies included.
    connections: Option<Slots>,
    /// `max_upstream_bandwidth`: bytes per second read from bodies.
    bandwidth: Option<Arc<Bandwidth>>,
    /// What the upstream's `RateLimit` headers said last.
    rate_budget: RateBudget,
    request_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the upstream client for {upstream}: {reason}")]
pub(crate) struct UpstreamSetupError {
    upstream: String,
    reason: String,
}

impl Upstream {
    /// Builds the client with a breaker of its own (to check a definition).
    pub(crate) fn new(config: &CacheConfig) -> Result<Upstream, UpstreamSetupError> {
        Upstream::with_health(config, Arc::default())
    }

    /// Builds the client, sharing `health` with every other client of the
    /// same upstream. Reads `ca_file` synchronously: call at start-up.
    pub(crate) fn with_health(
        config: &CacheConfig,
        health: Arc<Health>,
    ) -> Result<Upstream, UpstreamSetupError> {
        let fail = |reason: String| UpstreamSetupError {
            upstream: config.upstream.to_string(),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .hickory_dns(true)
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs()))
            .read_timeout(Duration::from_secs(config.read_timeout_secs()))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(10));
        let mut ca_pem = config
            .remote
            .ca_cert
            .clone()
            .unwrap_or_default()
            .into_bytes();
        if let Some(path) = &config.ca_file {
            ca_pem.extend(std::fs::read(path).map_err(|e| fail(format!("ca_file {path:?}: {e}")))?);
        }
        if !ca_pem.is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(&ca_pem)
                .map_err(|e| fail(format!("CA certificates: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&config.remote.client_cert, &config.remote.client_key) {
            let pem = format!("{cert}\n{}", key.expose());
            let identity = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| fail(format!("client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        if !config.remote.tls_validation {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(proxy_url) = &config.proxy_url {
            let mut proxy = reqwest::Proxy::all(proxy_url.as_str())
                .map_err(|e| fail(format!("proxy_url: {e}")))?;
            if let Some(user) = &config.remote.proxy_username {
                let password = config
                    .remote
                    .proxy_password
                    .as_ref()
                    .map(Secret::expose)
                    .unwrap_or("");
                proxy = proxy.basic_auth(user, password);
            }
            builder = builder.proxy(proxy);
        }
        let mut default_headers = HeaderMap::new();
        for (name, value) in &config.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| fail(format!("header {name:?}: {e}")))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| fail(format!("header {name}: {e}")))?;
            default_headers.insert(name, value);
        }
        builder = builder.default_headers(default_headers);
        let policy = config.policy();
        if let Some(cap) = policy.max_upstream_connections {
            // No more sockets kept open per host than requests may be in
            // flight: the cap is on connections, not only on requests.
            builder = builder.pool_max_idle_per_host(cap.max(1) as usize);
        }
        let request_timeout =
            Duration::from_secs(config.connect_timeout_secs() + config.read_timeout_secs());
        let http = builder.build().map_err(|e| fail(error_chain(&e)))?;
        Ok(Upstream {
            base: config.upstream.as_str().trim_end_matches('/').to_string(),
            origin: config.upstream.origin(),
            http,
            username: config.remote.username.clone(),
            password: config.remote.password.clone(),
            tokens: TokenCache::default(),
            challenge: Mutex::new(None),
            health,
            downloads: config.download_concurrency().map(|n| {
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                Slots::new(Cap::Downloads, n, request_timeout)
            }),
            pacing: config
                .rate_limit()
                .filter(|r| *r > 0)
                .map(|r| (Duration::from_secs(1) / r, Mutex::new(Instant::now()))),
            // A request waits for a connection at most as long as it may
            // then take itself.
            connections: policy
                .max_upstream_connections
                .map(|cap| Slots::new(Cap::Connections, cap, request_timeout)),
            bandwidth: policy
                .max_upstream_bandwidth
                .map(|rate| Arc::new(Bandwidth::new(rate))),
            rate_budget: RateBudget::new(&config.base_path),
            request_timeout,
        })
    }

    /// How long a request may wait for another's upstream work on the same
    /// content: a token request plus two requests (a HEAD, then a GET),
    /// each bounded by the request timeout. Past it the leader is stuck.
    pub(crate) fn wait_bound(&self) -> Duration {
        self.request_timeout * 3
    }

    /// Waits for a blob-download slot when `download_concurrency` is set
    /// (at most as long as a request may take, then `Busy`); the download
    /// holds the permit until it ends.
    pub(crate) async fn download_permit(&self) -> Result<Slot, UpstreamError> {
        match &self.downloads {
            Some(downloads) => downloads.acquire().await.map(Some).inspect_err(|busy| {
                crate::metrics::METRICS.upstream_error(busy.kind());
            }),
            None => Ok(None),
        }
    }

    /// Spaces requests out to honour `rate_limit`.
    async fn pace(&self) {
        let Some((interval, next)) = &self.pacing else {
            return;
        };
        let slot = {
            let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + *interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    /// Whether the upstream is known not to answer right now.
    pub(crate) fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// Whether the upstream's rate budget is spent (its `RateLimit-Remaining`
    /// said 0 and the window has not reset): cached tags are then served
    /// without revalidation instead of failing one by one.
    pub(crate) fn rate_budget_spent(&self) -> bool {
        self.rate_budget.is_spent()
    }

    /// The upstream's rate budget as last reported, for the status.
    pub(crate) fn rate_budget(&self) -> RateBudgetStatus {
        self.rate_budget.status()
    }

    /// A place under `max_upstream_connections`, if the cache has one.
    async fn slot(&self) -> Result<Slot, UpstreamError> {
        match &self.connections {
            Some(connections) => connections.acquire().await.map(Some).inspect_err(|busy| {
                crate::metrics::METRICS.upstream_error(busy.kind());
            }),
            None => Ok(None),
        }
    }

    /// Answers timed since start and their total time to headers
    /// (microseconds), shared by every cache of this upstream.
    pub(crate) fn response_times(&self) -> (u64, u64) {
        self.health.response_times()
    }

    /// What ferry knows of the upstream now (shared across caches).
    pub(crate) fn reachability(&self) -> (Reachability, Option<UpstreamError>) {
        self.health.reachability()
    }

    fn url(&self, repo: &RepoName, suffix: &str) -> Result<Url, UpstreamError> {
        let text = format!("{}/v2/{}/{}", self.base, repo, suffix);
        Url::parse(&text).map_err(|e| UpstreamError::Protocol(format!("bad URL {text}: {e}")))
    }

    pub(crate) async fn head_manifest(
        &self,
        repo: &RepoName,
        reference: &str,
        accept: &str,
    ) -> Result<ManifestHead, UpstreamError> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let (resp, _slot) = self
            .send(Method::HEAD, url, repo, accept_header(accept), true)
            .await?;
        let headers = resp.headers();
        Ok(ManifestHead {
            digest: header_str(headers, "docker-content-digest").and_then(|d| d.parse().ok()),
        })
    }

    pub(crate) async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &str,
        accept: &str,
    ) -> Result<FetchedManifest, UpstreamError> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let (resp, _slot) = self
            .send(Method::GET, url, repo, accept_header(accept), true)
            .await?;
        let media_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).map(str::to_string);
        let digest =
            header_str(resp.headers(), "docker-content-digest").and_then(|d| d.parse().ok());
        let bytes = self.read_body(resp, MAX_MANIFEST_BYTES).await?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
            from_member: false,
        })
    }

    /// Starts a blob download; the caller streams the body.
    pub(crate) async fn get_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<BlobBody, UpstreamError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let (resp, slot) = self
            .send(Method::GET, url, repo, HeaderMap::new(), false)
            .await?;
        Ok(BlobBody::new(resp, slot, self.bandwidth.clone()))
    }

    /// The size of a blob upstream.
    pub(crate) async fn head_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, UpstreamError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let (resp, _slot) = self
            .send(Method::HEAD, url, repo, HeaderMap::new(), true)
            .await?;
        Ok(header_str(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|s| s.parse().ok()))
    }

    /// Every tag of a repository, following `Link` pagination within the
    /// upstream's origin, bounded in pages, tags and bytes (a clear error
    /// past a bound rather than a silently truncated list).
    pub(crate) async fn tags(&self, repo: &RepoName) -> Result<Vec<String>, UpstreamError> {
        let too_large = |what: String| {
            UpstreamError::rejected(format!(
                "the tag list of {repo} is larger than ferry accepts ({what})"
            ))
        };
        let mut url = self.url(repo, "tags/list?n=1000")?;
        let mut tags = Vec::new();
        let mut bytes_left = MAX_TAG_LIST_BYTES;
        for _ in 0..MAX_TAG_PAGES {
            let (resp, _slot) = self
                .send(Method::GET, url.clone(), repo, HeaderMap::new(), true)
                .await?;
            let next = header_str(resp.headers(), "link").and_then(|l| next_link(&url, l));
            if let Some(next) = &next {
                // The credentials follow the request: another origin gets none
                // of them, and no request at all.
                if next.origin() != url.origin() {
                    return Err(UpstreamError::rejected_with(
                        format!(
                            "the tag list of {repo} continues on another origin; \
                             ferry follows tag pages only on the upstream's own origin"
                        ),
                        Some(next.origin().ascii_serialization()),
                    ));
                }
            }
            let limit = bytes_left.min(MAX_MANIFEST_BYTES);
            // A stall mid-body counts against the upstream's health, as for
            // every other body.
            let Some(bytes) = read_bounded(resp, limit, self.bandwidth.as_deref())
                .await
                .map_err(|e| self.failed(e))?
            else {
                return Err(too_large(if limit < MAX_MANIFEST_BYTES {
                    format!("over {} MiB of JSON in all", MAX_TAG_LIST_BYTES >> 20)
                } else {
                    format!("a page over {} MiB", MAX_MANIFEST_BYTES >> 20)
                }));
            };
            bytes_left -= bytes.len();
            let mut json = serde_json::Deserializer::from_slice(&bytes);
            tag_page::TagPage::new(&mut tags, MAX_TAGS)
                .deserialize(&mut json)
                .and_then(|()| json.end())
                .map_err(|e| {
                    if tags.len() >= MAX_TAGS {
                        too_large(format!("over {MAX_TAGS} tags"))
                    } else {
                        UpstreamError::Protocol(format!("tags/list of {repo}: {e}"))
                    }
                })?;
            match next {
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
        Err(too_large(format!("over {MAX_TAG_PAGES} pages")))
    }

    /// The upstream's referrers index for `digest`, if it serves the API.
    pub(crate) async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let url = self.url(repo, &format!("referrers/{digest}"))?;
        match self
            .send(Method::GET, url, repo, HeaderMap::new(), true)
            .await
        {
            Ok((resp, _slot)) => self.read_body(resp, MAX_MANIFEST_BYTES).await.map(Some),
            Err(UpstreamError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One request with authentication: sends what is known to work, and on
    /// a 401 answers the challenge once and retries. The answer comes with
    /// its place under `max_upstream_connections`: hold it while reading.
    async fn send(
        &self,
        method: Method,
        url: Url,
        repo: &RepoName,
        headers: HeaderMap,
        bounded: bool,
    ) -> Result<(Response, Slot), UpstreamError> {
        if let Some(blocked) = self.health.blocked() {
            // Honour Retry-After: do not hammer an upstream that asked to
            // wait. And do not wait on one known down: the probe rechecks it.
            return Err(blocked);
        }
        let scope = format!("repository:{repo}:pull");
        let mut authorization = self.known_authorization(&scope);
        let manifest = url.path().contains("/manifests/");
        for attempt in 0..2 {
            self.pace().await;
            let slot = self.slot().await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if bounded {
                request = request.timeout(self.request_timeout);
            }
            if let Some(value) = &authorization {
                request = request.header(reqwest::header::AUTHORIZATION, value.clone());
            }
            let asked = Instant::now();
            let resp = match request.send().await {
                Ok(resp) => {
                    self.health.timed(asked.elapsed());
                    resp
                }
                Err(e) => return Err(self.failed(UpstreamError::from_reqwest(e))),
            };
            self.rate_budget.observe(
                resp.headers(),
                manifest && resp.status().is_success(),
                retry_after(resp.headers()),
            );
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge =
                    header_str(resp.headers(), WWW_AUTHENTICATE.as_str()).and_then(parse_challenge);
                let Some(challenge) = challenge else {
                    return Err(UpstreamError::Unauthorized);
                };
                // The token request needs a connection of its own.
                drop((resp, slot));
                self.tokens.forget(&scope);
                authorization = Some(self.answer(&challenge, &scope).await?);
                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge);
                continue;
            }
            self.health.record(Ok(()));
            return self.check_status(resp).map(|resp| (resp, slot));
        }
        Err(UpstreamError::Unauthorized)
    }

    /// Reads a small body; a stall or break in it (bounded by the request
    /// timeout) counts against the upstream like no answer at all.
    async fn read_body(&self, resp: Response, limit: usize) -> Result<Bytes, UpstreamError> {
        read_limited(resp, limit, self.bandwidth.as_deref())
            .await
            .map_err(|e| self.failed(e))
    }

    /// Records a failure and starts a background probe when it marks the
    /// upstream down.
    fn failed(&self, error: UpstreamError) -> UpstreamError {
        crate::metrics::METRICS.upstream_error(error.kind());
        if self.health.record(Err(&error)) {
            tracing::warn!(upstream = %self.base, %error, "upstream marked down; serving from cache");
            self.spawn_probe();
        }
        error
    }

    fn spawn_probe(&self) {
        if !self.health.start_probe() {
            return;
        }
        let http = self.http.clone();
        let health = self.health.clone();
        let url = format!("{}/v2/", self.base);
        let base = self.base.clone();
        let timeout = self.request_timeout;
        let slots = self.connections.as_ref().map(Slots::slots);
        tokio::spawn(async move {
            let mut interval = Duration::from_millis(500);
            loop {
                tokio::time::sleep(interval).await;
                // The probe is a request like any other under the cap.
                let _slot = match &slots {
                    Some(slots) => slots.clone().acquire_owned().await.ok(),
                    None => None,
                };
                // Any whole HTTP answer, 401 included, means the upstream is
                // back; headers followed by a stalled body do not.
                let answer = match http.get(&url).timeout(timeout).send().await {
                    Ok(resp) => read_limited(resp, 64 * 1024, None).await.is_ok(),
                    Err(_) => false,
                };
                if answer {
                    health.mark_up();
                    tracing::info!(upstream = %base, "upstream reachable again");
                    break;
                }
                interval = (interval * 2).min(MAX_PROBE_INTERVAL);
            }
            health.end_probe();
        });
    }

    fn check_status(&self, resp: Response) -> Result<Response, UpstreamError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let error = match status {
            StatusCode::NOT_FOUND => UpstreamError::NotFound,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Unauthorized,
            StatusCode::TOO_MANY_REQUESTS => UpstreamError::RateLimited {
                retry_after: retry_after(resp.headers()),
            },
            StatusCode::SERVICE_UNAVAILABLE if retry_after(resp.headers()).is_some() => {
                UpstreamError::RateLimited {
                    retry_after: retry_after(resp.headers()),
                }
            }
            other => UpstreamError::Status(other.as_u16()),
        };
        if !matches!(error, UpstreamError::NotFound) {
            crate::metrics::METRICS.upstream_error(error.kind());
        }
        self.health.record(Err(&error));
        Err(error)
    }

    /// The Authorization header that worked before for this scope, if any.
    fn known_authorization(&self, scope: &str) -> Option<HeaderValue> {
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        match challenge {
            Challenge::Basic => self.basic_header(),
            Challenge::Bearer { .. } => bearer_header(&self.tokens.get(scope)?),
        }
    }

    /// Whether a token realm may see the upstream's credentials: the
    /// upstream's own origin, or any host over HTTPS (Docker Hub's realm is
    /// auth.docker.io), never another origin in plain text.
    fn may_receive_credentials(&self, realm: &Url) -> bool {
        realm.scheme() == "https" || realm.origin() == self.origin
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        let user = self.username.as_deref()?;
        let password = self.password.as_ref().map(Secret::expose).unwrap_or("");
        let encoded = BASE64.encode(format!("{user}:{password}"));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Answers a challenge: Basic credentials, or a token from the realm.
    async fn answer(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<HeaderValue, UpstreamError> {
        match challenge {
            Challenge::Basic => self.basic_header().ok_or(UpstreamError::Unauthorized),
            Challenge::Bearer { realm, service, .. } => {
                let mut url = Url::parse(realm)
                    .map_err(|e| UpstreamError::Protocol(format!("token realm {realm:?}: {e}")))?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", scope);
                }
                let _slot = self.slot().await?;
                let mut request = self.http.get(url.clone()).timeout(self.request_timeout);
                if let Some(basic) = self.basic_header() {
                    if !self.may_receive_credentials(&url) {
                        tracing::warn!(upstream = %self.base, %realm, "token realm refused: plain HTTP on another origin");
                        return Err(UpstreamError::rejected_with(
                            "its token realm is plain HTTP on another origin than the \
                             upstream; ferry sends the upstream's credentials only to its \
                             own origin or an HTTPS realm",
                            Some(url.origin().ascii_serialization()),
                        ));
                    }
                    request = request.header(reqwest::header::AUTHORIZATION, basic);
                }
                let resp = request
                    .send()
                    .await
                    .map_err(|e| self.failed(UpstreamError::from_reqwest(e)))?;
                if !resp.status().is_success() {
                    tracing::warn!(status = %resp.status(), "upstream token endpoint refused ferry");
                    return Err(UpstreamError::Unauthorized);
                }
                let body = self.read_body(resp, 64 * 1024).await?;
                let (token, lifetime) = serde_json::from_slice::<TokenResponse>(&body)
                    .ok()
                    .and_then(TokenResponse::into_token)
                    .ok_or_else(|| {
                        UpstreamError::Protocol("token endpoint sent no token".into())
                    })?;
                self.tokens.put(scope, token.clone(), lifetime);
                bearer_header(&token)
                    .ok_or_else(|| UpstreamError::Protocol("unusable token".into()))
            }
        }
    }
}

fn bearer_header(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn accept_header(accept: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(accept) {
        headers.insert(ACCEPT, value);
    }
    headers
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header_str(headers, "retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `<url>; rel="next"` resolved against the current URL.
fn next_link(current: &Url, link: &str) -> Option<Url> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        current.join(target).ok()
    })
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_limited(
    resp: Response,
    limit: usize,
    bandwidth: Option<&Bandwidth>,
) -> Result<Bytes, UpstreamError> {
    read_bounded(resp, limit, bandwidth)
        .await?
        .ok_or_else(|| UpstreamError::Protocol(format!("response larger than {limit} bytes")))
}

/// A whole body of at most `limit` bytes, or `None` past it: refused from
/// its `Content-Length` before reading, else as soon as it grows past it, so
/// a refused body is never held whole. Read within `bandwidth`, if given.
async fn read_bounded(
    resp: Response,
    limit: usize,
    bandwidth: Option<&Bandwidth>,
) -> Result<Option<Bytes>, UpstreamError> {
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(UpstreamError::from_reqwest)?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        if let Some(bandwidth) = bandwidth {
            bandwidth.take(chunk.len()).await;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_next_link() {
        let cur = Url::parse("http://r/v2/a/tags/list?n=2").unwrap();
        let next = next_link(&cur, r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).unwrap();
        assert_eq!(next.as_str(), "http://r/v2/a/tags/list?last=b&n=2");
        assert!(next_link(&cur, r#"</x>; rel="prev""#).is_none());
    }

    #[test]
    fn credentials_go_to_the_own_origin_or_an_https_realm() {
        let config = CacheConfig::new("c", Url::parse("http://127.0.0.1:5000/").unwrap());
        let upstream = Upstream::new(&config).unwrap();
        let may = |realm: &str| upstream.may_receive_credentials(&Url::parse(realm).unwrap());
        assert!(may("http://127.0.0.1:5000/token"));
        assert!(may("https://auth.docker.io/token"));
        assert!(may("https://127.0.0.2:9/token"));
        assert!(!may("http://127.0.0.1:5001/token"));
        assert!(!may("http://127.0.0.2:5000/token"));
        assert!(!may("http://localhost:5000/token"));
    }
}
