//! The review queue (DESIGN.md §11): `GET /projects/{id}/reviews` (each review with both
//! memories), `POST /reviews/{id}/approve`, `POST /reviews/{id}/reject` and
//! `POST /projects/{id}/reviews/settle` (every open review matching a filter, after a preview).
//! Approving applies the suggestion (the older memory is superseded by the newer: archived with
//! reason `superseded`) in one transaction, after checking that neither memory changed since the
//! review was opened; each decision is an audit row and an admin action naming who decided.

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
    error::{ApiError, ErrorBody, Result},
    extract::{Json, Path, Query},
    page,
};
use crate::{
    domain::{
        AdminAction, ArchiveReason, ChangeOperation, MemoryType, ReviewKind, ReviewStatus, ReviewSuggestion,
        StoredMemory,
    },
    store::{
        admin_actions::{self, NewAdminAction},
        changes::{self, NewChange},
        memories,
        reviews::{self, ReviewFilter, ReviewRow},
    },
};

const DEFAULT_PAGE: u32 = 50;
/// Reviews one settlement decides, so that a call ends well inside the request timeout.
const MAX_SETTLE: usize = 500;
const MAX_PAGE: u32 = 200;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatusFilter {
    Open,
    Approved,
    Rejected,
}

impl From<ReviewStatusFilter> for ReviewStatus {
    fn from(filter: ReviewStatusFilter) -> Self {
        match filter {
            ReviewStatusFilter::Open => ReviewStatus::Open,
            ReviewStatusFilter::Approved => ReviewStatus::Approved,
            ReviewStatusFilter::Rejected => ReviewStatus::Rejected,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams, schemars::JsonSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// `open`, `approved` or `rejected`; all when absent.
    #[param(inline)]
    pub status: Option<ReviewStatusFilter>,
    /// Only reviews of this kind.
    #[param(inline)]
    pub kind: Option<ReviewKind>,
    /// Only reviews whose pair is at least this similar (-1 to 1).
    #[param(minimum = -1, maximum = 1)]
    pub min_similarity: Option<f32>,
    /// Only reviews whose pair is at most this similar (-1 to 1).
    #[param(minimum = -1, maximum = 1)]
    pub max_similarity: Option<f32>,
    /// Only reviews this job proposed (or last brought up to date).
    pub job_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-f]{32}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    pub review_id: Uuid,
    pub project_id: Uuid,
    /// The job that proposed it.
    pub job_id: Option<Uuid>,
    /// `possible_update`: near-identical memories that state different values.
    pub kind: ReviewKind,
    pub older_memory_id: Uuid,
    pub newer_memory_id: Uuid,
    /// The versions the review was opened on: approving checks them.
    pub older_version: i64,
    pub newer_version: i64,
    pub similarity: f32,
    /// `{"kind": "value"|"polarity", "left": [older's values], "right": [newer's values]}`.
    #[schema(value_type = Object)]
    pub difference: serde_json::Value,
    /// `supersede`: approving archives the older memory as superseded by the newer.
    pub suggestion: ReviewSuggestion,
    /// `open`, `approved` or `rejected`.
    pub status: ReviewStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The older memory as it is now; null when it is gone.
    pub older: Option<ReviewedMemory>,
    /// The newer memory as it is now; null when it is gone.
    pub newer: Option<ReviewedMemory>,
}

/// A reviewed memory as it is now, to judge the review by.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewedMemory {
    pub id: Uuid,
    /// Its execution summary.
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub reuse_count: i32,
    /// `active`, `duplicate` or `archived`.
    pub status: MemoryStatus,
    pub provenance: ReviewedProvenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryStatus {
    Active,
    Duplicate,
    Archived,
}

/// Where a reviewed memory came from, as its row says (`GET /memories/{id}` has the rest).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewedProvenance {
    pub memory_type: MemoryType,
    pub task_id: Option<String>,
    /// A consolidated memory's original sources.
    pub sources: Vec<Uuid>,
    /// A synthesis memory's originals.
    pub synthesized_from: Vec<Uuid>,
    /// The memory a duplicate was merged into.
    pub duplicate_of: Option<Uuid>,
    pub archive_reason: Option<ArchiveReason>,
}

impl From<StoredMemory> for ReviewedMemory {
    fn from(memory: StoredMemory) -> Self {
        let status = match (memory.is_duplicate, memory.is_archived) {
            (true, _) => MemoryStatus::Duplicate,
            (false, true) => MemoryStatus::Archived,
            (false, false) => MemoryStatus::Active,
        };
        Self {
            id: memory.id,
            text: memory.execution_summary,
            created_at: memory.created_at,
            reuse_count: memory.reused_count,
            status,
            provenance: ReviewedProvenance {
                memory_type: memory.memory_type,
                task_id: memory.task_id,
                sources: memory.consolidated_from.unwrap_or_default(),
                synthesized_from: memory.synthesized_from.unwrap_or_default(),
                duplicate_of: memory.duplicate_of,
                archive_reason: memory.archive_reason,
            },
        }
    }
}

impl From<ReviewRow> for ReviewView {
    fn from(row: ReviewRow) -> Self {
        Self {
            review_id: row.id,
            project_id: row.project_id,
            job_id: row.job_id,
            kind: row.kind,
            older_memory_id: row.older_memory_id,
            newer_memory_id: row.newer_memory_id,
            older_version: row.older_version,
            newer_version: row.newer_version,
            similarity: row.similarity,
            difference: row.difference.0,
            suggestion: row.suggestion,
            status: row.status,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            created_at: row.created_at,
            older: None,
            newer: None,
        }
    }
}

impl ReviewView {
    /// The review with its two memories as they are now.
    async fn with_current_memories(self, db: &sqlx::PgPool) -> Result<ReviewView> {
        let found = memories::get_many(db, &[self.older_memory_id, self.newer_memory_id]).await?;
        let take = |id: Uuid| found.iter().find(|m| m.id == id).cloned().map(ReviewedMemory::from);
        Ok(ReviewView { older: take(self.older_memory_id), newer: take(self.newer_memory_id), ..self })
    }

    /// Each review with its two memories, read in one query.
    async fn with_memories(db: &sqlx::PgPool, rows: Vec<ReviewRow>) -> Result<Vec<ReviewView>> {
        let ids: Vec<Uuid> = rows.iter().flat_map(|r| [r.older_memory_id, r.newer_memory_id]).collect();
        let found: std::collections::HashMap<Uuid, StoredMemory> =
            memories::get_many(db, &ids).await?.into_iter().map(|m| (m.id, m)).collect();
        let take = |id: Uuid| found.get(&id).cloned().map(ReviewedMemory::from);
        Ok(rows
            .into_iter()
            .map(|row| {
                let (older, newer) = (take(row.older_memory_id), take(row.newer_memory_id));
                ReviewView { older, newer, ..ReviewView::from(row) }
            })
            .collect())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// `approve` or `reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl From<Decision> for ReviewStatus {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Approve => ReviewStatus::Approved,
            Decision::Reject => ReviewStatus::Rejected,
        }
    }
}

/// Settles every open review matching the filter (all of the project's when none is given).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    pub decision: Decision,
    pub kind: Option<ReviewKind>,
    #[schema(minimum = -1, maximum = 1)]
    pub min_similarity: Option<f32>,
    #[schema(minimum = -1, maximum = 1)]
    pub max_similarity: Option<f32>,
    pub job_id: Option<Uuid>,
    /// Only count the reviews it would settle; change nothing (default false).
    pub preview: Option<bool>,
}

/// A review a settlement left open, and why (the message a single decision would answer).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Skipped {
    pub review_id: Uuid,
    pub reason: String,
}

/// With `preview`: `{matching}`; otherwise `{settled, skipped}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SettleResponse {
    Preview {
        /// Open reviews the filter matches.
        matching: usize,
    },
    Settled {
        settled: usize,
        skipped: Vec<Skipped>,
        /// Matching reviews beyond this call's MAX_SETTLE (500), still open: call again.
        remaining: usize,
    },
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reviews))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(settle))
}

/// The filter of a listing or settlement, checked (similarities in -1..1, min not above max); the
/// message of what is wrong otherwise.
fn filter(
    status: Option<ReviewStatus>,
    kind: Option<ReviewKind>,
    min_similarity: Option<f32>,
    max_similarity: Option<f32>,
    job_id: Option<Uuid>,
) -> Result<ReviewFilter, String> {
    for (name, value) in [("min_similarity", min_similarity), ("max_similarity", max_similarity)] {
        if let Some(value) = value.filter(|v| !(-1.0..=1.0).contains(v)) {
            return Err(format!("{name}: must be between -1 and 1, got {value}"));
        }
    }
    if let (Some(min), Some(max)) = (min_similarity, max_similarity)
        && min > max
    {
        return Err(format!("min_similarity: {min} is above max_similarity {max}"));
    }
    Ok(ReviewFilter { status, kind, min_similarity, max_similarity, job_id })
}

/// A project's review queue, oldest first, each review with both memories as they are now.
#[utoipa::path(get, path = "/projects/{id}/reviews", tag = "reviews",
    params(("id" = Uuid, Path), ReviewQuery),
    responses(
        (status = 200, body = ReviewPage),
        (status = 400, description = "Malformed id, filter or cursor, or a similarity out of range", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn list_reviews(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Query(query): Query<ReviewQuery>,
) -> Result<axum::Json<ReviewPage>> {
    list(&state, &admin, project_id, query).await.map(axum::Json)
}

/// One page of a project's review queue (the route above and the MCP tool list_reviews).
pub async fn list(state: &AppState, admin: &Admin, project_id: Uuid, query: ReviewQuery) -> Result<ReviewPage> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let limit = page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query.cursor.as_deref().map(page::decode_job_cursor).transpose()?;
    let filter =
        filter(query.status.map(Into::into), query.kind, query.min_similarity, query.max_similarity, query.job_id)
            .map_err(ApiError::BadRequest)?;
    super::projects::existing(state, project_id).await?;
    let rows = reviews::list(&state.db, project_id, &filter, after, limit + 1).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|r| page::encode_job_cursor(r.created_at, r.id)) } else { None };
    Ok(ReviewPage { reviews: ReviewView::with_memories(&state.db, rows).await?, next_cursor })
}

/// Approves or rejects every open review matching the filter, oldest first, at most 500 a call
/// (`remaining` says how many more match), each exactly as a single decision (its own
/// transaction, audit row and admin action). A review a decision refuses
/// (a memory changed since it was opened, decided meanwhile) is left open and listed in `skipped`.
/// With `preview`, only counts them.
#[utoipa::path(post, path = "/projects/{id}/reviews/settle", tag = "reviews",
    params(("id" = Uuid, Path)),
    request_body = SettleRequest,
    responses(
        (status = 200, description = "`{matching}` with preview, else `{settled, skipped, remaining}`", body = SettleResponse),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 422, description = "A similarity out of range (named in the message)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn settle(
    admin: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(request): Json<SettleRequest>,
) -> Result<axum::Json<SettleResponse>> {
    Span::current().record("project_id", tracing::field::display(project_id));
    admin.ensure_project(project_id)?;
    let filter =
        filter(Some(ReviewStatus::Open), request.kind, request.min_similarity, request.max_similarity, request.job_id)
            .map_err(ApiError::Unprocessable)?;
    super::projects::existing(&state, project_id).await?;
    let ids = reviews::matching_ids(&state.db, project_id, &filter).await?;
    if request.preview.unwrap_or(false) {
        return Ok(axum::Json(SettleResponse::Preview { matching: ids.len() }));
    }
    let remaining = ids.len().saturating_sub(MAX_SETTLE);
    let (mut settled, mut skipped) = (0, Vec::new());
    for review_id in ids.into_iter().take(MAX_SETTLE) {
        match decide(&state, &admin, review_id, request.decision.into()).await {
            Ok(_) => settled += 1,
            Err(ApiError::Conflict(reason) | ApiError::NotFound(reason)) => skipped.push(Skipped { review_id, reason }),
            Err(other) => return Err(other),
        }
    }
    tracing::info!(settled, skipped = skipped.len(), "reviews settled");
    Ok(axum::Json(SettleResponse::Settled { settled, skipped, remaining }))
}

/// Approves a review: the older memory is superseded by the newer one (archived, reason
/// `superseded`, reversible with `/memories/{id}/unarchive`).
#[utoipa::path(post, path = "/reviews/{id}/approve", tag = "reviews",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Approved and applied", body = ReviewView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such review, or one of a project the token does not cover", body = ErrorBody),
        (status = 409, description = "Decided already, or a memory changed since the review was opened \
                                       (named in the message)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn approve(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ReviewView>> {
    let decided = decide(&state, &admin, id, ReviewStatus::Approved).await?;
    Ok(axum::Json(decided.with_current_memories(&state.db).await?))
}

/// Rejects a review: the memories stay as they are, apart, and the pair is not proposed again.
#[utoipa::path(post, path = "/reviews/{id}/reject", tag = "reviews",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Rejected", body = ReviewView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such review, or one of a project the token does not cover", body = ErrorBody),
        (status = 409, description = "Decided already", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn reject(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ReviewView>> {
    let decided = decide(&state, &admin, id, ReviewStatus::Rejected).await?;
    Ok(axum::Json(decided.with_current_memories(&state.db).await?))
}

/// A review of a project outside the token is answered as an unknown one, and before anything is
/// locked: a foreign token can neither learn that it exists nor hold up its project's decisions.
pub async fn decide(state: &AppState, admin: &Admin, id: Uuid, decision: ReviewStatus) -> Result<ReviewView> {
    let not_found = || ApiError::NotFound(format!("review {id} does not exist"));
    let project_id = reviews::project_of(&state.db, id).await?.filter(|project| admin.may_see(*project));
    let project_id = project_id.ok_or_else(not_found)?;
    Span::current().record("project_id", tracing::field::display(project_id));
    let mut tx = state.db.begin().await?;
    let review = reviews::lock(&mut tx, id).await?.ok_or_else(not_found)?;
    if review.status != ReviewStatus::Open {
        return Err(ApiError::Conflict(format!("review {id} was {} already", review.status)));
    }
    let mut audit = Vec::new();
    if decision == ReviewStatus::Approved {
        audit.push(supersede(&mut tx, &review).await?);
    }
    let decided = reviews::decide(&mut tx, id, decision, admin.subject()).await?;
    audit.push(NewChange {
        operation: ChangeOperation::Review,
        memory_id: review.older_memory_id,
        previous_state: Some(serde_json::json!({"review_id": id, "status": review.status})),
        new_state: Some(serde_json::json!({
            "review_id": id,
            "status": decided.status,
            "newer_memory_id": review.newer_memory_id,
            "suggestion": review.suggestion,
        })),
        reason: format!("review {id} {}: {} vs {}", decided.status, review.older_memory_id, review.newer_memory_id),
        confidence: Some(review.similarity),
    });
    changes::insert_batch(&mut tx, None, review.project_id, admin.subject(), &audit).await?;
    let action = match decision {
        ReviewStatus::Approved => AdminAction::ReviewApproved,
        _ => AdminAction::ReviewRejected,
    };
    let details = serde_json::json!({
        "older_memory_id": review.older_memory_id,
        "newer_memory_id": review.newer_memory_id,
        "similarity": review.similarity,
    });
    admin_actions::record(
        &mut *tx,
        &NewAdminAction {
            actor: admin.subject(),
            action,
            project_id: Some(review.project_id),
            target_id: Some(id),
            details,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(decision = decision.as_str(), "review decided");
    Ok(decided.into())
}

/// Archives the older memory as superseded, after checking that both memories are still active
/// and at the versions the review saw; returns the audit row.
async fn supersede(tx: &mut sqlx::PgConnection, review: &ReviewRow) -> Result<NewChange> {
    let ids = [review.older_memory_id, review.newer_memory_id];
    let current = memories::lock_versions(tx, &ids).await?;
    let expected = [(review.older_memory_id, review.older_version), (review.newer_memory_id, review.newer_version)];
    let conflicts: Vec<String> = expected
        .iter()
        .filter(|(id, version)| {
            !current.iter().any(|(cid, cv, archived, duplicate)| cid == id && cv == version && !archived && !duplicate)
        })
        .map(|(id, _)| id.to_string())
        .collect();
    if !conflicts.is_empty() {
        return Err(ApiError::Conflict(format!(
            "changed since the review was opened (edited, merged, archived or deleted): {}",
            conflicts.join(", ")
        )));
    }
    memories::archive(tx, &[review.older_memory_id], ArchiveReason::Superseded).await?;
    Ok(NewChange {
        operation: ChangeOperation::Archive,
        memory_id: review.older_memory_id,
        previous_state: Some(serde_json::json!({
            "is_archived": false, "archived_at": null, "archive_reason": null, "version": review.older_version,
        })),
        new_state: Some(serde_json::json!({
            "is_archived": true,
            "archive_reason": ArchiveReason::Superseded,
            "superseded_by": review.newer_memory_id,
            "review_id": review.id,
            "version": review.older_version + 1,
        })),
        reason: format!("superseded by {} (review {} approved)", review.newer_memory_id, review.id),
        confidence: Some(review.similarity),
    })
}
