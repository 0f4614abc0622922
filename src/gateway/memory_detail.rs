//! `GET /memories/{id}` (one memory with its provenance) and `GET /memories/{id}/changes`
//! (every audit row that touched it, a job's or a person's).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    changes::{ChangeView, ChangesPage},
    error::{ApiError, ErrorBody, Result},
    extract::{Path, Query},
    page,
    views::MemoryView,
};
use crate::domain::{ArchiveReason, MemoryType, MergedUnit, StoredMemory};
use crate::store::{changes, memories};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Where a memory came from and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Provenance {
    /// The memories it was consolidated from (a consolidated memory's `consolidated_from`).
    pub sources: Vec<Uuid>,
    /// The memories a synthesis was written from.
    pub synthesized_from: Vec<Uuid>,
    /// The memory that replaced it: its `duplicate_of`, else the newest consolidated memory
    /// listing it among its sources. Null while nothing did.
    pub consolidated_into: Option<Uuid>,
    /// Synthesis memories written from it.
    pub syntheses: Vec<Uuid>,
    /// The newer memory that supersedes it as an update of the same fact (`value_guard=auto`,
    /// or an approved review); null while it is not archived as superseded.
    pub superseded_by: Option<Uuid>,
    /// A consolidated memory's text unit by unit (sentence, line, list item, title), each with
    /// the sources that state it; empty for other memories.
    pub merged_units: Vec<MergedUnit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryDetail {
    #[serde(flatten)]
    pub memory: MemoryView,
    pub provenance: Provenance,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DetailQuery {
    /// Include the embedding (default false).
    pub include_embedding: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemoryChangesQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_memory)).routes(routes!(memory_changes))
}

/// The memory, if it exists in a project the token covers; another project's memory is
/// answered exactly as an unknown one.
pub async fn authorized_memory(state: &AppState, admin: &Admin, id: Uuid) -> Result<StoredMemory> {
    let memory = memories::get(&state.db, id).await?.filter(|memory| admin.may_see(memory.project_id));
    let memory = memory.ok_or_else(|| ApiError::NotFound(format!("memory {id} does not exist")))?;
    Span::current().record("project_id", tracing::field::display(memory.project_id));
    Ok(memory)
}

/// One memory with its provenance: sources, syntheses, what it was consolidated into.
#[utoipa::path(get, path = "/memories/{id}", tag = "memories",
    params(("id" = Uuid, Path), DetailQuery),
    responses(
        (status = 200, body = MemoryDetail),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn get_memory(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<DetailQuery>,
) -> Result<axum::Json<MemoryDetail>> {
    let memory = authorized_memory(&state, &admin, id).await?;
    let consolidated_into = match memory.duplicate_of {
        Some(replacement) => Some(replacement),
        None => memories::consolidated_into(&state.db, memory.project_id, id).await?,
    };
    let superseded_by = if memory.is_archived && memory.archive_reason == Some(ArchiveReason::Superseded) {
        changes::superseded_by(&state.db, id).await?
    } else {
        None
    };
    let provenance = Provenance {
        sources: memory.consolidated_from.clone().unwrap_or_default(),
        synthesized_from: memory.synthesized_from.clone().unwrap_or_default(),
        consolidated_into,
        syntheses: memories::syntheses_of(&state.db, memory.project_id, id).await?,
        superseded_by,
        merged_units: if memory.memory_type == MemoryType::Consolidated {
            changes::merged_units(&state.db, id).await?
        } else {
            Vec::new()
        },
    };
    let memory = MemoryView::new(memory, query.include_embedding.unwrap_or(false));
    Ok(axum::Json(MemoryDetail { memory, provenance }))
}

/// Every audit row that touched the memory, in write order: consolidation jobs, rollbacks and
/// manual archive, unarchive and reuse.
#[utoipa::path(get, path = "/memories/{id}/changes", tag = "memories",
    params(("id" = Uuid, Path), MemoryChangesQuery),
    responses(
        (status = 200, body = ChangesPage),
        (status = 400, description = "Malformed id, limit or cursor", body = ErrorBody),
        (status = 404, description = "No such memory", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn memory_changes(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<MemoryChangesQuery>,
) -> Result<axum::Json<ChangesPage>> {
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query.cursor.as_deref().map(page::decode_id_cursor).transpose()?;
    authorized_memory(&state, &admin, id).await?;
    let rows = changes::for_memory(&state.db, id, after, limit + 1).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|row| row.id.to_string()) } else { None };
    Ok(axum::Json(ChangesPage { changes: rows.into_iter().map(ChangeView::from).collect(), next_cursor }))
}
