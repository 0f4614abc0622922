//! `GET /consolidation/history/{project_id}`: a project's jobs, newest first, in pages.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::{Path, Query},
    page,
    views::JobView,
};
use crate::domain::JobState;
use crate::store::jobs::{self, HistoryFilter, JobStatus, TriggerType};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;
const MAX_SEARCH_CHARS: usize = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Jobs created at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Jobs created before this instant (RFC 3339); a `to` not after `from` leaves an empty window
    /// (no jobs).
    pub to: Option<DateTime<Utc>>,
    /// `completed` leaves out jobs rolled back since; `rolled_back` lists only those.
    pub status: Option<JobState>,
    pub trigger_type: Option<TriggerType>,
    /// Jobs whose id begins with this text, or whose error message holds it (any case); 1 to
    /// 200 characters.
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-f]{32}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(history))
}

/// A search text: 1 to [`MAX_SEARCH_CHARS`] characters, no NUL (PostgreSQL cannot compare one).
fn check_search(q: String) -> Result<String> {
    let chars = q.chars().count();
    if chars == 0 || chars > MAX_SEARCH_CHARS || q.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "q: 1 to {MAX_SEARCH_CHARS} characters without NUL, got {chars} characters"
        )));
    }
    Ok(q)
}

/// A project's jobs, newest first, with their before/after memory counts.
#[utoipa::path(get, path = "/consolidation/history/{project_id}", tag = "consolidation",
    params(("project_id" = Uuid, Path), HistoryQuery),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, description = "Malformed id, filter or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn history(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<HistoryPage>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = query.cursor.as_deref().map(page::decode_job_cursor).transpose()?;
    super::projects::existing(&state, project_id).await?;
    let filter = HistoryFilter {
        from: query.from,
        to: query.to,
        status: query.status.map(|state| match state {
            JobState::Pending => JobStatus::Pending,
            JobState::Running => JobStatus::Running,
            JobState::Completed | JobState::RolledBack => JobStatus::Completed,
            JobState::Failed => JobStatus::Failed,
            JobState::Cancelled => JobStatus::Cancelled,
        }),
        rolled_back: match query.status {
            Some(JobState::RolledBack) => Some(true),
            Some(JobState::Completed) => Some(false),
            _ => None,
        },
        trigger_type: query.trigger_type,
        search: query.q.map(check_search).transpose()?,
        before,
        limit: limit + 1,
    };
    let empty_window = matches!((query.from, query.to), (Some(from), Some(to)) if from >= to);
    let jobs = if empty_window { Vec::new() } else { jobs::history(&state.db, project_id, &filter).await? };
    let (jobs, more) = page::split(jobs, limit);
    let next_cursor = if more { jobs.last().map(|job| page::encode_job_cursor(job.created_at, job.id)) } else { None };
    Ok(axum::Json(HistoryPage { jobs: jobs.into_iter().map(|job| JobView::new(job, false)).collect(), next_cursor }))
}
