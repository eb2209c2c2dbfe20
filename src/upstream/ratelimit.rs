//! The upstream's own rate budget, as its answers report it: Docker Hub's
//! `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`,
//! and the IETF drafts' `RateLimit-Reset`, `RateLimit` and
//! `RateLimit-Policy`. When the remaining count reaches 0, cached tags are
//! served without revalidation until the budget is rechecked, instead of
//! each revalidation failing on its own.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::metrics::METRICS;

/// When only the window's length is known (Docker Hub: a sliding window of
/// 6 hours whose pulls age out one by one), the budget is rechecked this
/// often: the next revalidation, a manifest `HEAD` that Docker Hub does not
/// count against the limit, brings fresh headers.
const RECHECK: Duration = Duration::from_secs(60);
/// The longest a reset time or `Retry-After` may keep the budget spent.
const MAX_RECHECK: Duration = Duration::from_secs(3600);

/// What one answer says of the budget.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// The window's length (`w`).
    window: Option<Duration>,
    /// Until the budget resets (`RateLimit-Reset`, `t`).
    reset: Option<Duration>,
}

impl Reported {
    /// The budget headers of an answer, if it has any.
    pub(super) fn from_headers(headers: &HeaderMap) -> Option<Reported> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut seen = Reported::default();
        if let Some(value) = get("ratelimit-limit") {
            let (count, params) = count_and_params(value);
            seen.limit = count;
            seen.window = param(&params, "w").map(Duration::from_secs);
        }
        if let Some(value) = get("ratelimit-remaining") {
            let (count, params) = count_and_params(value);
            seen.remaining = count;
            seen.window = seen
                .window
                .or_else(|| param(&params, "w").map(Duration::from_secs));
        }
        if let Some(value) = get("ratelimit-reset") {
            seen.reset = value.trim().parse().ok().map(Duration::from_secs);
        }
        if let Some(value) = get("ratelimit") {
            // Draft 7+: `"default";r=0;t=30` (a list, one item per policy);
            // drafts 5-6: `limit=100, remaining=0, reset=30` (one policy).
            // The scarcest policy wins, with its reset.
            let items: Vec<_> = if value.contains("remaining=") {
                vec![all_params(value)]
            } else {
                value.split(',').map(all_params).collect()
            };
            let scarcest = items
                .iter()
                .filter_map(|item| Some((param(item, "r").or(param(item, "remaining"))?, item)))
                .min_by_key(|(left, _)| *left);
            if let Some((left, item)) = scarcest {
                seen.remaining = Some(left);
                seen.reset = param(item, "t")
                    .or(param(item, "reset"))
                    .map(Duration::from_secs)
                    .or(seen.reset);
            }
            seen.limit = seen
                .limit
                .or_else(|| items.iter().find_map(|i| param(i, "limit")));
        }
        if let Some(value) = get("ratelimit-policy") {
            // `"default";q=100;w=21600`, or an older `100;w=21600`.
            let (count, params) = count_and_params(value);
            seen.limit = seen.limit.or_else(|| param(&params, "q")).or(count);
            seen.window = seen
                .window
                .or_else(|| param(&params, "w").map(Duration::from_secs));
        }
        (seen != Reported::default()).then_some(seen)
    }
}

/// `76;w=21600` → (76, [w=21600]); a leading policy name is no count.
fn count_and_params(value: &str) -> (Option<u64>, Vec<(String, u64)>) {
    let first = value.split([';', ',']).next().unwrap_or("").trim();
    (first.parse().ok(), all_params(value))
}

/// Every `key=number` in a header, wherever it sits in its items.
fn all_params(value: &str) -> Vec<(String, u64)> {
    value
        .split([';', ','])
        .filter_map(|part| {
            let (key, number) = part.split_once('=')?;
            let number = number.trim().trim_matches('"').parse().ok()?;
            Some((key.trim().to_ascii_lowercase(), number))
        })
        .collect()
}

fn param(params: &[(String, u64)], key: &str) -> Option<u64> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// One cache's view of its upstream's budget (the budget belongs to the
/// credentials, and each cache has its own).
pub(super) struct RateBudget {
    cache: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// Spent: revalidations are skipped until then.
    spent_until: Option<Instant>,
    /// Whether "budget spent" was logged and "budget back" not yet.
    logged_spent: bool,
}

/// The budget as the status shows it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RateBudgetStatus {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Cached tags are served without revalidation now.
    pub spent: bool,
}

impl RateBudget {
    pub(super) fn new(cache: &str) -> RateBudget {
        RateBudget {
            cache: cache.to_string(),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Learns from one answer's headers. `manifest_ok`: a successful
    /// manifest answer, which on a budgeted upstream always reports the
    /// budget; one without the headers means there is no budget (any
    /// longer) to respect. Other answers without them (blobs from a CDN,
    /// tokens) say nothing.
    pub(super) fn observe(
        &self,
        headers: &HeaderMap,
        manifest_ok: bool,
        retry_after: Option<Duration>,
    ) {
        let Some(seen) = Reported::from_headers(headers) else {
            if manifest_ok {
                self.returned(None);
            }
            return;
        };
        METRICS.upstream_ratelimit(&self.cache, seen.limit, seen.remaining);
        {
            let mut state = self.lock();
            state.limit = seen.limit.or(state.limit);
            state.remaining = seen.remaining.or(state.remaining);
        }
        match seen.remaining {
            Some(0) => self.spent(&seen, retry_after),
            Some(left) => self.returned(Some(left)),
            None => {}
        }
    }

    fn spent(&self, seen: &Reported, retry_after: Option<Duration>) {
        let recheck = match seen.reset.or(retry_after) {
            Some(reset) => reset.clamp(Duration::from_secs(1), MAX_RECHECK),
            None => seen
                .window
                .map_or(RECHECK, |w| w.clamp(Duration::from_secs(1), RECHECK)),
        };
        let mut state = self.lock();
        state.spent_until = Some(Instant::now() + recheck);
        if !state.logged_spent {
            state.logged_spent = true;
            tracing::warn!(
                cache = %self.cache,
                limit = state.limit,
                recheck_secs = recheck.as_secs(),
                "upstream rate budget spent (ratelimit-remaining 0): serving cached tags without revalidation"
            );
        }
    }

    fn returned(&self, remaining: Option<u64>) {
        let mut state = self.lock();
        state.spent_until = None;
        if state.logged_spent {
            state.logged_spent = false;
            tracing::info!(cache = %self.cache, remaining, "upstream rate budget back: revalidating tags again");
        }
    }

    /// Whether revalidations are skipped now. Past the recheck time the
    /// next revalidation goes upstream, and its answer says whether the
    /// budget is back.
    pub(super) fn is_spent(&self) -> bool {
        self.lock()
            .spent_until
            .is_some_and(|until| Instant::now() < until)
    }

    pub(super) fn status(&self) -> RateBudgetStatus {
        let spent = self.is_spent();
        let state = self.lock();
        RateBudgetStatus {
            limit: state.limit,
            remaining: state.remaining,
            spent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn reads_docker_hub_and_the_drafts() {
        let hub = headers(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
            ("docker-ratelimit-source", "192.0.2.1"),
        ]);
        let seen = Reported::from_headers(&hub).unwrap();
        assert_eq!(seen.limit, Some(100));
        assert_eq!(seen.remaining, Some(76));
        assert_eq!(seen.window, Some(Duration::from_secs(21600)));
        assert_eq!(seen.reset, None);

        let draft_old = headers(&[
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "42"),
        ]);
        let seen = Reported::from_headers(&draft_old).unwrap();
        assert_eq!((seen.limit, seen.remaining), (Some(10), Some(0)));
        assert_eq!(seen.reset, Some(Duration::from_secs(42)));

        let combined = headers(&[("ratelimit", "limit=100, remaining=3, reset=5")]);
        let seen = Reported::from_headers(&combined).unwrap();
        assert_eq!((seen.limit, seen.remaining), (Some(100), Some(3)));
        assert_eq!(seen.reset, Some(Duration::from_secs(5)));

        let structured = headers(&[
            (
                "ratelimit-policy",
                "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
            ),
            ("ratelimit", "\"burst\";r=40;t=12, \"daily\";r=0;t=3600"),
        ]);
        let seen = Reported::from_headers(&structured).unwrap();
        assert_eq!((seen.limit, seen.remaining), (Some(100), Some(0)));
        assert_eq!(seen.reset, Some(Duration::from_secs(3600)));

        assert!(Reported::from_headers(&headers(&[("content-length", "3")])).is_none());
        assert!(Reported::from_headers(&headers(&[("ratelimit-remaining", "lots")])).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn spent_at_zero_until_the_recheck_then_back_when_an_answer_says_so() {
        let budget = RateBudget::new("hub");
        let left = |n: &'static str| {
            headers(&[
                ("ratelimit-remaining", n),
                ("ratelimit-limit", "100;w=21600"),
            ])
        };
        budget.observe(&left("1"), true, None);
        assert!(!budget.is_spent());
        budget.observe(&left("0"), true, None);
        assert!(budget.is_spent());
        let status = budget.status();
        assert_eq!(
            (status.limit, status.remaining, status.spent),
            (Some(100), Some(0), true)
        );
        // Blob answers from a CDN say nothing of the budget.
        budget.observe(&HeaderMap::new(), false, None);
        assert!(budget.is_spent());
        // A window of 6 hours is rechecked after a minute.
        tokio::time::advance(RECHECK - Duration::from_secs(1)).await;
        assert!(budget.is_spent());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!budget.is_spent());
        // The recheck says still 0: spent for another minute.
        budget.observe(&left("0"), true, None);
        assert!(budget.is_spent());
        budget.observe(&left("5"), true, None);
        assert!(!budget.is_spent());
        assert_eq!(budget.status().remaining, Some(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_reset_or_retry_after_is_honoured_and_bounded() {
        let budget = RateBudget::new("c");
        let zero = headers(&[("ratelimit-remaining", "0")]);
        budget.observe(&zero, false, Some(Duration::from_secs(300)));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(budget.is_spent());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!budget.is_spent());
        budget.observe(&headers(&[("ratelimit", "r=0;t=99999")]), false, None);
        tokio::time::advance(MAX_RECHECK).await;
        assert!(!budget.is_spent());
        // A manifest answer without budget headers: no budget any more.
        budget.observe(&zero, false, None);
        budget.observe(&HeaderMap::new(), true, None);
        assert!(!budget.is_spent());
    }
}
