//! Changes of several records, each one sled transaction over the trees it
//! touches: a crash or an error leaves all of its records or none, and
//! readers see the state before it or after it, never between.

use serde::de::DeserializeOwned;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::IVec;

use super::{tag_key, BlockingMeta};
use crate::domain::Digest;
use crate::store::records::{decode, encode};
use crate::store::{unix_now, Change, Counts, ManifestRecord, RepoRecord, StoreError, TagRecord};

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

fn tx_get<T: DeserializeOwned>(tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => decode(key, &bytes).map(Some).map_err(abort),
        None => Ok(None),
    }
}

/// Adds a manifest to a repository: the membership, and references to it,
/// its blobs and its children. Counts what it adds in `change`.
fn join(
    (members, references, manifests): (&TransactionalTree, &TransactionalTree, &TransactionalTree),
    repo: &str,
    digest: &Digest,
    change: &mut Change,
) -> TxResult<()> {
    let key = tag_key(repo, &digest.to_string());
    if members.insert(key.as_slice(), &[])?.is_some() {
        return Ok(());
    }
    change.added.manifests += 1;
    references.insert(key, &[])?;
    if let Some(record) = tx_get::<ManifestRecord>(manifests, digest.to_string().as_bytes())? {
        change.added.blobs += record.blobs.len() as u64;
        for held in record.blobs.iter().chain(&record.children) {
            references.insert(tag_key(repo, &held.to_string()), &[])?;
        }
    }
    Ok(())
}

/// Moves a repository to its next version when `change` changed anything
/// (creating it from `fresh` if it has no record); returns it as stored.
fn bump(
    repos: &TransactionalTree,
    repo: &str,
    fresh: &RepoRecord,
    change: Change,
) -> TxResult<Option<RepoRecord>> {
    if change == Change::default() {
        return Ok(None);
    }
    let current = tx_get::<RepoRecord>(repos, repo.as_bytes())?.unwrap_or_else(|| fresh.clone());
    let next = RepoRecord {
        version: current.version + 1,
        updated_at: unix_now(),
        last_change: change,
        ..current
    };
    repos.insert(repo.as_bytes(), encode(&next).map_err(abort)?)?;
    Ok(Some(next))
}

impl BlockingMeta {
    /// Points a tag at a manifest: the tag record, the manifest joining the
    /// repository (with what it references) and the repository's next
    /// version, in one transaction. `fresh` is the repository's record
    /// should it have none yet (version 0). Returns the repository record
    /// when its content changed.
    pub fn point_tag(
        &self,
        repo: &str,
        tag: &str,
        record: &TagRecord,
        fresh: &RepoRecord,
    ) -> Result<Option<RepoRecord>, StoreError> {
        let key = tag_key(repo, tag);
        let value = encode(record)?;
        let _changing = self.lock_structure();
        let trees = (
            &self.tags,
            &self.members,
            &self.references,
            &self.manifests,
            &self.repos,
        );
        let changed = trees.transaction(|(tags, members, references, manifests, repos)| {
            let mut change = Change::default();
            match tags.insert(key.as_slice(), value.as_slice())? {
                Some(old) => {
                    let old: TagRecord = decode(&key, &old).map_err(abort)?;
                    if old.digest != record.digest {
                        change.added.tags = 1;
                        change.removed.tags = 1;
                    }
                }
                None => change.added.tags = 1,
            }
            join(
                (members, references, manifests),
                repo,
                &record.digest,
                &mut change,
            )?;
            bump(repos, repo, fresh, change)
        })?;
        self.memo.forget_tag(&key);
        self.content_changed();
        Ok(changed)
    }

    /// Adds a manifest to a repository (pulled by digest) and moves the
    /// repository to its next version, in one transaction; a manifest
    /// already there writes nothing. Returns the repository record when
    /// its content changed.
    pub fn add_to_repo(
        &self,
        repo: &str,
        digest: &Digest,
        fresh: &RepoRecord,
    ) -> Result<Option<RepoRecord>, StoreError> {
        // Checked first so a warm pull by digest writes nothing.
        if self.is_member(repo, digest)? {
            return Ok(None);
        }
        let _changing = self.lock_structure();
        let trees = (
            &self.members,
            &self.references,
            &self.manifests,
            &self.repos,
        );
        let changed = trees.transaction(|(members, references, manifests, repos)| {
            let mut change = Change::default();
            join((members, references, manifests), repo, digest, &mut change)?;
            bump(repos, repo, fresh, change)
        })?;
        self.content_changed();
        Ok(changed)
    }

    /// Removes a tag that pointed at `digest`. Unless another tag of the
    /// repository points there too, the manifest leaves the repository,
    /// and with it what only it gave the repository access to (upstream
    /// confirmations are dropped too, and asked again). The repository
    /// moves to its next version (from `fresh` should it have no record).
    /// One transaction.
    pub fn untag(
        &self,
        repo: &str,
        tag: &str,
        digest: &Digest,
        fresh: &RepoRecord,
    ) -> Result<(), StoreError> {
        self.remove_from_repo(repo, Some(tag), digest, fresh)
    }

    /// Removes an untagged manifest from a repository (a child of an index
    /// evicted with it), as `untag` does once no tag points there; a
    /// manifest a tag points at stays. One transaction.
    pub fn drop_member(
        &self,
        repo: &str,
        digest: &Digest,
        fresh: &RepoRecord,
    ) -> Result<(), StoreError> {
        self.remove_from_repo(repo, None, digest, fresh)
    }

    fn remove_from_repo(
        &self,
        repo: &str,
        tag: Option<&str>,
        digest: &Digest,
        fresh: &RepoRecord,
    ) -> Result<(), StoreError> {
        let _changing = self.lock_structure();
        let still_tagged = self
            .tags_of(repo)?
            .iter()
            .any(|(name, r)| Some(name.as_str()) != tag && r.digest == *digest);
        let member = tag_key(repo, &digest.to_string());
        if tag.is_none() && (still_tagged || !self.members.contains_key(&member)?) {
            return Ok(());
        }
        // The references the repository keeps, read before the transaction
        // (which cannot scan), under the structure lock.
        let (old_references, kept_references) = if still_tagged {
            (Vec::new(), Vec::new())
        } else {
            self.references_without(repo, digest)?
        };
        let repository = tag_key(repo, "");
        let tag_key = tag.map(|tag| tag_key(repo, tag));
        let change = Change {
            removed: Counts {
                tags: u64::from(tag.is_some()),
                manifests: u64::from(!still_tagged),
                blobs: 0,
            },
            ..Change::default()
        };
        let trees = (&self.tags, &self.members, &self.references, &self.repos);
        trees.transaction(|(tags, members, references, repos)| {
            if let Some(tag_key) = &tag_key {
                tags.remove(tag_key.as_slice())?;
            }
            if !still_tagged {
                members.remove(member.as_slice())?;
                for key in &old_references {
                    references.remove(key)?;
                }
                for key in &kept_references {
                    references.insert(key.as_slice(), &[])?;
                }
            }
            bump(repos, repo, fresh, change)
        })?;
        self.memo.forget_repository(&repository);
        self.content_changed();
        Ok(())
    }

    /// The reference keys `repo` has now, and those it keeps once `leaving`
    /// is no longer one of its manifests: its other manifests, their blobs
    /// and children.
    fn references_without(
        &self,
        repo: &str,
        leaving: &Digest,
    ) -> Result<(Vec<IVec>, Vec<Vec<u8>>), StoreError> {
        let old = self
            .references
            .scan_prefix(tag_key(repo, ""))
            .keys()
            .collect::<Result<Vec<_>, _>>()?;
        let mut kept = Vec::new();
        for digest in self.members(repo)?.iter().filter(|d| *d != leaving) {
            kept.push(tag_key(repo, &digest.to_string()));
            if let Some(record) = self.manifest(digest)? {
                for held in record.blobs.iter().chain(&record.children) {
                    kept.push(tag_key(repo, &held.to_string()));
                }
            }
        }
        Ok((old, kept))
    }

    /// Removes a repository with its tags, memberships, references and
    /// record, in one transaction; returns the manifests it held.
    pub fn delete_repo(&self, name: &str) -> Result<Vec<Digest>, StoreError> {
        let _changing = self.lock_structure();
        let members = self.members(name)?;
        let prefix = tag_key(name, "");
        let keys_in = |tree: &sled::Tree| -> Result<Vec<IVec>, StoreError> {
            Ok(tree
                .scan_prefix(&prefix)
                .keys()
                .collect::<Result<Vec<_>, _>>()?)
        };
        let (tags, memberships, references) = (
            keys_in(&self.tags)?,
            keys_in(&self.members)?,
            keys_in(&self.references)?,
        );
        let trees = (&self.tags, &self.members, &self.references, &self.repos);
        trees.transaction(|(tags_tree, members_tree, references_tree, repos)| {
            for (tree, keys) in [
                (tags_tree, &tags),
                (members_tree, &memberships),
                (references_tree, &references),
            ] {
                for key in keys {
                    tree.remove(key)?;
                }
            }
            repos.remove(name.as_bytes())?;
            Ok(())
        })?;
        self.memo.forget_repository(&prefix);
        self.content_changed();
        Ok(members)
    }

    /// Drops the records of a stored object (manifest and blob) together.
    pub fn forget_content(&self, digest: &Digest) -> Result<(), StoreError> {
        let key = digest.to_string();
        (&self.manifests, &self.blobs).transaction(|(manifests, blobs)| {
            manifests.remove(key.as_bytes())?;
            blobs.remove(key.as_bytes())?;
            Ok(())
        })?;
        self.content_changed();
        Ok(())
    }

    /// Records that a tag was pulled at `at` (ms), if it still exists: a
    /// tag removed meanwhile is not brought back.
    pub fn note_pulled(&self, repo: &str, tag: &str, at: u64) -> Result<(), StoreError> {
        let key = tag_key(repo, tag);
        self.tags.transaction(|tags| {
            if let Some(mut record) = tx_get::<TagRecord>(tags, &key)? {
                if record.last_pulled < at {
                    record.last_pulled = at;
                    tags.insert(key.as_slice(), encode(&record).map_err(abort)?)?;
                }
            }
            Ok(())
        })?;
        self.memo.forget_tag(&key);
        self.content_changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{manifest_holding, tag_at};
    use super::*;

    fn open() -> (tempfile::TempDir, BlockingMeta) {
        let dir = tempfile::tempdir().unwrap();
        let meta = BlockingMeta::open(dir.path()).unwrap();
        (dir, meta)
    }

    fn fresh() -> RepoRecord {
        super::super::tests::fresh("a")
    }

    fn image(meta: &BlockingMeta, what: &[u8], layers: &[&[u8]]) -> Digest {
        let digest = Digest::sha256_of(what);
        meta.put_manifest(&digest, &manifest_holding(layers, &[]))
            .unwrap();
        digest
    }

    fn counts(tags: u64, manifests: u64, blobs: u64) -> Counts {
        Counts {
            tags,
            manifests,
            blobs,
        }
    }

    /// Every record a tag `t` of `c/a` at `digest` consists of.
    fn tag_records(meta: &BlockingMeta, digest: &Digest, layer: &[u8]) -> [bool; 4] {
        [
            meta.tag("c/a", "t").unwrap().is_some(),
            meta.is_member("c/a", digest).unwrap(),
            meta.references("c/a", digest).unwrap(),
            meta.references("c/a", &Digest::sha256_of(layer)).unwrap(),
        ]
    }

    /// The memo answers warm reads; every change must still be seen by
    /// the next read, though the memo knew the old answer.
    #[test]
    fn reads_after_a_change_see_it_though_the_memo_knew_the_old_answer() {
        let (_dir, meta) = open();
        let (a, b) = (image(&meta, b"a", &[b"la"]), image(&meta, b"b", &[b"lb"]));
        meta.point_tag("c/a", "t", &tag_at(b"a"), &fresh()).unwrap();
        assert_eq!(tag_records(&meta, &a, b"la"), [true; 4]);
        meta.point_tag("c/a", "t", &tag_at(b"b"), &fresh()).unwrap();
        assert_eq!(
            meta.tag("c/a", "t").unwrap().map(|r| r.digest),
            Some(b.clone())
        );
        meta.note_pulled("c/a", "t", 99).unwrap();
        assert_eq!(
            meta.tag("c/a", "t").unwrap().map(|r| r.last_pulled),
            Some(99)
        );
        meta.untag("c/a", "t", &b, &fresh()).unwrap();
        assert!(meta.tag("c/a", "t").unwrap().is_none());
        assert!(!meta.is_member("c/a", &b).unwrap());
        assert!(!meta.references("c/a", &Digest::sha256_of(b"lb")).unwrap());
        meta.delete_repo("c/a").unwrap();
        assert_eq!(tag_records(&meta, &a, b"la"), [false; 4]);
    }

    #[test]
    fn dropping_an_untagged_member_removes_it_and_what_only_it_referenced() {
        let (_dir, meta) = open();
        let (m, child) = (image(&meta, b"m", &[b"lm"]), image(&meta, b"c", &[b"lc"]));
        meta.point_tag("c/a", "t", &tag_at(b"m"), &fresh()).unwrap();
        meta.add_to_repo("c/a", &child, &fresh()).unwrap();
        // A tagged manifest stays; so does what is not a member.
        meta.drop_member("c/a", &m, &fresh()).unwrap();
        assert_eq!(tag_records(&meta, &m, b"lm"), [true; 4]);
        let before = meta.repo("c/a").unwrap().unwrap().version;
        meta.drop_member("c/a", &Digest::sha256_of(b"none"), &fresh())
            .unwrap();
        assert_eq!(meta.repo("c/a").unwrap().unwrap().version, before);

        meta.drop_member("c/a", &child, &fresh()).unwrap();
        assert!(!meta.is_member("c/a", &child).unwrap());
        assert!(!meta.references("c/a", &Digest::sha256_of(b"lc")).unwrap());
        assert!(meta.references("c/a", &Digest::sha256_of(b"lm")).unwrap());
        let repo = meta.repo("c/a").unwrap().unwrap();
        assert_eq!(repo.version, before + 1);
        assert_eq!(repo.last_change.removed, counts(0, 1, 0));
    }

    #[test]
    fn pointing_a_tag_writes_the_tag_membership_references_and_version() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[b"config", b"layer"]);
        let repo = meta
            .point_tag("c/a", "t", &tag_at(b"m"), &fresh())
            .unwrap()
            .unwrap();
        assert_eq!(tag_records(&meta, &m, b"layer"), [true; 4]);
        assert_eq!((repo.version, repo.id.as_str()), (1, "id-a"));
        assert_eq!(repo.last_change.added, counts(1, 1, 2));
        assert_eq!(meta.repo("c/a").unwrap(), Some(repo.clone()));

        // The same again changes nothing, not even the version.
        assert_eq!(
            meta.point_tag("c/a", "t", &tag_at(b"m"), &fresh()).unwrap(),
            None
        );
        assert_eq!(meta.repo("c/a").unwrap().unwrap().version, 1);

        // Moved to another manifest: a tag replaced, a manifest added.
        let n = image(&meta, b"n", &[b"other"]);
        let repo = meta
            .point_tag("c/a", "t", &tag_at(b"n"), &fresh())
            .unwrap()
            .unwrap();
        assert_eq!(repo.version, 2);
        assert_eq!(repo.last_change.added, counts(1, 1, 1));
        assert_eq!(repo.last_change.removed, counts(1, 0, 0));
        assert_eq!(meta.tag("c/a", "t").unwrap().unwrap().digest, n);
    }

    #[test]
    fn a_failing_point_tag_leaves_none_of_its_records() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[b"layer"]);
        // A repository record that cannot be read makes the last step of
        // the change fail, after the tag, membership and references.
        meta.repos.insert("c/a", &[9u8, 9, 9][..]).unwrap();
        let err = meta
            .point_tag("c/a", "t", &tag_at(b"m"), &fresh())
            .err()
            .unwrap();
        assert!(err.is_damaged(), "{err:?}");
        assert_eq!(tag_records(&meta, &m, b"layer"), [false; 4]);

        // Readable again: the whole change applies.
        meta.repos.remove("c/a").unwrap();
        meta.point_tag("c/a", "t", &tag_at(b"m"), &fresh()).unwrap();
        assert_eq!(tag_records(&meta, &m, b"layer"), [true; 4]);
    }

    #[test]
    fn a_failing_untag_leaves_the_tag_and_what_it_gave_access_to() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[b"layer"]);
        meta.point_tag("c/a", "t", &tag_at(b"m"), &fresh()).unwrap();
        meta.repos.insert("c/a", &[9u8, 9, 9][..]).unwrap();
        assert!(meta.untag("c/a", "t", &m, &fresh()).is_err());
        assert_eq!(tag_records(&meta, &m, b"layer"), [true; 4]);

        meta.repos.remove("c/a").unwrap();
        meta.untag("c/a", "t", &m, &fresh()).unwrap();
        assert_eq!(tag_records(&meta, &m, b"layer"), [false; 4]);
        // No record left: the repository was recorded afresh, one version on.
        let repo = meta.repo("c/a").unwrap().unwrap();
        assert_eq!((repo.id.as_str(), repo.version), ("id-a", 1));
        assert_eq!(repo.last_change.removed, counts(1, 1, 0));
    }

    #[test]
    fn untagging_one_of_two_tags_of_a_manifest_keeps_it() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[b"layer"]);
        meta.point_tag("c/a", "t", &tag_at(b"m"), &fresh()).unwrap();
        meta.point_tag("c/a", "u", &tag_at(b"m"), &fresh()).unwrap();
        meta.untag("c/a", "u", &m, &fresh()).unwrap();
        assert_eq!(tag_records(&meta, &m, b"layer"), [true; 4]);
        let repo = meta.repo("c/a").unwrap().unwrap();
        assert_eq!(repo.last_change.removed, counts(1, 0, 0));
    }

    #[test]
    fn adding_a_manifest_by_digest_counts_once() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[b"config", b"layer"]);
        let repo = meta.add_to_repo("c/a", &m, &fresh()).unwrap().unwrap();
        assert_eq!((repo.version, repo.last_change.added), (1, counts(0, 1, 2)));
        assert!(meta
            .references("c/a", &Digest::sha256_of(b"layer"))
            .unwrap());
        assert_eq!(meta.add_to_repo("c/a", &m, &fresh()).unwrap(), None);
        assert_eq!(meta.repo("c/a").unwrap().unwrap().version, 1);
    }

    #[test]
    fn a_pull_noted_after_its_tag_was_removed_does_not_bring_it_back() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[]);
        meta.point_tag("c/a", "t", &tag_at(b"m"), &fresh()).unwrap();
        meta.note_pulled("c/a", "t", 5).unwrap();
        assert_eq!(meta.tag("c/a", "t").unwrap().unwrap().last_pulled, 5);
        meta.note_pulled("c/a", "t", 3).unwrap();
        assert_eq!(meta.tag("c/a", "t").unwrap().unwrap().last_pulled, 5);
        meta.untag("c/a", "t", &m, &fresh()).unwrap();
        meta.note_pulled("c/a", "t", 9).unwrap();
        assert!(meta.tag("c/a", "t").unwrap().is_none());
    }

    #[test]
    fn forgetting_content_drops_both_records() {
        let (_dir, meta) = open();
        let m = image(&meta, b"m", &[]);
        let record = crate::store::BlobRecord {
            size: 1,
            stored_at: 0,
        };
        meta.put_blob(&m, &record).unwrap();
        meta.forget_content(&m).unwrap();
        assert!(meta.manifest(&m).unwrap().is_none() && meta.blob(&m).unwrap().is_none());
    }
}
