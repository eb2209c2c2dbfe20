//! The pull-through cache: decides what is answered from the store and what
//! needs the upstream, keeps one upstream transfer per piece of content, and
//! records the local repositories that pulls create.

mod access;
mod adopt;
pub(crate) mod bundle;
mod complete;
mod content;
mod download;
mod error;
mod flight;
mod forward;
mod images;
mod listing;
mod maintenance;
pub(crate) mod manifest_info;
mod manifests;
mod pins;
mod quota;
mod shared_gc;
mod summaries;
mod usage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

pub(crate) use adopt::Adoptable;
pub(crate) use bundle::{ImportError, ImportOptions, ImportReport};
pub(crate) use content::{RepoContent, RepoSummary, TagDetail};
pub(crate) use download::Blob;
pub(crate) use error::{blocking, CacheError, Cause};
pub(crate) use forward::as_member;
pub(crate) use images::ImageParts;
pub(crate) use maintenance::GC_GRACE;
pub(crate) use manifests::ManifestHit;
pub(crate) use pins::PinOutcome;

use crate::cluster::Cluster;
use crate::config::{is_docker_hub_host, CacheConfig, StorageConfig, TagRules};
use crate::domain::{Digest, RepoName};
use crate::store::{
    check_blob_store, BlobBackend, CachedBlobStore, DirBlobStore, MetaStore, S3BlobStore,
    SharedState, StoreError,
};
use crate::upstream::{
    Health, RateBudgetStatus, Reachability, Upstream, UpstreamError, UpstreamSetupError,
};
use download::Downloads;
use flight::SingleFlight;
use manifests::ManifestMemo;

/// What every cache shares: the stores and the downloads under way.
pub(crate) struct Storage {
    blobs: Arc<dyn BlobBackend>,
    meta: MetaStore,
    downloads: Downloads,
    manifests: ManifestMemo,
    quota: quota::Quota,
    /// One eviction at a time.
    evicting: tokio::sync::Mutex<()>,
    /// Garbage collection (write) waits for imports under way (read): an
    /// import's blobs are referenced only once all of them are checked, and
    /// one stored by an earlier, interrupted import may be older than GC's
    /// grace.
    collecting: tokio::sync::RwLock<()>,
    /// Images being completed in the background (`complete_images`).
    completions: complete::Completions,
    /// The listings' walks, remembered until the metadata changes.
    summaries: summaries::Summaries,
    /// The breaker of each upstream (by URL and proxy), so that caches of
    /// one upstream, also caches rebuilt after an API change, agree on it.
    upstream_health: Mutex<HashMap<String, Weak<Health>>>,
    /// The other nodes on the same object store, when there are any.
    cluster: Option<Arc<Cluster>>,
    /// The cluster's objects under `state/` in the bucket (cluster only).
    shared_state: Option<SharedState>,
}

impl Storage {
    /// Opens the data directory with the blobs in it (tests).
    #[cfg(test)]
    pub(crate) fn open(data_dir: &Path) -> Result<Arc<Storage>, StoreError> {
        Storage::open_with_quota(data_dir, None, &StorageConfig::default(), None)
    }

    /// Opens the data directory with a `max_size` in bytes, the blobs where
    /// `storage` says (the directory, or an object store), as a member of
    /// `cluster` when given.
    pub(crate) fn open_with_quota(
        data_dir: &Path,
        max_size: Option<u64>,
        storage: &StorageConfig,
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Arc<Storage>, StoreError> {
        // Created private and checked by `datadir::lock`, taken before.
        std::fs::create_dir_all(data_dir)?;
        let meta = MetaStore::open(&data_dir.join("meta"))?;
        let s3 = storage
            .s3()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let identity = s3.as_ref().map_or_else(|| "local".into(), |s| s.identity());
        check_blob_store(data_dir, &identity, meta.blocking().was_recovered())?;
        let shared_state = match (&s3, &cluster) {
            (Some(settings), Some(_)) => Some(SharedState::open(settings)?),
            _ => None,
        };
        let blobs: Arc<dyn BlobBackend> = match s3 {
            None => Arc::new(DirBlobStore::open(data_dir)?),
            Some(settings) => {
                let s3: Arc<dyn BlobBackend> =
                    Arc::new(S3BlobStore::open(&settings, data_dir)?.shared(cluster.is_some()));
                match storage.local_cache {
                    Some(capacity) => Arc::new(CachedBlobStore::open(s3, data_dir, capacity)?),
                    None => s3,
                }
            }
        };
        if !meta.blocking().was_recovered() {
            let registered = maintenance::register_stored_blobs(&*blobs, meta.blocking())?;
            if registered > 0 {
                meta.blocking().flush()?;
                tracing::info!(
                    registered,
                    "new metadata database: recorded the blobs already stored"
                );
            }
        }
        let used = if max_size.is_some() {
            quota::measure(meta.blocking())?
        } else {
            0
        };
        // Restored once here; kept as a running total from now on.
        let usage = usage::CacheUsage::restored(quota::held_by_caches(meta.blocking(), None)?);
        Ok(Arc::new(Storage {
            blobs,
            meta,
            downloads: Downloads::default(),
            manifests: ManifestMemo::default(),
            quota: quota::Quota::new(max_size, used, usage),
            evicting: tokio::sync::Mutex::new(()),
            collecting: tokio::sync::RwLock::new(()),
            completions: complete::Completions::default(),
            summaries: summaries::Summaries::default(),
            upstream_health: Mutex::new(HashMap::new()),
            cluster,
            shared_state,
        }))
    }

    /// Removes temp files a previous run left (at server start-up).
    pub(crate) fn remove_leftover_temp_files(&self) -> Result<usize, StoreError> {
        self.blobs.remove_temp_files()
    }

    pub(crate) fn blobs(&self) -> &Arc<dyn BlobBackend> {
        &self.blobs
    }

    pub(crate) fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// The cluster this node is a member of (none: a single node).
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The cluster's shared state objects (none: a single node).
    pub(crate) fn shared_state(&self) -> Option<&SharedState> {
        self.shared_state.as_ref()
    }

    /// Whether a temp file can be written, the blob store answers and the
    /// metadata is read (blocking). `Ok(Some(why))`: ready but degraded, an
    /// unreachable object store behind a local read cache, which keeps
    /// serving what it holds (a load balancer should keep sending pulls).
    pub(crate) fn check_writable(&self) -> Result<Option<String>, StoreError> {
        self.blobs.staging().probe()?;
        self.meta.blocking().repo("")?;
        match self.blobs.probe() {
            Ok(()) => Ok(None),
            Err(e) if self.blobs.serves_without_store() => Ok(Some(format!(
                "{e}; serving only what the local read cache holds"
            ))),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn downloads_in_flight(&self) -> usize {
        self.downloads.in_flight()
    }

    /// The breaker shared by every cache of `config`'s upstream.
    fn upstream_health(&self, config: &CacheConfig) -> Arc<Health> {
        let key = format!(
            "{} via {}",
            config.upstream.as_str().trim_end_matches('/'),
            config.proxy_url.as_ref().map_or("", |u| u.as_str())
        );
        let mut map = self
            .upstream_health
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(health) = map.get(&key).and_then(Weak::upgrade) {
            return health;
        }
        map.retain(|_, h| h.strong_count() > 0);
        let health = Arc::new(Health::default());
        map.insert(key, Arc::downgrade(&health));
        health
    }
}

type FlightKey = (String, String);
/// An upstream tag list and when it was fetched.
type TagList = (Instant, Arc<Vec<String>>);

/// One pull-through cache: a base path backed by one upstream.
pub(crate) struct Cache {
    config: CacheConfig,
    namespace: String,
    tag_ttl: Duration,
    /// The tag policies, compiled: how long each tag is trusted.
    tag_rules: TagRules,
    /// How long a pull of a stale tag waits for its revalidation before it
    /// is answered from the cache (the revalidation then goes on alone).
    revalidate_timeout: Duration,
    upstream: Arc<Upstream>,
    storage: Arc<Storage>,
    manifest_flights: SingleFlight<FlightKey, Result<ManifestHit, CacheError>>,
    /// Upstream confirmations that a repository has a blob: one at a time
    /// per (repository, digest), however many clients ask.
    blob_confirmations: SingleFlight<FlightKey, Result<Option<u64>, CacheError>>,
    /// Upstream tag lists, kept for the tag TTL.
    tag_lists: Mutex<HashMap<RepoName, TagList>>,
}

impl Cache {
    pub(crate) fn new(
        config: &CacheConfig,
        global_tag_ttl: u64,
        storage: Arc<Storage>,
    ) -> Result<Cache, UpstreamSetupError> {
        storage.set_cache_max(&config.base_path, config.policy().max_size);
        Ok(Cache {
            config: config.clone(),
            namespace: config.namespace(),
            tag_ttl: config.tag_ttl(global_tag_ttl),
            tag_rules: config.tag_rules(global_tag_ttl),
            revalidate_timeout: config.revalidate_timeout(),
            upstream: Arc::new(Upstream::with_health(
                config,
                storage.upstream_health(config),
            )?),
            storage,
            manifest_flights: SingleFlight::default(),
            blob_confirmations: SingleFlight::default(),
            tag_lists: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn base_path(&self) -> &str {
        &self.config.base_path
    }

    pub(crate) fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Pulls through a private cache need the admin's credentials.
    pub(crate) fn is_private(&self) -> bool {
        self.config.private
    }

    /// The local repository a pull of `repo` lands in: `<base_path>/<repo>`.
    pub(crate) fn local_name(&self, repo: &RepoName) -> String {
        repo.prefixed(&self.config.base_path)
    }

    /// Whether the upstream answers, and while down, why not.
    pub(crate) fn upstream_reachability(&self) -> (Reachability, Option<UpstreamError>) {
        self.upstream.reachability()
    }

    /// The upstream's answers timed since start and their total time to
    /// headers in microseconds (shared by the caches of one upstream).
    pub(crate) fn upstream_response_times(&self) -> (u64, u64) {
        self.upstream.response_times()
    }

    /// The upstream's rate budget as its answers last reported it.
    pub(crate) fn upstream_rate_budget(&self) -> RateBudgetStatus {
        self.upstream.rate_budget()
    }

    /// A blob `repo` may see (see `access`): stored, arriving, or fetched.
    pub(crate) async fn blob(&self, repo: &RepoName, digest: &Digest) -> Result<Blob, CacheError> {
        // Checked before joining a download too: downloads are by digest.
        // A member's request was checked by that member before it was
        // forwarded (a member asks for a blob only from `Cache::blob`):
        // checking it again would cost the owner an upstream HEAD.
        if !forward::from_member() {
            self.admit_blob(repo, digest).await?;
        }
        let downloads = &self.storage.downloads;
        downloads
            .blob(&self.storage, &self.fetcher(repo), repo, digest)
            .await
    }

    /// The size of a blob `repo` may see; answers as `blob` would.
    pub(crate) async fn blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, CacheError> {
        match self.admit_blob(repo, digest).await? {
            access::Admission::Referenced => {
                let downloads = &self.storage.downloads;
                downloads
                    .blob_size(&self.storage, &self.fetcher(repo), digest)
                    .await
            }
            access::Admission::Confirmed { size } => {
                let downloads = &self.storage.downloads;
                Ok(downloads
                    .local_blob_size(&self.storage, digest)
                    .await?
                    .or(size))
            }
        }
    }
}

/// Which cache a request path belongs to.
pub(crate) struct Route {
    pub cache: Arc<Cache>,
    /// The repository's name upstream.
    pub repo: RepoName,
    /// Set when the cache was chosen by `?ns=` (echoed as `OCI-Namespace`).
    pub namespace: Option<String>,
}

/// The caches ferry serves, looked up by base path or by namespace.
pub(crate) struct Caches {
    caches: RwLock<Vec<Arc<Cache>>>,
    storage: Arc<Storage>,
}

impl Caches {
    pub(crate) fn new(storage: Arc<Storage>, caches: Vec<Cache>) -> Caches {
        let served: Vec<&str> = caches.iter().map(|c| c.base_path()).collect();
        storage.quota.usage.serve(&served);
        Caches {
            caches: RwLock::new(caches.into_iter().map(Arc::new).collect()),
            storage,
        }
    }

    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// Replaces the set of caches (after a change through the API): a cache
    /// kept from the old set keeps its state. Requests under way keep the
    /// cache they started with.
    pub(crate) fn replace(&self, caches: Vec<Arc<Cache>>) {
        let served: Vec<&str> = caches.iter().map(|c| c.base_path()).collect();
        self.storage.quota.usage.serve(&served);
        for gone in self.list() {
            if !served.contains(&gone.base_path()) {
                crate::metrics::METRICS.forget_cache(gone.base_path());
            }
        }
        *self.caches.write().unwrap_or_else(|p| p.into_inner()) = caches;
    }

    /// Whether any cache is private (then `/v2/` asks clients to authenticate).
    pub(crate) fn any_private(&self) -> bool {
        self.list().iter().any(|c| c.is_private())
    }

    pub(crate) fn list(&self) -> Vec<Arc<Cache>> {
        self.caches
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The cache served at `base_path` now, if any.
    pub(crate) fn serving(&self, base_path: &str) -> Option<Arc<Cache>> {
        self.caches
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|c| c.base_path() == base_path)
            .cloned()
    }

    /// Routes a repository name: by the longest base path that prefixes it;
    /// else by `?ns=`; else, as Docker's `registry-mirrors` send plain
    /// Docker Hub names, to the Docker Hub cache if there is one.
    pub(crate) fn route(&self, name: &RepoName, ns: Option<&str>) -> Option<Route> {
        let caches = self.list();
        let full = name.as_str();
        let by_path = caches
            .iter()
            .filter_map(|c| {
                let rest = full.strip_prefix(c.base_path())?.strip_prefix('/')?;
                Some((c, rest))
            })
            .max_by_key(|(c, _)| c.base_path().len());
        let (cache, rest, namespace) = match by_path {
            Some((cache, rest)) => (cache, rest, None),
            None => {
                let wanted = ns.map(|n| {
                    if is_docker_hub_host(n) {
                        "docker.io"
                    } else {
                        n
                    }
                });
                let cache = match wanted {
                    Some(ns) => caches.iter().find(|c| c.namespace == ns)?,
                    None => caches.iter().find(|c| c.namespace == "docker.io")?,
                };
                (cache, full, ns.map(str::to_string))
            }
        };
        let repo = RepoName::parse(rest).ok()?;
        let repo = if cache.config.library_prefix() {
            repo.with_library_prefix()
        } else {
            repo
        };
        if !cache.config.allows(repo.as_str()) {
            return None;
        }
        Some(Route {
            cache: cache.clone(),
            repo,
            namespace,
        })
    }

    /// The local repositories, sorted by name.
    pub(crate) async fn catalog(&self) -> Result<Vec<String>, CacheError> {
        let repos = self.storage.meta.repos().await?;
        Ok(repos.into_iter().map(|(name, _)| name).collect())
    }
}
