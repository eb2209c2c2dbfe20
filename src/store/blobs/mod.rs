//! The blob store seam: where verified content lives, behind one trait.
//!
//! What arrives is always staged in a local temp file ([`TempBlob`]):
//! clients following a download read the growing file, and the bytes are
//! hashed as they are written. Only [`BlobBackend::commit`] moves staged
//! content into the store, and only once it hashed to its digest; reads,
//! listing, removal and the scrub go through the same trait. Today's one
//! implementation is the content-addressed directory ([`DirBlobStore`]); an
//! object store ([`S3BlobStore`], `s3.rs`) implements the same methods, and
//! nothing above `store` changes (routes, quota and GC see only this trait)
//! but the one reader arm for its [`BlobReader::Object`].
//!
//! The methods block (a file system or a network call): callers run them on
//! the blocking pool, as every caller in `cache` does.

mod dir;
mod local_cache;
mod marker;
mod s3;
mod staging;

use std::fs::File;
use std::time::{Duration, SystemTime};

pub use dir::DirBlobStore;
pub use local_cache::CachedBlobStore;
pub use marker::check_blob_store;
pub use s3::{
    ObjectBlob, ObjectRange, S3BlobStore, SharedState, StateEntry, StateObject, WriteIf, Written,
};
pub use staging::{Staging, TempBlob, VerifiedTemp};

use super::StoreError;
use crate::domain::Digest;

/// A stored blob opened for reading, with its size.
pub struct OpenBlob {
    pub size: u64,
    pub reader: BlobReader,
}

/// How a stored blob is read. A local file is read by the caller in large
/// blocks on the blocking pool: the warm path, kept free of any layer. An
/// object in an object store is a source of byte ranges (one ranged GET
/// per response part), which `cache::Blob::stream` streams as it arrives.
pub enum BlobReader {
    File(File),
    Object(ObjectBlob),
}

impl BlobReader {
    /// The whole blob as a blocking reader (for code on the blocking pool
    /// that copies a blob, such as a bundle's writer).
    pub fn into_read(self) -> Box<dyn std::io::Read + Send> {
        match self {
            BlobReader::File(file) => Box::new(file),
            BlobReader::Object(object) => Box::new(object.range(0, object.size()).into_read()),
        }
    }
}

/// A blob found in the store.
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    /// When it was stored (its age protects it from garbage collection).
    pub modified: SystemTime,
}

/// Where verified blobs are kept. Object-safe: the store is chosen at
/// start-up and shared as `Arc<dyn BlobBackend>`.
pub trait BlobBackend: Send + Sync + 'static {
    /// The local directory arriving content is staged in.
    fn staging(&self) -> &Staging;

    /// Places staged content that hashed to its digest into the store,
    /// durably. Only [`commit`](BlobBackend::commit) calls it.
    fn place(&self, temp: VerifiedTemp) -> Result<(), StoreError>;

    /// Opens a stored blob, or `None` when it is not stored.
    fn open(&self, digest: &Digest) -> Result<Option<OpenBlob>, StoreError>;

    /// The size of a stored blob, or `None` when it is not stored.
    fn size_of(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Reads a whole stored blob (for manifests and configs, which are small).
    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError>;

    fn contains(&self, digest: &Digest) -> Result<bool, StoreError>;

    /// Every stored blob (walks the whole store).
    fn stored(&self) -> Result<Vec<StoredBlob>, StoreError>;

    /// Removes a stored blob; removing one not stored is no error.
    fn remove(&self, digest: &Digest) -> Result<(), StoreError>;

    /// Moves a damaged blob out of the store for a person to look at (it is
    /// no longer served); returns where it went.
    fn quarantine(&self, digest: &Digest) -> Result<String, StoreError>;

    /// Re-hashes a stored blob: `Some(true)` intact, `Some(false)` damaged,
    /// `None` not stored.
    fn verify(&self, digest: &Digest) -> Result<Option<bool>, StoreError>;

    /// A new staging file for content expected to hash to `digest`; removed
    /// again unless committed.
    fn create_temp(&self, digest: &Digest) -> Result<TempBlob, StoreError> {
        self.staging().create(digest)
    }

    /// Stores staged content under its digest: refused (and the temp file
    /// removed) unless what was appended hashes to it.
    fn commit(&self, temp: TempBlob) -> Result<(), StoreError> {
        self.place(temp.into_verified()?)
    }

    /// Stores small content (a manifest) after checking it hashes to `digest`.
    fn put_verified(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if !digest.matches(bytes) {
            return Err(StoreError::DigestMismatch(digest.clone()));
        }
        if self.contains(digest)? {
            return Ok(());
        }
        let temp = self.create_temp(digest)?;
        temp.append(bytes)?;
        self.commit(temp)
    }

    /// Whether the store answers (for `/readyz`): a local directory is
    /// checked by its staging probe; a remote store asks its service.
    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether some blobs are read without the store (a local read cache):
    /// an unreachable store then leaves the node serving what it holds.
    fn serves_without_store(&self) -> bool {
        false
    }

    /// Removes every staging file: what a previous run left behind (call at
    /// start-up, when nothing is downloading).
    fn remove_temp_files(&self) -> Result<usize, StoreError> {
        self.staging().remove_all()
    }

    /// Removes staging files not written to for `age`: leftovers of a crash
    /// (a live download writes continuously, and times out long before).
    fn remove_stale_temp_files(&self, age: Duration) -> Result<usize, StoreError> {
        self.staging().remove_stale(age)
    }
}
