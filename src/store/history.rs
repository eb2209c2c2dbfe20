//! The dashboard's history (issue 17): what ferry served and fetched, step
//! by step, kept in the metadata database so that a page opened after a
//! restart still shows yesterday's curve. The sampling, bucketing and
//! pruning live in `manage/history/`; here only the stored shape.

use serde::{Deserialize, Serialize};

/// The two resolutions kept: one point per sampling step (for a day) and
/// one per hour (for eight days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryTier {
    Step,
    Hour,
}

impl HistoryTier {
    /// The first byte of the tier's keys.
    pub(crate) fn tag(self) -> u8 {
        match self {
            HistoryTier::Step => 0,
            HistoryTier::Hour => 1,
        }
    }
}

/// What happened during one interval starting at `t` (unix seconds): the
/// counts are deltas over the interval, the gauges what was last seen in
/// it (`downloads_in_flight`: the most at once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub t: u64,
    /// Manifest and blob look-ups, and how many the store answered.
    pub requests: u64,
    pub hits: u64,
    pub bytes_served: u64,
    pub bytes_upstream: u64,
    pub downloads_in_flight: u64,
    /// Bytes stored and bytes pins keep (each object once).
    pub disk_used: u64,
    pub pinned: u64,
    /// Per served cache, sorted by base path.
    pub caches: Vec<CachePoint>,
    /// Pulls per local repository (`<base path>/<name>`) in the interval,
    /// only those pulled.
    pub pulls: Vec<(String, u64)>,
}

/// One cache's share of a [`HistoryPoint`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePoint {
    pub base_path: String,
    /// Its clients' manifest and blob requests, and the store's answers.
    pub requests: u64,
    pub hits: u64,
    /// Whether its upstream answered through the interval: `None` while
    /// not contacted since ferry started, `Some(false)` if seen down.
    pub upstream_up: Option<bool>,
    /// Upstream requests timed in the interval and their total time to
    /// response headers, in microseconds.
    pub upstream_timed: u64,
    pub upstream_micros: u64,
    /// Bytes the cache holds and its pinned bytes, last seen.
    pub bytes: u64,
    pub pinned: u64,
    pub max_size: Option<u64>,
}
