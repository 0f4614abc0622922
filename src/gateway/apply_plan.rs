//! `POST /consolidation/jobs/{job_id}/apply`: a job that applies a completed dry run's own plan,
//! as the operator reviewed it, leaving out each change something touched since.

use axum::{
    extract::State,
    http::{StatusCode, header},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::Path,
    status::authorized_job,
    trigger::{TriggerResponse, enqueue},
    views::Located,
};
use crate::{domain::JobStatus, store::plans};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(apply_plan))
}

/// Applies a dry run's plan.
///
/// The new job applies exactly the plan the dry run stored (its merged texts, syntheses,
/// archives and promotions) instead of planning again, with the dry run's options. A change
/// whose memories changed since the dry run (edited, merged, archived or deleted) is left out;
/// the job's result lists each in `applied_plan.left_out` with the reason. Plans are kept 7 days.
#[utoipa::path(post, path = "/consolidation/jobs/{job_id}/apply", tag = "consolidation",
    params(("job_id" = Uuid, Path, description = "A completed dry run")),
    responses(
        (status = 202, description = "Job queued", body = TriggerResponse,
            headers(("location" = String, description = "The job's status URL"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not a completed dry run, its plan is older than 7 days, another job applies \
                                       or applied it, the project has a pending or running job, or consolidation \
                                       is disabled for it", body = ErrorBody),
        (status = 422, description = "The dry run's options are no longer valid (named in the message)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn apply_plan(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
) -> Result<Located<TriggerResponse>> {
    let dry_run = authorized_job(&state, &admin, job_id).await?;
    if dry_run.status != JobStatus::Completed || !dry_run.result_is_dry_run() {
        return Err(ApiError::Conflict(format!(
            "job {job_id} is not a completed dry run (it is {}{}): only a dry run's plan can be applied",
            dry_run.status.as_str(),
            if dry_run.result_is_dry_run() { ", a dry run" } else { "" }
        )));
    }
    if let Some(other) = plans::applied_by(&state.db, job_id, Uuid::nil()).await? {
        return Err(ApiError::Conflict(format!("the plan of dry run {job_id} is applied by job {other}")));
    }
    if !plans::is_kept(&state.db, job_id).await? {
        return Err(ApiError::Conflict(format!(
            "the plan of dry run {job_id} is no longer kept (plans are kept {} days); trigger a new dry run",
            plans::APPLY_WINDOW_DAYS
        )));
    }
    let mut options = match dry_run.options.0 {
        serde_json::Value::Object(options) => options,
        _ => serde_json::Map::new(),
    };
    options.insert("dry_run".to_owned(), serde_json::Value::Bool(false));
    let response =
        enqueue(&state, &admin, dry_run.project_id, serde_json::Value::Object(options), Some(job_id)).await?;
    let location = response.location.clone();
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(response)))
}
