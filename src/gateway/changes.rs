//! `GET /consolidation/jobs/{job_id}/changes`: a job's audit rows in write order, in pages.

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
    extract::{Path, Query},
    page,
    status::authorized_job,
};
use crate::{
    domain::ChangeOperation,
    store::changes::{self, ChangeRow},
};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    pub operation: Option<ChangeOperation>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub id: i64,
    /// Absent for manual changes (archive, unarchive, reuse through the API).
    pub job_id: Option<Uuid>,
    pub project_id: Uuid,
    pub operation: ChangeOperation,
    pub memory_id: Uuid,
    #[schema(value_type = Option<Object>)]
    pub previous_state: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub new_state: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub confidence: Option<f32>,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
}

impl From<ChangeRow> for ChangeView {
    fn from(row: ChangeRow) -> Self {
        Self {
            id: row.id,
            job_id: row.job_id,
            project_id: row.project_id,
            operation: row.operation,
            memory_id: row.memory_id,
            previous_state: row.previous_state.map(|state| state.0),
            new_state: row.new_state.map(|state| state.0),
            reason: row.reason,
            confidence: row.confidence,
            changed_at: row.changed_at,
            changed_by: row.changed_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesPage {
    pub changes: Vec<ChangeView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_changes))
}

/// A job's audit rows, in the order they were written.
#[utoipa::path(get, path = "/consolidation/jobs/{job_id}/changes", tag = "consolidation",
    params(("job_id" = Uuid, Path), ChangesQuery),
    responses(
        (status = 200, body = ChangesPage),
        (status = 400, description = "Malformed id, filter or cursor", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn job_changes(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
    Query(query): Query<ChangesQuery>,
) -> Result<axum::Json<ChangesPage>> {
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query.cursor.as_deref().map(page::decode_id_cursor).transpose()?;
    let job = authorized_job(&state, &admin, job_id).await?;
    let rows = changes::for_job(&state.db, job.id, query.operation, after, limit + 1).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|row| row.id.to_string()) } else { None };
    Ok(axum::Json(ChangesPage { changes: rows.into_iter().map(ChangeView::from).collect(), next_cursor }))
}
