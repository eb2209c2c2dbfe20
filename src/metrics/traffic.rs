//! Client traffic per cache and pulls per repository, for the dashboard's
//! history (`manage/history/`) rather than for `/metrics`: a repository
//! label there would make one series per repository. Counted since start,
//! like the counters; the history samples them and stores the deltas.

use std::collections::HashMap;
use std::sync::Mutex;

/// One cache's client requests (manifests and blob GETs) and hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheTraffic {
    pub requests: u64,
    pub hits: u64,
}

/// The most repositories counted: beyond it new names are not counted
/// (the repositories themselves are bounded by the store, but a client
/// can ask for names that never come to exist).
const MAX_REPOSITORIES: usize = 100_000;

#[derive(Default)]
pub(crate) struct Traffic {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    pub caches: HashMap<String, CacheTraffic>,
    pub pulls: HashMap<String, u64>,
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A manifest or blob request answered for `cache`; `pull` names the
    /// local repository when it counts as a pull of it.
    pub(crate) fn request(&self, cache: &str, hit: bool, pull: Option<&str>) {
        let mut state = self.lock();
        let counts = match state.caches.get_mut(cache) {
            Some(counts) => counts,
            None => state.caches.entry(cache.to_string()).or_default(),
        };
        counts.requests += 1;
        counts.hits += u64::from(hit);
        if let Some(repo) = pull {
            if let Some(n) = state.pulls.get_mut(repo) {
                *n += 1;
            } else if state.pulls.len() < MAX_REPOSITORIES {
                state.pulls.insert(repo.to_string(), 1);
            }
        }
    }

    /// Everything counted so far.
    pub(crate) fn snapshot(&self) -> State {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_cache_and_pulls_per_repository() {
        let traffic = Traffic::default();
        traffic.request("hub", false, Some("hub/library/busybox"));
        traffic.request("hub", true, None);
        traffic.request("quay", true, Some("quay/a"));
        traffic.request("hub", true, Some("hub/library/busybox"));
        let state = traffic.snapshot();
        assert_eq!(
            state.caches["hub"],
            CacheTraffic {
                requests: 3,
                hits: 2
            }
        );
        assert_eq!(state.caches["quay"].hits, 1);
        assert_eq!(state.pulls["hub/library/busybox"], 2);
        assert_eq!(state.pulls["quay/a"], 1);
    }
}
