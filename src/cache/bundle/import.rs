//! `ferry import`: a bundle (or a plain OCI layout) into the store. The
//! walk: the stream is read once (`receive.rs`: sidecar, signature, what it
//! assumes, then every blob verified into staging and committed), then the
//! whole is checked (every `index.json` entry and what each image manifest
//! names is stored; every reference valid), and only then the metadata is
//! written: manifest and blob records, each tag with what it holds, its
//! provenance mark, referrers, the caches' usage and pins. A failure before
//! that last step leaves blobs that nothing names (GC removes them; a
//! second import finds and skips them), never a tag.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Serialize;

use super::import_error::ImportError;
use super::receive::{receive, Received};
use crate::bundle::{BundleError, BundleRef, TrustedKey, MANIFEST_JSON, REF_NAME};
use crate::cache::manifest_info::{checked_media_type, describe};
use crate::cache::manifests::{fresh_repo_record, looks_like_manifest, MAX_MANIFEST_BYTES};
use crate::cache::CacheError;
use crate::cache::{PinOutcome, Storage};
use crate::domain::{Digest, MediaType, RepoName};
use crate::store::{
    unix_millis, unix_now, BlobBackend, BlobRecord, BlockingMeta, ImportMark, ManifestRecord, Pin,
    StoreError, TagRecord,
};

/// Entries of `index.json` read at most (a bound on a hostile document).
const MAX_INDEX_ENTRIES: usize = 100_000;

/// How an import places what it brings.
#[derive(Clone, Default)]
pub(crate) struct ImportOptions {
    /// `FROM=TO`: a reference under base path FROM lands under TO.
    pub map: Vec<(String, String)>,
    /// `<base_path>/<repository>` for the bare tags a plain OCI layout names.
    pub to: Option<String>,
    /// Pin every imported tag.
    pub pin: bool,
    /// Refuse a bundle this key did not sign.
    pub trusted_key: Option<TrustedKey>,
    /// The base paths served now: a repository's cache is the longest that
    /// prefixes it, else its first path component.
    pub served: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ImportReport {
    /// The bundle's id (a fresh one for a plain OCI layout).
    pub bundle: String,
    pub source: String,
    /// Tags pointed (new or moved) by this import.
    pub imported: Vec<String>,
    /// Tags that already pointed at the bundle's content.
    pub unchanged: Vec<String>,
    pub blobs_stored: u64,
    pub bytes_stored: u64,
    /// Blobs of the bundle already held, read through.
    pub blobs_present: u64,
    pub pinned: Vec<String>,
    /// Pins refused (what is pinned would not fit a `max_size`).
    pub pin_refused: Vec<String>,
}

impl ImportReport {
    /// A line for a person.
    pub(crate) fn summary(&self) -> String {
        format!(
            "imported {} tags ({} unchanged), stored {} blobs ({} bytes), {} already held",
            self.imported.len(),
            self.unchanged.len(),
            self.blobs_stored,
            self.bytes_stored,
            self.blobs_present
        )
    }
}

/// One tag to point, checked.
struct PlannedTag {
    reference: BundleRef,
    base: String,
    digest: Digest,
    media_type: MediaType,
    size: u64,
    /// An index's children that are stored (also made members, so their
    /// blobs are the repository's to serve).
    children: Vec<Digest>,
}

/// A referrer to add to a repository.
struct PlannedReferrer {
    repository: RepoName,
    base: String,
    digest: Digest,
}

/// Everything checked, ready to record.
struct Plan {
    bundle: String,
    source: String,
    manifests: BTreeMap<Digest, ManifestRecord>,
    blobs: BTreeSet<Digest>,
    tags: Vec<PlannedTag>,
    referrers: Vec<PlannedReferrer>,
}

impl Storage {
    /// Imports a bundle read from `reader` (on the blocking pool: the
    /// reader may block, e.g. on an upload arriving).
    pub(crate) async fn import_bundle(
        &self,
        reader: Box<dyn Read + Send>,
        options: ImportOptions,
    ) -> Result<ImportReport, ImportError> {
        let blobs = self.blobs.clone();
        let opts = options.clone();
        let (received, plan) = on_blocking_pool(move || {
            let received = receive(&*blobs, reader, opts.trusted_key.as_ref())?;
            let plan = plan(&*blobs, &received, &opts)?;
            Ok((received, plan))
        })
        .await?;
        let mut report = ImportReport {
            bundle: plan.bundle.clone(),
            source: plan.source.clone(),
            blobs_stored: received.stored,
            bytes_stored: received.stored_bytes,
            blobs_present: received.skipped,
            ..ImportReport::default()
        };
        self.record(plan, &mut report).await?;
        if options.pin {
            self.pin_imported(&mut report, &options).await?;
        }
        tracing::info!(bundle = %report.bundle, source = %report.source, "{}", report.summary());
        Ok(report)
    }

    /// Writes the metadata of a checked import; tags last.
    async fn record(&self, plan: Plan, report: &mut ImportReport) -> Result<(), ImportError> {
        let (blobs, meta) = (self.blobs.clone(), self.meta.clone());
        let (added, plan) = on_blocking_pool(move || {
            let meta = meta.blocking();
            let mut added = 0;
            for (digest, record) in &plan.manifests {
                if meta.manifest(digest)?.is_none() {
                    meta.put_manifest(digest, record)?;
                    added += record.size;
                }
            }
            for digest in &plan.blobs {
                if meta.blob(digest)?.is_none() && meta.manifest(digest)?.is_none() {
                    let size = blobs.size_of(digest)?.unwrap_or(0);
                    meta.put_blob(
                        digest,
                        &BlobRecord {
                            size,
                            stored_at: unix_now(),
                        },
                    )?;
                    added += size;
                }
            }
            // Records durable before any tag names them.
            meta.flush()?;
            Ok((added, plan))
        })
        .await?;
        self.quota.add(added);
        let meta = self.meta.clone();
        let (bundle, source) = (plan.bundle.clone(), plan.source.clone());
        let (tags, referrers) = (plan.tags, plan.referrers);
        let (changed, tags, referrers) = on_blocking_pool(move || {
            let meta = meta.blocking();
            let mut changed = Vec::new();
            for tag in &tags {
                changed.push(point_imported_tag(meta, tag, &bundle, &source)?);
            }
            for referrer in &referrers {
                let fresh = fresh_repo_record(
                    &referrer.base,
                    &upstream_name(&referrer.repository, &referrer.base),
                );
                meta.add_to_repo(referrer.repository.as_str(), &referrer.digest, &fresh)?;
            }
            meta.flush()?;
            Ok((changed, tags, referrers))
        })
        .await?;
        for (tag, changed) in tags.iter().zip(changed) {
            let name = tag.reference.to_string();
            if changed {
                self.charge(&tag.base, &tag.digest).await;
                report.imported.push(name);
            } else {
                report.unchanged.push(name);
            }
        }
        for referrer in &referrers {
            self.charge(&referrer.base, &referrer.digest).await;
        }
        Ok(())
    }

    /// Pins every tag of the report (refusals reported, not fatal: the
    /// content is imported either way).
    async fn pin_imported(
        &self,
        report: &mut ImportReport,
        options: &ImportOptions,
    ) -> Result<(), ImportError> {
        let names: Vec<String> = report
            .imported
            .iter()
            .chain(&report.unchanged)
            .cloned()
            .collect();
        for name in names {
            let reference = BundleRef::parse(&name)?;
            let base = base_path_of(&reference.repository, &options.served);
            let pin = Pin::Tag {
                repository: reference.repository.to_string(),
                tag: reference.tag.to_string(),
            };
            match self.pin(pin, &base).await? {
                PinOutcome::Pinned(_) => report.pinned.push(name),
                PinOutcome::DoesNotFit(why) => report.pin_refused.push(format!("{name}: {why}")),
            }
        }
        Ok(())
    }

    /// The provenance of each `(repository, tag)`, where it holds.
    pub(crate) async fn import_marks(
        &self,
        tags: Vec<(String, String)>,
    ) -> Result<Vec<Option<ImportMark>>, CacheError> {
        let meta = self.meta.clone();
        super::super::blocking(move || {
            let meta = meta.blocking();
            tags.iter()
                .map(|(repo, tag)| meta.import_mark(repo, tag))
                .collect()
        })
        .await
    }

    /// Per repository, the latest import that still holds one of its tags.
    pub(crate) async fn latest_imports(
        &self,
    ) -> Result<std::collections::HashMap<String, ImportMark>, CacheError> {
        let meta = self.meta.clone();
        super::super::blocking(move || meta.blocking().latest_import_marks()).await
    }

    /// The provenance of a tag, while it still points where the import
    /// pointed it.
    pub(crate) async fn import_mark(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Option<ImportMark>, CacheError> {
        let (meta, repo, tag) = (self.meta.clone(), repo.to_string(), tag.to_string());
        super::super::blocking(move || meta.blocking().import_mark(&repo, &tag)).await
    }
}

/// Points one tag (its index's children made members first) and marks it
/// imported; false when it already pointed there as an import.
fn point_imported_tag(
    meta: &BlockingMeta,
    tag: &PlannedTag,
    bundle: &str,
    source: &str,
) -> Result<bool, StoreError> {
    let (repo, name) = (
        tag.reference.repository.as_str(),
        tag.reference.tag.as_str(),
    );
    let current = meta.tag(repo, name)?;
    if current.is_some_and(|t| t.digest == tag.digest) && meta.import_mark(repo, name)?.is_some() {
        return Ok(false);
    }
    let fresh = fresh_repo_record(
        &tag.base,
        &upstream_name(&tag.reference.repository, &tag.base),
    );
    for child in &tag.children {
        meta.add_to_repo(repo, child, &fresh)?;
    }
    let record = TagRecord {
        digest: tag.digest.clone(),
        media_type: tag.media_type.clone(),
        size: tag.size,
        // The import counts as a confirmation: the TTL runs from now.
        confirmed_at: unix_now(),
        last_pulled: unix_millis(),
    };
    meta.point_tag(repo, name, &record, &fresh)?;
    let mark = ImportMark {
        digest: tag.digest.clone(),
        bundle: bundle.to_string(),
        source: source.to_string(),
        imported_at: unix_now(),
    };
    meta.put_import_mark(repo, name, &mark)?;
    Ok(true)
}

/// Checks what arrived as a whole and plans its records (reads only).
fn plan(
    blobs: &dyn BlobBackend,
    received: &Received,
    options: &ImportOptions,
) -> Result<Plan, ImportError> {
    let index = received.index.as_deref().ok_or_else(|| {
        BundleError::Invalid("the bundle has no index.json (not an OCI layout)".into())
    })?;
    let entries = index_entries(index)?;
    let mut plan = Plan {
        bundle: received
            .sidecar
            .as_ref()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), |s| s.id.clone()),
        source: received
            .sidecar
            .as_ref()
            .map_or_else(|| "oci-layout".to_string(), |s| s.source.name.clone()),
        manifests: BTreeMap::new(),
        blobs: BTreeSet::new(),
        tags: Vec::new(),
        referrers: Vec::new(),
    };
    // With a sidecar, its references (what a signature covers) are the
    // tags: `index.json` must name exactly those, at the same digests.
    let mut expected: Option<BTreeMap<String, Digest>> = received.sidecar.as_ref().map(|s| {
        s.references
            .iter()
            .map(|r| (r.reference.clone(), r.digest.clone()))
            .collect()
    });
    let disagree = |what: String| {
        BundleError::Invalid(format!("index.json does not match {MANIFEST_JSON}: {what}"))
    };
    for entry in entries {
        let declared = entry.media_type.as_deref();
        let (record, children) = check_manifest(blobs, &entry.digest, declared, &mut plan)?;
        let Some(name) = entry.name else {
            // Untagged entries are checked but name nothing to serve.
            continue;
        };
        if let Some(expected) = &mut expected {
            if expected.remove(&name).as_ref() != Some(&entry.digest) {
                let digest = &entry.digest;
                return Err(disagree(format!("{name} at {digest} is not listed so")).into());
            }
        }
        let reference = resolve(&name, options)?;
        let base = base_path_of(&reference.repository, &options.served);
        plan.tags.push(PlannedTag {
            reference,
            base,
            digest: entry.digest.clone(),
            media_type: record.media_type.clone(),
            size: record.size,
            children,
        });
    }
    if let Some((name, _)) = expected.and_then(|rest| rest.into_iter().next()) {
        return Err(disagree(format!("it does not name {name}")).into());
    }
    if let Some(sidecar) = &received.sidecar {
        for referrer in &sidecar.referrers {
            let declared = Some(referrer.media_type.as_str());
            check_manifest(blobs, &referrer.digest, declared, &mut plan)?;
            let mapped = map_name(&referrer.repository, &options.map);
            let repository = RepoName::parse(&mapped).map_err(|e| {
                BundleError::Invalid(format!("referrer repository {mapped:?} is not valid: {e}"))
            })?;
            let base = base_path_of(&repository, &options.served);
            plan.referrers.push(PlannedReferrer {
                repository,
                base,
                digest: referrer.digest.clone(),
            });
        }
    }
    Ok(plan)
}

/// Checks a manifest of the layout and what it names: an image manifest's
/// config and layers must be stored; an index's children may be absent
/// (a platform left out), but those present are checked the same way.
/// Returns its record and its stored children.
fn check_manifest(
    blobs: &dyn BlobBackend,
    digest: &Digest,
    declared: Option<&str>,
    plan: &mut Plan,
) -> Result<(ManifestRecord, Vec<Digest>), ImportError> {
    let record = read_manifest(blobs, digest, declared)?;
    let mut children = Vec::new();
    for child in &record.children {
        if !blobs.contains(child)? {
            continue;
        }
        if !plan.manifests.contains_key(child) {
            let (_, grandchildren) = check_manifest(blobs, child, None, plan)?;
            children.extend(grandchildren);
        }
        children.push(child.clone());
    }
    for blob in &record.blobs {
        if !blobs.contains(blob)? {
            return Err(BundleError::Invalid(format!(
                "manifest {digest} names blob {blob}, which is neither in the bundle nor stored"
            ))
            .into());
        }
        plan.blobs.insert(blob.clone());
    }
    plan.manifests.insert(digest.clone(), record.clone());
    Ok((record, children))
}

/// A manifest's record, read from the store (where the stream put it).
fn read_manifest(
    blobs: &dyn BlobBackend,
    digest: &Digest,
    declared: Option<&str>,
) -> Result<ManifestRecord, ImportError> {
    let invalid =
        |why: String| ImportError::Bundle(BundleError::Invalid(format!("manifest {digest} {why}")));
    match blobs.size_of(digest)? {
        None => {
            return Err(invalid(
                "is named by the layout but neither in the bundle nor stored".into(),
            ))
        }
        Some(size) if size > MAX_MANIFEST_BYTES => {
            return Err(invalid(format!(
                "is {size} bytes, over the limit of {MAX_MANIFEST_BYTES}"
            )))
        }
        Some(_) => {}
    }
    let bytes = blobs
        .read_blob(digest)?
        .ok_or_else(|| invalid("vanished from the store".into()))?;
    if !looks_like_manifest(&bytes) {
        return Err(invalid("is not a manifest".into()));
    }
    let media_type = checked_media_type(declared, &bytes).map_err(invalid)?;
    Ok(describe(&media_type, &bytes, unix_now()))
}

/// One entry of `index.json`.
struct IndexEntry {
    digest: Digest,
    media_type: Option<String>,
    name: Option<String>,
}

fn index_entries(bytes: &[u8]) -> Result<Vec<IndexEntry>, BundleError> {
    let invalid = |why: String| BundleError::Invalid(format!("index.json {why}"));
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("is not JSON: {e}")))?;
    let list = document
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or_else(|| invalid("lists no manifests".into()))?;
    if list.len() > MAX_INDEX_ENTRIES {
        return Err(invalid(format!("lists over {MAX_INDEX_ENTRIES} manifests")));
    }
    list.iter()
        .map(|entry| {
            let text =
                |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
            let digest = text(entry.get("digest"))
                .ok_or_else(|| invalid("has an entry without a digest".into()))?;
            let digest = digest
                .parse()
                .map_err(|e| invalid(format!("has an entry with digest {digest:?}: {e}")))?;
            Ok(IndexEntry {
                digest,
                media_type: text(entry.get("mediaType")),
                name: text(entry.get("annotations").and_then(|a| a.get(REF_NAME))),
            })
        })
        .collect()
}

/// A reference of the layout, placed: a bare tag (`skopeo copy ...
/// oci:DIR:TAG`) under `--to`, then `--map`, then checked.
fn resolve(name: &str, options: &ImportOptions) -> Result<BundleRef, BundleError> {
    let full = if !name.contains(':') && !name.contains('/') {
        let to = options.to.as_deref().ok_or_else(|| {
            BundleError::Invalid(format!(
                "the layout names {name:?}, a bare tag: give --to <base_path>/<repository>"
            ))
        })?;
        format!("{to}:{name}")
    } else {
        name.to_string()
    };
    BundleRef::parse(&map_name(&full, &options.map))
}

/// `name` with a `--map FROM=TO` applied: FROM matches whole leading path
/// components.
pub(super) fn map_name(name: &str, map: &[(String, String)]) -> String {
    for (from, to) in map {
        if let Some(rest) = name.strip_prefix(from.as_str()) {
            if rest.starts_with('/') || rest.starts_with(':') || rest.is_empty() {
                return format!("{to}{rest}");
            }
        }
    }
    name.to_string()
}

/// The cache a local repository belongs to: the longest served base path
/// that prefixes it, else its first path component.
fn base_path_of(repository: &RepoName, served: &[String]) -> String {
    let name = repository.as_str();
    served
        .iter()
        .filter(|base| {
            name.strip_prefix(base.as_str())
                .is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|base| base.len())
        .cloned()
        .unwrap_or_else(|| name.split('/').next().unwrap_or(name).to_string())
}

/// The repository's name upstream: the local name without its base path.
fn upstream_name(repository: &RepoName, base: &str) -> String {
    let name = repository.as_str();
    name.strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(name)
        .to_string()
}

/// Runs import work on the blocking pool.
async fn on_blocking_pool<T, F>(work: F) -> Result<T, ImportError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ImportError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ImportError::Cache(CacheError::Internal(format!("import task failed: {e}"))))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_placed_under_to_and_map() {
        let options = ImportOptions {
            map: vec![("hub".into(), "mirror".into())],
            to: Some("local/app".into()),
            ..ImportOptions::default()
        };
        assert_eq!(resolve("v1", &options).unwrap().to_string(), "local/app:v1");
        assert_eq!(
            resolve("hub/library/busybox:1", &options)
                .unwrap()
                .to_string(),
            "mirror/library/busybox:1"
        );
        assert_eq!(map_name("hubx/a:1", &options.map), "hubx/a:1");
        assert!(resolve("v1", &ImportOptions::default()).is_err());
        assert!(resolve("hub/../x:1", &options).is_err());
        let served = vec!["a".to_string(), "a/b".to_string()];
        let repo = RepoName::parse("a/b/c").unwrap();
        assert_eq!(base_path_of(&repo, &served), "a/b");
        assert_eq!(upstream_name(&repo, "a/b"), "c");
        assert_eq!(base_path_of(&RepoName::parse("z/c").unwrap(), &served), "z");
    }
}
