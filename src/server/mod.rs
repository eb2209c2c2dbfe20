//! Assembles ferry from its configuration and serves it over HTTP(S).

mod listen;
mod watched;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::Filter;

use crate::api::{self, Api};
use crate::auth::{Access, AdminAuth, RegistryTokens};
use crate::cache::{Caches, Storage};
use crate::config::Config;
use crate::manage::{ManageError, Manager};
use crate::metrics::{route_label, METRICS};
use crate::registry::{self, Registry};
use crate::tls::Certificates;
use listen::{Limits, Shared};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("cannot open the data directory {}: {source}{}", .path.display(), move_aside_advice(.source, .path))]
    Storage {
        path: std::path::PathBuf,
        source: crate::store::StoreError,
    },
    #[error("cannot set up the caches: {0}")]
    Caches(#[from] ManageError),
    #[error("cannot set up the admin account: {0}")]
    Admin(std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The data directory is held by another ferry, or unusable.
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
}

/// The cure for a damaged metadata database, and only for that: a lock
/// held or a permission problem is not helped by throwing metadata away.
fn move_aside_advice(source: &crate::store::StoreError, path: &std::path::Path) -> String {
    if !source.is_damaged() {
        return String::new();
    }
    let meta = path.join("meta");
    format!(
        "\nStop ferry, move {} aside (e.g. mv {} {}.damaged) and start again. \
         Cached blobs are reused; tags are re-resolved upstream on their next pull \
         (see README, \"Rebuilding metadata\").",
        meta.display(),
        meta.display(),
        meta.display()
    )
}

/// Logs a request: method, path, status, bytes (Content-Length), whether
/// the cache answered it (`X-Cache`), and the time to the response headers.
fn access_log(
    method: &warp::http::Method,
    path: &str,
    resp: &warp::reply::Response,
    start: std::time::Instant,
) {
    let status = resp.status().as_u16();
    METRICS.request(route_label(path), method.as_str(), status);
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
    tracing::info!(
        target: "ferry::access",
        %method,
        path,
        status,
        bytes = header("content-length").and_then(|v| v.parse::<u64>().ok()),
        cache = header("x-cache"),
        micros = start.elapsed().as_micros() as u64,
    );
}

/// `/readyz`: 200 when the store takes writes, the blob store (an object
/// store) answers and the metadata answers; 200 "degraded" when only a
/// local read cache answers for the object store.
async fn ready(storage: Arc<Storage>) -> warp::reply::Response {
    let check = tokio::task::spawn_blocking(move || storage.check_writable()).await;
    match check {
        Ok(Ok(None)) => warp::reply::Response::new("ready\n".into()),
        Ok(Ok(Some(why))) => warp::reply::Response::new(format!("ready, degraded: {why}\n").into()),
        Ok(Err(e)) => {
            let mut resp = warp::reply::Response::new(format!("not ready: {e}\n").into());
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp
        }
        Err(e) => {
            let mut resp = warp::reply::Response::new(format!("not ready: {e}\n").into());
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp
        }
    }
}

/// `/metrics` in Prometheus text format.
async fn metrics(storage: Arc<Storage>) -> warp::reply::Response {
    let (bytes, objects) = storage.stored_totals().await.unwrap_or((0, 0));
    let sizes = storage.cache_sizes();
    METRICS.set_cache_sizes(sizes.iter().map(|s| (s.cache.as_str(), s.bytes, s.max)));
    if let Ok(pinned) = storage.pinned_bytes().await {
        METRICS.set_pinned_bytes(&pinned.per_cache);
    }
    let text = METRICS.render(storage.downloads_in_flight(), bytes, objects);
    let mut resp = warp::reply::Response::new(text.into());
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The background sweeps: garbage collection and (when enabled) the scrub.
async fn maintain(
    storage: Arc<Storage>,
    gc_secs: u64,
    gc_grace: std::time::Duration,
    verify_secs: u64,
) {
    let every =
        |secs: u64| (secs > 0).then(|| tokio::time::interval(std::time::Duration::from_secs(secs)));
    // Pull recency is written in batches, once a minute.
    let (mut gc, mut verify, mut recency) = (every(gc_secs), every(verify_secs), every(60));
    // Intervals fire at once first; skip that so start-up stays quick.
    for i in [&mut gc, &mut verify, &mut recency].into_iter().flatten() {
        i.tick().await;
    }
    loop {
        tokio::select! {
            _ = tick(&mut recency) => {
        if let Err(e) = storage.flush_recency().await {
                    tracing::error!(error = %e, "recording pull times failed");
                }
            }
            _ = tick(&mut gc) => {
                if let Err(e) = storage.collect_garbage(gc_grace, crate::cache::GC_GRACE).await {
                    tracing::error!(error = %e, "garbage collection failed");
                }
            }
            _ = tick(&mut verify) => {
                match storage.verify().await {
                    Ok(r) if !r.damaged.is_empty() => tracing::error!(damaged = r.damaged.len(), "scrub found damaged content"),
                    Ok(r) => tracing::info!(checked = r.checked, bytes = r.bytes, "scrub found no damage"),
                    Err(e) => tracing::error!(error = %e, "scrub failed"),
                }
            }
        }
    }
}

/// The next tick of an optional interval; never, when there is none.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Re-reads the TLS certificate on every SIGHUP (and ignores the signal
/// when there is none, instead of dying of it), and a cluster member's
/// `[cluster] nodes` from its config file.
async fn reload_on_sighup(
    certificates: Option<Arc<Certificates>>,
    cluster: Option<(Arc<crate::cluster::Cluster>, std::path::PathBuf)>,
) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        if let Some((cluster, file)) = &cluster {
            reload_members(cluster, file.clone()).await;
        }
        let Some(certs) = certificates.clone() else {
            tracing::info!("SIGHUP: no TLS certificate to reload");
            continue;
        };
        match tokio::task::spawn_blocking(move || certs.reload()).await {
            Ok(Ok(())) => tracing::info!("TLS certificate reloaded"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
            }
            Err(e) => tracing::error!(error = %e, "TLS certificate reload failed"),
        }
    }
}

/// Takes the member list of the config file now; a file that cannot be
/// read, is invalid, or names another `self` keeps the list as it was.
async fn reload_members(cluster: &crate::cluster::Cluster, file: std::path::PathBuf) {
    let shown = file.display().to_string();
    let read = tokio::task::spawn_blocking(move || {
        let config = Config::from_file(&file)?;
        config.cluster_settings()
    })
    .await;
    let settings = match read {
        Ok(Ok(Some(settings))) if &settings.me == cluster.me() => settings,
        Ok(Ok(Some(settings))) => {
            return tracing::error!(file = %shown, was = %cluster.me(), now = %settings.me,
                "SIGHUP: [cluster] self changed, which needs a restart; keeping the member list");
        }
        Ok(Ok(None)) => {
            return tracing::error!(file = %shown,
                "SIGHUP: the config file has no [cluster] any more, which needs a restart; keeping the member list");
        }
        Ok(Err(e)) => {
            return tracing::error!(file = %shown, error = %e, "SIGHUP: cannot read the member list; keeping the old one");
        }
        Err(e) => return tracing::error!(error = %e, "SIGHUP: member list reload failed"),
    };
    cluster.set_nodes(&settings.nodes);
    let members: Vec<&str> = settings.nodes.iter().map(url::Url::as_str).collect();
    tracing::info!(?members, "SIGHUP: cluster members reloaded");
}

/// A bound, ready server.
pub(crate) struct Ferry {
    listener: TcpListener,
    shared: Arc<Shared>,
    gc_interval: u64,
    gc_grace: std::time::Duration,
    verify_interval: u64,
    tls: Option<(TcpListener, Arc<Certificates>)>,
    registry: Arc<Registry>,
    api: Arc<Api>,
    /// Held while this ferry serves: no second one opens the same stores.
    lock: crate::datadir::DataDirLock,
    /// Where the config came from (SIGHUP re-reads the cluster's members).
    config_file: Option<std::path::PathBuf>,
}

impl Ferry {
    /// Opens the stores, sets up the caches and the admin account, and binds
    /// the listener.
    pub(crate) async fn start(config: &Config) -> Result<Ferry, ServeError> {
        // Listeners and certificate first: a busy port or a bad certificate
        // fails before anything is created on disk.
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let tls = match (config.tls_listen, &config.tls_cert, &config.tls_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let (cert, key) = (cert.clone(), key.clone());
                let certificates =
                    tokio::task::spawn_blocking(move || Certificates::load(&cert, &key))
                        .await
                        .map_err(|e| ServeError::Admin(std::io::Error::other(e)))??;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Listen { addr, source })?;
                Some((listener, Arc::new(certificates)))
            }
            _ => None,
        };
        let secs = std::time::Duration::from_secs;
        let shared = Shared::new(
            Limits {
                max_connections: config
                    .max_connections
                    .unwrap_or_else(listen::default_max_connections),
                header_timeout: secs(config.client_header_timeout_secs),
                idle_timeout: secs(config.client_idle_timeout_secs),
                write_timeout: secs(config.client_write_timeout_secs),
            },
            config.public_url.as_ref().map(url::Url::as_str),
        );
        // Taken before the stores open, so a second ferry is told who holds
        // the directory instead of getting sled's lock error.
        let dir = config.data_dir.clone();
        let lock = tokio::task::spawn_blocking(move || {
            crate::datadir::lock(&dir, crate::datadir::Missing::Create)
        })
        .await
        .map_err(|e| ServeError::Admin(std::io::Error::other(e)))??;
        let storage_error = |source| ServeError::Storage {
            path: config.data_dir.clone(),
            source,
        };
        let data_dir = config.data_dir.clone();
        let (max_size, blob_store) = (config.max_size, config.storage.clone());
        let cluster = config
            .cluster_settings()
            .map_err(|e| ServeError::Admin(std::io::Error::other(e)))?
            .map(|s| crate::cluster::Cluster::new(&s));
        if cluster.is_some() && config.admin_password.is_none() {
            // A generated password would differ on every member, and the
            // dashboard's or a script's login would work on one only.
            return Err(ServeError::Admin(std::io::Error::other(
                "a cluster member needs the admin password every member shares: \
                 set admin_password in the config file or FERRY_ADMIN_PASSWORD",
            )));
        }
        let storage = tokio::task::spawn_blocking(move || {
            let storage = Storage::open_with_quota(&data_dir, max_size, &blob_store, cluster)?;
            // Nothing is downloading yet: any temp file is a crash's leftover.
            let leftovers = storage.remove_leftover_temp_files()?;
            if leftovers > 0 {
                tracing::info!(
                    files = leftovers,
                    "removed temp files of an interrupted run"
                );
            }
            Ok(storage)
        })
        .await
        .map_err(|e| storage_error(std::io::Error::other(e).into()))?
        .map_err(storage_error)?;
        // The counters count from here (status/ and /metrics say since when).
        let _ = METRICS.started_at();
        let caches = Arc::new(Caches::new(storage, Vec::new()));
        let manager = Arc::new(Manager::new(caches.clone(), config.tag_ttl_secs));
        let (configured, data_dir, password) = (
            config.caches.clone(),
            config.data_dir.clone(),
            config.admin_password.clone(),
        );
        let setup = manager.clone();
        let history_step = config.history_step_secs;
        let (admin, generated) = tokio::task::spawn_blocking(move || {
            setup.sync_config(&configured)?;
            setup.open_history(history_step)?;
            AdminAuth::load(password, &data_dir).map_err(|e| ManageError::Conflict(e.to_string()))
        })
        .await
        .map_err(|e| ServeError::Admin(std::io::Error::other(e)))??;
        if generated {
            // Printed once, to the console; never to the log.
            eprintln!(
                "ferry: generated the admin password (user \"admin\"), saved in {}: {}",
                config.data_dir.join("admin-password").display(),
                admin.password().expose()
            );
        }
        // A member joining a cluster serves the shared definitions from
        // the start; one that cannot read them serves its own meanwhile.
        let _ = manager.read_shared_state().await;
        for c in caches.list() {
            tracing::info!(base_path = %c.base_path(), upstream = %c.config().upstream,
                private = c.is_private(), "cache");
        }
        // One account, one throttle for wrong passwords on every endpoint.
        let api_admin = admin.clone();
        let sessions = Arc::new(crate::session::Sessions::default());
        Ok(Ferry {
            lock,
            config_file: config.file.clone(),
            listener,
            shared,
            gc_interval: config.gc_interval_secs,
            gc_grace: std::time::Duration::from_secs(config.gc_grace_secs),
            verify_interval: config.verify_interval_secs,
            tls,
            registry: Arc::new(Registry {
                caches,
                access: Arc::new(Access {
                    admin,
                    tokens: RegistryTokens::default(),
                }),
                browse: config.browse,
                sessions: sessions.clone(),
            }),
            api: Arc::new(Api {
                manager,
                auth: Arc::new(api_admin),
                sessions,
                data_dir: config.data_dir.clone(),
                browse: config.browse,
            }),
        })
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub(crate) fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        // Released when serving ends, after the last flush below.
        let _lock = self.lock;
        let storage = self.registry.caches.storage().clone();
        let routes = registry::routes(self.registry.clone())
            .or(api::routes(self.api.clone()))
            .or(crate::web::routes())
            .or(warp::path("healthz").and(warp::path::end()).map(|| "ok\n"))
            .or(warp::path("readyz").and(warp::path::end()).then({
                let storage = storage.clone();
                move || ready(storage.clone())
            }))
            .or(warp::path("metrics").and(warp::path::end()).then({
                let storage = storage.clone();
                move || metrics(storage.clone())
            }))
            .recover(|_rejection: warp::Rejection| async {
                Ok::<_, std::convert::Infallible>(registry::error_response(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "no such endpoint",
                    serde_json::json!({}),
                ))
            })
            .map(warp::Reply::into_response);
        // One access-log line and one metric per request, from the response.
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::any().map(std::time::Instant::now))
            .and(routes)
            .map(
                |method: warp::http::Method,
                 path: warp::path::FullPath,
                 start: std::time::Instant,
                 resp: warp::reply::Response| {
                    access_log(&method, path.as_str(), &resp, start);
                    resp
                },
            );
        let manager = self.api.manager.clone();
        if let Some(history) = manager.history_sampler() {
            tokio::spawn(history.run(self.registry.caches.clone()));
        }
        tokio::spawn(self.api.manager.clone().follow_shared_state());
        tokio::spawn(maintain(
            storage.clone(),
            self.gc_interval,
            self.gc_grace,
            self.verify_interval,
        ));
        // One shutdown signal for both listeners.
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        // Liveness of the other members decides who is responsible for what.
        let cluster = storage.cluster().cloned();
        if let Some(cluster) = &cluster {
            tokio::spawn(cluster.clone().watch());
        }
        // SIGHUP reloads the certificate (without TLS it is ignored, not
        // fatal) and the cluster's member list.
        tokio::spawn(reload_on_sighup(
            self.tls.as_ref().map(|(_, c)| c.clone()),
            cluster.zip(self.config_file),
        ));
        let https = self.tls.map(|(listener, certificates)| {
            tokio::spawn(listen::serve(
                listener,
                Some(certificates),
                warp::service(routes.clone()),
                self.shared.clone(),
                stopped.clone(),
            ))
        });
        // Each listener drains its connections (bounded) after the signal.
        listen::serve(
            self.listener,
            None,
            warp::service(routes),
            self.shared,
            stopped,
        )
        .await;
        if let Some(https) = https {
            let _ = https.await;
        }
        // The step under way, so that a restart within it loses nothing.
        if let Err(e) = manager.record_history_now().await {
            tracing::warn!(error = %e, "could not record the history's last step");
        }
        if let Err(e) = storage.flush_recency().await {
            tracing::error!(error = %e, "recording pull times at shutdown failed");
        }
        if let Err(e) = storage.meta().flush_async().await {
            tracing::error!(error = %e, "flushing metadata at shutdown failed");
        }
    }
}
