//! Keeping the store in bounds and honest: deleting a repository with what
//! nothing else uses, garbage collection of orphans and leftovers, and the
//! scrub that re-hashes everything stored.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::error::{blocking, CacheError};
use super::manifests::{looks_like_manifest, MAX_MANIFEST_BYTES};
use super::Storage;
use crate::domain::Digest;
use crate::store::{
    unix_now, BlobBackend, BlobRecord, BlockingMeta, Change, RepoRecord, StoreError,
};

/// A temp file not written to for this long is a crash's leftover, not a
/// download under way: a running ferry's collection removes only those.
pub(crate) const GC_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GcReport {
    pub removed: u64,
    pub bytes: u64,
    pub temp_files: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct VerifyReport {
    pub checked: u64,
    pub bytes: u64,
    /// Digests whose bytes did not match, now quarantined.
    pub damaged: Vec<Digest>,
}

/// Everything some repository still references: its manifests, their
/// children, and the blobs of both.
pub(super) fn live_set(meta: &BlockingMeta) -> Result<BTreeSet<Digest>, StoreError> {
    closure(
        meta,
        meta.all_members()?.into_iter().map(|(_, d)| d).collect(),
    )
}

/// The manifests `roots`, their children, and the blobs of all of them.
pub(super) fn closure(
    meta: &BlockingMeta,
    mut pending: Vec<Digest>,
) -> Result<BTreeSet<Digest>, StoreError> {
    let mut live = BTreeSet::new();
    while let Some(digest) = pending.pop() {
        if !live.insert(digest.clone()) {
            continue;
        }
        if let Some(record) = meta.manifest(&digest)? {
            live.extend(record.blobs);
            pending.extend(record.children);
        }
    }
    Ok(live)
}

/// Removes one stored object with its records; returns its size.
pub(super) fn remove_content(
    blobs: &dyn BlobBackend,
    meta: &BlockingMeta,
    digest: &Digest,
) -> Result<u64, StoreError> {
    let size = blobs.size_of(digest)?.unwrap_or(0);
    blobs.remove(digest)?;
    meta.forget_content(digest)?;
    Ok(size)
}

/// Removes one tag from a repository (and the manifest from its members
/// when no other tag of it points there) and bumps the repository's
/// version, in one change of the metadata; then, when `free`, deletes what
/// nothing kept references any more. Returns the bytes freed and the
/// digests removed.
pub(super) fn untag(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    repo: &str,
    tag: &str,
    digest: &Digest,
    free: bool,
) -> Result<(u64, Vec<Digest>), StoreError> {
    meta.untag(repo, tag, digest, &orphan_repo_record(repo))?;
    if !free {
        return Ok((0, Vec::new()));
    }
    free_unreferenced(meta, blobs, &closure(meta, vec![digest.clone()])?)
}

/// Evicts one image from a repository: its tag, its manifest (unless
/// another tag points there) and the children of an index that no other
/// tag of the repository holds (pulled by digest, they are members too,
/// and would keep every layer), then what nothing references any more.
/// Returns the bytes freed and the digests removed.
pub(super) fn evict_image(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    repo: &str,
    tag: &str,
    digest: &Digest,
) -> Result<(u64, Vec<Digest>), StoreError> {
    let image = closure(meta, vec![digest.clone()])?;
    untag(meta, blobs, repo, tag, digest, false)?;
    let tagged = meta.tags_of(repo)?.into_iter().map(|(_, r)| r.digest);
    let kept = closure(meta, tagged.collect())?;
    for child in image.iter().filter(|d| *d != digest && !kept.contains(d)) {
        if meta.is_member(repo, child)? {
            meta.drop_member(repo, child, &orphan_repo_record(repo))?;
        }
    }
    free_unreferenced(meta, blobs, &image)
}

/// Deletes those of `candidates` nothing references any more.
///
/// The metadata changes that unreferenced them (an untag, an eviction) are
/// made durable before any file goes, and the forgotten records after: a
/// crash in between then leaves at worst files nothing names, which GC
/// removes, never a tag or record naming a file that is gone.
fn free_unreferenced(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    candidates: &BTreeSet<Digest>,
) -> Result<(u64, Vec<Digest>), StoreError> {
    let live = live_set(meta)?;
    let doomed: Vec<&Digest> = candidates.difference(&live).collect();
    if doomed.is_empty() {
        return Ok((0, Vec::new()));
    }
    meta.flush()?;
    let (mut bytes, mut removed) = (0, Vec::new());
    for candidate in doomed {
        bytes += remove_content(blobs, meta, candidate)?;
        removed.push(candidate.clone());
    }
    meta.flush()?;
    Ok((bytes, removed))
}

/// A tag exists only inside a recorded repository; should the record be
/// missing, a fresh one (version 0, moved on by the change) keeps the
/// store consistent.
fn orphan_repo_record(repo: &str) -> RepoRecord {
    RepoRecord {
        id: uuid::Uuid::new_v4().to_string(),
        cache: repo.split('/').next().unwrap_or_default().to_string(),
        upstream_name: repo
            .split_once('/')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default(),
        version: 0,
        created_at: unix_now(),
        updated_at: unix_now(),
        last_change: Change::default(),
    }
}

/// Records the blobs found in the tree that the metadata does not know (a
/// new database next to an existing blob tree: after a metadata rebuild),
/// so the quota and the API count them. Manifests are left out: their
/// records heal from their files when they are next requested. Returns how
/// many were recorded (blocking; walks the tree).
pub(super) fn register_stored_blobs(
    blobs: &dyn BlobBackend,
    meta: &BlockingMeta,
) -> Result<u64, StoreError> {
    let mut registered = 0;
    for stored in blobs.stored()? {
        if meta.blob(&stored.digest)?.is_some() || meta.manifest(&stored.digest)?.is_some() {
            continue;
        }
        if stored.size <= MAX_MANIFEST_BYTES
            && blobs
                .read_blob(&stored.digest)?
                .is_some_and(|bytes| looks_like_manifest(&bytes))
        {
            continue;
        }
        let stored_at = stored
            .modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        meta.put_blob(
            &stored.digest,
            &BlobRecord {
                size: stored.size,
                stored_at,
            },
        )?;
        registered += 1;
    }
    Ok(registered)
}

impl Storage {
    /// Deletes one tag of a local repository and frees what nothing else
    /// references (unless an image being downloaded now needs it: the
    /// periodic GC takes that later). `None` when there is no such tag.
    pub(crate) async fn delete_tag(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Option<u64>, CacheError> {
        let pulling: BTreeSet<Digest> = self.downloads.digests().into_iter().collect();
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (repo, tag) = (repo.to_string(), tag.to_string());
        let outcome = blocking(move || {
            let meta = meta.blocking();
            let Some(record) = meta.tag(&repo, &tag)? else {
                return Ok(None);
            };
            let cache = meta.repo(&repo)?.map(|r| r.cache);
            let free = closure(meta, vec![record.digest.clone()])?.is_disjoint(&pulling);
            let (bytes, removed) = untag(meta, &*blobs, &repo, &tag, &record.digest, free)?;
            meta.flush()?;
            tracing::info!(repository = %repo, %tag, bytes, "tag deleted");
            Ok(Some((bytes, removed, cache)))
        })
        .await?;
        let Some((bytes, removed, cache)) = outcome else {
            return Ok(None);
        };
        for digest in &removed {
            self.manifests.forget(digest);
        }
        self.quota.sub(bytes);
        self.settle_usage(cache, removed).await?;
        Ok(Some(bytes))
    }

    /// Deletes a local repository and frees the manifests and blobs no
    /// other repository references. Returns the bytes freed.
    pub(crate) async fn delete_repository(&self, name: &str) -> Result<u64, CacheError> {
        let (meta, blobs, name) = (self.meta.clone(), self.blobs.clone(), name.to_string());
        let (bytes, freed, cache) = blocking(move || {
            let meta = meta.blocking();
            // What the repository held, less what others still use.
            let held = closure(meta, meta.members(&name)?)?;
            let cache = meta.repo(&name)?.map(|r| r.cache);
            meta.delete_repo(&name)?;
            let live = live_set(meta)?;
            let mut freed = Vec::new();
            let mut bytes = 0;
            for digest in held.difference(&live) {
                bytes += remove_content(&*blobs, meta, digest)?;
                freed.push(digest.clone());
            }
            meta.flush()?;
            tracing::info!(repository = %name, bytes, objects = freed.len(), "repository deleted");
            Ok((bytes, freed, cache))
        })
        .await?;
        for digest in &freed {
            self.manifests.forget(digest);
        }
        self.quota.sub(bytes);
        self.settle_usage(cache, freed).await?;
        Ok(bytes)
    }

    /// Removes stored objects no repository references (stored longer
    /// than `grace` ago) and temp files left by a crash (not written to for
    /// `temp_grace`). In a cluster, no member's repository (`shared_gc.rs`).
    pub(crate) async fn collect_garbage(
        &self,
        grace: Duration,
        temp_grace: Duration,
    ) -> Result<GcReport, CacheError> {
        if let (Some(cluster), Some(shared)) = (&self.cluster, &self.shared_state) {
            return self
                .collect_shared_garbage(cluster, shared, grace, temp_grace)
                .await;
        }
        let _no_import_meanwhile = self.collecting.write().await;
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (report, freed) = blocking(move || {
            let meta = meta.blocking();
            let live = live_set(meta)?;
            let mut report = GcReport {
                temp_files: blobs.remove_stale_temp_files(temp_grace)? as u64,
                ..GcReport::default()
            };
            let mut freed = Vec::new();
            let now = SystemTime::now();
            for stored in blobs.stored()? {
                let age = now.duration_since(stored.modified).unwrap_or_default();
                if live.contains(&stored.digest) || age < grace {
                    continue;
                }
                report.bytes += remove_content(&*blobs, meta, &stored.digest)?;
                report.removed += 1;
                freed.push(stored.digest);
            }
            Ok((report, freed))
        })
        .await?;
        for digest in &freed {
            self.manifests.forget(digest);
        }
        self.quota.sub(report.bytes);
        self.settle_usage(None, freed).await?;
        crate::metrics::METRICS.collected();
        if report != GcReport::default() {
            tracing::info!(
                removed = report.removed,
                bytes = report.bytes,
                temp_files = report.temp_files,
                "garbage collected"
            );
        }
        Ok(report)
    }

    /// Re-hashes every stored object; a damaged one is quarantined and
    /// dropped from the metadata, so the next pull fetches it again.
    pub(crate) async fn verify(&self) -> Result<VerifyReport, CacheError> {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (report, freed) = blocking(move || {
            let meta = meta.blocking();
            let mut report = VerifyReport::default();
            for stored in blobs.stored()? {
                match blobs.verify(&stored.digest)? {
                    Some(true) => {}
                    Some(false) => {
                        let place = blobs.quarantine(&stored.digest)?;
                        meta.forget_content(&stored.digest)?;
                        tracing::error!(digest = %stored.digest, quarantined = %place,
                            "stored content does not match its digest");
                        report.damaged.push(stored.digest.clone());
                    }
                    None => continue,
                }
                report.checked += 1;
                report.bytes += stored.size;
            }
            let freed = report.damaged.clone();
            Ok((report, freed))
        })
        .await?;
        for digest in &freed {
            self.manifests.forget(digest);
        }
        self.settle_usage(None, freed).await?;
        Ok(report)
    }
}
