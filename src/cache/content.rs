//! A local repository's content (tags → manifests → blobs).

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
