//! Adopting tags another member of a cluster holds: its manifest is
//! already in the shared bucket, so this member records the manifest and
//! the tag as a pull would (the blobs need no copy, only their records),
//! and then lists, sizes and serves it without asking anyone. An adopted
//! tag keeps the time the upstream last confirmed it (the TTL runs from
//! there, as on the member that pulled it) and counts as no pull.

use super::error::{blocking, CacheError};
use super::manifest_info::{describe, effective_media_type};
use super::manifests::{fresh_repo_record, looks_like_manifest, MAX_MANIFEST_BYTES};
use super::Storage;
use crate::domain::Digest;
use crate::store::{
    unix_now, BlobBackend, BlobRecord, BlockingMeta, ManifestRecord, StoreError, TagRecord,
};

/// A tag another member holds.
#[derive(Debug, Clone)]
pub(crate) struct Adoptable {
    /// The cache's base path and the repository's local name.
    pub cache: String,
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    pub confirmed_at: u64,
}

/// An index's children are recorded too (pulled by digest), at most this
/// many per tag.
const MAX_CHILDREN: usize = 64;

impl Storage {
    /// Records the tags given that this member lacks and whose manifest is
    /// in the store, verified by its digest; those missing from the store
    /// or not manifests are skipped. Returns the tags recorded.
    pub(crate) async fn adopt_tags(&self, tags: Vec<Adoptable>) -> Result<usize, CacheError> {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (adopted, added) = blocking(move || {
            let meta = meta.blocking();
            let mut adopted = Vec::new();
            let mut added = 0;
            for tag in tags {
                if meta.tag(&tag.repository, &tag.tag)?.is_some() {
                    continue;
                }
                match adopt_one(meta, &*blobs, &tag)? {
                    Some(bytes) => {
                        added += bytes;
                        adopted.push(tag);
                    }
                    None => {
                        tracing::debug!(repository = %tag.repository, tag = %tag.tag, digest = %tag.digest,
                            "not adopted: its manifest is not in the store");
                    }
                }
            }
            meta.flush()?;
            Ok((adopted, added))
        })
        .await?;
        self.quota.add(added);
        for tag in &adopted {
            self.charge(&tag.cache, &tag.digest).await;
        }
        if !adopted.is_empty() {
            tracing::info!(
                tags = adopted.len(),
                "adopted tags other cluster members hold"
            );
        }
        Ok(adopted.len())
    }
}

/// Records one tag; the bytes newly recorded, `None` when its manifest is
/// not in the store.
fn adopt_one(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    tag: &Adoptable,
) -> Result<Option<u64>, StoreError> {
    let mut added = 0;
    let Some((record, new)) = manifest_record(meta, blobs, &tag.digest)? else {
        return Ok(None);
    };
    added += new;
    let upstream_name = tag
        .repository
        .strip_prefix(&tag.cache)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(&tag.repository);
    let fresh = fresh_repo_record(&tag.cache, upstream_name);
    for child in record.children.iter().take(MAX_CHILDREN) {
        if let Some((child_record, new)) = manifest_record(meta, blobs, child)? {
            added += new + blob_records(meta, blobs, &child_record)?;
            meta.add_to_repo(&tag.repository, child, &fresh)?;
        }
    }
    added += blob_records(meta, blobs, &record)?;
    let tag_record = TagRecord {
        digest: tag.digest.clone(),
        media_type: record.media_type.clone(),
        size: record.size,
        // When the upstream confirmed it, not later: never fresher here
        // than on the member that asked the upstream.
        confirmed_at: tag.confirmed_at.min(unix_now()),
        // Not a pull: the least recently pulled go first under a quota.
        last_pulled: 0,
    };
    meta.point_tag(&tag.repository, &tag.tag, &tag_record, &fresh)?;
    Ok(Some(added))
}

/// The manifest's record, recorded from the store when this member has
/// none yet (with the bytes that adds); `None` when the store does not
/// hold it, it is too large, its bytes do not match the digest, or it is
/// not a manifest.
fn manifest_record(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    digest: &Digest,
) -> Result<Option<(ManifestRecord, u64)>, StoreError> {
    if let Some(record) = meta.manifest(digest)? {
        return Ok(Some((record, 0)));
    }
    if blobs
        .size_of(digest)?
        .is_none_or(|s| s > MAX_MANIFEST_BYTES)
    {
        return Ok(None);
    }
    let Some(bytes) = blobs.read_blob(digest)? else {
        return Ok(None);
    };
    if Digest::sha256_of(&bytes) != *digest || !looks_like_manifest(&bytes) {
        tracing::warn!(%digest, "a stored manifest does not match its digest: not adopted");
        return Ok(None);
    }
    let media_type = effective_media_type(None, &bytes);
    let record = describe(&media_type, &bytes, unix_now());
    meta.put_manifest(digest, &record)?;
    let size = record.size;
    Ok(Some((record, size)))
}

/// Records the blobs a manifest names that this member has no record of
/// (their size from the store; absent ones are left: a pull fetches them).
fn blob_records(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    record: &ManifestRecord,
) -> Result<u64, StoreError> {
    let mut added = 0;
    for blob in &record.blobs {
        if meta.blob(blob)?.is_some() || meta.manifest(blob)?.is_some() {
            continue;
        }
        if let Some(size) = blobs.size_of(blob)? {
            meta.put_blob(
                blob,
                &BlobRecord {
                    size,
                    stored_at: unix_now(),
                },
            )?;
            added += size;
        }
    }
    Ok(added)
}
