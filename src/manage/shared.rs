//! Remotes and distributions shared by the members of a cluster.
//!
//! In a cluster the definitions made through the API live as one object
//! each in the members' bucket (`state/remotes/<id>.json`,
//! `state/distributions/<id>.json`); each member's metadata holds a copy,
//! which is what it serves from. An API write goes to the bucket first
//! (create-only for a new record, `If-Match` the e-tag last seen for a
//! change) and is applied locally only once the bucket took it, so no
//! member acknowledges a change the others will never see; a bucket that
//! does not answer fails the write with a 503 and changes nothing. Every
//! member re-reads the listing every [`FOLLOW_EVERY`] and applies what
//! changed through the same path the API uses (`caches.rs` `apply`).
//!
//! A member that cannot reach the bucket keeps serving what it last read,
//! logs it once and reports it in `status/` (`shared_state`). The config
//! file's `[[cache]]` entries stay per member (every member should have the
//! same file): they are never published, and a shared distribution that
//! overlaps one of them is not served on that member.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ManageError, Manager};
use crate::config::overlaps;
use crate::store::{DistributionRecord, RemoteRecord, SharedState, WriteIf, Written};

/// How often every member re-reads the shared definitions: a change made
/// on one member is served by all within about this.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// A definition is a few kilobytes; anything far larger is not ours.
const MAX_RECORD_BYTES: u64 = 1024 * 1024;

/// The version of the objects' layout.
const FORMAT: u32 = 1;

/// Written once the first member published its definitions: from then on
/// the bucket is the truth, and a member's local definitions that are not
/// there were deleted elsewhere (not new ones to publish).
const SEEDED: &str = "seeded";

const REMOTES: &str = "remotes";
const DISTRIBUTIONS: &str = "distributions";

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: u32,
    record: T,
}

/// `state/<dir>/<id>.json`; ids are ferry's UUIDs, anything else is
/// refused rather than used as a key.
fn object_name(dir: &str, id: &str) -> Result<String, ManageError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ManageError::Conflict(format!(
            "the id {id:?} cannot be shared with the cluster"
        )));
    }
    Ok(format!("{dir}/{id}.json"))
}

pub(super) fn remote_object(id: &str) -> Result<String, ManageError> {
    object_name(REMOTES, id)
}

pub(super) fn distribution_object(id: &str) -> Result<String, ManageError> {
    object_name(DISTRIBUTIONS, id)
}

fn unreachable(e: impl std::fmt::Display) -> ManageError {
    ManageError::Unavailable(format!("the cluster's shared state is unreachable: {e}"))
}

/// Whether this member reads the shared state, as `status/` reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct SharedStateStatus {
    /// Whether the last read of the bucket's `state/` worked.
    pub reachable: bool,
    /// When it was last read whole (RFC 3339; null: not yet).
    pub last_read: Option<String>,
    /// Why the last read failed: the member serves the definitions it read
    /// last until the bucket answers again.
    pub error: Option<String>,
}

/// What this member knows of the shared objects.
#[derive(Default)]
pub(super) struct Follower {
    /// Each object's e-tag as last read or written here: an unchanged one
    /// is not fetched again.
    known: Mutex<HashMap<String, Option<String>>>,
    seeded: std::sync::atomic::AtomicBool,
    status: Mutex<Option<SharedStateStatus>>,
}

impl Follower {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_read(&self, outcome: Result<(), String>) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let was_reachable = status.as_ref().is_none_or(|s| s.reachable);
        let last_read = status.as_ref().and_then(|s| s.last_read.clone());
        *status = Some(match outcome {
            Ok(()) => {
                if !was_reachable {
                    tracing::info!("the cluster's shared state is reachable again");
                }
                SharedStateStatus {
                    reachable: true,
                    last_read: Some(
                        humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                    ),
                    error: None,
                }
            }
            Err(error) => {
                if was_reachable {
                    tracing::warn!(%error, "cannot read the cluster's shared state: serving the definitions read last");
                }
                SharedStateStatus {
                    reachable: false,
                    last_read,
                    error: Some(error),
                }
            }
        });
    }
}

/// What the bucket holds of one kind of definition, fetched where changed.
struct Listed<T> {
    /// Every id listed.
    ids: Vec<String>,
    /// The records whose object changed since last read.
    changed: Vec<T>,
}

impl Manager {
    fn shared(&self) -> Option<&SharedState> {
        self.caches.storage().shared_state()
    }

    /// The shared state as `status/` shows it (none: not a cluster).
    pub(crate) fn shared_state_status(&self) -> Option<SharedStateStatus> {
        self.shared()?;
        let status = self
            .follower
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Some(status.clone().unwrap_or(SharedStateStatus {
            reachable: true,
            last_read: None,
            error: None,
        }))
    }

    /// Writes one definition to the bucket (a no-op outside a cluster):
    /// create-only when `new`, else only over the version last seen here.
    pub(super) async fn publish<T: Serialize>(
        &self,
        name: &str,
        record: &T,
        new: bool,
    ) -> Result<(), ManageError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&Envelope {
            format: FORMAT,
            record,
        })
        .map_err(|e| ManageError::Conflict(e.to_string()))?;
        let when = match (new, self.follower.known().get(name).cloned().flatten()) {
            (true, _) => WriteIf::Absent,
            (false, Some(e_tag)) => WriteIf::Unchanged(e_tag),
            (false, None) => WriteIf::Always,
        };
        match shared.put(name, bytes, when).await.map_err(unreachable)? {
            Written::Done(e_tag) => {
                self.follower.known().insert(name.to_string(), e_tag);
                Ok(())
            }
            Written::Conflict => Err(ManageError::Conflict(
                "changed through another member of the cluster meanwhile: read it again and retry"
                    .into(),
            )),
        }
    }

    /// Deletes one definition from the bucket (a no-op outside a cluster).
    pub(super) async fn withdraw(&self, name: &str) -> Result<(), ManageError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        shared.delete(name).await.map_err(unreachable)?;
        self.follower.known().remove(name);
        Ok(())
    }

    /// Re-reads the shared definitions every [`FOLLOW_EVERY`], for ever
    /// (returns at once outside a cluster).
    /// Also publishes this member's view of its repositories when it
    /// changed (`cluster_view.rs`), then applies tombstones and adopts the
    /// tags other members hold (`adopt.rs`).
    pub(crate) async fn follow_shared_state(self: std::sync::Arc<Self>) {
        let Some(shared) = self.shared().cloned() else {
            return;
        };
        let mut every = tokio::time::interval(FOLLOW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // Failures are recorded for status/ and logged there.
            let _ = self.read_shared_state().await;
            let own = match self.own_view().await {
                Ok(own) => own,
                Err(e) => {
                    tracing::debug!(error = %e, "reading this member's view failed");
                    continue;
                }
            };
            if let Err(e) = self.publish_view(&shared, &own).await {
                tracing::debug!(error = %e, "publishing this member's view failed");
            }
            if let Err(e) = self.adopt_round(&shared, &own).await {
                tracing::debug!(error = %e, "adopting the other members' tags failed");
            }
        }
    }

    /// Reads the shared definitions and applies what changed to this
    /// member's records and caches. The first member of a new cluster
    /// publishes its own definitions instead.
    pub(crate) async fn read_shared_state(&self) -> Result<(), ManageError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        let _guard = self.changes.lock().await;
        let outcome = self.follow_once(shared).await;
        self.follower
            .record_read(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        outcome
    }

    async fn follow_once(&self, shared: &SharedState) -> Result<(), ManageError> {
        self.seed(shared).await?;
        let remotes: Listed<RemoteRecord> = self.list_shared(shared, REMOTES).await?;
        let distributions: Listed<DistributionRecord> =
            self.list_shared(shared, DISTRIBUTIONS).await?;
        let mut changed = false;
        let local_remotes = self.meta.remotes().await?;
        for mut remote in remotes.changed {
            remote.from_config = false;
            if local_remotes.iter().any(|r| r == &remote) {
                continue;
            }
            self.meta.put_remote(&remote).await?;
            changed = true;
        }
        let local_distributions = self.meta.distributions().await?;
        let configured: Vec<String> = local_distributions
            .iter()
            .filter(|d| d.from_config)
            .map(|d| d.base_path.clone())
            .collect();
        for mut d in distributions.changed {
            d.from_config = false;
            if local_distributions.iter().any(|l| l == &d) {
                continue;
            }
            if let Some(clash) = configured.iter().find(|c| overlaps(c, &d.base_path)) {
                tracing::warn!(distribution = %d.name, config_cache = %clash,
                    "a shared distribution overlaps this member's config cache: not served here");
                continue;
            }
            self.meta.put_distribution(&d).await?;
            changed = true;
        }
        // Deleted through another member: gone from the listing.
        for d in local_distributions.iter().filter(|d| !d.from_config) {
            if !distributions.ids.contains(&d.id) {
                self.meta.delete_distribution(&d.id).await?;
                changed = true;
            }
        }
        for r in local_remotes.iter().filter(|r| !r.from_config) {
            if !remotes.ids.contains(&r.id) {
                self.meta.delete_remote(&r.id).await?;
                changed = true;
            }
        }
        if changed {
            self.durable().await?;
            self.apply().await?;
            tracing::info!("applied definitions changed through another cluster member");
        }
        Ok(())
    }

    /// Lists one kind of definition and fetches the objects that changed.
    async fn list_shared<T: DeserializeOwned + HasId>(
        &self,
        shared: &SharedState,
        dir: &str,
    ) -> Result<Listed<T>, ManageError> {
        let entries = shared.list(dir).await.map_err(unreachable)?;
        let mut listed = Listed {
            ids: Vec::new(),
            changed: Vec::new(),
        };
        let mut seen = BTreeMap::new();
        for entry in entries {
            let Some(id) = entry
                .name
                .strip_prefix(&format!("{dir}/"))
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            listed.ids.push(id.to_string());
            seen.insert(entry.name.clone(), entry.e_tag.clone());
            let known = self.follower.known().get(&entry.name).cloned();
            if known.is_some() && known == Some(entry.e_tag.clone()) {
                continue;
            }
            let Some(got) = shared
                .get(&entry.name, MAX_RECORD_BYTES)
                .await
                .map_err(unreachable)?
            else {
                continue;
            };
            match serde_json::from_slice::<Envelope<T>>(&got.bytes) {
                Ok(envelope) if envelope.format == FORMAT && envelope.record.id() == id => {
                    listed.changed.push(envelope.record);
                }
                Ok(_) | Err(_) => {
                    // Kept out, and not fetched again until it changes.
                    tracing::warn!(object = %entry.name, "unreadable shared definition skipped");
                }
            }
            self.follower.known().insert(entry.name.clone(), got.e_tag);
        }
        self.follower
            .known()
            .retain(|name, _| !name.starts_with(&format!("{dir}/")) || seen.contains_key(name));
        Ok(listed)
    }

    /// Publishes this member's definitions to a bucket that has none yet
    /// (once per cluster: `state/seeded` marks it).
    async fn seed(&self, shared: &SharedState) -> Result<(), ManageError> {
        use std::sync::atomic::Ordering;
        if self.follower.seeded.load(Ordering::Relaxed) {
            return Ok(());
        }
        if shared
            .get(SEEDED, 1024)
            .await
            .map_err(unreachable)?
            .is_none()
        {
            for r in self.meta.remotes().await?.iter().filter(|r| !r.from_config) {
                self.publish(&remote_object(&r.id)?, r, true)
                    .await
                    .or_else(ignore_conflict)?;
            }
            for d in self
                .meta
                .distributions()
                .await?
                .iter()
                .filter(|d| !d.from_config)
            {
                self.publish(&distribution_object(&d.id)?, d, true)
                    .await
                    .or_else(ignore_conflict)?;
            }
            let marker = format!("seeded by {}", self.cluster_me());
            shared
                .put(SEEDED, marker.into_bytes(), WriteIf::Absent)
                .await
                .map_err(unreachable)?;
        }
        self.follower.seeded.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn cluster_me(&self) -> String {
        self.caches
            .storage()
            .cluster()
            .map_or_else(String::new, |c| c.me().to_string())
    }
}

/// Another member published the same record first: theirs stands.
fn ignore_conflict(e: ManageError) -> Result<(), ManageError> {
    match e {
        ManageError::Conflict(_) => Ok(()),
        other => Err(other),
    }
}

/// A shared record names itself: the object's name must match.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for RemoteRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for DistributionRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_become_object_names() {
        let id = "0b7e5c1e-4a4f-4d7e-9a59-1f0e0f2b9c11";
        assert_eq!(remote_object(id).unwrap(), format!("remotes/{id}.json"));
        assert_eq!(
            distribution_object(id).unwrap(),
            format!("distributions/{id}.json")
        );
        for bad in ["", "../seeded", "a/b", "a.json", &"x".repeat(65)] {
            assert!(remote_object(bad).is_err(), "{bad:?} accepted");
        }
    }
}
