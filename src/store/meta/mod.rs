//! The metadata database. The only module that knows sled: swapping the
//! engine means rewriting this module alone.
//!
//! Two faces: [`MetaStore`] for async code, whose every call runs on the
//! blocking pool (or is answered from `memo`, in memory, without one), and
//! [`BlockingMeta`], its synchronous methods, for code already on a
//! blocking thread. A change of several records (pointing a
//! tag, removing one, removing a repository) is one method here, applied as
//! one transaction (see `changes`): never a sequence of writes by a caller.

mod changes;
mod front;
mod history;
mod imports;
mod memo;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::records::{decode, decode_remote, encode, encode_remote};
use super::{
    BlobRecord, DistributionRecord, ManifestRecord, Pin, Pins, RemoteRecord, RepoRecord,
    StoreError, TagRecord, TaskRecord,
};
use crate::domain::Digest;

pub use front::MetaStore;
use memo::Memo;

/// An error of the database engine, kept opaque so that no engine type
/// leaves the store; it reads as the engine's message.
#[derive(Debug)]
pub struct DbError(sled::Error);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(DbError(e))
    }
}

/// The metadata database's synchronous methods: they block, so they are
/// for start-up, maintenance and other work already on a blocking thread
/// (reached through [`BlockingMeta::blocking`]).
pub struct BlockingMeta {
    db: sled::Db,
    /// `<repository>\0<tag>` → TagRecord
    tags: sled::Tree,
    /// digest → ManifestRecord
    manifests: sled::Tree,
    /// digest → BlobRecord
    blobs: sled::Tree,
    /// repository (full local name) → RepoRecord
    repos: sled::Tree,
    /// `<repository>\0<manifest digest>` → (): every manifest in a
    /// repository, tagged or pulled by digest
    members: sled::Tree,
    /// `<repository>\0<digest>` → (): what a repository may serve: its
    /// manifests, their blobs and children, and what its upstream confirmed
    /// it has. One look-up decides access per request.
    references: sled::Tree,
    /// id → RemoteRecord / DistributionRecord / TaskRecord
    remotes: sled::Tree,
    distributions: sled::Tree,
    tasks: sled::Tree,
    /// `Pin::key` → (): what quota eviction must keep (see `store/pins.rs`)
    pins: sled::Tree,
    /// `<repository>\0<tag>` → ImportMark: where an imported tag came from
    imports: sled::Tree,
    /// `<tier><t>` → HistoryPoint: the dashboard's history (see `history`)
    history: sled::Tree,
    /// Held by every change of a repository's structure (tags, members,
    /// references): those that must scan a prefix, which sled's
    /// transactions cannot, read it under this lock, so no other change
    /// moves it before their transaction applies.
    structure: Mutex<()>,
    /// The hot reads' answers (see `memo`); every write forgets what it
    /// changes.
    memo: Memo,
    /// Bumped after every write of what the listings sum up (tags,
    /// memberships, manifests, blobs, repositories, pins): a listing
    /// computed at one value holds while it stays (see `content_version`).
    content: AtomicU64,
}

/// Set once the reference index has been built from the memberships.
const REFERENCES_BUILT: &[u8] = b"references-index-v1";

fn tag_key(repo: &str, tag: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(repo.len() + tag.len() + 1);
    key.extend_from_slice(repo.as_bytes());
    key.push(0);
    key.extend_from_slice(tag.as_bytes());
    key
}

/// Tells apart why sled did not open: a lock held by another process and
/// plain I/O (permission denied, not a directory) are not damage; only
/// corruption and formats sled does not understand are.
fn open_error(dir: &Path, error: sled::Error) -> StoreError {
    let path = dir.to_path_buf();
    match error {
        // sled's own flock failure, an `Other` error with this text.
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
            StoreError::Locked(path)
        }
        sled::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Unreadable {
                path,
                reason: e.to_string(),
            }
        }
        sled::Error::Io(e) => StoreError::Io(e),
        other => StoreError::Unreadable {
            path,
            reason: other.to_string(),
        },
    }
}

impl BlockingMeta {
    pub fn open(dir: &Path) -> Result<BlockingMeta, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Bounded page cache: metadata is small and RSS matters on an edge host.
            .cache_capacity(32 * 1024 * 1024)
            .open()
            .map_err(|e| open_error(dir, e))?;
        BlockingMeta {
            tags: db.open_tree("tags")?,
            manifests: db.open_tree("manifests")?,
            blobs: db.open_tree("blobs")?,
            repos: db.open_tree("repos")?,
            members: db.open_tree("members")?,
            references: db.open_tree("references")?,
            remotes: db.open_tree("remotes")?,
            distributions: db.open_tree("distributions")?,
            tasks: db.open_tree("tasks")?,
            pins: db.open_tree("pins")?,
            imports: db.open_tree("imports")?,
            history: db.open_tree("history")?,
            structure: Mutex::new(()),
            memo: Memo::default(),
            content: AtomicU64::new(0),
            db,
        }
        .with_reference_index()
    }

    /// Builds the reference index of a database written before it existed
    /// (idempotent: a crash part-way simply builds it again next time).
    fn with_reference_index(self) -> Result<BlockingMeta, StoreError> {
        if self.db.contains_key(REFERENCES_BUILT)? {
            return Ok(self);
        }
        for (repo, digest) in self.all_members()? {
            self.reference_manifest(&repo, &digest)?;
        }
        self.db.insert(REFERENCES_BUILT, &[])?;
        self.db.flush()?;
        Ok(self)
    }

    /// Records that `repo` references a manifest and what it holds.
    fn reference_manifest(&self, repo: &str, digest: &Digest) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(tag_key(repo, &digest.to_string()), &[]);
        if let Some(record) = self.manifest(digest)? {
            for held in record.blobs.iter().chain(&record.children) {
                batch.insert(tag_key(repo, &held.to_string()), &[]);
            }
        }
        self.references.apply_batch(batch)?;
        Ok(())
    }

    /// Whether `repo` may serve `digest`: one of its manifests, or what one
    /// of them holds, or what its upstream confirmed it has.
    pub fn references(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        let key = tag_key(repo, &digest.to_string());
        if self.memo.is_reference(&key) {
            return Ok(true);
        }
        let read_at = self.memo.generation();
        let found = self.references.contains_key(&key)?;
        if found {
            self.memo.remember_reference(read_at, &key);
        }
        Ok(found)
    }

    /// [`BlockingMeta::references`] if the memo knows it (no I/O: fit for
    /// an async thread).
    pub(super) fn memo_references(&self, repo: &str, digest: &Digest) -> bool {
        self.memo.is_reference(&tag_key(repo, &digest.to_string()))
    }

    /// Records that the upstream confirmed `repo` has `digest`.
    pub fn add_reference(&self, repo: &str, digest: &Digest) -> Result<(), StoreError> {
        self.references
            .insert(tag_key(repo, &digest.to_string()), &[])?;
        Ok(())
    }

    fn lock_structure(&self) -> MutexGuard<'_, ()> {
        self.structure.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match tree.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn tag(&self, repo: &str, tag: &str) -> Result<Option<TagRecord>, StoreError> {
        let key = tag_key(repo, tag);
        if let Some(record) = self.memo.tag(&key) {
            return Ok(Some(record));
        }
        let read_at = self.memo.generation();
        let found: Option<TagRecord> = Self::get(&self.tags, &key)?;
        if let Some(record) = &found {
            self.memo.remember_tag(read_at, &key, record);
        }
        Ok(found)
    }

    /// [`BlockingMeta::tag`] if the memo knows it (no I/O).
    pub(super) fn memo_tag(&self, repo: &str, tag: &str) -> Option<TagRecord> {
        self.memo.tag(&tag_key(repo, tag))
    }

    /// Changes whenever the tags, memberships, manifests, blobs,
    /// repositories or pins change: a summary computed from them after
    /// reading this value holds while it stays the same. Read it before
    /// the summary's reads; each write bumps it after it applied.
    pub fn content_version(&self) -> u64 {
        self.content.load(Ordering::Acquire)
    }

    /// After a write of what `content_version` covers.
    fn content_changed(&self) {
        self.content.fetch_add(1, Ordering::AcqRel);
    }

    /// Stores a tag, returning what it pointed at before.
    pub fn put_tag(
        &self,
        repo: &str,
        tag: &str,
        record: &TagRecord,
    ) -> Result<Option<TagRecord>, StoreError> {
        let key = tag_key(repo, tag);
        let old = self.tags.insert(&key, encode(record)?)?;
        self.memo.forget_tag(&key);
        self.content_changed();
        match old {
            Some(old) => decode(&key, &old).map(Some),
            None => Ok(None),
        }
    }

    /// The tags of a repository, sorted by name.
    pub fn tags_of(&self, repo: &str) -> Result<Vec<(String, TagRecord)>, StoreError> {
        let prefix = tag_key(repo, "");
        self.tags
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, value) = item?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((name, decode(&key, &value)?))
            })
            .collect()
    }

    pub fn manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        Self::get(&self.manifests, digest.to_string().as_bytes())
    }

    pub fn put_manifest(&self, digest: &Digest, record: &ManifestRecord) -> Result<(), StoreError> {
        self.manifests
            .insert(digest.to_string().as_bytes(), encode(record)?)?;
        self.content_changed();
        Ok(())
    }

    /// Every stored manifest, for building the referrers of a digest.
    pub fn manifests(&self) -> impl Iterator<Item = Result<(Digest, ManifestRecord), StoreError>> {
        self.manifests.iter().map(|item| {
            let (key, value) = item?;
            let digest = String::from_utf8_lossy(&key).parse().map_err(
                |e: crate::domain::DigestError| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                },
            )?;
            Ok((digest, decode(&key, &value)?))
        })
    }

    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>, StoreError> {
        Self::get(&self.blobs, digest.to_string().as_bytes())
    }

    pub fn put_blob(&self, digest: &Digest, record: &BlobRecord) -> Result<(), StoreError> {
        self.blobs
            .insert(digest.to_string().as_bytes(), encode(record)?)?;
        self.content_changed();
        Ok(())
    }

    /// Every blob record.
    pub fn blob_records(&self) -> Result<Vec<(Digest, BlobRecord)>, StoreError> {
        self.blobs
            .iter()
            .map(|item| {
                let (key, value) = item?;
                let digest =
                    String::from_utf8_lossy(&key)
                        .parse()
                        .map_err(|_| StoreError::Corrupt {
                            key: String::from_utf8_lossy(&key).into_owned(),
                            reason: "bad digest key".into(),
                        })?;
                Ok((digest, decode(&key, &value)?))
            })
            .collect()
    }

    pub fn repo(&self, name: &str) -> Result<Option<RepoRecord>, StoreError> {
        Self::get(&self.repos, name.as_bytes())
    }

    pub fn is_member(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        let key = tag_key(repo, &digest.to_string());
        if self.memo.is_member(&key) {
            return Ok(true);
        }
        let read_at = self.memo.generation();
        let found = self.members.contains_key(&key)?;
        if found {
            self.memo.remember_member(read_at, &key);
        }
        Ok(found)
    }

    /// Whether the memo knows `digest` is one of `repo`'s manifests (no I/O).
    pub(super) fn memo_is_member(&self, repo: &str, digest: &Digest) -> bool {
        self.memo.is_member(&tag_key(repo, &digest.to_string()))
    }

    /// Adds a manifest to a repository (which then references it, its
    /// blobs and its children); true if it was not there yet. Bare: a
    /// change that counts is [`BlockingMeta::add_to_repo`].
    #[cfg(test)]
    fn add_member(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        let new = self
            .members
            .insert(tag_key(repo, &digest.to_string()), &[])?
            .is_none();
        if new {
            self.reference_manifest(repo, digest)?;
        }
        Ok(new)
    }

    /// The manifests of a repository.
    pub fn members(&self, repo: &str) -> Result<Vec<Digest>, StoreError> {
        let prefix = tag_key(repo, "");
        self.members
            .scan_prefix(&prefix)
            .keys()
            .map(|key| {
                let key = key?;
                String::from_utf8_lossy(&key[prefix.len()..])
                    .parse()
                    .map_err(|e: crate::domain::DigestError| StoreError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        reason: e.to_string(),
                    })
            })
            .collect()
    }

    /// All local repositories, sorted by name.
    pub fn repos(&self) -> Result<Vec<(String, RepoRecord)>, StoreError> {
        self.repos
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    decode(&key, &value)?,
                ))
            })
            .collect()
    }

    /// Every (repository, manifest) membership.
    pub fn all_members(&self) -> Result<Vec<(String, Digest)>, StoreError> {
        self.members
            .iter()
            .keys()
            .map(|key| {
                let key = key?;
                let text = String::from_utf8_lossy(&key);
                let corrupt = || StoreError::Corrupt {
                    key: text.to_string(),
                    reason: "bad membership key".into(),
                };
                let (repo, digest) = text.split_once('\0').ok_or_else(corrupt)?;
                Ok((repo.to_string(), digest.parse().map_err(|_| corrupt())?))
            })
            .collect()
    }

    fn all<T: serde::de::DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        tree.iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    pub fn remotes(&self) -> Result<Vec<RemoteRecord>, StoreError> {
        self.remotes
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_remote(&key, &value)
            })
            .collect()
    }

    pub fn put_remote(&self, record: &RemoteRecord) -> Result<(), StoreError> {
        self.remotes
            .insert(record.id.as_bytes(), encode_remote(record)?)?;
        Ok(())
    }

    pub fn delete_remote(&self, id: &str) -> Result<(), StoreError> {
        self.remotes.remove(id.as_bytes())?;
        Ok(())
    }

    pub fn distributions(&self) -> Result<Vec<DistributionRecord>, StoreError> {
        Self::all(&self.distributions)
    }

    pub fn put_distribution(&self, record: &DistributionRecord) -> Result<(), StoreError> {
        self.distributions
            .insert(record.id.as_bytes(), encode(record)?)?;
        Ok(())
    }

    pub fn delete_distribution(&self, id: &str) -> Result<(), StoreError> {
        self.distributions.remove(id.as_bytes())?;
        Ok(())
    }

    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Self::get(&self.tasks, id.as_bytes())
    }

    /// Stores a task and forgets those older than `keep_micros`.
    pub fn put_task(&self, record: &TaskRecord, keep_micros: u64) -> Result<(), StoreError> {
        for task in Self::all::<TaskRecord>(&self.tasks)? {
            if record.created.saturating_sub(task.created) > keep_micros {
                self.tasks.remove(task.id.as_bytes())?;
            }
        }
        self.tasks.insert(record.id.as_bytes(), encode(record)?)?;
        Ok(())
    }

    /// Every pin (keys of a kind this ferry does not know are skipped).
    pub fn pins(&self) -> Result<Pins, StoreError> {
        let mut pins = Vec::new();
        for item in self.pins.iter() {
            let (key, _) = item?;
            pins.extend(Pin::from_key(&key));
        }
        Ok(Pins::new(pins))
    }

    pub fn put_pin(&self, pin: &Pin) -> Result<(), StoreError> {
        self.pins.insert(pin.key(), &[])?;
        self.content_changed();
        Ok(())
    }

    /// Removes a pin; false if there was none.
    pub fn delete_pin(&self, pin: &Pin) -> Result<bool, StoreError> {
        let removed = self.pins.remove(pin.key())?.is_some();
        self.content_changed();
        Ok(removed)
    }

    /// Whether the database existed before this open (false: created new,
    /// e.g. after a rebuild, while the blob tree may hold content).
    pub fn was_recovered(&self) -> bool {
        self.db.was_recovered()
    }

    /// Makes every write so far durable (blocking).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MediaType;

    #[test]
    fn tags_scan_only_their_repository() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BlockingMeta::open(dir.path()).unwrap();
        let rec = tag_at(b"m");
        meta.put_tag("c/a/b", "1", &rec).unwrap();
        meta.put_tag("c/a/b", "2", &rec).unwrap();
        meta.put_tag("c/a/bc", "3", &rec).unwrap();
        let names: Vec<_> = meta
            .tags_of("c/a/b")
            .unwrap()
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(names, ["1", "2"]);
    }

    pub(super) fn manifest_holding(blobs: &[&[u8]], children: &[&[u8]]) -> ManifestRecord {
        ManifestRecord {
            media_type: MediaType::new(MediaType::OCI_MANIFEST),
            size: 1,
            blobs: blobs.iter().map(|b| Digest::sha256_of(b)).collect(),
            children: children.iter().map(|c| Digest::sha256_of(c)).collect(),
            subject: None,
            artifact_type: None,
            stored_at: 0,
        }
    }

    pub(super) fn tag_at(what: &[u8]) -> TagRecord {
        TagRecord {
            digest: Digest::sha256_of(what),
            media_type: MediaType::new(MediaType::OCI_MANIFEST),
            size: 1,
            confirmed_at: 0,
            last_pulled: 0,
        }
    }

    pub(super) fn fresh(name: &str) -> RepoRecord {
        RepoRecord {
            id: format!("id-{name}"),
            cache: "c".into(),
            upstream_name: name.into(),
            version: 0,
            created_at: 0,
            updated_at: 0,
            last_change: Default::default(),
        }
    }

    #[test]
    fn members_give_their_repository_alone_access_to_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BlockingMeta::open(dir.path()).unwrap();
        let (m, n) = (Digest::sha256_of(b"m"), Digest::sha256_of(b"n"));
        meta.put_manifest(&m, &manifest_holding(&[b"config", b"layer"], &[b"child"]))
            .unwrap();
        meta.put_manifest(&n, &manifest_holding(&[b"other"], &[]))
            .unwrap();
        let sees =
            |repo: &str, what: &[u8]| meta.references(repo, &Digest::sha256_of(what)).unwrap();
        assert!(meta.add_member("c/a", &m).unwrap());
        meta.point_tag("c/a", "n", &tag_at(b"n"), &fresh("a"))
            .unwrap();
        for held in [&b"m"[..], b"config", b"layer", b"child", b"other"] {
            assert!(sees("c/a", held));
            assert!(!sees("c/ab", held), "a name sharing the prefix sees it");
            assert!(!sees("d/a", held), "another cache sees it");
        }
        meta.add_reference("c/a", &Digest::sha256_of(b"confirmed"))
            .unwrap();
        assert!(sees("c/a", b"confirmed"));

        // A manifest leaving takes what only it held (and confirmations).
        meta.untag("c/a", "n", &n, &fresh("a")).unwrap();
        assert!(!sees("c/a", b"other") && !sees("c/a", b"n"));
        assert!(!sees("c/a", b"confirmed"));
        assert!(sees("c/a", b"layer"));
        assert_eq!(meta.members("c/a").unwrap(), vec![m.clone()]);
        assert_eq!(meta.delete_repo("c/a").unwrap(), vec![m.clone()]);
        assert!(!sees("c/a", b"m") && !sees("c/a", b"layer"));
        assert!(meta.members("c/a").unwrap().is_empty());
        assert!(meta.repo("c/a").unwrap().is_none());
    }

    #[test]
    fn the_index_is_built_for_a_database_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = Digest::sha256_of(b"m");
        {
            let meta = BlockingMeta::open(dir.path()).unwrap();
            meta.put_manifest(&m, &manifest_holding(&[b"layer"], &[]))
                .unwrap();
            meta.add_member("c/a", &m).unwrap();
            // As an older ferry left it: memberships, no index.
            meta.references.clear().unwrap();
            meta.db.remove(REFERENCES_BUILT).unwrap();
            meta.flush().unwrap();
        }
        let meta = BlockingMeta::open(dir.path()).unwrap();
        assert!(meta
            .references("c/a", &Digest::sha256_of(b"layer"))
            .unwrap());
        assert!(meta.references("c/a", &m).unwrap());
        assert!(!meta.references("c/b", &m).unwrap());
    }
}

#[cfg(test)]
mod open_tests {
    use super::*;

    #[test]
    fn a_second_open_is_locked_not_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let _first = BlockingMeta::open(dir.path()).unwrap();
        let err = BlockingMeta::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
        assert!(!err.is_damaged());
    }

    #[test]
    fn garbage_settings_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), [0xffu8; 64]).unwrap();
        let err = BlockingMeta::open(dir.path()).err().unwrap();
        assert!(err.is_damaged(), "{err:?}");
    }
}
