//! Garbage collection when several members share one bucket.
//!
//! A member's metadata knows only what it references itself; deleting
//! every object it does not reference would delete what the others hold.
//! So each round, each member:
//! 1. forgets its own records of what it no longer references (the object
//!    stays: `remove` leaves shared objects alone);
//! 2. publishes what it references, `state/live/<member>.json`;
//! 3. reads every member's published set (this one too) and deletes only
//!    the objects whose digest it owns (`Cluster::owner`: one member
//!    decides for each object), that no set names, and that were stored
//!    (by the object store's clock) more than `grace` before the oldest
//!    set was written, so nothing stored after a member's last set counts
//!    as unreferenced. A member whose set is missing or unreadable (never
//!    ran its GC, or its bucket access fails) stops all deletes that round.
//!
//! What is left: a member that starts referencing an object already
//! stored but unreferenced (a pull of an image whose layers were orphaned)
//! between publishing its set and another member's delete can find it gone;
//! its next pull fetches it again from the upstream.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::error::{blocking, CacheError};
use super::maintenance::{live_set, GcReport};
use super::Storage;
use crate::cluster::{Cluster, Owner};
use crate::domain::Digest;
use crate::store::{SharedState, WriteIf};

/// A member's set is a list of digests (about 75 bytes each): this bounds
/// it at well over a million objects.
const MAX_LIVE_SET_BYTES: u64 = 128 * 1024 * 1024;

/// `live/<first 16 hex of sha256(member URL)>.json`.
fn live_set_name(member: &url::Url) -> String {
    let digest = Digest::sha256_of(member.as_str().as_bytes());
    format!("live/{}.json", &digest.hex()[..16])
}

impl Storage {
    /// One round of the cluster's garbage collection (see the module).
    pub(super) async fn collect_shared_garbage(
        &self,
        cluster: &Cluster,
        shared: &SharedState,
        grace: Duration,
        temp_grace: Duration,
    ) -> Result<GcReport, CacheError> {
        let _no_import_meanwhile = self.collecting.write().await;
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        // 1. This member's references, and its records of the rest.
        let (live, stored, temp_files, forgotten, forgotten_bytes) = blocking(move || {
            let meta = meta.blocking();
            let live = live_set(meta)?;
            let temp_files = blobs.remove_stale_temp_files(temp_grace)? as u64;
            let stored = blobs.stored()?;
            let (mut forgotten, mut bytes) = (Vec::new(), 0);
            let now = SystemTime::now();
            for object in &stored {
                let age = now.duration_since(object.modified).unwrap_or_default();
                if live.contains(&object.digest) || age < grace {
                    continue;
                }
                if meta.blob(&object.digest)?.is_some() || meta.manifest(&object.digest)?.is_some()
                {
                    meta.forget_content(&object.digest)?;
                    forgotten.push(object.digest.clone());
                    bytes += object.size;
                }
            }
            meta.flush()?;
            Ok((live, stored, temp_files, forgotten, bytes))
        })
        .await?;
        for digest in &forgotten {
            self.manifests.forget(digest);
        }
        self.quota.sub(forgotten_bytes);
        self.settle_usage(None, forgotten).await?;

        // 2. What it references, for the others.
        let listed: Vec<String> = live.iter().map(Digest::to_string).collect();
        let body = serde_json::to_vec(&listed).map_err(|e| CacheError::Internal(e.to_string()))?;
        shared
            .put(&live_set_name(cluster.me()), body, WriteIf::Always)
            .await?;

        // 3. Everyone's references; deletes only when all are known.
        let mut referenced: BTreeSet<Digest> = live;
        let mut oldest: Option<SystemTime> = None;
        for member in cluster.members().iter() {
            let name = live_set_name(&member.url);
            let Some(set) = shared.get(&name, MAX_LIVE_SET_BYTES).await? else {
                tracing::info!(member = %member.url,
                    "cluster GC: a member has not published what it references; nothing deleted this round");
                return Ok(self.gc_done(temp_files, 0, 0));
            };
            let Ok(digests) = serde_json::from_slice::<Vec<String>>(&set.bytes) else {
                tracing::warn!(member = %member.url,
                    "cluster GC: a member's published references are unreadable; nothing deleted this round");
                return Ok(self.gc_done(temp_files, 0, 0));
            };
            referenced.extend(digests.iter().filter_map(|d| d.parse::<Digest>().ok()));
            oldest = Some(oldest.map_or(set.modified, |o| o.min(set.modified)));
        }
        let Some(oldest) = oldest else {
            return Ok(self.gc_done(temp_files, 0, 0));
        };
        let (mut removed, mut bytes) = (0, 0);
        for object in stored {
            if referenced.contains(&object.digest)
                || object.modified + grace >= oldest
                || cluster.owner(&object.digest.to_string()) != Owner::Me
            {
                continue;
            }
            shared.remove_blob(&object.digest).await?;
            removed += 1;
            bytes += object.size;
        }
        Ok(self.gc_done(temp_files, removed, bytes))
    }

    fn gc_done(&self, temp_files: u64, removed: u64, bytes: u64) -> GcReport {
        crate::metrics::METRICS.collected();
        let report = GcReport {
            removed,
            bytes,
            temp_files,
        };
        if report != GcReport::default() {
            tracing::info!(removed, bytes, temp_files, "cluster garbage collected");
        }
        report
    }
}
