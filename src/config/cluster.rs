//! `[cluster]`: several ferry nodes on one object store. Each node lists
//! every member (itself included, as `self`); cold work for a digest or a
//! repository is done by one member, chosen by rendezvous hashing over the
//! members that answer (`cluster/`).

use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, Secret};

/// Read when the config file names no `secret`.
pub(crate) const SECRET_ENV: &str = "FERRY_CLUSTER_SECRET";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// This node's address as the other members reach it; one of `nodes`.
    #[serde(default, rename = "self")]
    pub me: Option<Url>,
    /// Every member's address (this node's too). Empty: no cluster.
    #[serde(default)]
    pub nodes: Vec<Url>,
    /// Key that signs the requests members send each other (else
    /// `FERRY_CLUSTER_SECRET`, else derived from the object store's secret
    /// key, which every member holds anyway).
    #[serde(default, serialize_with = "super::redact::secret")]
    pub secret: Option<Secret>,
    /// Milliseconds between liveness probes of each member (`/healthz`).
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Milliseconds a probe or a connection to a member may take before the
    /// member counts as down (it is skipped until a probe answers again).
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
}

/// The same defaults whether `[cluster]` is absent or partly given.
impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            me: None,
            nodes: Vec::new(),
            secret: None,
            probe_interval_ms: default_probe_interval_ms(),
            probe_timeout_ms: default_probe_timeout_ms(),
        }
    }
}

fn default_probe_interval_ms() -> u64 {
    1000
}

fn default_probe_timeout_ms() -> u64 {
    1000
}

/// What a node joins a cluster with: the settings checked, the key found.
#[derive(Debug, Clone)]
pub(crate) struct ClusterSettings {
    pub me: Url,
    pub nodes: Vec<Url>,
    pub secret: Secret,
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
}

impl ClusterConfig {
    /// The cluster's settings (`None` for a single node), or why they are
    /// incomplete. `storage_secret` is the object store's secret key, the
    /// fallback for the signing key.
    pub(crate) fn settings(
        &self,
        s3: Option<&super::S3Settings>,
    ) -> Result<Option<ClusterSettings>, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("[cluster] {m}")));
        if self.nodes.is_empty() && self.me.is_none() {
            return Ok(None);
        }
        let Some(s3) = s3 else {
            return invalid(
                "needs [storage] kind = \"s3\": the members share one object store".into(),
            );
        };
        for url in self.nodes.iter().chain(self.me.iter()) {
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || url.path() != "/"
                || url.query().is_some()
                || !url.username().is_empty()
            {
                return invalid(format!(
                    "{url}: a member is http(s)://HOST[:PORT] with no path"
                ));
            }
        }
        let Some(me) = self.me.clone() else {
            return invalid("needs `self`, this node's address as the others reach it".into());
        };
        if !self.nodes.contains(&me) {
            return invalid(format!("self {me} is not one of `nodes`"));
        }
        if self.probe_interval_ms == 0 || self.probe_timeout_ms == 0 {
            return invalid("probe_interval_ms and probe_timeout_ms must be above 0".into());
        }
        let secret = self
            .secret
            .clone()
            .or_else(|| {
                std::env::var(SECRET_ENV)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(Secret)
            })
            .or_else(|| s3.credentials.as_ref().map(|(_, secret)| secret.clone()));
        let Some(secret) = secret else {
            return invalid(format!(
                "needs a `secret` (or {SECRET_ENV}) when the object store has no credentials"
            ));
        };
        let mut nodes = self.nodes.clone();
        nodes.sort();
        nodes.dedup();
        Ok(Some(ClusterSettings {
            me,
            nodes,
            secret,
            probe_interval_ms: self.probe_interval_ms,
            probe_timeout_ms: self.probe_timeout_ms,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    fn s3() -> super::super::S3Settings {
        let storage: StorageConfig = toml::from_str(
            "kind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:8333\"\n\
             access_key_id = \"k\"\nsecret_access_key = \"s3-secret\"",
        )
        .unwrap();
        storage.s3().unwrap().unwrap()
    }

    fn parse(text: &str) -> ClusterConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn no_members_is_no_cluster() {
        assert!(parse("").settings(None).unwrap().is_none());
        let absent = ClusterConfig::default();
        assert_eq!(
            (absent.probe_interval_ms, absent.probe_timeout_ms),
            (1000, 1000)
        );
    }

    #[test]
    fn a_cluster_needs_the_object_store_and_self_among_the_nodes() {
        let two = "self = \"http://127.0.0.1:1\"\nnodes = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]";
        let err = parse(two).settings(None).unwrap_err().to_string();
        assert!(err.contains("needs [storage]"), "{err}");
        let settings = parse(two).settings(Some(&s3())).unwrap().unwrap();
        assert_eq!(settings.nodes.len(), 2);
        assert_eq!(settings.secret.expose(), "s3-secret");
        let stranger = "self = \"http://127.0.0.1:3\"\nnodes = [\"http://127.0.0.1:1\"]";
        let err = parse(stranger)
            .settings(Some(&s3()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not one of"), "{err}");
        let path = "self = \"http://127.0.0.1:1/x\"\nnodes = [\"http://127.0.0.1:1/x\"]";
        assert!(parse(path).settings(Some(&s3())).is_err());
    }

    #[test]
    fn the_secret_is_never_printed() {
        let config = parse(
            "self = \"http://127.0.0.1:1\"\nnodes = [\"http://127.0.0.1:1\"]\nsecret = \"cluster-key-123\"",
        );
        let shown = format!("{config:?} {}", toml::to_string(&config).unwrap());
        assert!(!shown.contains("cluster-key-123"), "{shown}");
    }
}
