//! The management layer: the queries and commands the management API (and
//! the dashboard behind it) needs, one file per concern. Remotes and
//! distributions are validated, persisted in the metadata store, and applied
//! to the running caches at once; caches from the config file are mirrored
//! here (marked as such), so the API lists every cache ferry serves.
//!
//! `api/` reaches the caches and the stores only through this module: what
//! it returns are the plain records and summaries below, never a store or a
//! cache.

mod adopt;
mod bundles;
mod bundles_import;
mod caches;
mod cluster_view;
mod content;
mod distributions;
mod history;
mod pins;
mod prefetch;
mod remotes;
mod repositories;
mod shared;
mod status;
mod tasks;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::cache::{CacheError, Caches, Cause};
use crate::config::CacheConfig;
use crate::store::{MetaStore, StoreError};
use crate::visibility::Viewer;

pub(crate) use crate::cache::{RepoContent, RepoSummary};
pub(crate) use crate::store::{
    Counts, DistributionRecord, ImportMark, ManifestRecord, Pins, RemoteRecord, RepoRecord,
    TagRecord,
};
pub(crate) use bundles::GivenManifest;
pub(crate) use bundles_import::{parse_map, ImportRequest, Upload};
pub(crate) use cluster_view::ClusterStatus;
pub(crate) use content::ManifestDetails;
pub(crate) use history::{History, HistoryResponse, Span};
pub(crate) use pins::{PinState, PinTarget};
pub(crate) use prefetch::{Options as PrefetchOptions, PrefetchReport};
pub(crate) use shared::SharedStateStatus;
pub(crate) use status::UpstreamStatus;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ManageError {
    /// Field → messages, in the shape Pulp (Django REST framework) answers.
    #[error("invalid request")]
    Invalid(Value),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The cluster's shared state did not answer: nothing was changed.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        ManageError::Cache(e.into())
    }
}

/// Whose fault a failed query or command is, for the status it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// What was asked for does not exist.
    Client,
    /// The upstream did not answer in time.
    UpstreamNoAnswer,
    /// The upstream answered with an error.
    Upstream,
    /// ferry itself failed.
    Ferry,
}

impl ManageError {
    /// Whose fault it is (a refused request is the client's).
    pub(crate) fn failure(&self) -> Failure {
        let e = match self {
            ManageError::Cache(e) => e,
            ManageError::Unavailable(_) => return Failure::Ferry,
            _ => return Failure::Client,
        };
        match (e.cause(), e) {
            (Cause::Client, _) => Failure::Client,
            (Cause::Upstream, CacheError::Upstream(u)) if u.is_no_answer() => {
                Failure::UpstreamNoAnswer
            }
            (Cause::Upstream, _) => Failure::Upstream,
            (Cause::Ferry, _) => Failure::Ferry,
        }
    }
}

fn invalid(field: &str, message: &str) -> ManageError {
    ManageError::Invalid(json!({ field: [message] }))
}

pub(crate) struct Manager {
    caches: Arc<Caches>,
    meta: MetaStore,
    global_tag_ttl: u64,
    /// The config file's caches, applied as written (the stored mirror
    /// cannot hold file paths such as `ca_file`).
    configured: std::sync::Mutex<Vec<CacheConfig>>,
    /// Serializes changes, so validation and the write see the same state.
    changes: tokio::sync::Mutex<()>,
    /// Background prefetch tasks, running and recently finished.
    prefetches: prefetch::Prefetches,
    /// The dashboard's history, once the server started sampling it.
    history: std::sync::OnceLock<Arc<History>>,
    /// What this member read of the cluster's shared definitions.
    follower: shared::Follower,
    /// The other members' published views, as last read.
    views: cluster_view::Views,
    /// Tombstones read and tags adopted from the other members.
    adopter: adopt::Adopter,
}

impl Manager {
    pub(crate) fn new(caches: Arc<Caches>, global_tag_ttl: u64) -> Manager {
        let meta = caches.storage().meta().clone();
        Manager {
            caches,
            meta,
            global_tag_ttl,
            configured: std::sync::Mutex::new(Vec::new()),
            changes: tokio::sync::Mutex::new(()),
            prefetches: prefetch::Prefetches::default(),
            history: std::sync::OnceLock::new(),
            follower: shared::Follower::default(),
            views: cluster_view::Views::default(),
            adopter: adopt::Adopter::default(),
        }
    }

    /// Opens the stored history (blocking: call at start-up) and hands it
    /// back for the server to sample (`History::run`) and to record a last
    /// time when it stops.
    pub(crate) fn open_history(&self, step_secs: u64) -> Result<Arc<History>, ManageError> {
        let history = Arc::new(History::open(&self.meta, step_secs)?);
        Ok(self.history.get_or_init(|| history).clone())
    }

    /// The history over `span` as `viewer` may see it (not found where no
    /// server samples it).
    pub(crate) async fn history(
        &self,
        span: Span,
        viewer: &Viewer,
    ) -> Result<HistoryResponse, ManageError> {
        let history = self.history.get().ok_or(ManageError::NotFound)?;
        history.view(&self.caches, span, viewer).await
    }

    /// The history opened by `open_history`, to sample.
    pub(crate) fn history_sampler(&self) -> Option<Arc<History>> {
        self.history.get().cloned()
    }

    /// Records the step under way (when ferry stops), so a restart within
    /// it loses nothing.
    pub(crate) async fn record_history_now(&self) -> Result<(), ManageError> {
        let Some(history) = self.history.get() else {
            return Ok(());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        history.record(&self.caches, now).await
    }

    /// The admin, or what anyone else may see of the caches served now.
    pub(crate) fn viewer(&self, admin: bool) -> Viewer {
        Viewer::of(admin, &self.caches)
    }

    /// Every change is on disk before the API answers: an acknowledged
    /// change must survive a crash.
    async fn durable(&self) -> Result<(), ManageError> {
        Ok(self.meta.flush_async().await?)
    }
}

fn refuse_config_defined(from_config: bool) -> Result<(), ManageError> {
    if from_config {
        return Err(ManageError::Conflict(
            "defined in ferry's config file: change it there and restart ferry".into(),
        ));
    }
    Ok(())
}
