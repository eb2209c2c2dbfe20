//! Listings: a repository's tags and the referrers of a manifest.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::error::{blocking, CacheError};
use super::images::schema_tag;
use super::manifest_info::describe;
use super::Cache;
use crate::domain::{Digest, Reference, RepoName, Tag};
use crate::store::ManifestRecord;
use crate::upstream::UpstreamError;

impl Cache {
    /// The tags of a repository, sorted: the upstream's list (kept for the
    /// tag TTL) when the upstream answers, else the tags cached.
    pub(crate) async fn tags(&self, repo: &RepoName) -> Result<Vec<String>, CacheError> {
        if let Some(list) = self.fresh_tag_list(repo) {
            return Ok(list);
        }
        let upstream_error = if self.upstream.is_down() {
            None
        } else {
            match self.upstream.tags(repo).await {
                Ok(mut tags) => {
                    tags.sort();
                    tags.dedup();
                    let mut lists = self.tag_lists.lock().unwrap_or_else(|p| p.into_inner());
                    lists.retain(|_, (at, _)| at.elapsed() < self.tag_ttl);
                    lists.insert(repo.clone(), (Instant::now(), tags.clone().into()));
                    return Ok(tags);
                }
                Err(e) => Some(e),
            }
        };
        let local = self.local_name(repo);
        let cached: Vec<String> = self
            .storage
            .meta
            .tags_of(&local)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        match upstream_error {
            Some(UpstreamError::NotFound) | None if cached.is_empty() => {
                Err(CacheError::NameUnknown)
            }
            Some(e) if cached.is_empty() => Err(e.into()),
            _ => Ok(cached),
        }
    }

    /// The referrers the `sha256-<hex>` tag lists (an index of them, as the
    /// OCI spec's tag schema has it; a single manifest whose `subject` is
    /// `digest`, as some tools push, counts as itself). None when the tag is
    /// missing or unreadable: the cached referrers still answer.
    async fn referrers_by_tag(self: &Arc<Self>, repo: &RepoName, digest: &Digest) -> Vec<Value> {
        let Some(tag) = Tag::parse(&schema_tag(digest)) else {
            return Vec::new();
        };
        let hit = match self.manifest(repo, &Reference::Tag(tag), None).await {
            Ok(hit) => hit,
            Err(e) => {
                tracing::debug!(error = %e, %digest, "no referrers tag");
                return Vec::new();
            }
        };
        if hit.media_type.is_index() {
            return match serde_json::from_slice::<Value>(&hit.bytes) {
                Ok(Value::Object(mut index)) => match index.remove("manifests") {
                    Some(Value::Array(list)) => list,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
        }
        let record = describe(&hit.media_type, &hit.bytes, 0);
        if record.subject.as_ref() != Some(digest) {
            return Vec::new();
        }
        vec![descriptor(&hit.digest, &record)]
    }

    fn fresh_tag_list(&self, repo: &RepoName) -> Option<Vec<String>> {
        let lists = self.tag_lists.lock().unwrap_or_else(|p| p.into_inner());
        let (at, list) = lists.get(repo)?;
        (at.elapsed() < self.tag_ttl).then(|| list.to_vec())
    }

    /// Descriptors of the manifests whose `subject` is `digest`: those the
    /// upstream lists (through the referrers API; where it has none, as
    /// Debian's docker-registry 2.8, or cannot be asked, the index under the
    /// `sha256-<hex>` tag, cached like any tag) and those cached.
    pub(crate) async fn referrers(
        self: &Arc<Self>,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<Value>, CacheError> {
        let mut descriptors: Vec<Value> = Vec::new();
        let api = if self.upstream.is_down() {
            None
        } else {
            match self.upstream.referrers(repo, digest).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = %e, "upstream referrers unavailable; using the cache");
                    None
                }
            }
        };
        match api {
            Some(bytes) => {
                if let Ok(Value::Object(index)) = serde_json::from_slice::<Value>(&bytes) {
                    if let Some(Value::Array(list)) = index.get("manifests") {
                        descriptors.extend(list.iter().cloned());
                    }
                }
            }
            None => descriptors.extend(self.referrers_by_tag(repo, digest).await),
        }
        let meta = self.storage.meta.clone();
        let subject = digest.clone();
        // Only the cached referrers this repository may see.
        let local = self.local_name(repo);
        let cached = blocking(move || {
            let meta = meta.blocking();
            let mut found = Vec::new();
            for item in meta.manifests() {
                let (d, record) = item?;
                if record.subject.as_ref() == Some(&subject) && meta.references(&local, &d)? {
                    found.push((d, record));
                }
            }
            Ok(found)
        })
        .await?;
        for (d, record) in cached {
            let text = d.to_string();
            if descriptors
                .iter()
                .any(|v| v.get("digest").and_then(Value::as_str) == Some(&text))
            {
                continue;
            }
            descriptors.push(descriptor(&d, &record));
        }
        Ok(descriptors)
    }
}

/// A referrer's descriptor as the referrers API lists it.
fn descriptor(digest: &Digest, record: &ManifestRecord) -> Value {
    let mut descriptor = json!({
        "mediaType": record.media_type.as_str(),
        "digest": digest.to_string(),
        "size": record.size,
    });
    if let Some(artifact_type) = &record.artifact_type {
        descriptor["artifactType"] = Value::String(artifact_type.clone());
    }
    descriptor
}
