//! `POST /projects`, `GET /projects` (the projects the token may see) and `GET /projects/{id}`.

use axum::{
    extract::State,
    http::{StatusCode, header},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    API_PREFIX, AppState,
    auth::Admin,
    configure::{check_options, check_threshold},
    error::{ApiError, ErrorBody, Result},
    extract::{Json, Path, Query},
    page,
    views::{Located, status_location},
};
use crate::{
    domain::{ConsolidationOptions, JobState, TriggerType},
    store::projects::{self, NewProject, Project, ProjectSummary},
};

const MAX_NAME_CHARS: usize = 200;
const DEFAULT_THRESHOLD: i64 = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Chosen by the caller, or generated. A token limited to some projects must name one of them.
    pub id: Option<Uuid>,
    /// 1 to 200 characters, not blank (surrounding blanks are trimmed before it is stored).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Default true.
    pub consolidation_enabled: Option<bool>,
    /// Active memories above which the daily sweep consolidates the project (default 1000).
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::domain::integral::optional_integer")]
    pub consolidation_threshold: Option<i64>,
    pub consolidation_options: Option<ConsolidationOptions>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: Uuid,
    pub name: String,
    pub consolidation_enabled: bool,
    pub consolidation_threshold: i32,
    #[schema(value_type = ConsolidationOptions)]
    pub consolidation_options: serde_json::Value,
    /// Fixed by the first memory stored with an embedding.
    pub embedding_dim: Option<i32>,
    /// Memories neither archived nor marked duplicate.
    pub active_memories: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProjectView {
    fn new(project: Project, active_memories: i64) -> Self {
        Self {
            id: project.id,
            name: project.name,
            consolidation_enabled: project.consolidation_enabled,
            consolidation_threshold: project.consolidation_threshold,
            consolidation_options: project.consolidation_options.0,
            embedding_dim: project.embedding_dim,
            active_memories,
            created_at: project.created_at,
            updated_at: project.updated_at,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_project, list_projects)).routes(routes!(get_project))
}

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProjectListQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// A project's most recent job, in brief (its status URL has the rest).
#[derive(Debug, Serialize, ToSchema)]
pub struct LastJob {
    pub job_id: Uuid,
    pub status: JobState,
    pub trigger_type: TriggerType,
    pub dry_run: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub location: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectSummaryView {
    #[serde(flatten)]
    pub project: ProjectView,
    /// Marked a duplicate of another memory (archived or not).
    pub duplicate_memories: i64,
    /// Archived and not a duplicate.
    pub archived_memories: i64,
    /// Absent when the project has had no job yet.
    pub last_job: Option<LastJob>,
}

impl From<ProjectSummary> for ProjectSummaryView {
    fn from(row: ProjectSummary) -> Self {
        let kinds = row.last_job_kinds();
        let last_job = match (row.last_job_id, kinds, row.last_job_created_at) {
            (Some(job_id), Ok(Some((status, trigger_type))), Some(created_at)) => Some(LastJob {
                job_id,
                status,
                trigger_type,
                dry_run: row.last_job_dry_run.unwrap_or(false),
                created_at,
                completed_at: row.last_job_completed_at,
                location: status_location(job_id),
            }),
            _ => None,
        };
        Self {
            project: ProjectView::new(row.project, row.active_memories),
            duplicate_memories: row.duplicate_memories,
            archived_memories: row.archived_memories,
            last_job,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectPage {
    /// In id order.
    pub projects: Vec<ProjectSummaryView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<Uuid>,
}

/// The projects the token may see (all for `*`), with memory counts and the latest job.
#[utoipa::path(get, path = "/projects", tag = "projects",
    params(ProjectListQuery),
    responses(
        (status = 200, body = ProjectPage),
        (status = 400, description = "Malformed limit or cursor", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn list_projects(
    admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<ProjectListQuery>,
) -> Result<axum::Json<ProjectPage>> {
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let scope = admin.project_scope();
    let rows = projects::list_summaries(&state.db, scope.as_deref(), query.cursor, limit + 1).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|row| row.project.id) } else { None };
    Ok(axum::Json(ProjectPage { projects: rows.into_iter().map(ProjectSummaryView::from).collect(), next_cursor }))
}

/// Creates a project.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProject,
    responses(
        (status = 201, body = ProjectView, headers(("location" = String, description = "The project's URL"))),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 409, description = "A project with this id exists", body = ErrorBody),
        (status = 422, description = "An invalid field (named in the message)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn create_project(
    admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<CreateProject>,
) -> Result<Located<ProjectView>> {
    let id = request.id.unwrap_or_else(Uuid::new_v4);
    Span::current().record("project_id", tracing::field::display(id));
    admin.ensure_project(id)?;
    let name = request.name.trim();
    if name.is_empty() || request.name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::Unprocessable(format!("name: must be 1 to {MAX_NAME_CHARS} characters, not blank")));
    }
    let threshold = check_threshold(request.consolidation_threshold.unwrap_or(DEFAULT_THRESHOLD))?;
    let options = check_options(request.consolidation_options.as_ref())?;
    let project = projects::create(
        &state.db,
        &NewProject {
            id,
            name: name.to_owned(),
            consolidation_enabled: request.consolidation_enabled.unwrap_or(true),
            consolidation_threshold: threshold,
            consolidation_options: options,
        },
    )
    .await
    .map_err(|error| match ApiError::from(error) {
        ApiError::Conflict(_) => ApiError::Conflict(format!("project {id} exists already")),
        other => other,
    })?;
    tracing::info!("project created");
    let location = format!("{API_PREFIX}/projects/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(ProjectView::new(project, 0))))
}

/// A project with its settings and active memory count.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = ProjectView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn get_project(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ProjectView>> {
    Span::current().record("project_id", tracing::field::display(id));
    admin.ensure_project(id)?;
    let project = existing(&state, id).await?;
    let active = projects::active_memory_count(&state.db, id).await?;
    Ok(axum::Json(ProjectView::new(project, active)))
}

/// The project, or 404 (the caller has checked the token's scope).
pub async fn existing(state: &AppState, id: Uuid) -> Result<Project> {
    projects::get(&state.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("project {id} does not exist")))
}
