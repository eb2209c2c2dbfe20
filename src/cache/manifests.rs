//! Manifests: stored by digest (verified), tags pointing at them with the
//! time upstream last confirmed them. Within the TTL a tag is answered from
//! the store; after it, a `HEAD` upstream (free of Docker Hub's pull limit)
//! revalidates it, and only a changed digest causes a `GET`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::error::{blocking, CacheError};
use super::manifest_info::{checked_media_type, describe, effective_media_type};
use super::{Cache, Storage};
use crate::config::StaleCase;
use crate::domain::{Digest, MediaType, Reference, RepoName, Tag};
use crate::metrics::METRICS;
use crate::store::{unix_millis, unix_now, Change, RepoRecord, TagRecord};
use crate::upstream::{FetchedManifest, UpstreamError};

/// A manifest ready to send.
#[derive(Clone, Debug)]
pub(crate) struct ManifestHit {
    pub digest: Digest,
    pub media_type: MediaType,
    pub bytes: Bytes,
    /// Answered from the store (else fetched upstream for this request).
    pub from_cache: bool,
}

/// Recently served manifests in memory, so a warm pull reads no file.
/// Bounded by bytes; when full it starts over (simple, and warm entries
/// come back on their next request).
#[derive(Default)]
pub(super) struct ManifestMemo {
    entries: Mutex<(HashMap<Digest, ManifestHit>, usize)>,
}

const MEMO_BYTES: usize = 16 * 1024 * 1024;

impl ManifestMemo {
    fn get(&self, digest: &Digest) -> Option<ManifestHit> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let hit = entries.0.get(digest)?;
        Some(ManifestHit {
            from_cache: true,
            ..hit.clone()
        })
    }

    pub(super) fn forget(&self, digest: &Digest) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = guard.0.remove(digest) {
            guard.1 -= hit.bytes.len();
        }
    }

    fn put(&self, hit: &ManifestHit) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (map, bytes) = &mut *guard;
        if *bytes + hit.bytes.len() > MEMO_BYTES {
            map.clear();
            *bytes = 0;
        }
        if map.insert(hit.digest.clone(), hit.clone()).is_none() {
            *bytes += hit.bytes.len();
        }
    }
}

/// Manifests larger than this are refused (the distribution spec's advice).
pub(super) const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A JSON object with a `schemaVersion`: never a layer's bytes.
pub(super) fn looks_like_manifest(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion")]
        _schema_version: u32,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok()
}

impl Storage {
    /// A stored manifest, or `None` if its bytes are missing. A manifest
    /// file without a record (metadata rebuilt after damage) gets its record
    /// back, if the bytes are a manifest.
    pub(crate) async fn stored_manifest(
        &self,
        digest: &Digest,
    ) -> Result<Option<ManifestHit>, CacheError> {
        if let Some(hit) = self.manifests.get(digest) {
            return Ok(Some(hit));
        }
        let (blobs, meta, d) = (self.blobs.clone(), self.meta.clone(), digest.clone());
        let found = blocking(move || {
            let meta = meta.blocking();
            let record = meta.manifest(&d)?;
            if record.is_none() && blobs.size_of(&d)?.is_none_or(|s| s > MAX_MANIFEST_BYTES) {
                return Ok(None);
            }
            let Some(bytes) = blobs.read_blob(&d)? else {
                return Ok(None);
            };
            let record = match record {
                Some(record) => record,
                None if looks_like_manifest(&bytes) => {
                    let media_type = effective_media_type(None, &bytes);
                    let record = describe(&media_type, &bytes, unix_now());
                    meta.put_manifest(&d, &record)?;
                    record
                }
                None => return Ok(None),
            };
            Ok(Some((record, bytes)))
        })
        .await?;
        let Some((record, bytes)) = found else {
            return Ok(None);
        };
        let hit = ManifestHit {
            digest: digest.clone(),
            media_type: record.media_type,
            bytes: Bytes::from(bytes),
            from_cache: true,
        };
        self.manifests.put(&hit);
        Ok(Some(hit))
    }

    /// Verifies and stores a manifest fetched upstream. One that would be
    /// served with anything but a manifest media type is refused unstored.
    async fn store_manifest(
        &self,
        digest: &Digest,
        fetched: FetchedManifest,
    ) -> Result<ManifestHit, CacheError> {
        if !digest.matches(&fetched.bytes) {
            return Err(CacheError::DigestMismatch(digest.clone()));
        }
        let media_type = checked_media_type(fetched.media_type.as_deref(), &fetched.bytes)
            .map_err(|e| CacheError::Upstream(UpstreamError::rejected(e)))?;
        let record = describe(&media_type, &fetched.bytes, unix_now());
        let (blobs, meta, d, bytes) = (
            self.blobs.clone(),
            self.meta.clone(),
            digest.clone(),
            fetched.bytes.clone(),
        );
        let size = fetched.bytes.len() as u64;
        let stored = blocking(move || {
            let new = !blobs.contains(&d)?;
            blobs.put_verified(&d, &bytes)?;
            meta.blocking().put_manifest(&d, &record)?;
            Ok(new)
        })
        .await?;
        if stored {
            self.quota.add(size);
            // Caches waiting for it (an index's child) are charged now;
            // the cache pulling it is kept within bounds as it joins.
            self.quota.usage.stored(super::usage::key(digest), size);
        }
        let hit = ManifestHit {
            digest: digest.clone(),
            media_type,
            bytes: fetched.bytes,
            from_cache: false,
        };
        self.manifests.put(&hit);
        Ok(hit)
    }
}

impl Cache {
    /// A manifest by tag or digest. `accept` is the client's `Accept`,
    /// forwarded upstream.
    pub(crate) async fn manifest(
        self: &Arc<Self>,
        repo: &RepoName,
        reference: &Reference,
        accept: Option<&str>,
    ) -> Result<ManifestHit, CacheError> {
        let accept = accept.unwrap_or(MediaType::ALL_MANIFESTS);
        match reference {
            Reference::Digest(digest) => self.manifest_by_digest(repo, digest, accept).await,
            Reference::Tag(tag) => self.manifest_by_tag(repo, tag, accept).await,
        }
    }

    /// A manifest by digest. Stored content is answered only under a
    /// repository that references it; under another, the upstream must
    /// confirm that repository has it first (see `access`), and only then
    /// does the manifest join it (creating the repository if need be).
    async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        accept: &str,
    ) -> Result<ManifestHit, CacheError> {
        let local = self.local_name(repo);
        let referenced = self.references(repo, digest).await?;
        if referenced {
            if let Some(hit) = self.storage.stored_manifest(digest).await? {
                METRICS.cache("manifest", true);
                // A digest, once stored here, never causes upstream traffic.
                if self.add_to_repo(&local, repo, digest).await? {
                    self.storage.meta.flush_async().await?;
                }
                return Ok(hit);
            }
        }
        METRICS.cache("manifest", false);
        let key = (local.clone(), digest.to_string());
        self.manifest_flights
            .run(key, self.upstream.wait_bound(), || async {
                let stored_elsewhere = if referenced {
                    None
                } else {
                    self.storage.stored_manifest(digest).await?
                };
                let hit = match stored_elsewhere {
                    Some(hit) => {
                        self.confirm_manifest(repo, digest).await?;
                        hit
                    }
                    None => {
                        self.fetch(repo, &digest.to_string(), Some(digest), accept)
                            .await?
                    }
                };
                self.add_to_repo(&local, repo, digest).await?;
                // Durable before the client is answered: a crash must not
                // forget what a client was told is cached.
                self.storage.meta.flush_async().await?;
                Ok(hit)
            })
            .await
    }

    /// Whether a tag upstream confirmed at `confirmed_at` is still within
    /// its TTL (its tag policy's, else the cache's; some never expire).
    fn is_fresh(&self, tag: &Tag, confirmed_at: u64) -> bool {
        let age = Duration::from_secs(unix_now().saturating_sub(confirmed_at));
        self.tag_rules
            .ttl_of(tag.as_str())
            .is_none_or(|ttl| age < ttl)
    }

    /// Within the TTL a tag is answered from the store. Past it, the pull
    /// waits at most `revalidate_timeout` for the upstream to confirm it,
    /// then gets the cached tag while the check goes on in the background
    /// (stale-while-revalidate): a slow or black-holed upstream never makes
    /// a cached pull wait long. All of that is serving unconfirmed content
    /// on an upstream failure, so only with `stale_if` "error"; without it,
    /// a stale tag's pull waits for the upstream's answer.
    async fn manifest_by_tag(
        self: &Arc<Self>,
        repo: &RepoName,
        tag: &Tag,
        accept: &str,
    ) -> Result<ManifestHit, CacheError> {
        let local = self.local_name(repo);
        let record = self.storage.meta.tag(&local, tag.as_str()).await?;
        let key = (local.clone(), tag.to_string());
        if let Some(record) = &record {
            if let Some(hit) = self.storage.stored_manifest(&record.digest).await? {
                // A member asks only once its own copy is past the TTL:
                // answered from this one, its copy would be up to two TTLs
                // old, so the owner checks upstream (a HEAD) for it.
                let fresh =
                    self.is_fresh(tag, record.confirmed_at) && !super::forward::from_member();
                // Down, out of rate budget, or already being checked:
                // nothing to wait for.
                let may_serve_unchecked = self.config.policy().stale_if.error;
                let down = may_serve_unchecked && self.upstream.is_down();
                // Logged once when it is spent, not per pull.
                let spent = self.upstream.rate_budget_spent();
                let unchecked = down
                    || spent
                    || (may_serve_unchecked && self.manifest_flights.is_running(&key));
                if fresh || unchecked {
                    METRICS.cache("manifest", true);
                    self.storage.note_pull(&local, tag.as_str());
                    if down && !fresh {
                        tracing::warn!(cache = %self.base_path(), repo = %local, %tag, reason = "error", "upstream down: serving cached tag without revalidation");
                        METRICS.stale_served(self.base_path(), StaleCase::Error.name());
                    }
                    return Ok(hit);
                }
                return self
                    .revalidate_within_deadline(repo, &local, tag, accept, record.clone(), hit)
                    .await;
            }
        }
        METRICS.cache("manifest", false);
        self.manifest_flights
            .run(key, self.upstream.wait_bound(), || {
                self.revalidate_tag(repo, &local, tag, accept, record, true)
            })
            .await
    }

    /// Revalidates a stale tag in a task of its own (shared by concurrent
    /// pulls), and answers its outcome if it comes within the deadline,
    /// else `cached`. The task owns what it needs, so it finishes (and
    /// updates the tag) after this pull has been answered.
    async fn revalidate_within_deadline(
        self: &Arc<Self>,
        repo: &RepoName,
        local: &str,
        tag: &Tag,
        accept: &str,
        record: TagRecord,
        cached: ManifestHit,
    ) -> Result<ManifestHit, CacheError> {
        let this = self.clone();
        let key = (local.to_string(), tag.to_string());
        let (repo_, local_, tag_, accept_) = (
            repo.clone(),
            local.to_string(),
            tag.clone(),
            accept.to_string(),
        );
        // A member's request stays one in the task: it is never forwarded.
        let check = super::forward::spawn_keeping(async move {
            this.manifest_flights
                .run(key, this.upstream.wait_bound(), || {
                    this.revalidate_tag(&repo_, &local_, &tag_, &accept_, Some(record), true)
                })
                .await
        });
        let outcome = if self.config.policy().stale_if.error {
            tokio::time::timeout(self.revalidate_timeout, check)
                .await
                .ok()
        } else {
            Some(check.await)
        };
        let hit = match outcome {
            Some(Ok(result)) => result?,
            Some(Err(e)) => return Err(CacheError::Internal(format!("tag check failed: {e}"))),
            None => {
                tracing::info!(repo = %local, %tag, "upstream slow to confirm the tag: serving it from cache, the check goes on in the background");
                METRICS.stale_served(self.base_path(), StaleCase::Error.name());
                cached
            }
        };
        METRICS.cache("manifest", hit.from_cache);
        self.storage.note_pull(local, tag.as_str());
        Ok(hit)
    }

    /// Asks upstream where a cached tag points now, whatever its TTL (an
    /// operator's freshness check). Unlike a pull, an upstream that does
    /// not answer is an error here, not a reason to serve the cached tag.
    pub(crate) async fn refresh_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<TagRecord, CacheError> {
        let local = self.local_name(repo);
        let record = self.storage.meta.tag(&local, tag.as_str()).await?;
        let key = (local.clone(), tag.to_string());
        self.manifest_flights
            .run(key, self.upstream.wait_bound(), || {
                self.revalidate_tag(repo, &local, tag, MediaType::ALL_MANIFESTS, record, false)
            })
            .await?;
        self.storage
            .meta
            .tag(&local, tag.as_str())
            .await?
            .ok_or(CacheError::ManifestUnknown)
    }

    /// Asks upstream where a tag points now and brings the cache in line.
    /// With `may_serve_stale`, a failure answers the cached tag where the
    /// cache's `stale_if` allows it.
    async fn revalidate_tag(
        &self,
        repo: &RepoName,
        local: &str,
        tag: &Tag,
        accept: &str,
        record: Option<TagRecord>,
        may_serve_stale: bool,
    ) -> Result<ManifestHit, CacheError> {
        let Some(record) = record else {
            let hit = self.fetch(repo, tag.as_str(), None, accept).await?;
            self.point_tag(local, repo, tag, &hit).await?;
            self.storage.meta.flush_async().await?;
            return Ok(hit);
        };
        let hit = match self.follow_upstream_tag(repo, tag, accept).await {
            Ok(hit) => hit,
            Err(e) if may_serve_stale => return self.stale_or(e, local, tag, &record).await,
            Err(e) => return Err(e),
        };
        self.point_tag(local, repo, tag, &hit).await?;
        self.storage.meta.flush_async().await?;
        Ok(hit)
    }

    /// The manifest a tag points at upstream now: a `HEAD`, and a `GET`
    /// only when the digest is not stored yet.
    async fn follow_upstream_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        accept: &str,
    ) -> Result<ManifestHit, CacheError> {
        let head = match self.fetcher(repo).head_manifest(tag.as_str(), accept).await {
            Ok(head) => head,
            Err(UpstreamError::NotFound) => return Err(CacheError::ManifestUnknown),
            Err(e) => return Err(e.into()),
        };
        match head.digest {
            Some(digest) => match self.storage.stored_manifest(&digest).await? {
                Some(hit) => Ok(hit),
                None => {
                    self.fetch(repo, &digest.to_string(), Some(&digest), accept)
                        .await
                }
            },
            // An upstream that does not say the digest on HEAD: fetch by tag.
            None => self.fetch(repo, tag.as_str(), None, accept).await,
        }
    }

    /// The cached tag in place of `error` when the cache's `stale_if`
    /// allows it for that kind of answer (logged and counted), else `error`:
    /// a 404 then reads MANIFEST_UNKNOWN, as the upstream said.
    async fn stale_or(
        &self,
        error: CacheError,
        local: &str,
        tag: &Tag,
        record: &TagRecord,
    ) -> Result<ManifestHit, CacheError> {
        let Some(case) = error.stale_case() else {
            return Err(error);
        };
        // An imported tag (still where the import pointed it) was brought
        // here on purpose, often for an upstream that is never reachable:
        // whatever the upstream answers short of a new digest, it is served.
        let imported = self
            .storage
            .import_mark(local, tag.as_str())
            .await?
            .is_some_and(|mark| mark.digest == record.digest);
        if !imported && !self.config.policy().stale_if.allows(case) {
            tracing::info!(cache = %self.base_path(), repo = %local, %tag, reason = case.name(), upstream = %error, "upstream refused the cached tag; stale_if does not allow serving it");
            return Err(error);
        }
        let Some(hit) = self.storage.stored_manifest(&record.digest).await? else {
            return Err(error);
        };
        tracing::warn!(cache = %self.base_path(), repo = %local, %tag, reason = case.name(), upstream = %error, "upstream failed or refused: serving the cached tag (stale_if)");
        METRICS.stale_served(self.base_path(), case.name());
        Ok(hit)
    }

    /// GETs a manifest upstream, checks it against `expected` (or the
    /// upstream's `Docker-Content-Digest`), and stores it.
    async fn fetch(
        &self,
        repo: &RepoName,
        reference: &str,
        expected: Option<&Digest>,
        accept: &str,
    ) -> Result<ManifestHit, CacheError> {
        let fetched = match self.fetcher(repo).get_manifest(reference, accept).await {
            Err(UpstreamError::NotFound) => return Err(CacheError::ManifestUnknown),
            other => other?,
        };
        if !fetched.from_member {
            METRICS.fetched(fetched.bytes.len() as u64);
        }
        let digest = match (expected, &fetched.digest) {
            (Some(expected), _) => expected.clone(),
            // Trust a digest of another algorithm only after checking it.
            (None, Some(claimed)) => claimed.clone(),
            (None, None) => Digest::sha256_of(&fetched.bytes),
        };
        self.storage.store_manifest(&digest, fetched).await
    }

    /// Points a tag at a manifest (confirmed now), and records the change in
    /// the local repository: one atomic change of the metadata.
    async fn point_tag(
        &self,
        local: &str,
        repo: &RepoName,
        tag: &Tag,
        hit: &ManifestHit,
    ) -> Result<(), CacheError> {
        let record = TagRecord {
            digest: hit.digest.clone(),
            media_type: hit.media_type.clone(),
            size: hit.bytes.len() as u64,
            confirmed_at: unix_now(),
            last_pulled: unix_millis(),
        };
        let changed = self
            .storage
            .meta
            .point_tag(local, tag.as_str(), record, self.fresh_repo(repo))
            .await?;
        log_version(local, changed.as_ref());
        if changed.is_some() {
            self.storage.charge(self.base_path(), &hit.digest).await;
        }
        Ok(())
    }

    /// Records a manifest in a repository; true if that changed anything.
    async fn add_to_repo(
        &self,
        local: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, CacheError> {
        let changed = self
            .storage
            .meta
            .add_to_repo(local, digest, self.fresh_repo(repo))
            .await?;
        log_version(local, changed.as_ref());
        if changed.is_some() {
            self.storage.charge(self.base_path(), digest).await;
        }
        Ok(changed.is_some())
    }

    /// The record of a local repository a first pull creates.
    fn fresh_repo(&self, repo: &RepoName) -> RepoRecord {
        fresh_repo_record(self.base_path(), repo.as_str())
    }
}

/// The record of a local repository the first change creates (version 0:
/// the change that creates it makes it version 1), in the cache at
/// `base_path`, of the upstream repository `upstream_name`.
pub(super) fn fresh_repo_record(base_path: &str, upstream_name: &str) -> RepoRecord {
    let now = unix_now();
    RepoRecord {
        id: uuid::Uuid::new_v4().to_string(),
        cache: base_path.to_string(),
        upstream_name: upstream_name.to_string(),
        version: 0,
        created_at: now,
        updated_at: now,
        last_change: Change::default(),
    }
}

/// The repository's single version moves on whenever its content changes.
fn log_version(local: &str, changed: Option<&RepoRecord>) {
    if let Some(record) = changed {
        tracing::info!(repository = %local, version = record.version, "repository version");
    }
}
