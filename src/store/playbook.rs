//! Playbook entries and their audit log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{Result, embedding};
use crate::domain::{EntryState, PlaybookOperation};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PlaybookEntry {
    pub id: Uuid,
    pub project_id: Uuid,
    pub content: String,
    pub category: String,
    pub tags: Vec<String>,
    pub priority: i32,
    pub supporting_memory_ids: Vec<Uuid>,
    #[serde(skip)]
    pub embedding: Option<Vec<u8>>,
    pub is_active: bool,
    pub source_memory_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewEntry {
    pub id: Uuid,
    pub content: String,
    pub category: String,
    pub tags: Vec<String>,
    pub priority: i32,
    pub supporting_memory_ids: Vec<Uuid>,
    pub embedding: Option<Vec<f32>>,
    pub source_memory_id: Option<Uuid>,
}

/// One page of a project's entries in id order: active ones only unless `include_inactive`.
pub async fn list(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    include_inactive: bool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PlaybookEntry>> {
    Ok(sqlx::query_as(
        "SELECT * FROM playbook_entries
          WHERE project_id = $1 AND ($2 OR is_active) AND ($3::uuid IS NULL OR id > $3)
          ORDER BY id LIMIT $4",
    )
    .bind(project_id)
    .bind(include_inactive)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn get_many(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<PlaybookEntry>> {
    Ok(sqlx::query_as("SELECT * FROM playbook_entries WHERE id = ANY($1) ORDER BY id").bind(ids).fetch_all(db).await?)
}

/// Adds entries (one statement) and logs each in `playbook_changes` with `operation`.
pub async fn insert_batch(
    conn: &mut PgConnection,
    project_id: Uuid,
    entries: &[NewEntry],
    operation: PlaybookOperation,
    reason: &str,
    job_id: Option<Uuid>,
    changed_by: &str,
) -> Result<u64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let contents: Vec<&str> = entries.iter().map(|e| e.content.as_str()).collect();
    let categories: Vec<&str> = entries.iter().map(|e| e.category.as_str()).collect();
    let tags: Vec<serde_json::Value> = entries.iter().map(|e| serde_json::json!(e.tags)).collect();
    let priorities: Vec<i32> = entries.iter().map(|e| e.priority).collect();
    let supporting: Vec<serde_json::Value> =
        entries.iter().map(|e| serde_json::json!(e.supporting_memory_ids)).collect();
    let embeddings: Vec<Option<Vec<u8>>> =
        entries.iter().map(|e| e.embedding.as_deref().map(embedding::encode)).collect();
    let sources: Vec<Option<Uuid>> = entries.iter().map(|e| e.source_memory_id).collect();
    let inserted = sqlx::query(
        "INSERT INTO playbook_entries (id, project_id, content, category, tags, priority, supporting_memory_ids,
                                       embedding, source_memory_id)
         SELECT r.id, $1, r.content, r.category, ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.priority,
                ARRAY(SELECT jsonb_array_elements_text(r.supporting)::uuid), r.embedding, r.source
           FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::int[], $7::jsonb[], $8::bytea[],
                       $9::uuid[]) AS r(id, content, category, tags, priority, supporting, embedding, source)",
    )
    .bind(project_id)
    .bind(&ids)
    .bind(&contents)
    .bind(&categories)
    .bind(&tags)
    .bind(&priorities)
    .bind(&supporting)
    .bind(&embeddings)
    .bind(&sources)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO playbook_changes (project_id, entry_id, operation, new_content, reason, related_memory_id,
                                       job_id, changed_by)
         SELECT $1, r.id, $4, r.content, $5, r.source, $6, $7
           FROM UNNEST($2::uuid[], $3::text[], $8::uuid[]) AS r(id, content, source)",
    )
    .bind(project_id)
    .bind(&ids)
    .bind(&contents)
    .bind(operation.as_str())
    .bind(reason)
    .bind(job_id)
    .bind(changed_by)
    .bind(&sources)
    .execute(&mut *conn)
    .await?;
    Ok(inserted)
}

/// An entry moving from one state to another (a follow, or its undo).
#[derive(Debug, Clone)]
pub struct Move {
    pub entry_id: Uuid,
    pub from: EntryState,
    pub to: EntryState,
}

/// Moves each entry that is active and still comes from `from.source_memory_id` to `to`, and
/// logs an `update` for each one moved; returns how many moved.
pub async fn move_entries(
    conn: &mut PgConnection,
    moves: &[Move],
    reason: &str,
    job_id: Option<Uuid>,
    changed_by: &str,
) -> Result<u64> {
    if moves.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = moves.iter().map(|m| m.entry_id).collect();
    let expected: Vec<Option<Uuid>> = moves.iter().map(|m| m.from.source_memory_id).collect();
    let sources: Vec<Option<Uuid>> = moves.iter().map(|m| m.to.source_memory_id).collect();
    let supporting: Vec<serde_json::Value> =
        moves.iter().map(|m| serde_json::json!(m.to.supporting_memory_ids)).collect();
    let contents: Vec<&str> = moves.iter().map(|m| m.to.content.as_str()).collect();
    let old_contents: Vec<&str> = moves.iter().map(|m| m.from.content.as_str()).collect();
    Ok(sqlx::query(
        "WITH moved AS (
             UPDATE playbook_entries e
                SET source_memory_id = r.source, content = r.content, updated_at = now(),
                    supporting_memory_ids = ARRAY(SELECT jsonb_array_elements_text(r.supporting)::uuid)
               FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::text[], $6::text[])
                    AS r(id, expected, source, supporting, content, old_content)
              WHERE e.id = r.id AND e.is_active AND e.source_memory_id IS NOT DISTINCT FROM r.expected
             RETURNING e.id, e.project_id, r.content, r.old_content, r.source)
         INSERT INTO playbook_changes (project_id, entry_id, operation, old_content, new_content, reason,
                                       related_memory_id, job_id, changed_by)
         SELECT project_id, id, 'update', old_content, content, $7, source, $8, $9 FROM moved",
    )
    .bind(&ids)
    .bind(&expected)
    .bind(&sources)
    .bind(&supporting)
    .bind(&contents)
    .bind(&old_contents)
    .bind(reason)
    .bind(job_id)
    .bind(changed_by)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// The follows recorded for entries that now come from one of `memory_ids` (latest per entry),
/// as moves back to where each entry came from.
pub async fn follows_back(conn: &mut PgConnection, memory_ids: &[Uuid]) -> Result<Vec<Move>> {
    let rows: Vec<(sqlx::types::Json<serde_json::Value>, sqlx::types::Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT DISTINCT ON (previous_state ->> 'entry_id') previous_state, new_state
           FROM consolidation_changes
          WHERE operation = 'promote' AND previous_state IS NOT NULL AND memory_id = ANY($1)
          ORDER BY previous_state ->> 'entry_id', id DESC",
    )
    .bind(memory_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().filter_map(|(previous, new)| Move::back(&previous.0, &new.0)).collect())
}

impl Move {
    /// From a follow's audit row: the move that undoes it.
    pub fn back(previous: &serde_json::Value, new: &serde_json::Value) -> Option<Move> {
        let state = |v: &serde_json::Value| serde_json::from_value::<EntryState>(v.clone()).ok();
        let entry_id = previous["entry_id"].as_str()?.parse().ok()?;
        Some(Move { entry_id, from: state(new)?, to: state(previous)? })
    }
}

/// Deactivates entries and logs a `delete` for each one that was active.
pub async fn deactivate(
    conn: &mut PgConnection,
    ids: &[Uuid],
    reason: &str,
    job_id: Option<Uuid>,
    changed_by: &str,
) -> Result<u64> {
    Ok(sqlx::query(
        "WITH deactivated AS (
             UPDATE playbook_entries SET is_active = false, updated_at = now()
              WHERE id = ANY($1) AND is_active RETURNING id, project_id, content)
         INSERT INTO playbook_changes (project_id, entry_id, operation, old_content, reason, job_id, changed_by)
         SELECT project_id, id, 'delete', content, $2, $3, $4 FROM deactivated",
    )
    .bind(ids)
    .bind(reason)
    .bind(job_id)
    .bind(changed_by)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PlaybookChange {
    pub id: i64,
    pub project_id: Uuid,
    pub entry_id: Uuid,
    #[sqlx(try_from = "String")]
    pub operation: PlaybookOperation,
    pub old_content: Option<String>,
    pub new_content: Option<String>,
    pub reason: Option<String>,
    pub related_memory_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

pub async fn changes_for_entry(db: impl PgExecutor<'_>, entry_id: Uuid) -> Result<Vec<PlaybookChange>> {
    Ok(sqlx::query_as("SELECT * FROM playbook_changes WHERE entry_id = $1 ORDER BY id")
        .bind(entry_id)
        .fetch_all(db)
        .await?)
}
