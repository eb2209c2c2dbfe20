//! Remotes: upstream registries and how to reach them.

use std::collections::BTreeMap;

use url::Url;

use super::{invalid, refuse_config_defined, ManageError, Manager};
use crate::cache::blocking;
use crate::config::{valid_wildcard, CacheConfig};
use crate::store::{unix_micros, DistributionRecord, RemoteRecord};

impl RemoteRecord {
    /// A remote made through the API, before its fields are set.
    pub fn new(id: String) -> RemoteRecord {
        let now = unix_micros();
        RemoteRecord {
            id,
            name: String::new(),
            url: String::new(),
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
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
            from_config: false,
        }
    }
}

impl Manager {
    pub async fn remotes(&self) -> Result<Vec<RemoteRecord>, ManageError> {
        let meta = self.meta.clone();
        Ok(blocking(move || meta.remotes()).await?)
    }

    pub async fn remote(&self, id: &str) -> Result<RemoteRecord, ManageError> {
        self.remotes()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(ManageError::NotFound)
    }

    /// Creates or replaces a remote after validating it whole; the caches
    /// of the distributions using it are rebuilt, no other.
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
        self.meta.put_remote(&remote)?;
        self.durable().await?;
        self.apply()?;
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
        self.meta.delete_remote(id)?;
        self.durable().await?;
        Ok(())
    }
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
pub(super) fn cache_config(
    remote: &RemoteRecord,
    d: &DistributionRecord,
) -> Result<CacheConfig, String> {
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
pub(super) fn remote_from_config(cache: &CacheConfig, now: u64) -> RemoteRecord {
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
