//! The worker processes alive (`workers`): each beats its row while it runs.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Result;

/// A worker not heard from for this long is not listed.
pub const LISTED_WITHIN_SECS: i64 = 300;

/// Records that the worker is alive (its row is created at its first beat).
pub async fn beat(db: impl PgExecutor<'_>, worker_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (worker_id) VALUES ($1)
         ON CONFLICT (worker_id) DO UPDATE SET last_heartbeat = now()",
    )
    .bind(worker_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes a worker that stopped.
pub async fn remove(db: impl PgExecutor<'_>, worker_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM workers WHERE worker_id = $1").bind(worker_id).execute(db).await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerRow {
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

/// The workers heard from in the last [`LISTED_WITHIN_SECS`], by id.
pub async fn alive(db: impl PgExecutor<'_>) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(
        "SELECT worker_id, started_at, last_heartbeat FROM workers
          WHERE last_heartbeat > now() - $1 * interval '1 second' ORDER BY worker_id",
    )
    .bind(LISTED_WITHIN_SECS as f64)
    .fetch_all(db)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunningJob {
    pub worker_id: String,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub started_at: Option<DateTime<Utc>>,
    pub progress: f32,
}

/// The running jobs of the projects in `scope` (all when None).
pub async fn running_jobs(db: impl PgExecutor<'_>, scope: Option<&[Uuid]>) -> Result<Vec<RunningJob>> {
    Ok(sqlx::query_as(
        "SELECT worker_id, id AS job_id, project_id, started_at, progress FROM consolidation_jobs
          WHERE status = 'running' AND worker_id IS NOT NULL AND ($1::uuid[] IS NULL OR project_id = ANY($1))
          ORDER BY started_at, id",
    )
    .bind(scope)
    .fetch_all(db)
    .await?)
}
