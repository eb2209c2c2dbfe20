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
pub(super) fn from_member() -> bool {
    FORWARDED.try_with(|f| *f).unwrap_or(false)
}

/// Runs `work` in a task of its own with the caller's standing (a spawned
/// task does not inherit the task-local).
pub(super) fn spawn_keeping<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let member = from_member();
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
            cluster: self.storage.cluster.clone().filter(|_| !from_member()),
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::{CacheConfig, ClusterSettings};
    use crate::domain::Secret;

    const NODES: [&str; 3] = ["http://a:1/", "http://b:1/", "http://c:1/"];

    fn fetcher(cluster: Option<Arc<Cluster>>) -> Fetcher {
        let config = CacheConfig::new("c", Url::parse("http://127.0.0.1:9/").unwrap());
        Fetcher {
            upstream: Arc::new(Upstream::new(&config).unwrap()),
            cluster,
            repo: RepoName::parse("r").unwrap(),
            local: "c/r".into(),
            bounds: Bounds {
                headers: Duration::from_secs(1),
                read: Duration::from_secs(1),
            },
        }
    }

    fn cluster() -> Arc<Cluster> {
        Cluster::new(&ClusterSettings {
            me: Url::parse(NODES[0]).unwrap(),
            nodes: NODES.iter().map(|n| Url::parse(n).unwrap()).collect(),
            secret: Secret("k".into()),
            probe_interval_ms: 1000,
            probe_timeout_ms: 1000,
        })
    }

    /// A key the first member does not own while all three are alive.
    fn peer_key(cluster: &Cluster) -> String {
        (0..100)
            .map(|i| format!("sha256:{i:064x}"))
            .find(|k| cluster.owner(k) != Owner::Me)
            .unwrap()
    }

    /// Asks with every member answering `answer`; returns who was asked
    /// and where the work ended.
    async fn ask(
        fetcher: &Fetcher,
        key: &str,
        answer: fn() -> PeerError,
    ) -> (Vec<Url>, Result<&'static str, UpstreamError>) {
        let asked = Mutex::new(Vec::new());
        let result = fetcher
            .through_owner(
                key,
                Kind::Blob,
                |_, member| {
                    asked.lock().unwrap().push(member);
                    async move { Err::<&'static str, _>(answer()) }
                },
                || async { Ok("upstream") },
            )
            .await;
        (asked.into_inner().unwrap(), result)
    }

    #[tokio::test]
    async fn members_that_do_not_answer_are_each_tried_once_then_marked_down() {
        let cluster = cluster();
        let key = peer_key(&cluster);
        let fetcher = fetcher(Some(cluster.clone()));
        let (asked, result) = ask(&fetcher, &key, || PeerError::Down("refused".into())).await;
        assert_eq!(result.unwrap(), "upstream");
        assert!(!asked.is_empty() && asked.len() <= 2, "{asked:?}");
        let mut unique = asked.clone();
        unique.dedup();
        assert_eq!(unique.len(), asked.len(), "a member asked twice: {asked:?}");
        assert!(asked.iter().all(|m| !cluster.is_alive(m)));
    }

    #[tokio::test]
    async fn a_member_not_serving_the_cache_is_skipped_not_marked_down() {
        let cluster = cluster();
        let key = peer_key(&cluster);
        let fetcher = fetcher(Some(cluster.clone()));
        let (asked, result) = ask(&fetcher, &key, || PeerError::NotServing).await;
        assert_eq!(result.unwrap(), "upstream");
        assert!(asked.iter().all(|m| cluster.is_alive(m)));
    }

    #[tokio::test]
    async fn a_members_answer_is_final() {
        let cluster = cluster();
        let key = peer_key(&cluster);
        let fetcher = fetcher(Some(cluster.clone()));
        let (asked, result) = ask(&fetcher, &key, || {
            PeerError::Answer(UpstreamError::NotFound)
        })
        .await;
        assert_eq!(asked.len(), 1);
        assert!(matches!(result, Err(UpstreamError::NotFound)));
    }

    #[tokio::test]
    async fn a_members_standing_lasts_for_its_request_and_the_tasks_it_spawns() {
        assert!(as_member(async { from_member() }).await);
        assert!(!from_member());
        let spawned = as_member(async { spawn_keeping(async { from_member() }).await }).await;
        assert!(spawned.unwrap());
        assert!(!spawn_keeping(async { from_member() }).await.unwrap());
    }
}
