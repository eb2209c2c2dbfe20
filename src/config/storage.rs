//! `[storage]`: where verified blobs (and manifests, which are blobs too)
//! live. The local directory under `data_dir` by default, or an
//! S3-compatible object store. Metadata stays in `data_dir` either way.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, Secret};

/// Read when the config file names no access key.
pub(crate) const ACCESS_KEY_ENV: &str = "FERRY_S3_ACCESS_KEY_ID";
/// Read when the config file names no secret key.
pub(crate) const SECRET_KEY_ENV: &str = "FERRY_S3_SECRET_ACCESS_KEY";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageKind {
    /// `data_dir/blobs/`.
    #[default]
    Local,
    /// Any S3-compatible service.
    S3,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageConfig {
    #[serde(default)]
    pub kind: StorageKind,
    /// `http(s)://HOST[:PORT]` of the S3 API (unset: AWS's own for `region`).
    #[serde(default)]
    pub endpoint: Option<Url>,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key`: what most
    /// self-hosted services (SeaweedFS, Garage, MinIO) expect.
    #[serde(default = "default_path_style")]
    pub path_style: bool,
    /// Prepended to every key (e.g. `"ferry/"`), so that one bucket can
    /// hold several unrelated stores.
    #[serde(default)]
    pub prefix: String,
    #[serde(default, serialize_with = "super::redact::secret")]
    pub access_key_id: Option<Secret>,
    #[serde(default, serialize_with = "super::redact::secret")]
    pub secret_access_key: Option<Secret>,
    /// Most bytes of recently read blobs to keep on this node's disk as
    /// well (`DATA_DIR/local-cache/`), e.g. "10GiB": served at disk speed,
    /// and while the object store is unreachable. Unset: none.
    #[serde(default, deserialize_with = "super::size::deserialize")]
    pub local_cache: Option<u64>,
}

/// The same defaults whether `[storage]` is absent or partly given.
impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Local,
            endpoint: None,
            bucket: None,
            region: default_region(),
            path_style: default_path_style(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            local_cache: None,
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_path_style() -> bool {
    true
}

/// What the S3 backend is opened with: the settings checked, the
/// credentials found (config file first, then the environment).
#[derive(Debug, Clone)]
pub(crate) struct S3Settings {
    pub endpoint: Option<Url>,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    pub prefix: String,
    pub credentials: Option<(Secret, Secret)>,
}

impl S3Settings {
    /// The store as the data directory records it (`store::check_blob_store`):
    /// where the objects are, never the credentials.
    pub(crate) fn identity(&self) -> String {
        let at = self
            .endpoint
            .as_ref()
            .map_or_else(|| format!("aws:{}", self.region), Url::to_string);
        format!("s3 {at} {} {}", self.bucket, self.prefix)
    }
}

impl StorageConfig {
    /// The object store's settings (`None` for the local directory), or
    /// why they are incomplete.
    pub(crate) fn s3(&self) -> Result<Option<S3Settings>, ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(format!("[storage] {m}")));
        if self.local_cache == Some(0) {
            return invalid("local_cache must be above 0 (or unset)");
        }
        if self.kind == StorageKind::Local {
            if self.local_cache.is_some() {
                return invalid(
                    "local_cache needs kind = \"s3\": the local directory is read at disk speed already",
                );
            }
            return Ok(None);
        }
        let Some(bucket) = self.bucket.clone().filter(|b| !b.is_empty()) else {
            return invalid("kind = \"s3\" needs a bucket");
        };
        if let Some(url) = &self.endpoint {
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || url.path() != "/"
                || url.query().is_some()
                || !url.username().is_empty()
            {
                return invalid(&format!(
                    "endpoint {url}: must be http(s)://HOST[:PORT] with no path"
                ));
            }
        }
        if self.prefix.starts_with('/') || self.prefix.split('/').any(|p| p == "..") {
            return invalid("prefix must be relative (no leading / and no ..)");
        }
        let key = self
            .access_key_id
            .clone()
            .or_else(|| env_secret(ACCESS_KEY_ENV));
        let secret = self
            .secret_access_key
            .clone()
            .or_else(|| env_secret(SECRET_KEY_ENV));
        let credentials = match (key, secret) {
            (Some(k), Some(s)) => Some((k, s)),
            (None, None) => None,
            _ => {
                return invalid(&format!(
                    "access_key_id and secret_access_key go together (or {ACCESS_KEY_ENV} and {SECRET_KEY_ENV})"
                ))
            }
        };
        Ok(Some(S3Settings {
            endpoint: self.endpoint.clone(),
            bucket,
            region: self.region.clone(),
            path_style: self.path_style,
            prefix: self.prefix.clone(),
            credentials,
        }))
    }
}

fn env_secret(name: &str) -> Option<Secret> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> StorageConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn local_is_the_default_and_s3_needs_a_bucket() {
        assert_eq!(parse("").kind, StorageKind::Local);
        let absent = StorageConfig::default();
        assert_eq!(
            (absent.region.as_str(), absent.path_style),
            ("us-east-1", true)
        );
        assert!(parse("").s3().unwrap().is_none());
        let err = parse("kind = \"s3\"").s3().unwrap_err().to_string();
        assert!(err.contains("needs a bucket"), "{err}");
        let err = parse("kind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://h:1/x\"")
            .s3()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no path"), "{err}");
    }

    #[test]
    fn a_local_cache_is_a_size_in_front_of_an_object_store_only() {
        let s3 = "kind = \"s3\"\nbucket = \"b\"\n";
        let config = parse(&format!("{s3}local_cache = \"10GiB\""));
        assert_eq!(config.local_cache, Some(10 << 30));
        assert!(config.s3().unwrap().is_some());
        assert_eq!(parse("").local_cache, None);
        let err = parse("local_cache = \"1GiB\"")
            .s3()
            .unwrap_err()
            .to_string();
        assert!(err.contains("local_cache needs kind = \"s3\""), "{err}");
        let err = parse(&format!("{s3}local_cache = 0"))
            .s3()
            .unwrap_err()
            .to_string();
        assert!(err.contains("above 0"), "{err}");
        assert!(toml::from_str::<StorageConfig>(&format!("{s3}local_cache = \"lots\"")).is_err());
    }

    #[test]
    fn keys_are_read_together_and_never_printed() {
        let config = parse(
            "kind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:8333\"\n\
             access_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s3cr3t-value\"",
        );
        let s3 = config.s3().unwrap().unwrap();
        assert!(s3.path_style);
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.credentials.as_ref().unwrap().1.expose(), "s3cr3t-value");
        let shown = format!("{config:?} {s3:?} {}", toml::to_string(&config).unwrap());
        assert!(!shown.contains("s3cr3t-value") && !shown.contains("AKIAEXAMPLE"));
        let half = parse("kind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"k\"");
        if std::env::var_os(SECRET_KEY_ENV).is_none() {
            assert!(half.s3().is_err());
        }
    }
}
