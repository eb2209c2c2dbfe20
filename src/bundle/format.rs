//! The bundle's names and records. `ferry-bundle.json` comes first in the
//! tar (then its signature, then the OCI layout), so that an import can
//! check the signature and what the bundle assumes before storing a byte.

use serde::{Deserialize, Serialize};

use crate::domain::{Digest, Platforms, RepoName, Tag};

/// The sidecar manifest's `format`, to tell later layouts apart.
pub(crate) const FORMAT: &str = "ferry-bundle/1";
/// The inventory's `format`.
pub(crate) const INVENTORY_FORMAT: &str = "ferry-inventory/1";
/// Tar entry names, in the order they are written.
pub(crate) const MANIFEST_JSON: &str = "ferry-bundle.json";
pub(crate) const SIGNATURE: &str = "ferry-bundle.json.sig";
pub(crate) const OCI_LAYOUT: &str = "oci-layout";
pub(crate) const INDEX_JSON: &str = "index.json";
pub(crate) const BLOBS_DIR: &str = "blobs/sha256/";
/// The `index.json` annotation naming an entry's reference.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A blob by digest and size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct BundleBlob {
    pub digest: Digest,
    pub size: u64,
}

/// Where a bundle was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BundleSource {
    /// The ferry version that wrote it.
    pub ferry: String,
    /// The host name, or the URL of the ferry exported through its API.
    pub name: String,
}

impl BundleSource {
    /// This ferry, by `name` (the URL an API client used).
    pub(crate) fn this_ferry(name: String) -> BundleSource {
        BundleSource {
            ferry: env!("CARGO_PKG_VERSION").to_string(),
            name,
        }
    }

    /// This ferry, by the machine's host name (an export or inventory made
    /// on the data directory).
    pub(crate) fn this_host() -> BundleSource {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        BundleSource::this_ferry(name)
    }
}

/// One tagged image in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BundleReference {
    /// `<base_path>/<repository>:<tag>`.
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A referrer (a signature, an SBOM) of a manifest in the bundle: stored
/// in its repository by digest, with no tag of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BundleReferrer {
    /// The local repository, `<base_path>/<repository>`.
    pub repository: String,
    pub digest: Digest,
    pub subject: Digest,
    pub media_type: String,
    pub size: u64,
}

/// `ferry-bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BundleManifest {
    /// [`FORMAT`].
    pub format: String,
    /// A fresh UUID per bundle: what an import records as the tags' origin.
    pub id: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub source: BundleSource,
    pub references: Vec<BundleReference>,
    #[serde(default)]
    pub referrers: Vec<BundleReferrer>,
    /// Every blob in the bundle (manifests, configs, layers), each once.
    pub blobs: Vec<BundleBlob>,
    /// Blobs a differential bundle leaves out: the receiver must hold them.
    #[serde(default)]
    pub assumed: Vec<BundleBlob>,
    /// What the selection matched but the source could not export whole
    /// (an image inspected, never pulled: its layers are not stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<BundleLeftOut>,
}

/// A reference (or `<repository>@<digest>` of a referrer) a selection
/// matched but the bundle does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BundleLeftOut {
    pub reference: String,
    pub reason: String,
}

/// A reference as a bundle names it: `<base_path>/<repository>:<tag>`,
/// where the base path is the longest prefix a receiving ferry serves, or
/// for a bundle alone, its first path component. Parsed once on import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BundleRef {
    /// The local repository, `<base_path>/<repository>`.
    pub repository: RepoName,
    pub tag: Tag,
}

impl BundleRef {
    pub(crate) fn parse(text: &str) -> Result<BundleRef, super::BundleError> {
        let invalid = |why: &str| super::BundleError::Invalid(format!("reference {text:?} {why}"));
        let (name, tag) = text
            .rsplit_once(':')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| invalid("is not <base_path>/<repository>:<tag>"))?;
        let repository = RepoName::parse(name).map_err(|e| invalid(&e.to_string()))?;
        if !repository.as_str().contains('/') {
            return Err(invalid("has no base path"));
        }
        let tag = Tag::parse(tag).ok_or_else(|| invalid("has an invalid tag"))?;
        Ok(BundleRef { repository, tag })
    }
}

impl std::fmt::Display for BundleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository.as_str(), self.tag.as_str())
    }
}

/// What `ferry inventory` prints and `ferry export --have` reads: the blobs
/// a ferry holds (and, for a person, its tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inventory {
    /// [`INVENTORY_FORMAT`].
    pub format: String,
    pub created: String,
    pub source: BundleSource,
    /// `<base_path>/<repository>:<tag>` of every tag held.
    pub references: Vec<String>,
    pub blobs: Vec<BundleBlob>,
}

/// What to export. Wildcards (`*`, `?`) as in the cache's include lists.
/// Empty lists select everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Selection {
    /// Base paths.
    pub caches: Vec<String>,
    /// Local repository names, `<base_path>/<repository>`.
    pub repositories: Vec<String>,
    pub tags: Vec<String>,
    /// Only tags a pin holds.
    pub pinned: bool,
    /// Only tags pulled (or stored) at or after this time, Unix seconds.
    pub pulled_since: Option<u64>,
    /// Platforms of an index to take; `None` takes every platform stored.
    pub platforms: Option<Platforms>,
    /// Also the referrers (signatures, SBOMs) stored for what is selected.
    pub referrers: bool,
    /// Leave these out (a differential bundle): the receiver holds them.
    pub have: Vec<BundleBlob>,
    /// zstd-compress the tar.
    pub zstd: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_refs_need_a_base_path_and_a_tag() {
        let r = BundleRef::parse("docker-cache/library/busybox:1.36").unwrap();
        assert_eq!(r.repository.as_str(), "docker-cache/library/busybox");
        assert_eq!(r.tag.as_str(), "1.36");
        assert_eq!(r.to_string(), "docker-cache/library/busybox:1.36");
        assert!(BundleRef::parse("busybox:1").is_err());
        assert!(BundleRef::parse("a/../b:1").is_err());
        assert!(BundleRef::parse("a/b").is_err());
        assert!(BundleRef::parse("a/B:1").is_err());
    }
}
