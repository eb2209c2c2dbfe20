//! Staging: arriving content is written to a local temp file and hashed as
//! it is written, so that whether it matches its digest is known the moment
//! the last byte is in, without reading it again.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::StoreError;
use crate::domain::{Digest, DigestVerifier};

/// Distinguishes temp files made by one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The directory temp files are written in (for the directory store, on
/// the file system of the blob tree, so that a commit is a rename).
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Opens (creating) the staging directory.
    pub fn open(dir: PathBuf) -> Result<Staging, StoreError> {
        fs::create_dir_all(&dir)?;
        Ok(Staging { dir })
    }

    /// A new temp file for content expected to hash to `digest`.
    pub fn create(&self, digest: &Digest) -> Result<TempBlob, StoreError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}.part", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempBlob {
            path,
            file: Arc::new(file),
            digest: digest.clone(),
            hashing: Mutex::new(Hashing {
                hasher: Some(digest.verifier()),
                finished: None,
                written: 0,
            }),
            kept: false,
        })
    }

    /// Where the temp files are (for a backend that links one in).
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a temp file can be created here (the health check).
    pub fn probe(&self) -> Result<(), StoreError> {
        drop(self.create(&Digest::sha256_of(b""))?);
        Ok(())
    }

    pub(super) fn remove_all(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            fs::remove_file(entry?.path())?;
            removed += 1;
        }
        Ok(removed)
    }

    pub(super) fn remove_stale(&self, age: Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in super::dir::read_dir_or_empty(&self.dir)? {
            let modified = entry.metadata()?.modified()?;
            if modified.elapsed().unwrap_or_default() >= age {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The hash of what was appended: open to more bytes until `finished`.
struct Hashing {
    hasher: Option<DigestVerifier>,
    finished: Option<Digest>,
    written: u64,
}

/// A file being written in staging. Dropping it without a commit deletes
/// it, so a failed or cancelled download leaves nothing behind.
pub struct TempBlob {
    path: PathBuf,
    file: Arc<File>,
    /// What the content must hash to before it may be committed.
    digest: Digest,
    hashing: Mutex<Hashing>,
    /// Placed into the store: the file at `path` is no longer ours.
    kept: bool,
}

impl TempBlob {
    /// The open file, shared with readers that follow the download with
    /// positional reads (`read_at`), which need no shared file offset.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    fn hashing(&self) -> std::sync::MutexGuard<'_, Hashing> {
        self.hashing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `bytes` after what was appended before, hashing them.
    pub fn append(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let mut hashing = self.hashing();
        let at = hashing.written;
        let Some(hasher) = &mut hashing.hasher else {
            return Err(io::Error::other("temp file appended to after it was checked").into());
        };
        self.file.write_all_at(bytes, at)?;
        hasher.update(bytes);
        hashing.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.hashing().written
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether what was appended hashes to the digest. Ends the hashing:
    /// nothing may be appended after.
    pub fn matches_digest(&self) -> bool {
        let mut hashing = self.hashing();
        if let Some(hasher) = hashing.hasher.take() {
            hashing.finished = Some(hasher.finish());
        }
        hashing.finished.as_ref() == Some(&self.digest)
    }

    /// The content, proven to match its digest (else it is removed).
    pub(super) fn into_verified(self) -> Result<VerifiedTemp, StoreError> {
        if !self.matches_digest() {
            return Err(StoreError::DigestMismatch(self.digest.clone()));
        }
        Ok(VerifiedTemp(self))
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Staged content that hashed to its digest: what a backend may place.
/// Dropped unplaced, its file is removed like any temp file.
pub struct VerifiedTemp(TempBlob);

impl VerifiedTemp {
    pub fn digest(&self) -> &Digest {
        &self.0.digest
    }

    pub fn file(&self) -> &File {
        &self.0.file
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// The file was moved into the store: it must not be removed.
    pub fn kept(mut self) {
        self.0.kept = true;
    }
}
