//! A circuit breaker per upstream, shared by every cache of that upstream:
//! once it failed to answer, or asked ferry to back off, requests stop
//! waiting on it until a background probe sees it back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::UpstreamError;

#[derive(Default)]
pub(crate) struct Health {
    state: Mutex<State>,
    /// Whether a background probe is already rechecking the upstream.
    probing: AtomicBool,
    /// Answers timed (to their headers) and their total microseconds, for
    /// the dashboard's response-time curve.
    timed: AtomicU64,
    micros: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Whether the upstream ever answered (anything) since ferry started.
    answered: bool,
    /// Down (no answer) until a probe succeeds: the failure and its time.
    down: Option<(UpstreamError, SystemTime)>,
    /// Rate limited (429/503 with Retry-After) until this instant.
    back_off_until: Option<Instant>,
}

/// What ferry knows of an upstream, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reachability {
    /// Not contacted since ferry started.
    Unknown,
    Reachable,
    Down,
    RateLimited,
}

impl Reachability {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Reachable => "reachable",
            Reachability::Down => "down",
            Reachability::RateLimited => "rate_limited",
        }
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reason not to contact the upstream now, if any.
    pub(crate) fn blocked(&self) -> Option<UpstreamError> {
        let state = self.lock();
        if let Some((cause, since)) = &state.down {
            return Some(UpstreamError::KnownDown {
                cause: Box::new(cause.clone()),
                since: *since,
            });
        }
        let until = state.back_off_until?;
        let now = Instant::now();
        (until > now).then(|| UpstreamError::RateLimited {
            retry_after: Some(until - now),
        })
    }

    /// An answer's time to its headers.
    pub(crate) fn timed(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
        self.timed.fetch_add(1, Ordering::Relaxed);
    }

    /// Answers timed since start and their total time (microseconds).
    pub(crate) fn response_times(&self) -> (u64, u64) {
        (
            self.timed.load(Ordering::Relaxed),
            self.micros.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn is_down(&self) -> bool {
        self.lock().down.is_some()
    }

    /// The state, and while down, the failure that marked it down.
    pub(crate) fn reachability(&self) -> (Reachability, Option<UpstreamError>) {
        let state = self.lock();
        if let Some((cause, since)) = &state.down {
            let down = UpstreamError::KnownDown {
                cause: Box::new(cause.clone()),
                since: *since,
            };
            return (Reachability::Down, Some(down));
        }
        if state.back_off_until.is_some_and(|u| u > Instant::now()) {
            return (Reachability::RateLimited, None);
        }
        let known = if state.answered {
            Reachability::Reachable
        } else {
            Reachability::Unknown
        };
        (known, None)
    }

    /// Records the outcome of a request. Returns true when this failure just
    /// marked the upstream down (the caller then starts a probe).
    pub(crate) fn record(&self, outcome: Result<(), &UpstreamError>) -> bool {
        let mut state = self.lock();
        match outcome {
            Ok(()) => {
                state.answered = true;
                state.down = None;
                false
            }
            Err(UpstreamError::RateLimited { retry_after }) => {
                state.answered = true;
                let wait = retry_after.unwrap_or(Duration::from_secs(10));
                state.back_off_until = Some(Instant::now() + wait.min(Duration::from_secs(3600)));
                false
            }
            Err(UpstreamError::KnownDown { .. }) => false,
            Err(e) if e.is_no_answer() => {
                let newly = state.down.is_none();
                if newly {
                    state.down = Some((e.clone(), SystemTime::now()));
                }
                newly
            }
            // Any other answer (404, 401, 500, a bad body) is an answer.
            Err(_) => {
                state.answered = true;
                false
            }
        }
    }

    pub(crate) fn mark_up(&self) {
        let mut state = self.lock();
        state.down = None;
        state.answered = true;
    }

    /// Claims the single probe slot; false if a probe is already running.
    pub(crate) fn start_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_contacted_then_down_until_marked_up_and_back_off() {
        let h = Health::default();
        assert_eq!(h.reachability().0, Reachability::Unknown);
        assert!(h.blocked().is_none());
        assert!(h.record(Err(&UpstreamError::Timeout)));
        assert!(!h.record(Err(&UpstreamError::Timeout)));
        let (state, why) = h.reachability();
        assert_eq!(state, Reachability::Down);
        assert!(why.unwrap().cause().contains("did not answer in time"));
        match h.blocked() {
            Some(UpstreamError::KnownDown { cause, .. }) => {
                assert!(matches!(*cause, UpstreamError::Timeout))
            }
            other => panic!("not blocked as down: {other:?}"),
        }
        h.mark_up();
        assert!(h.blocked().is_none());
        assert_eq!(h.reachability().0, Reachability::Reachable);
        h.record(Err(&UpstreamError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        }));
        assert!(matches!(
            h.blocked(),
            Some(UpstreamError::RateLimited { .. })
        ));
        assert_eq!(h.reachability().0, Reachability::RateLimited);
        assert!(!h.record(Err(&UpstreamError::NotFound)));
    }

    #[test]
    fn a_refusal_is_an_answer() {
        let h = Health::default();
        h.record(Err(&UpstreamError::Unauthorized));
        assert_eq!(h.reachability().0, Reachability::Reachable);
    }
}
