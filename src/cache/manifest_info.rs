//! What ferry reads out of a manifest's JSON (with oci-spec's types): the
//! blobs and child manifests it references, its subject and artifact type.
//! The bytes themselves are never rewritten.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::domain::{Digest, MediaType};
use crate::store::ManifestRecord;

/// The media type to serve a manifest with: the upstream's `Content-Type`
/// unless it is missing or generic, then the document's own `mediaType`.
pub fn effective_media_type(content_type: Option<&str>, bytes: &[u8]) -> MediaType {
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| {
            !c.is_empty()
                && !matches!(
                    *c,
                    "application/json" | "text/plain" | "application/octet-stream"
                )
        });
    if let Some(declared) = declared {
        return MediaType::new(declared);
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => MediaType::new(m),
        Ok(Probe {
            manifests: Some(_), ..
        }) => MediaType::new(MediaType::OCI_INDEX),
        _ => MediaType::new(MediaType::OCI_MANIFEST),
    }
}

fn digest_of(d: &Descriptor) -> Option<Digest> {
    d.digest().to_string().parse().ok()
}

/// Reads the references out of a manifest. A document ferry cannot parse
/// (schema 1, say) is still cached and served; it just lists nothing.
pub fn describe(media_type: &MediaType, bytes: &[u8], now: u64) -> ManifestRecord {
    let mut record = ManifestRecord {
        media_type: media_type.clone(),
        size: bytes.len() as u64,
        blobs: Vec::new(),
        children: Vec::new(),
        subject: None,
        artifact_type: None,
        stored_at: now,
    };
    if media_type.is_index() {
        if let Ok(index) = serde_json::from_slice::<ImageIndex>(bytes) {
            record.children = index.manifests().iter().filter_map(digest_of).collect();
            record.subject = index.subject().as_ref().and_then(digest_of);
            record.artifact_type = index.artifact_type().as_ref().map(|a| a.to_string());
        }
    } else if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(bytes) {
        record.blobs = std::iter::once(manifest.config())
            .chain(manifest.layers())
            .filter_map(digest_of)
            .collect();
        record.subject = manifest.subject().as_ref().and_then(digest_of);
        // The spec's rule: artifactType, else the config's media type.
        record.artifact_type = Some(
            manifest
                .artifact_type()
                .as_ref()
                .unwrap_or(manifest.config().media_type())
                .to_string(),
        );
    }
    record
}

/// The platforms an index lists (`os/architecture[/variant]`), in order;
/// empty for anything else.
pub fn platforms(bytes: &[u8]) -> Vec<String> {
    let Ok(index) = serde_json::from_slice::<ImageIndex>(bytes) else {
        return Vec::new();
    };
    index
        .manifests()
        .iter()
        .filter_map(|m| m.platform().as_ref())
        .map(|p| {
            let mut name = format!("{}/{}", p.os(), p.architecture());
            if let Some(variant) = p.variant() {
                name.push('/');
                name.push_str(variant);
            }
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
      "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
      "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}"#;

    #[test]
    fn reads_blobs_and_media_type() {
        let mt = effective_media_type(Some("application/json"), MANIFEST.as_bytes());
        assert_eq!(mt.as_str(), MediaType::DOCKER_MANIFEST);
        let rec = describe(&mt, MANIFEST.as_bytes(), 0);
        assert_eq!(rec.blobs.len(), 2);
        assert_eq!(
            rec.artifact_type.as_deref(),
            Some("application/vnd.docker.container.image.v1+json")
        );
    }

    #[test]
    fn unparseable_manifest_lists_nothing() {
        let mt = MediaType::new(MediaType::DOCKER_V1_SIGNED);
        let rec = describe(&mt, b"{}", 0);
        assert!(rec.blobs.is_empty() && rec.children.is_empty());
    }

    #[test]
    fn lists_platforms_of_an_index() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","platform":{"os":"linux","architecture":"amd64"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}"#;
        assert_eq!(platforms(index.as_bytes()), ["linux/amd64", "linux/arm/v7"]);
        assert!(platforms(MANIFEST.as_bytes()).is_empty());
    }
}
