//! Tasks: ferry finishes its work before answering, and records a finished
//! task for scripts and pulp-cli to poll.

use super::{ManageError, Manager};
use crate::store::{unix_micros, TaskRecord};

/// Tasks are kept a day: long enough for any script polling one.
const TASK_RETENTION_MICROS: u64 = 24 * 3600 * 1_000_000;

impl Manager {
    /// Records a finished task and returns its id.
    pub(crate) async fn finish_task(
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

    pub(crate) async fn task(&self, id: &str) -> Result<TaskRecord, ManageError> {
        self.meta.task(id).await?.ok_or(ManageError::NotFound)
    }
}
