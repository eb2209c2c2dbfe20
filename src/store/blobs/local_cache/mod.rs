//! The optional local read cache (`[storage] local_cache = "10GiB"`): a
//! bounded copy of the most recently read blobs on this node's disk, in
//! front of the object store, so that an edge node serves its hot images at
//! disk speed and while the object store is unreachable.
//!
//! [`CachedBlobStore`] wraps the store's backend. The copies live in a
//! content-addressed [`DirBlobStore`] under `DATA_DIR/local-cache/` (its own
//! write-temp-verify-rename discipline). They come from verified bytes
//! only: a commit links the staged file, which hashed to its digest, beside
//! the upload; a read that missed copies the object in the background,
//! hashing it as it arrives, so the first reader is never held up and
//! memory stays flat. The bytes held are bounded, least recently read out
//! first (`lru.rs`). The object store stays the truth: listing, removal,
//! quarantine and the scrub go to it, and a removal takes the local copy
//! too; a local copy that fails its digest on a scrub is dropped.

mod lru;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use self::lru::Lru;
use super::{BlobBackend, BlobReader, DirBlobStore, OpenBlob, Staging, StoredBlob, VerifiedTemp};
use crate::domain::Digest;
use crate::metrics::METRICS;
use crate::store::StoreError;

/// Copies from the object store made at once; a read that finds both busy
/// is not copied (the next read of the blob tries again). Each copy is a
/// second GET of the object, so this bounds what the cache adds to the
/// store's load.
const MAX_FILLS: usize = 2;

/// Distinguishes the links a commit makes into the local staging.
static LINK_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct CachedBlobStore {
    /// The object store: the truth.
    inner: Arc<dyn BlobBackend>,
    local: Arc<LocalCopies>,
}

struct LocalCopies {
    dir: DirBlobStore,
    state: Mutex<State>,
}

struct State {
    lru: Lru,
    /// Blobs being copied in from the store; `true` once removed meanwhile,
    /// so that the copy is not kept.
    filling: HashMap<Digest, bool>,
}

impl CachedBlobStore {
    /// Puts a cache of at most `capacity` bytes under `data_dir/local-cache/`
    /// in front of `inner`, its order restored from the files' times.
    pub fn open(
        inner: Arc<dyn BlobBackend>,
        data_dir: &Path,
        capacity: u64,
    ) -> Result<CachedBlobStore, StoreError> {
        let dir = DirBlobStore::open(&data_dir.join("local-cache"))?;
        let mut found = dir.stored()?;
        found.sort_by_key(|blob| blob.modified);
        let mut lru = Lru::new(capacity);
        // A smaller capacity than last run's: the oldest go now.
        for blob in found {
            for gone in lru.insert(&blob.digest, blob.size) {
                dir.remove(&gone)?;
            }
        }
        METRICS.set_local_cache_bytes(lru.held());
        tracing::info!(
            blobs = lru.len(),
            bytes = lru.held(),
            capacity = lru.capacity(),
            "local read cache opened"
        );
        Ok(CachedBlobStore {
            inner,
            local: Arc::new(LocalCopies {
                dir,
                state: Mutex::new(State {
                    lru,
                    filling: HashMap::new(),
                }),
            }),
        })
    }

    /// Copies a blob just read from the store into the local cache on a
    /// thread of its own, unless it cannot fit, is being copied already or
    /// enough copies are under way.
    fn fill_in_background(&self, digest: &Digest, size: u64) {
        {
            let mut state = self.local.state();
            if !state.lru.fits(size)
                || state.filling.len() >= MAX_FILLS
                || state.filling.contains_key(digest)
            {
                return;
            }
            state.filling.insert(digest.clone(), false);
        }
        let (inner, local, copied) = (self.inner.clone(), self.local.clone(), digest.clone());
        let spawned = std::thread::Builder::new()
            .name("ferry-local-cache-fill".into())
            .spawn(move || {
                if let Err(e) = local.fill(&*inner, &copied) {
                    tracing::warn!(digest = %copied, error = %e, "local read cache: copy not kept");
                }
                local.state().filling.remove(&copied);
            });
        if spawned.is_err() {
            self.local.state().filling.remove(digest);
        }
    }
}

impl LocalCopies {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The local copy, if held (and marks it as just read, also in the
    /// file's time, which orders the cache after a restart).
    fn open(&self, digest: &Digest) -> Result<Option<OpenBlob>, StoreError> {
        if !self.state().lru.touch(digest) {
            return Ok(None);
        }
        let Some(blob) = self.dir.open(digest)? else {
            // Gone from the disk behind ferry's back.
            self.state().lru.remove(digest);
            return Ok(None);
        };
        if let BlobReader::File(file) = &blob.reader {
            let _ = file.set_modified(SystemTime::now());
        }
        Ok(Some(blob))
    }

    /// Moves a file that is known to hold `digest` (verified, fsynced) into
    /// the cache and takes out what no longer fits. `false` when it was not
    /// moved (too large, or a copy from the store removed while it ran):
    /// the caller removes the file. The directory is not fsynced: a rename
    /// lost to a power cut only loses a copy.
    fn adopt(
        &self,
        from: &Path,
        digest: &Digest,
        size: u64,
        fill: bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        if !state.lru.fits(size) || (fill && state.filling.get(digest) == Some(&true)) {
            return Ok(false);
        }
        self.dir.move_in(from, digest)?;
        for gone in state.lru.insert(digest, size) {
            if let Err(e) = self.dir.remove(&gone) {
                tracing::warn!(digest = %gone, error = %e, "local read cache: eviction failed");
            }
        }
        METRICS.set_local_cache_bytes(state.lru.held());
        Ok(true)
    }

    /// Streams the object into a local temp file, hashing it, then keeps it
    /// if it hashed to its digest.
    fn fill(&self, inner: &dyn BlobBackend, digest: &Digest) -> Result<(), StoreError> {
        let Some(blob) = inner.open(digest)? else {
            return Ok(());
        };
        let temp = self.dir.create_temp(digest)?;
        let mut reader = blob.reader.into_read();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            temp.append(&buf[..n])?;
        }
        let verified = temp.into_verified()?;
        verified.file().sync_all()?;
        if self.adopt(verified.path(), digest, blob.size, true)? {
            verified.kept();
        }
        Ok(())
    }

    /// Keeps small verified content (a manifest) read from or written to
    /// the store. A failure only loses the copy.
    fn keep_bytes(&self, digest: &Digest, bytes: &[u8]) {
        let kept = (|| {
            let temp = self.dir.create_temp(digest)?;
            temp.append(bytes)?;
            let verified = temp.into_verified()?;
            verified.file().sync_all()?;
            if self.adopt(verified.path(), digest, bytes.len() as u64, false)? {
                verified.kept();
            }
            Ok::<_, StoreError>(())
        })();
        if let Err(e) = kept {
            tracing::warn!(%digest, error = %e, "local read cache: copy not kept");
        }
    }

    /// A second name for a staged file about to be committed, in the local
    /// staging (a hard link, else a copy on another file system), so that
    /// it can be kept once uploaded. `None` when it cannot be held.
    fn link(&self, staged: &Path, size: u64) -> Option<PathBuf> {
        if !self.state().lru.fits(size) {
            return None;
        }
        let n = LINK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let link = self
            .dir
            .staging()
            .dir()
            .join(format!("{}-commit-{n}.part", std::process::id()));
        let linked = fs::hard_link(staged, &link).or_else(|_| fs::copy(staged, &link).map(|_| ()));
        match linked {
            Ok(()) => Some(link),
            Err(e) => {
                tracing::warn!(error = %e, "local read cache: staged file not linked");
                None
            }
        }
    }

    /// Keeps the link of a committed file; removes it where it is not kept.
    fn keep_link(&self, link: &Path, digest: &Digest, size: u64) {
        let kept = File::open(link)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::from)
            .and_then(|()| self.adopt(link, digest, size, false));
        match kept {
            Ok(true) => {}
            Ok(false) => {
                let _ = fs::remove_file(link);
            }
            Err(e) => {
                let _ = fs::remove_file(link);
                tracing::warn!(%digest, error = %e, "local read cache: copy not kept");
            }
        }
    }

    /// Takes out the local copy (and cancels a copy under way).
    fn forget(&self, digest: &Digest) -> Result<(), StoreError> {
        let mut state = self.state();
        state.lru.remove(digest);
        METRICS.set_local_cache_bytes(state.lru.held());
        if let Some(removed) = state.filling.get_mut(digest) {
            *removed = true;
        }
        self.dir.remove(digest)
    }
}

impl BlobBackend for CachedBlobStore {
    /// The store's: arriving content is staged where the store uploads it
    /// from.
    fn staging(&self) -> &Staging {
        self.inner.staging()
    }

    /// Uploads, then keeps the staged file locally too (linked before the
    /// store's `place` takes it).
    fn place(&self, temp: VerifiedTemp) -> Result<(), StoreError> {
        let digest = temp.digest().clone();
        let size = temp.file().metadata()?.len();
        let link = self.local.link(temp.path(), size);
        let placed = self.inner.place(temp);
        if let Some(link) = link {
            if placed.is_ok() {
                self.local.keep_link(&link, &digest, size);
            } else {
                let _ = fs::remove_file(&link);
            }
        }
        placed
    }

    /// The local copy first; else the object, copied in the background.
    fn open(&self, digest: &Digest) -> Result<Option<OpenBlob>, StoreError> {
        if let Some(local) = self.local.open(digest)? {
            METRICS.local_cache_read(true);
            return Ok(Some(local));
        }
        METRICS.local_cache_read(false);
        let found = self.inner.open(digest)?;
        if let Some(blob) = &found {
            self.fill_in_background(digest, blob.size);
        }
        Ok(found)
    }

    fn size_of(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self.local.state().lru.size_of(digest) {
            Some(size) => Ok(Some(size)),
            None => self.inner.size_of(digest),
        }
    }

    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if self.local.state().lru.touch(digest) {
            if let Some(bytes) = self.local.dir.read_blob(digest)? {
                return Ok(Some(bytes));
            }
            self.local.state().lru.remove(digest);
        }
        let found = self.inner.read_blob(digest)?;
        if let Some(bytes) = &found {
            if digest.matches(bytes) {
                self.local.keep_bytes(digest, bytes);
            }
        }
        Ok(found)
    }

    fn contains(&self, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.local.state().lru.size_of(digest).is_some() || self.inner.contains(digest)?)
    }

    /// The store's blobs (the local copies are a subset, or were removed
    /// from the store by another member).
    fn stored(&self) -> Result<Vec<StoredBlob>, StoreError> {
        self.inner.stored()
    }

    fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        self.local.forget(digest)?;
        self.inner.remove(digest)
    }

    fn quarantine(&self, digest: &Digest) -> Result<String, StoreError> {
        self.local.forget(digest)?;
        self.inner.quarantine(digest)
    }

    /// Re-hashes the local copy too, dropping it if damaged; the answer is
    /// the store's.
    fn verify(&self, digest: &Digest) -> Result<Option<bool>, StoreError> {
        if self.local.state().lru.size_of(digest).is_some() {
            match self.local.dir.verify(digest)? {
                Some(true) => {}
                Some(false) | None => {
                    tracing::warn!(%digest, "local read cache: damaged copy dropped");
                    self.local.forget(digest)?;
                }
            }
        }
        self.inner.verify(digest)
    }

    /// Uploads unless the store has it; keeps a local copy either way.
    fn put_verified(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if !digest.matches(bytes) {
            return Err(StoreError::DigestMismatch(digest.clone()));
        }
        if !self.inner.contains(digest)? {
            self.inner.put_verified(digest, bytes)?;
        }
        self.local.keep_bytes(digest, bytes);
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.inner.probe()
    }

    fn serves_without_store(&self) -> bool {
        true
    }

    fn remove_temp_files(&self) -> Result<usize, StoreError> {
        Ok(self.inner.remove_temp_files()? + self.local.dir.remove_temp_files()?)
    }

    fn remove_stale_temp_files(&self, age: Duration) -> Result<usize, StoreError> {
        Ok(self.inner.remove_stale_temp_files(age)?
            + self.local.dir.remove_stale_temp_files(age)?)
    }
}

#[cfg(test)]
mod tests;
