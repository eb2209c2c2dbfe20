//! A local repository's content (tags → manifests → blobs), and the sizes
//! and counts the API and dashboard list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::error::{blocking, CacheError};
use super::maintenance::closure;
use super::manifest_info::platforms;
use super::Storage;
use crate::domain::Digest;
use crate::store::{BlobBackend, BlockingMeta, ManifestRecord, RepoRecord, StoreError, TagRecord};

/// What one repository holds now.
pub(crate) struct RepoContent {
    pub tags: Vec<(String, TagRecord)>,
    pub manifests: Vec<(Digest, Option<ManifestRecord>)>,
    /// Config and layer blobs of the manifests.
    pub blobs: BTreeSet<Digest>,
}

fn content_of(meta: &BlockingMeta, name: &str) -> Result<RepoContent, StoreError> {
    let tags = meta.tags_of(name)?;
    let mut manifests = Vec::new();
    let mut blobs = BTreeSet::new();
    for digest in meta.members(name)? {
        let record = meta.manifest(&digest)?;
        if let Some(r) = &record {
            blobs.extend(r.blobs.iter().cloned());
        }
        manifests.push((digest, record));
    }
    Ok(RepoContent {
        tags,
        manifests,
        blobs,
    })
}

/// Counts and sizes of one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RepoSummary {
    pub tags: u64,
    pub manifests: u64,
    pub blobs: u64,
    /// Bytes of its manifests and blobs (a blob shared with another
    /// repository counts in both).
    pub bytes: u64,
    /// The latest pull of any of its tags (unix ms; 0 if unknown).
    pub last_pulled: u64,
    /// A reference that pulls something it holds: `<name>:<tag>` of the
    /// tag pulled (else confirmed) most recently, else `<name>@<digest>`.
    pub pull_reference: Option<String>,
}

/// A cache's totals: a blob shared by its repositories counts once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheTotals {
    pub repositories: u64,
    pub tags: u64,
    pub blobs: u64,
    pub bytes: u64,
}

/// Every local repository with its summary, and the totals per cache.
#[derive(Clone)]
pub(crate) struct Inventory {
    pub repos: Vec<(String, RepoRecord, RepoSummary)>,
    pub caches: BTreeMap<String, CacheTotals>,
}

/// What a tag points at, as listings show it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TagDetail {
    /// The manifest, its children and all their blobs, in bytes.
    pub size: u64,
    /// For an index: the platforms it lists.
    pub platforms: Vec<String>,
}

/// Stored sizes by digest (and whether each is a manifest), read once per
/// listing.
struct Sizes<'a> {
    meta: &'a BlockingMeta,
    known: HashMap<Digest, (u64, bool)>,
}

impl Sizes<'_> {
    fn new(meta: &BlockingMeta) -> Sizes<'_> {
        Sizes {
            meta,
            known: HashMap::new(),
        }
    }

    fn of(&mut self, digest: &Digest) -> Result<(u64, bool), StoreError> {
        if let Some(known) = self.known.get(digest) {
            return Ok(*known);
        }
        let known = match self.meta.manifest(digest)? {
            Some(m) => (m.size, true),
            None => (self.meta.blob(digest)?.map_or(0, |b| b.size), false),
        };
        self.known.insert(digest.clone(), known);
        Ok(known)
    }

    /// Bytes of `digests`, and how many of them are blobs.
    fn total(&mut self, digests: &BTreeSet<Digest>) -> Result<(u64, u64), StoreError> {
        let (mut bytes, mut blobs) = (0, 0);
        for digest in digests {
            let (size, is_manifest) = self.of(digest)?;
            bytes += size;
            blobs += u64::from(!is_manifest);
        }
        Ok((bytes, blobs))
    }
}

/// One repository's summary, and everything it holds (its manifests, their
/// children, and all their blobs).
fn summarize(
    meta: &BlockingMeta,
    sizes: &mut Sizes,
    name: &str,
) -> Result<(RepoSummary, BTreeSet<Digest>), StoreError> {
    let tags = meta.tags_of(name)?;
    let members = meta.members(name)?;
    let content = closure(meta, members.clone())?;
    let (bytes, blobs) = sizes.total(&content)?;
    let summary = RepoSummary {
        tags: tags.len() as u64,
        manifests: members.len() as u64,
        blobs,
        bytes,
        last_pulled: tags
            .iter()
            .map(|(_, t)| t.last_pulled.max(t.confirmed_at.saturating_mul(1000)))
            .max()
            .unwrap_or(0),
        pull_reference: tags
            .iter()
            .max_by_key(|(_, t)| (t.last_pulled, t.confirmed_at))
            .map(|(tag, _)| format!("{name}:{tag}"))
            .or_else(|| members.first().map(|d| format!("{name}@{d}"))),
    };
    Ok((summary, content))
}

fn inventory(meta: &BlockingMeta) -> Result<Inventory, StoreError> {
    let mut sizes = Sizes::new(meta);
    let mut repos = Vec::new();
    let mut held: BTreeMap<String, (CacheTotals, BTreeSet<Digest>)> = BTreeMap::new();
    for (name, record) in meta.repos()? {
        let (summary, content) = summarize(meta, &mut sizes, &name)?;
        let (totals, digests) = held.entry(record.cache.clone()).or_default();
        totals.repositories += 1;
        totals.tags += summary.tags;
        digests.extend(content);
        repos.push((name, record, summary));
    }
    let mut caches = BTreeMap::new();
    for (cache, (mut totals, digests)) in held {
        (totals.bytes, totals.blobs) = sizes.total(&digests)?;
        caches.insert(cache, totals);
    }
    Ok(Inventory { repos, caches })
}

fn tag_detail(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    sizes: &mut Sizes,
    digest: &Digest,
) -> Result<TagDetail, StoreError> {
    let (size, _) = sizes.total(&closure(meta, vec![digest.clone()])?)?;
    let is_index = meta
        .manifest(digest)?
        .is_some_and(|m| m.media_type.is_index());
    let platforms = if is_index {
        blobs
            .read_blob(digest)?
            .map(|bytes| platforms(&bytes))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(TagDetail { size, platforms })
}

impl Storage {
    /// Every repository with its counts and sizes, and each cache's totals.
    /// Pulls noted in memory are written first, so "last pulled" is current.
    pub(crate) async fn inventory(&self) -> Result<Inventory, CacheError> {
        self.flush_recency().await?;
        let version = self.meta.content_version();
        if let Some(known) = self.summaries.inventory.at(version) {
            return Ok(known);
        }
        let meta = self.meta.clone();
        let walked = blocking(move || inventory(meta.blocking())).await?;
        self.summaries.inventory.keep(version, &walked);
        Ok(walked)
    }

    /// One repository's counts and sizes (pending pull times written first).
    pub(crate) async fn repo_summary(&self, name: &str) -> Result<RepoSummary, CacheError> {
        self.flush_recency().await?;
        let (meta, name) = (self.meta.clone(), name.to_string());
        blocking(move || {
            let meta = meta.blocking();
            Ok(summarize(meta, &mut Sizes::new(meta), &name)?.0)
        })
        .await
    }

    /// Size and platforms of what each of `digests` (tagged manifests) is.
    pub(crate) async fn tag_details(
        &self,
        digests: Vec<Digest>,
    ) -> Result<Vec<TagDetail>, CacheError> {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        blocking(move || {
            let meta = meta.blocking();
            let mut sizes = Sizes::new(meta);
            digests
                .iter()
                .map(|d| tag_detail(meta, &*blobs, &mut sizes, d))
                .collect()
        })
        .await
    }

    pub(crate) async fn repo_content(&self, name: &str) -> Result<RepoContent, CacheError> {
        let (meta, name) = (self.meta.clone(), name.to_string());
        blocking(move || content_of(meta.blocking(), &name)).await
    }

    /// Bytes of the blobs and manifests stored, and their number.
    pub(crate) async fn stored_totals(&self) -> Result<(u64, u64), CacheError> {
        let version = self.meta.content_version();
        if let Some(known) = self.summaries.stored.at(version) {
            return Ok(known);
        }
        let meta = self.meta.clone();
        let walked = blocking(move || {
            let meta = meta.blocking();
            let mut totals = (0, 0);
            for (_, record) in meta.blob_records()? {
                totals.0 += record.size;
                totals.1 += 1;
            }
            for item in meta.manifests() {
                totals.0 += item?.1.size;
                totals.1 += 1;
            }
            Ok(totals)
        })
        .await?;
        self.summaries.stored.keep(version, &walked);
        Ok(walked)
    }
}
