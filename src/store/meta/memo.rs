//! The answers of the reads every warm pull makes (where a tag points,
//! whether a repository references a digest, whether a manifest is one of
//! its members), kept in memory so that a warm pull costs no trip to the
//! blocking pool: such a trip costs more than the pull itself (benches/run.sh,
//! row 2: warm manifest requests per second halved without this memo).
//!
//! Coherent because every write goes through `BlockingMeta`, which forgets
//! what it changes after the write applied. A reader remembers what it read
//! only if nothing was forgotten since it started reading (a generation
//! count), so a read that raced a write never leaves the old answer behind.
//! Only what exists is remembered: references and members are only ever
//! added outside the changes that forget a repository's entries.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::super::TagRecord;

/// Entries per kind before the memo starts over (warm entries come back on
/// their next read): a few MiB at most.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub(super) struct Memo {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Bumped by every forget: a read that began before it remembers nothing.
    generation: u64,
    /// `<repository>\0<tag>` → the tag's record.
    tags: HashMap<Vec<u8>, TagRecord>,
    /// `<repository>\0<digest>` keys known to be in the references tree.
    references: HashSet<Vec<u8>>,
    /// `<repository>\0<digest>` keys known to be in the members tree.
    members: HashSet<Vec<u8>>,
}

/// What a read saw the memo at, to remember its answer with.
#[derive(Clone, Copy)]
pub(super) struct Generation(u64);

impl Memo {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken before a read of the database whose answer is to be remembered.
    pub(super) fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    pub(super) fn tag(&self, key: &[u8]) -> Option<TagRecord> {
        self.lock().tags.get(key).cloned()
    }

    pub(super) fn is_reference(&self, key: &[u8]) -> bool {
        self.lock().references.contains(key)
    }

    pub(super) fn is_member(&self, key: &[u8]) -> bool {
        self.lock().members.contains(key)
    }

    pub(super) fn remember_tag(&self, read_at: Generation, key: &[u8], record: &TagRecord) {
        self.remember(read_at, |e| {
            bounded_insert(&mut e.tags, key.to_vec(), record.clone())
        });
    }

    pub(super) fn remember_reference(&self, read_at: Generation, key: &[u8]) {
        self.remember(read_at, |e| bounded_add(&mut e.references, key.to_vec()));
    }

    pub(super) fn remember_member(&self, read_at: Generation, key: &[u8]) {
        self.remember(read_at, |e| bounded_add(&mut e.members, key.to_vec()));
    }

    fn remember(&self, read_at: Generation, add: impl FnOnce(&mut Entries)) {
        let mut entries = self.lock();
        if entries.generation == read_at.0 {
            add(&mut entries);
        }
    }

    /// After a write of one tag's record.
    pub(super) fn forget_tag(&self, key: &[u8]) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.tags.remove(key);
    }

    /// After a change that may remove a repository's tags, members or
    /// references (`prefix` is `<repository>\0`).
    pub(super) fn forget_repository(&self, prefix: &[u8]) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.tags.retain(|k, _| !k.starts_with(prefix));
        entries.references.retain(|k| !k.starts_with(prefix));
        entries.members.retain(|k| !k.starts_with(prefix));
    }
}

fn bounded_insert(map: &mut HashMap<Vec<u8>, TagRecord>, key: Vec<u8>, value: TagRecord) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, value);
}

fn bounded_add(set: &mut HashSet<Vec<u8>>, key: Vec<u8>) {
    if set.len() >= MAX_ENTRIES {
        set.clear();
    }
    set.insert(key);
}

#[cfg(test)]
mod tests {
    use super::super::tests::tag_at as record;
    use super::*;

    #[test]
    fn a_read_that_raced_a_write_is_not_remembered() {
        let memo = Memo::default();
        let read_at = memo.generation();
        // The write applies and forgets the key while the read is under way.
        memo.forget_tag(b"r\0latest");
        memo.remember_tag(read_at, b"r\0latest", &record(b"old"));
        assert!(memo.tag(b"r\0latest").is_none(), "a stale answer was kept");
        let read_at = memo.generation();
        memo.remember_tag(read_at, b"r\0latest", &record(b"new"));
        assert_eq!(memo.tag(b"r\0latest"), Some(record(b"new")));
    }

    #[test]
    fn forgetting_a_repository_keeps_the_others() {
        let memo = Memo::default();
        let read_at = memo.generation();
        memo.remember_reference(read_at, b"a/x\0sha256:1");
        memo.remember_reference(read_at, b"a/xy\0sha256:1");
        memo.remember_member(read_at, b"a/x\0sha256:1");
        memo.forget_repository(b"a/x\0");
        assert!(!memo.is_reference(b"a/x\0sha256:1"));
        assert!(!memo.is_member(b"a/x\0sha256:1"));
        assert!(memo.is_reference(b"a/xy\0sha256:1"));
    }
}
