//! Bytes per cache, as a running total (never a walk per pull).
//!
//! A cache holds what the manifests of its repositories hold: the
//! manifests, their children and all their blobs (the definition the
//! status endpoint's per-cache `bytes` uses). Content shared by two caches
//! is charged in full to each: a cache's size then depends on its own pulls
//! only (another cache evicting an image never makes it jump), and its
//! quota is met by removing its own references; the bytes leave the disk
//! when nothing references them (the global `max_size` counts them once).
//!
//! Each cache keeps the digests it references with their stored size (0
//! while not stored yet: a manifest's layers are referenced before they are
//! downloaded), so a blob arriving is charged to every cache waiting for
//! it. Removing references is rare (eviction, deletes) and recounts that
//! one cache from the metadata (`quota::recount`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::domain::Digest;

/// A digest as the tally keeps it: 64 bits of its hash (content digests are
/// uniform, so a collision inside one cache is a 2^-64 event, and would
/// only under-count one object), so a large cache costs a few MB at most.
pub(super) type Key = u64;

pub(super) fn key(digest: &Digest) -> Key {
    let hex = digest.hex();
    hex.get(..16)
        .and_then(|prefix| u64::from_str_radix(prefix, 16).ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            BuildHasherDefault::<DefaultHasher>::default().hash_one(hex)
        })
}

/// One cache's tally.
#[derive(Default)]
struct Tally {
    max: Option<u64>,
    bytes: u64,
    /// Referenced digests → bytes charged (0: not stored).
    held: HashMap<Key, u64>,
    /// Moves on with every change, so a recount that raced one can tell.
    generation: u64,
}

impl Tally {
    fn charge(&mut self, key: Key, size: u64) -> bool {
        match self.held.get_mut(&key) {
            Some(charged) if *charged == 0 && size > 0 => {
                *charged = size;
                self.bytes += size;
                self.generation += 1;
                true
            }
            _ => false,
        }
    }

    fn is_over(&self) -> bool {
        self.max.is_some_and(|max| self.bytes > max)
    }
}

/// One cache's size as shown: bytes held and its `max_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheSize {
    pub cache: String,
    pub bytes: u64,
    pub max: Option<u64>,
}

/// Every cache's tally, by base path.
#[derive(Default)]
pub(super) struct CacheUsage {
    caches: Mutex<HashMap<String, Tally>>,
}

impl CacheUsage {
    /// The tallies as measured at start-up: cache → digest → stored size.
    pub(super) fn restored(held: HashMap<String, HashMap<Key, u64>>) -> CacheUsage {
        let caches = held
            .into_iter()
            .map(|(cache, held)| {
                let tally = Tally {
                    bytes: held.values().sum(),
                    held,
                    ..Tally::default()
                };
                (cache, tally)
            })
            .collect();
        CacheUsage {
            caches: Mutex::new(caches),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tally>> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a cache's own `max_size` (when the cache is built).
    pub(super) fn set_max(&self, cache: &str, max: Option<u64>) {
        let mut caches = self.lock();
        match caches.get_mut(cache) {
            Some(tally) => tally.max = max,
            None if max.is_some() => {
                caches.insert(
                    cache.to_string(),
                    Tally {
                        max,
                        ..Tally::default()
                    },
                );
            }
            None => {}
        }
    }

    /// Lists every served cache (0 bytes until its first pull) and drops
    /// the `max_size` of caches no longer served (their content stays
    /// counted until it is deleted).
    pub(super) fn serve(&self, served: &[&str]) {
        let mut caches = self.lock();
        for (cache, tally) in caches.iter_mut() {
            if !served.contains(&cache.as_str()) {
                tally.max = None;
            }
        }
        for cache in served {
            caches.entry(cache.to_string()).or_default();
        }
    }

    /// Records that `cache` now references `keys`; those new to it are
    /// charged by `stored` (at once if they are stored already).
    pub(super) fn reference(&self, cache: &str, keys: impl IntoIterator<Item = Key>) {
        let mut caches = self.lock();
        let tally = caches.entry(cache.to_string()).or_default();
        for key in keys {
            tally.held.entry(key).or_insert(0);
        }
        tally.generation += 1;
    }

    /// Content of `size` bytes is stored: charged to every cache that
    /// references it and was not charged yet. Returns the caches now over
    /// their `max_size`.
    pub(super) fn stored(&self, key: Key, size: u64) -> Vec<String> {
        let mut over = Vec::new();
        for (cache, tally) in self.lock().iter_mut() {
            if tally.charge(key, size) && tally.is_over() {
                over.push(cache.clone());
            }
        }
        over
    }

    /// Content left the store: no cache holds its bytes any more (a cache
    /// that still references it is charged again if it comes back).
    pub(super) fn removed(&self, key: Key) {
        for tally in self.lock().values_mut() {
            if let Some(charged) = tally.held.get_mut(&key) {
                tally.bytes = tally.bytes.saturating_sub(*charged);
                *charged = 0;
                tally.generation += 1;
            }
        }
    }

    pub(super) fn generation(&self, cache: &str) -> u64 {
        self.lock().get(cache).map_or(0, |t| t.generation)
    }

    /// Installs a recount of `cache` begun at `generation`. Refused (false)
    /// when the tally changed meanwhile, unless `force`d.
    pub(super) fn replace(
        &self,
        cache: &str,
        held: HashMap<Key, u64>,
        generation: u64,
        force: bool,
    ) -> bool {
        let mut caches = self.lock();
        let tally = caches.entry(cache.to_string()).or_default();
        if tally.generation != generation && !force {
            return false;
        }
        tally.bytes = held.values().sum();
        tally.held = held;
        tally.generation += 1;
        true
    }

    pub(super) fn bytes(&self, cache: &str) -> u64 {
        self.lock().get(cache).map_or(0, |t| t.bytes)
    }

    pub(super) fn max(&self, cache: &str) -> Option<u64> {
        self.lock().get(cache).and_then(|t| t.max)
    }

    /// The caches with a `max_size` that reference `key` without holding
    /// it yet: those a download of it will be charged to.
    pub(super) fn awaiting(&self, key: Key) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, t)| t.max.is_some() && t.held.get(&key) == Some(&0))
            .map(|(cache, _)| cache.clone())
            .collect()
    }

    /// Every cache's size, sorted by base path.
    pub(super) fn sizes(&self) -> Vec<CacheSize> {
        let mut sizes: Vec<CacheSize> = self
            .lock()
            .iter()
            .map(|(cache, t)| CacheSize {
                cache: cache.clone(),
                bytes: t.bytes,
                max: t.max,
            })
            .collect();
        sizes.sort_by(|a, b| a.cache.cmp(&b.cache));
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Key = 1;
    const B: Key = 2;

    #[test]
    fn a_reference_is_charged_when_its_content_is_stored() {
        let usage = CacheUsage::default();
        usage.reference("c", [A, B]);
        assert_eq!(usage.bytes("c"), 0);
        usage.stored(A, 10);
        assert_eq!(usage.bytes("c"), 10);
        // Stored again (a second commit, a re-charge): counted once.
        usage.stored(A, 10);
        usage.reference("c", [A]);
        assert_eq!(usage.bytes("c"), 10);
        usage.stored(B, 5);
        assert_eq!(usage.bytes("c"), 15);
    }

    #[test]
    fn shared_content_is_charged_to_each_cache_that_references_it() {
        let usage = CacheUsage::default();
        usage.reference("one", [A]);
        usage.reference("two", [A, B]);
        usage.stored(A, 100);
        usage.stored(B, 1);
        assert_eq!(usage.bytes("one"), 100);
        assert_eq!(usage.bytes("two"), 101);
        // Content never referenced by a cache is the global quota's only.
        usage.stored(7, 1000);
        assert_eq!(usage.bytes("one"), 100);
    }

    #[test]
    fn removed_content_uncharges_every_cache_and_is_charged_again_if_it_returns() {
        let usage = CacheUsage::default();
        usage.reference("one", [A]);
        usage.reference("two", [A]);
        usage.stored(A, 100);
        usage.removed(A);
        assert_eq!((usage.bytes("one"), usage.bytes("two")), (0, 0));
        usage.stored(A, 100);
        assert_eq!((usage.bytes("one"), usage.bytes("two")), (100, 100));
    }

    #[test]
    fn stored_reports_the_caches_over_their_max() {
        let usage = CacheUsage::default();
        usage.set_max("small", Some(50));
        usage.reference("small", [A]);
        usage.reference("large", [A]);
        assert_eq!(usage.awaiting(A), vec!["small".to_string()]);
        assert_eq!(usage.stored(A, 60), vec!["small".to_string()]);
        assert!(usage.awaiting(A).is_empty());
        assert_eq!(usage.max("small"), Some(50));
        usage.serve(&["large", "new"]);
        assert_eq!(usage.max("small"), None);
        assert_eq!(
            usage.sizes().len(),
            3,
            "a served cache is listed before its first pull"
        );
    }

    #[test]
    fn a_recount_that_raced_a_change_is_refused_unless_forced() {
        let usage = CacheUsage::default();
        usage.reference("c", [A, B]);
        usage.stored(A, 10);
        let begun = usage.generation("c");
        usage.stored(B, 5);
        assert!(!usage.replace("c", HashMap::from([(A, 10)]), begun, false));
        assert_eq!(usage.bytes("c"), 15);
        let begun = usage.generation("c");
        assert!(usage.replace("c", HashMap::from([(B, 5)]), begun, false));
        assert_eq!(usage.bytes("c"), 5);
        assert!(usage.replace("c", HashMap::new(), 0, true));
        assert_eq!(usage.bytes("c"), 0);
    }

    #[test]
    fn restored_tallies_sum_what_is_held() {
        let usage = CacheUsage::restored(HashMap::from([(
            "c".to_string(),
            HashMap::from([(A, 3), (B, 0)]),
        )]));
        assert_eq!(usage.bytes("c"), 3);
        usage.stored(B, 4);
        assert_eq!(
            usage.sizes(),
            vec![CacheSize {
                cache: "c".into(),
                bytes: 7,
                max: None
            }]
        );
    }

    #[test]
    fn keys_are_stable_and_tell_digests_apart() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert_eq!(key(&a), key(&a.clone()));
        assert_ne!(key(&a), key(&b));
    }
}
