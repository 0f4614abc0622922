//! `POST /projects/{id}/memories` (batch ingest) and `GET /projects/{id}/memories` (list).

use std::collections::HashSet;

use axum::{extract::State, http::StatusCode};
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
    extract::{Json, Path, Query},
    page, projects,
    views::{MemoryView, memory_type_schema},
};
use crate::{
    engine::model::MemoryType,
    store::{
        memories::{self, ListFilter, NewMemory},
        projects as project_store,
    },
};

/// Largest text field (summary, goal, result, feedback), in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
const MAX_TASK_ID_CHARS: usize = 256;
const MAX_TAGS: usize = 64;
const MAX_TAG_CHARS: usize = 128;
const MAX_FILES: usize = 256;
const MAX_PATH_CHARS: usize = 4096;
/// The schema's bound on `embedding_dim`.
pub const MAX_EMBEDDING_DIM: usize = 16_384;
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// One memory in the interchange format (DESIGN.md §10).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryInput {
    /// Chosen by the caller, or generated.
    pub id: Option<Uuid>,
    pub task_id: Option<String>,
    /// Required, at most 64 KiB.
    pub execution_summary: String,
    #[schema(schema_with = memory_type_schema)]
    pub memory_type: MemoryType,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Paths of the files the memory is linked to.
    #[serde(default)]
    pub files: Vec<String>,
    /// One dimension per project, fixed by the first embedding stored.
    pub context_embedding: Option<Vec<f32>>,
    pub success: Option<bool>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    /// Default: now.
    pub learned_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// At most INGEST_MAX_BATCH (default 1000) memories; more answer 413.
    pub memories: Vec<MemoryInput>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    pub inserted: u64,
    /// In the order given.
    pub ids: Vec<Uuid>,
    /// The project's embedding dimension after this batch.
    pub embedding_dim: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include archived memories (default false).
    pub include_archived: Option<bool>,
    /// Include memories merged into another (default false).
    pub include_duplicates: Option<bool>,
    #[param(schema_with = memory_type_schema)]
    pub memory_type: Option<MemoryType>,
    /// Include each memory's embedding (default false).
    pub include_embedding: Option<bool>,
    /// Page size, 1 to 500 (default 50).
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

/// Stores a batch of memories in one transaction: all of them or none.
#[utoipa::path(post, path = "/projects/{id}/memories", tag = "memories",
    params(("id" = Uuid, Path)), request_body = IngestRequest,
    responses(
        (status = 201, body = IngestResponse),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "A memory with one of these ids exists", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 422, description = "An invalid field, named as memories[i].field", body = ErrorBody),
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
    let max_batch = state.config.ingest_max_batch;
    if request.memories.len() > max_batch {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} memories in one batch; at most {max_batch}",
            request.memories.len()
        )));
    }
    let project = projects::existing(&state, project_id).await?;
    let known_dim = project.embedding_dim.and_then(|dim| usize::try_from(dim).ok());
    let (batch, batch_dim) = validate(request.memories, known_dim)?;

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
    let inserted = memories::insert_batch(&mut tx, project_id, &batch, &[]).await?;
    tx.commit().await?;
    tracing::info!(inserted, "memories ingested");
    let ids = batch.iter().map(|memory| memory.id).collect();
    Ok((StatusCode::CREATED, axum::Json(IngestResponse { inserted, ids, embedding_dim })))
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
        if input.execution_summary.trim().is_empty() {
            return Err(invalid("execution_summary", "must not be empty".to_owned()));
        }
        let texts = [
            ("execution_summary", Some(&input.execution_summary)),
            ("goal", input.goal.as_ref()),
            ("result", input.result.as_ref()),
            ("feedback", input.feedback.as_ref()),
        ];
        for (field, text) in texts {
            if text.is_some_and(|text| text.len() > MAX_TEXT_BYTES) {
                return Err(invalid(field, format!("at most {MAX_TEXT_BYTES} bytes")));
            }
        }
        if input.task_id.as_ref().is_some_and(|task| task.chars().count() > MAX_TASK_ID_CHARS) {
            return Err(invalid("task_id", format!("at most {MAX_TASK_ID_CHARS} characters")));
        }
        if input.tags.len() > MAX_TAGS {
            return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        if input.tags.iter().any(|tag| tag.trim().is_empty() || tag.chars().count() > MAX_TAG_CHARS) {
            return Err(invalid("tags", format!("each tag must be 1 to {MAX_TAG_CHARS} characters")));
        }
        if input.files.len() > MAX_FILES {
            return Err(invalid("files", format!("at most {MAX_FILES} paths")));
        }
        if input.files.iter().any(|path| path.is_empty() || path.chars().count() > MAX_PATH_CHARS) {
            return Err(invalid("files", format!("each path must be 1 to {MAX_PATH_CHARS} characters")));
        }
        if input.reused_count < 0 {
            return Err(invalid("reused_count", "must not be negative".to_owned()));
        }
        if let Some(embedding) = &input.context_embedding {
            check_embedding(embedding, &mut dim).map_err(|message| invalid("context_embedding", message))?;
        }
        batch.push(NewMemory {
            id,
            task_id: input.task_id,
            execution_summary: input.execution_summary,
            memory_type: input.memory_type,
            goal: input.goal,
            result: input.result,
            feedback: input.feedback,
            tags: input.tags,
            files: input.files,
            embedding: input.context_embedding,
            success: input.success,
            reused_count: input.reused_count,
            last_reused_at: input.last_reused_at,
            learned_at: input.learned_at.unwrap_or(now),
        });
    }
    let batch_dim = batch.iter().find_map(|memory| memory.embedding.as_ref().map(Vec::len));
    Ok((batch, batch_dim))
}

/// A usable embedding of the dimension in force (the first one seen fixes it).
pub fn check_embedding(embedding: &[f32], dim: &mut Option<usize>) -> Result<(), String> {
    if embedding.is_empty() || embedding.len() > MAX_EMBEDDING_DIM {
        return Err(format!("must have 1 to {MAX_EMBEDDING_DIM} values, got {}", embedding.len()));
    }
    if let Some(expected) = *dim {
        if embedding.len() != expected {
            return Err(format!("the project's embeddings have {expected} dimensions, got {}", embedding.len()));
        }
    }
    if embedding.iter().any(|value| !value.is_finite()) {
        return Err("values must be finite 32-bit floats".to_owned());
    }
    if embedding.iter().all(|value| *value == 0.0) {
        return Err("must not be all zeros (it has no direction)".to_owned());
    }
    *dim = Some(embedding.len());
    Ok(())
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
    let memories = rows.into_iter().map(|row| MemoryView::new(row, with_embedding)).collect::<Result<_>>()?;
    Ok(axum::Json(MemoryPage { memories, next_cursor }))
}
