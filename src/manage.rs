//! Remotes and distributions as the management API sees them: validated,
//! persisted in the metadata store, and applied to the running caches at
//! once. Caches from the config file are mirrored here (marked as such), so
//! the API lists every cache ferry serves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use url::Url;

use crate::cache::{Cache, CacheError, Caches};
use crate::config::{overlaps, valid_wildcard, CacheConfig};
use crate::domain::{RepoName, Tag};
use crate::store::{
    unix_micros, DistributionRecord, MetaStore, RemoteRecord, RepoRecord, StoreError, TagRecord,
    TaskRecord,
};

/// Tasks are kept a day: long enough for any script polling one.
const TASK_RETENTION_MICROS: u64 = 24 * 3600 * 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// Field → messages, in the shape Pulp (Django REST framework) answers.
    #[error("invalid request")]
    Invalid(Value),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        ManageError::Cache(e.into())
    }
}

fn invalid(field: &str, message: &str) -> ManageError {
    ManageError::Invalid(json!({ field: [message] }))
}

pub struct Manager {
    caches: Arc<Caches>,
    meta: MetaStore,
    global_tag_ttl: u64,
    /// The config file's caches, applied as written (the stored mirror
    /// cannot hold file paths such as `ca_file`).
    configured: std::sync::Mutex<Vec<CacheConfig>>,
    /// Serializes changes, so validation and the write see the same state.
    changes: tokio::sync::Mutex<()>,
}

impl Manager {
    pub fn new(caches: Arc<Caches>, global_tag_ttl: u64) -> Manager {
        let meta = caches.storage().meta().clone();
        Manager {
            caches,
            meta,
            global_tag_ttl,
            configured: std::sync::Mutex::new(Vec::new()),
            changes: tokio::sync::Mutex::new(()),
        }
    }

    pub fn caches(&self) -> &Arc<Caches> {
        &self.caches
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// Mirrors the config file's caches into the store (replacing earlier
    /// config entries) and applies everything. Blocking; call at start-up.
    pub fn sync_config(&self, configured: &[CacheConfig]) -> Result<(), ManageError> {
        let meta = self.meta.blocking();
        let remotes = meta.remotes()?;
        let distributions = meta.distributions()?;
        for d in distributions.iter().filter(|d| d.from_config) {
            meta.delete_distribution(&d.id)?;
        }
        for r in remotes.iter().filter(|r| r.from_config) {
            meta.delete_remote(&r.id)?;
        }
        let api_distributions: Vec<_> = distributions
            .into_iter()
            .filter(|d| !d.from_config)
            .collect();
        let now = unix_micros();
        for cache in configured {
            if let Some(clash) = api_distributions
                .iter()
                .find(|d| overlaps(&d.base_path, &cache.base_path))
            {
                tracing::warn!(base_path = %cache.base_path, distribution = %clash.name,
                    "config cache overlaps a distribution created through the API; the config cache is not served");
                continue;
            }
            let remote = remote_from_config(cache, now);
            let distribution = DistributionRecord {
                id: uuid::Uuid::new_v4().to_string(),
                name: cache.base_path.clone(),
                base_path: cache.base_path.clone(),
                remote_id: remote.id.clone(),
                private: cache.private,
                description: Some("defined in the config file".into()),
                hidden: false,
                pulp_labels: BTreeMap::new(),
                created: now,
                updated: now,
                from_config: true,
            };
            meta.put_remote(&remote)?;
            meta.put_distribution(&distribution)?;
        }
        *self.configured.lock().unwrap_or_else(|p| p.into_inner()) = configured.to_vec();
        self.apply_records(meta.remotes()?, meta.distributions()?);
        Ok(())
    }

    /// Rebuilds the served caches from the stored definitions.
    async fn apply(&self) -> Result<(), ManageError> {
        let remotes = self.meta.remotes().await?;
        let distributions = self.meta.distributions().await?;
        self.apply_records(remotes, distributions);
        Ok(())
    }

    /// Serves the caches `distributions` define. A definition that cannot
    /// be set up (a bad CA, say) is skipped with an error log.
    fn apply_records(&self, remotes: Vec<RemoteRecord>, distributions: Vec<DistributionRecord>) {
        let remotes: BTreeMap<String, RemoteRecord> =
            remotes.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut caches = Vec::new();
        for d in distributions {
            let Some(remote) = remotes.get(&d.remote_id) else {
                continue;
            };
            let from_file = d
                .from_config
                .then(|| {
                    let configured = self.configured.lock().unwrap_or_else(|p| p.into_inner());
                    configured
                        .iter()
                        .find(|c| c.base_path == d.base_path)
                        .cloned()
                })
                .flatten();
            let config = match from_file {
                Some(config) => Ok(config),
                None => cache_config(remote, &d),
            };
            match config.and_then(|config| {
                Cache::new(&config, self.global_tag_ttl, self.caches.storage().clone())
                    .map_err(|e| e.to_string())
            }) {
                Ok(cache) => caches.push(cache),
                Err(e) => {
                    tracing::error!(distribution = %d.name, error = %e, "distribution not served")
                }
            }
        }
        self.caches.replace(caches);
    }

    pub async fn remotes(&self) -> Result<Vec<RemoteRecord>, ManageError> {
        Ok(self.meta.remotes().await?)
    }

    pub async fn remote(&self, id: &str) -> Result<RemoteRecord, ManageError> {
        self.remotes()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(ManageError::NotFound)
    }

    pub async fn distributions(&self) -> Result<Vec<DistributionRecord>, ManageError> {
        Ok(self.meta.distributions().await?)
    }

    pub async fn distribution(&self, id: &str) -> Result<DistributionRecord, ManageError> {
        self.distributions()
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or(ManageError::NotFound)
    }

    /// Creates or replaces a remote after validating it whole.
    pub async fn save_remote(&self, mut remote: RemoteRecord) -> Result<RemoteRecord, ManageError> {
        let _guard = self.changes.lock().await;
        let existing = self.remotes().await?;
        if let Some(old) = existing.iter().find(|r| r.id == remote.id) {
            refuse_config_defined(old.from_config)?;
        }
        if existing
            .iter()
            .any(|r| r.name == remote.name && r.id != remote.id)
        {
            return Err(invalid("name", "This field must be unique."));
        }
        validate_remote(&remote)?;
        remote.updated = unix_micros();
        self.meta.put_remote(&remote).await?;
        self.durable().await?;
        self.apply().await?;
        Ok(remote)
    }

    pub async fn delete_remote(&self, id: &str) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let remote = self.remote(id).await?;
        refuse_config_defined(remote.from_config)?;
        if let Some(d) = self
            .distributions()
            .await?
            .iter()
            .find(|d| d.remote_id == id)
        {
            return Err(ManageError::Conflict(format!(
                "remote {:?} is used by distribution {:?}; delete the distribution first",
                remote.name, d.name
            )));
        }
        self.meta.delete_remote(id).await?;
        self.durable().await?;
        Ok(())
    }

    /// Creates or replaces a distribution after validating it whole.
    pub async fn save_distribution(
        &self,
        mut d: DistributionRecord,
    ) -> Result<DistributionRecord, ManageError> {
        let _guard = self.changes.lock().await;
        let existing = self.distributions().await?;
        if let Some(old) = existing.iter().find(|o| o.id == d.id) {
            refuse_config_defined(old.from_config)?;
        }
        if existing.iter().any(|o| o.name == d.name && o.id != d.id) {
            return Err(invalid("name", "This field must be unique."));
        }
        if let Err(e) = RepoName::parse(&d.base_path) {
            return Err(invalid("base_path", &format!("Invalid base path: {e}.")));
        }
        if existing
            .iter()
            .any(|o| o.id != d.id && overlaps(&o.base_path, &d.base_path))
        {
            // Pulp's exact shape for this error.
            return Err(ManageError::Invalid(
                json!({ "base_path": { "base_path": "Overlaps with an existing distribution." } }),
            ));
        }
        if self.remote(&d.remote_id).await.is_err() {
            return Err(invalid(
                "remote",
                "Invalid hyperlink - Object does not exist.",
            ));
        }
        d.updated = unix_micros();
        self.meta.put_distribution(&d).await?;
        self.durable().await?;
        self.apply().await?;
        Ok(d)
    }

    pub async fn delete_distribution(&self, id: &str) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let d = self.distribution(id).await?;
        refuse_config_defined(d.from_config)?;
        self.meta.delete_distribution(id).await?;
        self.durable().await?;
        self.apply().await
    }

    /// Asks the upstream where a cached tag of a local repository points
    /// now (the dashboard's freshness check); returns the tag as stored.
    pub async fn refresh_tag(
        &self,
        repo: &RepoRecord,
        tag: &str,
    ) -> Result<TagRecord, ManageError> {
        let tag = Tag::parse(tag).ok_or(ManageError::NotFound)?;
        let cache = self
            .caches
            .list()
            .into_iter()
            .find(|c| c.base_path() == repo.cache)
            .ok_or_else(|| {
                ManageError::Conflict(format!(
                    "no distribution serves {} any more: the tag cannot be checked upstream",
                    repo.cache
                ))
            })?;
        let name = RepoName::parse(&repo.upstream_name)
            .map_err(|e| CacheError::Internal(format!("stored repository name: {e}")))?;
        Ok(cache.refresh_tag(&name, &tag).await?)
    }

    /// Records a finished task and returns its id.
    pub async fn finish_task(
        &self,
        name: &str,
        created_resources: Vec<String>,
    ) -> Result<String, ManageError> {
        let task = TaskRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            created: unix_micros(),
            created_resources,
        };
        let id = task.id.clone();
        self.meta.put_task(task, TASK_RETENTION_MICROS).await?;
        self.durable().await?;
        Ok(id)
    }
}

impl Manager {
    /// Every change is on disk before the API answers: an acknowledged
    /// change must survive a crash.
    async fn durable(&self) -> Result<(), ManageError> {
        Ok(self.meta.flush_async().await?)
    }
}

fn refuse_config_defined(from_config: bool) -> Result<(), ManageError> {
    if from_config {
        return Err(ManageError::Conflict(
            "defined in ferry's config file: change it there and restart ferry".into(),
        ));
    }
    Ok(())
}

fn validate_remote(remote: &RemoteRecord) -> Result<(), ManageError> {
    if remote.name.trim().is_empty() {
        return Err(invalid("name", "This field may not be blank."));
    }
    match Url::parse(&remote.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => return Err(invalid("url", "Enter a valid URL.")),
    }
    if let Some(proxy) = &remote.proxy_url {
        if Url::parse(proxy).is_err() {
            return Err(invalid("proxy_url", "Enter a valid URL."));
        }
    }
    for (field, patterns) in [
        ("includes", &remote.includes),
        ("excludes", &remote.excludes),
    ] {
        if let Some(bad) = patterns.iter().flatten().find(|p| !valid_wildcard(p)) {
            return Err(invalid(
                field,
                &format!("Invalid wildcard {bad:?}: use repository-name characters with * and ?."),
            ));
        }
    }
    if remote.download_concurrency.is_some_and(|n| n < 1) {
        return Err(invalid(
            "download_concurrency",
            "Ensure this value is greater than or equal to 1.",
        ));
    }
    for (field, value) in [
        ("total_timeout", remote.total_timeout),
        ("connect_timeout", remote.connect_timeout),
        ("sock_connect_timeout", remote.sock_connect_timeout),
        ("sock_read_timeout", remote.sock_read_timeout),
    ] {
        if value.is_some_and(|v| !(0.0..=86_400.0).contains(&v)) {
            return Err(invalid(field, "Ensure this value is between 0 and 86400."));
        }
    }
    // The client must be constructible (certificates parse, headers valid).
    let d = DistributionRecord {
        id: String::new(),
        name: String::new(),
        base_path: "probe".into(),
        remote_id: remote.id.clone(),
        private: false,
        description: None,
        hidden: false,
        pulp_labels: BTreeMap::new(),
        created: 0,
        updated: 0,
        from_config: false,
    };
    let config = cache_config(remote, &d).map_err(|e| invalid("url", &e))?;
    crate::upstream::Upstream::new(&config).map_err(|e| invalid("ca_cert", &e.to_string()))?;
    Ok(())
}

/// The cache a distribution and its remote describe.
fn cache_config(remote: &RemoteRecord, d: &DistributionRecord) -> Result<CacheConfig, String> {
    let url = Url::parse(&remote.url).map_err(|e| format!("Enter a valid URL ({e})."))?;
    let mut c = CacheConfig::new(&d.base_path, url);
    c.username = remote.username.clone();
    c.password = remote.password.clone();
    c.ca_cert = remote.ca_cert.clone();
    c.client_cert = remote.client_cert.clone();
    c.client_key = remote.client_key.clone();
    c.tls_validation = remote.tls_validation;
    c.proxy_url = remote.proxy_url.as_deref().and_then(|u| Url::parse(u).ok());
    c.proxy_username = remote.proxy_username.clone();
    c.proxy_password = remote.proxy_password.clone();
    c.headers = remote
        .headers
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    c.download_concurrency = remote.download_concurrency.map(|n| n.max(1) as usize);
    c.rate_limit = remote
        .rate_limit
        .filter(|r| *r > 0)
        .map(|r| r.min(u32::MAX as i64) as u32);
    c.includes = remote.includes.clone();
    c.excludes = remote.excludes.clone();
    c.private = d.private;
    if let Some(t) = remote.connect_timeout.or(remote.sock_connect_timeout) {
        c.connect_timeout_secs = t.ceil().max(1.0) as u64;
    }
    if let Some(t) = remote.sock_read_timeout {
        c.read_timeout_secs = t.ceil().max(1.0) as u64;
    }
    Ok(c)
}

/// A remote mirroring a config-file cache.
fn remote_from_config(cache: &CacheConfig, now: u64) -> RemoteRecord {
    RemoteRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: cache.base_path.clone(),
        url: cache.upstream.to_string(),
        username: cache.username.clone(),
        password: cache.password.clone(),
        ca_cert: cache.ca_cert.clone(),
        client_cert: cache.client_cert.clone(),
        client_key: cache.client_key.clone(),
        tls_validation: cache.tls_validation,
        proxy_url: cache.proxy_url.as_ref().map(Url::to_string),
        proxy_username: cache.proxy_username.clone(),
        proxy_password: cache.proxy_password.clone(),
        headers: cache
            .headers
            .iter()
            .map(|(k, v)| BTreeMap::from([(k.clone(), v.clone())]))
            .collect(),
        max_retries: None,
        total_timeout: None,
        connect_timeout: Some(cache.connect_timeout_secs as f64),
        sock_connect_timeout: None,
        sock_read_timeout: Some(cache.read_timeout_secs as f64),
        download_concurrency: cache.download_concurrency.map(|n| n as i64),
        rate_limit: cache.rate_limit.map(i64::from),
        includes: cache.includes.clone(),
        excludes: cache.excludes.clone(),
        pulp_labels: BTreeMap::new(),
        created: now,
        updated: now,
        from_config: true,
    }
}
