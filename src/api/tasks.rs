//! `/pulp/api/v3/tasks/<id>/`: ferry finishes most work before answering, so
//! those tasks are `completed`; a prefetch runs in the background and shows
//! `running`, then `completed` or `failed`, with its progress. The shape is
//! what scripts and pulp-cli poll.

use serde::Serialize;
use serde_json::Value;
use warp::reply::Response as Reply;

use super::http::{ok, timestamp, ApiError};
use super::Api;
use crate::manage::PrefetchReport;

pub(super) const COLLECTION: &str = "/pulp/api/v3/tasks/";

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct AsyncOperationResponse {
    pub task: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TaskResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub state: &'static str,
    pub name: String,
    pub logging_cid: String,
    pub created_by: Option<String>,
    pub unblocked_at: String,
    pub started_at: String,
    /// Null while the task runs.
    pub finished_at: Option<String>,
    pub error: Option<Value>,
    pub worker: Option<String>,
    pub parent_task: Option<String>,
    pub child_tasks: Vec<String>,
    pub task_group: Option<String>,
    pub progress_reports: Vec<Value>,
    pub created_resources: Vec<String>,
    pub reserved_resources_record: Vec<String>,
    /// Pulp (core >= 3.86) returns what a task made here; ferry's tasks
    /// name it in `created_resources` only, so clients read that.
    pub result: Option<Value>,
}

pub(super) async fn one(api: &Api, id: &str) -> Result<Reply, ApiError> {
    if let Some(report) = api.manager.prefetch_report(id) {
        return prefetch(report);
    }
    let task = api.manager.task(id).await?;
    let at = timestamp(task.created);
    ok(&TaskResponse {
        pulp_href: format!("{COLLECTION}{}/", task.id),
        prn: format!("prn:core.task:{}", task.id),
        pulp_created: at.clone(),
        pulp_last_updated: at.clone(),
        state: "completed",
        name: task.name,
        logging_cid: task.id.clone(),
        created_by: None,
        unblocked_at: at.clone(),
        started_at: at.clone(),
        finished_at: Some(at),
        error: None,
        worker: None,
        parent_task: None,
        child_tasks: Vec::new(),
        task_group: None,
        progress_reports: Vec::new(),
        created_resources: task.created_resources,
        reserved_resources_record: Vec::new(),
        result: None,
    })
}

/// A prefetch: running or finished, with its progress and failures.
fn prefetch(report: PrefetchReport) -> Result<Reply, ApiError> {
    let created = timestamp(report.created);
    let finished = report.finished.map(timestamp);
    ok(&TaskResponse {
        pulp_href: format!("{COLLECTION}{}/", report.id),
        prn: format!("prn:core.task:{}", report.id),
        pulp_created: created.clone(),
        pulp_last_updated: finished.clone().unwrap_or_else(|| created.clone()),
        state: report.state(),
        name: "ferry.prefetch".into(),
        logging_cid: report.id.clone(),
        created_by: None,
        unblocked_at: created.clone(),
        started_at: created,
        finished_at: finished,
        error: report.error(),
        worker: None,
        parent_task: None,
        child_tasks: Vec::new(),
        task_group: None,
        progress_reports: report.progress_reports(),
        created_resources: Vec::new(),
        reserved_resources_record: Vec::new(),
        result: None,
    })
}
