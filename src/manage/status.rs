//! What the status endpoint reports: the stored totals and each upstream's
//! reachability, with what its cache holds.

use super::{ManageError, Manager};
use crate::cache::CacheTotals;
use crate::upstream::Reachability;

/// Everything stored, whichever cache it came through.
pub struct StoredTotals {
    /// Bytes of cached blobs and manifests, and their number.
    pub bytes: u64,
    pub objects: u64,
    pub downloads_in_flight: usize,
}

/// One served cache's upstream and what the cache holds.
pub struct UpstreamState {
    pub base_path: String,
    pub url: String,
    /// `unknown`, `reachable`, `down` or `rate_limited`.
    pub state: &'static str,
    /// Whether it answered last time.
    pub reachable: bool,
    /// While down: since when and why.
    pub cause: Option<String>,
    pub private: bool,
    pub totals: CacheTotals,
}

impl Manager {
    pub async fn stored_totals(&self) -> Result<StoredTotals, ManageError> {
        let storage = self.caches.storage();
        let (bytes, objects) = storage.stored_totals().await?;
        Ok(StoredTotals {
            bytes,
            objects,
            downloads_in_flight: storage.downloads_in_flight(),
        })
    }

    /// The upstreams of the caches served now (private ones only when
    /// `include_private`).
    pub async fn upstreams(
        &self,
        include_private: bool,
    ) -> Result<Vec<UpstreamState>, ManageError> {
        let held = self.caches.storage().inventory().await?.caches;
        Ok(self
            .caches
            .list()
            .iter()
            .filter(|c| include_private || !c.is_private())
            .map(|c| {
                let (state, down) = c.upstream_reachability();
                UpstreamState {
                    base_path: c.base_path().to_string(),
                    url: c.config().upstream.to_string(),
                    state: state.as_str(),
                    reachable: matches!(state, Reachability::Reachable | Reachability::RateLimited),
                    cause: down.map(|e| e.cause()),
                    private: c.is_private(),
                    totals: held.get(c.base_path()).cloned().unwrap_or_default(),
                }
            })
            .collect())
    }
}
