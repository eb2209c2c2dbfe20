//! The size quotas: ferry tracks the bytes it stores, and before a download
//! that would exceed `max_size` it evicts the least recently pulled images
//! (a tag, then whatever nothing kept references). Each cache may have a
//! `max_size` of its own (its bytes kept in `usage`): a cache over it loses
//! its own least recently pulled images first, then the global `max_size`
//! applies across caches. Pull recency is kept in memory and written to the
//! tag records in batches, not on every pull.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::{blocking, CacheError};
use super::maintenance::{closure, evict_image};
use super::usage::{key, CacheUsage, Key};
use super::Storage;
use crate::domain::Digest;
use crate::metrics::METRICS;
use crate::store::{unix_millis, BlobBackend, BlockingMeta, Pins, StoreError};

/// Bytes stored, against an optional ceiling, and each cache's bytes.
#[derive(Default)]
pub(super) struct Quota {
    pub max: Option<u64>,
    used: AtomicU64,
    /// Per cache (shared with the blocking tasks that evict and recount).
    pub usage: Arc<CacheUsage>,
    /// repository → tag → last pull (ms), not yet written to the store.
    /// Nested so that a repeated pull updates in place, allocating nothing.
    recent: Mutex<HashMap<String, HashMap<String, u64>>>,
}

impl Quota {
    pub(super) fn new(max: Option<u64>, used: u64, usage: CacheUsage) -> Quota {
        Quota {
            max,
            used: AtomicU64::new(used),
            usage: Arc::new(usage),
            recent: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn sub(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    fn take_recent(&self) -> HashMap<String, HashMap<String, u64>> {
        std::mem::take(&mut *self.recent.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The bytes the store holds now (blocking; at start-up).
pub(super) fn measure(meta: &BlockingMeta) -> Result<u64, StoreError> {
    let blobs: u64 = meta.blob_records()?.iter().map(|(_, r)| r.size).sum();
    let mut manifests = 0;
    for item in meta.manifests() {
        manifests += item?.1.size;
    }
    Ok(blobs + manifests)
}

/// The bytes a digest's content occupies, 0 when it is not stored.
fn stored_size(meta: &BlockingMeta, digest: &Digest) -> Result<u64, StoreError> {
    Ok(match meta.manifest(digest)? {
        Some(m) => m.size,
        None => meta.blob(digest)?.map_or(0, |b| b.size),
    })
}

/// What each cache (or only `only`) holds, digest → stored size: the
/// manifests of its repositories, their children and blobs (blocking; a
/// walk, at start-up and when a cache loses references).
pub(super) fn held_by_caches(
    meta: &BlockingMeta,
    only: Option<&str>,
) -> Result<HashMap<String, HashMap<Key, u64>>, StoreError> {
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    let mut held: HashMap<String, HashMap<Key, u64>> = HashMap::new();
    for (name, record) in meta.repos()? {
        if only.is_some_and(|cache| cache != record.cache) {
            continue;
        }
        let cache = held.entry(record.cache).or_default();
        for digest in closure(meta, meta.members(&name)?)? {
            let size = match sizes.get(&digest) {
                Some(size) => *size,
                None => {
                    let size = stored_size(meta, &digest)?;
                    sizes.insert(digest.clone(), size);
                    size
                }
            };
            cache.insert(key(&digest), size);
        }
    }
    Ok(held)
}

/// Counts `cache` again from the metadata, after it lost references. A
/// recount that raced a pull into the cache is retried, and the last try
/// installed regardless (the next recount corrects what it missed).
fn recount(meta: &BlockingMeta, usage: &CacheUsage, cache: &str) -> Result<(), StoreError> {
    const TRIES: usize = 3;
    for attempt in 1..=TRIES {
        let begun = usage.generation(cache);
        let held = held_by_caches(meta, Some(cache))?
            .remove(cache)
            .unwrap_or_default();
        if usage.replace(cache, held, begun, attempt == TRIES) {
            break;
        }
    }
    Ok(())
}

/// Settles the tallies after `removed` left the store and `cache` (if
/// any) lost references (blocking).
fn after_removal(
    meta: &BlockingMeta,
    usage: &CacheUsage,
    cache: Option<&str>,
    removed: &[Digest],
) -> Result<(), StoreError> {
    for digest in removed {
        usage.removed(key(digest));
    }
    match cache {
        Some(cache) => recount(meta, usage, cache),
        None => Ok(()),
    }
}

impl Storage {
    /// Records a pull of a tag, in memory only (eviction order, and the
    /// "last pulled" the API shows).
    pub(crate) fn note_pull(&self, repo: &str, tag: &str) {
        let now = unix_millis();
        let mut recent = self.quota.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.get_mut(repo) {
            Some(tags) => match tags.get_mut(tag) {
                Some(at) => *at = now,
                None => {
                    tags.insert(tag.to_string(), now);
                }
            },
            None => {
                recent.insert(repo.to_string(), HashMap::from([(tag.to_string(), now)]));
            }
        }
    }

    /// Writes the pulls noted since the last flush into the tag records.
    pub(crate) async fn flush_recency(&self) -> Result<(), CacheError> {
        let recent = self.quota.take_recent();
        if recent.is_empty() {
            return Ok(());
        }
        let meta = self.meta.clone();
        blocking(move || {
            for (repo, tags) in recent {
                for (tag, at) in tags {
                    meta.blocking().note_pulled(&repo, &tag, at)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Whether `digest`, of `size` bytes, may be cached, evicting to make
    /// room: first within each cache that will hold it (one that has a
    /// `max_size`), then across caches for the global `max_size`. A blob
    /// larger than a quota, or that fits only by evicting the image being
    /// pulled, is not cached (false).
    pub(crate) async fn make_room(&self, digest: &Digest, size: u64) -> Result<bool, CacheError> {
        for cache in self.quota.usage.awaiting(key(digest)) {
            if !self.keep_cache_within(&cache, size, Some(digest)).await? {
                tracing::warn!(%cache, %digest, size, "no room within the cache's max_size beside the image being pulled");
                return Ok(false);
            }
        }
        let Some(max) = self.quota.max else {
            return Ok(true);
        };
        if size > max {
            return Ok(false);
        }
        if self.quota.used() + size <= max {
            return Ok(true);
        }
        self.flush_recency().await?;
        let _one_at_a_time = self.evicting.lock().await;
        let need = (self.quota.used() + size).saturating_sub(max);
        if need == 0 {
            return Ok(true);
        }
        // What is downloading now belongs to images being pulled: those
        // are never evicted.
        let pulling: BTreeSet<Digest> = self.downloads.digests().into_iter().collect();
        let (meta, blobs, usage) = (
            self.meta.clone(),
            self.blobs.clone(),
            self.quota.usage.clone(),
        );
        let (freed, digests) = blocking(move || {
            evict(
                meta.blocking(),
                &*blobs,
                &usage,
                Scope::Global { need },
                &pulling,
            )
        })
        .await?;
        self.quota.sub(freed);
        for digest in &digests {
            self.manifests.forget(digest);
        }
        Ok(self.quota.used() + size <= max)
    }

    /// Keeps `cache` within its own `max_size` with `incoming` more bytes,
    /// evicting its least recently pulled images; true if they fit. The
    /// image holding `pulled` (the pull that asks) and those downloading
    /// now are never evicted: an image larger than the quota stays whole
    /// while it is pulled, and what does not fit beside it is not cached.
    pub(super) async fn keep_cache_within(
        &self,
        cache: &str,
        incoming: u64,
        pulled: Option<&Digest>,
    ) -> Result<bool, CacheError> {
        let usage = &self.quota.usage;
        let Some(max) = usage.max(cache) else {
            return Ok(true);
        };
        let fits = || usage.bytes(cache) + incoming <= max;
        if incoming > max {
            return Ok(false);
        }
        if fits() {
            return Ok(true);
        }
        self.flush_recency().await?;
        let _one_at_a_time = self.evicting.lock().await;
        if fits() {
            return Ok(true);
        }
        let mut protected: BTreeSet<Digest> = self.downloads.digests().into_iter().collect();
        protected.extend(pulled.cloned());
        let (meta, blobs, tallies, name) = (
            self.meta.clone(),
            self.blobs.clone(),
            usage.clone(),
            cache.to_string(),
        );
        let target = max - incoming;
        let (freed, digests) = blocking(move || {
            let scope = Scope::Cache {
                name: &name,
                target,
            };
            evict(meta.blocking(), &*blobs, &tallies, scope, &protected)
        })
        .await?;
        self.quota.sub(freed);
        for digest in &digests {
            self.manifests.forget(digest);
        }
        Ok(fits())
    }

    /// Keeps each of `caches` (found over their `max_size` after `pulled`
    /// was stored, or after the `max_size` was lowered) within it. Failures
    /// are logged: the pull (or the change) succeeded.
    pub(super) async fn keep_caches_within(&self, caches: Vec<String>, pulled: Option<&Digest>) {
        for cache in caches {
            match self.keep_cache_within(&cache, 0, pulled).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(%cache, bytes = self.quota.usage.bytes(&cache), max_size = ?self.quota.usage.max(&cache),
                        "cache over its max_size: only the images being pulled are left")
                }
                Err(e) => {
                    tracing::error!(%cache, error = %e, "could not evict within the cache's max_size")
                }
            }
        }
    }

    /// Charges `cache` with what `digest` (a manifest that just joined one
    /// of its repositories) holds, then keeps the cache within its
    /// `max_size`. Accounting never fails a pull: errors are logged.
    pub(super) async fn charge(&self, cache: &str, digest: &Digest) {
        let (meta, usage, name, d) = (
            self.meta.clone(),
            self.quota.usage.clone(),
            cache.to_string(),
            digest.clone(),
        );
        let charged = blocking(move || {
            let meta = meta.blocking();
            let held = closure(meta, vec![d])?;
            // Referenced first, sized after: a blob committed in between
            // is charged by the commit or by this, never by neither.
            usage.reference(&name, held.iter().map(key));
            let mut over = Vec::new();
            for digest in &held {
                over.extend(usage.stored(key(digest), stored_size(meta, digest)?));
            }
            Ok(over)
        })
        .await;
        match charged {
            Ok(mut over) => {
                over.sort();
                over.dedup();
                self.keep_caches_within(over, Some(digest)).await;
            }
            Err(e) => {
                tracing::error!(%cache, %digest, error = %e, "could not count the cache's bytes")
            }
        }
    }

    /// Settles the tallies after a delete or a collection: `removed` left
    /// the store, and `cache` (if any) lost references (recounted).
    pub(super) async fn settle_usage(
        &self,
        cache: Option<String>,
        removed: Vec<Digest>,
    ) -> Result<(), CacheError> {
        let (meta, usage) = (self.meta.clone(), self.quota.usage.clone());
        if cache.is_none() {
            // Nothing to recount: no trip to the blocking pool.
            return Ok(after_removal(meta.blocking(), &usage, None, &removed)?);
        }
        blocking(move || after_removal(meta.blocking(), &usage, cache.as_deref(), &removed)).await
    }

    /// Each cache's bytes and `max_size`, as the API and metrics show them.
    /// The global `max_size` (none: no limit).
    pub(crate) fn max_size(&self) -> Option<u64> {
        self.quota.max
    }

    pub(crate) fn cache_sizes(&self) -> Vec<super::usage::CacheSize> {
        self.quota.usage.sizes()
    }

    /// A cache's own `max_size` (set as the cache is built).
    pub(super) fn set_cache_max(&self, cache: &str, max: Option<u64>) {
        self.quota.usage.set_max(cache, max);
    }

    /// After a cache's `max_size` was set or lowered (through the API or a
    /// reload): evicts within it at once rather than at its next pull, so
    /// the disk it frees is free when the admin looks.
    pub(crate) async fn enforce_cache_max(&self, cache: &str) {
        let usage = &self.quota.usage;
        if usage.max(cache).is_some_and(|max| usage.bytes(cache) > max) {
            self.keep_caches_within(vec![cache.to_string()], None).await;
        }
    }
}

/// Bytes that `pins` hold: per cache (content shared by two caches counts
/// in each, as `usage` counts it) and in all (each object once). Blocking:
/// a walk over the tags, for a pin's admission and the status endpoint.
pub(crate) fn pinned_bytes(
    meta: &BlockingMeta,
    pins: &Pins,
) -> Result<(HashMap<String, u64>, u64), StoreError> {
    let mut per_cache: HashMap<String, BTreeSet<Digest>> = HashMap::new();
    if pins.is_empty() {
        return Ok((HashMap::new(), 0));
    }
    for (repo, record) in meta.repos()? {
        for (tag, tag_record) in meta.tags_of(&repo)? {
            if pins.covers(&record.cache, &repo, &tag) {
                let held = closure(meta, vec![tag_record.digest])?;
                per_cache
                    .entry(record.cache.clone())
                    .or_default()
                    .extend(held);
            }
        }
    }
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    let mut bytes = HashMap::new();
    for (cache, digests) in &per_cache {
        let mut sum = 0;
        for digest in digests {
            let size = match sizes.get(digest) {
                Some(size) => *size,
                None => {
                    let size = stored_size(meta, digest)?;
                    sizes.insert(digest.clone(), size);
                    size
                }
            };
            sum += size;
        }
        bytes.insert(cache.clone(), sum);
    }
    Ok((bytes, sizes.values().sum()))
}

/// What an eviction may take, and when it has done enough.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Any cache's images, until `need` bytes left the disk.
    Global { need: u64 },
    /// One cache's images, until it holds `target` bytes or fewer.
    Cache { name: &'a str, target: u64 },
}

/// Evicts tags, least recently pulled first, until `scope` is satisfied.
fn evict(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    usage: &CacheUsage,
    scope: Scope,
    protected: &BTreeSet<Digest>,
) -> Result<(u64, Vec<Digest>), StoreError> {
    let pins = meta.pins()?;
    let mut tags = Vec::new();
    for (repo, repo_record) in meta.repos()? {
        if matches!(scope, Scope::Cache { name, .. } if name != repo_record.cache) {
            continue;
        }
        for (tag, record) in meta.tags_of(&repo)? {
            if pins.covers(&repo_record.cache, &repo, &tag) {
                continue;
            }
            let last_use = record
                .last_pulled
                .max(record.confirmed_at.saturating_mul(1000));
            tags.push((
                last_use,
                repo.clone(),
                tag,
                record.digest,
                repo_record.cache.clone(),
            ));
        }
    }
    tags.sort();
    let (mut freed, mut removed) = (0, Vec::new());
    for (_, repo, tag, digest, cache) in tags {
        let done = match scope {
            Scope::Global { need } => freed >= need,
            Scope::Cache { name, target } => usage.bytes(name) <= target,
        };
        if done {
            break;
        }
        if !evictable(meta, &digest, protected)? {
            continue;
        }
        let (bytes, digests) = evict_image(meta, blobs, &repo, &tag, &digest)?;
        after_removal(meta, usage, Some(&cache), &digests)?;
        removed.extend(digests);
        freed += bytes;
        METRICS.evicted(&cache);
        match scope {
            Scope::Global { .. } => {
                tracing::info!(repository = %repo, %tag, %digest, bytes, "evicted to stay within max_size")
            }
            Scope::Cache { .. } => {
                tracing::info!(%cache, repository = %repo, %tag, %digest, bytes, cache_bytes = usage.bytes(&cache),
                    "evicted to stay within the cache's max_size")
            }
        }
    }
    Ok((freed, removed))
}

/// Whether an image may be evicted: not while it is being pulled (it holds
/// a digest of `protected`). Pinned tags never reach here (`evict` skips
/// them); the content they share with an evicted tag stays, referenced.
fn evictable(
    meta: &BlockingMeta,
    digest: &Digest,
    protected: &BTreeSet<Digest>,
) -> Result<bool, StoreError> {
    Ok(closure(meta, vec![digest.clone()])?.is_disjoint(protected))
}
