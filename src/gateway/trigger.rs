//! `POST /consolidation/trigger`: validate, write the job row, publish the command, answer 202.

use std::time::Duration;

use axum::{
    extract::State,
    http::{StatusCode, header},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    API_PREFIX, AppState,
    auth::Admin,
    configure::options_error,
    error::{ApiError, ErrorBody, Result},
    extract::Json,
    publish::publish_recorded,
    views::{Located, status_location},
};
use crate::domain::JobEventKind;
use crate::{
    bus::{
        CommandKind,
        messages::{JobEvent, SCHEMA_VERSION, TriggerCommand},
    },
    domain::{AdminAction, ConsolidationOptions, JobStatus, Options},
    store::{
        admin_actions::{self, NewAdminAction},
        jobs::{self, CreateOutcome, NewJob, TriggerType},
        projects,
    },
};

/// Recent completed jobs the estimate learns from.
const RECENT_JOBS: i64 = 10;
/// Pace assumed before a project has history: the design's 1 000 memories a second.
const DEFAULT_SECONDS_PER_MEMORY: f64 = 0.001;
/// Below this size a job's duration is mostly fixed cost, so it is not scaled down further.
const MIN_SCALED_SIZE: f64 = 100.0;
/// An estimate past a week says nothing more, and keeps the date arithmetic in range.
const MAX_ESTIMATE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    pub project_id: Uuid,
    /// Overrides of the project's default options for this job.
    #[serde(default)]
    pub options: Option<ConsolidationOptions>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerResponse {
    pub job_id: Uuid,
    /// Always `pending`: the job waits for a worker.
    pub status: JobStatus,
    /// From the project's size and its recent jobs' durations.
    pub estimated_completion: DateTime<Utc>,
    /// To the millisecond.
    pub estimated_seconds: f64,
    /// Where to poll the job's status (also the Location header).
    pub location: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(trigger))
}

/// Starts a consolidation job for a project.
#[utoipa::path(post, path = "/consolidation/trigger", tag = "consolidation", request_body = TriggerRequest,
    responses(
        (status = 202, description = "Job queued", body = TriggerResponse,
            headers(("location" = String, description = "The job's status URL"))),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "The project has a pending or running job (named in the message), or \
                                       consolidation is disabled for it", body = ErrorBody),
        (status = 422, description = "An invalid option (named in the message)", body = ErrorBody),
        (status = 503, description = "Database or NATS unavailable; no job left pending", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn trigger(
    admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<TriggerRequest>,
) -> Result<Located<TriggerResponse>> {
    let response = start(&state, &admin, request).await?;
    let location = response.location.clone();
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(response)))
}

/// Writes the job row and publishes its command (the route above and the MCP tool consolidate).
pub async fn start(state: &AppState, admin: &Admin, request: TriggerRequest) -> Result<TriggerResponse> {
    let requested = request.options.map(|options| options.to_value()).unwrap_or(serde_json::Value::Null);
    enqueue(state, admin, request.project_id, requested, None).await
}

/// Queues a job of the project with `requested` options over the project's: a plan of its own,
/// or (`plan_of`) the stored plan of that dry run.
pub async fn enqueue(
    state: &AppState,
    admin: &Admin,
    project_id: Uuid,
    requested: serde_json::Value,
    plan_of: Option<Uuid>,
) -> Result<TriggerResponse> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let context = projects::trigger_context(&state.db, project_id, RECENT_JOBS)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {project_id} does not exist")))?;
    let project = context.project;
    if !project.consolidation_enabled {
        return Err(ApiError::Conflict(format!(
            "consolidation is disabled for project {project_id}: enable it with \
             PUT {API_PREFIX}/consolidation/configure/{project_id} {{\"enabled\": true}}"
        )));
    }
    let options = Options::resolve(&project.consolidation_options.0, &requested).map_err(options_error)?;
    let options = serde_json::to_value(&options).map_err(|error| ApiError::Internal(error.into()))?;

    let new_job = NewJob {
        id: Uuid::new_v4(),
        project_id,
        trigger_type: TriggerType::Manual,
        options: options.clone(),
        triggered_by: admin.subject().to_owned(),
        scheduled_for: None,
        plan_of,
    };
    let job = match jobs::create(&state.db, &new_job).await? {
        CreateOutcome::Created(job) => job,
        CreateOutcome::ProjectBusy { active_job_id } => {
            let active = active_job_id.map_or_else(|| "another job".to_owned(), |id| format!("job {id}"));
            return Err(ApiError::Conflict(format!(
                "project {project_id} already has a pending or running job: {active}"
            )));
        }
        CreateOutcome::Existing(job) => {
            return Err(ApiError::Internal(anyhow::anyhow!("fresh job id {} collided", job.id)));
        }
    };
    Span::current().record("job_id", tracing::field::display(job.id));
    let action = NewAdminAction {
        actor: admin.subject(),
        action: if plan_of.is_some() { AdminAction::PlanApplied } else { AdminAction::JobTriggered },
        project_id: Some(project_id),
        target_id: Some(job.id),
        details: match plan_of {
            Some(dry_run_id) => serde_json::json!({"dry_run_id": dry_run_id, "options": options}),
            None => serde_json::json!({"options": options}),
        },
    };
    admin_actions::record(&state.db, &action).await?;

    let command = TriggerCommand {
        schema_version: SCHEMA_VERSION,
        job_id: job.id,
        project_id,
        options: Some(options),
        trigger_type: TriggerType::Manual,
        triggered_by: job.triggered_by.clone(),
        plan_of,
    };
    // Announced before the command goes out, so it precedes the worker's `started`.
    let queued = JobEvent::new(JobEventKind::Queued, job.id, project_id);
    state.bus.job_progress_event(JobEventKind::Queued, &queued).await;
    // A job nobody will run must not block the project: it fails now, visibly.
    let (db, job_id) = (state.db.clone(), job.id);
    publish_recorded(&state.bus, CommandKind::Trigger, job.id.to_string(), command, move |reason| async move {
        if let Err(store_error) = jobs::fail(&db, job_id, &reason).await {
            tracing::error!(%store_error, "job left pending; maintenance will re-publish it");
        }
    })
    .await?;

    let recent: Vec<(f64, i32)> = context.recent_seconds.into_iter().zip(context.recent_sizes).collect();
    let estimated = estimate(context.active_memories, &recent);
    let location = status_location(job.id);
    tracing::info!(estimated_seconds = estimated.as_secs_f64(), "job triggered");
    let response = TriggerResponse {
        job_id: job.id,
        status: job.status,
        estimated_completion: Utc::now() + estimated,
        estimated_seconds: crate::domain::figures::to_decimals(estimated.as_secs_f64(), 3),
        location,
    };
    Ok(response)
}

/// The median of the recent jobs' paces (seconds per memory) applied to today's size; the
/// median keeps one slow outlier from dominating.
pub fn estimate(active_memories: i64, recent: &[(f64, i32)]) -> Duration {
    let size = (active_memories.max(0) as f64).max(MIN_SCALED_SIZE);
    let mut paces: Vec<f64> = recent
        .iter()
        .filter(|(seconds, _)| seconds.is_finite() && *seconds >= 0.0)
        .map(|(seconds, before)| seconds / f64::from((*before).max(0)).max(MIN_SCALED_SIZE))
        .collect();
    paces.sort_by(f64::total_cmp);
    let pace = paces.get(paces.len() / 2).copied().unwrap_or(DEFAULT_SECONDS_PER_MEMORY);
    Duration::try_from_secs_f64(pace * size).unwrap_or(MAX_ESTIMATE).min(MAX_ESTIMATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(active: i64, recent: &[(f64, i32)]) -> f64 {
        estimate(active, recent).as_secs_f64()
    }

    #[test]
    fn without_history_the_design_pace_applies() {
        assert!((seconds(5_000, &[]) - 5.0).abs() < 1e-6);
        assert!((seconds(0, &[]) - 0.1).abs() < 1e-6, "small projects still cost something");
    }

    #[test]
    fn recent_durations_are_scaled_to_todays_size() {
        let recent = [(2.0, 1_000), (2.2, 1_000), (1.8, 1_000)];
        assert!((seconds(2_000, &recent) - 4.0).abs() < 1e-6);
    }

    #[test]
    fn one_slow_outlier_does_not_dominate() {
        let recent = [(1.0, 1_000), (1.0, 1_000), (500.0, 1_000)];
        assert!((seconds(1_000, &recent) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn absurd_history_is_capped() {
        assert_eq!(estimate(1_000_000, &[(1e12, 1)]), MAX_ESTIMATE);
    }
}
