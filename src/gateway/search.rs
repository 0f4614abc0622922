//! `POST /projects/{id}/memories/search`: the memories nearest to an embedding (cosine).

use std::{cmp::Reverse, collections::BinaryHeap};

use axum::extract::State;
use futures::TryStreamExt;
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
    slots::Refusal,
    views::MemoryView,
};
use crate::domain::StoredMemory;
use crate::{
    domain::MemoryType,
    interchange::{MAX_TEXT_BYTES, check_embedding},
    llm::texts::SETTING,
    store::{embedding, memories},
};

const DEFAULT_RESULTS: u32 = 10;
const MAX_RESULTS: u32 = 100;

#[derive(Debug, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Of the project's embedding dimension: finite numbers, not all zero. This or `query`.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 16384)]
    pub embedding: Option<Vec<f32>>,
    /// A text to search by, embedded by the service (needs EMBEDDING_BASE_URL; else 400). This or
    /// `embedding`; at most 65 536 bytes.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 65536)]
    pub query: Option<String>,
    /// Results, 1 to 100 (default 10).
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "crate::domain::integral::optional_integer")]
    pub limit: Option<u32>,
    /// Rank archived memories too (default false).
    #[serde(default)]
    pub include_archived: bool,
    /// Rank memories merged into another too (default false).
    #[serde(default)]
    pub include_duplicates: bool,
    #[schema(inline)]
    pub memory_type: Option<MemoryType>,
    /// Leave out results less similar than this (-1 to 1).
    #[schema(minimum = -1, maximum = 1)]
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

/// The memories nearest to an embedding, or to a text the service embeds (EMBEDDING_BASE_URL);
/// archived and duplicate memories only when asked.
#[utoipa::path(post, path = "/projects/{id}/memories/search", tag = "memories",
    params(("id" = Uuid, Path)), request_body = SearchRequest,
    responses(
        (status = 200, body = SearchResults),
        (status = 400, description = "Malformed id or body, or a `query` text with no EMBEDDING_BASE_URL set",
            body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "Wrong dimension or an invalid field", body = ErrorBody),
        (status = 429, description = "SEARCH_MAX_CONCURRENT searches are running already", body = ErrorBody,
            headers(("retry-after" = u32, description = "Seconds to wait"))),
        (status = 503, description = "The search would rank more than SEARCH_MAX_CANDIDATES embeddings, \
                                       or the database is unavailable", body = ErrorBody),
        (status = 502, description = "The embeddings endpoint failed to embed the query text", body = ErrorBody),
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
    Ok(axum::Json(run(&state, admin.subject(), project_id, request).await?))
}

/// The search itself, for a caller whose token covers the project; `holder` is who holds the
/// search slot (the token's subject).
pub async fn run(state: &AppState, holder: &str, project_id: Uuid, request: SearchRequest) -> Result<SearchResults> {
    let limit = match request.limit.unwrap_or(DEFAULT_RESULTS) {
        limit if (1..=MAX_RESULTS).contains(&limit) => limit as usize,
        limit => {
            return Err(ApiError::Unprocessable(format!("limit: must be between 1 and {MAX_RESULTS}, got {limit}")));
        }
    };
    if request.min_similarity.is_some_and(|min| !(-1.0..=1.0).contains(&min)) {
        return Err(ApiError::Unprocessable("min_similarity: must be between -1 and 1".to_owned()));
    }
    let project = projects::existing(state, project_id).await?;
    let mut dim = project.embedding_dim.and_then(|dim| usize::try_from(dim).ok());
    let query = match (request.embedding, request.query) {
        (Some(embedding), None) => {
            check_embedding(&embedding, &mut dim)
                .map_err(|message| ApiError::Unprocessable(format!("embedding: {message}")))?;
            Some(embedding)
        }
        (None, Some(text)) => embed_query(state, text, dim).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::Unprocessable("send `embedding` or `query`, not both".to_owned()));
        }
        (None, None) => {
            return Err(ApiError::Unprocessable(
                "embedding: required, or `query` (a text the service embeds when EMBEDDING_BASE_URL is set)".to_owned(),
            ));
        }
    };
    let Some(query) = query.filter(|_| project.embedding_dim.is_some()) else {
        return Ok(SearchResults { results: Vec::new() });
    };
    let _permit = state.searches.take(holder).map_err(|refusal| match refusal {
        Refusal::Full => ApiError::TooManyRequests(format!(
            "{} searches are running, the most SEARCH_MAX_CONCURRENT allows; retry later",
            state.config.search_max_concurrent
        )),
        Refusal::HolderFull { per_holder } => ApiError::TooManyRequests(format!(
            "this token has {per_holder} searches running, half of SEARCH_MAX_CONCURRENT; retry later"
        )),
    })?;
    let cap = state.config.search_max_candidates;
    let cap_i64 = i64::try_from(cap).unwrap_or(i64::MAX);
    let count = memories::count_search_candidates(
        &state.db,
        project_id,
        request.include_archived,
        request.include_duplicates,
        request.memory_type,
        cap_i64,
    )
    .await?;
    if count > cap_i64 {
        return Err(ApiError::Unavailable(format!(
            "this search would rank more than {cap} embeddings (SEARCH_MAX_CANDIDATES); narrow it with memory_type \
             or leave out archived and duplicate memories"
        )));
    }
    let mut candidates = memories::search_candidates(
        &state.db,
        project_id,
        request.include_archived,
        request.include_duplicates,
        request.memory_type,
    );
    let mut best = TopK::new(limit, request.min_similarity.unwrap_or(-1.0), &query);
    while let Some((id, bytes)) = candidates.try_next().await? {
        best.offer(id, &embedding::decode(&bytes)?);
    }
    drop(candidates);
    let ranked = best.into_sorted();
    let ids: Vec<Uuid> = ranked.iter().map(|(_, id)| *id).collect();
    let mut rows: std::collections::HashMap<Uuid, StoredMemory> =
        memories::get_many(&state.db, &ids).await?.into_iter().map(|row| (row.id, row)).collect();
    let results = ranked
        .into_iter()
        .filter_map(|(similarity, id)| {
            rows.remove(&id)
                .map(|row| SearchHit { similarity, memory: MemoryView::new(row, request.include_embedding) })
        })
        .collect();
    Ok(SearchResults { results })
}

/// The query text's embedding (None when the project has no embeddings yet: nothing to rank).
async fn embed_query(state: &AppState, text: String, dim: Option<usize>) -> Result<Option<Vec<f32>>> {
    if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES || text.contains('\0') {
        return Err(ApiError::Unprocessable(format!(
            "query: must be 1 to {MAX_TEXT_BYTES} bytes of text, not blank, without NUL characters"
        )));
    }
    let Some(embedder) = &state.embedder else {
        return Err(ApiError::BadRequest(format!(
            "query: searching by text needs {SETTING} (an OpenAI-compatible embeddings endpoint), which this \
             gateway does not have; set it, or send `embedding` instead"
        )));
    };
    if dim.is_none() {
        return Ok(None);
    }
    let (mut vectors, _usage) = embedder.embed(&[text], dim).await?;
    Ok(vectors.pop())
}

/// The `limit` most similar memories seen so far, least similar on top of the heap.
struct TopK<'q> {
    limit: usize,
    min_similarity: f32,
    query: &'q [f32],
    query_norm: f64,
    heap: BinaryHeap<Reverse<Scored>>,
}

/// Similarity first, then the smaller id ranks higher (stable order for ties).
#[derive(Debug, PartialEq)]
struct Scored(f32, Reverse<Uuid>);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then_with(|| self.1.cmp(&other.1))
    }
}

impl<'q> TopK<'q> {
    fn new(limit: usize, min_similarity: f32, query: &'q [f32]) -> Self {
        Self { limit, min_similarity, query, query_norm: norm(query), heap: BinaryHeap::with_capacity(limit + 1) }
    }

    /// Computed in f64: any finite f32 vector has a finite, non-zero f64 norm (unless all zeros),
    /// where in f32 the squares of large values overflow and of tiny ones vanish.
    fn offer(&mut self, id: Uuid, embedding: &[f32]) {
        let denominator = self.query_norm * norm(embedding);
        if embedding.len() != self.query.len() || denominator == 0.0 || !denominator.is_finite() {
            return;
        }
        let dot = self.query.iter().zip(embedding).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
        let similarity = ((dot / denominator) as f32).clamp(-1.0, 1.0);
        if similarity < self.min_similarity {
            return;
        }
        self.heap.push(Reverse(Scored(similarity, Reverse(id))));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// Most similar first; ties in id order.
    fn into_sorted(self) -> Vec<(f32, Uuid)> {
        let mut ranked: Vec<Scored> = self.heap.into_iter().map(|Reverse(scored)| scored).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        ranked.into_iter().map(|Scored(similarity, Reverse(id))| (similarity, id)).collect()
    }
}

fn norm(vector: &[f32]) -> f64 {
    vector.iter().map(|value| f64::from(*value).powi(2)).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_most_similar_in_order_with_ties_by_id() {
        let query = [1.0, 0.0];
        let mut best = TopK::new(2, 0.0, &query);
        let (a, b, c, d) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
        best.offer(c, &[1.0, 1.0]);
        best.offer(b, &[2.0, 0.0]);
        best.offer(a, &[3.0, 0.0]);
        best.offer(d, &[-1.0, 0.0]);
        best.offer(Uuid::from_u128(5), &[0.0, 0.0]);
        let ranked = best.into_sorted();
        assert_eq!(ranked.iter().map(|(_, id)| *id).collect::<Vec<_>>(), vec![a, b], "equal scores: smaller id first");
        assert!((ranked[0].0 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn huge_and_tiny_finite_values_still_have_a_direction() {
        let query = [f32::MAX, f32::MAX];
        let mut best = TopK::new(3, -1.0, &query);
        best.offer(Uuid::from_u128(1), &[1e-30, 1e-30]);
        best.offer(Uuid::from_u128(2), &[-f32::MAX, -f32::MAX]);
        best.offer(Uuid::from_u128(3), &[f32::MAX, 0.0]);
        let ranked = best.into_sorted();
        let similarities: Vec<f32> = ranked.iter().map(|(similarity, _)| *similarity).collect();
        assert_eq!(ranked.iter().map(|(_, id)| id.as_u128()).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((similarities[0] - 1.0).abs() < 1e-6, "{similarities:?}");
        assert!((similarities[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6, "{similarities:?}");
        assert!((similarities[2] + 1.0).abs() < 1e-6, "{similarities:?}");
    }
}
