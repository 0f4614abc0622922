//! Projects and their consolidation settings.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::{Result, StoreError};
use crate::domain::{JobState, JobStatus, MemoryCounts, TriggerType, UnknownVariant};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub consolidation_enabled: bool,
    pub consolidation_threshold: i32,
    pub consolidation_options: Json<serde_json::Value>,
    pub embedding_dim: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: Uuid,
    pub name: String,
    pub consolidation_enabled: bool,
    pub consolidation_threshold: i32,
    pub consolidation_options: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct ConsolidationSettings {
    pub enabled: bool,
    pub threshold: i32,
    pub options: serde_json::Value,
}

/// A project the sweep considers: enabled, with no active job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SweepCandidate {
    pub id: Uuid,
    pub consolidation_threshold: i32,
    pub active_memories: i64,
}

pub async fn create(db: impl PgExecutor<'_>, project: &NewProject) -> Result<Project> {
    Ok(sqlx::query_as(
        "INSERT INTO projects (id, name, consolidation_enabled, consolidation_threshold, consolidation_options)
         VALUES ($1, $2, $3, $4, $5) RETURNING *",
    )
    .bind(project.id)
    .bind(&project.name)
    .bind(project.consolidation_enabled)
    .bind(project.consolidation_threshold)
    .bind(Json(&project.consolidation_options))
    .fetch_one(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Project>> {
    Ok(sqlx::query_as("SELECT * FROM projects WHERE id = $1").bind(id).fetch_optional(db).await?)
}

pub async fn update_settings(
    db: impl PgExecutor<'_>,
    id: Uuid,
    settings: &ConsolidationSettings,
) -> Result<Option<Project>> {
    Ok(sqlx::query_as(
        "UPDATE projects SET consolidation_enabled = $2, consolidation_threshold = $3,
                consolidation_options = $4, updated_at = now()
         WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(settings.enabled)
    .bind(settings.threshold)
    .bind(Json(&settings.options))
    .fetch_optional(db)
    .await?)
}

/// Fixes the project's embedding dimension on first use and returns the dimension in force.
pub async fn fix_embedding_dim(db: impl PgExecutor<'_>, id: Uuid, dim: i32) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "UPDATE projects SET embedding_dim = COALESCE(embedding_dim, $2), updated_at = now()
         WHERE id = $1 RETURNING embedding_dim",
    )
    .bind(id)
    .bind(dim)
    .fetch_optional(db)
    .await?
    .flatten())
}

pub async fn active_memory_count(db: impl PgExecutor<'_>, id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM task_memories WHERE project_id = $1 AND NOT is_archived AND NOT is_duplicate",
    )
    .bind(id)
    .fetch_one(db)
    .await?)
}

/// Enabled projects without an active job, with their active memory counts.
pub async fn sweep_candidates(db: impl PgExecutor<'_>) -> Result<Vec<SweepCandidate>> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.consolidation_threshold,
                (SELECT count(*) FROM task_memories m
                  WHERE m.project_id = p.id AND NOT m.is_archived AND NOT m.is_duplicate) AS active_memories
         FROM projects p
         WHERE p.consolidation_enabled
           AND NOT EXISTS (SELECT 1 FROM consolidation_jobs j
                            WHERE j.project_id = p.id AND j.status IN ('pending', 'running'))
         ORDER BY p.id",
    )
    .fetch_all(db)
    .await?)
}

pub async fn count_enabled(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM projects WHERE consolidation_enabled").fetch_one(db).await?)
}

/// Everything a trigger decides on, in one round trip: the project, its active memory count,
/// and the durations (seconds) and sizes of its `recent` latest completed jobs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriggerContext {
    #[sqlx(flatten)]
    pub project: Project,
    pub active_memories: i64,
    pub recent_seconds: Vec<f64>,
    pub recent_sizes: Vec<i32>,
}

pub async fn trigger_context(db: impl PgExecutor<'_>, id: Uuid, recent: i64) -> Result<Option<TriggerContext>> {
    Ok(sqlx::query_as(
        "SELECT p.*,
                (SELECT count(*) FROM task_memories m
                  WHERE m.project_id = p.id AND NOT m.is_archived AND NOT m.is_duplicate) AS active_memories,
                ARRAY(SELECT EXTRACT(EPOCH FROM j.completed_at - j.started_at)::float8 FROM consolidation_jobs j
                       WHERE j.project_id = p.id AND j.status = 'completed' AND j.started_at IS NOT NULL
                       ORDER BY j.created_at DESC, j.id DESC LIMIT $2) AS recent_seconds,
                ARRAY(SELECT COALESCE(j.memories_before, 0) FROM consolidation_jobs j
                       WHERE j.project_id = p.id AND j.status = 'completed' AND j.started_at IS NOT NULL
                       ORDER BY j.created_at DESC, j.id DESC LIMIT $2) AS recent_sizes
           FROM projects p WHERE p.id = $1",
    )
    .bind(id)
    .bind(recent)
    .fetch_optional(db)
    .await?)
}

/// The project row, locked until the transaction ends.
pub async fn get_for_update(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Project>> {
    Ok(sqlx::query_as("SELECT * FROM projects WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(&mut *conn).await?)
}

/// A project with its memory counts and its latest job, as `GET /projects` lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectSummary {
    #[sqlx(flatten)]
    pub project: Project,
    /// Neither archived nor a duplicate.
    pub active_memories: i64,
    /// Marked a duplicate of another memory (archived or not).
    pub duplicate_memories: i64,
    /// Archived and not a duplicate.
    pub archived_memories: i64,
    pub last_job_id: Option<Uuid>,
    pub last_job_status: Option<String>,
    pub last_job_trigger_type: Option<String>,
    pub last_job_dry_run: Option<bool>,
    pub last_job_created_at: Option<DateTime<Utc>>,
    pub last_job_completed_at: Option<DateTime<Utc>>,
    pub last_job_rolled_back_at: Option<DateTime<Utc>>,
}

impl ProjectSummary {
    /// The last job's state and trigger type, parsed; None when the project has had no job.
    pub fn last_job_kinds(&self) -> Result<Option<(JobState, TriggerType)>> {
        let (Some(status), Some(trigger_type)) = (&self.last_job_status, &self.last_job_trigger_type) else {
            return Ok(None);
        };
        let corrupt = |error: UnknownVariant| StoreError::Corrupt(error.to_string());
        let status: JobStatus = status.parse().map_err(corrupt)?;
        let trigger_type: TriggerType = trigger_type.parse().map_err(corrupt)?;
        Ok(Some((JobState::of(status, self.last_job_rolled_back_at.is_some()), trigger_type)))
    }
}

/// One page of projects in id order: those in `only` (all when None), after `after`. The counts
/// are the ones triggers keep (`project_memory_counts`): a page costs its rows, whatever the
/// projects hold.
pub async fn list_summaries(
    db: impl PgExecutor<'_>,
    only: Option<&[Uuid]>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ProjectSummary>> {
    Ok(sqlx::query_as(
        "SELECT p.*, COALESCE(c.active, 0) AS active_memories, COALESCE(c.duplicates, 0) AS duplicate_memories,
                COALESCE(c.archived, 0) AS archived_memories,
                j.id AS last_job_id, j.status AS last_job_status, j.trigger_type AS last_job_trigger_type,
                COALESCE((j.options ->> 'dry_run')::boolean, false) AS last_job_dry_run,
                j.created_at AS last_job_created_at, j.completed_at AS last_job_completed_at,
                j.rolled_back_at AS last_job_rolled_back_at
           FROM projects p
           LEFT JOIN project_memory_counts c ON c.project_id = p.id
           LEFT JOIN LATERAL (
                SELECT * FROM consolidation_jobs j WHERE j.project_id = p.id
                 ORDER BY j.created_at DESC, j.id DESC LIMIT 1) j ON true
          WHERE ($1::uuid[] IS NULL OR p.id = ANY($1)) AND ($2::uuid IS NULL OR p.id > $2)
          ORDER BY p.id LIMIT $3",
    )
    .bind(only)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A project's memories by state now (the counts triggers keep).
pub async fn memory_counts(db: impl PgExecutor<'_>, id: Uuid) -> Result<MemoryCounts> {
    let counts: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT active, duplicates, archived FROM project_memory_counts WHERE project_id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    let (active, duplicate, archived) = counts.unwrap_or_default();
    Ok(MemoryCounts { active, duplicate, archived })
}

/// What an operator checks first about a project.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttentionRow {
    pub id: Uuid,
    pub name: String,
    pub consolidation_enabled: bool,
    pub consolidation_threshold: i32,
    pub active: i64,
    pub open_reviews: i64,
    pub failed_jobs_7d: i64,
    pub last_job_status: Option<String>,
    pub last_job_rolled_back_at: Option<DateTime<Utc>>,
}

/// Every project in `only` (all when None) with its open reviews, the jobs that failed in the
/// last seven days and its last job's status, in id order.
pub async fn attention(db: impl PgExecutor<'_>, only: Option<&[Uuid]>) -> Result<Vec<AttentionRow>> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.name, p.consolidation_enabled, p.consolidation_threshold, COALESCE(c.active, 0) AS active,
                (SELECT count(*) FROM consolidation_reviews r WHERE r.project_id = p.id AND r.status = 'open')
                    AS open_reviews,
                (SELECT count(*) FROM consolidation_jobs f
                  WHERE f.project_id = p.id AND f.status = 'failed' AND f.created_at > now() - interval '7 days')
                    AS failed_jobs_7d,
                j.status AS last_job_status, j.rolled_back_at AS last_job_rolled_back_at
           FROM projects p
           LEFT JOIN project_memory_counts c ON c.project_id = p.id
           LEFT JOIN LATERAL (
                SELECT status, rolled_back_at FROM consolidation_jobs j WHERE j.project_id = p.id
                 ORDER BY j.created_at DESC, j.id DESC LIMIT 1) j ON true
          WHERE $1::uuid[] IS NULL OR p.id = ANY($1)
          ORDER BY p.id",
    )
    .bind(only)
    .fetch_all(db)
    .await?)
}
