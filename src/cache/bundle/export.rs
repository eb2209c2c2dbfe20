//! Export: a [`Selection`] becomes a plan (the sidecar manifest,
//! [`BundleManifest`]) by a walk of the local repositories and their tags,
//! which `write` turns into the tar.
//!
//! The walk takes what is stored and complete: an image manifest goes in
//! with its config and every layer, or not at all (a tag whose image was
//! only inspected, never pulled whole, is left out and named in the
//! manifest's `left_out`); an index goes in with those of its children that
//! are chosen (platforms) and stored, since an import tolerates absent
//! children.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use crate::bundle::{
    BundleBlob, BundleLeftOut, BundleManifest, BundleRef, BundleReference, BundleReferrer,
    BundleSource, Selection, FORMAT,
};
use crate::cache::manifest_info::platform_children;
use crate::cache::Storage;
use crate::cache::{blocking, CacheError};
use crate::config::wildcard_match;
use crate::domain::{Digest, MediaType, Platforms};
use crate::store::{BlobBackend, BlockingMeta, StoreError, TagRecord};

/// Bounds on what a selection (an API body) may ask for.
const MAX_PATTERNS: usize = 256;
const MAX_PATTERN_LEN: usize = 256;
const MAX_PLATFORMS: usize = 16;
const MAX_HAVE: usize = 1_000_000;
/// Bounds on a manifest handed back to `export/` (planned earlier).
const MAX_REFERENCES: usize = 100_000;
const MAX_BLOBS: usize = 1_000_000;
/// Nesting of indexes followed (an index of indexes is rare; deeper is
/// refused rather than walked without end).
const MAX_DEPTH: usize = 3;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// The selection, or a manifest given back, is not valid: the
    /// client's to fix.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "blob {0} is no longer stored (evicted while the bundle was made?): nothing was \
         exported; run the export again"
    )]
    Vanished(Digest),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("writing the bundle: {0}")]
    Io(#[from] io::Error),
}

impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> Self {
        ExportError::Cache(e.into())
    }
}

pub(super) fn invalid(message: impl Into<String>) -> ExportError {
    ExportError::Invalid(message.into())
}

/// A planned bundle, ready to write.
pub(crate) struct BundleToWrite {
    pub manifest: BundleManifest,
    /// The exact bytes of `ferry-bundle.json`: what a signature covers.
    pub manifest_bytes: Vec<u8>,
    /// The signature entry's bytes (`BundleSigner::sign` of the above).
    pub signature: Option<Vec<u8>>,
    pub zstd: bool,
}

impl BundleToWrite {
    /// A plan as ferry writes it (pretty JSON, so a person can read it).
    pub(crate) fn new(manifest: BundleManifest, zstd: bool) -> Result<BundleToWrite, ExportError> {
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| ExportError::Cache(CacheError::Internal(e.to_string())))?;
        Ok(BundleToWrite {
            manifest,
            manifest_bytes,
            signature: None,
            zstd,
        })
    }
}

/// Refuses a selection that is out of bounds or malformed.
pub(crate) fn check_selection(selection: &Selection) -> Result<(), ExportError> {
    for (field, list) in [
        ("caches", &selection.caches),
        ("repositories", &selection.repositories),
        ("tags", &selection.tags),
    ] {
        if list.len() > MAX_PATTERNS {
            return Err(invalid(format!("{field}: at most {MAX_PATTERNS} patterns")));
        }
        if let Some(bad) = list
            .iter()
            .find(|p| p.is_empty() || p.len() > MAX_PATTERN_LEN || p.chars().any(char::is_control))
        {
            return Err(invalid(format!(
                "{field}: {bad:?} is not a pattern (1 to {MAX_PATTERN_LEN} printable characters)"
            )));
        }
    }
    if let Some(Platforms::Listed(list)) = &selection.platforms {
        if list.is_empty() || list.len() > MAX_PLATFORMS || !list.iter().all(|p| valid_platform(p))
        {
            return Err(invalid(
                "platforms: give \"all\" or 1 to 16 of os/architecture[/variant]",
            ));
        }
    }
    if selection.have.len() > MAX_HAVE {
        return Err(invalid(format!("have: at most {MAX_HAVE} blobs")));
    }
    Ok(())
}

fn valid_platform(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 32
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Whether `text` matches one of `patterns` (an empty list matches all).
fn selected(patterns: &[String], text: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| wildcard_match(p, text))
}

/// The walk's memory: each blob's stored size asked once.
struct Walk<'a> {
    meta: &'a BlockingMeta,
    blobs: &'a dyn BlobBackend,
    platforms: Option<&'a Platforms>,
    sizes: HashMap<Digest, Option<u64>>,
}

/// What of one manifest goes into a bundle: the manifest, then (for an
/// index) its children taken, then its blobs; or why it cannot.
type Content = Result<Vec<Digest>, String>;

impl Walk<'_> {
    fn size(&mut self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        if let Some(size) = self.sizes.get(digest) {
            return Ok(*size);
        }
        let size = self.blobs.size_of(digest)?;
        self.sizes.insert(digest.clone(), size);
        Ok(size)
    }

    fn content(&mut self, digest: &Digest, depth: usize) -> Result<Content, StoreError> {
        let Some(record) = self.meta.manifest(digest)? else {
            return Ok(Err(format!("manifest {digest} is not stored")));
        };
        if self.size(digest)?.is_none() {
            return Ok(Err(format!("manifest {digest} is not stored")));
        }
        let mut out = vec![digest.clone()];
        if !record.media_type.is_index() {
            for blob in &record.blobs {
                if self.size(blob)?.is_none() {
                    return Ok(Err(format!(
                        "blob {blob} of manifest {digest} is not stored (the image was \
                         inspected, never pulled whole)"
                    )));
                }
                out.push(blob.clone());
            }
            return Ok(Ok(out));
        }
        if depth >= MAX_DEPTH {
            return Ok(Err(format!("index {digest} nests indexes too deep")));
        }
        let Some(bytes) = self.blobs.read_blob(digest)? else {
            return Ok(Err(format!("manifest {digest} is not stored")));
        };
        let mut taken = 0;
        for (platform, child) in platform_children(&bytes) {
            if !self.platforms.is_none_or(|p| p.takes(&platform)) {
                continue;
            }
            // A child not stored, or not whole, is left out: an import
            // tolerates absent children of an index.
            if let Ok(content) = self.content(&child, depth + 1)? {
                out.extend(content);
                taken += 1;
            }
        }
        if taken == 0 {
            return Ok(Err(format!(
                "no platform of index {digest} that the selection takes is stored whole"
            )));
        }
        Ok(Ok(out))
    }
}

/// Whether a tag passes the selection's own filters (name, pin, recency).
fn tag_selected(
    selection: &Selection,
    pins: &crate::store::Pins,
    cache: &str,
    repo: &str,
    tag: &str,
    record: &TagRecord,
) -> bool {
    if !selected(&selection.tags, tag) {
        return false;
    }
    if selection.pinned && !pins.covers(cache, repo, tag) {
        return false;
    }
    match selection.pulled_since {
        // A tag never pulled counts from when it was stored (confirmed).
        Some(since) => {
            let at = if record.last_pulled > 0 {
                record.last_pulled / 1000
            } else {
                record.confirmed_at
            };
            at >= since
        }
        None => true,
    }
}

/// The tags of the fallback tag schema (`sha256-<hex>`, `sha256-<hex>.sig`,
/// ...) that refer to one of `digests`: how registries without the
/// referrers API keep signatures and attestations.
fn fallback_tag_of(tag: &str, digests: &HashSet<Digest>) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = rest.get(..64).unwrap_or(rest);
    format!("sha256:{hex}")
        .parse::<Digest>()
        .is_ok_and(|d| digests.contains(&d))
}

/// The plan as it grows: what is in, what was left out and why.
struct Planner<'a> {
    walk: Walk<'a>,
    references: Vec<BundleReference>,
    referrers: Vec<BundleReferrer>,
    left_out: Vec<BundleLeftOut>,
    /// Every digest in the bundle, in the order first met.
    order: Vec<Digest>,
    seen: HashSet<Digest>,
}

impl Planner<'_> {
    fn take(&mut self, content: Vec<Digest>) {
        for digest in content {
            if self.seen.insert(digest.clone()) {
                self.order.push(digest);
            }
        }
    }

    /// Takes one tag with its content; the manifests taken (for their
    /// referrers), none when it is left out.
    fn tag(
        &mut self,
        repo: &str,
        tag: &str,
        record: &TagRecord,
    ) -> Result<Vec<Digest>, ExportError> {
        let reference = format!("{repo}:{tag}");
        match self.walk.content(&record.digest, 0)? {
            Ok(content) => {
                let manifests = manifest_digests(self.walk.meta, &content)?;
                self.take(content);
                self.references.push(BundleReference {
                    reference,
                    digest: record.digest.clone(),
                    media_type: record.media_type.as_str().to_string(),
                    size: record.size,
                });
                Ok(manifests)
            }
            Err(reason) => {
                self.left_out.push(BundleLeftOut { reference, reason });
                Ok(Vec::new())
            }
        }
    }

    /// The referrers stored in `repo` of `manifests`, followed
    /// transitively (the signature of an SBOM).
    fn referrers_of(
        &mut self,
        repo: &str,
        manifests: &HashSet<Digest>,
        by_subject: &HashMap<Digest, Vec<Referrer>>,
    ) -> Result<(), ExportError> {
        let mut queue: Vec<Digest> = manifests.iter().cloned().collect();
        let mut done: HashSet<Digest> = HashSet::new();
        while let Some(subject) = queue.pop() {
            for (digest, media_type, size) in by_subject.get(&subject).into_iter().flatten() {
                if !done.insert(digest.clone()) || !self.walk.meta.is_member(repo, digest)? {
                    continue;
                }
                match self.walk.content(digest, 0)? {
                    Ok(content) => {
                        self.take(content);
                        self.referrers.push(BundleReferrer {
                            repository: repo.to_string(),
                            digest: digest.clone(),
                            subject: subject.clone(),
                            media_type: media_type.as_str().to_string(),
                            size: *size,
                        });
                        queue.push(digest.clone());
                    }
                    Err(reason) => self.left_out.push(BundleLeftOut {
                        reference: format!("{repo}@{digest}"),
                        reason,
                    }),
                }
            }
        }
        Ok(())
    }
}

/// The plan: see the module's comment.
fn plan(
    meta: &BlockingMeta,
    blobs: &dyn BlobBackend,
    selection: &Selection,
    source: BundleSource,
) -> Result<BundleManifest, ExportError> {
    let pins = if selection.pinned {
        meta.pins()?
    } else {
        crate::store::Pins::default()
    };
    let by_subject = if selection.referrers {
        referrers_by_subject(meta)?
    } else {
        HashMap::new()
    };
    let mut planner = Planner {
        walk: Walk {
            meta,
            blobs,
            platforms: selection.platforms.as_ref(),
            sizes: HashMap::new(),
        },
        references: Vec::new(),
        referrers: Vec::new(),
        left_out: Vec::new(),
        order: Vec::new(),
        seen: HashSet::new(),
    };
    for (repo, record) in meta.repos()? {
        if !selected(&selection.caches, &record.cache) || !selected(&selection.repositories, &repo)
        {
            continue;
        }
        let tags = meta.tags_of(&repo)?;
        let mut manifests: HashSet<Digest> = HashSet::new();
        let mut taken_tags = HashSet::new();
        for (tag, tag_record) in &tags {
            if tag_selected(selection, &pins, &record.cache, &repo, tag, tag_record) {
                manifests.extend(planner.tag(&repo, tag, tag_record)?);
                taken_tags.insert(tag.as_str());
            }
        }
        if !selection.referrers || manifests.is_empty() {
            continue;
        }
        // Referrers as tags (the fallback schema), then by the referrers
        // API's records.
        for (tag, tag_record) in &tags {
            if !taken_tags.contains(tag.as_str()) && fallback_tag_of(tag, &manifests) {
                planner.tag(&repo, tag, tag_record)?;
            }
        }
        planner.referrers_of(&repo, &manifests, &by_subject)?;
    }
    let Planner {
        mut walk,
        references,
        referrers,
        left_out,
        order,
        ..
    } = planner;
    if references.is_empty() {
        let why = match left_out.first() {
            Some(first) => format!(
                "; {} matching tag(s) are not stored whole, e.g. {}: {}",
                left_out.len(),
                first.reference,
                first.reason
            ),
            None => String::new(),
        };
        return Err(invalid(format!(
            "the selection matches no stored image{why}"
        )));
    }
    let have: HashSet<&Digest> = selection.have.iter().map(|b| &b.digest).collect();
    let (mut in_bundle, mut assumed) = (Vec::new(), Vec::new());
    for digest in order {
        let size = walk.size(&digest)?.unwrap_or(0);
        let blob = BundleBlob { digest, size };
        if have.contains(&blob.digest) {
            assumed.push(blob);
        } else {
            in_bundle.push(blob);
        }
    }
    Ok(BundleManifest {
        format: FORMAT.to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        source,
        references,
        referrers,
        blobs: in_bundle,
        assumed,
        left_out,
    })
}

/// The manifests among `content` (the rest are configs and layers).
fn manifest_digests(meta: &BlockingMeta, content: &[Digest]) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::new();
    for digest in content {
        if meta.manifest(digest)?.is_some() {
            out.push(digest.clone());
        }
    }
    Ok(out)
}

type Referrer = (Digest, MediaType, u64);

/// Every stored manifest that names a subject, by subject.
fn referrers_by_subject(meta: &BlockingMeta) -> Result<HashMap<Digest, Vec<Referrer>>, StoreError> {
    let mut map: HashMap<Digest, Vec<Referrer>> = HashMap::new();
    for item in meta.manifests() {
        let (digest, record) = item?;
        if let Some(subject) = record.subject {
            map.entry(subject)
                .or_default()
                .push((digest, record.media_type, record.size));
        }
    }
    Ok(map)
}

/// Checks a manifest planned earlier and handed back (to be written with
/// its signature): it must parse, name valid references, and list blobs
/// stored here with the sizes stored.
fn check_given(blobs: &dyn BlobBackend, text: &str) -> Result<BundleManifest, ExportError> {
    let manifest: BundleManifest = serde_json::from_str(text)
        .map_err(|e| invalid(format!("manifest: not a ferry bundle manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(invalid(format!(
            "manifest: format {:?}, this ferry writes {FORMAT:?}",
            manifest.format
        )));
    }
    if manifest.references.len() > MAX_REFERENCES || manifest.blobs.len() > MAX_BLOBS {
        return Err(invalid(format!(
            "manifest: at most {MAX_REFERENCES} references and {MAX_BLOBS} blobs"
        )));
    }
    for reference in &manifest.references {
        BundleRef::parse(&reference.reference).map_err(|e| invalid(format!("manifest: {e}")))?;
    }
    let listed: HashSet<&Digest> = manifest
        .blobs
        .iter()
        .chain(&manifest.assumed)
        .map(|b| &b.digest)
        .collect();
    let named = manifest
        .references
        .iter()
        .map(|r| &r.digest)
        .chain(manifest.referrers.iter().map(|r| &r.digest));
    for digest in named {
        if !listed.contains(digest) {
            return Err(invalid(format!(
                "manifest: {digest} is named but neither in blobs nor assumed"
            )));
        }
    }
    for blob in &manifest.blobs {
        match blobs.size_of(&blob.digest)? {
            Some(size) if size == blob.size => {}
            Some(size) => {
                return Err(invalid(format!(
                    "manifest: blob {} is {size} bytes here, the manifest says {}",
                    blob.digest, blob.size
                )))
            }
            None => return Err(ExportError::Vanished(blob.digest.clone())),
        }
    }
    Ok(manifest)
}

impl Storage {
    /// The plan of `selection`: what export would write.
    pub(crate) async fn plan_export(
        self: &Arc<Self>,
        selection: Selection,
        source: BundleSource,
    ) -> Result<BundleManifest, ExportError> {
        check_selection(&selection)?;
        // "pulled since" reads the pull times: those noted in memory first.
        self.flush_recency().await?;
        let storage = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            plan(
                storage.meta.blocking(),
                &**storage.blobs(),
                &selection,
                source,
            )
        });
        task.await
            .map_err(|e| CacheError::Internal(format!("blocking task failed: {e}")))?
    }

    /// A manifest planned earlier, checked against the store (see
    /// [`check_given`]), with its signature entry: ready to write verbatim.
    pub(crate) async fn given_bundle(
        self: &Arc<Self>,
        manifest: String,
        signature: Option<String>,
        zstd: bool,
    ) -> Result<BundleToWrite, ExportError> {
        let storage = self.clone();
        let checked =
            blocking(move || Ok(check_given(&**storage.blobs(), &manifest).map(|m| (m, manifest))));
        let (manifest, text) = checked.await??;
        Ok(BundleToWrite {
            manifest,
            manifest_bytes: text.into_bytes(),
            signature: signature.map(String::into_bytes),
            zstd,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cache::manifest_info::describe;
    use crate::store::{Change, RepoRecord};
    use serde_json::json;

    /// Stores `bytes` as a blob; its digest.
    fn blob(storage: &Storage, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        storage.blobs().put_verified(&digest, bytes).unwrap();
        digest
    }

    /// An image manifest naming a config and one layer, stored and tagged
    /// `repo:tag` (the layer stored only if `whole`).
    pub(crate) fn image(storage: &Storage, repo: &str, tag: &str, whole: bool) -> (Digest, Digest) {
        let config = blob(storage, format!("{{\"tag\":\"{tag}\"}}").as_bytes());
        let layer_bytes = format!("layer of {tag}");
        let layer = Digest::sha256_of(layer_bytes.as_bytes());
        if whole {
            blob(storage, layer_bytes.as_bytes());
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": layer_bytes.len()}],
        }))
        .unwrap();
        let digest = blob(storage, &manifest);
        let media_type = MediaType::new(MediaType::OCI_MANIFEST);
        let meta = storage.meta().blocking();
        meta.put_manifest(&digest, &describe(&media_type, &manifest, 1))
            .unwrap();
        let record = TagRecord {
            digest: digest.clone(),
            media_type,
            size: manifest.len() as u64,
            confirmed_at: 1,
            last_pulled: 0,
        };
        let fresh = RepoRecord {
            id: uuid::Uuid::new_v4().to_string(),
            cache: repo.split('/').next().unwrap().to_string(),
            upstream_name: repo.to_string(),
            version: 0,
            created_at: 1,
            updated_at: 1,
            last_change: Change::default(),
        };
        meta.point_tag(repo, tag, &record, &fresh).unwrap();
        (digest, layer)
    }

    fn source() -> BundleSource {
        BundleSource {
            ferry: "test".into(),
            name: "here".into(),
        }
    }

    pub(crate) fn plan_of(
        storage: &Storage,
        selection: &Selection,
    ) -> Result<BundleManifest, ExportError> {
        plan(
            storage.meta().blocking(),
            &**storage.blobs(),
            selection,
            source(),
        )
    }

    #[test]
    fn an_image_not_stored_whole_is_left_out_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let (whole, _) = image(&storage, "hub/app", "v1", true);
        let (_, missing) = image(&storage, "hub/app", "v2", false);
        let manifest = plan_of(&storage, &Selection::default()).unwrap();
        let refs: Vec<&str> = manifest
            .references
            .iter()
            .map(|r| r.reference.as_str())
            .collect();
        assert_eq!(refs, ["hub/app:v1"]);
        assert_eq!(manifest.references[0].digest, whole);
        assert_eq!(manifest.blobs.len(), 3, "manifest, config, layer");
        assert_eq!(manifest.left_out.len(), 1);
        assert_eq!(manifest.left_out[0].reference, "hub/app:v2");
        assert!(manifest.left_out[0].reason.contains(&missing.to_string()));

        let only_v2 = Selection {
            tags: vec!["v2".into()],
            ..Selection::default()
        };
        let Err(ExportError::Invalid(why)) = plan_of(&storage, &only_v2) else {
            panic!("a selection of nothing whole is refused");
        };
        assert!(
            why.contains("matches no stored image") && why.contains("hub/app:v2"),
            "{why}"
        );
    }

    #[test]
    fn have_moves_blobs_to_assumed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let (manifest_digest, layer) = image(&storage, "hub/app", "v1", true);
        let layer_size = storage.blobs().size_of(&layer).unwrap().unwrap();
        let selection = Selection {
            have: vec![BundleBlob {
                digest: layer.clone(),
                size: layer_size,
            }],
            ..Selection::default()
        };
        let manifest = plan_of(&storage, &selection).unwrap();
        assert_eq!(manifest.assumed.len(), 1);
        assert_eq!(manifest.assumed[0].digest, layer);
        assert!(manifest.blobs.iter().all(|b| b.digest != layer));
        assert_eq!(manifest.blobs[0].digest, manifest_digest, "manifest first");
    }

    #[test]
    fn a_manifest_handed_back_is_checked_against_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        image(&storage, "hub/app", "v1", true);
        let manifest = plan_of(&storage, &Selection::default()).unwrap();
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(check_given(&**storage.blobs(), &text).is_ok());
        let mut bad_ref = manifest.clone();
        bad_ref.references[0].reference = "app:v1".into();
        let text = serde_json::to_string(&bad_ref).unwrap();
        assert!(matches!(
            check_given(&**storage.blobs(), &text),
            Err(ExportError::Invalid(_))
        ));
        let mut bad_size = manifest.clone();
        bad_size.blobs[0].size += 1;
        let text = serde_json::to_string(&bad_size).unwrap();
        assert!(matches!(
            check_given(&**storage.blobs(), &text),
            Err(ExportError::Invalid(_))
        ));
        assert!(check_given(&**storage.blobs(), "{}").is_err());
    }

    #[test]
    fn selections_out_of_bounds_are_refused() {
        let many = Selection {
            tags: vec!["x".into(); MAX_PATTERNS + 1],
            ..Selection::default()
        };
        assert!(check_selection(&many).is_err());
        let bad_platform = Selection {
            platforms: Some(Platforms::Listed(vec!["linux".into()])),
            ..Selection::default()
        };
        assert!(check_selection(&bad_platform).is_err());
        let empty_pattern = Selection {
            caches: vec![String::new()],
            ..Selection::default()
        };
        assert!(check_selection(&empty_pattern).is_err());
        assert!(check_selection(&Selection::default()).is_ok());
    }

    #[test]
    fn fallback_tags_name_a_subject() {
        let d = Digest::sha256_of(b"x");
        let digests = HashSet::from([d.clone()]);
        let tag = format!("sha256-{}", d.hex());
        assert!(fallback_tag_of(&tag, &digests));
        assert!(fallback_tag_of(&format!("{tag}.sig"), &digests));
        assert!(!fallback_tag_of("sha256-abc", &digests));
        assert!(!fallback_tag_of("latest", &digests));
    }
}
