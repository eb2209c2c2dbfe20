//! From the stored definitions to the caches served: the config file's
//! caches mirrored at start-up, and each change applied by rebuilding only
//! the caches whose definition it changed (the others keep their token
//! caches, tag lists and in-flight work).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ManageError, Manager};
use crate::cache::Cache;
use crate::config::{overlaps, CacheConfig};
use crate::store::{unix_micros, DistributionRecord, RemoteRecord};

impl Manager {
    /// Mirrors the config file's caches into the store (replacing earlier
    /// config entries) and applies everything. Blocking; call at start-up.
    pub(crate) fn sync_config(&self, configured: &[CacheConfig]) -> Result<(), ManageError> {
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
            let remote = RemoteRecord::mirroring(cache, now);
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

    /// Brings the served caches in line with the stored definitions.
    pub(super) async fn apply(&self) -> Result<(), ManageError> {
        let remotes = self.meta.remotes().await?;
        let distributions = self.meta.distributions().await?;
        self.apply_records(remotes, distributions);
        for cache in self.caches.list() {
            self.caches
                .storage()
                .enforce_cache_max(cache.base_path())
                .await;
        }
        Ok(())
    }

    /// Serves the caches `distributions` define. A cache whose definition
    /// is unchanged is kept as it is (the same `Arc<Cache>`); one that is
    /// new or changed is built afresh. A definition that cannot be set up
    /// (a bad CA, say) is skipped with an error log.
    fn apply_records(&self, remotes: Vec<RemoteRecord>, distributions: Vec<DistributionRecord>) {
        let remotes: BTreeMap<String, RemoteRecord> =
            remotes.into_iter().map(|r| (r.id.clone(), r)).collect();
        let served = self.caches.list();
        let mut caches = Vec::new();
        for d in distributions {
            let Some(remote) = remotes.get(&d.remote_id) else {
                continue;
            };
            let config = match self.configured_cache(&d) {
                Some(config) => Ok(config),
                None => CacheConfig::from_remote(&d.base_path, d.private, &remote.spec),
            };
            let unchanged = config
                .as_ref()
                .ok()
                .and_then(|config| served.iter().find(|c| c.config() == config));
            if let Some(cache) = unchanged {
                caches.push(cache.clone());
                continue;
            }
            match config.and_then(|config| {
                Cache::new(&config, self.global_tag_ttl, self.caches.storage().clone())
                    .map_err(|e| e.to_string())
            }) {
                Ok(cache) => caches.push(Arc::new(cache)),
                Err(e) => {
                    tracing::error!(distribution = %d.name, error = %e, "distribution not served")
                }
            }
        }
        self.caches.replace(caches);
    }

    /// The config file's own definition of a distribution it made.
    fn configured_cache(&self, d: &DistributionRecord) -> Option<CacheConfig> {
        if !d.from_config {
            return None;
        }
        let configured = self.configured.lock().unwrap_or_else(|p| p.into_inner());
        configured
            .iter()
            .find(|c| c.base_path == d.base_path)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::{Caches, Storage};

    fn manager(dir: &std::path::Path) -> Manager {
        let storage = Storage::open(dir).unwrap();
        let manager = Manager::new(Arc::new(Caches::new(storage, Vec::new())), 300);
        manager.sync_config(&[]).unwrap();
        manager
    }

    async fn remote(manager: &Manager, name: &str, url: &str) -> RemoteRecord {
        let mut r = RemoteRecord::new(uuid::Uuid::new_v4().to_string());
        r.name = name.into();
        r.spec.url = url.into();
        manager.save_remote(r).await.unwrap()
    }

    async fn distribution(manager: &Manager, base_path: &str, remote: &str) -> DistributionRecord {
        let mut d = DistributionRecord::new(uuid::Uuid::new_v4().to_string());
        d.name = base_path.into();
        d.base_path = base_path.into();
        d.remote_id = remote.into();
        manager.save_distribution(d).await.unwrap()
    }

    fn served(manager: &Manager, base_path: &str) -> Arc<Cache> {
        manager.caches.serving(base_path).unwrap()
    }

    #[tokio::test]
    async fn a_write_rebuilds_only_the_caches_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let manager = manager(dir.path());
        let one = remote(&manager, "one", "http://127.0.0.1:1/").await;
        let mut two = remote(&manager, "two", "http://127.0.0.1:2/").await;
        distribution(&manager, "a", &one.id).await;
        let b = distribution(&manager, "b", &two.id).await;
        let (a_before, b_before) = (served(&manager, "a"), served(&manager, "b"));

        // A new distribution adds its cache; the others stay as they were.
        let c = distribution(&manager, "c", &one.id).await;
        assert_eq!(manager.caches.list().len(), 3);
        assert!(Arc::ptr_eq(&served(&manager, "a"), &a_before));
        assert!(Arc::ptr_eq(&served(&manager, "b"), &b_before));

        // Changing remote two rebuilds b's cache only.
        two.spec.url = "http://127.0.0.1:3/".into();
        manager.save_remote(two).await.unwrap();
        let b_after = served(&manager, "b");
        assert!(!Arc::ptr_eq(&b_after, &b_before));
        assert_eq!(b_after.config().upstream.as_str(), "http://127.0.0.1:3/");
        assert!(Arc::ptr_eq(&served(&manager, "a"), &a_before));

        // A change to what is not served (a description) rebuilds nothing;
        // deleting a distribution drops its cache alone.
        let mut described = b.clone();
        described.description = Some("the second upstream".into());
        manager.save_distribution(described).await.unwrap();
        assert!(Arc::ptr_eq(&served(&manager, "b"), &b_after));
        manager.delete_distribution(&c.id).await.unwrap();
        let left: Vec<_> = manager.caches.list();
        assert_eq!(left.len(), 2);
        assert!(Arc::ptr_eq(&served(&manager, "a"), &a_before));
        assert!(Arc::ptr_eq(&served(&manager, "b"), &b_after));
    }
}
