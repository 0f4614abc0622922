//! `POST /projects/{id}/memories` (batch ingest) and `GET /projects/{id}/memories` (list).

use std::collections::HashSet;

use axum::{extract::State, http::StatusCode};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::Span;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ApiError, ErrorBody, Result},
    extract::{Json, Path, Query},
    page, projects,
    views::MemoryView,
};
pub use crate::interchange::MemoryInput;
use crate::{
    domain::MemoryType,
    store::{
        memories::{self, ListFilter},
        projects as project_store,
    },
};
use crate::{domain::NewMemory, llm::texts};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// 1 to INGEST_MAX_BATCH (default 1000) memories; more answer 413.
    #[schema(min_items = 1)]
    pub memories: Vec<MemoryInput>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    pub inserted: u64,
    /// In the order given.
    pub ids: Vec<Uuid>,
    /// The project's embedding dimension after this batch.
    pub embedding_dim: Option<i32>,
    /// Memories sent without `context_embedding` that the service embedded (EMBEDDING_BASE_URL).
    #[serde(default)]
    pub embedded: usize,
    /// Present when memories were stored without an embedding (no `context_embedding` and no
    /// EMBEDDING_BASE_URL): they are never clustered until they have one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include archived memories (default false).
    pub include_archived: Option<bool>,
    /// Include memories merged into another (default false).
    pub include_duplicates: Option<bool>,
    #[param(inline)]
    pub memory_type: Option<MemoryType>,
    /// Include each memory's embedding (default false).
    pub include_embedding: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryPage {
    /// In id order.
    pub memories: Vec<MemoryView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<Uuid>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest, list))
}

/// Stores a batch of memories in one transaction: all of them or none. A memory without
/// `context_embedding` is embedded by the service when EMBEDDING_BASE_URL is set; otherwise it is
/// stored without one and the answer warns.
#[utoipa::path(post, path = "/projects/{id}/memories", tag = "memories",
    params(("id" = Uuid, Path)), request_body = IngestRequest,
    responses(
        (status = 201, body = IngestResponse),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "A memory with one of these ids exists", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 422, description = "An invalid field, named as memories[i].field", body = ErrorBody),
        (status = 502, description = "The embeddings endpoint (EMBEDDING_BASE_URL) failed for memories sent \
                                       without context_embedding; nothing was stored", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn ingest(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(request): Json<IngestRequest>,
) -> Result<(StatusCode, axum::Json<IngestResponse>)> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let stored = store(&state, project_id, request.memories).await?;
    Ok((StatusCode::CREATED, axum::Json(stored)))
}

/// Validates, embeds what came without an embedding (when EMBEDDING_BASE_URL is set) and stores
/// the memories in one transaction: all of them or none. The caller has checked the token's scope.
pub async fn store(state: &AppState, project_id: Uuid, memories: Vec<MemoryInput>) -> Result<IngestResponse> {
    let max_batch = state.config.ingest_max_batch;
    if memories.len() > max_batch {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} memories in one batch; at most {max_batch} (INGEST_MAX_BATCH)",
            memories.len()
        )));
    }
    let project = projects::existing(state, project_id).await?;
    let known_dim = project.embedding_dim.and_then(|dim| usize::try_from(dim).ok());
    let (mut batch, batch_dim) = validate(memories, known_dim)?;
    // Before the transaction: a slow endpoint holds no connection, and a failing one stores nothing.
    let filled = texts::fill_missing(state.embedder.as_ref(), &mut batch, batch_dim.or(known_dim)).await?;
    let batch_dim = batch.iter().find_map(|memory| memory.embedding.as_ref().map(Vec::len));

    let mut tx = state.db.begin().await?;
    let mut embedding_dim = project.embedding_dim;
    if let Some(dim) = batch_dim {
        let wanted = i32::try_from(dim).map_err(|error| ApiError::Internal(error.into()))?;
        // The first batch with embeddings fixes the dimension; a concurrent first batch of
        // another dimension loses here, inside the transaction, and nothing of it is stored.
        let in_force = project_store::fix_embedding_dim(&mut *tx, project_id, wanted)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("project {project_id} does not exist")))?;
        if in_force != wanted {
            return Err(ApiError::Unprocessable(format!(
                "context_embedding: project {project_id} stores {in_force}-dimension embeddings, got {dim}"
            )));
        }
        embedding_dim = Some(in_force);
    }
    // An id taken by any memory is answered the same way whichever project holds it, so a
    // caller learns nothing about other projects; a race past this check still ends in a 409.
    let ids: Vec<Uuid> = batch.iter().map(|memory| memory.id).collect();
    if let Some(taken) = memories::existing_ids(&mut *tx, &ids).await?.first() {
        let index = ids.iter().position(|id| id == taken).unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "memories[{index}].id: {taken} is taken; choose another id or leave it out"
        )));
    }
    let inserted = memories::insert_batch(&mut tx, project_id, &batch).await?;
    tx.commit().await?;
    tracing::info!(inserted, embedded = filled.embedded, unembedded = filled.unembedded, "memories ingested");
    let ids = batch.iter().map(|memory| memory.id).collect();
    let warnings = filled.warning().into_iter().collect();
    Ok(IngestResponse { inserted, ids, embedding_dim, embedded: filled.embedded, warnings })
}

/// Checks every field; returns the memories to insert and the batch's embedding dimension.
pub fn validate(inputs: Vec<MemoryInput>, known_dim: Option<usize>) -> Result<(Vec<NewMemory>, Option<usize>)> {
    if inputs.is_empty() {
        return Err(ApiError::Unprocessable("memories: at least one memory is required".to_owned()));
    }
    let mut dim = known_dim;
    let mut seen = HashSet::with_capacity(inputs.len());
    let now = Utc::now();
    let mut batch = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let invalid =
            |field: &str, message: String| ApiError::Unprocessable(format!("memories[{index}].{field}: {message}"));
        let id = input.id.unwrap_or_else(Uuid::new_v4);
        if !seen.insert(id) {
            return Err(invalid("id", format!("{id} appears twice in the batch")));
        }
        input.validate(&mut dim).map_err(|error| invalid(error.field, error.message))?;
        batch.push(MemoryInput { id: Some(id), ..input }.into_new_memory(now));
    }
    let batch_dim = batch.iter().find_map(|memory| memory.embedding.as_ref().map(Vec::len));
    Ok((batch, batch_dim))
}

/// A project's memories in id order; archived and duplicate memories only when asked.
#[utoipa::path(get, path = "/projects/{id}/memories", tag = "memories",
    params(("id" = Uuid, Path), ListQuery),
    responses(
        (status = 200, body = MemoryPage),
        (status = 400, description = "Malformed id or filter", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<MemoryPage>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    projects::existing(&state, project_id).await?;
    let filter = ListFilter {
        include_archived: query.include_archived.unwrap_or(false),
        include_duplicates: query.include_duplicates.unwrap_or(false),
        memory_type: query.memory_type,
        after: query.cursor,
        limit: limit + 1,
    };
    let (rows, more) = page::split(memories::list(&state.db, project_id, &filter).await?, limit);
    let next_cursor = if more { rows.last().map(|row| row.id) } else { None };
    let with_embedding = query.include_embedding.unwrap_or(false);
    let memories = rows.into_iter().map(|row| MemoryView::new(row, with_embedding)).collect();
    Ok(axum::Json(MemoryPage { memories, next_cursor }))
}
