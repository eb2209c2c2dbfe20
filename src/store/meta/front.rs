//! The metadata database for async code: every call runs on tokio's
//! blocking pool, so no caller can block an async thread with it.

use std::path::Path;
use std::sync::Arc;

use super::BlockingMeta;
use crate::domain::Digest;
use crate::store::{
    DistributionRecord, HistoryPoint, HistoryTier, RemoteRecord, RepoRecord, StoreError, TagRecord,
    TaskRecord,
};

/// The metadata database. Its async methods run on the blocking pool;
/// [`blocking`](MetaStore::blocking) gives the synchronous ones to code
/// already on a blocking thread. Cloning shares the one database.
#[derive(Clone)]
pub struct MetaStore {
    db: Arc<BlockingMeta>,
}

impl MetaStore {
    /// Opens the database (blocking: call at start-up).
    pub fn open(dir: &Path) -> Result<MetaStore, StoreError> {
        Ok(MetaStore {
            db: Arc::new(BlockingMeta::open(dir)?),
        })
    }

    /// The synchronous methods, for start-up, maintenance and work already
    /// inside `spawn_blocking`; never for an async thread.
    pub fn blocking(&self) -> &BlockingMeta {
        &self.db
    }

    /// See [`BlockingMeta::content_version`] (no I/O).
    pub fn content_version(&self) -> u64 {
        self.db.content_version()
    }

    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&BlockingMeta) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    pub async fn tag(&self, repo: &str, tag: &str) -> Result<Option<TagRecord>, StoreError> {
        // A warm pull's tag is in memory: no trip to the blocking pool.
        if let Some(record) = self.db.memo_tag(repo, tag) {
            return Ok(Some(record));
        }
        let (repo, tag) = (repo.to_string(), tag.to_string());
        self.run(move |db| db.tag(&repo, &tag)).await
    }

    /// The tags of a repository, sorted by name.
    pub async fn tags_of(&self, repo: &str) -> Result<Vec<(String, TagRecord)>, StoreError> {
        let repo = repo.to_string();
        self.run(move |db| db.tags_of(&repo)).await
    }

    /// See [`BlockingMeta::references`].
    pub async fn references(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        if self.db.memo_references(repo, digest) {
            return Ok(true);
        }
        let (repo, digest) = (repo.to_string(), digest.clone());
        self.run(move |db| db.references(&repo, &digest)).await
    }

    /// See [`BlockingMeta::add_reference`].
    pub async fn add_reference(&self, repo: &str, digest: &Digest) -> Result<(), StoreError> {
        let (repo, digest) = (repo.to_string(), digest.clone());
        self.run(move |db| db.add_reference(&repo, &digest)).await
    }

    /// See [`BlockingMeta::point_tag`] (one transaction).
    pub async fn point_tag(
        &self,
        repo: &str,
        tag: &str,
        record: TagRecord,
        fresh: RepoRecord,
    ) -> Result<Option<RepoRecord>, StoreError> {
        let (repo, tag) = (repo.to_string(), tag.to_string());
        self.run(move |db| db.point_tag(&repo, &tag, &record, &fresh))
            .await
    }

    /// See [`BlockingMeta::add_to_repo`] (one transaction).
    pub async fn add_to_repo(
        &self,
        repo: &str,
        digest: &Digest,
        fresh: RepoRecord,
    ) -> Result<Option<RepoRecord>, StoreError> {
        // A warm pull by digest of a manifest already there changes nothing.
        if self.db.memo_is_member(repo, digest) {
            return Ok(None);
        }
        let (repo, digest) = (repo.to_string(), digest.clone());
        self.run(move |db| db.add_to_repo(&repo, &digest, &fresh))
            .await
    }

    /// All local repositories, sorted by name.
    pub async fn repos(&self) -> Result<Vec<(String, RepoRecord)>, StoreError> {
        self.run(|db| db.repos()).await
    }

    pub async fn remotes(&self) -> Result<Vec<RemoteRecord>, StoreError> {
        self.run(|db| db.remotes()).await
    }

    pub async fn put_remote(&self, record: &RemoteRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.run(move |db| db.put_remote(&record)).await
    }

    pub async fn delete_remote(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |db| db.delete_remote(&id)).await
    }

    pub async fn distributions(&self) -> Result<Vec<DistributionRecord>, StoreError> {
        self.run(|db| db.distributions()).await
    }

    pub async fn put_distribution(&self, record: &DistributionRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.run(move |db| db.put_distribution(&record)).await
    }

    pub async fn delete_distribution(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |db| db.delete_distribution(&id)).await
    }

    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |db| db.task(&id)).await
    }

    /// Stores a task and forgets those older than `keep_micros`.
    pub async fn put_task(&self, record: TaskRecord, keep_micros: u64) -> Result<(), StoreError> {
        self.run(move |db| db.put_task(&record, keep_micros)).await
    }

    /// See [`BlockingMeta::record_history`] (one batch).
    pub async fn record_history(
        &self,
        step: HistoryPoint,
        hour: HistoryPoint,
        keep_steps_from: u64,
        keep_hours_from: u64,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.record_history(&step, &hour, keep_steps_from, keep_hours_from))
            .await
    }

    /// See [`BlockingMeta::history`].
    pub async fn history(
        &self,
        tier: HistoryTier,
        from: u64,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        self.run(move |db| db.history(tier, from)).await
    }

    /// Makes every write so far durable. Not sled's own `flush_async`:
    /// with several callers at once it can lose a wake-up and never finish
    /// (sled issues #1241 and #1308; here it hung pulls of 2,000
    /// repositories at 16 at a time). A blocking flush on the blocking pool
    /// always completes.
    pub async fn flush_async(&self) -> Result<(), StoreError> {
        self.run(|db| db.flush()).await
    }
}
