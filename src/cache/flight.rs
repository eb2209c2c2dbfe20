//! Single-flight: concurrent callers asking for the same key share one
//! execution of the work, so 20 cold requests cause one upstream request.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `work` unless a run for `key` is under way, in which case it
    /// waits for that run's result. If the running caller is cancelled, a
    /// waiting one takes the work over (OnceCell's semantics).
    pub async fn run<F, Fut>(&self, key: K, work: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let value = cell.get_or_init(work).await.clone();
        let mut flights = self.lock();
        if flights.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            flights.remove(&key);
        }
        value
    }

    /// Whether a run for `key` is under way.
    pub fn is_running(&self, key: &K) -> bool {
        self.lock().contains_key(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // The current-thread runtime runs tasks in spawn order whenever the test
    // task awaits, which makes the interleaving below deterministic.
    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(SingleFlight::<u32, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (flights, runs) = (flights.clone(), runs.clone());
                let (started, gate) = (started.clone(), gate.clone());
                tokio::spawn(async move {
                    flights
                        .run(1, || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            started.notify_one();
                            gate.notified().await;
                            7
                        })
                        .await
                })
            })
            .collect();
        // The first task is inside the work; the other nine were polled into
        // the flight before this task is woken.
        started.notified().await;
        gate.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
