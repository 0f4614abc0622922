//! One row per schedule tick: the tick's instant makes it happen once.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;
use crate::domain::SweepStatus;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Sweep {
    pub tick: DateTime<Utc>,
    /// The tick's UTC date.
    pub sweep_date: NaiveDate,
    pub scheduled_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: SweepStatus,
    pub projects_considered: i32,
    pub projects_triggered: i32,
    pub job_ids: Vec<Uuid>,
    pub summary: Option<Json<serde_json::Value>>,
    /// Set once every triggered job id is recorded; the sweep cannot complete before.
    pub fanned_out_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The last sign of life of the fan-out.
    pub progress_at: Option<DateTime<Utc>>,
}

/// Claims the tick; None when another replica (or an earlier delivery) claimed it first.
pub async fn start(db: impl PgExecutor<'_>, tick: DateTime<Utc>, scheduled_at: DateTime<Utc>) -> Result<Option<Sweep>> {
    Ok(sqlx::query_as(
        "INSERT INTO consolidation_sweeps (tick, sweep_date, scheduled_at) VALUES ($1, $2, $3)
         ON CONFLICT (tick) DO NOTHING RETURNING *",
    )
    .bind(tick)
    .bind(tick.date_naive())
    .bind(scheduled_at)
    .fetch_optional(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, tick: DateTime<Utc>) -> Result<Option<Sweep>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_sweeps WHERE tick = $1").bind(tick).fetch_optional(db).await?)
}

pub async fn record_fan_out(
    db: impl PgExecutor<'_>,
    tick: DateTime<Utc>,
    considered: i32,
    job_ids: &[Uuid],
) -> Result<()> {
    sqlx::query(
        "UPDATE consolidation_sweeps SET projects_considered = $2, projects_triggered = $3, job_ids = $4,
                fanned_out_at = now()
          WHERE tick = $1",
    )
    .bind(tick)
    .bind(considered)
    .bind(job_ids.len() as i32)
    .bind(job_ids)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks the sweep completed with its summary; false if it was completed already.
pub async fn complete(db: impl PgExecutor<'_>, tick: DateTime<Utc>, summary: &serde_json::Value) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_sweeps SET status = 'completed', summary = $2, completed_at = now()
          WHERE tick = $1 AND status = 'running'",
    )
    .bind(tick)
    .bind(Json(summary))
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn running(db: impl PgExecutor<'_>) -> Result<Vec<Sweep>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_sweeps WHERE status = 'running' ORDER BY tick")
        .fetch_all(db)
        .await?)
}

pub async fn latest_tick(db: impl PgExecutor<'_>) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar("SELECT max(tick) FROM consolidation_sweeps").fetch_one(db).await?)
}

/// A sign of life from the fan-out, so maintenance does not take a long one for a dead one.
pub async fn record_progress(db: impl PgExecutor<'_>, tick: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE consolidation_sweeps SET progress_at = now() WHERE tick = $1").bind(tick).execute(db).await?;
    Ok(())
}
