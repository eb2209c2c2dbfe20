//! The size quota: ferry tracks the bytes it stores, and before a download
//! that would exceed `max_size` it evicts the least recently pulled images
//! (a tag, then whatever nothing kept references). Pull recency is kept in
//! memory and written to the tag records in batches, not on every pull.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::error::{blocking, CacheError};
use super::maintenance::{closure, untag};
use super::Storage;
use crate::domain::Digest;
use crate::metrics::METRICS;
use crate::store::{unix_millis, BlobBackend, BlockingMeta, StoreError};

/// Bytes stored, against an optional ceiling.
#[derive(Default)]
pub(super) struct Quota {
    pub max: Option<u64>,
    used: AtomicU64,
    /// repository → tag → last pull (ms), not yet written to the store.
    /// Nested so that a repeated pull updates in place, allocating nothing.
    recent: Mutex<HashMap<String, HashMap<String, u64>>>,
}

impl Quota {
    pub(super) fn new(max: Option<u64>, used: u64) -> Quota {
        Quota {
            max,
            used: AtomicU64::new(used),
            recent: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn sub(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    fn take_recent(&self) -> HashMap<String, HashMap<String, u64>> {
        std::mem::take(&mut *self.recent.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The bytes the store holds now (blocking; at start-up).
pub(super) fn measure(meta: &BlockingMeta) -> Result<u64, StoreError> {
    let blobs: u64 = meta.blob_records()?.iter().map(|(_, r)| r.size).sum();
    let mut manifests = 0;
    for item in meta.manifests() {
        manifests += item?.1.size;
    }
    Ok(blobs + manifests)
}

impl Storage {
    /// Records a pull of a tag, in memory only (eviction order, and the
    /// "last pulled" the API shows).
    pub(crate) fn note_pull(&self, repo: &str, tag: &str) {
        let now = unix_millis();
        let mut recent = self.quota.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.get_mut(repo) {
            Some(tags) => match tags.get_mut(tag) {
                Some(at) => *at = now,
                None => {
                    tags.insert(tag.to_string(), now);
                }
            },
            None => {
                recent.insert(repo.to_string(), HashMap::from([(tag.to_string(), now)]));
            }
        }
    }

    /// Writes the pulls noted since the last flush into the tag records.
    pub(crate) async fn flush_recency(&self) -> Result<(), CacheError> {
        let recent = self.quota.take_recent();
        if recent.is_empty() {
            return Ok(());
        }
        let meta = self.meta.clone();
        blocking(move || {
            for (repo, tags) in recent {
                for (tag, at) in tags {
                    meta.blocking().note_pulled(&repo, &tag, at)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Whether `size` more bytes may be cached, evicting to make room. A
    /// blob larger than the whole quota is never cached (false).
    pub(crate) async fn make_room(&self, size: u64) -> Result<bool, CacheError> {
        let Some(max) = self.quota.max else {
            return Ok(true);
        };
        if size > max {
            return Ok(false);
        }
        if self.quota.used() + size <= max {
            return Ok(true);
        }
        self.flush_recency().await?;
        let _one_at_a_time = self.evicting.lock().await;
        let need = (self.quota.used() + size).saturating_sub(max);
        if need == 0 {
            return Ok(true);
        }
        // What is downloading now belongs to images being pulled: those
        // are never evicted.
        let pulling: BTreeSet<Digest> = self.downloads.digests().into_iter().collect();
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (freed, digests) =
            blocking(move || evict(meta.blocking(), &*blobs, need, &pulling)).await?;
        self.quota.sub(freed);
        for digest in &digests {
            self.manifests.forget(digest);
        }
        Ok(self.quota.used() + size <= max)
    }
}

/// Evicts tags, least recently pulled first, until `need` bytes are free.
fn evict(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    need: u64,
    pulling: &BTreeSet<Digest>,
) -> Result<(u64, Vec<Digest>), StoreError> {
    let mut tags = Vec::new();
    for (repo, _) in meta.repos()? {
        for (tag, record) in meta.tags_of(&repo)? {
            let last_use = record
                .last_pulled
                .max(record.confirmed_at.saturating_mul(1000));
            tags.push((last_use, repo.clone(), tag, record.digest));
        }
    }
    tags.sort();
    let (mut freed, mut removed) = (0, Vec::new());
    for (_, repo, tag, digest) in tags {
        if freed >= need {
            break;
        }
        if !closure(meta, vec![digest.clone()])?.is_disjoint(pulling) {
            continue;
        }
        let (bytes, digests) = untag(meta, blobs, &repo, &tag, &digest, true)?;
        removed.extend(digests);
        freed += bytes;
        METRICS.evicted();
        tracing::info!(repository = %repo, %tag, %digest, bytes, "evicted to stay within max_size");
    }
    Ok((freed, removed))
}
