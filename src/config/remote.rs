//! A remote: an upstream registry and how to reach it. [`RemoteSpec`] is
//! the one type for every place a remote is written down: a `[[cache]]`
//! entry of the config file, the record in the metadata store, and a
//! remote of the management API. This module also holds the config file's
//! shape of a cache ([`CacheEntry`]) and its conversion to and from the
//! spec; the API's JSON fields are Pulp's names for the spec's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::policy::{CachePolicy, StaleIf, TagPolicy};
use super::redact;
use super::CacheConfig;
use crate::domain::Secret;

const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
const DEFAULT_READ_TIMEOUT_SECS: u64 = 30;
const DEFAULT_REVALIDATE_TIMEOUT_MS: u64 = 1500;

/// An upstream registry and how to reach it, holding the values as they
/// were given (in Pulp's terms: timeouts in fractional seconds, headers as
/// a list of `{name: value}`), so that the API answers what it was told.
/// What ferry runs with is derived from it by [`CacheConfig`].
///
/// Stored with postcard (`store::records`): a new field goes at the end,
/// with a new record format that still decodes the old one (or, like
/// `policy`, as a tail the record codec appends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSpec {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Extra CA certificates as inline PEM.
    pub ca_cert: Option<String>,
    /// Client certificate and key (PEM) for upstreams that want mutual TLS.
    pub client_cert: Option<String>,
    pub client_key: Option<Secret>,
    pub tls_validation: bool,
    /// HTTP(S) proxy for this upstream (else `HTTPS_PROXY`/`NO_PROXY` apply).
    pub proxy_url: Option<String>,
    pub proxy_username: Option<String>,
    pub proxy_password: Option<Secret>,
    /// Extra headers sent upstream, as Pulp's `[{name: value}]`.
    pub headers: Vec<BTreeMap<String, String>>,
    /// Accepted and shown, as Pulp does; ferry does not retry.
    pub max_retries: Option<i64>,
    /// Accepted and shown; ferry bounds a request by connect + read.
    pub total_timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    /// Used when `connect_timeout` is unset.
    pub sock_connect_timeout: Option<f64>,
    pub sock_read_timeout: Option<f64>,
    /// At most this many blob downloads from the upstream at once.
    pub download_concurrency: Option<i64>,
    /// At most this many upstream requests per second (0: no limit).
    pub rate_limit: Option<i64>,
    /// Shell wildcards (`*`, `?`) on upstream repository names: only names
    /// matching `includes` (all when unset) and no `excludes` are served.
    pub includes: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    /// How long a pull of a tag past its TTL waits for the upstream's
    /// answer before the cached tag is served (unset: 1.5 s).
    pub revalidate_timeout_ms: Option<u64>,
    /// Tag TTLs, stale serving, size and upstream budget. Not part of the
    /// record's format-2 layout: `store::records` appends it after the
    /// rest (format 3), so the older layout is still read unchanged.
    #[serde(skip)]
    pub policy: CachePolicy,
}

impl RemoteSpec {
    /// A remote of `url` with nothing else set.
    pub fn new(url: String) -> RemoteSpec {
        RemoteSpec {
            url,
            username: None,
            password: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            tls_validation: true,
            proxy_url: None,
            proxy_username: None,
            proxy_password: None,
            headers: Vec::new(),
            max_retries: None,
            total_timeout: None,
            connect_timeout: None,
            sock_connect_timeout: None,
            sock_read_timeout: None,
            download_concurrency: None,
            rate_limit: None,
            includes: None,
            excludes: None,
            revalidate_timeout_ms: None,
            policy: CachePolicy::default(),
        }
    }
}

/// Seconds as a whole number ferry can wait (at least one).
fn whole_secs(secs: f64) -> u64 {
    secs.ceil().max(1.0) as u64
}

impl CacheConfig {
    /// The cache a distribution at `base_path` serves through `remote`.
    pub(crate) fn from_remote(
        base_path: &str,
        private: bool,
        remote: &RemoteSpec,
    ) -> Result<CacheConfig, String> {
        let upstream = Url::parse(&remote.url).map_err(|e| format!("Enter a valid URL ({e})."))?;
        let mut cache = CacheConfig::new(base_path, upstream);
        cache.proxy_url = remote.proxy_url.as_deref().and_then(|u| Url::parse(u).ok());
        cache.remote = remote.clone();
        cache.private = private;
        Ok(cache)
    }

    /// A cache with every option at its default, as a config-file entry
    /// naming only these two would be.
    pub(crate) fn new(base_path: &str, upstream: Url) -> CacheConfig {
        let mut remote = RemoteSpec::new(upstream.to_string());
        remote.connect_timeout = Some(DEFAULT_CONNECT_TIMEOUT_SECS as f64);
        remote.sock_read_timeout = Some(DEFAULT_READ_TIMEOUT_SECS as f64);
        remote.revalidate_timeout_ms = Some(DEFAULT_REVALIDATE_TIMEOUT_MS);
        CacheConfig {
            base_path: base_path.to_string(),
            upstream,
            proxy_url: None,
            remote,
            tag_ttl_secs: None,
            ca_file: None,
            library_prefix: None,
            private: false,
        }
    }

    pub(crate) fn connect_timeout_secs(&self) -> u64 {
        let remote = &self.remote;
        remote
            .connect_timeout
            .or(remote.sock_connect_timeout)
            .map_or(DEFAULT_CONNECT_TIMEOUT_SECS, whole_secs)
    }

    pub(crate) fn read_timeout_secs(&self) -> u64 {
        self.remote
            .sock_read_timeout
            .map_or(DEFAULT_READ_TIMEOUT_SECS, whole_secs)
    }

    pub(crate) fn revalidate_timeout(&self) -> Duration {
        Duration::from_millis(
            self.remote
                .revalidate_timeout_ms
                .unwrap_or(DEFAULT_REVALIDATE_TIMEOUT_MS),
        )
    }

    /// The extra headers, by name (a later one wins).
    pub(crate) fn headers(&self) -> BTreeMap<String, String> {
        self.remote
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn download_concurrency(&self) -> Option<usize> {
        self.remote.download_concurrency.map(|n| n.max(1) as usize)
    }

    /// Tag TTLs, stale serving, size and upstream budget.
    pub(crate) fn policy(&self) -> &CachePolicy {
        &self.remote.policy
    }

    /// Requests per second, when limited.
    pub(crate) fn rate_limit(&self) -> Option<u32> {
        self.remote
            .rate_limit
            .filter(|r| *r > 0)
            .map(|r| r.min(i64::from(u32::MAX)) as u32)
    }
}

/// A `[[cache]]` entry as the config file writes it. Serialize prints it
/// with every secret redacted (see `redact`): it is what `ferry config
/// check` prints, never what ferry stores.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheEntry {
    pub base_path: String,
    #[serde(serialize_with = "redact::url")]
    pub upstream: Url,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, serialize_with = "redact::secret")]
    pub password: Option<Secret>,
    #[serde(default)]
    pub tag_ttl_secs: Option<u64>,
    /// Extra CA certificates (PEM) trusted for this upstream.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub tls_validation: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// How long a pull of a tag past its TTL waits for the upstream's
    /// answer before the cached tag is served (the check finishes in the
    /// background and updates the tag when the upstream answers).
    #[serde(default = "default_revalidate_timeout")]
    pub revalidate_timeout_ms: u64,
    /// Map single-component names to `library/<name>`, Docker Hub's
    /// convention (on by default; turn off for a private registry whose
    /// repositories have single-component names).
    #[serde(default)]
    pub library_prefix: Option<bool>,
    /// Extra CA certificates as inline PEM (the API's `ca_cert`).
    #[serde(default)]
    pub ca_cert: Option<String>,
    /// Client certificate and key (PEM) for upstreams that want mutual TLS.
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default, serialize_with = "redact::secret")]
    pub client_key: Option<Secret>,
    /// HTTP(S) proxy for this upstream (else `HTTPS_PROXY`/`NO_PROXY` apply).
    #[serde(default, serialize_with = "redact::optional_url")]
    pub proxy_url: Option<Url>,
    #[serde(default)]
    pub proxy_username: Option<String>,
    #[serde(default, serialize_with = "redact::secret")]
    pub proxy_password: Option<Secret>,
    /// Extra headers sent with every upstream request.
    #[serde(
        default,
        serialize_with = "redact::headers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, String>,
    /// At most this many blob downloads from the upstream at once.
    #[serde(default)]
    pub download_concurrency: Option<usize>,
    /// At most this many upstream requests per second.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Shell wildcards (`*`, `?`) on upstream repository names: only names
    /// matching `includes` (all when unset) and no `excludes` are served.
    #[serde(default)]
    pub includes: Option<Vec<String>>,
    #[serde(default)]
    pub excludes: Option<Vec<String>>,
    /// Pulls need the admin's credentials.
    #[serde(default)]
    pub private: bool,
    /// Tag patterns with their own TTL (see `config::policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_policies: Vec<TagPolicy>,
    /// When cached content is served although the upstream refused.
    #[serde(default)]
    pub stale_if: StaleIf,
    /// Most bytes this cache keeps, e.g. "20GiB".
    #[serde(default, deserialize_with = "super::size::deserialize")]
    pub max_size: Option<u64>,
    /// Most upstream requests at once.
    #[serde(default)]
    pub max_upstream_connections: Option<u32>,
    /// Most bytes per second from the upstream, e.g. "4MiB".
    #[serde(default, deserialize_with = "super::size::deserialize")]
    pub max_upstream_bandwidth: Option<u64>,
    /// Platforms of an index fetched in the background when one is pulled:
    /// "all" or a list (see `config::policy`).
    #[serde(
        default,
        with = "super::policy::complete_images",
        skip_serializing_if = "Option::is_none"
    )]
    pub complete_images: Option<crate::domain::Platforms>,
}

fn default_connect_timeout() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}
fn default_read_timeout() -> u64 {
    DEFAULT_READ_TIMEOUT_SECS
}
fn default_revalidate_timeout() -> u64 {
    DEFAULT_REVALIDATE_TIMEOUT_MS
}
fn yes() -> bool {
    true
}

impl From<CacheEntry> for CacheConfig {
    fn from(e: CacheEntry) -> CacheConfig {
        let remote = RemoteSpec {
            url: e.upstream.to_string(),
            username: e.username,
            password: e.password,
            ca_cert: e.ca_cert,
            client_cert: e.client_cert,
            client_key: e.client_key,
            tls_validation: e.tls_validation,
            proxy_url: e.proxy_url.as_ref().map(Url::to_string),
            proxy_username: e.proxy_username,
            proxy_password: e.proxy_password,
            headers: e
                .headers
                .into_iter()
                .map(|(k, v)| BTreeMap::from([(k, v)]))
                .collect(),
            max_retries: None,
            total_timeout: None,
            connect_timeout: Some(e.connect_timeout_secs as f64),
            sock_connect_timeout: None,
            sock_read_timeout: Some(e.read_timeout_secs as f64),
            download_concurrency: e.download_concurrency.map(|n| n as i64),
            rate_limit: e.rate_limit.map(i64::from),
            includes: e.includes,
            excludes: e.excludes,
            revalidate_timeout_ms: Some(e.revalidate_timeout_ms),
            policy: CachePolicy {
                tag_policies: e.tag_policies,
                stale_if: e.stale_if,
                max_size: e.max_size,
                max_upstream_connections: e.max_upstream_connections,
                max_upstream_bandwidth: e.max_upstream_bandwidth,
                complete_images: e.complete_images,
            },
        };
        CacheConfig {
            base_path: e.base_path,
            upstream: e.upstream,
            proxy_url: e.proxy_url,
            remote,
            tag_ttl_secs: e.tag_ttl_secs,
            ca_file: e.ca_file,
            library_prefix: e.library_prefix,
            private: e.private,
        }
    }
}

impl From<CacheConfig> for CacheEntry {
    fn from(c: CacheConfig) -> CacheEntry {
        let (connect_timeout_secs, read_timeout_secs, revalidate) = (
            c.connect_timeout_secs(),
            c.read_timeout_secs(),
            c.revalidate_timeout(),
        );
        let headers = c.headers();
        let r = c.remote;
        CacheEntry {
            base_path: c.base_path,
            upstream: c.upstream,
            username: r.username,
            password: r.password,
            tag_ttl_secs: c.tag_ttl_secs,
            ca_file: c.ca_file,
            tls_validation: r.tls_validation,
            connect_timeout_secs,
            read_timeout_secs,
            revalidate_timeout_ms: revalidate.as_millis() as u64,
            library_prefix: c.library_prefix,
            ca_cert: r.ca_cert,
            client_cert: r.client_cert,
            client_key: r.client_key,
            proxy_url: c.proxy_url,
            proxy_username: r.proxy_username,
            proxy_password: r.proxy_password,
            headers,
            download_concurrency: r.download_concurrency.and_then(|n| usize::try_from(n).ok()),
            rate_limit: r.rate_limit.and_then(|n| u32::try_from(n).ok()),
            includes: r.includes,
            excludes: r.excludes,
            private: c.private,
            tag_policies: r.policy.tag_policies,
            stale_if: r.policy.stale_if,
            max_size: r.policy.max_size,
            max_upstream_connections: r.policy.max_upstream_connections,
            max_upstream_bandwidth: r.policy.max_upstream_bandwidth,
            complete_images: r.policy.complete_images,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_remote_runs_with_what_it_says_or_the_defaults() {
        let mut spec = RemoteSpec::new("https://registry.example/".into());
        let plain = CacheConfig::from_remote("hub", true, &spec).unwrap();
        assert_eq!(
            (plain.connect_timeout_secs(), plain.read_timeout_secs()),
            (5, 30)
        );
        assert_eq!(plain.revalidate_timeout(), Duration::from_millis(1500));
        assert!(plain.private && plain.rate_limit().is_none());

        spec.sock_connect_timeout = Some(7.0);
        spec.sock_read_timeout = Some(0.2);
        spec.rate_limit = Some(0);
        spec.download_concurrency = Some(3);
        spec.proxy_url = Some("http://proxy:3128/".into());
        spec.headers = vec![
            BTreeMap::from([("X-A".into(), "1".into()), ("X-B".into(), "2".into())]),
            BTreeMap::from([("X-A".into(), "3".into())]),
        ];
        let set = CacheConfig::from_remote("hub", false, &spec).unwrap();
        assert_eq!(
            (set.connect_timeout_secs(), set.read_timeout_secs()),
            (7, 1)
        );
        spec.connect_timeout = Some(2.5);
        let set = CacheConfig::from_remote("hub", false, &spec).unwrap();
        assert_eq!(set.connect_timeout_secs(), 3);
        assert_eq!(set.rate_limit(), None);
        assert_eq!(set.download_concurrency(), Some(3));
        assert_eq!(
            set.proxy_url.as_ref().map(Url::as_str),
            Some("http://proxy:3128/")
        );
        assert_eq!(set.headers()["X-A"], "3");
        assert_eq!(set.headers()["X-B"], "2");
        assert!(CacheConfig::from_remote("hub", false, &RemoteSpec::new("no url".into())).is_err());
    }

    #[test]
    fn a_config_entry_reads_into_the_spec_and_prints_back_the_same() {
        let text = "base_path = \"hub\"\nupstream = \"https://registry.example/\"\n\
            connect_timeout_secs = 2\nrevalidate_timeout_ms = 250\nrate_limit = 4\n\
            max_size = \"2GiB\"\nmax_upstream_bandwidth = \"4MiB\"\nstale_if = [\"not_found\"]\n\
            complete_images = [\"linux/arm64\"]\n\
            tag_policies = [{ pattern = \"v*\", ttl = \"never\" }]\n\
            [headers]\nX-Team = \"edge\"\n";
        let cache: CacheConfig = toml::from_str(text).unwrap();
        assert_eq!(cache.remote.url, "https://registry.example/");
        assert_eq!(cache.remote.connect_timeout, Some(2.0));
        assert_eq!(cache.remote.sock_read_timeout, Some(30.0));
        assert_eq!(cache.remote.revalidate_timeout_ms, Some(250));
        assert_eq!(cache.remote.rate_limit, Some(4));
        assert_eq!(cache.headers()["X-Team"], "edge");
        let policy = cache.policy();
        assert_eq!(policy.max_size, Some(2 << 30));
        assert_eq!(policy.max_upstream_bandwidth, Some(4 << 20));
        assert!(policy.stale_if.not_found && !policy.stale_if.error);
        assert_eq!(
            policy.complete_images,
            Some(crate::domain::Platforms::Listed(vec!["linux/arm64".into()]))
        );
        assert_eq!(cache.tag_rules(300).ttl_of("v1.2"), None);
        assert_eq!(
            cache.tag_rules(300).ttl_of("latest"),
            Some(Duration::from_secs(300))
        );
        let printed = toml::to_string(&cache).unwrap();
        let again: CacheConfig = toml::from_str(&printed).unwrap();
        assert_eq!(again, cache);
    }
}
