//! The object store's plumbing shared by its reads and its uploads: the
//! runtime its requests run on, and what its failures mean to ferry.

use std::io;

use crate::store::StoreError;

/// Blobs up to this size go up in one PUT (create-only), larger ones in
/// parts of at least this size (S3's minimum part is 5 MiB).
pub(crate) const PART_SIZE: u64 = 8 * 1024 * 1024;

/// The object store's own runtime, shut down without blocking when the
/// backend goes (dropping a runtime inside another one would panic).
pub(crate) struct IoRuntime(Option<tokio::runtime::Runtime>);

impl IoRuntime {
    pub(crate) fn new() -> io::Result<IoRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-s3")
            .enable_all()
            .build()?;
        Ok(IoRuntime(Some(runtime)))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }

    /// Runs `work` to completion; call from a thread that may block.
    pub(crate) fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.handle().block_on(work)
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Any failure to talk to the object store: the service is unavailable to
/// ferry (a 503 on `/v2/`), whatever the reason (down, refused, denied).
pub(crate) fn unavailable(e: object_store::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
