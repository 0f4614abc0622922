//! Response shapes shared by several resources: jobs and memories.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::API_PREFIX;
use crate::{
    domain::{ChangeOperation, JobCounters, JobState, Phase, StoredMemory, TriggerType},
    store::jobs::Job,
};

/// The operations of a job's own audit rows, each linked from the job.
const JOB_OPERATIONS: [ChangeOperation; 5] = [
    ChangeOperation::Merge,
    ChangeOperation::Archive,
    ChangeOperation::Promote,
    ChangeOperation::Summarize,
    ChangeOperation::Rollback,
];

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
            changes_by_operation: JOB_OPERATIONS
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

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub job_id: Uuid,
    pub project_id: Uuid,
    /// `rolled_back` once a rollback of the completed job has succeeded.
    pub status: JobState,
    pub trigger_type: TriggerType,
    /// Whether the job only planned (option `dry_run`): it changed nothing.
    pub dry_run: bool,
    pub phase: Phase,
    /// 0 to 1.
    pub progress: f32,
    /// The options the job runs with.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    pub counters: JobCounters,
    /// Active memories before and after the job.
    pub memories_before: Option<i32>,
    pub memories_after: Option<i32>,
    /// Memories the job created (consolidated and synthesis memories).
    pub created_memory_ids: Vec<Uuid>,
    pub error: Option<String>,
    pub attempts: i32,
    pub triggered_by: String,
    /// The dry run whose plan this job applies (`POST /consolidation/jobs/{id}/apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_of: Option<Uuid>,
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
        let status = JobState::of(job.status, job.rolled_back_at.is_some());
        let created_memory_ids = job.created_memory_ids();
        let counters = job.counters();
        let dry_run = job.is_dry_run();
        let result = job.result.map(|result| result.0);
        let duration_seconds = match (job.started_at, job.completed_at) {
            (Some(started), Some(completed)) => Some((completed - started).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
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
            counters,
            memories_before: job.memories_before,
            memories_after: job.memories_after,
            created_memory_ids,
            error: job.error_message,
            attempts: job.attempts,
            triggered_by: job.triggered_by,
            plan_of: job.plan_of,
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
    pub memory: StoredMemory,
    /// Only when asked for (`include_embedding=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_embedding: Option<Vec<f32>>,
}

impl MemoryView {
    pub fn new(mut memory: StoredMemory, with_embedding: bool) -> Self {
        let context_embedding = if with_embedding { memory.embedding.take() } else { None };
        Self { memory, context_embedding }
    }
}

/// An answer with a Location header: 201 for a created resource, 202 for accepted work.
pub type Located<T> = (axum::http::StatusCode, [(axum::http::HeaderName, String); 1], axum::Json<T>);
