//! The metadata records. Serialized with postcard behind a format byte, so a
//! later layout can be told apart from this one instead of misread.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::config::{CachePolicy, RemoteSpec};
use crate::domain::{Digest, MediaType, Secret};

const FORMAT_V1: u8 = 1;
/// Remote records since the spec became a type of its own.
const FORMAT_V2: u8 = 2;
/// Remote records with a cache policy: the format-2 body, then the policy.
const FORMAT_V3: u8 = 3;
/// Format 3 with the policy's `complete_images` (the policy's layout grew).
const FORMAT_V4: u8 = 4;

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

/// An upstream registry and how to reach it (Pulp's pull-through remote):
/// its spec, and what the API keeps beside it. Stored as format 4 (see
/// `encode_remote`); format 1 records, written before the spec had a type
/// of its own, still decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRecord {
    pub id: String,
    pub name: String,
    pub spec: RemoteSpec,
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
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => decode_body(key, rest),
        Some((v, _)) => Err(corrupt(key, format!("unknown record format {v}"))),
        None => Err(corrupt(key, "empty record".into())),
    }
}

fn decode_body<T: DeserializeOwned>(key: &[u8], body: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(body).map_err(|e| corrupt(key, e.to_string()))
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

/// A remote record, as format 4: the format-2 body (which skips the
/// spec's policy), then the policy.
pub(super) fn encode_remote(record: &RemoteRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = encode(record)?;
    out[0] = FORMAT_V4;
    postcard::to_io(&record.spec.policy, &mut out)
        .map_err(|e| corrupt(record.id.as_bytes(), e.to_string()))?;
    Ok(out)
}

/// A remote record of any format (a policy absent before format 3 is the
/// default one: what ferry did then; format 3 lacks `complete_images`).
pub(super) fn decode_remote(key: &[u8], bytes: &[u8]) -> Result<RemoteRecord, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V4, rest)) => {
            let (mut record, tail) = postcard::take_from_bytes::<RemoteRecord>(rest)
                .map_err(|e| corrupt(key, e.to_string()))?;
            record.spec.policy = decode_body::<CachePolicy>(key, tail)?;
            Ok(record)
        }
        Some((&FORMAT_V3, rest)) => {
            let (mut record, tail) = postcard::take_from_bytes::<RemoteRecord>(rest)
                .map_err(|e| corrupt(key, e.to_string()))?;
            record.spec.policy = decode_body::<CachePolicyV3>(key, tail)?.into();
            Ok(record)
        }
        Some((&FORMAT_V2, rest)) => decode_body(key, rest),
        _ => decode::<RemoteRecordV1>(key, bytes).map(RemoteRecord::from),
    }
}

/// The cache policy of format 3, field for field (postcard is positional:
/// this layout must never change). The tests write it to produce old bytes.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct CachePolicyV3 {
    tag_policies: Vec<crate::config::TagPolicy>,
    stale_if: crate::config::StaleIf,
    max_size: Option<u64>,
    max_upstream_connections: Option<u32>,
    max_upstream_bandwidth: Option<u64>,
}

impl From<CachePolicyV3> for CachePolicy {
    fn from(p: CachePolicyV3) -> CachePolicy {
        CachePolicy {
            tag_policies: p.tag_policies,
            stale_if: p.stale_if,
            max_size: p.max_size,
            max_upstream_connections: p.max_upstream_connections,
            max_upstream_bandwidth: p.max_upstream_bandwidth,
            complete_images: None,
        }
    }
}

/// The remote record of format 1, field for field (postcard is positional:
/// this layout must never change). The tests write it to produce old bytes.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct RemoteRecordV1 {
    id: String,
    name: String,
    url: String,
    username: Option<String>,
    password: Option<Secret>,
    ca_cert: Option<String>,
    client_cert: Option<String>,
    client_key: Option<Secret>,
    tls_validation: bool,
    proxy_url: Option<String>,
    proxy_username: Option<String>,
    proxy_password: Option<Secret>,
    /// Extra headers sent upstream, as Pulp's `[{name: value}]`.
    headers: Vec<BTreeMap<String, String>>,
    max_retries: Option<i64>,
    total_timeout: Option<f64>,
    connect_timeout: Option<f64>,
    sock_connect_timeout: Option<f64>,
    sock_read_timeout: Option<f64>,
    download_concurrency: Option<i64>,
    rate_limit: Option<i64>,
    includes: Option<Vec<String>>,
    excludes: Option<Vec<String>>,
    pulp_labels: BTreeMap<String, String>,
    /// Microseconds since the epoch.
    created: u64,
    updated: u64,
    /// Defined in the config file (refreshed from it at every start).
    from_config: bool,
}

impl From<RemoteRecordV1> for RemoteRecord {
    fn from(r: RemoteRecordV1) -> RemoteRecord {
        RemoteRecord {
            id: r.id,
            name: r.name,
            spec: RemoteSpec {
                url: r.url,
                username: r.username,
                password: r.password,
                ca_cert: r.ca_cert,
                client_cert: r.client_cert,
                client_key: r.client_key,
                tls_validation: r.tls_validation,
                proxy_url: r.proxy_url,
                proxy_username: r.proxy_username,
                proxy_password: r.proxy_password,
                headers: r.headers,
                max_retries: r.max_retries,
                total_timeout: r.total_timeout,
                connect_timeout: r.connect_timeout,
                sock_connect_timeout: r.sock_connect_timeout,
                sock_read_timeout: r.sock_read_timeout,
                download_concurrency: r.download_concurrency,
                rate_limit: r.rate_limit,
                includes: r.includes,
                excludes: r.excludes,
                revalidate_timeout_ms: None,
                policy: CachePolicy::default(),
            },
            pulp_labels: r.pulp_labels,
            created: r.created,
            updated: r.updated,
            from_config: r.from_config,
        }
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

    #[test]
    fn a_remote_stored_in_format_one_keeps_every_field() {
        let old = RemoteRecordV1 {
            id: "r1".into(),
            name: "hub".into(),
            url: "https://registry.example".into(),
            username: Some("me".into()),
            password: Some(Secret("pw".into())),
            ca_cert: Some("CA".into()),
            client_cert: Some("CERT".into()),
            client_key: Some(Secret("KEY".into())),
            tls_validation: false,
            proxy_url: Some("http://proxy:3128".into()),
            proxy_username: Some("pu".into()),
            proxy_password: Some(Secret("pp".into())),
            headers: vec![BTreeMap::from([("X-A".into(), "1".into())])],
            max_retries: Some(3),
            total_timeout: Some(60.5),
            connect_timeout: Some(2.5),
            sock_connect_timeout: Some(4.0),
            sock_read_timeout: Some(9.0),
            download_concurrency: Some(4),
            rate_limit: Some(10),
            includes: Some(vec!["library/*".into()]),
            excludes: Some(vec!["library/old".into()]),
            pulp_labels: BTreeMap::from([("team".into(), "edge".into())]),
            created: 11,
            updated: 12,
            from_config: true,
        };
        let bytes = encode(&old).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        let record = decode_remote(b"r1", &bytes).unwrap();
        let spec = RemoteSpec {
            url: old.url,
            username: old.username,
            password: old.password,
            ca_cert: old.ca_cert,
            client_cert: old.client_cert,
            client_key: old.client_key,
            tls_validation: old.tls_validation,
            proxy_url: old.proxy_url,
            proxy_username: old.proxy_username,
            proxy_password: old.proxy_password,
            headers: old.headers,
            max_retries: old.max_retries,
            total_timeout: old.total_timeout,
            connect_timeout: old.connect_timeout,
            sock_connect_timeout: old.sock_connect_timeout,
            sock_read_timeout: old.sock_read_timeout,
            download_concurrency: old.download_concurrency,
            rate_limit: old.rate_limit,
            includes: old.includes,
            excludes: old.excludes,
            revalidate_timeout_ms: None,
            policy: CachePolicy::default(),
        };
        let expected = RemoteRecord {
            id: old.id,
            name: old.name,
            spec,
            pulp_labels: old.pulp_labels,
            created: old.created,
            updated: old.updated,
            from_config: old.from_config,
        };
        assert_eq!(record, expected);

        // Format 2 (the same body without the policy tail) reads with the
        // default policy.
        let mut v2 = encode(&expected).unwrap();
        v2[0] = FORMAT_V2;
        assert_eq!(decode_remote(b"r1", &v2).unwrap(), expected);

        // Written again, it is format 3, and reads back whole (with the
        // fields the older formats could not hold).
        let mut newer = expected.clone();
        newer.spec.revalidate_timeout_ms = Some(250);
        newer.spec.policy.max_size = Some(1 << 30);
        newer.spec.policy.stale_if.not_found = true;
        newer
            .spec
            .policy
            .tag_policies
            .push(crate::config::TagPolicy {
                pattern: "v*".into(),
                ttl: crate::config::TagTtl::Never,
            });
        // Format 3: the body, then the policy as it was laid out then.
        let mut v3 = encode(&newer).unwrap();
        v3[0] = FORMAT_V3;
        let p = &newer.spec.policy;
        let old_policy = CachePolicyV3 {
            tag_policies: p.tag_policies.clone(),
            stale_if: p.stale_if,
            max_size: p.max_size,
            max_upstream_connections: p.max_upstream_connections,
            max_upstream_bandwidth: p.max_upstream_bandwidth,
        };
        postcard::to_io(&old_policy, &mut v3).unwrap();
        assert_eq!(decode_remote(b"r1", &v3).unwrap(), newer);

        newer.spec.policy.complete_images = Some(crate::domain::Platforms::Listed(vec![
            "linux/amd64".into(),
            "linux/arm64".into(),
        ]));
        let bytes = encode_remote(&newer).unwrap();
        assert_eq!(bytes[0], FORMAT_V4);
        assert_eq!(decode_remote(b"r1", &bytes).unwrap(), newer);
        newer.spec.policy.complete_images = Some(crate::domain::Platforms::All);
        let all = encode_remote(&newer).unwrap();
        assert_eq!(decode_remote(b"r1", &all).unwrap(), newer);
        let mut future = bytes;
        future[0] = 9;
        assert!(decode_remote(b"r1", &future).is_err());
    }
}
