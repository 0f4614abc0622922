//! The review queue (DESIGN.md §11): `GET /projects/{id}/reviews`, `POST /reviews/{id}/approve`
//! and `POST /reviews/{id}/reject`. Approving applies the suggestion (the older memory is
//! superseded by the newer: archived with reason `superseded`) in one transaction, after checking
//! that neither memory changed since the review was opened; each decision is an audit row.

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
    extract::{Path, Query},
    page,
};
use crate::{
    domain::{ArchiveReason, ChangeOperation, ReviewKind, ReviewStatus, ReviewSuggestion},
    store::{
        changes::{self, NewChange},
        memories, projects,
        reviews::{self, ReviewRow},
    },
};

const DEFAULT_PAGE: u32 = 50;
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
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_reviews)).routes(routes!(approve)).routes(routes!(reject))
}

/// A project's review queue, oldest first.
#[utoipa::path(get, path = "/projects/{id}/reviews", tag = "reviews",
    params(("id" = Uuid, Path), ReviewQuery),
    responses(
        (status = 200, body = ReviewPage),
        (status = 400, description = "Malformed id, filter or cursor", body = ErrorBody),
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
    if projects::get(&state.db, project_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("project {project_id} does not exist")));
    }
    let rows = reviews::list(&state.db, project_id, query.status.map(Into::into), after, limit + 1).await?;
    let (rows, more) = page::split(rows, limit);
    let next_cursor = if more { rows.last().map(|r| page::encode_job_cursor(r.created_at, r.id)) } else { None };
    Ok(ReviewPage { reviews: rows.into_iter().map(ReviewView::from).collect(), next_cursor })
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
    decide(&state, &admin, id, ReviewStatus::Approved).await.map(axum::Json)
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
    decide(&state, &admin, id, ReviewStatus::Rejected).await.map(axum::Json)
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
