//! `POST /projects`, `GET /projects/{id}`.

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
    configure::{ConsolidationOptions, check_options, check_threshold},
    error::{ApiError, ErrorBody, Result},
    extract::{Json, Path},
    views::Located,
};
use crate::store::projects::{self, NewProject, Project};

const MAX_NAME_CHARS: usize = 200;
const DEFAULT_THRESHOLD: i64 = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Chosen by the caller, or generated. A token limited to some projects must name one of them.
    pub id: Option<Uuid>,
    /// 1 to 200 characters.
    pub name: String,
    /// Default true.
    pub consolidation_enabled: Option<bool>,
    /// Active memories above which the daily sweep consolidates the project (default 1000).
    #[schema(minimum = 1, maximum = 1_000_000)]
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
    OpenApiRouter::new().routes(routes!(create_project)).routes(routes!(get_project))
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
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::Unprocessable(format!("name: must be 1 to {MAX_NAME_CHARS} characters")));
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
