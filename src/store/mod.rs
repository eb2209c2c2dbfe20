//! Persistent storage: the blob store (a trait, [`BlobBackend`], with the
//! content-addressed directory as its implementation) and the metadata
//! database ([`MetaStore`]). Free of HTTP: it knows digests and records,
//! nothing of requests. Blob store calls block (callers run them on the
//! blocking pool); metadata calls are async and run on the blocking pool
//! themselves, with a synchronous view for code already there.

mod blobs;
mod history;
mod imports;
mod meta;
mod pins;
mod records;

pub use blobs::{
    check_blob_store, BlobBackend, BlobReader, CachedBlobStore, DirBlobStore, ObjectBlob,
    ObjectRange, OpenBlob, S3BlobStore, SharedState, Staging, StateEntry, StateObject, StoredBlob,
    TempBlob, VerifiedTemp, WriteIf, Written,
};
pub use history::{CachePoint, HistoryPoint, HistoryTier};
pub use imports::ImportMark;
pub use meta::{BlockingMeta, DbError, MetaStore};
pub use pins::{Pin, Pins};
pub use records::{
    decode, encode, BlobRecord, Change, Counts, DistributionRecord, ManifestRecord, RemoteRecord,
    RepoRecord, TagRecord, TaskRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata database error: {0}")]
    Db(DbError),
    #[error("metadata record {key:?} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("content does not match digest {0}")]
    DigestMismatch(crate::domain::Digest),
    /// The object store did not answer, or refused (down, unreachable,
    /// credentials denied): passes once it is back.
    #[error("the object store is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "this data directory's metadata describes the blob store \"{recorded}\", \
         and the configuration names \"{configured}\": give the command the \
         server's config (--config), or if the same blobs moved there, edit {}",
        .marker.display()
    )]
    OtherBlobStore {
        recorded: String,
        configured: String,
        marker: std::path::PathBuf,
    },
    #[error("the metadata database {} is in use by another process", .0.display())]
    Locked(std::path::PathBuf),
    #[error("the metadata database {} is damaged or was written by a newer ferry: {reason}", .path.display())]
    Unreadable {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl StoreError {
    /// A full disk is worth telling apart: it is not a bug and it passes.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io(e) if e.raw_os_error() == Some(28))
    }

    /// The blob store's service is unreachable (a 503, not a bug).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Damage in the metadata (or a format this ferry does not know): the
    /// one case where moving `meta/` aside and rebuilding it is the cure.
    pub fn is_damaged(&self) -> bool {
        matches!(
            self,
            StoreError::Unreadable { .. } | StoreError::Corrupt { .. }
        )
    }
}

/// Milliseconds since the Unix epoch (pull recency).
pub fn unix_millis() -> u64 {
    unix_micros() / 1000
}

/// Microseconds since the Unix epoch (API timestamps).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, the time unit of cache records.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
