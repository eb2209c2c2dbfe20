//! The listings' walks (every repository's counts and sizes, the stored
//! totals, the pinned bytes), remembered at the metadata's content version
//! (`BlockingMeta::content_version`, bumped after every write of what they
//! sum up). `status/`, the repository lists and the dashboard's history
//! read them on every call; with 2,000 repositories and 5,000 tags a walk
//! took most of a debug build's 0.1 to 0.2 s per call. Now only the first
//! call after a change walks.

use std::sync::Mutex;

use super::content::Inventory;
use super::pins::PinnedBytes;

/// One remembered answer and the content version it was computed at.
pub(super) struct Remembered<T> {
    slot: Mutex<Option<(u64, T)>>,
}

impl<T> Default for Remembered<T> {
    fn default() -> Self {
        Remembered {
            slot: Mutex::new(None),
        }
    }
}

impl<T: Clone> Remembered<T> {
    /// The answer if it was computed at `version`.
    pub(super) fn at(&self, version: u64) -> Option<T> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, value)| value.clone())
    }

    /// Remembers `value`, computed from reads made after `version` was
    /// read (a write meanwhile bumped the version: the next call walks).
    pub(super) fn keep(&self, version: u64, value: &T) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some((version, value.clone()));
    }
}

#[derive(Default)]
pub(super) struct Summaries {
    pub inventory: Remembered<Inventory>,
    /// Bytes and number of stored objects.
    pub stored: Remembered<(u64, u64)>,
    pub pinned: Remembered<PinnedBytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_holds_at_its_version_only() {
        let memo = Remembered::<u64>::default();
        assert_eq!(memo.at(0), None);
        memo.keep(3, &42);
        assert_eq!(memo.at(3), Some(42));
        assert_eq!(memo.at(4), None, "a write since: walk again");
    }
}
