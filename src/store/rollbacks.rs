//! Rollback requests and their results.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;
pub use crate::domain::RollbackStatus;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Rollback {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: RollbackStatus,
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
    pub published_seq: Option<i64>,
    pub failures: i32,
    /// Asked to roll back the standing later jobs first.
    pub cascade: bool,
    /// The later jobs it rolled back first (cascade), or the standing ones it was refused for.
    pub later_jobs: Json<Vec<Uuid>>,
}

impl Rollback {
    pub fn is_finished(&self) -> bool {
        matches!(self.status, RollbackStatus::Completed | RollbackStatus::Failed | RollbackStatus::Refused)
    }
}

/// Records the request; a repeated id returns the existing row unchanged.
pub async fn create(
    db: &sqlx::PgPool,
    id: Uuid,
    job_id: Uuid,
    project_id: Uuid,
    reason: Option<&str>,
    requested_by: &str,
    cascade: bool,
) -> Result<Rollback> {
    match insert(db, id, job_id, project_id, reason, requested_by, cascade).await {
        Err(super::StoreError::Database(sqlx::Error::RowNotFound)) => {
            get(db, id).await?.ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
        }
        other => other,
    }
}

async fn insert(
    db: impl PgExecutor<'_>,
    id: Uuid,
    job_id: Uuid,
    project_id: Uuid,
    reason: Option<&str>,
    requested_by: &str,
    cascade: bool,
) -> Result<Rollback> {
    Ok(sqlx::query_as(
        "WITH inserted AS (
             INSERT INTO consolidation_rollbacks (id, job_id, project_id, reason, requested_by, cascade)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING *)
         SELECT * FROM inserted UNION ALL SELECT * FROM consolidation_rollbacks WHERE id = $1",
    )
    .bind(id)
    .bind(job_id)
    .bind(project_id)
    .bind(reason)
    .bind(requested_by)
    .bind(cascade)
    .fetch_optional(db)
    .await?
    // A concurrent insert of the same id committed after this statement's snapshot was taken.
    .ok_or(sqlx::Error::RowNotFound)?)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Rollback>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_rollbacks WHERE id = $1").bind(id).fetch_optional(db).await?)
}

/// The successful rollback that undid the job: its own, or an older job's that cascaded to it.
pub async fn completed_for_job(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<Option<Rollback>> {
    Ok(sqlx::query_as(
        "SELECT * FROM consolidation_rollbacks
          WHERE (job_id = $1 OR later_jobs ? $1::text) AND status = 'completed'
          ORDER BY completed_at LIMIT 1",
    )
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

/// Names the later jobs the rollback took with it, or was refused for.
pub async fn record_later_jobs(db: impl PgExecutor<'_>, id: Uuid, later_jobs: &[Uuid]) -> Result<()> {
    sqlx::query("UPDATE consolidation_rollbacks SET later_jobs = $2 WHERE id = $1")
        .bind(id)
        .bind(Json(later_jobs))
        .execute(db)
        .await?;
    Ok(())
}

/// Ends the request without changing anything: `refused` (a rule said no) or `failed`; false
/// when it had ended already.
pub async fn finish_unsuccessful(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: RollbackStatus,
    error: &str,
    conflicts: &[Uuid],
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_rollbacks
            SET status = $2, error = $3, conflicts = $4, completed_at = now()
          WHERE id = $1 AND status IN ('pending', 'running')",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(error)
    .bind(Json(conflicts))
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// The rollback row, locked until the transaction ends: a redelivery waits for the run that
/// holds it and then finds it finished.
pub async fn lock(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Rollback>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_rollbacks WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Rollbacks still pending `grace` after they were requested or last re-published.
pub async fn stale_pending(db: impl PgExecutor<'_>, grace: std::time::Duration) -> Result<Vec<Rollback>> {
    Ok(sqlx::query_as(
        "SELECT * FROM consolidation_rollbacks
          WHERE status IN ('pending', 'running')
            AND COALESCE(published_at, created_at) < now() - $1 * interval '1 millisecond'
          ORDER BY created_at",
    )
    .bind(grace.as_millis() as f64)
    .fetch_all(db)
    .await?)
}

/// Records that maintenance published the rollback's command again, stored at `sequence`.
pub async fn mark_published(db: impl PgExecutor<'_>, id: Uuid, sequence: u64) -> Result<()> {
    sqlx::query("UPDATE consolidation_rollbacks SET published_at = now(), published_seq = $2 WHERE id = $1")
        .bind(id)
        .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
        .execute(db)
        .await?;
    Ok(())
}

/// Counts one delivery that failed for a reason other than an outage.
pub async fn count_failure(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar(
        "UPDATE consolidation_rollbacks SET failures = failures + 1 WHERE id = $1 RETURNING failures",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}
