use std::sync::Arc;

use crate::config::StaleCase;
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

impl CacheError {
    /// The `stale_if` case of a failure to follow a tag upstream, if cached
    /// content may stand in for it at all (ferry's own failures: never).
    pub(crate) fn stale_case(&self) -> Option<StaleCase> {
        match self {
            CacheError::ManifestUnknown => Some(StaleCase::NotFound),
            CacheError::Upstream(e) => Some(e.stale_case()),
            CacheError::DigestMismatch(_) | CacheError::Truncated { .. } => Some(StaleCase::Error),
            _ => None,
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
