//! Keeping the store in bounds and honest: deleting a repository with what
//! nothing else uses, garbage collection of orphans and leftovers, and the
//! scrub that re-hashes everything stored.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::error::{blocking, CacheError};
use super::Storage;
use crate::domain::Digest;
use crate::store::{BlobStore, MetaStore, StoreError};

/// Content younger than this is never collected: a pull may have stored a
/// blob whose manifest it has not recorded yet.
pub const GC_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub removed: u64,
    pub bytes: u64,
    pub temp_files: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    pub bytes: u64,
    /// Digests whose bytes did not match, now quarantined.
    pub damaged: Vec<Digest>,
}

/// Everything some repository still references: its manifests, their
/// children, and the blobs of both.
pub(super) fn live_set(meta: &MetaStore) -> Result<BTreeSet<Digest>, StoreError> {
    closure(
        meta,
        meta.all_members()?.into_iter().map(|(_, d)| d).collect(),
    )
}

/// The manifests `roots`, their children, and the blobs of all of them.
pub(super) fn closure(
    meta: &MetaStore,
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
    blobs: &BlobStore,
    meta: &MetaStore,
    digest: &Digest,
) -> Result<u64, StoreError> {
    let size = blobs.open_blob(digest)?.map_or(0, |(_, size)| size);
    blobs.remove(digest)?;
    meta.remove_manifest(digest)?;
    meta.remove_blob(digest)?;
    Ok(size)
}

impl Storage {
    /// Deletes a local repository and frees the manifests and blobs no
    /// other repository references. Returns the bytes freed.
    pub async fn delete_repository(&self, name: &str) -> Result<u64, CacheError> {
        let (meta, blobs, name) = (self.meta.clone(), self.blobs.clone(), name.to_string());
        let (bytes, freed) = blocking(move || {
            // What the repository held, less what others still use.
            let held = closure(&meta, meta.members(&name)?)?;
            meta.delete_repo(&name)?;
            let live = live_set(&meta)?;
            let mut freed = Vec::new();
            let mut bytes = 0;
            for digest in held.difference(&live) {
                bytes += remove_content(&blobs, &meta, digest)?;
                freed.push(digest.clone());
            }
            meta.flush()?;
            tracing::info!(repository = %name, bytes, objects = freed.len(), "repository deleted");
            Ok((bytes, freed))
        })
        .await?;
        for digest in &freed {
            self.manifests.forget(digest);
        }
        self.quota.sub(bytes);
        Ok(bytes)
    }

    /// Removes stored objects no repository references (older than
    /// `grace`) and temp files left by a crash.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport, CacheError> {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (report, freed) = blocking(move || {
            let live = live_set(&meta)?;
            let mut report = GcReport {
                temp_files: blobs.remove_stale_temp_files(grace)? as u64,
                ..GcReport::default()
            };
            let mut freed = Vec::new();
            let now = SystemTime::now();
            for stored in blobs.stored()? {
                let age = now.duration_since(stored.modified).unwrap_or_default();
                if live.contains(&stored.digest) || age < grace {
                    continue;
                }
                report.bytes += remove_content(&blobs, &meta, &stored.digest)?;
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
    pub async fn verify(&self) -> Result<VerifyReport, CacheError> {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (report, freed) = blocking(move || {
            let mut report = VerifyReport::default();
            for stored in blobs.stored()? {
                match blobs.verify(&stored.digest)? {
                    Some(true) => {}
                    Some(false) => {
                        let place = blobs.quarantine(&stored.digest)?;
                        meta.remove_manifest(&stored.digest)?;
                        meta.remove_blob(&stored.digest)?;
                        tracing::error!(digest = %stored.digest, quarantined = %place.display(),
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
        Ok(report)
    }
}
