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
