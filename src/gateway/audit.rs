//! `GET /audit`: every administrator's action, newest first (the console's audit page).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ErrorBody, Result},
    extract::Query,
    page,
};
use crate::{
    domain::AdminAction,
    store::admin_actions::{self, ActionFilter, AdminActionRow},
};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only actions on this project (the token must cover it).
    pub project_id: Option<Uuid>,
    #[param(inline)]
    pub action: Option<AdminAction>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token's subject.
    pub actor: String,
    pub action: AdminAction,
    pub project_id: Option<Uuid>,
    /// The job, review, memory or project acted on.
    pub target_id: Option<Uuid>,
    /// What the action was given and did; `{before, after}` for `configuration_changed`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AdminActionRow> for ActionView {
    fn from(row: AdminActionRow) -> Self {
        Self {
            id: row.id,
            at: row.at,
            actor: row.actor,
            action: row.action,
            project_id: row.project_id,
            target_id: row.target_id,
            details: row.details.0,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub actions: Vec<ActionView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}

/// Administrators' actions, newest first: rollbacks requested, unmerges, review decisions,
/// configuration changes (with the configuration before and after), cancels, triggers and plans
/// applied. A token limited to some projects sees the actions on those.
#[utoipa::path(get, path = "/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Malformed filter or cursor", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn audit(
    admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>> {
    if let Some(project_id) = query.project_id {
        admin.ensure_project(project_id)?;
    }
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = query.cursor.as_deref().map(page::decode_id_cursor).transpose()?;
    let filter = ActionFilter {
        scope: admin.project_scope(),
        project_id: query.project_id,
        action: query.action,
        before,
        limit: limit + 1,
    };
    let rows = admin_actions::list(&state.db, &filter).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|row| row.id.to_string()) } else { None };
    Ok(axum::Json(AuditPage { actions: rows.into_iter().map(ActionView::from).collect(), next_cursor }))
}
