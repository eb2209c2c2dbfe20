//! Who may see what. Stored content is found by digest whatever cache or
//! repository stored it, so before any of it is answered under a
//! repository, that repository must reference it (a manifest ferry cached
//! for it, or a blob or child of one) or its upstream must confirm it has
//! it, as a registry decides access per repository. The confirmation is
//! recorded, so it is paid once. Unconfirmed, the answer is exactly what it
//! would be had ferry never stored the content: HEAD and GET alike.
//! The cache's `stale_if` does not apply here: the confirmation is the
//! access check itself, and serving without it would hand one repository's
//! content to another. Content a repository references needs no upstream.

use super::error::CacheError;
use super::Cache;
use crate::domain::{Digest, MediaType, RepoName};
use crate::upstream::UpstreamError;

/// Why a repository may see a blob.
pub(super) enum Admission {
    /// One of its manifests holds it, or its upstream confirmed it before.
    Referenced,
    /// Its upstream confirmed it just now, with this size.
    Confirmed { size: Option<u64> },
}

impl Cache {
    /// Whether the local repository of `repo` may answer `digest` without
    /// asking its upstream (one look-up).
    pub(super) async fn references(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, CacheError> {
        Ok(self
            .storage
            .meta
            .references(&self.local_name(repo), digest)
            .await?)
    }

    /// Lets `repo` see a blob: referenced, or confirmed by a `HEAD` of it
    /// under `repo` upstream (bounded by the upstream timeouts), which is
    /// then recorded. Upstream 404: `BlobUnknown`; an upstream failure is
    /// that failure, never the stored bytes.
    pub(super) async fn admit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Admission, CacheError> {
        let local = self.local_name(repo);
        if self.storage.meta.references(&local, digest).await? {
            return Ok(Admission::Referenced);
        }
        let key = (local.clone(), digest.to_string());
        let size = self
            .blob_confirmations
            .run(key, self.upstream.wait_bound(), || async {
                let size = match self.fetcher(repo).head_blob(digest).await {
                    Err(UpstreamError::NotFound) => return Err(CacheError::BlobUnknown),
                    other => other?,
                };
                self.storage.meta.add_reference(&local, digest).await?;
                Ok(size)
            })
            .await?;
        Ok(Admission::Confirmed { size })
    }

    /// Asks the upstream whether `repo` has the manifest `digest` (a `HEAD`,
    /// free of Docker Hub's pull limit). Recording it is the caller's: the
    /// manifest joins the repository.
    pub(super) async fn confirm_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<(), CacheError> {
        match self
            .fetcher(repo)
            .head_manifest(&digest.to_string(), MediaType::ALL_MANIFESTS)
            .await
        {
            Ok(_) => Ok(()),
            Err(UpstreamError::NotFound) => Err(CacheError::ManifestUnknown),
            Err(e) => Err(e.into()),
        }
    }
}
