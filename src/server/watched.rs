//! A socket that remembers when bytes last moved and gives up on writes
//! that make no progress: the two facts the accept loop needs to close idle
//! connections and readers that stopped reading.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What one connection is doing, shared by its socket and its requests.
pub(super) struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` when a byte was last read or written.
    last_millis: AtomicU64,
    /// Requests whose response headers are not out yet.
    in_flight: AtomicUsize,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_millis.store(now, Ordering::Relaxed);
    }

    /// Marks a request as being handled until the guard drops.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Whether nothing moved for `limit` while no request was being handled.
    pub(super) fn idle_for(&self, limit: Duration) -> bool {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.opened.elapsed().saturating_sub(last) >= limit
    }
}

pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Resolves once the connection was idle (see [`Activity::idle_for`]) for
/// `limit`; checked a few times per period, so it fires within 1.25×.
pub(super) async fn idle(activity: &Activity, limit: Duration) {
    let step = (limit / 4).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(step).await;
        if activity.idle_for(limit) {
            return;
        }
    }
}

/// The socket wrapper: reads and writes record activity; a write (or
/// flush) that stays pending for `write_timeout` fails with `TimedOut`,
/// which ends the connection and frees what its response held.
pub(super) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>, write_timeout: Duration) -> Self {
        Watched {
            inner,
            activity,
            write_timeout,
            stalled: None,
        }
    }

    /// After a pending write: arms the stall timer, and errors once it ran out.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let timeout = self.write_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ));
        }
        Ok(())
    }

    /// After any write or flush: progress resets the stall timer, a
    /// pending one runs it.
    fn after_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_pending() {
            self.check_stall(cx)?;
            return Poll::Pending;
        }
        self.stalled = None;
        self.activity.touch();
        poll
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        self.after_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.after_write(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
