//! Single-flight with hand-over, for manifests and blobs alike: concurrent
//! callers asking for the same key share one leader's upstream work, so 20
//! cold requests cause one upstream request (modelled on pingora-cache's
//! cache lock).
//!
//! - The leader *publishes* a value every waiter receives (a manifest
//!   fetch's result; a blob download's progress, as soon as its body
//!   starts, so waiters stream the growing file). The flight stays
//!   joinable until the leader's guard is dropped.
//! - Hand-over: a leader that drops its guard without publishing (its
//!   task was cancelled because its client went away, or it failed in a
//!   way worth another try) abandons the flight; the waiters wake, and the
//!   first of them to rejoin leads a new flight, the others wait on it.
//! - Bound: a waiter waits at most `bound` in all, across hand-overs, and
//!   then fails with a retryable timeout (504) rather than going to the
//!   upstream on its own: a leader that slow means the upstream is slow,
//!   the moment a herd of duplicate requests would hurt most. The leader
//!   goes on, so the client's retry likely finds the content cached.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::error::CacheError;
use crate::upstream::UpstreamError;

/// What a flight's waiters see.
#[derive(Clone)]
enum State<V> {
    Leading,
    Published(V),
    /// The leader gave up without publishing: someone else must lead.
    Abandoned,
}

type Table<K, V> = Arc<Mutex<HashMap<K, Arc<watch::Sender<State<V>>>>>>;

pub(crate) struct SingleFlight<K, V> {
    flights: Table<K, V>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            flights: Arc::default(),
        }
    }
}

/// A caller's part in a flight.
pub(crate) enum Joined<K: Hash + Eq, V> {
    /// Do the work and publish its outcome.
    Lead(Lead<K, V>),
    /// The leader's published value.
    Follow(V),
}

/// A waiter's bound elapsed before any leader published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitedTooLong(pub Duration);

impl From<WaitedTooLong> for CacheError {
    fn from(WaitedTooLong(bound): WaitedTooLong) -> Self {
        tracing::warn!(
            ?bound,
            "gave up waiting for another request's upstream fetch of the same content"
        );
        // A 504 like the leader's own timeout would be: retryable.
        CacheError::Upstream(UpstreamError::Timeout)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Leads the flight for `key`, or waits (at most `bound`) for its
    /// leader's value, taking the lead over if the leader gives up.
    pub(super) async fn join(
        &self,
        key: &K,
        bound: Duration,
    ) -> Result<Joined<K, V>, WaitedTooLong> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let mut state = {
                let mut flights = self.lock();
                match flights.get(key) {
                    Some(flight) => flight.subscribe(),
                    None => {
                        let flight = Arc::new(watch::Sender::new(State::Leading));
                        flights.insert(key.clone(), flight.clone());
                        return Ok(Joined::Lead(Lead {
                            key: key.clone(),
                            flight,
                            flights: self.flights.clone(),
                            published: false,
                        }));
                    }
                }
            };
            let settled = state.wait_for(|s| !matches!(s, State::Leading));
            let published = match tokio::time::timeout_at(deadline, settled).await {
                Err(_) => return Err(WaitedTooLong(bound)),
                Ok(Ok(settled)) => match &*settled {
                    State::Published(value) => Some(value.clone()),
                    _ => None,
                },
                // The leader's guard is gone (abandoned): rejoin.
                Ok(Err(_)) => None,
            };
            if let Some(value) = published {
                return Ok(Joined::Follow(value));
            }
        }
    }

    /// Runs `work` as the leader of `key`'s flight, or returns the value
    /// its leader publishes. An outcome worth another try is returned to
    /// this caller but not published: a waiter takes over.
    pub(super) async fn run<F, Fut>(&self, key: K, bound: Duration, work: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
        V: Outcome,
    {
        match self.join(&key, bound).await {
            Err(waited) => V::waited_too_long(waited),
            Ok(Joined::Follow(value)) => value,
            Ok(Joined::Lead(mut lead)) => {
                let value = work().await;
                if !value.worth_another_try() {
                    lead.publish(value.clone());
                }
                value
            }
        }
    }

    /// Whether a flight for `key` is under way.
    pub(super) fn is_running(&self, key: &K) -> bool {
        self.lock().contains_key(key)
    }

    /// What the flight for `key` published, if it is under way and did.
    pub(super) fn published(&self, key: &K) -> Option<V> {
        let state = self.lock().get(key)?.subscribe();
        let value = match &*state.borrow() {
            State::Published(value) => Some(value.clone()),
            _ => None,
        };
        value
    }

    /// The keys of the flights under way.
    pub(super) fn keys(&self) -> Vec<K> {
        self.lock().keys().cloned().collect()
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<watch::Sender<State<V>>>>> {
        lock(&self.flights)
    }
}

fn lock<K, V>(flights: &Table<K, V>) -> MutexGuard<'_, HashMap<K, Arc<watch::Sender<State<V>>>>> {
    flights.lock().unwrap_or_else(|p| p.into_inner())
}

/// The leader's guard. Dropping it ends the flight; unpublished, that
/// hands the work over to a waiter.
pub(crate) struct Lead<K: Hash + Eq, V> {
    key: K,
    flight: Arc<watch::Sender<State<V>>>,
    flights: Table<K, V>,
    published: bool,
}

impl<K: Hash + Eq, V> Lead<K, V> {
    /// Hands `value` to every waiter, now and until the guard is dropped.
    pub(super) fn publish(&mut self, value: V) {
        self.published = true;
        self.flight.send_replace(State::Published(value));
    }

    pub(super) fn is_published(&self) -> bool {
        self.published
    }
}

impl<K: Hash + Eq, V> Drop for Lead<K, V> {
    fn drop(&mut self) {
        // Out of the table before the waiters wake, so that they rejoin a
        // new flight (under the same lock they rejoin with).
        let mut flights = lock(&self.flights);
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
        if !self.published {
            self.flight.send_replace(State::Abandoned);
        }
    }
}

/// A flight's outcome: whether a waiter should retry the work rather than
/// share it, and what a waiter gets when its bound elapses.
pub(crate) trait Outcome: Clone {
    fn worth_another_try(&self) -> bool;
    fn waited_too_long(waited: WaitedTooLong) -> Self;
}

impl<T: Clone> Outcome for Result<T, CacheError> {
    fn worth_another_try(&self) -> bool {
        self.as_ref().is_err_and(CacheError::worth_another_try)
    }

    fn waited_too_long(waited: WaitedTooLong) -> Self {
        Err(waited.into())
    }
}

impl CacheError {
    /// A failure of this attempt rather than an answer about the content:
    /// no answer in time, a broken or cut-off body, a server error. A
    /// waiter retries it (a 404, a refusal, a wrong digest, or a breaker
    /// that knows the upstream is down, are shared instead).
    pub(crate) fn worth_another_try(&self) -> bool {
        match self {
            CacheError::Truncated { .. } => true,
            CacheError::Upstream(e) => match e {
                UpstreamError::Unreachable { .. }
                | UpstreamError::Timeout
                | UpstreamError::Protocol(_) => true,
                UpstreamError::Status(status) => *status >= 500,
                _ => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    type Flights = SingleFlight<u32, Result<u32, CacheError>>;

    const BOUND: Duration = Duration::from_secs(60);

    fn cut_off() -> CacheError {
        CacheError::Truncated {
            got: 1,
            expected: 2,
        }
    }

    /// Spawns `n` callers of `run` on key 1; each leader counts itself,
    /// says it started, waits for `go`, then answers what `answer` says for
    /// its turn (0 for the first leader).
    fn callers(
        n: usize,
        flights: &Arc<Flights>,
        leaders: &Arc<AtomicUsize>,
        started: &Arc<Notify>,
        go: &Arc<Notify>,
        answer: fn(usize) -> Result<u32, CacheError>,
    ) -> Vec<tokio::task::JoinHandle<Result<u32, CacheError>>> {
        (0..n)
            .map(|_| {
                let (flights, leaders) = (flights.clone(), leaders.clone());
                let (started, go) = (started.clone(), go.clone());
                tokio::spawn(async move {
                    flights
                        .run(1, BOUND, || async move {
                            let turn = leaders.fetch_add(1, Ordering::SeqCst);
                            started.notify_one();
                            go.notified().await;
                            answer(turn)
                        })
                        .await
                })
            })
            .collect()
    }

    /// Waits (in paused time) for a leader to start its work: a hand-over
    /// that never happens fails here rather than hanging the test.
    async fn next_leader(started: &Notify) {
        tokio::time::timeout(BOUND * 2, started.notified())
            .await
            .expect("no caller took the lead");
    }

    // The current-thread runtime runs tasks in spawn order whenever the test
    // task awaits, which makes the interleavings below deterministic.
    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_leader() {
        let (flights, leaders) = (Arc::default(), Arc::default());
        let (started, go) = (Arc::default(), Arc::new(Notify::new()));
        let tasks = callers(10, &flights, &leaders, &started, &go, |_| Ok(7));
        // The first task leads; the other nine joined before this task runs.
        next_leader(&started).await;
        assert!(flights.is_running(&1));
        go.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(leaders.load(Ordering::SeqCst), 1);
        assert!(!flights.is_running(&1), "the flight ends with its leader");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_leader_hands_over_to_one_waiter_which_succeeds() {
        let (flights, leaders) = (Arc::default(), Arc::default());
        let (started, go) = (Arc::default(), Arc::new(Notify::new()));
        let tasks = callers(5, &flights, &leaders, &started, &go, |turn| {
            if turn == 0 {
                Err(cut_off())
            } else {
                Ok(turn as u32)
            }
        });
        next_leader(&started).await;
        go.notify_one();
        // The second leader: one of the four waiters.
        next_leader(&started).await;
        go.notify_one();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(leaders.load(Ordering::SeqCst), 2);
        assert!(matches!(results[0], Err(CacheError::Truncated { .. })));
        assert!(
            results[1..].iter().all(|r| matches!(r, Ok(1))),
            "{results:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_about_the_content_is_shared_not_retried() {
        let (flights, leaders) = (Arc::default(), Arc::default());
        let (started, go) = (Arc::default(), Arc::new(Notify::new()));
        let tasks = callers(5, &flights, &leaders, &started, &go, |_| {
            Err(CacheError::BlobUnknown)
        });
        next_leader(&started).await;
        go.notify_one();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Err(CacheError::BlobUnknown)));
        }
        assert_eq!(leaders.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_hands_over() {
        let (flights, leaders) = (Arc::default(), Arc::default());
        let (started, go) = (Arc::default(), Arc::new(Notify::new()));
        let mut tasks = callers(3, &flights, &leaders, &started, &go, |turn| Ok(turn as u32));
        next_leader(&started).await;
        // The leader's client goes away: its task is dropped mid-work.
        tasks.remove(0).abort();
        next_leader(&started).await;
        go.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(leaders.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_after_its_bound_with_a_retryable_timeout() {
        let flights = Flights::default();
        let Ok(Joined::Lead(mut lead)) = flights.join(&1, BOUND).await else {
            panic!("the first caller leads");
        };
        let start = tokio::time::Instant::now();
        // The leader never publishes; paused time jumps to the deadline.
        let waited = flights.run(1, BOUND, || async { Ok(0) }).await;
        assert!(matches!(
            waited,
            Err(CacheError::Upstream(UpstreamError::Timeout))
        ));
        assert_eq!(start.elapsed(), BOUND);
        // The leader goes on and is still joinable: its value is shared.
        lead.publish(Ok(9));
        assert_eq!(flights.run(1, BOUND, || async { Ok(0) }).await.unwrap(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_published_flight_is_joined_until_its_leader_ends() {
        let flights = Flights::default();
        let Ok(Joined::Lead(mut lead)) = flights.join(&1, BOUND).await else {
            panic!("the first caller leads");
        };
        assert!(flights.published(&1).is_none());
        lead.publish(Ok(3));
        assert!(matches!(flights.published(&1), Some(Ok(3))));
        assert!(matches!(
            flights.join(&1, BOUND).await,
            Ok(Joined::Follow(Ok(3)))
        ));
        drop(lead);
        assert!(matches!(flights.join(&1, BOUND).await, Ok(Joined::Lead(_))));
    }
}
