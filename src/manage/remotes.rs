//! Remotes: upstream registries and how to reach them.

use std::collections::BTreeMap;

use url::Url;

use super::shared::remote_object;
use super::{invalid, refuse_config_defined, ManageError, Manager};
use crate::config::{valid_wildcard, CacheConfig, RemoteSpec};
use crate::store::{unix_micros, RemoteRecord};

impl RemoteRecord {
    /// A remote made through the API, before its fields are set.
    pub fn new(id: String) -> RemoteRecord {
        let now = unix_micros();
        RemoteRecord {
            id,
            name: String::new(),
            spec: RemoteSpec::new(String::new()),
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
            from_config: false,
        }
    }

    /// The remote mirroring a config-file cache.
    pub(super) fn mirroring(cache: &CacheConfig, now: u64) -> RemoteRecord {
        RemoteRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: cache.base_path.clone(),
            spec: cache.remote.clone(),
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
            from_config: true,
        }
    }
}

impl Manager {
    pub(crate) async fn remotes(&self) -> Result<Vec<RemoteRecord>, ManageError> {
        Ok(self.meta.remotes().await?)
    }

    pub(crate) async fn remote(&self, id: &str) -> Result<RemoteRecord, ManageError> {
        self.remotes()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(ManageError::NotFound)
    }

    /// Creates or replaces a remote after validating it whole; the caches
    /// of the distributions using it are rebuilt, no other.
    pub(crate) async fn save_remote(
        &self,
        mut remote: RemoteRecord,
    ) -> Result<RemoteRecord, ManageError> {
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
        let new = !existing.iter().any(|r| r.id == remote.id);
        self.publish(&remote_object(&remote.id)?, &remote, new)
            .await?;
        self.meta.put_remote(&remote).await?;
        self.durable().await?;
        self.apply().await?;
        Ok(remote)
    }

    pub(crate) async fn delete_remote(&self, id: &str) -> Result<(), ManageError> {
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
        self.withdraw(&remote_object(id)?).await?;
        self.meta.delete_remote(id).await?;
        self.durable().await?;
        Ok(())
    }
}

fn validate_remote(record: &RemoteRecord) -> Result<(), ManageError> {
    if record.name.trim().is_empty() {
        return Err(invalid("name", "This field may not be blank."));
    }
    let remote = &record.spec;
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
    remote
        .policy
        .check()
        .map_err(|(field, message)| invalid(field, &message))?;
    // The client must be constructible (certificates parse, headers valid).
    let config =
        CacheConfig::from_remote("probe", false, remote).map_err(|e| invalid("url", &e))?;
    crate::upstream::Upstream::new(&config).map_err(|e| invalid("ca_cert", &e.to_string()))?;
    Ok(())
}
