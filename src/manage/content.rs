//! What the local repositories hold, as the content endpoints list it:
//! tags, manifests (with what only their stored bytes say) and blobs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{ManageError, Manager};
use crate::cache::{blocking, CacheError, RepoContent, TagDetail};
use crate::domain::{Digest, RepoName, Tag};
use crate::store::{BlobBackend, BlobRecord, ManifestRecord, RepoRecord, TagRecord};

/// Configs larger than this are not parsed for the platform they name.
const MAX_CONFIG_READ: usize = 4 * 1024 * 1024;

/// What a stored manifest's bytes (and its config's) say about it.
pub(crate) struct ManifestDetails {
    pub annotations: BTreeMap<String, String>,
    /// Sum of the layer sizes the manifest lists.
    pub compressed_image_size: Option<u64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
}

impl Manager {
    /// Writes the pulls noted in memory into the tag records, so that "last
    /// pulled" is current.
    pub(crate) async fn flush_recency(&self) -> Result<(), ManageError> {
        Ok(self.caches.storage().flush_recency().await?)
    }

    /// One tag of a local repository, as stored (pulls noted first).
    pub(crate) async fn tag(&self, repo: &str, tag: &str) -> Result<TagRecord, ManageError> {
        self.flush_recency().await?;
        self.meta.tag(repo, tag).await?.ok_or(ManageError::NotFound)
    }

    /// Size and platforms of what each of `digests` (tagged manifests) is.
    pub(crate) async fn tag_details(
        &self,
        digests: Vec<Digest>,
    ) -> Result<Vec<TagDetail>, ManageError> {
        Ok(self.caches.storage().tag_details(digests).await?)
    }

    /// Tags, manifests and blobs of one local repository.
    pub(crate) async fn repository_content(&self, name: &str) -> Result<RepoContent, ManageError> {
        Ok(self.caches.storage().repo_content(name).await?)
    }

    /// What the stored bytes say of each manifest (nothing, where they
    /// cannot be read).
    pub(crate) async fn manifest_details(
        &self,
        manifests: Vec<(Digest, ManifestRecord)>,
    ) -> Result<Vec<(Digest, ManifestRecord, ManifestDetails)>, ManageError> {
        let storage = self.caches.storage().clone();
        Ok(blocking(move || {
            Ok(manifests
                .into_iter()
                .map(|(d, r)| {
                    let details = manifest_details(&**storage.blobs(), &d, &r);
                    (d, r, details)
                })
                .collect())
        })
        .await?)
    }

    /// The stored record of each blob (`None`: not pulled yet).
    pub(crate) async fn blobs(
        &self,
        digests: BTreeSet<Digest>,
    ) -> Result<Vec<(Digest, Option<BlobRecord>)>, ManageError> {
        let meta = self.meta.clone();
        Ok(blocking(move || {
            digests
                .into_iter()
                .map(|d| Ok((d.clone(), meta.blocking().blob(&d)?)))
                .collect()
        })
        .await?)
    }

    /// Asks the upstream where a cached tag of a local repository points
    /// now (the dashboard's freshness check); returns the tag as stored.
    pub(crate) async fn refresh_tag(
        &self,
        repo: &RepoRecord,
        tag: &str,
    ) -> Result<TagRecord, ManageError> {
        let tag = Tag::parse(tag).ok_or(ManageError::NotFound)?;
        let cache = self.caches.serving(&repo.cache).ok_or_else(|| {
            ManageError::Conflict(format!(
                "no distribution serves {} any more: the tag cannot be checked upstream",
                repo.cache
            ))
        })?;
        let name = RepoName::parse(&repo.upstream_name)
            .map_err(|e| CacheError::Internal(format!("stored repository name: {e}")))?;
        Ok(cache.refresh_tag(&name, &tag).await?)
    }
}

/// Details only the stored bytes know: platform, layer sizes, annotations.
fn manifest_details(
    blobs: &dyn BlobBackend,
    digest: &Digest,
    record: &ManifestRecord,
) -> ManifestDetails {
    let json: Value = blobs
        .read_blob(digest)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let annotations = json
        .get("annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let layer_size = json.get("layers").and_then(Value::as_array).map(|layers| {
        layers
            .iter()
            .filter_map(|l| l.get("size").and_then(Value::as_u64))
            .sum()
    });
    let config: Value = record
        .blobs
        .first()
        .filter(|_| !record.media_type.is_index())
        .and_then(|c| blobs.read_blob(c).ok().flatten())
        .filter(|b| b.len() < MAX_CONFIG_READ)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    ManifestDetails {
        annotations,
        compressed_image_size: layer_size,
        architecture: text(&config, "architecture"),
        os: text(&config, "os"),
    }
}
