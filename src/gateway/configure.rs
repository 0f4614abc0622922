//! `GET/PUT /consolidation/configure/{project_id}`: enabled flag, threshold, default options.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::{Json, Path},
};
use crate::{
    domain::{AdminAction, ConsolidationOptions, Options, OptionsError},
    store::{
        admin_actions::{self, NewAdminAction},
        projects::{self, ConsolidationSettings, Project},
    },
};

pub const THRESHOLD_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;

/// An option the engine refused, as a 422 naming it.
pub fn options_error(error: OptionsError) -> ApiError {
    if error.field == "options" {
        ApiError::Unprocessable(format!("options: {}", error.message))
    } else {
        ApiError::Unprocessable(format!("options.{}: {}", error.field, error.message))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationView {
    pub project_id: Uuid,
    pub enabled: bool,
    /// Active memories above which the daily sweep consolidates the project.
    pub threshold: i32,
    /// The project's own defaults, as stored.
    #[schema(value_type = ConsolidationOptions)]
    pub options: serde_json::Value,
    /// What a job started now would run with: built-in defaults under the project's.
    #[schema(value_type = Object)]
    pub effective_options: serde_json::Value,
}

impl ConfigurationView {
    fn new(project: Project) -> Result<Self> {
        let effective = Options::resolve(&project.consolidation_options.0, &serde_json::Value::Null)
            .map_err(options_error)
            .and_then(|options| serde_json::to_value(options).map_err(|error| ApiError::Internal(error.into())))?;
        Ok(Self {
            project_id: project.id,
            enabled: project.consolidation_enabled,
            threshold: project.consolidation_threshold,
            options: project.consolidation_options.0,
            effective_options: effective,
        })
    }
}

/// Fields left out keep their current value; `options`, when given, replaces the project's
/// defaults as a whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationUpdate {
    pub enabled: Option<bool>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::domain::integral::optional_integer")]
    pub threshold: Option<i64>,
    pub options: Option<ConsolidationOptions>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_configuration, put_configuration))
}

pub fn check_threshold(threshold: i64) -> Result<i32> {
    if !THRESHOLD_RANGE.contains(&threshold) {
        return Err(ApiError::Unprocessable(format!(
            "threshold: must be between {} and {}, got {threshold}",
            THRESHOLD_RANGE.start(),
            THRESHOLD_RANGE.end()
        )));
    }
    i32::try_from(threshold).map_err(|error| ApiError::Internal(error.into()))
}

/// Validates default options the way a job would resolve them; returns them as stored (see
/// [`ConsolidationOptions::normalized`]).
pub fn check_options(options: Option<&ConsolidationOptions>) -> Result<serde_json::Value> {
    let value = options.map(ConsolidationOptions::normalized).transpose().map_err(options_error)?;
    let value = value.unwrap_or_else(|| serde_json::json!({}));
    Options::resolve(&value, &serde_json::Value::Null).map_err(options_error)?;
    Ok(value)
}

/// A project's consolidation settings.
#[utoipa::path(get, path = "/consolidation/configure/{project_id}", tag = "projects",
    params(("project_id" = Uuid, Path)),
    responses(
        (status = 200, body = ConfigurationView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn get_configuration(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
) -> Result<axum::Json<ConfigurationView>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let project = projects::get(&state.db, project_id).await?.ok_or_else(|| not_found(project_id))?;
    Ok(axum::Json(ConfigurationView::new(project)?))
}

/// Changes a project's consolidation settings.
#[utoipa::path(put, path = "/consolidation/configure/{project_id}", tag = "projects",
    params(("project_id" = Uuid, Path)), request_body = ConfigurationUpdate,
    responses(
        (status = 200, description = "The settings now in force", body = ConfigurationView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "A value out of range (named in the message)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn put_configuration(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(update): Json<ConfigurationUpdate>,
) -> Result<axum::Json<ConfigurationView>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let threshold = update.threshold.map(check_threshold).transpose()?;
    let options = update.options.as_ref().map(|options| check_options(Some(options))).transpose()?;
    // Read and written under the row lock: concurrent partial updates each keep their fields.
    let mut tx = state.db.begin().await?;
    let current = projects::get_for_update(&mut tx, project_id).await?.ok_or_else(|| not_found(project_id))?;
    let settings = ConsolidationSettings {
        enabled: update.enabled.unwrap_or(current.consolidation_enabled),
        threshold: threshold.unwrap_or(current.consolidation_threshold),
        options: options.unwrap_or_else(|| current.consolidation_options.0.clone()),
    };
    let project =
        projects::update_settings(&mut *tx, project_id, &settings).await?.ok_or_else(|| not_found(project_id))?;
    let shown = |project: &Project| {
        serde_json::json!({
            "enabled": project.consolidation_enabled,
            "threshold": project.consolidation_threshold,
            "options": project.consolidation_options.0,
        })
    };
    let action = NewAdminAction {
        actor: admin.subject(),
        action: AdminAction::ConfigurationChanged,
        project_id: Some(project_id),
        target_id: Some(project_id),
        details: serde_json::json!({"before": shown(&current), "after": shown(&project)}),
    };
    admin_actions::record(&mut *tx, &action).await?;
    tx.commit().await?;
    tracing::info!(enabled = settings.enabled, threshold = settings.threshold, "consolidation settings changed");
    Ok(axum::Json(ConfigurationView::new(project)?))
}

fn not_found(project_id: Uuid) -> ApiError {
    ApiError::NotFound(format!("project {project_id} does not exist"))
}
