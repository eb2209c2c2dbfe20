//! Provenance of imported tags (issue 15): where a tag's content came from
//! when an import pointed it. A mark holds only while the tag still points
//! at the digest it names: a tag that moves upstream is no longer imported,
//! without anyone having to remove the mark.

use serde::{Deserialize, Serialize};

use crate::domain::Digest;

/// One imported tag, keyed by `<repository>\0<tag>` like the tag itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMark {
    /// The digest the import pointed the tag at.
    pub digest: Digest,
    /// The bundle's id (`ferry-bundle.json`), or for a plain OCI layout a
    /// fresh id of that import.
    pub bundle: String,
    /// Where the bundle was made (its source ferry), or `oci-layout`.
    pub source: String,
    /// Unix seconds.
    pub imported_at: u64,
}
