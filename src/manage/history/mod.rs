//! The dashboard's history (issue 17): requests, hits, bytes served and
//! fetched, downloads, disk and each cache's upstream, over the last hour,
//! day and week, kept across restarts.
//!
//! Nothing is added to the hot path but a counter per cache and per
//! repository (`metrics/traffic.rs`, counted in `registry/`) and a timing
//! per upstream answer (`upstream/health.rs`). A background task samples
//! the counters every step and stores the difference as one point, with
//! its hour's running total, in one batch (`store/meta/history.rs`): a day
//! of step points and eight days of hourly ones. The counters start at
//! zero at every start; the stored differences stay, so the curve goes on.
//! A query adds what was counted since the last step, so a pull shows at
//! once and the sums equal `/metrics`.

mod series;
mod view;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use series::{buckets, delta, floor, keep_from, merge, CacheGauges, Gauges, Sample, HOUR};

use super::ManageError;
use crate::cache::Caches;
use crate::metrics::METRICS;
use crate::store::{unix_now, HistoryPoint, HistoryTier, MetaStore};
use crate::upstream::Reachability;
use crate::visibility::Viewer;

pub(crate) use view::{
    CacheHistory, CachePointView, HistoryResponse, HistoryTotals, PointView, RepositoryPulls,
    RepositorySize, Span, TopRepositories,
};

/// Repositories listed in each of the top lists.
const TOP: usize = 10;

pub(crate) struct History {
    step: u64,
    state: Mutex<State>,
    /// One recording at a time: the last one (at shutdown) may come while
    /// the sampling task records a step.
    recording: tokio::sync::Mutex<()>,
}

/// Where sampling stands.
#[derive(Default)]
struct State {
    /// The counters at the last step (zero before the first: they count
    /// from ferry's start).
    last: Sample,
    /// The start of the step under way.
    step_t: u64,
    /// The running total of the hour under way, as stored.
    hour: HistoryPoint,
    /// A point stored for the step under way by the run before (a restart
    /// within one step): added to this run's point for it.
    earlier: Option<HistoryPoint>,
}

impl History {
    /// Continues the stored hour under way (blocking: call at start-up).
    pub(crate) fn open(meta: &MetaStore, step_secs: u64) -> Result<History, ManageError> {
        let step = step_secs.clamp(1, HOUR);
        let now = unix_now();
        let step_t = floor(now, step);
        let hour_t = floor(now, HOUR);
        let db = meta.blocking();
        let hour = db
            .history(HistoryTier::Hour, hour_t)?
            .into_iter()
            .find(|p| p.t == hour_t)
            .unwrap_or(HistoryPoint {
                t: hour_t,
                ..HistoryPoint::default()
            });
        let earlier = db
            .history(HistoryTier::Step, step_t)?
            .into_iter()
            .find(|p| p.t == step_t);
        Ok(History {
            step,
            state: Mutex::new(State {
                last: Sample::default(),
                step_t,
                hour,
                earlier,
            }),
            recording: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The step under way and its hour as they would be stored now, with
    /// the counters at `sample`.
    fn pending(&self, sample: &Sample, gauges: &Gauges) -> (HistoryPoint, HistoryPoint) {
        let state = self.lock();
        let counted = delta(state.step_t, &state.last, sample, gauges);
        let hour_t = floor(counted.t, HOUR);
        let mut hour = if state.hour.t == hour_t {
            state.hour.clone()
        } else {
            HistoryPoint {
                t: hour_t,
                ..HistoryPoint::default()
            }
        };
        // The stored hour already holds what an earlier run stored of this
        // step: only the new counts go into it.
        merge(&mut hour, &counted);
        let point = match &state.earlier {
            Some(earlier) => {
                let mut both = earlier.clone();
                merge(&mut both, &counted);
                both
            }
            None => counted,
        };
        (point, hour)
    }

    /// Samples every step until ferry stops (spawned by the server).
    pub(crate) async fn run(self: Arc<Self>, caches: Arc<Caches>) {
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let next = floor(now.as_secs(), self.step) + self.step;
            let wait = Duration::from_secs(next).saturating_sub(now);
            tokio::time::sleep(wait).await;
            if let Err(e) = self.record(&caches, next).await {
                tracing::warn!(error = %e, "could not record the history's step");
            }
        }
    }

    /// Stores the step under way as it is now, ending it at `end` (a step
    /// boundary, or now when ferry stops).
    pub(crate) async fn record(&self, caches: &Caches, end: u64) -> Result<(), ManageError> {
        let _one_at_a_time = self.recording.lock().await;
        let sample = sample(caches);
        let gauges = gauges(caches).await?;
        let (point, hour) = self.pending(&sample, &gauges);
        let (keep_steps, keep_hours) = keep_from(end);
        caches
            .storage()
            .meta()
            .record_history(point.clone(), hour.clone(), keep_steps, keep_hours)
            .await?;
        // Only once stored: until then a query adds these counts itself.
        let mut state = self.lock();
        state.last = sample;
        state.hour = hour;
        state.step_t = floor(end, self.step);
        // Stopped mid-step: a restart within it adds to this point.
        state.earlier = (state.step_t == point.t).then_some(point);
        Ok(())
    }

    /// The history over `span`, as `viewer` may see it.
    pub(crate) async fn view(
        &self,
        caches: &Caches,
        span: Span,
        viewer: &Viewer,
    ) -> Result<HistoryResponse, ManageError> {
        let now = unix_now();
        let from = now.saturating_sub(span.secs());
        let sample = sample(caches);
        let gauges = gauges(caches).await?;
        let (live, hour) = self.pending(&sample, &gauges);
        let meta = caches.storage().meta();
        let (mut points, width) = match span {
            Span::Week => {
                let mut stored = meta.history(HistoryTier::Hour, floor(from, HOUR)).await?;
                stored.retain(|p| p.t < hour.t);
                stored.push(hour);
                (stored, HOUR)
            }
            Span::Hour | Span::Day => {
                let mut stored = meta
                    .history(HistoryTier::Step, floor(from, self.step))
                    .await?;
                stored.retain(|p| p.t < live.t);
                stored.push(live);
                let width = if span == Span::Hour {
                    self.step
                } else {
                    self.step.max(300)
                };
                (stored, width)
            }
        };
        points = buckets(points, width);
        let by_size = top_by_size(caches, viewer).await?;
        Ok(shape(span, width, now, points, &gauges, viewer, by_size))
    }
}

/// The answer from the bucketed points, private caches and repositories
/// left out for a viewer who may not see them.
fn shape(
    span: Span,
    width: u64,
    now: u64,
    points: Vec<HistoryPoint>,
    gauges: &Gauges,
    viewer: &Viewer,
    by_size: Vec<RepositorySize>,
) -> HistoryResponse {
    let caches = gauges
        .caches
        .iter()
        .filter(|g| viewer.sees_cache(&g.base_path))
        .map(|g| CacheHistory {
            base_path: g.base_path.clone(),
            max_size: g.max_size,
            bytes: g.bytes,
            pinned_bytes: g.pinned,
            points: points
                .iter()
                .filter_map(|p| {
                    let c = p.caches.iter().find(|c| c.base_path == g.base_path)?;
                    Some(CachePointView::of(p.t, c))
                })
                .collect(),
        })
        .collect();
    let mut pulls: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (repo, n) in points.iter().flat_map(|p| &p.pulls) {
        if viewer.sees_repository(repo) {
            *pulls.entry(repo.as_str()).or_default() += n;
        }
    }
    let mut by_pulls: Vec<RepositoryPulls> = pulls
        .into_iter()
        .map(|(name, pulls)| RepositoryPulls {
            name: name.to_string(),
            pulls,
        })
        .collect();
    by_pulls.sort_by(|a, b| b.pulls.cmp(&a.pulls).then_with(|| a.name.cmp(&b.name)));
    by_pulls.truncate(TOP);
    HistoryResponse {
        span: span.as_str(),
        step_secs: width,
        now,
        started_at: METRICS
            .started_at()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        max_size: gauges.max_size,
        totals: HistoryTotals::of(&points),
        points: points.iter().map(PointView::from).collect(),
        caches,
        top_repositories: TopRepositories { by_pulls, by_size },
    }
}

/// The counters now.
fn sample(caches: &Caches) -> Sample {
    Sample {
        totals: METRICS.totals(),
        traffic: METRICS.traffic(),
        response_times: caches
            .list()
            .iter()
            .map(|c| (c.base_path().to_string(), c.upstream_response_times()))
            .collect(),
    }
}

/// The gauges now (reads the store: on the blocking pool).
async fn gauges(caches: &Caches) -> Result<Gauges, ManageError> {
    let storage = caches.storage();
    let (disk_used, _) = storage.stored_totals().await?;
    let pinned = storage.pinned_bytes().await?;
    let sizes = storage.cache_sizes();
    let mut list: Vec<CacheGauges> = caches
        .list()
        .iter()
        .map(|c| {
            let base_path = c.base_path().to_string();
            let size = sizes.iter().find(|s| s.cache == base_path);
            CacheGauges {
                upstream_up: match c.upstream_reachability().0 {
                    Reachability::Unknown => None,
                    Reachability::Down => Some(false),
                    Reachability::Reachable | Reachability::RateLimited => Some(true),
                },
                bytes: size.map_or(0, |s| s.bytes),
                max_size: c.config().policy().max_size,
                pinned: pinned.per_cache.get(&base_path).copied().unwrap_or(0),
                base_path,
            }
        })
        .collect();
    list.sort_by(|a, b| a.base_path.cmp(&b.base_path));
    Ok(Gauges {
        max_size: storage.max_size(),
        downloads_in_flight: storage.downloads_in_flight() as u64,
        disk_used,
        pinned: pinned.total,
        caches: list,
    })
}

/// The repositories holding the most bytes now, as `viewer` may see them.
async fn top_by_size(caches: &Caches, viewer: &Viewer) -> Result<Vec<RepositorySize>, ManageError> {
    let mut repos: Vec<RepositorySize> = caches
        .storage()
        .inventory()
        .await?
        .repos
        .into_iter()
        .filter(|(name, _, _)| viewer.sees_repository(name))
        .map(|(name, _, summary)| RepositorySize {
            name,
            bytes: summary.bytes,
        })
        .collect();
    repos.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    repos.truncate(TOP);
    Ok(repos)
}
