//! Consolidation jobs: creation, the worker's lease, progress and the end states.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::{Result, violated_constraint};
use crate::domain::{EventResult, JobResult, MemoryCounts};
pub use crate::domain::{JobCounters, JobStatus, Phase, TriggerType};

pub const ONE_ACTIVE_PER_PROJECT: &str = "consolidation_jobs_one_active_per_project";

/// The job's project's memories by state now, as `counts_before` and `counts_after` hold them.
const COUNTS_NOW: &str = "COALESCE((SELECT jsonb_build_object('active', c.active, 'duplicate', c.duplicates,
                                                             'archived', c.archived)
                                      FROM project_memory_counts c WHERE c.project_id = consolidation_jobs.project_id),
                                   '{\"active\": 0, \"duplicate\": 0, \"archived\": 0}')";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    #[sqlx(try_from = "String")]
    pub trigger_type: TriggerType,
    pub options: Json<serde_json::Value>,
    pub memories_merged: i32,
    pub memories_archived: i32,
    pub memories_promoted: i32,
    pub summaries_created: i32,
    pub progress: f32,
    #[sqlx(try_from = "String")]
    pub phase: Phase,
    pub memories_before: Option<i32>,
    pub memories_after: Option<i32>,
    pub attempts: i32,
    pub worker_id: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub scheduled_for: Option<NaiveDate>,
    /// The sweep tick that created a scheduled job.
    pub sweep_tick: Option<DateTime<Utc>>,
    /// When maintenance last published the job's command again, and where the stream stored it.
    pub published_at: Option<DateTime<Utc>>,
    pub published_seq: Option<i64>,
    /// Deliveries that failed for a reason other than an outage.
    pub failures: i32,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub result: Option<Json<serde_json::Value>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub triggered_by: String,
    pub created_at: DateTime<Utc>,
    /// When someone asked the job to stop at its next phase boundary, and who.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub cancel_requested_by: Option<String>,
    /// When the purge removed the job's audit rows: it can no longer be rolled back.
    pub audit_purged_at: Option<DateTime<Utc>>,
    /// The dry run whose stored plan this job applies instead of planning.
    pub plan_of: Option<Uuid>,
}

impl Job {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    pub fn counters(&self) -> JobCounters {
        JobCounters {
            memories_merged: self.memories_merged,
            memories_archived: self.memories_archived,
            memories_promoted: self.memories_promoted,
            summaries_created: self.summaries_created,
        }
    }

    /// The typed result; None when there is none or it is not one this version reads.
    pub fn typed_result(&self) -> Option<JobResult> {
        self.result.as_ref().and_then(|result| JobResult::deserialize(&result.0).ok())
    }

    /// The result for an event: typed, or (written by an earlier version) as stored.
    pub fn event_result(&self) -> Option<EventResult> {
        match self.typed_result() {
            Some(result) => Some(EventResult::Whole(Box::new(result))),
            None => self.result.as_ref().map(|result| EventResult::Stored(result.0.clone())),
        }
    }

    /// The memories the job created, as its result lists them.
    pub fn created_memory_ids(&self) -> Vec<Uuid> {
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(default)]
            created_memory_ids: Vec<Uuid>,
        }
        self.result
            .as_ref()
            .and_then(|result| Created::deserialize(&result.0).ok())
            .map(|created| created.created_memory_ids)
            .unwrap_or_default()
    }

    /// Whether the stored result is a plan only (a dry run's), whatever else it holds.
    pub fn result_is_dry_run(&self) -> bool {
        self.result.as_ref().and_then(|result| result.0.get("dry_run")).and_then(serde_json::Value::as_bool)
            == Some(true)
    }

    /// Whether the job only planned (option `dry_run`).
    pub fn is_dry_run(&self) -> bool {
        self.options.0.get("dry_run").and_then(serde_json::Value::as_bool).unwrap_or(false)
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub project_id: Uuid,
    pub trigger_type: TriggerType,
    pub options: serde_json::Value,
    pub triggered_by: String,
    /// The sweep tick of a scheduled job.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The dry run whose stored plan the job applies.
    pub plan_of: Option<Uuid>,
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created(Job),
    /// A job with this id exists already (a repeated command).
    Existing(Job),
    /// The project has another pending or running job.
    ProjectBusy {
        active_job_id: Option<Uuid>,
    },
}

pub async fn create(db: &sqlx::PgPool, job: &NewJob) -> Result<CreateOutcome> {
    let inserted = sqlx::query_as::<_, Job>(
        "INSERT INTO consolidation_jobs (id, project_id, trigger_type, options, triggered_by, scheduled_for, sweep_tick, plan_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING *",
    )
    .bind(job.id)
    .bind(job.project_id)
    .bind(job.trigger_type.as_str())
    .bind(Json(&job.options))
    .bind(&job.triggered_by)
    .bind(job.scheduled_for.map(|tick| tick.date_naive()))
    .bind(job.scheduled_for)
    .bind(job.plan_of)
    .fetch_optional(db)
    .await;
    match inserted {
        Ok(Some(created)) => Ok(CreateOutcome::Created(created)),
        Ok(None) => match get(db, job.id).await? {
            Some(existing) => Ok(CreateOutcome::Existing(existing)),
            None => Err(sqlx::Error::RowNotFound.into()),
        },
        Err(error) if violated_constraint(&error) == Some(ONE_ACTIVE_PER_PROJECT) => {
            Ok(CreateOutcome::ProjectBusy { active_job_id: active_for_project(db, job.project_id).await? })
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Job>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_jobs WHERE id = $1").bind(id).fetch_optional(db).await?)
}

pub async fn active_for_project(db: impl PgExecutor<'_>, project_id: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM consolidation_jobs WHERE project_id = $1 AND status IN ('pending', 'running')",
    )
    .bind(project_id)
    .fetch_optional(db)
    .await?)
}

#[derive(Debug)]
pub enum ClaimOutcome {
    Claimed(Job),
    /// Completed or failed already: a redelivery with nothing left to do.
    Finished(Job),
    /// Another worker holds a live lease on it.
    HeldElsewhere(Job),
    NotFound,
}

/// Takes the job for `worker_id`: a pending job, or a running one whose lease went stale.
pub async fn claim(db: &sqlx::PgPool, id: Uuid, worker_id: &str, lease: Duration) -> Result<ClaimOutcome> {
    let claimed = sqlx::query_as::<_, Job>(&format!(
        "UPDATE consolidation_jobs
            SET status = 'running', worker_id = $2, heartbeat_at = now(), attempts = attempts + 1,
                started_at = COALESCE(started_at, now()), phase = 'loading', progress = 0, error_message = NULL,
                counts_before = {COUNTS_NOW}
          WHERE id = $1
            AND (status = 'pending'
                 OR (status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < now() - $3 * interval '1 millisecond')))
          RETURNING *"
    ))
    .bind(id)
    .bind(worker_id)
    .bind(lease.as_millis() as f64)
    .fetch_optional(db)
    .await?;
    if let Some(job) = claimed {
        return Ok(ClaimOutcome::Claimed(job));
    }
    Ok(match get(db, id).await? {
        None => ClaimOutcome::NotFound,
        Some(job) if job.is_finished() => ClaimOutcome::Finished(job),
        Some(job) => ClaimOutcome::HeldElsewhere(job),
    })
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    Renewed,
    /// The job ended (this worker's own commit may have ended it): nothing to keep alive.
    Finished,
    /// Another worker holds the job now.
    Lost,
}

/// Renews the lease and records progress.
pub async fn heartbeat(
    db: impl PgExecutor<'_>,
    id: Uuid,
    worker_id: &str,
    phase: Phase,
    progress: f32,
) -> Result<Heartbeat> {
    let (renewed, status): (bool, Option<String>) = sqlx::query_as(
        "WITH renewed AS (
             UPDATE consolidation_jobs SET heartbeat_at = now(), phase = $3, progress = GREATEST(progress, $4)
              WHERE id = $1 AND worker_id = $2 AND status = 'running' RETURNING id)
         SELECT EXISTS (SELECT 1 FROM renewed), (SELECT status FROM consolidation_jobs WHERE id = $1)",
    )
    .bind(id)
    .bind(worker_id)
    .bind(phase.as_str())
    .bind(progress.clamp(0.0, 1.0))
    .fetch_one(db)
    .await?;
    let finished = status.map(|status| status.parse::<JobStatus>()).transpose().map_err(corrupt)?;
    Ok(match (renewed, finished) {
        (true, _) => Heartbeat::Renewed,
        (false, Some(status)) if status.is_finished() => Heartbeat::Finished,
        (false, _) => Heartbeat::Lost,
    })
}

/// Completes the job if `worker_id` still holds it; false otherwise (the caller must roll back).
pub async fn complete(
    db: impl PgExecutor<'_>,
    id: Uuid,
    worker_id: &str,
    counters: &JobCounters,
    memories_before: i32,
    memories_after: i32,
    result: &(impl serde::Serialize + Sync),
) -> Result<bool> {
    // In the apply's transaction: the counts read are the ones its writes left.
    let updated = sqlx::query(&format!(
        "UPDATE consolidation_jobs
            SET status = 'completed', phase = 'done', progress = 1, completed_at = now(), heartbeat_at = now(),
                memories_merged = $3, memories_archived = $4, memories_promoted = $5, summaries_created = $6,
                memories_before = $7, memories_after = $8, result = $9, counts_after = {COUNTS_NOW}
          WHERE id = $1 AND worker_id = $2 AND status = 'running'"
    ))
    .bind(id)
    .bind(worker_id)
    .bind(counters.memories_merged)
    .bind(counters.memories_archived)
    .bind(counters.memories_promoted)
    .bind(counters.summaries_created)
    .bind(memories_before)
    .bind(memories_after)
    .bind(Json(result))
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Fails a job that is not finished yet; false if it had finished already.
pub async fn fail(db: impl PgExecutor<'_>, id: Uuid, error: &str) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_jobs SET status = 'failed', phase = 'failed', completed_at = now(), error_message = $2
          WHERE id = $1 AND status IN ('pending', 'running')",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn mark_rolled_back(db: impl PgExecutor<'_>, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE consolidation_jobs SET rolled_back_at = now() WHERE id = $1 AND rolled_back_at IS NULL")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<JobStatus>,
    pub trigger_type: Option<TriggerType>,
    /// Some(true): only jobs rolled back since; Some(false): only jobs not rolled back.
    pub rolled_back: Option<bool>,
    /// Cursor: (created_at, id) of the previous page's last job.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// Jobs whose id begins with it, or whose error message holds it (any case).
    pub search: Option<String>,
    pub limit: i64,
}

/// `text` matched literally by LIKE (its wildcards and the escape character escaped).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Jobs of a project, newest first, in a stable order.
/// Every column of a job row but its result (a dry run's can hold the whole plan).
const COLUMNS_BUT_RESULT: &str = "id, project_id, status, trigger_type, options, memories_merged, memories_archived,
    memories_promoted, summaries_created, progress, phase, memories_before, memories_after, attempts, worker_id,
    heartbeat_at, scheduled_for, sweep_tick, published_at, published_seq, failures, rolled_back_at, started_at,
    completed_at, error_message, triggered_by, created_at, cancel_requested_at, cancel_requested_by, audit_purged_at, plan_of";

/// A page of a project's jobs, newest first. A row's `result` holds only what a history row
/// shows (the ids of the memories the job created): the rest never leaves PostgreSQL.
pub async fn history(db: impl PgExecutor<'_>, project_id: Uuid, filter: &HistoryFilter) -> Result<Vec<Job>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS_BUT_RESULT},
                CASE WHEN result IS NULL THEN NULL
                     ELSE jsonb_build_object('created_memory_ids', COALESCE(result -> 'created_memory_ids', '[]'))
                END AS result
           FROM consolidation_jobs
          WHERE project_id = $1
            AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3)
            AND ($4::text IS NULL OR status = $4) AND ($5::text IS NULL OR trigger_type = $5)
            AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))
            AND ($9::boolean IS NULL OR (rolled_back_at IS NOT NULL) = $9)
            AND ($10::text IS NULL OR id::text LIKE lower($10) || '%' OR error_message ILIKE '%' || $10 || '%')
          ORDER BY created_at DESC, id DESC LIMIT $8"
    ))
    .bind(project_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.status.map(JobStatus::as_str))
    .bind(filter.trigger_type.map(TriggerType::as_str))
    .bind(filter.before.map(|(at, _)| at))
    .bind(filter.before.map(|(_, id)| id))
    .bind(filter.limit)
    .bind(filter.rolled_back)
    .bind(filter.search.as_deref().map(like_literal))
    .fetch_all(db)
    .await?)
}

/// Jobs left pending longer than `grace` since they were created or last re-published: their
/// command may never have been published, or may be gone.
pub async fn stale_pending(db: impl PgExecutor<'_>, grace: Duration) -> Result<Vec<Job>> {
    Ok(sqlx::query_as(
        "SELECT * FROM consolidation_jobs
          WHERE status = 'pending' AND COALESCE(published_at, created_at) < now() - $1 * interval '1 millisecond'
          ORDER BY created_at",
    )
    .bind(grace.as_millis() as f64)
    .fetch_all(db)
    .await?)
}

/// Running jobs whose lease expired more than `age` ago.
pub async fn abandoned(db: impl PgExecutor<'_>, age: Duration) -> Result<Vec<Job>> {
    Ok(sqlx::query_as(
        "SELECT * FROM consolidation_jobs
          WHERE status = 'running' AND heartbeat_at < now() - $1 * interval '1 millisecond'
          ORDER BY heartbeat_at",
    )
    .bind(age.as_millis() as f64)
    .fetch_all(db)
    .await?)
}

/// Records that maintenance published the job's command again, stored at `sequence`.
pub async fn mark_published(db: impl PgExecutor<'_>, id: Uuid, sequence: u64) -> Result<()> {
    sqlx::query("UPDATE consolidation_jobs SET published_at = now(), published_seq = $2 WHERE id = $1")
        .bind(id)
        .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
        .execute(db)
        .await?;
    Ok(())
}

/// Counts one delivery that failed for a reason other than an outage; the new count, or None
/// when the job has no row.
pub async fn count_failure(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<i32>> {
    Ok(sqlx::query_scalar("UPDATE consolidation_jobs SET failures = failures + 1 WHERE id = $1 RETURNING failures")
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Fails an abandoned job, checking inside the statement that it is still abandoned (no lease
/// renewed within `age`, not re-published within `age`): a worker that claimed it a moment ago
/// keeps it.
pub async fn fail_abandoned(db: impl PgExecutor<'_>, id: Uuid, error: &str, age: Duration) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_jobs SET status = 'failed', phase = 'failed', completed_at = now(), error_message = $2
          WHERE id = $1 AND status = 'running'
            AND heartbeat_at < now() - $3 * interval '1 millisecond'
            AND published_at < now() - $3 * interval '1 millisecond'",
    )
    .bind(id)
    .bind(error)
    .bind(age.as_millis() as f64)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Jobs by status, as a trigger keeps them counted (no scan of the jobs).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT status, jobs FROM job_status_counts WHERE jobs <> 0 ORDER BY status")
        .fetch_all(db)
        .await?)
}

/// The job row, locked until the transaction ends (rollback serializes on it).
pub async fn lock(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Job>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_jobs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Hands a running job back to `pending` after a transient failure, so the redelivery can claim
/// it at once instead of waiting for the lease to expire. The claim is not counted as an attempt:
/// `attempts` counts the runs that ended with their worker gone (or done).
pub async fn release(db: impl PgExecutor<'_>, id: Uuid, worker_id: &str, error: &str) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_jobs SET status = 'pending', phase = 'queued', worker_id = NULL, heartbeat_at = NULL,
                error_message = $3, attempts = GREATEST(attempts - 1, 0)
          WHERE id = $1 AND worker_id = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker_id)
    .bind(error)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// The completed jobs' run times, as a trigger keeps them counted: per-bucket (not cumulative)
/// counts under `bounds` seconds, the last bucket +Inf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationHistogram {
    pub bounds: Vec<f64>,
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

pub async fn duration_histogram(conn: &mut sqlx::PgConnection) -> Result<DurationHistogram> {
    let bounds: Vec<f64> = sqlx::query_scalar("SELECT job_duration_bounds()").fetch_one(&mut *conn).await?;
    let rows: Vec<(i32, i64, f64)> =
        sqlx::query_as("SELECT bucket, jobs, seconds FROM job_duration_buckets").fetch_all(&mut *conn).await?;
    let mut histogram = DurationHistogram { buckets: vec![0; bounds.len() + 1], bounds, ..Default::default() };
    for (bucket, jobs, seconds) in rows {
        // width_bucket's i counts durations under bounds[i] (and at or above the one before);
        // one equal to a bound counts in the bucket above it, close enough for microseconds.
        let index = usize::try_from(bucket).unwrap_or(0).min(histogram.bounds.len());
        let jobs = u64::try_from(jobs).unwrap_or(0);
        histogram.buckets[index] += jobs;
        histogram.sum += seconds;
        histogram.count += jobs;
    }
    Ok(histogram)
}

/// Fails a job of `project_id` unless another worker holds a live lease on it: a stray delivery
/// that gives up must not fail the run that is going well elsewhere, nor a job of another project.
pub async fn fail_unless_held(
    db: impl PgExecutor<'_>,
    id: Uuid,
    project_id: Uuid,
    error: &str,
    lease: Duration,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_jobs SET status = 'failed', phase = 'failed', completed_at = now(), error_message = $2
          WHERE id = $1 AND project_id = $4
            AND (status = 'pending'
                 OR (status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < now() - $3 * interval '1 millisecond')))",
    )
    .bind(id)
    .bind(error)
    .bind(lease.as_millis() as f64)
    .bind(project_id)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// The jobs a sweep tick created.
pub async fn of_sweep(db: impl PgExecutor<'_>, tick: DateTime<Utc>) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM consolidation_jobs WHERE sweep_tick = $1 ORDER BY id")
        .bind(tick)
        .fetch_all(db)
        .await?)
}

/// Records, just before the job reads its snapshot, which transactions had committed (a
/// `pg_snapshot` taken now) and returns it as text: a memory whose last write it cannot see may
/// be missing from the job's snapshot, and counts as new for the next job. Needs no view of other
/// sessions (`pg_stat_activity`), so another role's idle session changes nothing.
pub async fn record_snapshot(db: impl PgExecutor<'_>, id: Uuid) -> Result<String> {
    Ok(sqlx::query_scalar(
        "UPDATE consolidation_jobs SET snapshot_at = now(), snapshot = pg_current_snapshot()
          WHERE id = $1 RETURNING snapshot::text",
    )
    .bind(id)
    .fetch_one(db)
    .await?)
}

/// The job an incremental run builds on: the project's latest completed job that changed the
/// store (not a dry run, not rolled back), other than `except`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BaseJob {
    pub id: Uuid,
    /// The transactions it could see when it read its snapshot (see `record_snapshot`).
    pub snapshot: Option<String>,
    /// The clustering options it ran with (`result.clustering`), when it recorded them.
    pub clustering: Option<Json<serde_json::Value>>,
}

pub async fn incremental_base(db: impl PgExecutor<'_>, project_id: Uuid, except: Uuid) -> Result<Option<BaseJob>> {
    Ok(sqlx::query_as(
        "SELECT id, snapshot::text AS snapshot, result -> 'clustering' AS clustering FROM consolidation_jobs
          WHERE project_id = $1 AND status = 'completed' AND rolled_back_at IS NULL AND id <> $2
            AND NOT COALESCE((result ->> 'dry_run')::boolean, false)
          ORDER BY completed_at DESC LIMIT 1",
    )
    .bind(project_id)
    .bind(except)
    .fetch_optional(db)
    .await?)
}

/// Fails a running job held by `worker_id` with its result kept (a plan the blast-radius limit
/// stopped); false when the worker no longer holds it.
pub async fn fail_with_result(
    db: impl PgExecutor<'_>,
    id: Uuid,
    worker_id: &str,
    error: &str,
    memories_before: i32,
    result: &JobResult,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_jobs
            SET status = 'failed', phase = 'failed', completed_at = now(), heartbeat_at = now(), error_message = $3,
                memories_before = $4, result = $5
          WHERE id = $1 AND worker_id = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker_id)
    .bind(error)
    .bind(memories_before)
    .bind(Json(result))
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

fn corrupt(error: crate::domain::UnknownVariant) -> super::StoreError {
    super::StoreError::Corrupt(error.to_string())
}

/// One job as the project timeline draws it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimelineRow {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub rolled_back_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub trigger_type: TriggerType,
    pub dry_run: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub counts_before: Option<Json<MemoryCounts>>,
    pub counts_after: Option<Json<MemoryCounts>>,
}

/// A project's last `limit` jobs, oldest first.
pub async fn timeline(db: impl PgExecutor<'_>, project_id: Uuid, limit: i64) -> Result<Vec<TimelineRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM (
             SELECT id, status, rolled_back_at, trigger_type, COALESCE((options ->> 'dry_run')::boolean, false) AS dry_run,
                    created_at, started_at, completed_at, counts_before, counts_after
               FROM consolidation_jobs WHERE project_id = $1
              ORDER BY created_at DESC, id DESC LIMIT $2) last
          ORDER BY created_at, id",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A failed job: when, its message, and the guard that stopped it, if one did.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailedJob {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub error_message: Option<String>,
    pub blocked_by: Option<String>,
}

/// A project's failed jobs, oldest first (the newest `limit`).
pub async fn failed(db: impl PgExecutor<'_>, project_id: Uuid, limit: i64) -> Result<Vec<FailedJob>> {
    Ok(sqlx::query_as(
        "SELECT * FROM (
             SELECT id, COALESCE(completed_at, created_at) AS at, error_message, result ->> 'blocked_by' AS blocked_by
               FROM consolidation_jobs WHERE project_id = $1 AND status = 'failed'
              ORDER BY created_at DESC, id DESC LIMIT $2) last
          ORDER BY at, id",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
