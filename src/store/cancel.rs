//! Cancelling jobs (DESIGN.md §11): a request recorded on the job row, honoured by the worker at
//! its next phase boundary; a job nobody runs yet ends at once.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{
    Result,
    admin_actions::NewAdminAction,
    jobs::{Job, JobStatus},
};
use crate::domain::AdminAction;

/// What a cancel request found.
#[derive(Debug)]
pub enum CancelRequest {
    /// The job was pending: it is `cancelled` now, nothing ran.
    Cancelled(Job),
    /// The job is running: its worker stops at the next phase boundary.
    Requested(Job),
    /// The job had ended already (completed, failed or cancelled).
    Finished(Job),
    NotFound,
}

/// Why a job that has ended cannot be cancelled.
pub fn nothing_to_cancel(job: &Job) -> String {
    match job.rolled_back_at {
        Some(at) => format!("job {} completed and was rolled back at {at}; nothing to cancel", job.id),
        None => format!("job {} has already ended ({}); nothing to cancel", job.id, job.status),
    }
}

/// Records a cancel request for a job of `project_id` (a job of another project is not found).
/// Serialized with the worker on the job row: an apply transaction that already holds the row
/// commits first, and this then finds the job finished.
pub async fn request(db: &sqlx::PgPool, id: Uuid, project_id: Uuid, requested_by: &str) -> Result<CancelRequest> {
    let mut tx = db.begin().await?;
    let job = super::jobs::lock(&mut tx, id).await?.filter(|job| job.project_id == project_id);
    let Some(job) = job else { return Ok(CancelRequest::NotFound) };
    // A repeated request (or a redelivered command) for a job already asked to stop is no new action.
    let first_request = job.cancel_requested_at.is_none();
    let outcome = if job.is_finished() {
        CancelRequest::Finished(job)
    } else if job.status == JobStatus::Pending {
        let job: Job = sqlx::query_as(
            "UPDATE consolidation_jobs
                SET status = 'cancelled', phase = 'cancelled', completed_at = now(),
                    cancel_requested_at = now(), cancel_requested_by = $2,
                    error_message = 'cancelled by ' || $2 || ' before it started'
              WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(requested_by)
        .fetch_one(&mut *tx)
        .await?;
        CancelRequest::Cancelled(job)
    } else {
        let job: Job = sqlx::query_as(
            "UPDATE consolidation_jobs
                SET cancel_requested_at = COALESCE(cancel_requested_at, now()),
                    cancel_requested_by = COALESCE(cancel_requested_by, $2)
              WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(requested_by)
        .fetch_one(&mut *tx)
        .await?;
        CancelRequest::Requested(job)
    };
    if let (CancelRequest::Cancelled(job) | CancelRequest::Requested(job), true) = (&outcome, first_request) {
        let action = NewAdminAction {
            actor: requested_by,
            action: AdminAction::JobCancelled,
            project_id: Some(project_id),
            target_id: Some(id),
            details: serde_json::json!({"status": job.status}),
        };
        super::admin_actions::record(&mut *tx, &action).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Who asked the job to stop, if anyone did.
pub async fn requested_by(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(cancel_requested_by, '') FROM consolidation_jobs
          WHERE id = $1 AND cancel_requested_at IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The same inside the apply transaction, with the job row locked until it ends: a cancel
/// request racing the commit either lands before (and the apply rolls back) or after (and finds
/// the job completed).
pub async fn lock_requested_by(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE COALESCE(cancel_requested_by, '') END
           FROM consolidation_jobs WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten())
}

/// Ends a running job as `cancelled` if `worker_id` still holds it; false otherwise.
pub async fn finish(db: impl PgExecutor<'_>, id: Uuid, worker_id: &str, error: &str) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE consolidation_jobs
            SET status = 'cancelled', phase = 'cancelled', completed_at = now(), heartbeat_at = now(), error_message = $3
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
