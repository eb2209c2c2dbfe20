//! The history as the API shows it (`GET status/history/?span=`).

use serde::Serialize;

use crate::store::{CachePoint, HistoryPoint};

/// Over which time the history is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    Hour,
    Day,
    Week,
}

impl Span {
    pub(crate) fn parse(text: &str) -> Option<Span> {
        match text {
            "hour" => Some(Span::Hour),
            "day" => Some(Span::Day),
            "week" => Some(Span::Week),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Span::Hour => "hour",
            Span::Day => "day",
            Span::Week => "week",
        }
    }

    pub(super) fn secs(self) -> u64 {
        match self {
            Span::Hour => 3600,
            Span::Day => 24 * 3600,
            Span::Week => 7 * 24 * 3600,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryResponse {
    /// `hour`, `day` or `week`.
    pub span: &'static str,
    /// Seconds each point covers: the sampling step (`history_step_secs`,
    /// 60 by default) for an hour, 5 minutes (or the step if longer) for a
    /// day, an hour for a week.
    pub step_secs: u64,
    /// Unix seconds when this answer was made; the points cover
    /// `now - span` to `now`, the newest one up to this instant.
    pub now: u64,
    /// When ferry started (unix seconds): the `/metrics` counters count
    /// from there, the history from before too.
    pub started_at: u64,
    /// The global `max_size` the points' `disk_used` counts against (null:
    /// no limit; each cache's own is in `caches`).
    pub max_size: Option<u64>,
    pub totals: HistoryTotals,
    /// Oldest first; an interval with no point is one ferry was not running.
    pub points: Vec<PointView>,
    /// Each served cache the caller may see, by base path.
    pub caches: Vec<CacheHistory>,
    pub top_repositories: TopRepositories,
}

/// Sums over the span.
#[derive(Serialize, utoipa::ToSchema, Default)]
pub(crate) struct HistoryTotals {
    /// Manifest and blob look-ups (`ferry_cache_requests_total`), and how
    /// many the store answered (`result="hit"`).
    pub requests: u64,
    pub hits: u64,
    /// `hits / requests`; null without requests.
    pub hit_ratio: Option<f64>,
    /// Bytes sent to clients (`ferry_served_bytes_total`) and fetched
    /// from upstreams (`ferry_upstream_fetched_bytes_total`).
    pub bytes_served: u64,
    pub bytes_upstream: u64,
    /// The upstream traffic the cache saved: served minus fetched (0 when
    /// more was fetched, e.g. by a prefetch).
    pub bytes_saved: u64,
}

/// One interval of the whole ferry.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PointView {
    /// Start of the interval (unix seconds).
    pub t: u64,
    pub requests: u64,
    pub hits: u64,
    pub bytes_served: u64,
    pub bytes_upstream: u64,
    pub bytes_saved: u64,
    /// The most blob downloads under way at once, as sampled.
    pub downloads_in_flight: u64,
    /// Bytes stored and bytes pins keep, at the interval's end.
    pub disk_used: u64,
    pub pinned: u64,
}

/// One cache over the span.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CacheHistory {
    pub base_path: String,
    /// Its own `max_size` (null: only the global one applies), and what it
    /// holds and pins now.
    pub max_size: Option<u64>,
    pub bytes: u64,
    pub pinned_bytes: u64,
    pub points: Vec<CachePointView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CachePointView {
    pub t: u64,
    /// Its clients' manifest and blob requests answered (`/v2/`: a
    /// manifest GET or HEAD, a blob GET), and how many from the store.
    pub requests: u64,
    pub hits: u64,
    /// Whether the upstream answered throughout the interval; null when
    /// ferry had not contacted it.
    pub upstream_up: Option<bool>,
    /// Mean time to the upstream's response headers (ms), null when none
    /// was asked; shared by the caches of one upstream.
    pub upstream_ms: Option<f64>,
    pub bytes: u64,
    pub pinned: u64,
}

#[derive(Serialize, utoipa::ToSchema, Default)]
pub(crate) struct TopRepositories {
    /// Pulls over the span (a manifest GET by tag, or of an index by
    /// digest), most first, at most 10.
    pub by_pulls: Vec<RepositoryPulls>,
    /// Bytes held now, most first, at most 10.
    pub by_size: Vec<RepositorySize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RepositoryPulls {
    pub name: String,
    pub pulls: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RepositorySize {
    pub name: String,
    pub bytes: u64,
}

impl From<&HistoryPoint> for PointView {
    fn from(p: &HistoryPoint) -> Self {
        PointView {
            t: p.t,
            requests: p.requests,
            hits: p.hits,
            bytes_served: p.bytes_served,
            bytes_upstream: p.bytes_upstream,
            bytes_saved: p.bytes_served.saturating_sub(p.bytes_upstream),
            downloads_in_flight: p.downloads_in_flight,
            disk_used: p.disk_used,
            pinned: p.pinned,
        }
    }
}

impl CachePointView {
    pub(super) fn of(t: u64, c: &CachePoint) -> Self {
        CachePointView {
            t,
            requests: c.requests,
            hits: c.hits,
            upstream_up: c.upstream_up,
            upstream_ms: (c.upstream_timed > 0)
                .then(|| c.upstream_micros as f64 / c.upstream_timed as f64 / 1000.0),
            bytes: c.bytes,
            pinned: c.pinned,
        }
    }
}

impl HistoryTotals {
    pub(super) fn of(points: &[HistoryPoint]) -> Self {
        let mut t = HistoryTotals::default();
        for p in points {
            t.requests += p.requests;
            t.hits += p.hits;
            t.bytes_served += p.bytes_served;
            t.bytes_upstream += p.bytes_upstream;
        }
        t.hit_ratio = (t.requests > 0).then(|| t.hits as f64 / t.requests as f64);
        t.bytes_saved = t.bytes_served.saturating_sub(t.bytes_upstream);
        t
    }
}
