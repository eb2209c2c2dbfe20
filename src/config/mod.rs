//! Configuration: a TOML file (or the embedded default), overridden by
//! command-line flags and `FERRY_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::RepoName;
pub(crate) use crate::domain::Secret;
pub(crate) use cluster::{ClusterConfig, ClusterSettings};
pub(crate) use policy::{complete_images, CachePolicy, StaleCase, StaleIf, TagPolicy, TagTtl};
pub(crate) use remote::{CacheEntry, RemoteSpec};
/// Sizes as the config writes them (`50GiB`, `500MB`, bytes), for flags.
pub(crate) use size::parse as parse_size;
pub(crate) use storage::{S3Settings, StorageConfig};
pub(crate) use tag_rules::TagRules;

mod cluster;
mod policy;
mod remote;
mod storage;
mod tag_rules;

/// The configuration ferry runs with when the user gives none.
pub(crate) const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

const DEFAULT_TAG_TTL_SECS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Serialize writes the file's own shape with every secret redacted (see
/// `redact`): it is what `ferry config check` prints, never what ferry
/// stores.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Default time a tag is answered from cache before ferry revalidates it
    /// upstream (per cache `tag_ttl_secs` overrides it).
    #[serde(default = "default_tag_ttl")]
    pub tag_ttl_secs: u64,
    #[serde(default, rename = "cache")]
    pub caches: Vec<CacheConfig>,
    /// Most bytes of cached content to keep, e.g. "50GiB" or a number of
    /// bytes; the least recently pulled images are evicted to stay under
    /// it. Unset: no limit.
    #[serde(default, deserialize_with = "size::deserialize")]
    pub max_size: Option<u64>,
    /// Seconds between background garbage collections (0: never).
    #[serde(default = "default_gc_interval")]
    pub gc_interval_secs: u64,
    /// Seconds unreferenced content must have been stored before the
    /// background garbage collection removes it: a pull may store a blob
    /// before the manifest that references it is recorded (0: none).
    #[serde(default = "default_gc_grace")]
    pub gc_grace_secs: u64,
    /// Seconds between background scrubs re-hashing the store (0: never).
    #[serde(default)]
    pub verify_interval_secs: u64,
    /// Seconds between the points of the dashboard's history (1 to 3600;
    /// the default 60 keeps a day of minutes, then hours for 8 days).
    #[serde(default = "default_history_step")]
    pub history_step_secs: u64,
    /// HTTPS listener (needs `tls_cert` and `tls_key`, PEM files; SIGHUP
    /// reloads them). Plain HTTP stays on `listen`.
    #[serde(default)]
    pub tls_listen: Option<SocketAddr>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Password of the `admin` account of the management API (else
    /// `FERRY_ADMIN_PASSWORD`, else generated at first start).
    #[serde(default, serialize_with = "redact::secret")]
    pub admin_password: Option<Secret>,
    /// Who may browse what is cached (the dashboard, the API's content
    /// reads, `/v2/_catalog` and tag lists): everyone ("public", private
    /// caches left out) or the admin only ("admin").
    #[serde(default)]
    pub browse: Browse,
    /// The URL clients reach ferry at (`https://registry.example.com`),
    /// when a reverse proxy sits in front: the token realm and API links
    /// point there. Unset: the listener's scheme and the request's Host
    /// (when it is a plain host[:port]).
    #[serde(default)]
    pub public_url: Option<Url>,
    /// Most client connections open at once (both listeners); past it new
    /// ones get a 503 "too many connections" (the health checks still
    /// answer). Unset: sized from the open-files limit (at most 10000).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers, and to start its
    /// next request on a kept-alive HTTP/1 connection.
    #[serde(default = "default_client_header_timeout")]
    pub client_header_timeout_secs: u64,
    /// Seconds without a byte either way (and no request being handled)
    /// after which a connection is closed.
    #[serde(default = "default_client_idle_timeout")]
    pub client_idle_timeout_secs: u64,
    /// Seconds a response write may make no progress (the client stopped
    /// reading) before the connection is closed.
    #[serde(default = "default_client_write_timeout")]
    pub client_write_timeout_secs: u64,
    /// Where blobs are kept: `data_dir` (the default) or an S3-compatible
    /// object store (`[storage]`, config/storage.rs).
    #[serde(default)]
    pub storage: StorageConfig,
    /// Several nodes on one object store (`[cluster]`, config/cluster.rs).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The file this was read from, if any: SIGHUP re-reads its
    /// `[cluster] nodes`.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Who may browse the cached content. Pulls are not affected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Browse {
    /// Anyone sees the repositories and tags of public caches, read-only.
    #[default]
    Public,
    /// Only the admin.
    Admin,
}

impl Browse {
    /// Whether a caller who is (or is not) the admin may browse.
    pub(crate) fn lets(self, admin: bool) -> bool {
        admin || self == Browse::Public
    }
}

/// One pull-through cache: a base path served by ferry, backed by an
/// upstream. Read from (and printed as) a `[[cache]]` entry of the config
/// file ([`CacheEntry`]), or made from a distribution and its remote.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(from = "CacheEntry", into = "CacheEntry")]
pub(crate) struct CacheConfig {
    pub base_path: String,
    /// `remote.url` and `remote.proxy_url`, parsed.
    pub upstream: Url,
    pub proxy_url: Option<Url>,
    /// The upstream and how to reach it.
    pub remote: RemoteSpec,
    pub tag_ttl_secs: Option<u64>,
    /// Extra CA certificates (PEM) trusted for this upstream (config file
    /// only: the API cannot name files on ferry's disk).
    pub ca_file: Option<PathBuf>,
    pub library_prefix: Option<bool>,
    /// Pulls need the admin's credentials.
    pub private: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 24817))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./ferry-data")
}
fn default_tag_ttl() -> u64 {
    DEFAULT_TAG_TTL_SECS
}
fn default_gc_interval() -> u64 {
    3600
}
fn default_gc_grace() -> u64 {
    3600
}
fn default_history_step() -> u64 {
    60
}
fn default_client_header_timeout() -> u64 {
    30
}
fn default_client_idle_timeout() -> u64 {
    120
}
fn default_client_write_timeout() -> u64 {
    60
}

impl Config {
    /// The cluster this node joins (`None`: a single node), checked.
    pub(crate) fn cluster_settings(&self) -> Result<Option<ClusterSettings>, ConfigError> {
        self.cluster.settings(self.storage.s3()?.as_ref())
    }

    pub(crate) fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub(crate) fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::from_toml(&text)?;
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    pub(crate) fn embedded_default() -> Config {
        // The embedded file is part of the binary and covered by a unit test.
        Config::from_toml(EMBEDDED_DEFAULT).unwrap_or_else(|e| panic!("embedded config: {e}"))
    }

    /// Checks what serde cannot: base paths are valid names and distinct.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_listen.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err(ConfigError::Invalid(
                "tls_listen needs tls_cert and tls_key".into(),
            ));
        }
        if let Some(url) = &self.public_url {
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || url.path() != "/"
                || url.query().is_some()
            {
                return Err(ConfigError::Invalid(format!(
                    "public_url {url}: must be http(s)://HOST[:PORT] with no path"
                )));
            }
        }
        if self.max_connections == Some(0)
            || self.client_header_timeout_secs == 0
            || self.client_idle_timeout_secs == 0
            || self.client_write_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "max_connections and the client_*_timeout_secs must be above 0".into(),
            ));
        }
        if !(1..=3600).contains(&self.history_step_secs) {
            return Err(ConfigError::Invalid(
                "history_step_secs must be from 1 to 3600".into(),
            ));
        }
        self.cluster_settings()?;
        for (i, cache) in self.caches.iter().enumerate() {
            RepoName::parse(&cache.base_path).map_err(|e| {
                ConfigError::Invalid(format!("cache base_path {:?}: {e}", cache.base_path))
            })?;
            if !matches!(cache.upstream.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(format!(
                    "cache {:?}: upstream must be an http or https URL",
                    cache.base_path
                )));
            }
            cache.policy().check().map_err(|(field, message)| {
                ConfigError::Invalid(format!("cache {:?}: {field}: {message}", cache.base_path))
            })?;
            for other in &self.caches[..i] {
                if overlaps(&other.base_path, &cache.base_path) {
                    return Err(ConfigError::Invalid(format!(
                        "cache base paths {:?} and {:?} overlap",
                        other.base_path, cache.base_path
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Serializers that print a setting without its secret: passwords and keys
/// become `<redacted>`, as does the password part of a URL and the value of
/// a header that carries credentials.
mod redact {
    use std::collections::BTreeMap;

    use serde::Serializer;
    use url::Url;

    use super::Secret;

    pub(super) const REDACTED: &str = "<redacted>";

    pub(super) fn secret<S: Serializer>(value: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(_) => s.serialize_str(REDACTED),
            None => s.serialize_none(),
        }
    }

    /// `https://user:pw@host/` → `https://user:<redacted>@host/`.
    pub(super) fn url_text(url: &Url) -> String {
        let mut shown = url.clone();
        if url.password().is_some() && shown.set_password(Some(REDACTED)).is_ok() {
            // `set_password` percent-encodes the marker; show it plainly.
            return shown.as_str().replacen("%3Credacted%3E", REDACTED, 1);
        }
        url.to_string()
    }

    pub(super) fn url<S: Serializer>(url: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&url_text(url))
    }

    pub(super) fn optional_url<S: Serializer>(url: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
        match url {
            Some(url) => s.serialize_str(&url_text(url)),
            None => s.serialize_none(),
        }
    }

    /// Whether a header's value is a credential (Authorization, cookies,
    /// API keys and tokens).
    fn sensitive(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        ["auth", "cookie", "token", "key", "secret", "password"]
            .iter()
            .any(|word| name.contains(word))
    }

    pub(super) fn headers<S: Serializer>(
        headers: &BTreeMap<String, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(headers.iter().map(|(name, value)| {
            let shown = if sensitive(name) { REDACTED } else { value };
            (name, shown)
        }))
    }
}

impl Config {
    /// The settings as a TOML file of the config's own shape, every secret
    /// redacted (`ferry config check`).
    pub(crate) fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid(format!("cannot print: {e}")))
    }
}

/// Sizes written as `10GiB`, `512MB`, `1024` (bytes).
mod size {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Bytes(n)) => Ok(Some(n)),
            Some(Raw::Text(t)) => parse(&t).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {t:?}: use e.g. 50GiB, 500MB or bytes"
                ))
            }),
        }
    }

    pub(crate) fn parse(text: &str) -> Option<u64> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1 << 20,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1 << 30,
            "t" | "tb" => 1000u64.pow(4),
            "tib" => 1 << 40,
            _ => return None,
        };
        Some((number * factor as f64) as u64)
    }

    #[cfg(test)]
    #[test]
    fn sizes() {
        assert_eq!(parse("10GiB"), Some(10 << 30));
        assert_eq!(parse("1.5 MB"), Some(1_500_000));
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse("ten"), None);
        assert_eq!(parse("5 parsecs"), None);
    }
}

/// Two base paths overlap when one is a path prefix of the other.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let prefix_of = |p: &str, q: &str| q == p || q.starts_with(&format!("{p}/"));
    prefix_of(a, b) || prefix_of(b, a)
}

impl CacheConfig {
    /// A cache from the command line's `NAME=URL`.
    pub(crate) fn from_flag(flag: &str) -> Result<CacheConfig, ConfigError> {
        let (base_path, url) = flag
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid(format!("--cache {flag:?}: expected NAME=URL")))?;
        let upstream = Url::parse(url)
            .map_err(|e| ConfigError::Invalid(format!("--cache {flag:?}: bad URL: {e}")))?;
        Ok(CacheConfig::new(base_path, upstream))
    }

    /// Whether the includes/excludes wildcards let `repo` through.
    pub(crate) fn allows(&self, repo: &str) -> bool {
        let included = self
            .remote
            .includes
            .as_ref()
            .is_none_or(|pats| pats.iter().any(|p| wildcard_match(p, repo)));
        let excluded = self
            .remote
            .excludes
            .as_ref()
            .is_some_and(|pats| pats.iter().any(|p| wildcard_match(p, repo)));
        included && !excluded
    }

    pub(crate) fn tag_ttl(&self, global: u64) -> Duration {
        Duration::from_secs(self.tag_ttl_secs.unwrap_or(global))
    }

    /// The tag policies compiled, with the cache's TTL for other tags: what
    /// a cache keeps to answer how long each tag is trusted.
    pub(crate) fn tag_rules(&self, global: u64) -> TagRules {
        TagRules::compile(&self.policy().tag_policies, self.tag_ttl(global))
    }

    pub(crate) fn is_docker_hub(&self) -> bool {
        self.upstream.host_str().is_some_and(is_docker_hub_host)
    }

    pub(crate) fn library_prefix(&self) -> bool {
        self.library_prefix.unwrap_or(true)
    }

    /// The registry host clients name in `?ns=`: `docker.io` for Docker Hub,
    /// else the upstream's `host[:port]`.
    pub(crate) fn namespace(&self) -> String {
        if self.is_docker_hub() {
            return "docker.io".to_string();
        }
        let host = self.upstream.host_str().unwrap_or_default();
        match self.upstream.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }
}

/// Shell-style matching: `*` any run of characters, `?` any one.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer matcher with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A wildcard ferry accepts: repository-name characters plus `*` and `?`.
pub(crate) fn valid_wildcard(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 255
        && pattern
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*?".contains(c))
}

/// Docker Hub answers under several names.
pub(crate) fn is_docker_hub_host(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "registry-1.docker.io" | "index.docker.io" | "registry.hub.docker.com"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::embedded_default();
        assert_eq!(c.listen.port(), 24817);
        assert_eq!(c.caches.len(), 1);
        assert_eq!(c.caches[0].base_path, "docker.io");
        assert!(c.caches[0].library_prefix());
        assert_eq!(c.caches[0].namespace(), "docker.io");
    }

    #[test]
    fn rejects_overlap_and_bad_paths() {
        let two = |a: &str, b: &str| {
            format!(
                "[[cache]]\nbase_path = \"{a}\"\nupstream = \"http://x\"\n\
                 [[cache]]\nbase_path = \"{b}\"\nupstream = \"http://y\"\n"
            )
        };
        assert!(Config::from_toml(&two("a", "a/b")).is_err());
        assert!(Config::from_toml(&two("a", "ab")).is_ok());
        assert!(Config::from_toml(&two("a", "../b")).is_err());
        assert!(Config::from_toml("bogus = 1").is_err());
    }

    #[test]
    fn browse_defaults_to_public() {
        assert_eq!(Config::embedded_default().browse, Browse::Public);
        let closed = Config::from_toml("browse = \"admin\"").unwrap();
        assert_eq!(closed.browse, Browse::Admin);
        assert!(!closed.browse.lets(false) && closed.browse.lets(true));
        let err = Config::from_toml("browse = \"nobody\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("public") && err.contains("admin"), "{err}");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("library/busy*", "library/busybox"));
        assert!(wildcard_match("*", "a/b"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("library/busy*", "library/alpine"));
        assert!(!wildcard_match("a", "ab"));
        assert!(valid_wildcard("library/*"));
        assert!(!valid_wildcard("[a"));
        let mut c = CacheConfig::new("x", Url::parse("http://u").unwrap());
        c.remote.includes = Some(vec!["library/busy*".into()]);
        c.remote.excludes = Some(vec!["library/busybox-old".into()]);
        assert!(c.allows("library/busybox"));
        assert!(!c.allows("library/busybox-old"));
        assert!(!c.allows("library/alpine"));
    }

    #[test]
    fn printed_settings_keep_the_shape_and_hide_every_secret() {
        let text = "admin_password = \"adm1n\"\nmax_size = \"1KiB\"\n\
            [[cache]]\nbase_path = \"a\"\nupstream = \"https://u:up5tream@x/\"\n\
            username = \"me\"\npassword = \"hunter2\"\nclient_key = \"k3y\"\n\
            proxy_url = \"http://p:pr0xy@proxy:3128/\"\nproxy_password = \"pr0xy2\"\n\
            [cache.headers]\nAuthorization = \"Bearer t0ken\"\nX-Team = \"edge\"\n";
        let printed = Config::from_toml(text).unwrap().to_redacted_toml().unwrap();
        for secret in ["adm1n", "up5tream", "hunter2", "k3y", "pr0xy", "t0ken"] {
            assert!(!printed.contains(secret), "{secret} in\n{printed}");
        }
        // What is printed is a config ferry reads back, with the same settings.
        let again = Config::from_toml(&printed).unwrap();
        assert_eq!(again.max_size, Some(1024));
        assert_eq!(again.tag_ttl_secs, DEFAULT_TAG_TTL_SECS);
        let cache = &again.caches[0];
        assert_eq!(cache.upstream.as_str(), "https://u:%3Credacted%3E@x/");
        assert_eq!(cache.remote.username.as_deref(), Some("me"));
        assert_eq!(cache.headers()["X-Team"], "edge");
        assert!(printed.contains("https://u:<redacted>@x/"), "{printed}");
    }

    #[test]
    fn secret_is_redacted() {
        let c = Config::from_toml(
            "[[cache]]\nbase_path = \"a\"\nupstream = \"http://x\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
