//! Complete images: when a pull gets an index from a cache with
//! `complete_images`, the chosen platforms' manifests and blobs are fetched
//! in the background (through `images.rs`, the walk prefetch takes), so a
//! later pull of another architecture works with the upstream gone. Never
//! in the client's way: the pull is answered first, a few indexes are
//! completed at a time across all caches, each index of a repository once
//! per process (not again while running or once complete), and a failure
//! is logged and counted, never shown to the client (a later pull retries).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::{Cache, ManifestHit};
use crate::domain::{Digest, Platforms, Reference, RepoName};
use crate::metrics::METRICS;

/// Indexes completed at once, across all caches: enough to overlap round
/// trips, few enough to leave the uplink to pulls.
const AT_ONCE: usize = 2;
/// Most indexes waiting or under way; past it, new ones are skipped (and
/// counted) until some finish: a burst of pulls cannot queue unbounded work.
const MAX_PENDING: usize = 256;
/// Completed indexes remembered; when full the memory starts over (a walk
/// of a complete index is cheap: every piece is found stored).
const MAX_REMEMBERED: usize = 10_000;

/// (local repository, index digest).
type Key = (String, Digest);

/// The completions of this process: which run, which are done, and the
/// permits that bound them.
pub(super) struct Completions {
    permits: Semaphore,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: HashSet<Key>,
    done: HashSet<Key>,
}

impl Default for Completions {
    fn default() -> Completions {
        Completions {
            permits: Semaphore::new(AT_ONCE),
            state: Mutex::new(State::default()),
        }
    }
}

/// Whether a completion starts.
#[derive(Debug, PartialEq)]
enum Begin {
    Start,
    /// Running or complete already.
    Known,
    /// Too many waiting.
    Full,
}

impl Completions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, key: &Key) -> Begin {
        let mut state = self.lock();
        if state.pending.contains(key) || state.done.contains(key) {
            return Begin::Known;
        }
        if state.pending.len() >= MAX_PENDING {
            return Begin::Full;
        }
        state.pending.insert(key.clone());
        Begin::Start
    }

    /// A failed completion is forgotten: the next pull of the index retries.
    fn finish(&self, key: Key, complete: bool) {
        let mut state = self.lock();
        state.pending.remove(&key);
        if complete {
            if state.done.len() >= MAX_REMEMBERED {
                state.done.clear();
            }
            state.done.insert(key);
        }
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

impl Cache {
    /// After a pull got `hit` under `repo`: if it is an index and the cache
    /// completes images, fetch its chosen platforms in the background.
    /// Returns at once.
    pub(crate) fn complete_in_background(self: &Arc<Self>, repo: &RepoName, hit: &ManifestHit) {
        let Some(platforms) = self.config.policy().complete_images.as_ref() else {
            return;
        };
        // Checked before the list is cloned: most pulls get no index.
        if !hit.media_type.is_index() {
            return;
        }
        let platforms = platforms.clone();
        let key = (self.local_name(repo), hit.digest.clone());
        match self.storage.completions.begin(&key) {
            Begin::Start => {}
            Begin::Known => return,
            Begin::Full => {
                tracing::warn!(cache = %self.base_path(), repository = %key.0, index = %key.1,
                    "too many images being completed: this one is skipped until a later pull");
                METRICS.complete_images(self.base_path(), "skipped");
                return;
            }
        }
        let (this, repo) = (self.clone(), repo.clone());
        tokio::spawn(async move {
            let outcome = this.complete(&repo, &key.1, &platforms).await;
            match &outcome {
                Ok(blobs) => {
                    tracing::info!(cache = %this.base_path(), repository = %key.0, index = %key.1, blobs, "image completed");
                    METRICS.complete_images(this.base_path(), "completed");
                }
                Err(e) => {
                    tracing::warn!(cache = %this.base_path(), repository = %key.0, index = %key.1, error = %e,
                        "could not complete the image; a later pull tries again");
                    METRICS.complete_images(this.base_path(), "failed");
                }
            }
            this.storage.completions.finish(key, outcome.is_ok());
        });
    }

    /// Fetches the chosen platforms of the index `digest` and their blobs;
    /// answers how many blobs it holds. An index without any of the chosen
    /// platforms is complete as it is.
    async fn complete(
        self: &Arc<Self>,
        repo: &RepoName,
        digest: &Digest,
        platforms: &Platforms,
    ) -> Result<usize, String> {
        // Closed only when the process ends: a permit is always granted.
        let _permit = self
            .storage
            .completions
            .permits
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let parts = self
            .image_parts(repo, &Reference::Digest(digest.clone()), platforms)
            .await
            .map_err(|e| e.to_string())?;
        for (blob, _) in &parts.blobs {
            self.fetch_blob(repo, blob).await?;
        }
        Ok(parts.blobs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_completed_once_and_retried_after_a_failure() {
        let c = Completions::default();
        let key = ("hub/a".to_string(), Digest::sha256_of(b"index"));
        assert_eq!(c.begin(&key), Begin::Start);
        assert_eq!(c.begin(&key), Begin::Known, "running");
        c.finish(key.clone(), false);
        assert_eq!(c.begin(&key), Begin::Start, "failed: tried again");
        c.finish(key.clone(), true);
        assert_eq!(c.begin(&key), Begin::Known, "complete");
        let other = ("hub/b".to_string(), key.1.clone());
        assert_eq!(c.begin(&other), Begin::Start, "another repository");
        for i in 0..MAX_PENDING {
            c.begin(&(format!("hub/{i}"), key.1.clone()));
        }
        assert_eq!(c.pending(), MAX_PENDING);
        let late = ("hub/late".to_string(), key.1.clone());
        assert_eq!(c.begin(&late), Begin::Full);
    }
}
