use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::StoreError;
use crate::domain::{Digest, DigestVerifier};

/// The content-addressed blob tree: `blobs/<alg>/<first two hex>/<hex>`.
/// A file is only ever placed there by [`TempBlob::commit`] after its bytes
/// were verified, so everything under `blobs/` is served as is.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// Distinguishes temp files made by one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    /// Opens (creating) the tree under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<BlobStore, StoreError> {
        let store = BlobStore {
            root: data_dir.to_path_buf(),
        };
        fs::create_dir_all(store.root.join("blobs"))?;
        fs::create_dir_all(store.temp_dir())?;
        Ok(store)
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes every temp file: what a previous run left behind (call at
    /// start-up, when nothing is downloading).
    pub fn remove_temp_files(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in fs::read_dir(self.temp_dir())? {
            fs::remove_file(entry?.path())?;
            removed += 1;
        }
        Ok(removed)
    }

    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(&hex[..2])
            .join(hex)
    }

    /// Opens a stored blob with its size, or `None` when it is not stored.
    pub fn open_blob(&self, digest: &Digest) -> Result<Option<(File, u64)>, StoreError> {
        match File::open(self.path_of(digest)) {
            Ok(file) => {
                let size = file.metadata()?.len();
                Ok(Some((file, size)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The size of a stored blob, or `None` when it is not stored.
    pub fn size_of(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.path_of(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole stored blob (for manifests, which are small).
    pub fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.path_of(digest)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// A new temp file, removed again unless committed.
    pub fn create_temp(&self) -> Result<TempBlob, StoreError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .temp_dir()
            .join(format!("{}-{n}.part", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempBlob {
            store: self.clone(),
            path,
            file: Arc::new(file),
            committed: false,
        })
    }

    /// Stores small content (a manifest) after checking it hashes to `digest`.
    pub fn put_verified(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if !digest.matches(bytes) {
            return Err(StoreError::DigestMismatch(digest.clone()));
        }
        if self.contains(digest) {
            return Ok(());
        }
        let mut temp = self.create_temp()?;
        temp.file_mut()?.write_all(bytes)?;
        temp.commit(digest)
    }

    /// Every file in the blob tree whose name is a valid digest, with its
    /// size and modification time (blocking; walks the tree).
    pub fn stored(&self) -> Result<Vec<StoredBlob>, StoreError> {
        let mut found = Vec::new();
        for alg in read_dir_or_empty(&self.root.join("blobs"))? {
            let algorithm = alg.file_name().to_string_lossy().into_owned();
            for prefix in read_dir_or_empty(&alg.path())? {
                for file in read_dir_or_empty(&prefix.path())? {
                    let name = file.file_name().to_string_lossy().into_owned();
                    let Ok(digest) = format!("{algorithm}:{name}").parse::<Digest>() else {
                        continue;
                    };
                    let meta = file.metadata()?;
                    found.push(StoredBlob {
                        digest,
                        size: meta.len(),
                        modified: meta.modified()?,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Moves a damaged blob out of the tree, into `quarantine/`, for a
    /// person to look at; it is no longer served.
    pub fn quarantine(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir)?;
        let dest = dir.join(format!("{}-{}", digest.algorithm().name(), digest.hex()));
        fs::rename(self.path_of(digest), &dest)?;
        Ok(dest)
    }

    /// Re-hashes a stored blob: `Some(true)` intact, `Some(false)` damaged,
    /// `None` not stored. Reads in large blocks, never the whole file.
    pub fn verify(&self, digest: &Digest) -> Result<Option<bool>, StoreError> {
        let Some((mut file, _)) = self.open_blob(digest)? else {
            return Ok(None);
        };
        let mut hasher = digest.verifier();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Some(hasher.finish() == *digest))
    }

    /// Removes temp files not written to for `age`: leftovers of a crash
    /// (a live download writes continuously, and times out long before).
    pub fn remove_stale_temp_files(&self, age: std::time::Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in read_dir_or_empty(&self.temp_dir())? {
            let modified = entry.metadata()?.modified()?;
            if modified.elapsed().unwrap_or_default() >= age {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        match fs::remove_file(self.path_of(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// A file found in the blob tree.
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect::<Result<_, _>>()?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// A file being written in `tmp/`. Dropping it without [`commit`] deletes
/// it, so a failed or cancelled download leaves nothing behind.
///
/// [`commit`]: TempBlob::commit
pub struct TempBlob {
    store: BlobStore,
    path: PathBuf,
    file: Arc<File>,
    committed: bool,
}

impl TempBlob {
    /// The open file, shared with readers that follow the download with
    /// positional reads (`read_at`), which need no shared file offset.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    fn file_mut(&mut self) -> Result<&mut File, StoreError> {
        Arc::get_mut(&mut self.file)
            .ok_or_else(|| StoreError::Io(io::Error::other("temp file is shared")))
    }

    /// Writes `bytes` at `offset` and feeds them to `hasher`.
    pub fn write_at(
        &self,
        offset: u64,
        bytes: &[u8],
        hasher: &mut DigestVerifier,
    ) -> Result<(), StoreError> {
        self.file.write_all_at(bytes, offset)?;
        hasher.update(bytes);
        Ok(())
    }

    /// Makes the content durable under its digest: fsync the file, rename it
    /// into the tree, fsync the directory so the rename survives a power cut.
    pub fn commit(mut self, digest: &Digest) -> Result<(), StoreError> {
        self.file.sync_all()?;
        let dest = self.store.path_of(digest);
        let dir = dest
            .parent()
            .ok_or_else(|| io::Error::other("blob path has no parent"))?;
        fs::create_dir_all(dir)?;
        fs::rename(&self.path, &dest)?;
        self.committed = true;
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verified_rejects_wrong_bytes_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"hello");
        assert!(matches!(
            store.put_verified(&d, b"world"),
            Err(StoreError::DigestMismatch(_))
        ));
        assert!(!store.contains(&d));
        store.put_verified(&d, b"hello").unwrap();
        assert_eq!(store.read_blob(&d).unwrap().unwrap(), b"hello");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn dropped_temp_is_removed_and_startup_cleans() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let temp = store.create_temp().unwrap();
        let path = temp.path.clone();
        assert!(path.exists());
        drop(temp);
        assert!(!path.exists());
        fs::write(dir.path().join("tmp/leftover.part"), b"x").unwrap();
        assert_eq!(
            BlobStore::open(dir.path())
                .unwrap()
                .remove_temp_files()
                .unwrap(),
            1
        );
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
