//! `POST /consolidation/jobs/{job_id}/cancel`: a pending job ends `cancelled` at once; a running
//! one is asked to stop at its next phase boundary (its worker ends it, changing nothing); a job
//! that has ended answers 409.

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::Path,
    status::authorized_job,
    views::status_location,
};
use crate::domain::JobEventKind;
use crate::{
    domain::JobStatus,
    store::{
        cancel::{self, CancelRequest},
        jobs::Job,
    },
};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelView {
    pub job_id: Uuid,
    /// `cancelled` (it had not started), or `running` (it stops at its next phase boundary).
    pub status: JobStatus,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub cancel_requested_by: Option<String>,
    /// Where to follow the job.
    pub location: String,
}

impl From<Job> for CancelView {
    fn from(job: Job) -> Self {
        Self {
            location: status_location(job.id),
            job_id: job.id,
            status: job.status,
            cancel_requested_at: job.cancel_requested_at,
            cancel_requested_by: job.cancel_requested_by,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cancel_job))
}

/// Cancels a pending or running job.
#[utoipa::path(post, path = "/consolidation/jobs/{job_id}/cancel", tag = "consolidation",
    params(("job_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The job had not started: it is cancelled", body = CancelView),
        (status = 202, description = "The job is running: it stops at its next phase boundary", body = CancelView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has ended (completed, failed or cancelled)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn cancel_job(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<CancelView>)> {
    let job = authorized_job(&state, &admin, job_id).await?;
    match cancel::request(&state.db, job_id, job.project_id, admin.subject()).await? {
        CancelRequest::NotFound => Err(ApiError::NotFound(format!("consolidation job {job_id} does not exist"))),
        CancelRequest::Finished(job) => Err(ApiError::Conflict(cancel::nothing_to_cancel(&job))),
        CancelRequest::Cancelled(job) => {
            // The row is the truth; a lost event is found by the SSE endpoint's status check.
            if let Err(error) =
                state.bus.job_terminal_event(JobEventKind::Cancelled, &crate::finish::cancelled_event(&job)).await
            {
                tracing::warn!(%error, "cancelled event not published");
            }
            // The last job of a sweep to end closes the sweep, whoever ends it.
            if let Some(tick) = job.sweep_tick {
                if let Err(failure) = crate::finish::close_sweep_if_done(&state.db, &state.bus, tick).await {
                    tracing::warn!(?failure, %tick, "sweep completion check failed");
                }
            }
            tracing::info!("pending job cancelled");
            Ok((StatusCode::OK, axum::Json(job.into())))
        }
        CancelRequest::Requested(job) => {
            tracing::info!("cancel requested for a running job");
            Ok((StatusCode::ACCEPTED, axum::Json(job.into())))
        }
    }
}
