use std::sync::Arc;

use crate::domain::Digest;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// Who caused a failure: decides the status class and whether cached
/// content may stand in (stale-if-error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Client,
    Upstream,
    Ferry,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CacheError {
    #[error("repository unknown")]
    NameUnknown,
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("blob unknown")]
    BlobUnknown,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("upstream sent content that does not match digest {0}")]
    DigestMismatch(Digest),
    #[error("upstream body ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("{0}")]
    Store(Arc<StoreError>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for CacheError {
    fn from(e: StoreError) -> Self {
        CacheError::Store(Arc::new(e))
    }
}

impl CacheError {
    pub(crate) fn cause(&self) -> Cause {
        match self {
            CacheError::NameUnknown | CacheError::ManifestUnknown | CacheError::BlobUnknown => {
                Cause::Client
            }
            CacheError::Upstream(_)
            | CacheError::DigestMismatch(_)
            | CacheError::Truncated { .. } => Cause::Upstream,
            CacheError::Store(_) | CacheError::Internal(_) => Cause::Ferry,
        }
    }
}

/// Runs synchronous store work on the blocking pool, off the async threads.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, CacheError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CacheError::Internal(format!("blocking task failed: {e}")))?
        .map_err(CacheError::from)
}
