//! What ferry reads out of a manifest's JSON (with oci-spec's types): the
//! blobs and child manifests it references, its subject and artifact type.
//! The bytes themselves are never rewritten.

use oci_spec::image::ImageIndex;
use serde_json::Value;

use crate::domain::{Digest, MediaType};
use crate::store::ManifestRecord;

/// Headers that say nothing about which manifest this is.
const GENERIC_TYPES: [&str; 3] = ["application/json", "text/plain", "application/octet-stream"];

/// The `mediaType` a manifest's JSON declares, and whether it lists
/// `manifests` (an index).
fn declared(bytes: &[u8]) -> (Option<String>, bool) {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(probe) => (probe.media_type, probe.manifests.is_some()),
        Err(_) => (None, false),
    }
}

/// The media type to serve a manifest fetched upstream with, or why it may
/// not be stored. Only a known manifest media type is ever served: the one
/// the document declares (the upstream's header must agree or say nothing
/// specific), else the header's when that is a known one. Anything else (an
/// upstream answering `text/html`) is a bad upstream answer.
pub(crate) fn checked_media_type(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<MediaType, String> {
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty());
    let generic = |h: &str| GENERIC_TYPES.iter().any(|g| g.eq_ignore_ascii_case(h));
    match declared(bytes).0 {
        Some(declared) => {
            let known = MediaType::known_manifest(&declared)
                .ok_or_else(|| format!("manifest declares a media type that is not a manifest's: {declared:?}"))?;
            match header {
                Some(h) if !generic(h) && !h.eq_ignore_ascii_case(known.as_str()) => Err(format!(
                    "manifest declares {known} but upstream sent it as {h:?}"
                )),
                _ => Ok(known),
            }
        }
        None => header.and_then(MediaType::known_manifest).ok_or_else(|| {
            format!(
                "manifest names no media type and upstream sent it as {:?}, not a manifest media type",
                header.unwrap_or("")
            )
        }),
    }
}

/// The media type of manifest bytes found in the store without their record
/// (metadata rebuilt after damage): what they declare if that is a known
/// manifest type, else the OCI type their shape suggests. The header, where
/// given, counts only if it is a known manifest type.
pub(crate) fn effective_media_type(content_type: Option<&str>, bytes: &[u8]) -> MediaType {
    if let Some(known) = content_type.and_then(MediaType::known_manifest) {
        return known;
    }
    match declared(bytes) {
        (Some(m), _) if MediaType::known_manifest(&m).is_some() => MediaType::new(m),
        (_, true) => MediaType::new(MediaType::OCI_INDEX),
        _ => MediaType::new(MediaType::OCI_MANIFEST),
    }
}

/// Reads the references out of a manifest. A document ferry cannot parse
/// (schema 1, say) is still cached and served; it just lists nothing.
pub(crate) fn describe(media_type: &MediaType, bytes: &[u8], now: u64) -> ManifestRecord {
    let mut record = ManifestRecord {
        media_type: media_type.clone(),
        size: bytes.len() as u64,
        blobs: Vec::new(),
        children: Vec::new(),
        subject: None,
        artifact_type: None,
        stored_at: now,
    };
    // Read leniently, descriptor by descriptor: a strict parse (oci-spec)
    // rejects a whole document for one malformed optional field (say
    // `"platform": []`), and a manifest listing no blobs would leave them
    // unprotected from garbage collection and the quota.
    let Ok(document) = serde_json::from_slice::<Value>(bytes) else {
        return record;
    };
    let text = |key: &str| document.get(key).and_then(Value::as_str);
    record.subject = document.get("subject").and_then(digest_in);
    if media_type.is_index() {
        record.children = digests_in(&document, "manifests");
        record.artifact_type = text("artifactType").map(str::to_string);
    } else {
        let config = document.get("config");
        record.blobs = config
            .and_then(digest_in)
            .into_iter()
            .chain(digests_in(&document, "layers"))
            .collect();
        // The spec's rule: artifactType, else the config's media type.
        record.artifact_type = text("artifactType")
            .or_else(|| config?.get("mediaType")?.as_str())
            .map(str::to_string);
    }
    record
}

/// The digest of one descriptor, if it has a valid one.
fn digest_in(descriptor: &Value) -> Option<Digest> {
    descriptor.get("digest")?.as_str()?.parse().ok()
}

/// The valid digests of the descriptors listed under `key`.
fn digests_in(document: &Value, key: &str) -> Vec<Digest> {
    document
        .get(key)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(digest_in).collect())
        .unwrap_or_default()
}

/// The platforms an index lists (`os/architecture[/variant]`), in order;
/// empty for anything else.
pub(crate) fn platforms(bytes: &[u8]) -> Vec<String> {
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

/// The blobs an image manifest names (config, then layers) with their
/// sizes; empty for anything else.
pub(crate) fn blob_descriptors(bytes: &[u8]) -> Vec<(Digest, u64)> {
    let Ok(document) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let sized = |d: &Value| Some((digest_in(d)?, d.get("size")?.as_u64()?));
    let layers = document.get("layers").and_then(Value::as_array);
    document
        .get("config")
        .and_then(sized)
        .into_iter()
        .chain(layers.into_iter().flatten().filter_map(sized))
        .collect()
}

/// An index's manifests as (`os/architecture[/variant]`, digest); one
/// without a platform reads `unknown/unknown`.
pub(crate) fn platform_children(bytes: &[u8]) -> Vec<(String, Digest)> {
    let Ok(document) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let list = document.get("manifests").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|m| {
            let p = m.get("platform");
            let mut name = format!(
                "{}/{}",
                text(p, "os").unwrap_or_else(|| "unknown".into()),
                text(p, "architecture").unwrap_or_else(|| "unknown".into())
            );
            if let Some(variant) = text(p, "variant") {
                name = format!("{name}/{variant}");
            }
            Some((name, digest_in(m)?))
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
        let mt = checked_media_type(Some("application/json"), MANIFEST.as_bytes()).unwrap();
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

    /// Found by the property tests: one malformed optional field made the
    /// strict parse drop every blob, unprotecting them from GC and quota.
    #[test]
    fn a_malformed_optional_field_keeps_the_blobs_listed() {
        let odd = MANIFEST.replace(r#""size":3,"#, r#""size":3,"platform":[],"urls":7,"#);
        let mt = MediaType::new(MediaType::DOCKER_MANIFEST);
        assert_eq!(describe(&mt, odd.as_bytes(), 0).blobs.len(), 2);
        let index = r#"{"schemaVersion":2,"manifests":[
          {"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","platform":[]},
          {"digest":"not-a-digest"}]}"#;
        let rec = describe(&MediaType::new(MediaType::OCI_INDEX), index.as_bytes(), 0);
        assert_eq!(rec.children.len(), 1);
    }

    #[test]
    fn lists_platforms_of_an_index() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","platform":{"os":"linux","architecture":"amd64"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}"#;
        assert_eq!(platforms(index.as_bytes()), ["linux/amd64", "linux/arm/v7"]);
        assert!(platforms(MANIFEST.as_bytes()).is_empty());
    }

    #[test]
    fn only_manifest_media_types_are_served() {
        let docker = MediaType::DOCKER_MANIFEST;
        // The declared type, with a matching, generic or missing header.
        for header in [Some(docker), Some("application/json; charset=utf-8"), None] {
            assert_eq!(
                checked_media_type(header, MANIFEST.as_bytes())
                    .unwrap()
                    .as_str(),
                docker
            );
        }
        // A header that contradicts the document, or names HTML.
        for header in ["text/html", MediaType::OCI_MANIFEST] {
            let err = checked_media_type(Some(header), MANIFEST.as_bytes()).unwrap_err();
            assert!(err.contains(header), "{err}");
        }
        // A document declaring something that is not a manifest type.
        let html = br#"{"schemaVersion":2,"mediaType":"text/html"}"#;
        assert!(checked_media_type(Some("text/html"), html).is_err());
        // No declared type: a known header is served, anything else refused.
        let bare = br#"{"schemaVersion":1,"name":"x"}"#;
        assert_eq!(
            checked_media_type(Some(MediaType::DOCKER_V1_SIGNED), bare)
                .unwrap()
                .as_str(),
            MediaType::DOCKER_V1_SIGNED
        );
        for header in [Some("text/html"), Some("application/json"), None] {
            assert!(checked_media_type(header, bare).is_err(), "{header:?}");
        }
        // Bytes found without a record never get an unknown type.
        assert_eq!(
            effective_media_type(None, html).as_str(),
            MediaType::OCI_MANIFEST
        );
    }
}
