//! The review queue (`consolidation_reviews`): possible updates the value guard held back, and
//! the decisions people made on them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;
pub use crate::domain::ReviewStatus;
use crate::domain::{Difference, ReviewKind, ReviewSuggestion};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReviewRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub job_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub kind: ReviewKind,
    pub older_memory_id: Uuid,
    pub newer_memory_id: Uuid,
    pub older_version: i64,
    pub newer_version: i64,
    pub similarity: f32,
    pub difference: Json<serde_json::Value>,
    #[sqlx(try_from = "String")]
    pub suggestion: ReviewSuggestion,
    #[sqlx(try_from = "String")]
    pub status: ReviewStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, project_id, job_id, kind, older_memory_id, newer_memory_id, older_version, newer_version,
    similarity, difference, suggestion, status, decided_by, decided_at, created_at";

#[derive(Debug, Clone)]
pub struct NewReview {
    pub id: Uuid,
    pub kind: ReviewKind,
    pub older: (Uuid, i64),
    pub newer: (Uuid, i64),
    pub similarity: f32,
    pub difference: Difference,
    pub suggestion: ReviewSuggestion,
}

/// What proposing reviews did: rows opened, and open rows of the same pairs brought up to date
/// (versions, similarity, values), so that an open review can always be approved against the
/// memories as the latest job saw them. A pair already judged is left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposed {
    pub opened: Vec<Uuid>,
    pub refreshed: Vec<Uuid>,
}

pub async fn open_batch(
    conn: &mut PgConnection,
    project_id: Uuid,
    job_id: Uuid,
    reviews: &[NewReview],
) -> Result<Proposed> {
    // One row per pair, either way round: a second proposal of a pair in one statement would
    // make ON CONFLICT touch its row twice, which PostgreSQL refuses.
    let mut seen = BTreeSet::new();
    let reviews: Vec<&NewReview> = reviews
        .iter()
        .filter(|r| r.older.0 != r.newer.0 && seen.insert((r.older.0.min(r.newer.0), r.older.0.max(r.newer.0))))
        .collect();
    if reviews.is_empty() {
        return Ok(Proposed::default());
    }
    let column = |f: fn(&NewReview) -> Uuid| reviews.iter().map(|r| f(r)).collect::<Vec<Uuid>>();
    let versions = |f: fn(&NewReview) -> i64| reviews.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let kinds: Vec<&str> = reviews.iter().map(|r| r.kind.as_str()).collect();
    let suggestions: Vec<&str> = reviews.iter().map(|r| r.suggestion.as_str()).collect();
    let similarity: Vec<f32> = reviews.iter().map(|r| r.similarity).collect();
    let differences: Vec<Json<&Difference>> = reviews.iter().map(|r| Json(&r.difference)).collect();
    let rows: Vec<(Uuid, bool)> = sqlx::query_as(
        "INSERT INTO consolidation_reviews (id, project_id, job_id, kind, older_memory_id, newer_memory_id,
                                            older_version, newer_version, similarity, difference, suggestion)
         SELECT r.id, $1, $2, r.kind, r.older, r.newer, r.older_version, r.newer_version, r.similarity,
                r.difference, r.suggestion
           FROM UNNEST($3::uuid[], $4::text[], $5::uuid[], $6::uuid[], $7::bigint[], $8::bigint[], $9::real[],
                       $10::jsonb[], $11::text[])
                AS r(id, kind, older, newer, older_version, newer_version, similarity, difference, suggestion)
         ON CONFLICT (project_id, LEAST(older_memory_id, newer_memory_id), GREATEST(older_memory_id, newer_memory_id))
         DO UPDATE SET job_id = EXCLUDED.job_id, older_memory_id = EXCLUDED.older_memory_id,
                       newer_memory_id = EXCLUDED.newer_memory_id, older_version = EXCLUDED.older_version,
                       newer_version = EXCLUDED.newer_version, similarity = EXCLUDED.similarity,
                       difference = EXCLUDED.difference
                 WHERE consolidation_reviews.status = 'open'
         RETURNING id, xmax = 0 AS inserted",
    )
    .bind(project_id)
    .bind(job_id)
    .bind(column(|r| r.id))
    .bind(&kinds)
    .bind(column(|r| r.older.0))
    .bind(column(|r| r.newer.0))
    .bind(versions(|r| r.older.1))
    .bind(versions(|r| r.newer.1))
    .bind(&similarity)
    .bind(&differences)
    .bind(&suggestions)
    .fetch_all(&mut *conn)
    .await?;
    let mut proposed = Proposed::default();
    for (id, inserted) in rows {
        if inserted { proposed.opened.push(id) } else { proposed.refreshed.push(id) }
    }
    Ok(proposed)
}

/// Pairs (smaller id first) a person approved or rejected: the value guard proposes them no more.
pub async fn judged_pairs(db: impl PgExecutor<'_>, project_id: Uuid) -> Result<BTreeSet<(Uuid, Uuid)>> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT LEAST(older_memory_id, newer_memory_id), GREATEST(older_memory_id, newer_memory_id)
           FROM consolidation_reviews WHERE project_id = $1 AND status <> 'open'",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ReviewRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM consolidation_reviews WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// The project a review belongs to (a review never moves between projects).
pub async fn project_of(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT project_id FROM consolidation_reviews WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// The review, locked until the transaction ends.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<ReviewRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM consolidation_reviews WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Which reviews a listing or a bulk settlement takes (every field optional, all must hold).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReviewFilter {
    pub status: Option<ReviewStatus>,
    pub kind: Option<ReviewKind>,
    pub min_similarity: Option<f32>,
    pub max_similarity: Option<f32>,
    pub job_id: Option<Uuid>,
}

const FILTERED: &str = "project_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3)
    AND ($4::real IS NULL OR similarity >= $4) AND ($5::real IS NULL OR similarity <= $5)
    AND ($6::uuid IS NULL OR job_id = $6)";

/// One page of a project's reviews matching `filter`, oldest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    filter: &ReviewFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ReviewRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM consolidation_reviews
          WHERE {FILTERED} AND ($7::timestamptz IS NULL OR (created_at, id) > ($7, $8))
          ORDER BY created_at, id LIMIT $9"
    ))
    .bind(project_id)
    .bind(filter.status.map(ReviewStatus::as_str))
    .bind(filter.kind.map(ReviewKind::as_str))
    .bind(filter.min_similarity)
    .bind(filter.max_similarity)
    .bind(filter.job_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The ids of a project's reviews matching `filter`, oldest first.
pub async fn matching_ids(db: impl PgExecutor<'_>, project_id: Uuid, filter: &ReviewFilter) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(&format!("SELECT id FROM consolidation_reviews WHERE {FILTERED} ORDER BY created_at, id"))
        .bind(project_id)
        .bind(filter.status.map(ReviewStatus::as_str))
        .bind(filter.kind.map(ReviewKind::as_str))
        .bind(filter.min_similarity)
        .bind(filter.max_similarity)
        .bind(filter.job_id)
        .fetch_all(db)
        .await?)
}

/// Records a decision on an open review (locked by the caller).
pub async fn decide(conn: &mut PgConnection, id: Uuid, status: ReviewStatus, decided_by: &str) -> Result<ReviewRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE consolidation_reviews SET status = $2, decided_by = $3, decided_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(decided_by)
    .fetch_one(&mut *conn)
    .await?)
}
