//! Prometheus metrics, every name prefixed `ferry_`. One process-wide set:
//! counting is a few atomic adds on the request path.

mod traffic;

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub(crate) use traffic::{CacheTraffic, State as TrafficCounts};

type Labels = Vec<(&'static str, String)>;

/// The counters the dashboard's history samples (see `manage/history/`),
/// all counted since ferry started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Manifest and blob look-ups (`ferry_cache_requests_total`), and hits.
    pub requests: u64,
    pub hits: u64,
    pub bytes_served: u64,
    pub bytes_upstream: u64,
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    cache: Family<Labels, Counter>,
    blob_ranges: Family<Labels, Counter>,
    bytes_served: Counter,
    upstream_bytes: Counter,
    upstream_errors: Family<Labels, Counter>,
    stale_served: Family<Labels, Counter>,
    complete_images: Family<Labels, Counter>,
    evictions: Counter,
    cache_evictions: Family<Labels, Counter>,
    cache_bytes: Family<Labels, Gauge>,
    pinned_bytes: Family<Labels, Gauge>,
    cache_max_bytes: Family<Labels, Gauge>,
    gc_runs: Counter,
    login_failures: Family<Labels, Counter>,
    connections_refused: Counter,
    downloads_in_flight: Gauge,
    store_bytes: Gauge,
    store_objects: Gauge,
    upstream_ratelimit_limit: Family<Labels, Gauge>,
    upstream_ratelimit_remaining: Family<Labels, Gauge>,
    /// Client requests per cache and pulls per repository (not exported).
    traffic: traffic::Traffic,
    cluster_members_alive: Gauge,
    cluster_forwarded: Family<Labels, Counter>,
    local_cache_reads: Family<Labels, Counter>,
    local_cache_bytes: Gauge,
    /// When the counters started counting (they reset at every start).
    started: SystemTime,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferry");
        let m = Metrics {
            requests: Family::default(),
            cache: Family::default(),
            blob_ranges: Family::default(),
            bytes_served: Counter::default(),
            upstream_bytes: Counter::default(),
            upstream_errors: Family::default(),
            stale_served: Family::default(),
            complete_images: Family::default(),
            evictions: Counter::default(),
            cache_evictions: Family::default(),
            cache_bytes: Family::default(),
            pinned_bytes: Family::default(),
            cache_max_bytes: Family::default(),
            gc_runs: Counter::default(),
            login_failures: Family::default(),
            connections_refused: Counter::default(),
            downloads_in_flight: Gauge::default(),
            store_bytes: Gauge::default(),
            store_objects: Gauge::default(),
            upstream_ratelimit_limit: Family::default(),
            upstream_ratelimit_remaining: Family::default(),
            traffic: traffic::Traffic::default(),
            cluster_members_alive: Gauge::default(),
            cluster_forwarded: Family::default(),
            local_cache_reads: Family::default(),
            local_cache_bytes: Gauge::default(),
            started: SystemTime::now(),
            registry: Registry::default(),
        };
        let start_time = Gauge::<i64>::default();
        start_time.set(
            m.started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        registry.register(
            "start_time_seconds",
            "When ferry started, in seconds since the epoch: the counters count since then",
            start_time,
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "cache_requests",
            "Manifest and blob look-ups by result (hit, miss)",
            m.cache.clone(),
        );
        registry.register(
            "blob_range_requests",
            "Blob requests with a Range header by answer (single, multipart, whole, unsatisfiable)",
            m.blob_ranges.clone(),
        );
        registry.register(
            "served_bytes",
            "Bytes of manifests and blobs sent to clients",
            m.bytes_served.clone(),
        );
        registry.register(
            "upstream_fetched_bytes",
            "Bytes of manifests and blobs fetched upstream",
            m.upstream_bytes.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed upstream requests by kind",
            m.upstream_errors.clone(),
        );
        registry.register(
            "cluster_members_alive",
            "Members of the cluster (this node included) that answered their last probe",
            m.cluster_members_alive.clone(),
        );
        registry.register(
            "cluster_forwarded",
            "Requests forwarded to the cluster member responsible, by kind (blob, manifest, head) and outcome (ok, error, member_down)",
            m.cluster_forwarded.clone(),
        );
        registry.register(
            "local_cache_reads",
            "Blob opens with [storage] local_cache, by outcome (hit: read from this node's disk; miss: from the object store)",
            m.local_cache_reads.clone(),
        );
        registry.register(
            "local_cache_bytes",
            "Bytes held by the local read cache ([storage] local_cache)",
            m.local_cache_bytes.clone(),
        );
        registry.register(
            "stale_served",
            "Cached tags served unconfirmed although the upstream failed or refused, by cache and the stale_if case that allowed it (error, unauthorized, not_found)",
            m.stale_served.clone(),
        );
        registry.register(
            "complete_images",
            "Indexes whose chosen platforms were fetched in the background (complete_images), by cache and outcome (completed, failed, skipped)",
            m.complete_images.clone(),
        );
        registry.register(
            "evictions",
            "Images evicted to stay within the quota",
            m.evictions.clone(),
        );
        registry.register(
            "cache_evictions",
            "Images evicted by cache (within its own max_size or the global one)",
            m.cache_evictions.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes each cache holds (content shared by caches counts in each)",
            m.cache_bytes.clone(),
        );
        registry.register(
            "pinned_bytes",
            "Bytes each cache's pins keep from quota eviction",
            m.pinned_bytes.clone(),
        );
        registry.register(
            "cache_max_bytes",
            "Each cache's own max_size, for the caches that have one",
            m.cache_max_bytes.clone(),
        );
        registry.register(
            "gc_runs",
            "Garbage collections completed",
            m.gc_runs.clone(),
        );
        registry.register(
            "login_failures",
            "Refused admin logins by where (token, registry, api, ...) and why (wrong password, throttled)",
            m.login_failures.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused because max_connections were open",
            m.connections_refused.clone(),
        );
        registry.register(
            "downloads_in_flight",
            "Blob downloads under way",
            m.downloads_in_flight.clone(),
        );
        registry.register(
            "store_bytes",
            "Bytes of cached blobs and manifests",
            m.store_bytes.clone(),
        );
        registry.register(
            "store_objects",
            "Number of cached blobs and manifests",
            m.store_objects.clone(),
        );
        registry.register(
            "upstream_ratelimit_limit",
            "The upstream's rate limit per window, as its RateLimit headers last said, by cache",
            m.upstream_ratelimit_limit.clone(),
        );
        registry.register(
            "upstream_ratelimit_remaining",
            "Requests left in the upstream's rate-limit window, as its RateLimit headers last said, by cache",
            m.upstream_ratelimit_remaining.clone(),
        );
        Metrics { registry, ..m }
    }

    /// When the counters started counting (ferry's start).
    pub(crate) fn started_at(&self) -> SystemTime {
        self.started
    }

    /// The counters the history samples.
    pub(crate) fn totals(&self) -> Totals {
        let count = |kind: &str, result: &str| {
            self.cache
                .get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("result", result.to_string()),
                ])
                .get()
        };
        let hits = count("manifest", "hit") + count("blob", "hit");
        Totals {
            requests: hits + count("manifest", "miss") + count("blob", "miss"),
            hits,
            bytes_served: self.bytes_served.get(),
            bytes_upstream: self.upstream_bytes.get(),
        }
    }

    /// A client's manifest or blob request answered for `cache` (for the
    /// history: per cache, and per repository when `pull` names one).
    pub(crate) fn cache_request(&self, cache: &str, hit: bool, pull: Option<&str>) {
        self.traffic.request(cache, hit, pull);
    }

    /// Per cache and per repository, everything counted since start.
    pub(crate) fn traffic(&self) -> TrafficCounts {
        self.traffic.snapshot()
    }

    pub(crate) fn request(&self, route: &'static str, method: &str, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// `kind`: manifest or blob; `hit`: answered from the store.
    pub(crate) fn cache(&self, kind: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// A blob request with a Range header, by how it was answered.
    pub(crate) fn blob_range(&self, answer: &'static str) {
        self.blob_ranges
            .get_or_create(&vec![("answer", answer.to_string())])
            .inc();
    }

    pub(crate) fn served(&self, bytes: u64) {
        self.bytes_served.inc_by(bytes);
    }

    pub(crate) fn fetched(&self, bytes: u64) {
        self.upstream_bytes.inc_by(bytes);
    }

    pub(crate) fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    /// A cached tag served although its revalidation failed: `reason` is
    /// the `stale_if` case that allowed it.
    /// Members alive now, this node included (cluster only).
    pub(crate) fn cluster_members_alive(&self, alive: usize) {
        self.cluster_members_alive.set(alive as i64);
    }

    /// One request to another member: what for and how it went.
    pub(crate) fn cluster_forwarded(&self, kind: &'static str, outcome: &'static str) {
        self.cluster_forwarded
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// A blob open with a local read cache: from this node's disk or not.
    pub(crate) fn local_cache_read(&self, hit: bool) {
        let outcome = if hit { "hit" } else { "miss" };
        self.local_cache_reads
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    pub(crate) fn set_local_cache_bytes(&self, bytes: u64) {
        self.local_cache_bytes.set(bytes as i64);
    }

    pub(crate) fn stale_served(&self, cache: &str, reason: &'static str) {
        self.stale_served
            .get_or_create(&vec![
                ("cache", cache.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    /// An index completed in the background, or not (`complete_images`).
    pub(crate) fn complete_images(&self, cache: &str, outcome: &'static str) {
        self.complete_images
            .get_or_create(&vec![
                ("cache", cache.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// What an upstream's RateLimit headers said, for one cache.
    pub(crate) fn upstream_ratelimit(
        &self,
        cache: &str,
        limit: Option<u64>,
        remaining: Option<u64>,
    ) {
        let labels = vec![("cache", cache.to_string())];
        if let Some(limit) = limit {
            self.upstream_ratelimit_limit
                .get_or_create(&labels)
                .set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Some(remaining) = remaining {
            self.upstream_ratelimit_remaining
                .get_or_create(&labels)
                .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
    }

    /// A cache no longer served: its gauges go (its counters stay, as
    /// counters do: a scrape must never see one run backwards).
    pub(crate) fn forget_cache(&self, cache: &str) {
        let labels = vec![("cache", cache.to_string())];
        self.upstream_ratelimit_limit.remove(&labels);
        self.upstream_ratelimit_remaining.remove(&labels);
    }

    /// A refused admin login: `reason` is `wrong_password` or `throttled`.
    pub(crate) fn login_failed(&self, place: &'static str, reason: &'static str) {
        self.login_failures
            .get_or_create(&vec![
                ("place", place.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// An image of `cache` was evicted.
    pub(crate) fn evicted(&self, cache: &str) {
        self.evictions.inc();
        self.cache_evictions
            .get_or_create(&vec![("cache", cache.to_string())])
            .inc();
    }

    /// Each cache's bytes and own max_size (cache, bytes, max), sampled
    /// before a render; caches no longer listed disappear.
    pub(crate) fn set_cache_sizes<'a>(
        &self,
        sizes: impl IntoIterator<Item = (&'a str, u64, Option<u64>)>,
    ) {
        self.cache_bytes.clear();
        self.cache_max_bytes.clear();
        for (cache, bytes, max) in sizes {
            let labels = vec![("cache", cache.to_string())];
            self.cache_bytes
                .get_or_create(&labels)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            if let Some(max) = max {
                self.cache_max_bytes
                    .get_or_create(&labels)
                    .set(i64::try_from(max).unwrap_or(i64::MAX));
            }
        }
    }

    /// Each cache's pinned bytes, sampled before a render.
    pub(crate) fn set_pinned_bytes(&self, per_cache: &std::collections::HashMap<String, u64>) {
        self.pinned_bytes.clear();
        for (cache, bytes) in per_cache {
            self.pinned_bytes
                .get_or_create(&vec![("cache", cache.clone())])
                .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn collected(&self) {
        self.gc_runs.inc();
    }

    /// The text exposition, with the gauges sampled now.
    pub(crate) fn render(&self, downloads: usize, store_bytes: u64, store_objects: u64) -> String {
        self.downloads_in_flight.set(downloads as i64);
        self.store_bytes.set(store_bytes as i64);
        self.store_objects.set(store_objects as i64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// A low-cardinality name for a request path.
pub(crate) fn route_label(path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v2/") {
        return if rest.is_empty() {
            "v2"
        } else if rest == "_catalog" {
            "catalog"
        } else if rest.contains("/manifests/") {
            "manifests"
        } else if rest.contains("/blobs/") {
            "blobs"
        } else if rest.ends_with("/tags/list") {
            "tags"
        } else if rest.contains("/referrers/") {
            "referrers"
        } else {
            "other"
        };
    }
    match path {
        p if p.starts_with("/pulp/api/") => "api",
        "/token" => "token",
        "/metrics" => "metrics",
        "/healthz" | "/readyz" => "health",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_names() {
        METRICS.cache("blob", true);
        METRICS.request(route_label("/v2/a/blobs/sha256:x"), "GET", 200);
        let text = METRICS.render(1, 10, 2);
        assert!(
            text.contains("ferry_cache_requests_total{kind=\"blob\",result=\"hit\"}"),
            "{text}"
        );
        assert!(text.contains("route=\"blobs\""));
        assert!(text.contains("ferry_store_bytes 10"));
        assert!(text.contains("ferry_start_time_seconds 1"), "{text}");
    }
}
