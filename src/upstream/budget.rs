//! A cache's share of the uplink: at most `max_upstream_connections`
//! requests in flight, and at most `max_upstream_bandwidth` bytes per second
//! read from upstream bodies. Both are per cache and shared by everything
//! the cache asks upstream; a cache without them pays nothing (no slot, no
//! bucket).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::error::Cap;
use super::UpstreamError;

/// A cap on work in flight: requests (`max_upstream_connections`; a slot
/// is held from the request until its body is read, so a blob download
/// holds one for its whole body) or blob downloads (`download_concurrency`).
pub(super) struct Slots {
    slots: Arc<Semaphore>,
    cap: u32,
    of: Cap,
    /// Longest wait for a slot before the request fails as `Busy`.
    wait: Duration,
}

/// One request's place under the cap; `None` when the cache has no cap.
pub(super) type Slot = Option<OwnedSemaphorePermit>;

impl Slots {
    pub(super) fn new(of: Cap, cap: u32, wait: Duration) -> Slots {
        let cap = cap.max(1);
        Slots {
            slots: Arc::new(Semaphore::new(cap as usize)),
            cap,
            of,
            wait,
        }
    }

    /// The semaphore itself, for the background probe (which may wait).
    pub(super) fn slots(&self) -> Arc<Semaphore> {
        self.slots.clone()
    }

    /// Waits for a slot, at most `wait`: a client is answered (or served
    /// stale) rather than queued behind slow downloads forever.
    pub(super) async fn acquire(&self) -> Result<OwnedSemaphorePermit, UpstreamError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        tracing::debug!(
            cap = self.cap,
            "waiting for a free one of the {} ({})",
            self.of.what(),
            self.of.setting()
        );
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a full one.
            Ok(Err(_)) | Err(_) => Err(UpstreamError::Busy {
                of: self.of,
                cap: self.cap,
                waited: self.wait,
            }),
        }
    }
}

/// A token bucket of bytes shared by every upstream body of one cache.
///
/// A reader takes the bytes of each chunk it received and, when that puts
/// the bucket in debt, sleeps until the debt is paid: concurrent readers
/// queue behind each other's debt, so together they get the rate. The
/// bucket holds at most [`BURST`] worth of the rate, so a reader idle for a
/// while cannot then take a second's worth at once and stall the others.
pub(super) struct Bandwidth {
    bytes_per_sec: f64,
    capacity: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    /// Bytes that may be read now; negative while in debt.
    tokens: f64,
    at: Instant,
}

/// How much of a second's rate the bucket can save up.
const BURST: Duration = Duration::from_millis(50);
/// The smallest bucket: a few chunks, so a low rate still reads smoothly.
const MIN_CAPACITY: f64 = 16.0 * 1024.0;

impl Bandwidth {
    pub(super) fn new(bytes_per_sec: u64) -> Bandwidth {
        let rate = bytes_per_sec.max(1) as f64;
        let capacity = (rate * BURST.as_secs_f64()).max(MIN_CAPACITY);
        Bandwidth {
            bytes_per_sec: rate,
            capacity,
            state: Mutex::new(Bucket {
                tokens: capacity,
                at: Instant::now(),
            }),
        }
    }

    /// Accounts for `bytes` just read; waits while the cache is over its rate.
    pub(super) async fn take(&self, bytes: usize) {
        let debt = {
            let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let earned = now.duration_since(bucket.at).as_secs_f64() * self.bytes_per_sec;
            bucket.tokens = (bucket.tokens + earned).min(self.capacity) - bytes as f64;
            bucket.at = now;
            -bucket.tokens
        };
        if debt > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(debt / self.bytes_per_sec)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test(start_paused = true)]
    async fn readers_share_the_rate() {
        let bucket = Arc::new(Bandwidth::new(MIB as u64));
        let start = Instant::now();
        // Two readers, 2 MiB each in 64 KiB chunks: 4 MiB at 1 MiB/s.
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let bucket = bucket.clone();
                tokio::spawn(async move {
                    for _ in 0..32 {
                        bucket.take(64 * 1024).await;
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.await.unwrap();
        }
        // All but the initial bucket (50 ms of the rate) is paid in time.
        let expected = 4.0 - 0.05;
        let took = start.elapsed().as_secs_f64();
        assert!((took - expected).abs() < 0.01, "took {took} s");
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_within_the_bucket_and_no_saving_past_it() {
        let bucket = Bandwidth::new(10 * MIB as u64);
        let start = Instant::now();
        // 10 MiB/s saves up at most 512 KiB (50 ms).
        bucket.take(512 * 1024).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Idle for 10 s: still only 50 ms worth saved.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        bucket.take(MIB).await;
        let took = start.elapsed().as_secs_f64();
        assert!((took - 0.05).abs() < 0.001, "took {took} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cap_fails_as_busy_after_the_wait() {
        let connections = Slots::new(Cap::Connections, 1, Duration::from_secs(30));
        let held = connections.acquire().await.unwrap();
        match connections.acquire().await {
            Err(UpstreamError::Busy { cap: 1, waited, .. }) => {
                assert_eq!(waited, Duration::from_secs(30))
            }
            other => panic!("not busy: {:?}", other.map(|_| ())),
        }
        drop(held);
        assert!(connections.acquire().await.is_ok());
    }
}
