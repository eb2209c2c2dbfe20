//! The metadata records. Serialized with postcard behind a format byte, so a
//! later layout can be told apart from this one instead of misread.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{Digest, MediaType};

const FORMAT_V1: u8 = 1;

/// A tag of a local repository: where it points and when upstream last
/// confirmed it (the time-to-live counts from there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: Digest,
    pub media_type: MediaType,
    pub size: u64,
    pub confirmed_at: u64,
}

/// What ferry knows of a stored manifest beyond its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub media_type: MediaType,
    pub size: u64,
    /// Config and layers of an image manifest.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index.
    pub children: Vec<Digest>,
    /// The manifest this one refers to (OCI referrers).
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub stored_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    pub stored_at: u64,
}

/// A local repository: what pulls through one cache of one upstream
/// repository made. It has a single current version, whose number grows
/// whenever its content (tags or manifests) changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    /// Base path of the cache it belongs to.
    pub cache: String,
    /// The repository's name upstream.
    pub upstream_name: String,
    pub version: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

pub(super) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    postcard::to_io(record, &mut out).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string())),
        Some((v, _)) => Err(corrupt(format!("unknown record format {v}"))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_format() {
        let rec = TagRecord {
            digest: Digest::sha256_of(b"x"),
            media_type: MediaType::new(MediaType::OCI_MANIFEST),
            size: 7,
            confirmed_at: 42,
        };
        let bytes = encode(&rec).unwrap();
        assert_eq!(decode::<TagRecord>(b"k", &bytes).unwrap(), rec);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(decode::<TagRecord>(b"k", &future).is_err());
    }
}
