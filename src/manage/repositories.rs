//! The local repositories pulls create: listed as a viewer may see them,
//! summarized, and removed (a tag or a whole repository).

use super::{ManageError, Manager};
use crate::cache::RepoSummary;
use crate::store::RepoRecord;
use crate::visibility::Viewer;

impl Manager {
    /// Every local repository `viewer` may see as (name, record), sorted by
    /// name.
    pub(crate) async fn repositories(
        &self,
        viewer: &Viewer,
    ) -> Result<Vec<(String, RepoRecord)>, ManageError> {
        let mut repos = self.meta.repos().await?;
        repos.retain(|(name, _)| viewer.sees_repository(name));
        Ok(repos)
    }

    /// The repository behind an id (not found when `viewer` may not see it).
    pub(crate) async fn repository(
        &self,
        viewer: &Viewer,
        id: &str,
    ) -> Result<(String, RepoRecord), ManageError> {
        self.repositories(viewer)
            .await?
            .into_iter()
            .find(|(_, r)| r.id == id)
            .ok_or(ManageError::NotFound)
    }

    /// Ids of the repositories a pull-through distribution created.
    pub(crate) async fn repository_ids_under(
        &self,
        viewer: &Viewer,
        base_path: &str,
    ) -> Result<Vec<String>, ManageError> {
        Ok(self
            .repositories(viewer)
            .await?
            .into_iter()
            .filter(|(_, r)| r.cache == base_path)
            .map(|(_, r)| r.id)
            .collect())
    }

    /// Every repository `viewer` may see with its counts and sizes (pulls
    /// noted in memory written first, so "last pulled" is current).
    pub(crate) async fn repository_summaries(
        &self,
        viewer: &Viewer,
    ) -> Result<Vec<(String, RepoRecord, RepoSummary)>, ManageError> {
        let mut repos = self.caches.storage().inventory().await?.repos;
        repos.retain(|(name, _, _)| viewer.sees_repository(name));
        Ok(repos)
    }

    /// One repository's counts and sizes.
    pub(crate) async fn repository_summary(&self, name: &str) -> Result<RepoSummary, ManageError> {
        Ok(self.caches.storage().repo_summary(name).await?)
    }

    /// Whether the cache at `base_path` is served now and private.
    pub(crate) fn serves_privately(&self, base_path: &str) -> bool {
        self.caches
            .serving(base_path)
            .is_some_and(|c| c.is_private())
    }

    /// Removes one tag of a repository and frees what nothing else uses;
    /// the bytes freed (`None`: no such tag).
    pub(crate) async fn delete_tag(
        &self,
        name: &str,
        tag: &str,
    ) -> Result<Option<u64>, ManageError> {
        // In a cluster, first the tombstone: the others delete it too.
        self.bury(name, Some(tag)).await?;
        Ok(self.caches.storage().delete_tag(name, tag).await?)
    }

    /// Removes a repository and frees what no other one uses; the bytes
    /// freed.
    pub(crate) async fn delete_repository(&self, name: &str) -> Result<u64, ManageError> {
        self.bury(name, None).await?;
        Ok(self.caches.storage().delete_repository(name).await?)
    }
}
