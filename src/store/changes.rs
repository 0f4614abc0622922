//! The audit trail: one row per change, written in bulk, read by job.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, types::Json};
use uuid::Uuid;

use super::Result;
use crate::domain::{ChangeOperation, MergedUnit};

#[derive(Debug, Clone)]
pub struct NewChange {
    pub operation: ChangeOperation,
    pub memory_id: Uuid,
    pub previous_state: Option<serde_json::Value>,
    pub new_state: Option<serde_json::Value>,
    pub reason: String,
    pub confidence: Option<f32>,
}

impl NewChange {
    /// Bytes the audit row writes: its states as JSON text and its reason.
    pub fn bytes(&self) -> u64 {
        let json = |state: &Option<serde_json::Value>| state.as_ref().map_or(0, |v| v.to_string().len());
        (json(&self.previous_state) + json(&self.new_state) + self.reason.len()) as u64
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub job_id: Option<Uuid>,
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub operation: ChangeOperation,
    pub memory_id: Uuid,
    pub previous_state: Option<Json<serde_json::Value>>,
    pub new_state: Option<Json<serde_json::Value>>,
    pub reason: Option<String>,
    pub confidence: Option<f32>,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
}

/// Writes all rows in one statement; `job_id` is None for manual changes.
pub async fn insert_batch(
    conn: &mut PgConnection,
    job_id: Option<Uuid>,
    project_id: Uuid,
    changed_by: &str,
    changes: &[NewChange],
) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let operations: Vec<&str> = changes.iter().map(|c| c.operation.as_str()).collect();
    let memory_ids: Vec<Uuid> = changes.iter().map(|c| c.memory_id).collect();
    let previous: Vec<Option<serde_json::Value>> = changes.iter().map(|c| c.previous_state.clone()).collect();
    let new: Vec<Option<serde_json::Value>> = changes.iter().map(|c| c.new_state.clone()).collect();
    let reasons: Vec<&str> = changes.iter().map(|c| c.reason.as_str()).collect();
    let confidence: Vec<Option<f32>> = changes.iter().map(|c| c.confidence).collect();
    Ok(sqlx::query(
        "INSERT INTO consolidation_changes (job_id, project_id, operation, memory_id, previous_state, new_state,
                                            reason, confidence, changed_by)
         SELECT $1, $2, r.operation, r.memory_id, r.previous, r.new, r.reason, r.confidence, $3
           FROM UNNEST($4::text[], $5::uuid[], $6::jsonb[], $7::jsonb[], $8::text[], $9::real[])
                WITH ORDINALITY AS r(operation, memory_id, previous, new, reason, confidence, n)
          ORDER BY r.n",
    )
    .bind(job_id)
    .bind(project_id)
    .bind(changed_by)
    .bind(&operations)
    .bind(&memory_ids)
    .bind(&previous)
    .bind(&new)
    .bind(&reasons)
    .bind(&confidence)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// One page of a job's changes in write order, optionally of one operation.
pub async fn for_job(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    operation: Option<ChangeOperation>,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<ChangeRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM consolidation_changes
          WHERE job_id = $1 AND ($2::text IS NULL OR operation = $2) AND id > $3
          ORDER BY id LIMIT $4",
    )
    .bind(job_id)
    .bind(operation.map(|operation| operation.as_str()))
    .bind(after_id.unwrap_or(0))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Changes to the given memories made after `since` by anything other than `job_id`.
pub async fn later_changes(
    db: impl PgExecutor<'_>,
    memory_ids: &[Uuid],
    job_id: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<ChangeRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM consolidation_changes
          WHERE memory_id = ANY($1) AND changed_at > $3 AND job_id IS DISTINCT FROM $2 ORDER BY id",
    )
    .bind(memory_ids)
    .bind(job_id)
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// Deletes audit rows older than `cutoff`, and marks the jobs that lost rows as purged (their
/// rollback is gone, not refused); returns how many rows went.
pub async fn delete_older_than(db: impl PgExecutor<'_>, cutoff: DateTime<Utc>) -> Result<u64> {
    let purged: i64 = sqlx::query_scalar(
        "WITH purged AS (DELETE FROM consolidation_changes WHERE changed_at < $1 RETURNING job_id),
              marked AS (UPDATE consolidation_jobs SET audit_purged_at = now()
                          WHERE id IN (SELECT job_id FROM purged WHERE job_id IS NOT NULL)
                            AND audit_purged_at IS NULL)
         SELECT count(*) FROM purged",
    )
    .bind(cutoff)
    .fetch_one(db)
    .await?;
    Ok(purged as u64)
}

/// One page of every audit row that touched a memory (job or manual), in write order.
pub async fn for_memory(
    db: impl PgExecutor<'_>,
    memory_id: Uuid,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<ChangeRow>> {
    Ok(sqlx::query_as("SELECT * FROM consolidation_changes WHERE memory_id = $1 AND id > $2 ORDER BY id LIMIT $3")
        .bind(memory_id)
        .bind(after_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// The memory that superseded `memory_id`, as its newest superseding audit row names it (a job
/// with `value_guard=auto`, or an approved review); None when no row does.
pub async fn superseded_by(db: impl PgExecutor<'_>, memory_id: Uuid) -> Result<Option<Uuid>> {
    let named: Option<Option<String>> = sqlx::query_scalar(
        "SELECT new_state ->> 'superseded_by' FROM consolidation_changes
          WHERE memory_id = $1 AND operation = 'archive' AND new_state ? 'superseded_by'
          ORDER BY id DESC LIMIT 1",
    )
    .bind(memory_id)
    .fetch_optional(db)
    .await?;
    Ok(named.flatten().and_then(|id| id.parse().ok()))
}

/// The units of a consolidated memory's text with the sources that state each, as the merge that
/// wrote it recorded them (empty for a memory written before units were recorded).
pub async fn merged_units(db: impl PgExecutor<'_>, memory_id: Uuid) -> Result<Vec<MergedUnit>> {
    let units: Option<Option<Json<Vec<MergedUnit>>>> = sqlx::query_scalar(
        "SELECT new_state -> 'units' FROM consolidation_changes
          WHERE memory_id = $1 AND operation = 'merge' AND previous_state IS NULL AND new_state ? 'units'
          ORDER BY id LIMIT 1",
    )
    .bind(memory_id)
    .fetch_optional(db)
    .await?;
    Ok(units.flatten().map(|units| units.0).unwrap_or_default())
}
