//! `/pulp/api/v3/status/`: versions, storage, and whether each upstream
//! answers (one state per upstream, shared by its caches; "unknown" until
//! ferry first contacted it).

use serde::Serialize;
use warp::reply::Response as Reply;

use super::http::{ok, ApiError};
use super::Api;
use crate::manage::{ClusterStatus, SharedStateStatus, UpstreamStatus};
use crate::metrics::METRICS;

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ComponentVersion {
    pub component: &'static str,
    pub version: &'static str,
    pub package: &'static str,
}

/// What ferry answers to "which Pulp does this server run", here and in
/// the OpenAPI document's `x-pulp-app-versions` (pulp-glue reads it there
/// and checks each command's needs against it; pulp-cli's `status`
/// compares the two lists). `core` and `container` are the releases whose
/// API ferry reproduces, for the operations its OpenAPI document lists
/// only: pulpcore 3.123.1 with pulp_container 2.30.0 is the Pulp ferry's
/// API was observed from and checked against (its object shapes, task
/// `result`, PRNs). `ferry` says what actually answers.
pub(super) const COMPONENTS: [ComponentVersion; 3] = [
    ComponentVersion {
        component: "core",
        version: "3.123.1",
        package: "pulpcore",
    },
    ComponentVersion {
        component: "container",
        version: "2.30.0",
        package: "pulp-container",
    },
    ComponentVersion {
        component: "ferry",
        version: env!("CARGO_PKG_VERSION"),
        package: "ferry",
    },
];

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Storage {
    /// Bytes of the file system holding the data directory.
    pub total: u64,
    pub used: u64,
    pub free: u64,
    /// Bytes of cached blobs and manifests, and their number.
    pub cached_bytes: u64,
    pub cached_objects: u64,
    /// Bytes that pins keep from quota eviction, each object once.
    pub pinned_bytes: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct StatusResponse {
    pub versions: &'static [ComponentVersion],
    pub storage: Storage,
    pub upstreams: Vec<UpstreamStatus>,
    pub downloads_in_flight: usize,
    /// When ferry started (RFC 3339): the counters of `/metrics` (hits,
    /// misses, bytes served and fetched) count since then.
    pub started_at: String,
    /// In a cluster: whether this member reads the shared definitions
    /// (absent on a single node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<SharedStateStatus>,
    /// In a cluster: the whole cluster's repositories, tags and stored
    /// bytes. Then `storage.cached_*` count the shared bucket, and each
    /// upstream's `repositories` and `tags` every member's (its `blobs` and
    /// `bytes` stay this member's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// Public, but private distributions are listed to the admin only.
pub(super) async fn get(api: &Api, admin: bool) -> Result<Reply, ApiError> {
    let mut stored = api.manager.stored_totals().await?;
    let mut upstreams = api.manager.upstreams(admin).await?;
    let cluster = api.manager.cluster_view().await?;
    if let Some((totals, counts)) = &cluster {
        if let (Some(bytes), Some(objects)) = (totals.stored_bytes, totals.stored_objects) {
            stored.bytes = bytes;
            stored.objects = objects;
        }
        for upstream in &mut upstreams {
            if let Some(c) = counts.get(&upstream.base_path) {
                upstream.repositories = c.repositories;
                upstream.tags = c.tags;
            }
        }
    }
    let data_dir = api.data_dir.clone();
    let fs = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&data_dir).ok())
        .await
        .ok()
        .flatten();
    let (total, free) = fs.map_or((0, 0), |s| {
        (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize)
    });
    ok(&StatusResponse {
        versions: &COMPONENTS,
        storage: Storage {
            total,
            used: total.saturating_sub(free),
            free,
            cached_bytes: stored.bytes,
            cached_objects: stored.objects,
            pinned_bytes: stored.pinned_bytes,
        },
        upstreams,
        downloads_in_flight: stored.downloads_in_flight,
        started_at: humantime::format_rfc3339_seconds(METRICS.started_at()).to_string(),
        shared_state: api.manager.shared_state_status(),
        // Member addresses are for the admin.
        cluster: cluster.filter(|_| admin).map(|(totals, _)| totals),
    })
}
