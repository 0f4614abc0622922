//! One row per schedule tick: the tick's date makes it happen once.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Sweep {
    pub sweep_date: NaiveDate,
    pub scheduled_at: DateTime<Utc>,
    pub status: String,
    pub projects_considered: i32,
    pub projects_triggered: i32,
    pub job_ids: Vec<Uuid>,
    pub summary: Option<Json<serde_json::Value>>,
    /// Set once every triggered job id is recorded; the sweep cannot complete before.
    pub fanned_out_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Claims the tick; None when another replica (or an earlier delivery) claimed it first.
pub async fn start(
    db: impl PgExecutor<'_>,
    sweep_date: NaiveDate,
    scheduled_at: DateTime<Utc>,
) -> Result<Option<Sweep>> {
    Ok(sqlx::query_as(
        "INSERT INTO consolidation_sweeps (sweep_date, scheduled_at) VALUES ($1, $2)
         ON CONFLICT (sweep_date) DO NOTHING RETURNING *",
    )
    .bind(sweep_date)
    .bind(scheduled_at)
    .fetch_optional(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, sweep_date: NaiveDate) -> Result<Option<Sweep>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_sweeps WHERE sweep_date = $1")
        .bind(sweep_date)
        .fetch_optional(db)
        .await?)
}

pub async fn record_fan_out(
    db: impl PgExecutor<'_>,
    sweep_date: NaiveDate,
    considered: i32,
    job_ids: &[Uuid],
) -> Result<()> {
    sqlx::query(
        "UPDATE consolidation_sweeps SET projects_considered = $2, projects_triggered = $3, job_ids = $4,
                fanned_out_at = now()
          WHERE sweep_date = $1",
    )
    .bind(sweep_date)
    .bind(considered)
    .bind(job_ids.len() as i32)
    .bind(job_ids)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks the sweep completed with its summary; false if it was completed already.
pub async fn complete(db: impl PgExecutor<'_>, sweep_date: NaiveDate, summary: &serde_json::Value) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_sweeps SET status = 'completed', summary = $2, completed_at = now()
          WHERE sweep_date = $1 AND status = 'running'",
    )
    .bind(sweep_date)
    .bind(Json(summary))
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn running(db: impl PgExecutor<'_>) -> Result<Vec<Sweep>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_sweeps WHERE status = 'running' ORDER BY sweep_date")
        .fetch_all(db)
        .await?)
}

pub async fn latest_date(db: impl PgExecutor<'_>) -> Result<Option<NaiveDate>> {
    Ok(sqlx::query_scalar("SELECT max(sweep_date) FROM consolidation_sweeps").fetch_one(db).await?)
}
