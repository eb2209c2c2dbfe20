//! Pins (issue 15): adding one only when what is pinned still fits within
//! the quotas, and the bytes pinned. Eviction skips pinned tags
//! (`quota::evict`); GC keeps their content because their tags reference it.

use std::collections::HashMap;

use super::error::{blocking, CacheError};
use super::quota::pinned_bytes;
use super::Storage;
use crate::store::{Pin, Pins};

/// Bytes pinned: per cache and in all (each object once).
#[derive(Debug, Clone, Default)]
pub(crate) struct PinnedBytes {
    pub per_cache: HashMap<String, u64>,
    pub total: u64,
}

/// What became of a pin asked for.
#[derive(Debug)]
pub(crate) enum PinOutcome {
    /// Stored; what is pinned now.
    Pinned(PinnedBytes),
    /// Refused, nothing changed: why, naming the quota and the bytes.
    DoesNotFit(String),
}

impl Storage {
    pub(crate) async fn pins(&self) -> Result<Pins, CacheError> {
        let meta = self.meta.clone();
        blocking(move || meta.blocking().pins()).await
    }

    pub(crate) async fn pinned_bytes(&self) -> Result<PinnedBytes, CacheError> {
        let version = self.meta.content_version();
        if let Some(known) = self.summaries.pinned.at(version) {
            return Ok(known);
        }
        let meta = self.meta.clone();
        let walked = blocking(move || {
            let meta = meta.blocking();
            let (per_cache, total) = pinned_bytes(meta, &meta.pins()?)?;
            Ok(PinnedBytes { per_cache, total })
        })
        .await?;
        self.summaries.pinned.keep(version, &walked);
        Ok(walked)
    }

    /// Pins `pin` (of `cache`) if all that would then be pinned fits
    /// within the cache's `max_size` and the global one. Held under the
    /// eviction lock, so no eviction removes the content while it is
    /// weighed, and none runs between the check and the write.
    pub(crate) async fn pin(&self, pin: Pin, cache: &str) -> Result<PinOutcome, CacheError> {
        self.flush_recency().await?;
        let _no_eviction_meanwhile = self.evicting.lock().await;
        let (meta, cache, cache_max, global_max) = (
            self.meta.clone(),
            cache.to_string(),
            self.quota.usage.max(cache),
            self.quota.max,
        );
        blocking(move || {
            let meta = meta.blocking();
            let mut pins = meta.pins()?;
            pins.insert(pin.clone());
            let (per_cache, total) = pinned_bytes(meta, &pins)?;
            let in_cache = per_cache.get(&cache).copied().unwrap_or(0);
            if let Some(max) = cache_max.filter(|max| in_cache > *max) {
                return Ok(PinOutcome::DoesNotFit(format!(
                    "cannot pin: the cache {cache} would hold {in_cache} pinned bytes, over its max_size of {max} bytes; unpin something in it or raise its max_size"
                )));
            }
            if let Some(max) = global_max.filter(|max| total > *max) {
                return Ok(PinOutcome::DoesNotFit(format!(
                    "cannot pin: ferry would hold {total} pinned bytes, over the global max_size of {max} bytes; unpin something or raise max_size"
                )));
            }
            meta.put_pin(&pin)?;
            meta.flush()?;
            Ok(PinOutcome::Pinned(PinnedBytes { per_cache, total }))
        })
        .await
    }

    /// Removes a pin; false if there was none.
    pub(crate) async fn unpin(&self, pin: Pin) -> Result<bool, CacheError> {
        let meta = self.meta.clone();
        blocking(move || {
            let meta = meta.blocking();
            let removed = meta.delete_pin(&pin)?;
            meta.flush()?;
            Ok(removed)
        })
        .await
    }
}
