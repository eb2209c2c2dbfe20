//! The order of the local read cache, in memory: which blob was read least
//! recently, and how many bytes the cache holds. Rebuilt at start from the
//! files' modification times (a hit sets its file's time), so the order
//! survives a restart without a database of its own.

use std::collections::{BTreeMap, HashMap};

use crate::domain::Digest;

pub(super) struct Lru {
    capacity: u64,
    held: u64,
    /// Increases with every use: a blob's last use.
    clock: u64,
    entries: HashMap<Digest, Entry>,
    /// Last use to blob, oldest first.
    order: BTreeMap<u64, Digest>,
}

struct Entry {
    size: u64,
    used: u64,
}

impl Lru {
    pub(super) fn new(capacity: u64) -> Lru {
        Lru {
            capacity,
            held: 0,
            clock: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub(super) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(super) fn held(&self) -> u64 {
        self.held
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn size_of(&self, digest: &Digest) -> Option<u64> {
        self.entries.get(digest).map(|e| e.size)
    }

    /// Whether a blob of `size` could be held at all.
    pub(super) fn fits(&self, size: u64) -> bool {
        size <= self.capacity
    }

    /// Marks a held blob as just used; `false` when it is not held.
    pub(super) fn touch(&mut self, digest: &Digest) -> bool {
        self.clock += 1;
        let Some(entry) = self.entries.get_mut(digest) else {
            return false;
        };
        self.order.remove(&entry.used);
        entry.used = self.clock;
        self.order.insert(self.clock, digest.clone());
        true
    }

    /// Records a blob as held and just used, and returns the blobs to take
    /// out (least recently used first) so that everything fits again. A
    /// blob already held is only touched.
    pub(super) fn insert(&mut self, digest: &Digest, size: u64) -> Vec<Digest> {
        if self.touch(digest) {
            return Vec::new();
        }
        self.entries.insert(
            digest.clone(),
            Entry {
                size,
                used: self.clock,
            },
        );
        self.order.insert(self.clock, digest.clone());
        self.held += size;
        self.evict_to(self.capacity)
    }

    /// Forgets a blob; returns whether it was held.
    pub(super) fn remove(&mut self, digest: &Digest) -> bool {
        let Some(entry) = self.entries.remove(digest) else {
            return false;
        };
        self.order.remove(&entry.used);
        self.held -= entry.size;
        true
    }

    /// Takes out the least recently used blobs until at most `limit` bytes
    /// are held; returns them.
    fn evict_to(&mut self, limit: u64) -> Vec<Digest> {
        let mut out = Vec::new();
        while self.held > limit {
            let Some((_, digest)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&digest) {
                self.held -= entry.size;
            }
            out.push(digest);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn the_least_recently_used_goes_first_and_a_touch_saves_a_blob() {
        let mut lru = Lru::new(30);
        assert!(lru.insert(&d(1), 10).is_empty());
        assert!(lru.insert(&d(2), 10).is_empty());
        assert!(lru.insert(&d(3), 10).is_empty());
        assert!(lru.touch(&d(1)));
        // 2 is now the oldest.
        assert_eq!(lru.insert(&d(4), 10), [d(2)]);
        assert_eq!(lru.held(), 30);
        // A large one pushes out as many as it needs, oldest first.
        assert_eq!(lru.insert(&d(5), 20), [d(3), d(1)]);
        assert_eq!((lru.len(), lru.held()), (2, 30));
        assert_eq!(lru.size_of(&d(4)), Some(10));
        assert!(lru.size_of(&d(1)).is_none());
    }

    #[test]
    fn removing_and_reinserting_keeps_the_total_right() {
        let mut lru = Lru::new(100);
        lru.insert(&d(1), 40);
        lru.insert(&d(1), 40);
        assert_eq!(lru.held(), 40);
        assert!(lru.remove(&d(1)));
        assert!(!lru.remove(&d(1)));
        assert!(!lru.touch(&d(1)));
        assert_eq!((lru.len(), lru.held()), (0, 0));
        assert!(!lru.fits(101));
        assert!(lru.fits(100));
    }
}
