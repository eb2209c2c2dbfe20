//! Tasks: ferry finishes its work before answering, and records a finished
//! task for scripts and pulp-cli to poll.

use super::{ManageError, Manager};
use crate::cache::blocking;
use crate::store::{unix_micros, TaskRecord};

/// Tasks are kept a day: long enough for any script polling one.
const TASK_RETENTION_MICROS: u64 = 24 * 3600 * 1_000_000;

impl Manager {
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
        let meta = self.meta.clone();
        let id = task.id.clone();
        blocking(move || meta.put_task(&task, TASK_RETENTION_MICROS)).await?;
        self.durable().await?;
        Ok(id)
    }

    pub async fn task(&self, id: &str) -> Result<TaskRecord, ManageError> {
        let (meta, id) = (self.meta.clone(), id.to_string());
        blocking(move || meta.task(&id))
            .await?
            .ok_or(ManageError::NotFound)
    }
}
