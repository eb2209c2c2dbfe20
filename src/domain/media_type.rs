use serde::{Deserialize, Serialize};

/// A manifest or blob media type. Kept as the upstream's exact string: ferry
/// never converts manifests, so it must hand back exactly what it received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaType(String);

impl MediaType {
    pub const OCI_MANIFEST: &'static str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &'static str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &'static str =
        "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &'static str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_V1_SIGNED: &'static str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_V1: &'static str = "application/vnd.docker.distribution.manifest.v1+json";
    /// The artifact manifest of OCI 1.1's drafts (dropped from the final
    /// spec, but registries still hold and serve some).
    pub const OCI_ARTIFACT: &'static str = "application/vnd.oci.artifact.manifest.v1+json";
    /// ORAS's artifact manifest from before OCI 1.1.
    pub const ORAS_ARTIFACT: &'static str = "application/vnd.cncf.oras.artifact.manifest.v1+json";

    /// Every type a manifest may be served as. Anything else (`text/html`,
    /// say) would let an upstream make a browser run its bytes on ferry's
    /// origin, so it is never stored.
    pub const KNOWN_MANIFESTS: [&'static str; 8] = [
        Self::OCI_MANIFEST,
        Self::OCI_INDEX,
        Self::DOCKER_MANIFEST,
        Self::DOCKER_LIST,
        Self::DOCKER_V1_SIGNED,
        Self::DOCKER_V1,
        Self::OCI_ARTIFACT,
        Self::ORAS_ARTIFACT,
    ];

    /// What ferry asks upstream for when the client did not say.
    pub const ALL_MANIFESTS: &'static str = "application/vnd.oci.image.index.v1+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.docker.distribution.manifest.v2+json";

    pub fn new(s: impl Into<String>) -> Self {
        MediaType(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The known manifest media type `text` names (case-insensitively,
    /// parameters ignored), in its canonical spelling.
    pub fn known_manifest(text: &str) -> Option<MediaType> {
        let essence = text.split(';').next().unwrap_or(text).trim();
        Self::KNOWN_MANIFESTS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(essence))
            .map(|known| MediaType::new(*known))
    }

    /// Whether a manifest of this type lists other manifests (multi-arch).
    pub fn is_index(&self) -> bool {
        self.0 == Self::OCI_INDEX || self.0 == Self::DOCKER_LIST
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
