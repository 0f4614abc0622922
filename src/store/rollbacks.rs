//! Rollback requests and their results.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Rollback {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub status: String,
    pub reason: Option<String>,
    pub requested_by: String,
    pub memories_restored: i32,
    pub memories_deleted: i32,
    pub warnings: Json<Vec<String>>,
    pub conflicts: Json<Vec<Uuid>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Rollback {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "refused")
    }
}

/// Records the request; a repeated id returns the existing row unchanged.
pub async fn create(
    db: impl PgExecutor<'_>,
    id: Uuid,
    job_id: Uuid,
    project_id: Uuid,
    reason: Option<&str>,
    requested_by: &str,
) -> Result<Rollback> {
    Ok(sqlx::query_as(
        "WITH inserted AS (
             INSERT INTO consolidation_rollbacks (id, job_id, project_id, reason, requested_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING *)
         SELECT * FROM inserted UNION ALL SELECT * FROM consolidation_rollbacks WHERE id = $1",
    )
    .bind(id)
    .bind(job_id)
    .bind(project_id)
    .bind(reason)
    .bind(requested_by)
    .fetch_one(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Rollback>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_rollbacks WHERE id = $1").bind(id).fetch_optional(db).await?)
}

/// The job's successful rollback, if it has one.
pub async fn completed_for_job(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<Option<Rollback>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_rollbacks WHERE job_id = $1 AND status = 'completed' ORDER BY completed_at LIMIT 1")
        .bind(job_id)
        .fetch_optional(db)
        .await?)
}

/// Whether a rollback of the job is pending or running.
pub async fn active_for_job(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM consolidation_rollbacks WHERE job_id = $1 AND status IN ('pending', 'running'))",
    )
    .bind(job_id)
    .fetch_one(db)
    .await?)
}

pub async fn complete(
    db: impl PgExecutor<'_>,
    id: Uuid,
    memories_restored: i32,
    memories_deleted: i32,
    warnings: &[String],
) -> Result<()> {
    sqlx::query(
        "UPDATE consolidation_rollbacks
            SET status = 'completed', memories_restored = $2, memories_deleted = $3, warnings = $4,
                started_at = COALESCE(started_at, now()), completed_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(memories_restored)
    .bind(memories_deleted)
    .bind(Json(warnings))
    .execute(db)
    .await?;
    Ok(())
}

/// Ends the request without changing anything: `refused` (a rule said no) or `failed`.
pub async fn finish_unsuccessful(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
    error: &str,
    conflicts: &[Uuid],
) -> Result<()> {
    sqlx::query(
        "UPDATE consolidation_rollbacks
            SET status = $2, error = $3, conflicts = $4, completed_at = now()
          WHERE id = $1 AND status IN ('pending', 'running')",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(Json(conflicts))
    .execute(db)
    .await?;
    Ok(())
}
