//! Listings: a repository's tags and the referrers of a manifest.

use std::time::Instant;

use serde_json::{json, Value};

use super::error::{blocking, CacheError};
use super::Cache;
use crate::domain::{Digest, RepoName};
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

    fn fresh_tag_list(&self, repo: &RepoName) -> Option<Vec<String>> {
        let lists = self.tag_lists.lock().unwrap_or_else(|p| p.into_inner());
        let (at, list) = lists.get(repo)?;
        (at.elapsed() < self.tag_ttl).then(|| list.to_vec())
    }

    /// Descriptors of the manifests whose `subject` is `digest`: those the
    /// upstream lists (when it serves the referrers API) and those cached.
    pub(crate) async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<Value>, CacheError> {
        let mut descriptors: Vec<Value> = Vec::new();
        if !self.upstream.is_down() {
            match self.upstream.referrers(repo, digest).await {
                Ok(Some(bytes)) => {
                    if let Ok(Value::Object(index)) = serde_json::from_slice::<Value>(&bytes) {
                        if let Some(Value::Array(list)) = index.get("manifests") {
                            descriptors.extend(list.iter().cloned());
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "upstream referrers unavailable; using the cache")
                }
            }
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
            let mut descriptor = json!({
                "mediaType": record.media_type.as_str(),
                "digest": text,
                "size": record.size,
            });
            if let Some(artifact_type) = record.artifact_type {
                descriptor["artifactType"] = Value::String(artifact_type);
            }
            descriptors.push(descriptor);
        }
        Ok(descriptors)
    }
}
