//! What the status endpoint reports: the stored totals and each upstream's
//! reachability, with what its cache holds.

use serde::Serialize;

use super::{ManageError, Manager};
use crate::store::Pin;
use crate::upstream::Reachability;

/// Everything stored, whichever cache it came through.
pub(crate) struct StoredTotals {
    /// Bytes of cached blobs and manifests, and their number.
    pub bytes: u64,
    pub objects: u64,
    /// Bytes pins keep (each object once).
    pub pinned_bytes: u64,
    pub downloads_in_flight: usize,
}

/// One served cache's upstream and what the cache holds, as the status
/// endpoint shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UpstreamStatus {
    pub base_path: String,
    pub url: String,
    /// `unknown` (not contacted since ferry started), `reachable`, `down`
    /// (no answer; a background probe rechecks it) or `rate_limited`.
    pub state: &'static str,
    /// Whether it answered last time (state `reachable` or `rate_limited`).
    pub reachable: bool,
    /// While down: since when and why, e.g. "is down since
    /// 2026-12-02T03:09:02Z (could not be resolved (DNS)); ...".
    pub cause: Option<String>,
    pub private: bool,
    /// The upstream's rate limit per window and what is left of it, as its
    /// `RateLimit` headers last said (Docker Hub sends them); null until an
    /// answer carried them.
    pub ratelimit_limit: Option<u64>,
    pub ratelimit_remaining: Option<u64>,
    /// Whether the rate budget is spent: cached tags are then served
    /// without revalidation until the budget is rechecked.
    pub rate_budget_spent: bool,
    /// What the cache holds: repositories, tags, distinct blobs and the
    /// bytes of its manifests and blobs (shared ones counted once).
    pub repositories: u64,
    pub tags: u64,
    pub blobs: u64,
    pub bytes: u64,
    /// The cache's own `max_size` (null: only the global one applies).
    /// Content shared with another cache counts in both caches' `bytes`.
    pub max_size: Option<u64>,
    /// Bytes of this cache that pins keep from eviction (ferry's addition).
    pub pinned_bytes: u64,
    /// Whether the whole cache is pinned.
    pub pinned: bool,
}

impl Manager {
    pub(crate) async fn stored_totals(&self) -> Result<StoredTotals, ManageError> {
        let storage = self.caches.storage();
        let (bytes, objects) = storage.stored_totals().await?;
        Ok(StoredTotals {
            bytes,
            objects,
            pinned_bytes: storage.pinned_bytes().await?.total,
            downloads_in_flight: storage.downloads_in_flight(),
        })
    }

    /// The upstreams of the caches served now (private ones only when
    /// `include_private`).
    pub(crate) async fn upstreams(
        &self,
        include_private: bool,
    ) -> Result<Vec<UpstreamStatus>, ManageError> {
        let held = self.caches.storage().inventory().await?.caches;
        let storage = self.caches.storage();
        let pinned = storage.pinned_bytes().await?;
        let pins = storage.pins().await?;
        Ok(self
            .caches
            .list()
            .iter()
            .filter(|c| include_private || !c.is_private())
            .map(|c| {
                let (state, down) = c.upstream_reachability();
                let totals = held.get(c.base_path()).cloned().unwrap_or_default();
                let budget = c.upstream_rate_budget();
                UpstreamStatus {
                    base_path: c.base_path().to_string(),
                    url: c.config().upstream.to_string(),
                    state: state.as_str(),
                    reachable: matches!(state, Reachability::Reachable | Reachability::RateLimited),
                    cause: down.map(|e| e.cause()),
                    private: c.is_private(),
                    ratelimit_limit: budget.limit,
                    ratelimit_remaining: budget.remaining,
                    rate_budget_spent: budget.spent,
                    repositories: totals.repositories,
                    tags: totals.tags,
                    blobs: totals.blobs,
                    bytes: totals.bytes,
                    max_size: c.config().policy().max_size,
                    pinned_bytes: pinned.per_cache.get(c.base_path()).copied().unwrap_or(0),
                    pinned: pins.contains(&Pin::Cache(c.base_path().to_string())),
                }
            })
            .collect())
    }
}
