//! Dry runs' whole plans (`consolidation_plans`), kept for `POST /consolidation/jobs/{id}/apply`
//! for as long as a job can be rolled back.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Result, StoreError};
use crate::domain::Plan;

/// How long a dry run's plan can be applied: the rollback window.
pub const APPLY_WINDOW_DAYS: i32 = 7;

/// Stores a dry run's plan and drops the project's plans older than the window.
pub async fn save(conn: &mut sqlx::PgConnection, job_id: Uuid, project_id: Uuid, plan: &Plan) -> Result<u64> {
    let bytes =
        serde_json::to_vec(plan).map_err(|error| StoreError::Corrupt(format!("plan of job {job_id}: {error}")))?;
    sqlx::query(
        "DELETE FROM consolidation_plans WHERE project_id = $1 AND created_at < now() - make_interval(days => $2)",
    )
    .bind(project_id)
    .bind(APPLY_WINDOW_DAYS)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO consolidation_plans (job_id, project_id, plan) VALUES ($1, $2, $3)")
        .bind(job_id)
        .bind(project_id)
        .bind(&bytes)
        .execute(&mut *conn)
        .await?;
    Ok(bytes.len() as u64)
}

/// A dry run's plan still inside the window, and the bytes it took.
pub async fn load(db: impl PgExecutor<'_>, project_id: Uuid, job_id: Uuid) -> Result<Option<(Plan, u64)>> {
    let bytes: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT plan FROM consolidation_plans
          WHERE job_id = $1 AND project_id = $2 AND created_at >= now() - make_interval(days => $3)",
    )
    .bind(job_id)
    .bind(project_id)
    .bind(APPLY_WINDOW_DAYS)
    .fetch_optional(db)
    .await?;
    bytes
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map(|plan| (plan, bytes.len() as u64))
                .map_err(|error| StoreError::Corrupt(format!("stored plan of job {job_id}: {error}")))
        })
        .transpose()
}

/// Whether the dry run's plan can still be applied (stored and inside the window).
pub async fn is_kept(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM consolidation_plans
                         WHERE job_id = $1 AND created_at >= now() - make_interval(days => $2))",
    )
    .bind(job_id)
    .bind(APPLY_WINDOW_DAYS)
    .fetch_one(db)
    .await?)
}

/// The job (other than `except`) that applies or applied the dry run's plan: pending, running or
/// completed.
pub async fn applied_by(db: impl PgExecutor<'_>, dry_run_id: Uuid, except: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM consolidation_jobs
          WHERE plan_of = $1 AND id <> $2 AND status IN ('pending', 'running', 'completed')
          ORDER BY created_at LIMIT 1",
    )
    .bind(dry_run_id)
    .bind(except)
    .fetch_optional(db)
    .await?)
}
