//! Cold work in a cluster: for a blob (by digest) or a repository's tags
//! and manifests (by `<base_path>/<repository>`) one live member is
//! responsible (`cluster::Cluster::owner`). Another member asks it instead
//! of the upstream, and gets back the upstream client's own types, so a
//! cold layer is fetched upstream once for the whole cluster while
//! single-flight, ranges on a download under way, stale-if-error and the
//! digest check work as on a single node.
//!
//! A request a member forwarded (its `ferry-cluster` signature checked by
//! the registry) is never forwarded again: the members' views of who is
//! alive may differ for a moment, and a loop must not come of it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::Cache;
use crate::cluster::{Bounds, Cluster, Owner, PeerError};
use crate::domain::{Digest, RepoName};
use crate::metrics::METRICS;
use crate::upstream::{BlobBody, FetchedManifest, ManifestHead, Upstream, UpstreamError};

tokio::task_local! {
    /// Set while the request being answered is a member's: a task-local
    /// rather than a parameter through every cache call, since only the
    /// points that reach the upstream read it.
    static FORWARDED: bool;
}

/// Runs `work` (a request's answer) as a member's: its cold work goes to
/// the upstream, never to another member.
pub(crate) async fn as_member<F: Future>(work: F) -> F::Output {
    FORWARDED.scope(true, work).await
}

/// Whether the request this task answers is a member's.
fn forwarded() -> bool {
    FORWARDED.try_with(|f| *f).unwrap_or(false)
}

/// Runs `work` in a task of its own with the caller's standing (a spawned
/// task does not inherit the task-local).
pub(super) fn spawn_keeping<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let member = forwarded();
    tokio::spawn(FORWARDED.scope(member, work))
}

/// Where one request's cold work goes: its cache's upstream, or through the
/// member responsible. Made per request (it knows whether that request was
/// forwarded) and handed to the download it may start.
#[derive(Clone)]
pub(super) struct Fetcher {
    pub(super) upstream: Arc<Upstream>,
    /// `None` on a single node and for a member's request.
    cluster: Option<Arc<Cluster>>,
    repo: RepoName,
    /// `<base_path>/<repository>`: the path on the members, and the key of
    /// the repository's tags and manifests.
    local: String,
    bounds: Bounds,
}

impl Cache {
    /// How `repo`'s cold work is fetched for the request this task answers.
    pub(super) fn fetcher(&self, repo: &RepoName) -> Fetcher {
        Fetcher {
            upstream: self.upstream.clone(),
            cluster: self.storage.cluster.clone().filter(|_| !forwarded()),
            repo: repo.clone(),
            local: self.local_name(repo),
            bounds: Bounds {
                // The member may itself wait on the upstream that long.
                headers: self.upstream.wait_bound(),
                read: Duration::from_secs(self.config.read_timeout_secs()),
            },
        }
    }
}

/// Which request to another member, for the metric.
#[derive(Clone, Copy)]
enum Kind {
    Blob,
    Manifest,
    Head,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Blob => "blob",
            Kind::Manifest => "manifest",
            Kind::Head => "head",
        }
    }
}

impl Fetcher {
    /// Starts a blob download, from the upstream or the member responsible.
    pub(super) async fn get_blob(&self, digest: &Digest) -> Result<BlobBody, UpstreamError> {
        let (upstream, repo) = (&self.upstream, &self.repo);
        self.through_owner(
            &digest.to_string(),
            Kind::Blob,
            |cluster, member| async move {
                cluster
                    .peer_get_blob(&member, &self.local, digest, self.bounds)
                    .await
            },
            || upstream.get_blob(repo, digest),
        )
        .await
    }

    /// A blob's size (and that `repo` has it).
    pub(super) async fn head_blob(&self, digest: &Digest) -> Result<Option<u64>, UpstreamError> {
        let (upstream, repo) = (&self.upstream, &self.repo);
        self.through_owner(
            &digest.to_string(),
            Kind::Head,
            |cluster, member| async move {
                cluster
                    .peer_head_blob(&member, &self.local, digest, self.bounds)
                    .await
            },
            || upstream.head_blob(repo, digest),
        )
        .await
    }

    /// A manifest by tag or digest, with the client's `Accept`.
    pub(super) async fn get_manifest(
        &self,
        reference: &str,
        accept: &str,
    ) -> Result<FetchedManifest, UpstreamError> {
        let (upstream, repo) = (&self.upstream, &self.repo);
        self.through_owner(
            &self.local,
            Kind::Manifest,
            |cluster, member| async move {
                cluster
                    .peer_get_manifest(&member, &self.local, reference, accept, self.bounds)
                    .await
            },
            || upstream.get_manifest(repo, reference, accept),
        )
        .await
    }

    /// Where a tag (or digest) points now.
    pub(super) async fn head_manifest(
        &self,
        reference: &str,
        accept: &str,
    ) -> Result<ManifestHead, UpstreamError> {
        let (upstream, repo) = (&self.upstream, &self.repo);
        self.through_owner(
            &self.local,
            Kind::Head,
            |cluster, member| async move {
                cluster
                    .peer_head_manifest(&member, &self.local, reference, accept, self.bounds)
                    .await
            },
            || upstream.head_manifest(repo, reference, accept),
        )
        .await
    }

    /// Asks the owner of `key`: this node's upstream when it is this node,
    /// else that member. A member that fails before its answer is marked
    /// down and the owner chosen again, each member at most once; when none
    /// is left, this node does the work itself.
    async fn through_owner<T, P, PF, U, UF>(
        &self,
        key: &str,
        kind: Kind,
        peer: P,
        upstream: U,
    ) -> Result<T, UpstreamError>
    where
        P: Fn(Arc<Cluster>, Url) -> PF,
        PF: Future<Output = Result<T, PeerError>>,
        U: FnOnce() -> UF,
        UF: Future<Output = Result<T, UpstreamError>>,
    {
        let Some(cluster) = &self.cluster else {
            return upstream().await;
        };
        let mut tried: Vec<Url> = Vec::new();
        loop {
            let member = match cluster.owner_excluding(key, &tried) {
                Owner::Me => return upstream().await,
                Owner::Peer(member) => member,
            };
            match peer(cluster.clone(), member.clone()).await {
                Ok(answer) => {
                    METRICS.cluster_forwarded(kind.name(), "ok");
                    return Ok(answer);
                }
                Err(PeerError::Answer(e)) => {
                    METRICS.cluster_forwarded(kind.name(), "error");
                    return Err(e);
                }
                Err(PeerError::Down(why)) => {
                    METRICS.cluster_forwarded(kind.name(), "member_down");
                    tracing::warn!(%member, %key, %why, "cluster member did not answer: marked down, asking the next one");
                    cluster.set_alive(&member, false);
                }
                Err(PeerError::NotServing) => {
                    METRICS.cluster_forwarded(kind.name(), "not_serving");
                    tracing::warn!(%member, repo = %self.local, "cluster member does not serve this cache: asking the next one");
                }
            }
            tried.push(member);
        }
    }
}
