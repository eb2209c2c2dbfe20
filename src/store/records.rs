//! The metadata records. Serialized with postcard behind a format byte, so a
//! later layout can be told apart from this one instead of misread.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{Digest, MediaType, Secret};

const FORMAT_V1: u8 = 1;

/// A tag of a local repository: where it points and when upstream last
/// confirmed it (the time-to-live counts from there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: Digest,
    pub media_type: MediaType,
    pub size: u64,
    pub confirmed_at: u64,
    /// When a client last pulled it, in milliseconds since the epoch
    /// (flushed from memory in batches); the least recently pulled images
    /// are evicted first.
    pub last_pulled: u64,
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
    /// Stable identifier, for API hrefs.
    pub id: String,
    /// Base path of the cache it belongs to.
    pub cache: String,
    /// The repository's name upstream.
    pub upstream_name: String,
    pub version: u64,
    pub created_at: u64,
    pub updated_at: u64,
    /// What the latest version added and removed.
    pub last_change: Change,
}

/// Counts of content units by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub tags: u64,
    pub manifests: u64,
    pub blobs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub added: Counts,
    pub removed: Counts,
}

/// An upstream registry and how to reach it (Pulp's pull-through remote).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRecord {
    pub id: String,
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_cert: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<Secret>,
    pub tls_validation: bool,
    pub proxy_url: Option<String>,
    pub proxy_username: Option<String>,
    pub proxy_password: Option<Secret>,
    /// Extra headers sent upstream, as Pulp's `[{name: value}]`.
    pub headers: Vec<BTreeMap<String, String>>,
    pub max_retries: Option<i64>,
    pub total_timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub sock_connect_timeout: Option<f64>,
    pub sock_read_timeout: Option<f64>,
    pub download_concurrency: Option<i64>,
    pub rate_limit: Option<i64>,
    pub includes: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    pub pulp_labels: BTreeMap<String, String>,
    /// Microseconds since the epoch.
    pub created: u64,
    pub updated: u64,
    /// Defined in the config file (refreshed from it at every start).
    pub from_config: bool,
}

/// A base path served through a remote (Pulp's pull-through distribution).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionRecord {
    pub id: String,
    pub name: String,
    pub base_path: String,
    pub remote_id: String,
    pub private: bool,
    pub description: Option<String>,
    pub hidden: bool,
    pub pulp_labels: BTreeMap<String, String>,
    pub created: u64,
    pub updated: u64,
    pub from_config: bool,
}

/// A finished management task (ferry does the work synchronously; scripts
/// and pulp-cli still poll a task).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub name: String,
    pub created: u64,
    pub created_resources: Vec<String>,
}

pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    postcard::to_io(record, &mut out).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
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
            last_pulled: 42,
        };
        let bytes = encode(&rec).unwrap();
        assert_eq!(decode::<TagRecord>(b"k", &bytes).unwrap(), rec);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(decode::<TagRecord>(b"k", &future).is_err());
    }
}
