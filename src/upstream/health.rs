//! A per-upstream circuit breaker: once an upstream failed to answer, or
//! asked ferry to back off, requests stop waiting on it until it is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::UpstreamError;

#[derive(Default)]
pub struct Health {
    state: Mutex<State>,
    /// Whether a background probe is already rechecking the upstream.
    probing: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Down (no answer) until a probe succeeds.
    down: bool,
    /// Rate limited (429/503 with Retry-After) until this instant.
    back_off_until: Option<Instant>,
}

impl Health {
    /// The reason not to contact the upstream now, if any.
    pub fn blocked(&self) -> Option<UpstreamError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.down {
            return Some(UpstreamError::KnownDown);
        }
        let until = state.back_off_until?;
        let now = Instant::now();
        (until > now).then(|| UpstreamError::RateLimited {
            retry_after: Some(until - now),
        })
    }

    pub fn is_down(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).down
    }

    /// Records the outcome of a request. Returns true when this failure just
    /// marked the upstream down (the caller then starts a probe).
    pub fn record(&self, outcome: Result<(), &UpstreamError>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(()) => {
                state.down = false;
                false
            }
            Err(UpstreamError::RateLimited { retry_after }) => {
                let wait = retry_after.unwrap_or(Duration::from_secs(10));
                state.back_off_until = Some(Instant::now() + wait.min(Duration::from_secs(3600)));
                false
            }
            Err(e) if e.is_no_answer() && !matches!(e, UpstreamError::KnownDown) => {
                let newly = !state.down;
                state.down = true;
                newly
            }
            Err(_) => false,
        }
    }

    pub fn mark_up(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).down = false;
    }

    /// Claims the single probe slot; false if a probe is already running.
    pub fn start_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    pub fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_marked_up_and_back_off() {
        let h = Health::default();
        assert!(h.blocked().is_none());
        assert!(h.record(Err(&UpstreamError::Timeout)));
        assert!(!h.record(Err(&UpstreamError::Timeout)));
        assert!(matches!(h.blocked(), Some(UpstreamError::KnownDown)));
        h.mark_up();
        assert!(h.blocked().is_none());
        h.record(Err(&UpstreamError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        }));
        assert!(matches!(
            h.blocked(),
            Some(UpstreamError::RateLimited { .. })
        ));
        assert!(!h.record(Err(&UpstreamError::NotFound)));
    }
}
