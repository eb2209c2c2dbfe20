//! A local repository's content (tags → manifests → blobs), and deleting a
//! repository with whatever no other repository still uses.

use std::collections::BTreeSet;

use super::error::{blocking, CacheError};
use super::Storage;
use crate::domain::Digest;
use crate::store::{ManifestRecord, MetaStore, StoreError, TagRecord};

/// What one repository holds now.
pub struct RepoContent {
    pub tags: Vec<(String, TagRecord)>,
    pub manifests: Vec<(Digest, Option<ManifestRecord>)>,
    /// Config and layer blobs of the manifests.
    pub blobs: BTreeSet<Digest>,
}

fn content_of(meta: &MetaStore, name: &str) -> Result<RepoContent, StoreError> {
    let tags = meta.tags_of(name)?;
    let mut manifests = Vec::new();
    let mut blobs = BTreeSet::new();
    for digest in meta.members(name)? {
        let record = meta.manifest(&digest)?;
        if let Some(r) = &record {
            blobs.extend(r.blobs.iter().cloned());
        }
        manifests.push((digest, record));
    }
    Ok(RepoContent {
        tags,
        manifests,
        blobs,
    })
}

impl Storage {
    pub async fn repo_content(&self, name: &str) -> Result<RepoContent, CacheError> {
        let (meta, name) = (self.meta.clone(), name.to_string());
        blocking(move || content_of(&meta, &name)).await
    }

    /// Deletes a local repository and frees the manifests and blobs no
    /// other repository references. Returns the bytes freed.
    pub async fn delete_repository(&self, name: &str) -> Result<u64, CacheError> {
        let (meta, blobs, name) = (self.meta.clone(), self.blobs.clone(), name.to_string());
        let freed_manifests = std::sync::Mutex::new(Vec::new());
        let freed = blocking(move || {
            let removed = meta.delete_repo(&name)?;
            // Everything still referenced by the remaining repositories.
            let mut kept = BTreeSet::new();
            for (_, digest) in meta.all_members()? {
                if let Some(r) = meta.manifest(&digest)? {
                    kept.extend(r.blobs.into_iter().chain(r.children));
                }
                kept.insert(digest);
            }
            let mut candidates = BTreeSet::new();
            for digest in removed {
                if let Some(r) = meta.manifest(&digest)? {
                    candidates.extend(r.blobs.into_iter().chain(r.children));
                }
                candidates.insert(digest);
            }
            let mut bytes = 0;
            for digest in candidates.difference(&kept) {
                if let Some((_, size)) = blobs.open_blob(digest)? {
                    bytes += size;
                }
                blobs.remove(digest)?;
                meta.remove_manifest(digest)?;
                meta.remove_blob(digest)?;
                freed_manifests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(digest.clone());
            }
            tracing::info!(repository = %name, bytes, "repository deleted");
            Ok((
                bytes,
                freed_manifests
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner()),
            ))
        })
        .await?;
        for digest in &freed.1 {
            self.manifests.forget(digest);
        }
        Ok(freed.0)
    }

    /// Bytes stored in the blob tree's records, and their number.
    pub async fn blob_totals(&self) -> Result<(u64, u64), CacheError> {
        let meta = self.meta.clone();
        blocking(move || {
            let mut totals = (0, 0);
            for record in meta.blob_records()? {
                totals.0 += record.1.size;
                totals.1 += 1;
            }
            Ok(totals)
        })
        .await
    }
}
