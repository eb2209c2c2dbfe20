//! Distributions: base paths served through a remote.

use std::collections::BTreeMap;

use serde_json::json;

use super::shared::distribution_object;
use super::{invalid, refuse_config_defined, ManageError, Manager};
use crate::config::overlaps;
use crate::domain::RepoName;
use crate::store::{unix_micros, DistributionRecord};

impl DistributionRecord {
    /// A distribution made through the API, before its fields are set.
    pub fn new(id: String) -> DistributionRecord {
        let now = unix_micros();
        DistributionRecord {
            id,
            name: String::new(),
            base_path: String::new(),
            remote_id: String::new(),
            private: false,
            description: None,
            hidden: false,
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
            from_config: false,
        }
    }
}

impl Manager {
    pub(crate) async fn distributions(&self) -> Result<Vec<DistributionRecord>, ManageError> {
        Ok(self.meta.distributions().await?)
    }

    pub(crate) async fn distribution(&self, id: &str) -> Result<DistributionRecord, ManageError> {
        self.distributions()
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or(ManageError::NotFound)
    }

    /// Creates or replaces a distribution after validating it whole; its
    /// cache is built (or rebuilt, if what it serves changed), no other.
    pub(crate) async fn save_distribution(
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
        let new = !existing.iter().any(|o| o.id == d.id);
        self.publish(&distribution_object(&d.id)?, &d, new).await?;
        self.meta.put_distribution(&d).await?;
        self.durable().await?;
        self.apply().await?;
        Ok(d)
    }

    pub(crate) async fn delete_distribution(&self, id: &str) -> Result<(), ManageError> {
        let _guard = self.changes.lock().await;
        let d = self.distribution(id).await?;
        refuse_config_defined(d.from_config)?;
        self.withdraw(&distribution_object(id)?).await?;
        self.meta.delete_distribution(id).await?;
        self.durable().await?;
        self.apply().await
    }
}
