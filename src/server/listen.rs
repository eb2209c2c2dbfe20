//! One accept loop for the plain and the TLS listener: a cap on open
//! connections (past it, a short 503 "too many connections", except for
//! the health checks), time limits on reading headers, on idle keep-alive
//! connections and on writes that stall, and a [`Connection`] extension on
//! every request (which listener, which client).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use warp::http::{header, HeaderValue, Request, StatusCode};
use warp::reply::Response;

use super::watched::{idle, Activity, Watched};
use crate::metrics::METRICS;
use crate::origin::Connection;
use crate::tls::{Certificates, DRAIN};

/// How long a refused (over the cap) connection may take to send its
/// request before it is closed.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(5);

/// HTTP/1 buffer per connection (hyper's default is ~400 KiB). The write
/// side queues a response's chunks until this much is pending, so with a
/// client slower than the disk it is memory held per connection; the read
/// side bounds a request's headers (64 KiB: longer ones get 431, past any
/// registry token).
const CONNECTION_BUFFER: usize = 64 * 1024;

/// What the listeners serve: warp's routes as a tower service.
pub(super) trait Routes:
    tower_service::Service<
        Request<Incoming>,
        Response = Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Routes for S where
    S: tower_service::Service<
            Request<Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// The limits every connection is held to (from the config).
#[derive(Debug, Clone)]
pub(super) struct Limits {
    /// Most connections served at once (both listeners together).
    pub max_connections: usize,
    /// Time to send a request's headers, and to start the next request on
    /// a kept-alive HTTP/1 connection.
    pub header_timeout: Duration,
    /// A connection on which no byte moved for this long, with no request
    /// being handled, is closed (covers HTTP/2 and silent clients).
    pub idle_timeout: Duration,
    /// A response write that makes no progress for this long ends the
    /// connection.
    pub write_timeout: Duration,
}

/// What both listeners share: the limits, the connection slots and the
/// origin settings.
pub(super) struct Shared {
    limits: Limits,
    public_url: Option<Arc<str>>,
    slots: Arc<Semaphore>,
    /// Connections over the cap being answered with the refusal; past
    /// these, new connections are closed at once.
    refusals: Arc<Semaphore>,
}

impl Shared {
    pub(super) fn new(limits: Limits, public_url: Option<&str>) -> Arc<Shared> {
        let refusals = (limits.max_connections / 8).clamp(16, 256);
        Arc::new(Shared {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            refusals: Arc::new(Semaphore::new(refusals)),
            public_url: public_url.map(Arc::from),
            limits,
        })
    }
}

/// Serves `service` on `listener` (over TLS when `certificates` is given)
/// until `shutdown` turns true, then lets open connections finish (bounded
/// by [`DRAIN`]).
pub(super) async fn serve<S>(
    listener: TcpListener,
    certificates: Option<Arc<Certificates>>,
    service: S,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Routes,
{
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "listener has no address");
            return;
        }
    };
    let scheme = if certificates.is_some() {
        "https"
    } else {
        "http"
    };
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, typically: back off instead of
                // spinning; accepting resumes once connections close.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let connection = Connection {
            scheme,
            local,
            peer,
            public_url: shared.public_url.clone(),
        };
        let slot = match shared.slots.clone().try_acquire_owned() {
            Ok(slot) => Slot::Served(slot),
            Err(_) => {
                METRICS.connection_refused();
                match shared.refusals.clone().try_acquire_owned() {
                    Ok(slot) => Slot::Refused(slot),
                    Err(_) => {
                        tracing::debug!(%peer, "too many connections; closed at once");
                        continue;
                    }
                }
            }
        };
        let job = Job {
            connection,
            slot,
            limits: shared.limits.clone(),
            certificates: certificates.clone(),
        };
        let watcher = graceful.watcher();
        let service = service.clone();
        tokio::spawn(async move {
            job.run(stream, service, watcher).await;
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            scheme,
            "connections still open after the drain period; closing them"
        );
    }
}

/// Whether a connection got one of the normal slots or is over the cap.
enum Slot {
    Served(#[allow(dead_code)] OwnedSemaphorePermit),
    Refused(#[allow(dead_code)] OwnedSemaphorePermit),
}

impl Slot {
    fn refused(&self) -> bool {
        matches!(self, Slot::Refused(_))
    }
}

/// One accepted connection and what it is held to.
struct Job {
    connection: Connection,
    /// Held (and so counted) until the connection ends.
    slot: Slot,
    limits: Limits,
    certificates: Option<Arc<Certificates>>,
}

impl Job {
    async fn run<S>(
        self,
        stream: TcpStream,
        service: S,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        S: Routes,
    {
        let peer = self.connection.peer;
        let handshake_limit = if self.slot.refused() {
            REFUSAL_DEADLINE
        } else {
            self.limits.header_timeout
        };
        match &self.certificates {
            None => self.serve_io(stream, service, watcher).await,
            Some(certificates) => {
                let acceptor = certificates.acceptor();
                match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.serve_io(tls, service, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<I, S>(self, io: I, service: S, watcher: hyper_util::server::graceful::Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Routes,
    {
        let refused = self.slot.refused();
        let peer = self.connection.peer;
        let limits = &self.limits;
        let activity = Activity::new();
        let io = Watched::new(io, activity.clone(), limits.write_timeout);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(if refused {
                REFUSAL_DEADLINE
            } else {
                limits.header_timeout
            })
            .keep_alive(!refused)
            .max_buf_size(CONNECTION_BUFFER);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.idle_timeout / 2)
            .keep_alive_timeout(limits.header_timeout);
        let connection = self.connection.clone();
        let in_flight = activity.clone();
        let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let mut service = service.clone();
            let guard = in_flight.request();
            let path = request.uri().path();
            let health = path == "/healthz" || path == "/readyz";
            let refusal = (refused && !health).then(too_many_connections);
            prepare(&mut request, &connection);
            async move {
                let _guard = guard;
                match refusal {
                    Some(response) => Ok::<_, std::convert::Infallible>(response),
                    None => tower_service::Service::call(&mut service, request).await,
                }
            }
        });
        let served = builder
            .serve_connection(TokioIo::new(io), handler)
            .into_owned();
        let served = watcher.watch(served);
        let idle_limit = if refused {
            REFUSAL_DEADLINE
        } else {
            limits.idle_timeout
        };
        tokio::select! {
            result = served => if let Err(e) = result {
                // Bad requests (a TLS handshake on the plain port, as
                // podman sends with --tls-verify=false) were answered with
                // a 400 by hyper already; nothing for an operator here.
                tracing::debug!(%peer, error = ?e, "connection ended with an error");
            },
            _ = idle(&activity, idle_limit) => {
                tracing::debug!(%peer, "closing an idle connection");
            }
        }
        drop(self.slot);
    }
}

/// Adds what handlers read about the connection; copies HTTP/2's
/// `:authority` into `Host`, so that both protocols look alike to them.
fn prepare(request: &mut Request<Incoming>, connection: &Connection) {
    if !request.headers().contains_key(header::HOST) {
        let authority = request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(authority) = authority {
            request.headers_mut().insert(header::HOST, authority);
        }
    }
    request.extensions_mut().insert(connection.clone());
}

/// The refusal past `max_connections`.
fn too_many_connections() -> Response {
    let mut resp = Response::new("too many connections; try again later\n".into());
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Raises the soft limit on open files to the hard one and sizes the
/// default connection cap from it: room for the refusals, the store and
/// upstream connections stays free.
pub(super) fn default_max_connections() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-files limit");
        }
    }
    let files = getrlimit(Resource::Nofile).current.unwrap_or(1 << 20);
    let files = usize::try_from(files).unwrap_or(usize::MAX);
    (files.saturating_sub(512) * 3 / 4).clamp(16, 10_000)
}
