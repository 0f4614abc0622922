//! `POST /consolidation/rollback` and `GET /consolidation/rollback/{rollback_id}`.
//!
//! The rules a request can be judged by at once (job exists, completed, inside the window) are
//! answered at once; the rest (later changes that conflict) is the worker's, so the command is
//! published and the answer waits a bounded time for the worker's result event.

use std::time::Duration;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    API_PREFIX, AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::{Json, Path},
    publish::publish_recorded,
    status::authorized_job,
};
use crate::{
    bus::{
        CommandKind,
        messages::{RollbackCommand, RollbackEvent, SCHEMA_VERSION},
    },
    domain::{AdminAction, RollbackStatus},
    store::{
        admin_actions::{self, NewAdminAction},
        jobs::{Job, JobStatus},
        rollbacks::{self, Rollback},
    },
};

/// A rollback's reason travels on the bus, where it is bounded.
const MAX_REASON_CHARS: usize = crate::bus::messages::MAX_ACTOR_CHARS;

#[derive(Debug, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The job to undo (`job_id` is accepted too).
    #[serde(alias = "job_id")]
    pub consolidation_id: Uuid,
    /// Why; kept with the rollback and in its audit rows (at most 256 characters).
    #[schema(max_length = 256)]
    pub reason: Option<String>,
    /// Roll back the standing later jobs that built on this one first, newest first, in the same
    /// request (default false: such a rollback is refused, naming them).
    #[serde(default)]
    pub cascade: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RollbackView {
    pub rollback_id: Uuid,
    pub consolidation_id: Uuid,
    pub project_id: Uuid,
    /// pending, running, completed, refused or failed.
    pub status: RollbackStatus,
    /// True once the job is undone.
    pub success: bool,
    pub memories_restored: i32,
    pub memories_deleted: i32,
    pub warnings: Vec<String>,
    /// Memories changed after the job, when that is why it was refused.
    pub conflicts: Vec<Uuid>,
    /// Later jobs rolled back first (`cascade`), or the standing ones it was refused for.
    pub later_jobs: Vec<Uuid>,
    /// Whether the request asked for a cascade.
    pub cascade: bool,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Where to poll this rollback.
    pub location: String,
}

impl From<Rollback> for RollbackView {
    fn from(rollback: Rollback) -> Self {
        Self {
            location: location(rollback.id),
            rollback_id: rollback.id,
            consolidation_id: rollback.job_id,
            project_id: rollback.project_id,
            success: rollback.status == RollbackStatus::Completed,
            status: rollback.status,
            memories_restored: rollback.memories_restored,
            memories_deleted: rollback.memories_deleted,
            warnings: rollback.warnings.0,
            conflicts: rollback.conflicts.0,
            later_jobs: rollback.later_jobs.0,
            cascade: rollback.cascade,
            error: rollback.error,
            reason: rollback.reason,
            requested_by: rollback.requested_by,
            created_at: rollback.created_at,
            completed_at: rollback.completed_at,
        }
    }
}

fn location(rollback_id: Uuid) -> String {
    format!("{API_PREFIX}/consolidation/rollback/{rollback_id}")
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(request_rollback)).routes(routes!(get_rollback))
}

/// Undoes a completed job.
///
/// Rolling back a job that was rolled back already answers the first rollback's result.
#[utoipa::path(post, path = "/consolidation/rollback", tag = "rollback", request_body = RollbackRequest,
    responses(
        (status = 200, description = "Done within the wait", body = RollbackView),
        (status = 202, description = "Still running; poll the Location", body = RollbackView,
            headers(("location" = String, description = "The rollback's status URL"))),
        (status = 400, description = "Malformed body, or the job is outside the rollback window", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not completed, was a dry run, a standing later job built on \
                                       it (named; ask for `cascade`), or a change by hand conflicts (the \
                                       memories are named)", body = ErrorBody),
        (status = 410, description = "The job's audit rows were purged (AUDIT_RETENTION_DAYS)", body = ErrorBody),
        (status = 422, description = "An invalid field", body = ErrorBody),
        (status = 503, description = "Database or NATS unavailable, or the worker gave up", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn request_rollback(
    admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<RollbackRequest>,
) -> Result<Response> {
    let (rollback, earlier) = start(&state, &admin, request).await?;
    if earlier {
        let mut view = RollbackView::from(rollback);
        view.warnings
            .push(format!("job {} was already rolled back by rollback {}", view.consolidation_id, view.rollback_id));
        return Ok((StatusCode::OK, axum::Json(view)).into_response());
    }
    answer(rollback)
}

/// Asks a worker to undo the job and waits up to ROLLBACK_WAIT_MS for the result (the route
/// above and the MCP tool rollback); `true` with the first rollback when the job was rolled back
/// already.
pub async fn start(state: &AppState, admin: &Admin, request: RollbackRequest) -> Result<(Rollback, bool)> {
    if request.reason.as_ref().is_some_and(|reason| reason.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::Unprocessable(format!("reason: at most {MAX_REASON_CHARS} characters")));
    }
    let job = authorized_job(state, admin, request.consolidation_id).await?;
    if let Some(first) = quick_checks(state, &job).await? {
        return Ok((first, true));
    }

    let rollback_id = Uuid::new_v4();
    // Subscribed before the row exists and before publishing: a failed subscription leaves
    // nothing pending, and the result cannot slip past.
    let mut results = state
        .bus
        .client
        .subscribe(state.bus.prefix.rollback_events_of(job.project_id, rollback_id))
        .await
        .map_err(|error| ApiError::TryAgain(format!("the message bus is unavailable: {error}")))?;
    let reason = request.reason.as_deref();
    rollbacks::create(&state.db, rollback_id, job.id, job.project_id, reason, admin.subject(), request.cascade).await?;
    let action = NewAdminAction {
        actor: admin.subject(),
        action: AdminAction::RollbackRequested,
        project_id: Some(job.project_id),
        target_id: Some(job.id),
        details: serde_json::json!({"rollback_id": rollback_id, "reason": reason, "cascade": request.cascade}),
    };
    admin_actions::record(&state.db, &action).await?;
    let command = RollbackCommand {
        schema_version: SCHEMA_VERSION,
        rollback_id,
        project_id: job.project_id,
        consolidation_id: job.id,
        reason: request.reason,
        requested_by: admin.subject().to_owned(),
        cascade: request.cascade,
    };
    let db = state.db.clone();
    publish_recorded(&state.bus, CommandKind::Rollback, rollback_id.to_string(), command, move |reason| async move {
        if let Err(store_error) =
            rollbacks::finish_unsuccessful(&db, rollback_id, RollbackStatus::Failed, &reason, &[]).await
        {
            tracing::error!(%store_error, "rollback left pending");
        }
    })
    .await?;

    let wait = Duration::from_millis(state.config.rollback_wait_ms);
    let ended = tokio::time::timeout(wait, async {
        while let Some(message) = results.next().await {
            match serde_json::from_slice::<RollbackEvent>(&message.payload) {
                Ok(_) => return true,
                Err(error) => tracing::warn!(%error, "unreadable rollback event"),
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    // The database holds the result either way; the event only said when to look.
    let rollback = rollbacks::get(&state.db, rollback_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("rollback {rollback_id} vanished")))?;
    tracing::info!(ended, status = %rollback.status, "rollback answered");
    Ok((rollback, false))
}

/// Answers the first three refusal rules at once; Some(first rollback) if the job was already
/// rolled back.
async fn quick_checks(state: &AppState, job: &Job) -> Result<Option<Rollback>> {
    if job.status != JobStatus::Completed {
        return Err(ApiError::Conflict(format!(
            "job {} is {}; only a completed job can be rolled back",
            job.id, job.status
        )));
    }
    if job.rolled_back_at.is_some() {
        return match rollbacks::completed_for_job(&state.db, job.id).await? {
            Some(first) => Ok(Some(first)),
            None => Err(ApiError::Conflict(format!("job {} was already rolled back", job.id))),
        };
    }
    if job.result_is_dry_run() {
        return Err(ApiError::Conflict(format!("job {} was a dry run and changed nothing", job.id)));
    }
    if let Some(purged) = job.audit_purged_at {
        return Err(ApiError::Gone(crate::store::undo::audit_gone(job.id, purged)));
    }
    let window_days = state.retention.rollback_window_days;
    let completed_at = job.completed_at.unwrap_or(job.created_at);
    if completed_at < Utc::now() - chrono::Duration::days(i64::from(window_days)) {
        return Err(ApiError::BadRequest(format!(
            "job {} completed at {completed_at}, outside the {window_days}-day rollback window",
            job.id
        )));
    }
    Ok(None)
}

fn answer(rollback: Rollback) -> Result<Response> {
    let rollback = settled(rollback)?;
    let id = rollback.id;
    let done = rollback.status == RollbackStatus::Completed;
    let view = axum::Json(RollbackView::from(rollback));
    Ok(if done {
        (StatusCode::OK, view).into_response()
    } else {
        (StatusCode::ACCEPTED, [(header::LOCATION, location(id))], view).into_response()
    })
}

/// A refused or failed rollback as its error; one done or still under way as it is.
pub fn settled(rollback: Rollback) -> Result<Rollback> {
    let id = rollback.id;
    let why = || rollback.error.as_deref().unwrap_or("no reason given").to_owned();
    match rollback.status {
        RollbackStatus::Refused => Err(ApiError::Conflict(format!("rollback {id} refused: {}", why()))),
        RollbackStatus::Failed => Err(ApiError::Unavailable(format!("rollback {id} failed: {}", why()))),
        RollbackStatus::Completed | RollbackStatus::Pending | RollbackStatus::Running => Ok(rollback),
    }
}

/// A rollback's status and result.
#[utoipa::path(get, path = "/consolidation/rollback/{rollback_id}", tag = "rollback",
    params(("rollback_id" = Uuid, Path)),
    responses(
        (status = 200, body = RollbackView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such rollback", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn get_rollback(
    admin: Admin,
    State(state): State<AppState>,
    Path(rollback_id): Path<Uuid>,
) -> Result<axum::Json<RollbackView>> {
    let not_found = || ApiError::NotFound(format!("rollback {rollback_id} does not exist"));
    let rollback = rollbacks::get(&state.db, rollback_id).await?.ok_or_else(not_found)?;
    // Another project's rollback is answered as an unknown one.
    if !admin.may_see(rollback.project_id) {
        return Err(not_found());
    }
    Span::current()
        .record("job_id", tracing::field::display(rollback.job_id))
        .record("project_id", tracing::field::display(rollback.project_id));
    Ok(axum::Json(RollbackView::from(rollback)))
}
