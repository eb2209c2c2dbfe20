//! What can go wrong in an import: the bundle's fault (refused, nothing
//! recorded) or ferry's own.

use crate::bundle::BundleError;
use crate::cache::CacheError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    /// The bundle's fault: nothing was recorded.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Ferry's own failure (the store).
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Cache(e.into())
    }
}
