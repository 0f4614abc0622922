//! `GET /consolidation/status/{job_id}`: progress, phase, counters, created memories, links.

use axum::extract::State;
use tracing::Span;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::Path,
    views::JobView,
};
use crate::store::jobs::{self, Job};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The job, if it exists and the token covers its project. A job of a project the token does
/// not cover is answered exactly as an unknown one (404), so a token cannot probe which ids
/// exist elsewhere.
pub async fn authorized_job(state: &AppState, admin: &Admin, job_id: Uuid) -> Result<Job> {
    Span::current().record("job_id", tracing::field::display(job_id));
    let not_found = || ApiError::NotFound(format!("consolidation job {job_id} does not exist"));
    let job = jobs::get(&state.db, job_id).await?.ok_or_else(not_found)?;
    if !admin.may_see(job.project_id) {
        return Err(not_found());
    }
    Span::current().record("project_id", tracing::field::display(job.project_id));
    Ok(job)
}

/// A job's progress and result.
#[utoipa::path(get, path = "/consolidation/status/{job_id}", tag = "consolidation",
    params(("job_id" = Uuid, Path)),
    responses(
        (status = 200, body = JobView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn status(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
) -> Result<axum::Json<JobView>> {
    let job = authorized_job(&state, &admin, job_id).await?;
    Ok(axum::Json(JobView::new(job, true)))
}
