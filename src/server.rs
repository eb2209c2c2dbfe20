//! Assembles ferry from its configuration and serves it over HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::http::StatusCode;
use warp::Filter;

use crate::cache::{Cache, Caches, Storage};
use crate::config::Config;
use crate::registry;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the data directory {path}: {source}")]
    Storage {
        path: std::path::PathBuf,
        source: crate::store::StoreError,
    },
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound, ready server.
pub struct Ferry {
    listener: TcpListener,
    caches: Arc<Caches>,
}

impl Ferry {
    /// Opens the stores, sets up the caches, and binds the listener.
    pub async fn start(config: &Config) -> Result<Ferry, ServeError> {
        let data_dir = config.data_dir.clone();
        let storage = tokio::task::spawn_blocking(move || Storage::open(&data_dir))
            .await
            .map_err(|e| ServeError::Storage {
                path: config.data_dir.clone(),
                source: std::io::Error::other(e).into(),
            })?
            .map_err(|source| ServeError::Storage {
                path: config.data_dir.clone(),
                source,
            })?;
        let caches = config
            .caches
            .iter()
            .map(|c| Cache::new(c, config.tag_ttl_secs, storage.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        for c in &config.caches {
            tracing::info!(base_path = %c.base_path, upstream = %c.upstream, "cache");
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Ok(Ferry {
            listener,
            caches: Arc::new(Caches::new(storage, caches)),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let storage = self.caches.storage().clone();
        let routes = registry::routes(self.caches.clone())
            .or(warp::path::end().map(|| {
                concat!("ferry ", env!("CARGO_PKG_VERSION"), ": a pull-through caching registry. Pull through /v2/<base_path>/<repository>.\n")
            }))
            .or(warp::path("healthz").and(warp::path::end()).map(|| "ok\n"))
            .recover(|_rejection: warp::Rejection| async {
                Ok::<_, std::convert::Infallible>(registry::error_response(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "no such endpoint",
                    serde_json::json!({}),
                ))
            })
            .with(warp::log::custom(|info| {
                tracing::info!(
                    target: "ferry::access",
                    method = %info.method(),
                    path = info.path(),
                    status = info.status().as_u16(),
                    micros = info.elapsed().as_micros() as u64,
                );
            }));
        warp::serve(routes)
            .incoming(self.listener)
            .graceful(shutdown)
            .run()
            .await;
        let meta = storage.meta().clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || meta.flush()).await {
            tracing::error!(error = %e, "flushing metadata at shutdown failed");
        }
    }
}
