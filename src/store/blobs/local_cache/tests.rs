//! The local read cache in front of a real directory store (standing in
//! for the object store: the wrapper sees only the trait).

use std::path::Path;

use super::*;

struct Setup {
    _dir: tempfile::TempDir,
    store_dir: PathBuf,
    cache_dir: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (store_dir, cache_dir) = (dir.path().join("store"), dir.path().join("node"));
        Setup {
            _dir: dir,
            store_dir,
            cache_dir,
        }
    }

    fn open(&self, capacity: u64) -> CachedBlobStore {
        let inner: Arc<dyn BlobBackend> = Arc::new(DirBlobStore::open(&self.store_dir).unwrap());
        CachedBlobStore::open(inner, &self.cache_dir, capacity).unwrap()
    }

    fn local_copy(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.cache_dir.join("local-cache"), digest)
    }

    fn stored_object(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.store_dir, digest)
    }
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn commit(store: &CachedBlobStore, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    let temp = store.create_temp(&digest).unwrap();
    temp.append(bytes).unwrap();
    store.commit(temp).unwrap();
    digest
}

fn read_all(blob: OpenBlob) -> Vec<u8> {
    let mut out = Vec::new();
    blob.reader.into_read().read_to_end(&mut out).unwrap();
    out
}

/// Bounded polling for the background copy.
fn wait_for(path: &Path) {
    for _ in 0..500 {
        if path.is_file() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn a_commit_keeps_a_local_copy_that_is_read_without_the_store() {
    let setup = Setup::new();
    let store = setup.open(1 << 20);
    let digest = commit(&store, b"layer bytes");
    assert!(setup.stored_object(&digest).is_file());
    assert_eq!(fs::read(setup.local_copy(&digest)).unwrap(), b"layer bytes");
    // Nothing left in either staging directory.
    assert_eq!(
        fs::read_dir(setup.store_dir.join("tmp")).unwrap().count(),
        0
    );
    let local_tmp = setup.cache_dir.join("local-cache/tmp");
    assert_eq!(fs::read_dir(local_tmp).unwrap().count(), 0);

    // The store loses the object: the local copy still answers.
    fs::remove_file(setup.stored_object(&digest)).unwrap();
    assert_eq!(
        read_all(store.open(&digest).unwrap().unwrap()),
        b"layer bytes"
    );
    assert_eq!(store.size_of(&digest).unwrap(), Some(11));
    assert_eq!(store.read_blob(&digest).unwrap().unwrap(), b"layer bytes");
}

#[test]
fn a_read_from_the_store_is_copied_in_and_a_removal_takes_both() {
    let setup = Setup::new();
    let digest = Digest::sha256_of(b"pushed by another member");
    DirBlobStore::open(&setup.store_dir)
        .unwrap()
        .put_verified(&digest, b"pushed by another member")
        .unwrap();
    let store = setup.open(1 << 20);
    assert!(!setup.local_copy(&digest).exists());
    let first = store.open(&digest).unwrap().unwrap();
    assert_eq!(read_all(first), b"pushed by another member");
    wait_for(&setup.local_copy(&digest));
    assert_eq!(store.verify(&digest).unwrap(), Some(true));

    store.remove(&digest).unwrap();
    assert!(!setup.local_copy(&digest).exists());
    assert!(!setup.stored_object(&digest).exists());
    assert!(store.open(&digest).unwrap().is_none());
    assert!(!store.contains(&digest).unwrap());
}

#[test]
fn the_least_recently_read_go_first_also_after_a_restart() {
    let setup = Setup::new();
    let store = setup.open(25);
    let a = commit(&store, &[b'a'; 10]);
    let b = commit(&store, &[b'b'; 10]);
    // `a` read last: `b` is the oldest.
    read_all(store.open(&a).unwrap().unwrap());
    let c = commit(&store, &[b'c'; 10]);
    assert!(setup.local_copy(&a).is_file());
    assert!(!setup.local_copy(&b).exists());
    assert!(setup.local_copy(&c).is_file());
    // Every object stays in the store: only the local copy went.
    assert!(setup.stored_object(&b).is_file());
    // Too large to hold at all: uploaded, not copied.
    let big = commit(&store, &[b'x'; 30]);
    assert!(!setup.local_copy(&big).exists());
    assert!(setup.local_copy(&a).is_file());
    drop(store);

    // Restarted smaller: the order comes back from the files' times.
    let old = SystemTime::now() - Duration::from_secs(60);
    File::options()
        .write(true)
        .open(setup.local_copy(&c))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let _store = setup.open(15);
    assert!(setup.local_copy(&a).is_file());
    assert!(!setup.local_copy(&c).exists());
}

#[test]
fn a_damaged_local_copy_is_dropped_by_the_scrub() {
    let setup = Setup::new();
    let store = setup.open(1 << 20);
    let digest = commit(&store, b"good bytes");
    // A new file: the commit's copy is a hard link of the staged file,
    // which the directory store standing in for the object store keeps too.
    fs::remove_file(setup.local_copy(&digest)).unwrap();
    fs::write(setup.local_copy(&digest), b"bad! bytes").unwrap();
    // The store's copy is intact, so is the answer; the local one is gone
    // and the next read comes from the store.
    assert_eq!(store.verify(&digest).unwrap(), Some(true));
    assert!(!setup.local_copy(&digest).exists());
    assert_eq!(
        read_all(store.open(&digest).unwrap().unwrap()),
        b"good bytes"
    );
}

#[test]
fn manifests_are_kept_locally_when_written_and_when_read() {
    let setup = Setup::new();
    let store = setup.open(1 << 20);
    let written = Digest::sha256_of(b"{\"manifest\":1}");
    store.put_verified(&written, b"{\"manifest\":1}").unwrap();
    assert!(setup.local_copy(&written).is_file());
    assert!(store.put_verified(&written, b"other").is_err());

    let read = Digest::sha256_of(b"{\"manifest\":2}");
    DirBlobStore::open(&setup.store_dir)
        .unwrap()
        .put_verified(&read, b"{\"manifest\":2}")
        .unwrap();
    assert_eq!(
        store.read_blob(&read).unwrap().unwrap(),
        b"{\"manifest\":2}"
    );
    assert!(setup.local_copy(&read).is_file());
    assert!(store.serves_without_store());
}
