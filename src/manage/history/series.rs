//! The arithmetic of the history, free of clocks and stores: a step's
//! point from two samples of the counters, points merged into wider
//! buckets, and the retention of each tier.

use std::collections::HashMap;

use crate::metrics::{CacheTraffic, Totals, TrafficCounts};
use crate::store::{CachePoint, HistoryPoint};

/// Seconds of one hourly point.
pub(super) const HOUR: u64 = 3600;
/// How long each tier is kept: step points a day, hourly points 8 days
/// (a week's chart plus the hour it starts in).
pub(super) const KEEP_STEPS_SECS: u64 = 24 * HOUR;
pub(super) const KEEP_HOURS_SECS: u64 = 8 * 24 * HOUR;

/// The counters as sampled at one instant (all counted since start).
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub totals: Totals,
    pub traffic: TrafficCounts,
    /// Per cache base path: its upstream's answers timed and their total
    /// microseconds.
    pub response_times: HashMap<String, (u64, u64)>,
}

/// What is read as it is now rather than counted (the gauges).
#[derive(Debug, Clone, Default)]
pub(super) struct Gauges {
    /// The global `max_size`.
    pub max_size: Option<u64>,
    pub downloads_in_flight: u64,
    pub disk_used: u64,
    pub pinned: u64,
    pub caches: Vec<CacheGauges>,
}

/// One served cache now.
#[derive(Debug, Clone, Default)]
pub(super) struct CacheGauges {
    pub base_path: String,
    pub upstream_up: Option<bool>,
    pub bytes: u64,
    pub pinned: u64,
    pub max_size: Option<u64>,
}

/// The start of the interval of width `width` holding `t`.
pub(super) fn floor(t: u64, width: u64) -> u64 {
    t - t % width.max(1)
}

/// The point of the interval starting at `t`: the counts between `before`
/// and `after`, the gauges as now.
pub(super) fn delta(t: u64, before: &Sample, after: &Sample, gauges: &Gauges) -> HistoryPoint {
    let caches = gauges
        .caches
        .iter()
        .map(|g| {
            let traffic = |s: &Sample| {
                s.traffic
                    .caches
                    .get(&g.base_path)
                    .copied()
                    .unwrap_or_default()
            };
            let times = |s: &Sample| {
                s.response_times
                    .get(&g.base_path)
                    .copied()
                    .unwrap_or_default()
            };
            let (was, is): (CacheTraffic, CacheTraffic) = (traffic(before), traffic(after));
            let ((timed0, micros0), (timed1, micros1)) = (times(before), times(after));
            CachePoint {
                base_path: g.base_path.clone(),
                requests: is.requests.saturating_sub(was.requests),
                hits: is.hits.saturating_sub(was.hits),
                upstream_up: g.upstream_up,
                upstream_timed: timed1.saturating_sub(timed0),
                upstream_micros: micros1.saturating_sub(micros0),
                bytes: g.bytes,
                pinned: g.pinned,
                max_size: g.max_size,
            }
        })
        .collect();
    let mut pulls: Vec<(String, u64)> = after
        .traffic
        .pulls
        .iter()
        .filter_map(|(repo, n)| {
            let was = before.traffic.pulls.get(repo).copied().unwrap_or(0);
            (*n > was).then(|| (repo.clone(), n - was))
        })
        .collect();
    pulls.sort();
    let (a, b) = (&after.totals, &before.totals);
    HistoryPoint {
        t,
        requests: a.requests.saturating_sub(b.requests),
        hits: a.hits.saturating_sub(b.hits),
        bytes_served: a.bytes_served.saturating_sub(b.bytes_served),
        bytes_upstream: a.bytes_upstream.saturating_sub(b.bytes_upstream),
        downloads_in_flight: gauges.downloads_in_flight,
        disk_used: gauges.disk_used,
        pinned: gauges.pinned,
        caches,
        pulls,
    }
}

/// Adds `later` (a point of the same interval or a later one) to `into`:
/// counts add up, gauges take the later value, downloads the most at once,
/// an upstream is up only if it was up throughout.
pub(super) fn merge(into: &mut HistoryPoint, later: &HistoryPoint) {
    into.requests += later.requests;
    into.hits += later.hits;
    into.bytes_served += later.bytes_served;
    into.bytes_upstream += later.bytes_upstream;
    into.downloads_in_flight = into.downloads_in_flight.max(later.downloads_in_flight);
    into.disk_used = later.disk_used;
    into.pinned = later.pinned;
    for cache in &later.caches {
        match into
            .caches
            .iter_mut()
            .find(|c| c.base_path == cache.base_path)
        {
            Some(c) => {
                c.requests += cache.requests;
                c.hits += cache.hits;
                c.upstream_up = match (c.upstream_up, cache.upstream_up) {
                    (Some(a), Some(b)) => Some(a && b),
                    (a, b) => a.or(b),
                };
                c.upstream_timed += cache.upstream_timed;
                c.upstream_micros += cache.upstream_micros;
                c.bytes = cache.bytes;
                c.pinned = cache.pinned;
                c.max_size = cache.max_size;
            }
            None => into.caches.push(cache.clone()),
        }
    }
    into.caches.sort_by(|a, b| a.base_path.cmp(&b.base_path));
    for (repo, n) in &later.pulls {
        match into.pulls.binary_search_by(|(r, _)| r.cmp(repo)) {
            Ok(i) => into.pulls[i].1 += n,
            Err(i) => into.pulls.insert(i, (repo.clone(), *n)),
        }
    }
}

/// `points` (oldest first) merged into buckets of `width` seconds, each
/// named by its start; a bucket nothing was sampled in is absent (ferry
/// was not running).
pub(super) fn buckets(points: Vec<HistoryPoint>, width: u64) -> Vec<HistoryPoint> {
    let mut out: Vec<HistoryPoint> = Vec::new();
    for mut point in points {
        let start = floor(point.t, width);
        match out.last_mut() {
            Some(last) if last.t == start => merge(last, &point),
            _ => {
                point.t = start;
                out.push(point);
            }
        }
    }
    out
}

/// The oldest step and hourly points to keep at `now`.
pub(super) fn keep_from(now: u64) -> (u64, u64) {
    (
        now.saturating_sub(KEEP_STEPS_SECS),
        floor(now.saturating_sub(KEEP_HOURS_SECS), HOUR),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, hits: u64, served: u64, fetched: u64) -> Sample {
        Sample {
            totals: Totals {
                requests,
                hits,
                bytes_served: served,
                bytes_upstream: fetched,
            },
            ..Sample::default()
        }
    }

    fn point(t: u64, requests: u64) -> HistoryPoint {
        HistoryPoint {
            t,
            requests,
            ..HistoryPoint::default()
        }
    }

    #[test]
    fn a_step_is_the_difference_of_two_samples() {
        let mut before = sample(10, 4, 1000, 600);
        before.traffic.pulls.insert("hub/a".into(), 2);
        let mut after = sample(15, 8, 1500, 650);
        after.traffic.pulls.insert("hub/a".into(), 3);
        after.traffic.pulls.insert("hub/b".into(), 1);
        after.traffic.caches.insert(
            "hub".into(),
            CacheTraffic {
                requests: 5,
                hits: 4,
            },
        );
        after.response_times.insert("hub".into(), (2, 3000));
        let gauges = Gauges {
            downloads_in_flight: 1,
            disk_used: 99,
            caches: vec![CacheGauges {
                base_path: "hub".into(),
                upstream_up: Some(true),
                ..CacheGauges::default()
            }],
            ..Gauges::default()
        };
        let p = delta(60, &before, &after, &gauges);
        assert_eq!(
            (p.t, p.requests, p.hits, p.bytes_served, p.bytes_upstream),
            (60, 5, 4, 500, 50)
        );
        assert_eq!((p.downloads_in_flight, p.disk_used), (1, 99));
        assert_eq!(p.pulls, vec![("hub/a".into(), 1), ("hub/b".into(), 1)]);
        assert_eq!(p.caches[0].requests, 5);
        assert_eq!(
            (p.caches[0].upstream_timed, p.caches[0].upstream_micros),
            (2, 3000)
        );
    }

    #[test]
    fn counters_that_restarted_never_go_negative() {
        let p = delta(
            0,
            &sample(10, 5, 100, 100),
            &sample(2, 1, 10, 0),
            &Gauges::default(),
        );
        assert_eq!((p.requests, p.hits, p.bytes_served), (0, 0, 0));
    }

    #[test]
    fn buckets_add_counts_and_keep_the_latest_gauges() {
        let mut a = point(60, 1);
        a.disk_used = 10;
        a.downloads_in_flight = 3;
        a.pulls = vec![("hub/a".into(), 1)];
        a.caches = vec![CachePoint {
            base_path: "hub".into(),
            requests: 1,
            upstream_up: Some(true),
            ..CachePoint::default()
        }];
        let mut b = point(120, 2);
        b.disk_used = 20;
        b.downloads_in_flight = 1;
        b.pulls = vec![("hub/a".into(), 2), ("hub/0".into(), 1)];
        b.caches = vec![CachePoint {
            base_path: "hub".into(),
            requests: 2,
            upstream_up: Some(false),
            ..CachePoint::default()
        }];
        let c = point(300, 4);
        let out = buckets(vec![a, b, c], 300);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].t, out[0].requests), (0, 3));
        assert_eq!((out[0].disk_used, out[0].downloads_in_flight), (20, 3));
        assert_eq!(out[0].pulls, vec![("hub/0".into(), 1), ("hub/a".into(), 3)]);
        assert_eq!(out[0].caches[0].requests, 3);
        assert_eq!(out[0].caches[0].upstream_up, Some(false));
        assert_eq!((out[1].t, out[1].requests), (300, 4));
    }

    #[test]
    fn an_unknown_upstream_takes_what_was_seen() {
        let mut a = point(0, 0);
        a.caches = vec![CachePoint {
            base_path: "hub".into(),
            ..CachePoint::default()
        }];
        let mut b = a.clone();
        b.caches[0].upstream_up = Some(true);
        merge(&mut a, &b);
        assert_eq!(a.caches[0].upstream_up, Some(true));
    }

    #[test]
    fn retention_keeps_a_day_of_steps_and_eight_days_of_hours() {
        let now = 30 * 24 * HOUR + 1234;
        let (steps, hours) = keep_from(now);
        assert_eq!(steps, now - 24 * HOUR);
        assert_eq!(hours, 22 * 24 * HOUR);
        assert_eq!(keep_from(5), (0, 0));
    }
}
