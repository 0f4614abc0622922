//! `POST /projects/{id}/memories/search`: the memories nearest to an embedding (cosine).

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
    projects,
    views::{MemoryView, memory_type_schema},
};
use crate::interchange::check_embedding;
use crate::{
    engine::model::MemoryType,
    store::memories::{self, MemoryRow},
};

const DEFAULT_RESULTS: u32 = 10;
const MAX_RESULTS: u32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Of the project's embedding dimension.
    pub embedding: Vec<f32>,
    /// Results, 1 to 100 (default 10).
    pub limit: Option<u32>,
    /// Rank archived memories too (default false).
    #[serde(default)]
    pub include_archived: bool,
    /// Rank memories merged into another too (default false).
    #[serde(default)]
    pub include_duplicates: bool,
    #[schema(schema_with = memory_type_schema)]
    pub memory_type: Option<MemoryType>,
    /// Leave out results less similar than this (-1 to 1).
    pub min_similarity: Option<f32>,
    /// Include each result's embedding (default false).
    #[serde(default)]
    pub include_embedding: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    /// Cosine similarity to the query, -1 to 1.
    pub similarity: f32,
    pub memory: MemoryView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// Most similar first; ties in id order.
    pub results: Vec<SearchHit>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// The memories nearest to an embedding; archived and duplicate memories only when asked.
#[utoipa::path(post, path = "/projects/{id}/memories/search", tag = "memories",
    params(("id" = Uuid, Path)), request_body = SearchRequest,
    responses(
        (status = 200, body = SearchResults),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "Wrong dimension or an invalid field", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn search(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(request): Json<SearchRequest>,
) -> Result<axum::Json<SearchResults>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let limit = match request.limit.unwrap_or(DEFAULT_RESULTS) {
        limit if (1..=MAX_RESULTS).contains(&limit) => limit as usize,
        limit => {
            return Err(ApiError::Unprocessable(format!("limit: must be between 1 and {MAX_RESULTS}, got {limit}")));
        }
    };
    if request.min_similarity.is_some_and(|min| !(-1.0..=1.0).contains(&min)) {
        return Err(ApiError::Unprocessable("min_similarity: must be between -1 and 1".to_owned()));
    }
    let project = projects::existing(&state, project_id).await?;
    let mut dim = project.embedding_dim.and_then(|dim| usize::try_from(dim).ok());
    check_embedding(&request.embedding, &mut dim)
        .map_err(|message| ApiError::Unprocessable(format!("embedding: {message}")))?;
    if project.embedding_dim.is_none() {
        return Ok(axum::Json(SearchResults { results: Vec::new() }));
    }
    let rows =
        memories::searchable(&state.db, project_id, request.include_archived, request.include_duplicates).await?;
    let rows: Vec<MemoryRow> = match request.memory_type {
        Some(wanted) => rows.into_iter().filter(|row| row.memory_type == wanted.as_str()).collect(),
        None => rows,
    };
    let query = request.embedding;
    let min_similarity = request.min_similarity.unwrap_or(-1.0);
    // Scoring a large project is CPU work: off the request threads.
    let ranked = tokio::task::spawn_blocking(move || rank(&query, rows, limit, min_similarity))
        .await
        .map_err(|error| ApiError::Internal(error.into()))??;
    let results = ranked
        .into_iter()
        .map(|(similarity, row)| Ok(SearchHit { similarity, memory: MemoryView::new(row, request.include_embedding)? }))
        .collect::<Result<_>>()?;
    Ok(axum::Json(SearchResults { results }))
}

fn rank(query: &[f32], rows: Vec<MemoryRow>, limit: usize, min_similarity: f32) -> Result<Vec<(f32, MemoryRow)>> {
    let query_norm = norm(query);
    let mut scored = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(embedding) = row.embedding()? else { continue };
        if embedding.len() != query.len() {
            continue;
        }
        let denominator = query_norm * norm(&embedding);
        if denominator == 0.0 {
            continue;
        }
        let similarity = query.iter().zip(&embedding).map(|(a, b)| a * b).sum::<f32>() / denominator;
        if similarity >= min_similarity {
            scored.push((similarity.clamp(-1.0, 1.0), row));
        }
    }
    scored.sort_by(|(a, left), (b, right)| b.total_cmp(a).then_with(|| left.id.cmp(&right.id)));
    scored.truncate(limit);
    Ok(scored)
}

fn norm(vector: &[f32]) -> f32 {
    vector.iter().map(|value| value * value).sum::<f32>().sqrt()
}
