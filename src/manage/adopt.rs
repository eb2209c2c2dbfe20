//! Every member holds the whole cluster's tags: each round of the follow
//! loop (`shared.rs`) a member adopts the tags other members' views list
//! and it lacks (`cache/adopt.rs` records them from the shared bucket),
//! so its API, dashboard and sizes show the cluster's content and it
//! serves every tag even with the member that pulled it down.
//!
//! A tag or repository deleted through the API leaves a tombstone,
//! `state/deleted/<hash>.json` (what, when), written before the delete so
//! no member acknowledges a delete the others will not see. Every member
//! deletes its records the tombstone covers that the upstream confirmed
//! no later than it, and adopts none of them; tombstones older than
//! [`TOMBSTONE_LIFE`] are removed. Quota eviction is one member's own
//! business and leaves none. A tag is adopted at most once per process and
//! upstream confirmation: one this member evicted under its quota is not
//! taken back from the others until one of them confirms it again (or
//! this member restarts). Times are seconds: a tag confirmed in the same
//! second as a delete counts as deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cluster_view::{View, ViewTag};
use super::{ManageError, Manager};
use crate::cache::Adoptable;
use crate::domain::Digest;
use crate::store::{unix_now, SharedState, WriteIf};

/// Bounds one round's work (each adopted tag reads its manifest).
const MAX_ADOPTED_PER_ROUND: usize = 500;
/// How long a delete keeps other members from adopting what it removed.
const TOMBSTONE_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_TOMBSTONE_BYTES: u64 = 64 * 1024;
/// Bounds the memory of what was adopted (forgotten whole past it).
const MAX_REMEMBERED: usize = 200_000;
const DELETED: &str = "deleted";
const FORMAT: u32 = 1;

/// A delete made through some member's API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Tombstone {
    format: u32,
    /// The repository's local name; the tag, or none for all of it.
    repository: String,
    tag: Option<String>,
    /// Seconds since the epoch, by the deleting member's clock.
    at: u64,
}

impl Tombstone {
    /// Whether it removes `repository:tag` as confirmed at `confirmed_at`.
    fn covers(&self, repository: &str, tag: &str, confirmed_at: u64) -> bool {
        self.repository == repository
            && self.tag.as_deref().is_none_or(|t| t == tag)
            && confirmed_at <= self.at
    }
}

fn tombstone_name(repository: &str, tag: Option<&str>) -> String {
    let what = match tag {
        Some(tag) => format!("tag {repository}:{tag}"),
        None => format!("repository {repository}"),
    };
    let digest = Digest::sha256_of(what.as_bytes());
    format!("{DELETED}/{}.json", &digest.hex()[..32])
}

/// What this member knows of tombstones and adoptions.
#[derive(Default)]
pub(super) struct Adopter {
    /// Tombstones by object name, with the e-tag read.
    tombstones: Mutex<HashMap<String, (Option<String>, Tombstone)>>,
    /// (repository, tag, digest, confirmed at) adopted or tried since
    /// start: a tag pulled again after a delete is confirmed anew.
    tried: Mutex<HashSet<(String, String, String, u64)>>,
}

impl Manager {
    /// Leaves a tombstone for a delete through the API (a no-op outside a
    /// cluster); fails with a 503 when the bucket does not take it.
    pub(super) async fn bury(
        &self,
        repository: &str,
        tag: Option<&str>,
    ) -> Result<(), ManageError> {
        let Some(shared) = self.caches.storage().shared_state() else {
            return Ok(());
        };
        let stone = Tombstone {
            format: FORMAT,
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            at: unix_now(),
        };
        let bytes = serde_json::to_vec(&stone).map_err(|e| ManageError::Conflict(e.to_string()))?;
        shared
            .put(&tombstone_name(repository, tag), bytes, WriteIf::Always)
            .await
            .map_err(|e| {
                ManageError::Unavailable(format!("the cluster's shared state is unreachable: {e}"))
            })?;
        Ok(())
    }

    /// One round: reads the tombstones, applies them, then adopts what the
    /// other members' views hold and this member lacks.
    /// `own` is this member's view as just published.
    pub(super) async fn adopt_round(
        &self,
        shared: &SharedState,
        own: &View,
    ) -> Result<(), ManageError> {
        let Some(cluster) = self.caches.storage().cluster().cloned() else {
            return Ok(());
        };
        let (stones, new) = self.read_tombstones(shared).await?;
        self.apply_tombstones(&new).await?;
        let mut held: HashSet<(&str, &str)> = HashSet::new();
        for repos in own.caches.values() {
            for (repo, tags) in repos {
                held.extend(tags.iter().map(|t| (repo.as_str(), t.name())));
            }
        }
        let mut wanted: BTreeMap<(String, String), Adoptable> = BTreeMap::new();
        for (_, view) in self.other_views(&cluster, shared).await {
            let Some(view) = view else {
                continue;
            };
            for (cache, repos) in view.caches {
                if self.caches.serving(&cache).is_none() {
                    continue;
                }
                for (repo, tags) in repos {
                    for tag in tags {
                        let ViewTag::At {
                            tag,
                            digest,
                            confirmed_at,
                        } = tag
                        else {
                            continue;
                        };
                        if held.contains(&(repo.as_str(), tag.as_str()))
                            || stones.iter().any(|s| s.covers(&repo, &tag, confirmed_at))
                        {
                            continue;
                        }
                        let Ok(digest) = digest.parse::<Digest>() else {
                            continue;
                        };
                        // Two members may hold it at different digests: the
                        // one the upstream confirmed last wins.
                        let key = (repo.clone(), tag.clone());
                        if wanted
                            .get(&key)
                            .is_some_and(|w| w.confirmed_at >= confirmed_at)
                        {
                            continue;
                        }
                        wanted.insert(
                            key,
                            Adoptable {
                                cache: cache.clone(),
                                repository: repo.clone(),
                                tag,
                                digest,
                                confirmed_at,
                            },
                        );
                    }
                }
            }
        }
        let batch: Vec<Adoptable> = {
            let mut tried = self.adopter.tried.lock().unwrap_or_else(|p| p.into_inner());
            if tried.len() > MAX_REMEMBERED {
                tried.clear();
            }
            wanted
                .into_values()
                .filter(|a| {
                    tried.insert((
                        a.repository.clone(),
                        a.tag.clone(),
                        a.digest.to_string(),
                        a.confirmed_at,
                    ))
                })
                .take(MAX_ADOPTED_PER_ROUND)
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        self.caches.storage().adopt_tags(batch).await?;
        Ok(())
    }

    /// Lists the tombstones and reads those new or changed; removes those
    /// past [`TOMBSTONE_LIFE`]. Returns all of them, and those read now
    /// (only they need applying: what came later is confirmed later).
    async fn read_tombstones(
        &self,
        shared: &SharedState,
    ) -> Result<(Vec<Tombstone>, Vec<Tombstone>), ManageError> {
        let unreachable = |e: crate::store::StoreError| ManageError::Unavailable(e.to_string());
        let entries = shared.list(DELETED).await.map_err(unreachable)?;
        let known = self
            .adopter
            .tombstones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut current = HashMap::new();
        let mut new = Vec::new();
        let oldest = unix_now().saturating_sub(TOMBSTONE_LIFE.as_secs());
        for entry in entries {
            let stone = match known.get(&entry.name) {
                Some((e_tag, stone)) if e_tag.is_some() && e_tag == &entry.e_tag => stone.clone(),
                _ => {
                    let Some(got) = shared
                        .get(&entry.name, MAX_TOMBSTONE_BYTES)
                        .await
                        .map_err(unreachable)?
                    else {
                        continue;
                    };
                    let stone = match serde_json::from_slice::<Tombstone>(&got.bytes) {
                        Ok(stone) if stone.format == FORMAT => stone,
                        _ => {
                            tracing::warn!(object = %entry.name, "unreadable tombstone skipped");
                            continue;
                        }
                    };
                    new.push(stone.clone());
                    stone
                }
            };
            if stone.at < oldest {
                // Any member may remove it; a failure is retried next round.
                let _ = shared.delete(&entry.name).await;
                continue;
            }
            current.insert(entry.name, (entry.e_tag, stone));
        }
        let stones = current.values().map(|(_, s)| s.clone()).collect();
        *self
            .adopter
            .tombstones
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = current;
        Ok((stones, new))
    }

    /// Deletes this member's tags the tombstones cover, and a repository
    /// whose every tag a tombstone of it covers (without new tombstones).
    async fn apply_tombstones(&self, stones: &[Tombstone]) -> Result<(), ManageError> {
        if stones.is_empty() {
            return Ok(());
        }
        let storage = self.caches.storage();
        for stone in stones {
            let (meta, name) = (self.meta.clone(), stone.repository.clone());
            let (exists, tags) = crate::cache::blocking(move || {
                let meta = meta.blocking();
                Ok((meta.repo(&name)?.is_some(), meta.tags_of(&name)?))
            })
            .await?;
            let all_covered = tags.iter().all(|(_, t)| t.confirmed_at <= stone.at);
            if stone.tag.is_none() && exists && all_covered {
                storage.delete_repository(&stone.repository).await?;
                tracing::info!(repository = %stone.repository, "deleted through another cluster member");
                continue;
            }
            for (tag, record) in tags {
                if stone.covers(&stone.repository, &tag, record.confirmed_at) {
                    storage.delete_tag(&stone.repository, &tag).await?;
                    tracing::info!(repository = %stone.repository, %tag, "tag deleted through another cluster member");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_covers_what_was_confirmed_before_it() {
        let stone = Tombstone {
            format: FORMAT,
            repository: "docker/library/busybox".into(),
            tag: None,
            at: 100,
        };
        assert!(stone.covers("docker/library/busybox", "latest", 100));
        assert!(!stone.covers("docker/library/busybox", "latest", 101));
        assert!(!stone.covers("docker/library/alpine", "latest", 1));
        let tag = Tombstone {
            tag: Some("1.36".into()),
            ..stone
        };
        assert!(tag.covers("docker/library/busybox", "1.36", 5));
        assert!(!tag.covers("docker/library/busybox", "latest", 5));
        assert_ne!(
            tombstone_name("a", Some("b")),
            tombstone_name("a:b", None),
            "a tag's tombstone and a repository's differ"
        );
    }
}
