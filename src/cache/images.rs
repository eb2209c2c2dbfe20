//! One image through the cache, as a pull would take it: its manifest (of
//! an index, the chosen platforms' manifests by digest), then every blob
//! they name, each read to its end through the single-flight downloads.
//! Shared by prefetch (`manage/prefetch.rs`) and complete images
//! (`complete.rs`); with the referrers of what was fetched when asked.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::Value;

use super::error::CacheError;
use super::manifest_info::{self, platform_children};
use super::Cache;
use crate::domain::{Digest, Platforms, Reference, RepoName, Tag};

/// Tags cosign writes beside a signed digest on registries without the
/// referrers API (`sha256-<hex>.sig` and its kin): not OCI referrers (they
/// have no `subject`), but what `cosign verify` reads.
const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];
/// Most referrers taken per subject (a signature, an SBOM, attestations).
const MAX_REFERRERS: usize = 64;

/// What the manifests of one image, fetched, name.
#[derive(Debug, Default)]
pub(crate) struct ImageParts {
    /// The manifest asked for, then its chosen children: the subjects whose
    /// referrers belong to the image.
    pub manifests: Vec<Digest>,
    /// Every blob they name, once, with its size.
    pub blobs: Vec<(Digest, u64)>,
    /// An index none of whose platforms was chosen: the platforms it has.
    pub unmatched: Option<Vec<String>>,
}

impl ImageParts {
    fn add_blobs(&mut self, bytes: &[u8]) {
        for b in manifest_info::blob_descriptors(bytes) {
            if !self.blobs.iter().any(|(d, _)| *d == b.0) {
                self.blobs.push(b);
            }
        }
    }
}

impl Cache {
    /// Fetches (or finds stored) the manifest `reference` names and, of an
    /// index, the manifests of the chosen platforms; answers the blobs they
    /// name (fetch them with `fetch_blob`).
    pub(crate) async fn image_parts(
        self: &Arc<Self>,
        repo: &RepoName,
        reference: &Reference,
        platforms: &Platforms,
    ) -> Result<ImageParts, CacheError> {
        let top = self.manifest(repo, reference, None).await?;
        let mut parts = ImageParts {
            manifests: vec![top.digest.clone()],
            ..ImageParts::default()
        };
        if !top.media_type.is_index() {
            parts.add_blobs(&top.bytes);
            return Ok(parts);
        }
        let children = platform_children(&top.bytes);
        let chosen: Vec<&Digest> = children
            .iter()
            .filter(|(platform, _)| platforms.takes(platform))
            .map(|(_, d)| d)
            .collect();
        if chosen.is_empty() {
            parts.unmatched = Some(children.iter().map(|(p, _)| p.clone()).collect());
            return Ok(parts);
        }
        for digest in chosen {
            let child = self
                .manifest(repo, &Reference::Digest(digest.clone()), None)
                .await?;
            parts.add_blobs(&child.bytes);
            parts.manifests.push(digest.clone());
        }
        Ok(parts)
    }

    /// A blob stored already, or downloaded to its end (read along as a
    /// pull would: a download under way is joined).
    pub(crate) async fn fetch_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), String> {
        let blob = self
            .blob(repo, digest)
            .await
            .map_err(|e| format!("{digest}: {e}"))?;
        if blob.is_stored() {
            return Ok(());
        }
        let mut stream = std::pin::pin!(blob.stream(0, None));
        while let Some(chunk) = stream.next().await {
            chunk.map_err(|e| format!("{digest}: {e}"))?;
        }
        Ok(())
    }

    /// Fetches the referrers of `subjects` (signatures, SBOMs, attestations:
    /// what `referrers` lists, through the upstream's API or its
    /// `sha256-<hex>` tag) into the repository, and cosign's tags of the
    /// first subject where the upstream has them; answers the blobs they
    /// name. A referrer's manifest stored here keeps its `subject`, so the
    /// referrers API lists it with the upstream gone.
    pub(crate) async fn referrer_parts(
        self: &Arc<Self>,
        repo: &RepoName,
        subjects: &[Digest],
    ) -> Result<ImageParts, CacheError> {
        let mut parts = ImageParts::default();
        for (i, subject) in subjects.iter().enumerate() {
            let listed = self.referrers(repo, subject).await?;
            let digests = listed
                .iter()
                .filter_map(|d| d.get("digest").and_then(Value::as_str))
                .filter_map(|d| d.parse::<Digest>().ok())
                .take(MAX_REFERRERS);
            let mut references: Vec<Reference> = digests.map(Reference::Digest).collect();
            if i == 0 {
                references.extend(
                    COSIGN_SUFFIXES
                        .iter()
                        .filter_map(|s| Tag::parse(&format!("{}{s}", schema_tag(subject))))
                        .map(Reference::Tag),
                );
            }
            for reference in references {
                let found = match self.image_parts(repo, &reference, &Platforms::All).await {
                    Ok(found) => found,
                    // Cosign's tags are looked for, not known to be there.
                    Err(CacheError::ManifestUnknown) if matches!(reference, Reference::Tag(_)) => {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                for d in found.manifests {
                    if !parts.manifests.contains(&d) {
                        parts.manifests.push(d);
                    }
                }
                for b in found.blobs {
                    if !parts.blobs.iter().any(|(d, _)| *d == b.0) {
                        parts.blobs.push(b);
                    }
                }
            }
        }
        Ok(parts)
    }
}

/// The tag under which registries without the referrers API keep the
/// referrers of `digest`: `<algorithm>-<hex>` (the OCI distribution spec's
/// referrers tag schema, which cosign's tags extend).
pub(crate) fn schema_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm().name(), digest.hex())
}
