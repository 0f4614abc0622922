//! `GET /workers` (the workers alive with their running jobs, the command stream's depth, the
//! dead letters' count) and `GET /dead-letters` (the newest dead letters, read without consuming).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::Query,
    page,
};
use crate::{
    bus::{BusError, messages::DeadLetter},
    store::workers,
};

const DEFAULT_LETTERS: u32 = 50;
const MAX_LETTERS: u32 = 500;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunningJobView {
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub started_at: Option<DateTime<Utc>>,
    /// 0 to 1.
    pub progress: f32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Its running jobs of the projects the token covers.
    pub running_jobs: Vec<RunningJobView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandsView {
    /// Commands no worker has taken yet.
    pub pending: u64,
    /// Commands a worker holds, not yet acknowledged.
    pub ack_pending: u64,
    /// Of those, delivered more than once.
    pub redelivered: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkersView {
    /// Workers heard from in the last five minutes, by id.
    pub workers: Vec<WorkerView>,
    pub commands: CommandsView,
    /// Dead letters the event stream holds (kept as long as events are).
    pub dead_letters: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    /// The newest this many, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// Its sequence in the event stream.
    pub seq: u64,
    /// `<prefix>.evt.dead_letter.<command>`.
    pub subject: String,
    /// When the letter was written (stored, when its body cannot be read).
    pub at: DateTime<Utc>,
    pub reason: String,
    /// The original command's payload as the letter carries it (cut when it was too large).
    pub payload: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLettersView {
    /// Newest first.
    pub dead_letters: Vec<DeadLetterView>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_workers)).routes(routes!(dead_letters))
}

/// Whether the letter's command names a project the token covers.
fn names_visible_project(admin: &Admin, letter: &[u8]) -> bool {
    let command = serde_json::from_slice::<DeadLetter>(letter)
        .ok()
        .and_then(|letter| serde_json::from_str::<serde_json::Value>(&letter.payload).ok());
    let project = command.as_ref().and_then(|command| command.get("project_id")).and_then(|id| id.as_str());
    project.and_then(|id| id.parse::<Uuid>().ok()).is_some_and(|id| admin.may_see(id))
}

fn unavailable(error: BusError) -> ApiError {
    ApiError::Unavailable(format!("the message bus did not answer: {error}"))
}

/// The workers alive with their running jobs, the command stream's depth and the dead letters'
/// count. A token limited to some projects sees the running jobs of those.
#[utoipa::path(get, path = "/workers", tag = "operations",
    responses((status = 200, body = WorkersView)))]
#[tracing::instrument(skip_all)]
pub async fn list_workers(admin: Admin, State(state): State<AppState>) -> Result<axum::Json<WorkersView>> {
    let scope = admin.project_scope();
    let alive = workers::alive(&state.db).await?;
    let mut running = workers::running_jobs(&state.db, scope.as_deref()).await?;
    let workers = alive
        .into_iter()
        .map(|worker| {
            let (mine, others) = running.drain(..).partition(|job| job.worker_id == worker.worker_id);
            running = others;
            let running_jobs = mine
                .into_iter()
                .map(|job: workers::RunningJob| RunningJobView {
                    job_id: job.job_id,
                    project_id: job.project_id,
                    started_at: job.started_at,
                    progress: job.progress,
                })
                .collect();
            WorkerView {
                worker_id: worker.worker_id,
                started_at: worker.started_at,
                last_heartbeat: worker.last_heartbeat,
                running_jobs,
            }
        })
        .collect();
    let depth = state.bus.command_depth().await.map_err(unavailable)?;
    let dead_letters = state.bus.dead_letter_count().await.map_err(unavailable)?;
    let commands =
        CommandsView { pending: depth.pending, ack_pending: depth.ack_pending, redelivered: depth.redelivered };
    Ok(axum::Json(WorkersView { workers, commands, dead_letters }))
}

/// The newest dead letters: commands that can never succeed, with the reason and the original
/// payload. Reading consumes nothing. A token limited to some projects sees the letters whose
/// command names one of them.
#[utoipa::path(get, path = "/dead-letters", tag = "operations",
    params(DeadLettersQuery),
    responses(
        (status = 200, body = DeadLettersView),
        (status = 400, description = "Malformed limit", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn dead_letters(
    admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<DeadLettersQuery>,
) -> Result<axum::Json<DeadLettersView>> {
    let limit = page::limit(query.limit, DEFAULT_LETTERS, MAX_LETTERS)?;
    let letters = state.bus.dead_letters(usize::try_from(limit).unwrap_or(0)).await.map_err(unavailable)?;
    let dead_letters = letters
        .into_iter()
        .filter(|stored| admin.project_scope().is_none() || names_visible_project(&admin, &stored.payload))
        .map(|stored| match serde_json::from_slice::<DeadLetter>(&stored.payload) {
            Ok(letter) => DeadLetterView {
                seq: stored.sequence,
                subject: stored.subject,
                at: letter.at,
                reason: letter.reason,
                payload: letter.payload,
            },
            Err(error) => DeadLetterView {
                seq: stored.sequence,
                subject: stored.subject,
                at: stored.stored_at,
                reason: format!("unreadable dead letter: {error}"),
                payload: String::from_utf8_lossy(&stored.payload).into_owned(),
            },
        })
        .collect();
    Ok(axum::Json(DeadLettersView { dead_letters }))
}
