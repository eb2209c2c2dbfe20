//! Pins (ferry's addition, issue 15): a tag, a repository or a whole cache
//! kept out of quota eviction. Pinning weighs what would then be pinned
//! against the cache's and the global `max_size` and refuses what does
//! not fit (nothing is evicted to make room for a pin).

use std::collections::HashMap;

use serde::Serialize;

use super::{ManageError, Manager};
use crate::cache::PinOutcome;
use crate::store::{Pin, Pins, RepoRecord};

/// What the API and the CLI answer to a pin or an unpin.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PinState {
    /// `cache`, `repository` or `tag`.
    pub kind: &'static str,
    /// The base path, the repository's local name, or `<repository>:<tag>`.
    pub name: String,
    pub pinned: bool,
    /// Bytes pinned in the pin's cache, and in all caches (each object once).
    pub cache_pinned_bytes: u64,
    pub total_pinned_bytes: u64,
}

/// The pin named by a kind and names (its cache given apart).
pub(crate) enum PinTarget<'a> {
    Cache(&'a str),
    Repository(&'a str, &'a RepoRecord),
    Tag(&'a str, &'a RepoRecord, &'a str),
}

impl PinTarget<'_> {
    fn pin(&self) -> Pin {
        match self {
            PinTarget::Cache(cache) => Pin::Cache(cache.to_string()),
            PinTarget::Repository(name, _) => Pin::Repository(name.to_string()),
            PinTarget::Tag(name, _, tag) => Pin::Tag {
                repository: name.to_string(),
                tag: tag.to_string(),
            },
        }
    }

    fn cache(&self) -> &str {
        match self {
            PinTarget::Cache(cache) => cache,
            PinTarget::Repository(_, r) | PinTarget::Tag(_, r, _) => &r.cache,
        }
    }

    fn describe(&self) -> (&'static str, String) {
        match self {
            PinTarget::Cache(cache) => ("cache", cache.to_string()),
            PinTarget::Repository(name, _) => ("repository", name.to_string()),
            PinTarget::Tag(name, _, tag) => ("tag", format!("{name}:{tag}")),
        }
    }
}

impl Manager {
    /// Pins `target`, or refuses (400 with the reason) when what would be
    /// pinned exceeds a `max_size`. Pinning what is pinned already is a
    /// no-op that answers the same.
    pub(crate) async fn pin(&self, target: PinTarget<'_>) -> Result<PinState, ManageError> {
        let _one_change = self.changes.lock().await;
        let storage = self.caches.storage();
        let pinned = match storage.pin(target.pin(), target.cache()).await? {
            PinOutcome::Pinned(bytes) => bytes,
            PinOutcome::DoesNotFit(reason) => return Err(ManageError::Conflict(reason)),
        };
        let (kind, name) = target.describe();
        tracing::info!(kind, %name, "pinned through the API");
        Ok(PinState {
            kind,
            name,
            pinned: true,
            cache_pinned_bytes: pinned.per_cache.get(target.cache()).copied().unwrap_or(0),
            total_pinned_bytes: pinned.total,
        })
    }

    /// Removes a pin (a no-op when there was none). What it kept becomes
    /// evictable again; nothing is evicted now.
    pub(crate) async fn unpin(&self, target: PinTarget<'_>) -> Result<PinState, ManageError> {
        let _one_change = self.changes.lock().await;
        let storage = self.caches.storage();
        if storage.unpin(target.pin()).await? {
            let (kind, name) = target.describe();
            tracing::info!(kind, %name, "unpinned through the API");
        }
        let pinned = storage.pinned_bytes().await?;
        let (kind, name) = target.describe();
        Ok(PinState {
            kind,
            name,
            pinned: false,
            cache_pinned_bytes: pinned.per_cache.get(target.cache()).copied().unwrap_or(0),
            total_pinned_bytes: pinned.total,
        })
    }

    /// Whether each `(repository, tag)` is pinned (by itself, its
    /// repository or its cache).
    pub(crate) async fn pinned_tags(
        &self,
        tags: &[(&str, &str)],
    ) -> Result<Vec<bool>, ManageError> {
        let pins = self.caches.storage().pins().await?;
        if pins.is_empty() {
            return Ok(vec![false; tags.len()]);
        }
        let caches: HashMap<String, String> = self
            .meta
            .repos()
            .await?
            .into_iter()
            .map(|(name, r)| (name, r.cache))
            .collect();
        Ok(tags
            .iter()
            .map(|(repo, tag)| {
                caches
                    .get(*repo)
                    .is_some_and(|cache| pins.covers(cache, repo, tag))
            })
            .collect())
    }

    /// Every pin, to mark what the API lists.
    pub(crate) async fn pins(&self) -> Result<Pins, ManageError> {
        Ok(self.caches.storage().pins().await?)
    }

    /// Whether the cache of `base_path` is pinned as a whole.
    pub(crate) async fn cache_pinned(&self, base_path: &str) -> Result<bool, ManageError> {
        let pins = self.caches.storage().pins().await?;
        Ok(pins.contains(&Pin::Cache(base_path.to_string())))
    }
}
