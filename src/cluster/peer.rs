//! The member-to-member client: a signed request to the member responsible
//! for a key, answered in the upstream client's own types (`BlobBody`,
//! `FetchedManifest`, `ManifestHead`, `UpstreamError`), so the cache treats
//! a member exactly as it treats its upstream: single-flight, ranges on a
//! download under way, stale-if-error and the digest check stay as they are.
//!
//! reqwest, as in `upstream/`: the members speak the same HTTP.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::{Cluster, SIGNATURE_HEADER};
use crate::domain::Digest;
use crate::upstream::{error_chain, BlobBody, FetchedManifest, ManifestHead, UpstreamError};

/// As upstream: the distribution spec's recommended ceiling for a manifest.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// An error body is read only to tell "no such cache here" from "no such
/// blob": a few KiB at most.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Why a member gave no usable answer before its body started.
#[derive(Debug)]
pub(crate) enum PeerError {
    /// It did not connect or answer in time, or refused our signature: it
    /// counts as down until a probe says otherwise.
    Down(String),
    /// It answers but does not serve this repository's cache (its config
    /// differs): ask the next one, without marking it down.
    NotServing,
    /// Its answer, as the upstream's would be (404, 429, 5xx...).
    Answer(UpstreamError),
}

/// How long a forwarded request may take: until the member's headers (it
/// may be waiting on the upstream itself), and between two body chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub headers: Duration,
    pub read: Duration,
}

impl Cluster {
    fn http(&self) -> Result<&reqwest::Client, PeerError> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .use_rustls_tls()
                    .hickory_dns(true)
                    // A member that does not accept a connection within
                    // the probe timeout is as good as down.
                    .connect_timeout(self.probe_timeout)
                    .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION"), " (cluster)"))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| error_chain(&e))
            })
            .as_ref()
            .map_err(|e| PeerError::Down(format!("no HTTP client: {e}")))
    }

    /// Whether `member` answers `GET /healthz` within the probe timeout.
    pub(crate) async fn probe(&self, member: &Url) -> bool {
        let Ok(http) = self.http() else {
            return false;
        };
        let Ok(url) = member.join("healthz") else {
            return false;
        };
        matches!(
            http.get(url).timeout(self.probe_timeout).send().await,
            Ok(resp) if resp.status().is_success()
        )
    }

    /// `GET <local>/blobs/<digest>` from `member`, streamed.
    pub(crate) async fn peer_get_blob(
        &self,
        member: &Url,
        local: &str,
        digest: &Digest,
        bounds: Bounds,
    ) -> Result<BlobBody, PeerError> {
        let path = format!("/v2/{local}/blobs/{digest}");
        let resp = self.send(Method::GET, member, &path, None, bounds).await?;
        let content_length = resp.content_length();
        let who = member.clone();
        let read = bounds.read;
        let chunks = futures_util::stream::unfold(Some(resp), move |state| {
            let who = who.clone();
            async move {
                let mut resp = state?;
                match tokio::time::timeout(read, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(resp))),
                    Ok(Ok(None)) => None,
                    Ok(Err(e)) => Some((
                        Err(UpstreamError::Protocol(format!(
                            "blob body from member {who}: {}",
                            error_chain(&e)
                        ))),
                        None,
                    )),
                    Err(_) => Some((Err(UpstreamError::Timeout), None)),
                }
            }
        })
        .boxed();
        Ok(BlobBody::from_stream(content_length, chunks))
    }

    /// `HEAD <local>/blobs/<digest>` on `member`: the blob's size.
    pub(crate) async fn peer_head_blob(
        &self,
        member: &Url,
        local: &str,
        digest: &Digest,
        bounds: Bounds,
    ) -> Result<Option<u64>, PeerError> {
        let path = format!("/v2/{local}/blobs/{digest}");
        let resp = self.send(Method::HEAD, member, &path, None, bounds).await?;
        Ok(header(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|s| s.parse().ok()))
    }

    /// `GET <local>/manifests/<reference>` from `member`, with the
    /// client's `Accept`; bounded like upstream's manifests.
    pub(crate) async fn peer_get_manifest(
        &self,
        member: &Url,
        local: &str,
        reference: &str,
        accept: &str,
        bounds: Bounds,
    ) -> Result<FetchedManifest, PeerError> {
        let path = format!("/v2/{local}/manifests/{reference}");
        let resp = self
            .send(Method::GET, member, &path, Some(accept), bounds)
            .await?;
        let media_type = header(resp.headers(), CONTENT_TYPE.as_str()).map(str::to_string);
        let digest = header(resp.headers(), "docker-content-digest").and_then(|d| d.parse().ok());
        let bytes = tokio::time::timeout(bounds.headers, read_bounded(resp, MAX_MANIFEST_BYTES))
            .await
            .map_err(|_| PeerError::Answer(UpstreamError::Timeout))?
            .map_err(PeerError::Answer)?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
            from_member: true,
        })
    }

    /// `HEAD <local>/manifests/<reference>` on `member`: where it points.
    pub(crate) async fn peer_head_manifest(
        &self,
        member: &Url,
        local: &str,
        reference: &str,
        accept: &str,
        bounds: Bounds,
    ) -> Result<ManifestHead, PeerError> {
        let path = format!("/v2/{local}/manifests/{reference}");
        let resp = self
            .send(Method::HEAD, member, &path, Some(accept), bounds)
            .await?;
        Ok(ManifestHead {
            digest: header(resp.headers(), "docker-content-digest").and_then(|d| d.parse().ok()),
        })
    }

    /// One signed request; a member that fails before its headers (no
    /// connection, no answer within the bound, or marked down by a probe
    /// meanwhile) is `Down`.
    async fn send(
        &self,
        method: Method,
        member: &Url,
        path: &str,
        accept: Option<&str>,
        bounds: Bounds,
    ) -> Result<Response, PeerError> {
        let http = self.http()?;
        let url = member
            .join(path.trim_start_matches('/'))
            .map_err(|e| PeerError::Down(format!("bad member URL {member}{path}: {e}")))?;
        let mut request = http
            .request(method.clone(), url)
            .header(SIGNATURE_HEADER, self.sign(method.as_str(), path));
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        let resp = tokio::select! {
            sent = tokio::time::timeout(bounds.headers, request.send()) => match sent {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => return Err(PeerError::Down(error_chain(&e))),
                Err(_) => return Err(PeerError::Down(format!(
                    "no answer within {} s", bounds.headers.as_secs()
                ))),
            },
            () = self.until_down(member) => {
                return Err(PeerError::Down("stopped answering its probes".into()))
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                tracing::error!(%member, "member refused this node's cluster signature: do the members share the secret, and their clocks agree within a minute?");
                PeerError::Down("refused the cluster signature".into())
            }
            StatusCode::NOT_FOUND if method == Method::HEAD => {
                PeerError::Answer(UpstreamError::NotFound)
            }
            StatusCode::NOT_FOUND => {
                let body = read_bounded(resp, MAX_ERROR_BYTES)
                    .await
                    .unwrap_or_default();
                if String::from_utf8_lossy(&body).contains("\"NAME_UNKNOWN\"") {
                    PeerError::NotServing
                } else {
                    PeerError::Answer(UpstreamError::NotFound)
                }
            }
            StatusCode::TOO_MANY_REQUESTS => PeerError::Answer(UpstreamError::RateLimited {
                retry_after: header(resp.headers(), "retry-after")
                    .and_then(|s| s.trim().parse().ok())
                    .map(Duration::from_secs),
            }),
            other => PeerError::Answer(UpstreamError::Status(other.as_u16())),
        })
    }

    /// Resolves once a probe marks `member` down (or it leaves the list).
    async fn until_down(&self, member: &Url) {
        let every = self.probe_interval.min(Duration::from_secs(1));
        while self.is_alive(member) {
            tokio::time::sleep(every).await;
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A whole body of at most `limit` bytes, refused as soon as it grows past.
async fn read_bounded(resp: Response, limit: usize) -> Result<Bytes, UpstreamError> {
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(UpstreamError::Protocol(format!(
            "member's answer larger than {limit} bytes"
        )));
    }
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UpstreamError::Protocol(error_chain(&e)))?;
        if body.len() + chunk.len() > limit {
            return Err(UpstreamError::Protocol(format!(
                "member's answer larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
