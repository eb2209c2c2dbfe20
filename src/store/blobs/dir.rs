use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{BlobBackend, BlobReader, OpenBlob, Staging, StoredBlob, VerifiedTemp};
use crate::domain::Digest;
use crate::store::StoreError;

/// The content-addressed blob tree: `blobs/<alg>/<first two hex>/<hex>`,
/// staged in `tmp/` beside it. A file is only ever placed there by
/// [`BlobBackend::commit`] after its bytes were verified, so everything
/// under `blobs/` is served as is.
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: PathBuf,
    staging: Staging,
}

impl DirBlobStore {
    /// Opens (creating) the tree under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<DirBlobStore, StoreError> {
        fs::create_dir_all(data_dir.join("blobs"))?;
        Ok(DirBlobStore {
            root: data_dir.to_path_buf(),
            staging: Staging::open(data_dir.join("tmp"))?,
        })
    }

    /// Renames a file whose content is known to hash to `digest` (verified
    /// and fsynced by the caller) into the tree; returns the directory it
    /// went to, for the caller to fsync.
    pub(super) fn move_in(&self, from: &Path, digest: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.path_of(digest);
        let dir = dest
            .parent()
            .ok_or_else(|| io::Error::other("blob path has no parent"))?;
        fs::create_dir_all(dir)?;
        fs::rename(from, &dest)?;
        Ok(dir.to_path_buf())
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(&hex[..2])
            .join(hex)
    }
}

/// `None` for a file that is not there.
fn not_found_as_none<T>(result: io::Result<T>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl BlobBackend for DirBlobStore {
    fn staging(&self) -> &Staging {
        &self.staging
    }

    /// Makes the content durable under its digest: fsync the file, rename it
    /// into the tree, fsync the directory so the rename survives a power cut.
    fn place(&self, temp: VerifiedTemp) -> Result<(), StoreError> {
        temp.file().sync_all()?;
        let dir = self.move_in(temp.path(), temp.digest())?;
        temp.kept();
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    fn open(&self, digest: &Digest) -> Result<Option<OpenBlob>, StoreError> {
        let Some(file) = not_found_as_none(File::open(self.path_of(digest)))? else {
            return Ok(None);
        };
        let size = file.metadata()?.len();
        Ok(Some(OpenBlob {
            size,
            reader: BlobReader::File(file),
        }))
    }

    fn size_of(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        Ok(not_found_as_none(fs::metadata(self.path_of(digest)))?.map(|m| m.len()))
    }

    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        not_found_as_none(fs::read(self.path_of(digest)))
    }

    fn contains(&self, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.path_of(digest).is_file())
    }

    fn stored(&self) -> Result<Vec<StoredBlob>, StoreError> {
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

    fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        not_found_as_none(fs::remove_file(self.path_of(digest)))?;
        Ok(())
    }

    /// Into `quarantine/` beside the tree.
    fn quarantine(&self, digest: &Digest) -> Result<String, StoreError> {
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir)?;
        let dest = dir.join(format!("{}-{}", digest.algorithm().name(), digest.hex()));
        fs::rename(self.path_of(digest), &dest)?;
        Ok(dest.display().to_string())
    }

    /// Reads in large blocks, never the whole file.
    fn verify(&self, digest: &Digest) -> Result<Option<bool>, StoreError> {
        let Some(mut file) = not_found_as_none(File::open(self.path_of(digest)))? else {
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
}

pub(super) fn read_dir_or_empty(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect::<Result<_, _>>()?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> usize {
        read_dir_or_empty(dir).unwrap().len()
    }

    #[test]
    fn put_verified_rejects_wrong_bytes_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"hello");
        assert!(matches!(
            store.put_verified(&d, b"world"),
            Err(StoreError::DigestMismatch(_))
        ));
        assert!(!store.contains(&d).unwrap());
        store.put_verified(&d, b"hello").unwrap();
        assert_eq!(store.read_blob(&d).unwrap().unwrap(), b"hello");
        assert_eq!(files_in(&dir.path().join("tmp")), 0);
    }

    #[test]
    fn commit_refuses_content_that_does_not_hash_to_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"hello world");
        let temp = store.create_temp(&d).unwrap();
        temp.append(b"hello ").unwrap();
        temp.append(b"wurld").unwrap();
        assert_eq!(temp.len(), 11);
        let err = store.commit(temp).err().unwrap();
        assert!(
            matches!(err, StoreError::DigestMismatch(ref x) if *x == d),
            "{err:?}"
        );
        // Nothing in the tree, nothing left in staging.
        assert!(!store.contains(&d).unwrap());
        assert!(store.stored().unwrap().is_empty());
        assert!(store.open(&d).unwrap().is_none());
        assert_eq!(files_in(&dir.path().join("tmp")), 0);

        // The same bytes, right: stored, listed and readable.
        let temp = store.create_temp(&d).unwrap();
        temp.append(b"hello ").unwrap();
        temp.append(b"world").unwrap();
        store.commit(temp).unwrap();
        let listed: Vec<_> = store
            .stored()
            .unwrap()
            .into_iter()
            .map(|b| (b.digest, b.size))
            .collect();
        assert_eq!(listed, [(d.clone(), 11)]);
        let opened = store.open(&d).unwrap().unwrap();
        assert_eq!(opened.size, 11);
        assert_eq!(store.verify(&d).unwrap(), Some(true));
        assert_eq!(files_in(&dir.path().join("tmp")), 0);
    }

    #[test]
    fn a_checked_temp_takes_no_more_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"ab");
        let temp = store.create_temp(&d).unwrap();
        temp.append(b"a").unwrap();
        assert!(!temp.matches_digest());
        // The hash was finished over "a": appending "b" now must not let
        // the content pass as "ab".
        assert!(temp.append(b"b").is_err());
        assert!(store.commit(temp).is_err());
        assert!(!store.contains(&d).unwrap());
    }

    #[test]
    fn remove_and_quarantine_take_a_blob_out_of_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        store.put_verified(&a, b"a").unwrap();
        store.put_verified(&b, b"b").unwrap();
        store.remove(&a).unwrap();
        store.remove(&a).unwrap();
        assert!(!store.contains(&a).unwrap());
        let place = store.quarantine(&b).unwrap();
        assert_eq!(fs::read(&place).unwrap(), b"b");
        assert!(store.stored().unwrap().is_empty());
        assert_eq!(store.verify(&b).unwrap(), None);
    }

    #[test]
    fn dropped_temp_is_removed_and_startup_cleans() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let temp = store.create_temp(&Digest::sha256_of(b"x")).unwrap();
        assert_eq!(files_in(&dir.path().join("tmp")), 1);
        drop(temp);
        assert_eq!(files_in(&dir.path().join("tmp")), 0);
        fs::write(dir.path().join("tmp/leftover.part"), b"x").unwrap();
        assert_eq!(
            DirBlobStore::open(dir.path())
                .unwrap()
                .remove_temp_files()
                .unwrap(),
            1
        );
        assert_eq!(files_in(&dir.path().join("tmp")), 0);
    }
}
