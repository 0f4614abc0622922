//! `GET /projects/{id}/playbook`: the project's playbook entries with the memories behind them.

use std::collections::HashMap;

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
    error::{ErrorBody, Result},
    extract::{Path, Query},
    page, projects,
};
use crate::domain::{MemoryType, StoredMemory};
use crate::store::{
    memories,
    playbook::{self, PlaybookEntry},
};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlaybookQuery {
    /// Include deactivated entries (a rolled-back promotion, say); default false.
    pub include_inactive: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// A memory an entry rests on, in brief (`GET /memories/{id}` has the rest).
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportingMemory {
    pub id: Uuid,
    #[schema(inline)]
    pub memory_type: MemoryType,
    pub execution_summary: String,
    pub is_duplicate: bool,
    pub is_archived: bool,
}

impl From<&StoredMemory> for SupportingMemory {
    fn from(row: &StoredMemory) -> Self {
        Self {
            id: row.id,
            memory_type: row.memory_type,
            execution_summary: row.execution_summary.clone(),
            is_duplicate: row.is_duplicate,
            is_archived: row.is_archived,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaybookEntryView {
    pub id: Uuid,
    pub content: String,
    pub category: String,
    pub tags: Vec<String>,
    /// 1 (low) to 10.
    pub priority: i32,
    pub is_active: bool,
    /// The memory it was promoted from.
    pub source_memory_id: Option<Uuid>,
    /// As recorded; a memory deleted since (by a rollback) is listed here but not below.
    pub supporting_memory_ids: Vec<Uuid>,
    pub supporting_memories: Vec<SupportingMemory>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaybookPage {
    /// In id order.
    pub entries: Vec<PlaybookEntryView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<Uuid>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_playbook))
}

/// The project's playbook: active entries (all with `include_inactive=true`), each with the
/// memories that support it.
#[utoipa::path(get, path = "/projects/{id}/playbook", tag = "projects",
    params(("id" = Uuid, Path), PlaybookQuery),
    responses(
        (status = 200, body = PlaybookPage),
        (status = 400, description = "Malformed id, limit or cursor", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn list_playbook(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Query(query): Query<PlaybookQuery>,
) -> Result<axum::Json<PlaybookPage>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    projects::existing(&state, project_id).await?;
    let include_inactive = query.include_inactive.unwrap_or(false);
    let rows = playbook::list(&state.db, project_id, include_inactive, query.cursor, limit + 1).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|row| row.id) } else { None };
    let mut wanted: Vec<Uuid> = rows.iter().flat_map(|row| row.supporting_memory_ids.iter().copied()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    // Only this project's memories, whatever an entry lists.
    let supporting: HashMap<Uuid, StoredMemory> = memories::get_many(&state.db, &wanted)
        .await?
        .into_iter()
        .filter(|row| row.project_id == project_id)
        .map(|row| (row.id, row))
        .collect();
    let entries = rows.into_iter().map(|entry| view(entry, &supporting)).collect();
    Ok(axum::Json(PlaybookPage { entries, next_cursor }))
}

fn view(entry: PlaybookEntry, supporting: &HashMap<Uuid, StoredMemory>) -> PlaybookEntryView {
    let supporting_memories =
        entry.supporting_memory_ids.iter().filter_map(|id| supporting.get(id)).map(SupportingMemory::from).collect();
    PlaybookEntryView {
        id: entry.id,
        content: entry.content,
        category: entry.category,
        tags: entry.tags,
        priority: entry.priority,
        is_active: entry.is_active,
        source_memory_id: entry.source_memory_id,
        supporting_memory_ids: entry.supporting_memory_ids,
        supporting_memories,
        created_at: entry.created_at,
        updated_at: entry.updated_at,
    }
}
