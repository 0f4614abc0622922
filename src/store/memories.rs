//! Task memories: bulk ingest, listing, search input, the consolidation snapshot and manual
//! archive/reuse.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{Result, StoreError, embedding};
use crate::engine::model::{MemorySnapshot, MemoryType, PlaybookEntrySnapshot, ProjectSnapshot};

/// A memory to insert; `embedding` is already validated against the project's dimension.
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub id: Uuid,
    pub task_id: Option<String>,
    pub execution_summary: String,
    pub memory_type: MemoryType,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    pub tags: Vec<String>,
    pub files: Vec<String>,
    pub embedding: Option<Vec<f32>>,
    pub success: Option<bool>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
}

/// Consolidation columns of a memory created by a job.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub consolidated_from: Option<Vec<Uuid>>,
    pub synthesized_from: Option<Vec<Uuid>>,
    pub synthesis_confidence: Option<f32>,
    pub needs_review: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MemoryRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub task_id: Option<String>,
    pub execution_summary: String,
    #[schema(schema_with = crate::interchange::memory_type_schema)]
    pub memory_type: String,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    pub tags: Vec<String>,
    pub files: Vec<String>,
    /// Raw little-endian f32; the API shows it decoded, and only when asked.
    #[serde(skip)]
    pub context_embedding: Option<Vec<u8>>,
    pub success: Option<bool>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
    pub is_duplicate: bool,
    pub duplicate_of: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub consolidated_from: Option<Vec<Uuid>>,
    pub consolidated_at: Option<DateTime<Utc>>,
    pub synthesized_from: Option<Vec<Uuid>>,
    pub synthesized_at: Option<DateTime<Utc>>,
    pub synthesis_confidence: Option<f32>,
    pub needs_review: bool,
    pub is_archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub archive_reason: Option<String>,
}

impl MemoryRow {
    pub fn embedding(&self) -> Result<Option<Vec<f32>>> {
        self.context_embedding.as_deref().map(embedding::decode).transpose()
    }

    pub fn memory_type(&self) -> Result<MemoryType> {
        self.memory_type
            .parse()
            .map_err(|error: crate::engine::model::UnknownVariant| StoreError::Corrupt(error.to_string()))
    }

    fn into_snapshot(self) -> Result<MemorySnapshot> {
        Ok(MemorySnapshot {
            embedding: self.embedding()?,
            memory_type: self.memory_type()?,
            id: self.id,
            version: self.version,
            task_id: self.task_id,
            task_ids: vec![],
            execution_summary: self.execution_summary,
            goal: self.goal,
            result: self.result,
            feedback: self.feedback,
            tags: self.tags,
            files: self.files,
            success: self.success,
            reused_count: self.reused_count,
            last_reused_at: self.last_reused_at,
            learned_at: self.learned_at,
        })
    }
}

const SELECT_MEMORY: &str = "SELECT m.*, COALESCE((SELECT array_agg(f.path ORDER BY f.path) FROM memory_files f
                                                     WHERE f.memory_id = m.id), '{}') AS files
                             FROM task_memories m";

/// Inserts a batch in two statements (memories, then file links), whatever its size.
pub async fn insert_batch(
    conn: &mut PgConnection,
    project_id: Uuid,
    memories: &[NewMemory],
    provenance: &[Provenance],
) -> Result<u64> {
    let column = |f: &dyn Fn(&NewMemory) -> Option<String>| memories.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = memories.iter().map(|m| m.id).collect();
    let types: Vec<&str> = memories.iter().map(|m| m.memory_type.as_str()).collect();
    let summaries: Vec<&str> = memories.iter().map(|m| m.execution_summary.as_str()).collect();
    let tags: Vec<serde_json::Value> = memories.iter().map(|m| serde_json::json!(m.tags)).collect();
    let embeddings: Vec<Option<Vec<u8>>> =
        memories.iter().map(|m| m.embedding.as_deref().map(embedding::encode)).collect();
    let success: Vec<Option<bool>> = memories.iter().map(|m| m.success).collect();
    let reused: Vec<i32> = memories.iter().map(|m| m.reused_count).collect();
    let last_reused: Vec<Option<DateTime<Utc>>> = memories.iter().map(|m| m.last_reused_at).collect();
    let learned: Vec<DateTime<Utc>> = memories.iter().map(|m| m.learned_at).collect();
    let provenance_of = |i: usize| provenance.get(i).cloned().unwrap_or_default();
    let consolidated_from: Vec<Option<serde_json::Value>> =
        (0..memories.len()).map(|i| provenance_of(i).consolidated_from.map(|ids| serde_json::json!(ids))).collect();
    let synthesized_from: Vec<Option<serde_json::Value>> =
        (0..memories.len()).map(|i| provenance_of(i).synthesized_from.map(|ids| serde_json::json!(ids))).collect();
    let confidence: Vec<Option<f32>> = (0..memories.len()).map(|i| provenance_of(i).synthesis_confidence).collect();
    let review: Vec<bool> = (0..memories.len()).map(|i| provenance_of(i).needs_review).collect();

    let inserted = sqlx::query(
        "INSERT INTO task_memories (id, project_id, task_id, execution_summary, memory_type, goal, result, feedback,
                                   tags, context_embedding, success, reused_count, last_reused_at, learned_at,
                                   consolidated_from, consolidated_at, synthesized_from, synthesized_at,
                                   synthesis_confidence, needs_review)
         SELECT r.id, $1, r.task_id, r.summary, r.memory_type, r.goal, r.result, r.feedback,
                ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.embedding, r.success, r.reused, r.last_reused,
                r.learned,
                CASE WHEN r.cfrom IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(r.cfrom)::uuid) END,
                CASE WHEN r.cfrom IS NULL THEN NULL ELSE now() END,
                CASE WHEN r.sfrom IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(r.sfrom)::uuid) END,
                CASE WHEN r.sfrom IS NULL THEN NULL ELSE now() END,
                r.confidence, r.review
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::jsonb[], $10::bytea[], $11::bool[], $12::int[], $13::timestamptz[], $14::timestamptz[],
                     $15::jsonb[], $16::jsonb[], $17::real[], $18::bool[])
              AS r(id, task_id, summary, memory_type, goal, result, feedback, tags, embedding, success, reused,
                   last_reused, learned, cfrom, sfrom, confidence, review)",
    )
    .bind(project_id)
    .bind(&ids)
    .bind(column(&|m| m.task_id.clone()))
    .bind(&summaries)
    .bind(&types)
    .bind(column(&|m| m.goal.clone()))
    .bind(column(&|m| m.result.clone()))
    .bind(column(&|m| m.feedback.clone()))
    .bind(&tags)
    .bind(&embeddings)
    .bind(&success)
    .bind(&reused)
    .bind(&last_reused)
    .bind(&learned)
    .bind(&consolidated_from)
    .bind(&synthesized_from)
    .bind(&confidence)
    .bind(&review)
    .execute(&mut *conn)
    .await?
    .rows_affected();

    let (file_ids, paths): (Vec<Uuid>, Vec<&str>) =
        memories.iter().flat_map(|m| m.files.iter().map(move |path| (m.id, path.as_str()))).unzip();
    if !file_ids.is_empty() {
        sqlx::query(
            "INSERT INTO memory_files (memory_id, path) SELECT * FROM UNNEST($1::uuid[], $2::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&file_ids)
        .bind(&paths)
        .execute(&mut *conn)
        .await?;
    }
    Ok(inserted)
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub include_archived: bool,
    pub include_duplicates: bool,
    pub memory_type: Option<MemoryType>,
    /// Cursor: the last id of the previous page.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// One page in id order; the next cursor is the last row's id.
pub async fn list(db: impl PgExecutor<'_>, project_id: Uuid, filter: &ListFilter) -> Result<Vec<MemoryRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT_MEMORY}
         WHERE m.project_id = $1 AND ($2 OR NOT m.is_archived) AND ($3 OR NOT m.is_duplicate)
           AND ($4::text IS NULL OR m.memory_type = $4) AND ($5::uuid IS NULL OR m.id > $5)
         ORDER BY m.id LIMIT $6"
    ))
    .bind(project_id)
    .bind(filter.include_archived)
    .bind(filter.include_duplicates)
    .bind(filter.memory_type.map(|t| t.as_str()))
    .bind(filter.after)
    .bind(filter.limit)
    .fetch_all(db)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<MemoryRow>> {
    Ok(sqlx::query_as(&format!("{SELECT_MEMORY} WHERE m.id = $1")).bind(id).fetch_optional(db).await?)
}

pub async fn get_many(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<MemoryRow>> {
    Ok(sqlx::query_as(&format!("{SELECT_MEMORY} WHERE m.id = ANY($1) ORDER BY m.id")).bind(ids).fetch_all(db).await?)
}

/// The (id, embedding) of every memory a vector search ranks, streamed: only ids and vectors
/// travel, and nothing holds the whole project. Archived and duplicates only if asked.
pub fn search_candidates<'a>(
    db: &'a sqlx::PgPool,
    project_id: Uuid,
    include_archived: bool,
    include_duplicates: bool,
    memory_type: Option<MemoryType>,
) -> futures::stream::BoxStream<'a, Result<(Uuid, Vec<u8>), sqlx::Error>> {
    sqlx::query_as(
        "SELECT id, context_embedding FROM task_memories
          WHERE project_id = $1 AND context_embedding IS NOT NULL
            AND ($2 OR NOT is_archived) AND ($3 OR NOT is_duplicate) AND ($4::text IS NULL OR memory_type = $4)",
    )
    .bind(project_id)
    .bind(include_archived)
    .bind(include_duplicates)
    .bind(memory_type.map(|t| t.as_str()))
    .fetch(db)
}

/// Everything the engine plans from: active memories with their file links, and the active playbook.
pub async fn snapshot(conn: &mut PgConnection, project_id: Uuid) -> Result<ProjectSnapshot> {
    let embedding_dim: Option<i32> = sqlx::query_scalar("SELECT embedding_dim FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let rows: Vec<MemoryRow> = sqlx::query_as(&format!(
        "{SELECT_MEMORY} WHERE m.project_id = $1 AND NOT m.is_archived AND NOT m.is_duplicate ORDER BY m.id"
    ))
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    let memories = rows.into_iter().map(MemoryRow::into_snapshot).collect::<Result<Vec<_>>>()?;
    let playbook = super::playbook::active_entries(&mut *conn, project_id)
        .await?
        .into_iter()
        .map(|entry| {
            Ok(PlaybookEntrySnapshot {
                embedding: entry.embedding.as_deref().map(embedding::decode).transpose()?,
                id: entry.id,
                content: entry.content,
                category: entry.category,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ProjectSnapshot {
        project_id,
        embedding_dim: embedding_dim.and_then(|dim| usize::try_from(dim).ok()),
        memories,
        playbook,
    })
}

/// Current versions of the given memories, locked for update until the transaction ends.
pub async fn lock_versions(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<(Uuid, i64, bool, bool)>> {
    Ok(sqlx::query_as(
        "SELECT id, version, is_archived, is_duplicate FROM task_memories WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?)
}

/// Marks sources as duplicates of the memory that replaced them.
pub async fn mark_duplicates(conn: &mut PgConnection, sources: &[Uuid], duplicate_of: &[Uuid]) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories m SET is_duplicate = true, duplicate_of = r.target
         FROM UNNEST($1::uuid[], $2::uuid[]) AS r(id, target) WHERE m.id = r.id",
    )
    .bind(sources)
    .bind(duplicate_of)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

pub async fn unmark_duplicates(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    Ok(sqlx::query("UPDATE task_memories SET is_duplicate = false, duplicate_of = NULL WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

pub async fn archive(conn: &mut PgConnection, ids: &[Uuid], reason: &str) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories SET is_archived = true, archived_at = now(), archive_reason = $2
         WHERE id = ANY($1) AND NOT is_archived",
    )
    .bind(ids)
    .bind(reason)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

pub async fn unarchive(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories SET is_archived = false, archived_at = NULL, archive_reason = NULL
         WHERE id = ANY($1) AND is_archived",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Counts one reuse; false when the memory does not exist.
pub async fn record_reuse(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let updated =
        sqlx::query("UPDATE task_memories SET reused_count = reused_count + 1, last_reused_at = now() WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?
            .rows_affected();
    Ok(updated == 1)
}

/// Deletes memories a job created; file links go with them, audit rows stay.
pub async fn delete(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM task_memories WHERE id = ANY($1)").bind(ids).execute(&mut *conn).await?.rows_affected())
}
