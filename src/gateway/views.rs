//! Response shapes shared by several resources: jobs and memories.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{API_PREFIX, error::ApiError};
use crate::store::jobs::TriggerType;
use crate::store::{jobs::Job, memories::MemoryRow};

// Here rather than in `changes`, which uses these views: the module graph stays a tree.
/// The operations a job's audit rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Merge,
    Archive,
    Promote,
    Summarize,
    Rollback,
}

impl Operation {
    pub const ALL: [Operation; 5] = [Self::Merge, Self::Archive, Self::Promote, Self::Summarize, Self::Rollback];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merge => "merge",
            Self::Archive => "archive",
            Self::Promote => "promote",
            Self::Summarize => "summarize",
            Self::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Counters {
    pub memories_merged: i32,
    pub memories_archived: i32,
    pub memories_promoted: i32,
    pub summaries_created: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub status: String,
    pub events: String,
    pub changes: String,
    /// The job's changes of one operation each.
    pub changes_by_operation: BTreeMap<String, String>,
    pub history: String,
}

impl JobLinks {
    pub fn of(job_id: Uuid, project_id: Uuid) -> Self {
        let changes = format!("{API_PREFIX}/consolidation/jobs/{job_id}/changes");
        Self {
            status: status_location(job_id),
            events: format!("{API_PREFIX}/consolidation/status/{job_id}/events"),
            changes_by_operation: Operation::ALL
                .iter()
                .map(|operation| (operation.as_str().to_owned(), format!("{changes}?operation={}", operation.as_str())))
                .collect(),
            changes,
            history: format!("{API_PREFIX}/consolidation/history/{project_id}"),
        }
    }
}

pub fn status_location(job_id: Uuid) -> String {
    format!("{API_PREFIX}/consolidation/status/{job_id}")
}

/// A job's state as the API shows it: the stored status, except that a completed job rolled
/// back since is `rolled_back`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    RolledBack,
}

impl JobState {
    pub fn of(job: &Job) -> Self {
        Self::from_row(&job.status, job.rolled_back_at.is_some())
    }

    /// From the stored status and whether the job was rolled back.
    pub fn from_row(status: &str, rolled_back: bool) -> Self {
        if rolled_back {
            return Self::RolledBack;
        }
        match status {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            // The status column's CHECK allows nothing else.
            _ => Self::Failed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub job_id: Uuid,
    pub project_id: Uuid,
    /// `rolled_back` once a rollback of the completed job has succeeded.
    pub status: JobState,
    #[schema(value_type = TriggerType)]
    pub trigger_type: String,
    /// Whether the job only planned (option `dry_run`): it changed nothing.
    pub dry_run: bool,
    /// queued, loading, planning, applying, done, failed or cancelled.
    pub phase: String,
    /// 0 to 1.
    pub progress: f32,
    /// The options the job runs with.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    pub counters: Counters,
    /// Active memories before and after the job.
    pub memories_before: Option<i32>,
    pub memories_after: Option<i32>,
    /// Memories the job created (consolidated and synthesis memories).
    pub created_memory_ids: Vec<Uuid>,
    pub error: Option<String>,
    pub attempts: i32,
    pub triggered_by: String,
    pub scheduled_for: Option<chrono::NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    /// The job's result summary (for a dry run, the whole plan); status only, not history.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub links: JobLinks,
}

impl JobView {
    pub fn new(job: Job, with_result: bool) -> Self {
        let status = JobState::of(&job);
        let result = job.result.map(|result| result.0);
        let created_memory_ids = result
            .as_ref()
            .and_then(|result| result.get("created_memory_ids"))
            .and_then(|ids| serde_json::from_value::<Vec<Uuid>>(ids.clone()).ok())
            .unwrap_or_default();
        let duration_seconds = match (job.started_at, job.completed_at) {
            (Some(started), Some(completed)) => Some((completed - started).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        let dry_run = job.options.0.get("dry_run").and_then(serde_json::Value::as_bool).unwrap_or(false);
        Self {
            links: JobLinks::of(job.id, job.project_id),
            status,
            dry_run,
            job_id: job.id,
            project_id: job.project_id,
            trigger_type: job.trigger_type,
            phase: job.phase,
            progress: job.progress,
            options: job.options.0,
            counters: Counters {
                memories_merged: job.memories_merged,
                memories_archived: job.memories_archived,
                memories_promoted: job.memories_promoted,
                summaries_created: job.summaries_created,
            },
            memories_before: job.memories_before,
            memories_after: job.memories_after,
            created_memory_ids,
            error: job.error_message,
            attempts: job.attempts,
            triggered_by: job.triggered_by,
            scheduled_for: job.scheduled_for,
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            rolled_back_at: job.rolled_back_at,
            duration_seconds,
            result: if with_result { result } else { None },
        }
    }
}

/// A memory as the API shows it: every column, and the embedding when asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryView {
    #[serde(flatten)]
    pub memory: MemoryRow,
    /// Only when asked for (`include_embedding=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_embedding: Option<Vec<f32>>,
}

impl MemoryView {
    pub fn new(memory: MemoryRow, with_embedding: bool) -> Result<Self, ApiError> {
        let context_embedding = if with_embedding { memory.embedding()? } else { None };
        Ok(Self { memory, context_embedding })
    }
}

pub use crate::interchange::memory_type_schema;

/// An answer with a Location header: 201 for a created resource, 202 for accepted work.
pub type Located<T> = (axum::http::StatusCode, [(axum::http::HeaderName, String); 1], axum::Json<T>);
