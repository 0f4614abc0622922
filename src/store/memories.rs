//! Task memories: bulk ingest, listing, search input, the consolidation snapshot and manual
//! archive/reuse.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Row, postgres::PgRow};
use uuid::Uuid;

use super::resident::{self, PlanningRow, ResidentRows, XidSnapshot};
use super::{Result, StoreError, embedding};
use crate::domain::{
    ArchiveReason, Embedding, Memory, MemoryType, NewMemory, PlaybookEntrySnapshot, ProjectSnapshot, StoredMemory,
    UnknownVariant,
};

/// A stored row as the domain's `StoredMemory`: kinds parsed, the embedding decoded.
impl<'r> sqlx::FromRow<'r, PgRow> for StoredMemory {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let embedding: Option<Vec<u8>> = row.try_get("context_embedding")?;
        Ok(StoredMemory {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            task_id: row.try_get("task_id")?,
            execution_summary: row.try_get("execution_summary")?,
            memory_type: vocabulary(row, "memory_type")?.ok_or_else(|| decode_error("memory_type", Missing))?,
            goal: row.try_get("goal")?,
            result: row.try_get("result")?,
            feedback: row.try_get("feedback")?,
            tags: row.try_get("tags")?,
            files: row.try_get("files")?,
            embedding: embedding
                .as_deref()
                .map(embedding::decode)
                .transpose()
                .map_err(|error| decode_error("context_embedding", error))?,
            success: row.try_get("success")?,
            reused_count: row.try_get("reused_count")?,
            last_reused_at: row.try_get("last_reused_at")?,
            learned_at: row.try_get("learned_at")?,
            is_duplicate: row.try_get("is_duplicate")?,
            duplicate_of: row.try_get("duplicate_of")?,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            consolidated_from: row.try_get("consolidated_from")?,
            consolidated_at: row.try_get("consolidated_at")?,
            synthesized_from: row.try_get("synthesized_from")?,
            synthesized_at: row.try_get("synthesized_at")?,
            synthesis_confidence: row.try_get("synthesis_confidence")?,
            needs_review: row.try_get("needs_review")?,
            is_archived: row.try_get("is_archived")?,
            archived_at: row.try_get("archived_at")?,
            archive_reason: vocabulary(row, "archive_reason")?,
            source_type: vocabulary(row, "source_type")?,
            task_ids: row.try_get("task_ids")?,
            pinned: row.try_get("pinned")?,
        })
    }
}

/// A closed-vocabulary column, parsed (None when it is null).
fn vocabulary<T: std::str::FromStr<Err = UnknownVariant>>(row: &PgRow, column: &str) -> sqlx::Result<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| text.parse().map_err(|error| decode_error(column, error))).transpose()
}

#[derive(Debug, thiserror::Error)]
#[error("null in a NOT NULL column")]
struct Missing;

fn decode_error(column: &str, error: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(error) }
}

const SELECT_MEMORY: &str = "SELECT m.*, COALESCE((SELECT array_agg(f.path ORDER BY f.path) FROM memory_files f
                                                     WHERE f.memory_id = m.id), '{}') AS files
                             FROM task_memories m";

/// Inserts a batch in two statements (memories, then file links), whatever its size.
pub async fn insert_batch(conn: &mut PgConnection, project_id: Uuid, memories: &[NewMemory]) -> Result<u64> {
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
    let provenance = |ids: &Vec<Uuid>| Some(serde_json::json!(ids)).filter(|_| !ids.is_empty());
    let consolidated_from: Vec<Option<serde_json::Value>> =
        memories.iter().map(|m| provenance(&m.consolidated_from)).collect();
    let synthesized_from: Vec<Option<serde_json::Value>> =
        memories.iter().map(|m| provenance(&m.synthesized_from)).collect();
    let confidence: Vec<Option<f32>> = memories.iter().map(|m| m.synthesis_confidence).collect();
    let review: Vec<bool> = memories.iter().map(|m| m.needs_review).collect();
    let source_types: Vec<Option<&str>> = memories.iter().map(|m| m.source_type.map(|t| t.as_str())).collect();
    let task_ids: Vec<serde_json::Value> = memories.iter().map(|m| serde_json::json!(m.task_ids)).collect();

    let inserted = sqlx::query(
        "INSERT INTO task_memories (id, project_id, task_id, execution_summary, memory_type, goal, result, feedback,
                                   tags, context_embedding, success, reused_count, last_reused_at, learned_at,
                                   consolidated_from, consolidated_at, synthesized_from, synthesized_at,
                                   synthesis_confidence, needs_review, source_type, task_ids)
         SELECT r.id, $1, r.task_id, r.summary, r.memory_type, r.goal, r.result, r.feedback,
                ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.embedding, r.success, r.reused, r.last_reused,
                r.learned,
                CASE WHEN r.cfrom IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(r.cfrom)::uuid) END,
                CASE WHEN r.cfrom IS NULL THEN NULL ELSE now() END,
                CASE WHEN r.sfrom IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(r.sfrom)::uuid) END,
                CASE WHEN r.sfrom IS NULL THEN NULL ELSE now() END,
                r.confidence, r.review, r.source_type, ARRAY(SELECT jsonb_array_elements_text(r.task_ids))
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::jsonb[], $10::bytea[], $11::bool[], $12::int[], $13::timestamptz[], $14::timestamptz[],
                     $15::jsonb[], $16::jsonb[], $17::real[], $18::bool[], $19::text[], $20::jsonb[])
              AS r(id, task_id, summary, memory_type, goal, result, feedback, tags, embedding, success, reused,
                   last_reused, learned, cfrom, sfrom, confidence, review, source_type, task_ids)",
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
    .bind(&source_types)
    .bind(&task_ids)
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
pub async fn list(db: impl PgExecutor<'_>, project_id: Uuid, filter: &ListFilter) -> Result<Vec<StoredMemory>> {
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

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<StoredMemory>> {
    Ok(sqlx::query_as(&format!("{SELECT_MEMORY} WHERE m.id = $1")).bind(id).fetch_optional(db).await?)
}

/// The project a memory belongs to (which never changes), without reading or locking the row's data.
pub async fn project_of(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT project_id FROM task_memories WHERE id = $1").bind(id).fetch_optional(db).await?)
}

/// The consolidated memory that lists `id` among its sources, newest first (a memory folded
/// into a later consolidated memory is listed by both).
pub async fn consolidated_into(db: impl PgExecutor<'_>, project_id: Uuid, id: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM task_memories
          WHERE project_id = $1 AND memory_type = 'consolidated' AND $2 = ANY(consolidated_from)
            AND archive_reason IS DISTINCT FROM 'rolled_back' AND archive_reason IS DISTINCT FROM 'unmerged'
          ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(project_id)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The synthesis memories written from `id`.
pub async fn syntheses_of(db: impl PgExecutor<'_>, project_id: Uuid, id: Uuid) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM task_memories
          WHERE project_id = $1 AND memory_type = 'synthesis' AND $2 = ANY(synthesized_from) ORDER BY id",
    )
    .bind(project_id)
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// Which of `ids` are taken by any memory, of any project.
pub async fn existing_ids(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM task_memories WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(db)
        .await?)
}

pub async fn get_many(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<StoredMemory>> {
    Ok(sqlx::query_as(&format!("{SELECT_MEMORY} WHERE m.id = ANY($1) ORDER BY m.id")).bind(ids).fetch_all(db).await?)
}

/// How many memories a vector search would rank, counted up to `cap + 1` only (so the count of
/// a huge project costs no more than the cap).
pub async fn count_search_candidates(
    db: impl PgExecutor<'_>,
    project_id: Uuid,
    include_archived: bool,
    include_duplicates: bool,
    memory_type: Option<MemoryType>,
    cap: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM task_memories
          WHERE project_id = $1 AND context_embedding IS NOT NULL
            AND ($2 OR NOT is_archived) AND ($3 OR NOT is_duplicate) AND ($4::text IS NULL OR memory_type = $4)
          LIMIT $5) AS candidates",
    )
    .bind(project_id)
    .bind(include_archived)
    .bind(include_duplicates)
    .bind(memory_type.map(|t| t.as_str()))
    .bind(cap.saturating_add(1))
    .fetch_one(db)
    .await?)
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

/// Embeddings a reader already holds, by id (a memory's or a playbook entry's) and the version
/// they were read at.
pub trait EmbeddingCache: Send + Sync {
    /// The embedding of memory `id` at `version`: a memory edited since (re-embedded, say) is
    /// never served from an older version.
    fn get(&self, project_id: Uuid, id: Uuid, version: i64) -> Option<Embedding>;
    fn put(&self, project_id: Uuid, id: Uuid, version: i64, embedding: &Embedding);
    /// Forgets the project's embeddings of memories no longer among `live` (merged away,
    /// archived, deleted by a rollback), so the budget holds what the next job reads.
    fn retain(&self, project_id: Uuid, live: &std::collections::HashSet<Uuid>);
    /// The project's rows kept by `keep_rows`, handed over (kept no longer) to be refreshed.
    fn take_rows(&self, project_id: Uuid) -> Option<ResidentRows>;
    fn keep_rows(&self, project_id: Uuid, rows: ResidentRows);
}

/// Reads the embeddings of `rows` that `cache` does not hold (all of them without a cache);
/// returns them and the bytes read.
async fn embeddings_of(
    conn: &mut PgConnection,
    project_id: Uuid,
    rows: &[&PlanningRow],
    cache: Option<&dyn EmbeddingCache>,
) -> Result<(HashMap<Uuid, Embedding>, u64)> {
    let wanted = rows.iter().filter(|r| r.has_embedding).map(|r| (r.id, r.embedding_version)).collect();
    cached_embeddings(conn, project_id, wanted, MEMORY_EMBEDDINGS, cache).await
}

const MEMORY_EMBEDDINGS: &str =
    "SELECT id, context_embedding FROM task_memories WHERE id = ANY($1) AND context_embedding IS NOT NULL";
const ENTRY_EMBEDDINGS: &str =
    "SELECT id, embedding FROM playbook_entries WHERE id = ANY($1) AND embedding IS NOT NULL";

/// The embeddings of `wanted` (id, version), as unit vectors where they have one: from `cache`
/// where it holds that version (shared, not copied), else read with `sql` (id, bytes),
/// normalised once and cached; returns them and the bytes read.
async fn cached_embeddings(
    conn: &mut PgConnection,
    project_id: Uuid,
    wanted: Vec<(Uuid, i64)>,
    sql: &str,
    cache: Option<&dyn EmbeddingCache>,
) -> Result<(HashMap<Uuid, Embedding>, u64)> {
    let mut found: HashMap<Uuid, Embedding> = HashMap::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for &(id, version) in &wanted {
        match cache.and_then(|c| c.get(project_id, id, version)) {
            Some(vector) => {
                found.insert(id, vector);
            }
            None => missing.push(id),
        }
    }
    let versions: HashMap<Uuid, i64> = wanted.into_iter().collect();
    let mut bytes_read = 0u64;
    for chunk in missing.chunks(EMBEDDING_BATCH) {
        let read: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(sql).bind(chunk).fetch_all(&mut *conn).await?;
        for (id, bytes) in read {
            bytes_read += bytes.len() as u64;
            let vector = Embedding::normalized_or_raw(embedding::decode(&bytes)?);
            if let (Some(cache), Some(&version)) = (cache, versions.get(&id)) {
                cache.put(project_id, id, version, &vector);
            }
            found.insert(id, vector);
        }
    }
    Ok((found, bytes_read))
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    content: String,
    category: String,
    supporting_memory_ids: Vec<Uuid>,
    source_memory_id: Option<Uuid>,
    updated_at: DateTime<Utc>,
    has_embedding: bool,
}

/// The project's active playbook entries, without their embeddings.
async fn entry_rows(conn: &mut PgConnection, project_id: Uuid) -> Result<Vec<EntryRow>> {
    Ok(sqlx::query_as(
        "SELECT id, content, category, supporting_memory_ids, source_memory_id, updated_at,
                embedding IS NOT NULL AS has_embedding
           FROM playbook_entries WHERE project_id = $1 AND is_active ORDER BY id",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// The entries with their embeddings, from `cache` where it holds them at the entry's last
/// update; returns them and the embedding bytes read.
async fn playbook_entries(
    conn: &mut PgConnection,
    project_id: Uuid,
    rows: Vec<EntryRow>,
    cache: Option<&dyn EmbeddingCache>,
) -> Result<(Vec<PlaybookEntrySnapshot>, u64)> {
    // An entry's update time is its version: every change to an entry sets it.
    let wanted = rows.iter().filter(|r| r.has_embedding).map(|r| (r.id, r.updated_at.timestamp_micros())).collect();
    let (mut found, bytes_read) = cached_embeddings(conn, project_id, wanted, ENTRY_EMBEDDINGS, cache).await?;
    let entries = rows
        .into_iter()
        .map(|row| PlaybookEntrySnapshot {
            embedding: found.remove(&row.id),
            id: row.id,
            content: row.content,
            category: row.category,
            supporting_memory_ids: row.supporting_memory_ids,
            source_memory_id: row.source_memory_id,
        })
        .collect();
    Ok((entries, bytes_read))
}

/// Embeddings read per statement when the cache misses.
const EMBEDDING_BATCH: usize = 10_000;

fn parse_type(text: &str) -> Result<MemoryType> {
    text.parse().map_err(|error: UnknownVariant| StoreError::Corrupt(error.to_string()))
}

/// The planner's view of a kept row, with its embedding.
fn planned_memory(row: &PlanningRow, embeddings: &mut HashMap<Uuid, Embedding>) -> Result<Memory> {
    Ok(Memory {
        id: row.id,
        version: row.version,
        memory_type: parse_type(&row.memory_type)?,
        source_type: row.source_type.as_deref().map(parse_type).transpose()?,
        task_id: None,
        execution_summary: String::new(),
        goal: None,
        result: None,
        feedback: None,
        tags: Vec::new(),
        files: Vec::new(),
        embedding: embeddings.remove(&row.id),
        success: None,
        reused_count: row.reused_count,
        last_reused_at: row.last_reused_at,
        learned_at: row.learned_at,
        consolidated_from: row.consolidated_from.clone(),
        synthesized_from: row.synthesized_from.clone(),
        task_ids: Vec::new(),
    })
}

/// What an incremental snapshot compares against: memories whose last write the base job's
/// `snapshot` (a `pg_snapshot` as text) could not see, unless that write was the base job's own (its audit row and the row's `updated_at` share the apply transaction's
/// timestamp), are fresh. A memory the base job wrote and something changed since (an unmerge,
/// a rollback of a later job, a hand) is fresh again.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshSince {
    pub base_job: Uuid,
    pub snapshot: String,
}

/// The ids among `rows` (active memories) new or changed since the base job: its snapshot could
/// not see their last write, and that write was not the base job's own.
async fn fresh_rows(
    conn: &mut PgConnection,
    since: &FreshSince,
    rows: &[&PlanningRow],
) -> Result<std::collections::BTreeSet<Uuid>> {
    let seen = XidSnapshot::parse(&since.snapshot)?;
    let own: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT memory_id, changed_at FROM consolidation_changes WHERE job_id = $1 AND memory_id IS NOT NULL",
    )
    .bind(since.base_job)
    .fetch_all(&mut *conn)
    .await?;
    let own: std::collections::HashSet<(Uuid, DateTime<Utc>)> = own.into_iter().collect();
    Ok(rows
        .iter()
        .filter(|r| !seen.sees_text(&r.written_xid) && !own.contains(&(r.id, r.updated_at)))
        .map(|r| r.id)
        .collect())
}

/// A snapshot and the embedding bytes read from the database for it (the cache's excluded).
pub struct Loaded {
    pub snapshot: ProjectSnapshot,
    pub embedding_bytes_read: u64,
}

/// Everything the engine clusters from: active memories (ids, versions, types, embeddings,
/// provenance, reuse), the embeddings of the consolidated memories' original sources, and the
/// active playbook. Texts are read later, only for what merges (`full_rows`). With `fresh`, the
/// scope lists the memories new or changed since the base job; otherwise it is a full run.
pub async fn snapshot(
    conn: &mut PgConnection,
    project_id: Uuid,
    fresh: Option<FreshSince>,
    cache: Option<&dyn EmbeddingCache>,
) -> Result<Loaded> {
    let embedding_dim: Option<i32> = sqlx::query_scalar("SELECT embedding_dim FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let kept = cache.and_then(|cache| cache.take_rows(project_id));
    let (resident, rows_read) = resident::refresh(&mut *conn, project_id, kept).await?;
    tracing::debug!(rows_read, rows = resident.len(), "planning rows brought up to date");
    let mut rows: Vec<&PlanningRow> = resident.rows().filter(|r| r.is_active()).collect();
    rows.sort_unstable_by_key(|r| r.id);
    let fresh_ids = match &fresh {
        Some(since) => Some(fresh_rows(&mut *conn, since, &rows).await?),
        None => None,
    };
    let mut originals: Vec<&PlanningRow> = resident.originals().iter().filter_map(|id| resident.get(id)).collect();
    originals.sort_unstable_by_key(|r| r.id);
    let entries = entry_rows(&mut *conn, project_id).await?;
    if let Some(cache) = cache {
        let live = rows.iter().chain(&originals).map(|r| r.id).chain(entries.iter().map(|e| e.id));
        cache.retain(project_id, &live.collect());
    }
    let (mut embeddings, mut embedding_bytes_read) = embeddings_of(&mut *conn, project_id, &rows, cache).await?;
    let (of_originals, bytes) = embeddings_of(&mut *conn, project_id, &originals, cache).await?;
    embeddings.extend(of_originals);
    embedding_bytes_read += bytes;
    let memories = rows.iter().map(|r| planned_memory(r, &mut embeddings)).collect::<Result<Vec<_>>>()?;
    let originals = originals.iter().map(|r| planned_memory(r, &mut embeddings)).collect::<Result<Vec<_>>>()?;
    if let Some(cache) = cache {
        cache.keep_rows(project_id, resident);
    }
    let (playbook, bytes) = playbook_entries(&mut *conn, project_id, entries, cache).await?;
    embedding_bytes_read += bytes;
    let snapshot = ProjectSnapshot {
        project_id,
        embedding_dim: embedding_dim.and_then(|dim| usize::try_from(dim).ok()),
        memories,
        originals,
        playbook,
        scope: crate::domain::Scope { fresh: fresh_ids, reason: String::new() },
        judged: super::reviews::judged_pairs(&mut *conn, project_id).await?,
        apart: super::undo::unmerge::kept_apart(&mut *conn, project_id).await?,
        pinned: pinned(&mut *conn, project_id).await?,
        outdated_syntheses: outdated_syntheses(&mut *conn, project_id).await?,
    };
    Ok(Loaded { snapshot, embedding_bytes_read })
}

/// Active syntheses with a member whose content changed after the synthesis was written (a
/// member created in the same transaction has the same timestamp, so it does not count).
async fn outdated_syntheses(conn: &mut PgConnection, project_id: Uuid) -> Result<std::collections::BTreeSet<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT s.id FROM task_memories s
          WHERE s.project_id = $1 AND s.memory_type = 'synthesis' AND NOT s.is_archived AND NOT s.is_duplicate
            AND EXISTS (SELECT 1 FROM task_memories m
                         WHERE m.id = ANY(s.synthesized_from) AND m.updated_at > s.updated_at)",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// The project's active pinned memories.
async fn pinned(conn: &mut PgConnection, project_id: Uuid) -> Result<std::collections::BTreeSet<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM task_memories WHERE project_id = $1 AND pinned AND NOT is_archived AND NOT is_duplicate",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// Pins or unpins memories; returns how many changed (a memory already so is left alone).
pub async fn set_pinned(conn: &mut PgConnection, ids: &[Uuid], pinned: bool) -> Result<u64> {
    Ok(sqlx::query("UPDATE task_memories SET pinned = $2 WHERE id = ANY($1) AND pinned <> $2")
        .bind(ids)
        .bind(pinned)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Full rows (texts, tags, files) of the given memories, for the merges and syntheses of a plan;
/// without their embeddings, which the snapshot holds already.
pub async fn full_rows(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Memory>> {
    let rows: Vec<StoredMemory> = sqlx::query_as(
        "SELECT m.id, m.project_id, m.task_id, m.execution_summary, m.memory_type, m.goal, m.result, m.feedback,
                m.tags, NULL::bytea AS context_embedding, m.success, m.reused_count, m.last_reused_at, m.learned_at,
                m.is_duplicate, m.duplicate_of, m.version, m.created_at, m.updated_at, m.consolidated_from,
                m.consolidated_at, m.synthesized_from, m.synthesized_at, m.synthesis_confidence, m.needs_review,
                m.is_archived, m.archived_at, m.archive_reason, m.source_type, m.task_ids, m.pinned,
                COALESCE((SELECT array_agg(f.path ORDER BY f.path) FROM memory_files f WHERE f.memory_id = m.id), '{}')
                    AS files
           FROM task_memories m WHERE m.id = ANY($1) ORDER BY m.id",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(StoredMemory::into_memory).collect())
}

/// The execution summaries of the given memories: what the value guard compares.
pub async fn summaries(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT id, execution_summary FROM task_memories WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await?)
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

pub async fn archive(conn: &mut PgConnection, ids: &[Uuid], reason: ArchiveReason) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories SET is_archived = true, archived_at = now(), archive_reason = $2
         WHERE id = ANY($1) AND NOT is_archived",
    )
    .bind(ids)
    .bind(reason.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

pub async fn unarchive(conn: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories SET is_archived = false, archived_at = NULL, archive_reason = NULL
         WHERE id = ANY($1) AND is_archived AND COALESCE(archive_reason, '') NOT IN ('rolled_back', 'unmerged')",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Where a reuse of `id` counts: the memory itself, or, when it was merged away, the active
/// memory its duplicate marks lead to. Only that holder is locked (walking the chain unlocked
/// keeps one lock order with the apply and the undo, which lock what they create first), and
/// the walk starts again if it was merged meanwhile. None when `id` does not exist.
pub async fn reuse_holder(conn: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>> {
    for _ in 0..MAX_DUPLICATE_CHAIN {
        let Some(holder) = chain_end(&mut *conn, id).await? else { return Ok(None) };
        let still: Option<bool> = sqlx::query_scalar(
            "SELECT is_duplicate AND duplicate_of IS NOT NULL FROM task_memories WHERE id = $1 FOR UPDATE",
        )
        .bind(holder)
        .fetch_optional(&mut *conn)
        .await?;
        if still == Some(false) {
            return Ok(Some(holder));
        }
    }
    Err(StoreError::Corrupt(format!("memory {id}: its duplicate marks kept moving")))
}

/// The end of a memory's chain of duplicate marks, read without locks.
async fn chain_end(conn: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>> {
    let (mut previous, mut current) = (None, id);
    for _ in 0..MAX_DUPLICATE_CHAIN {
        let row: Option<Option<Uuid>> =
            sqlx::query_scalar("SELECT CASE WHEN is_duplicate THEN duplicate_of END FROM task_memories WHERE id = $1")
                .bind(current)
                .fetch_optional(&mut *conn)
                .await?;
        match row {
            // Gone (or never there): the chain ends at the memory that pointed here, if any.
            None => return Ok(previous),
            Some(None) => return Ok(Some(current)),
            Some(Some(next)) => (previous, current) = (Some(current), next),
        }
    }
    Err(StoreError::Corrupt(format!("memory {id}: its duplicate marks form a chain longer than {MAX_DUPLICATE_CHAIN}")))
}

/// A chain of duplicate marks longer than this is a loop.
const MAX_DUPLICATE_CHAIN: usize = 64;

/// Counts one reuse; false when the memory does not exist. Usage is not an edit: the version
/// stays (the version trigger ignores the usage columns).
pub async fn record_reuse(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let updated =
        sqlx::query("UPDATE task_memories SET reused_count = reused_count + 1, last_reused_at = now() WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?
            .rows_affected();
    Ok(updated == 1)
}

/// The usage of a memory: how often and when it was last reused.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
}

impl Usage {
    /// The usage of several memories taken together.
    pub fn sum<'a>(usages: impl IntoIterator<Item = &'a Usage>) -> Usage {
        usages.into_iter().fold(Usage::default(), |acc, u| Usage {
            reused_count: acc.reused_count.saturating_add(u.reused_count.max(0)),
            last_reused_at: acc.last_reused_at.max(u.last_reused_at),
        })
    }
}

/// The current usage of the given memories (lock them first to keep it current).
pub async fn usage(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<HashMap<Uuid, Usage>> {
    let rows: Vec<(Uuid, i32, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, reused_count, last_reused_at FROM task_memories WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, reused_count, last_reused_at)| (id, Usage { reused_count, last_reused_at }))
        .collect())
}

/// Adds reuses counted elsewhere (on a memory an undo retires) to `id`.
pub async fn add_usage(conn: &mut PgConnection, id: Uuid, added: Usage) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories SET reused_count = reused_count + $2,
                                  last_reused_at = GREATEST(last_reused_at, $3)
          WHERE id = $1",
    )
    .bind(id)
    .bind(added.reused_count)
    .bind(added.last_reused_at)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// The marks an undo checks and restores: what a job or a person left on a memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Marks {
    pub is_duplicate: bool,
    pub duplicate_of: Option<Uuid>,
    pub is_archived: bool,
    pub archive_reason: Option<ArchiveReason>,
}

/// A row of marks as stored (the archive reason still text).
#[derive(sqlx::FromRow)]
struct MarksRow {
    id: Uuid,
    is_duplicate: bool,
    duplicate_of: Option<Uuid>,
    is_archived: bool,
    archive_reason: Option<String>,
}

fn marks_by_id(rows: Vec<MarksRow>) -> Result<HashMap<Uuid, Marks>> {
    rows.into_iter()
        .map(|row| {
            let archive_reason = row
                .archive_reason
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|error: UnknownVariant| StoreError::Corrupt(error.to_string()))?;
            let marks = Marks {
                is_duplicate: row.is_duplicate,
                duplicate_of: row.duplicate_of,
                is_archived: row.is_archived,
                archive_reason,
            };
            Ok((row.id, marks))
        })
        .collect()
}

/// The marks of the given memories, locked for update until the transaction ends.
pub async fn lock_marks(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, Marks>> {
    marks_by_id(
        sqlx::query_as(
            "SELECT id, is_duplicate, duplicate_of, is_archived, archive_reason FROM task_memories
              WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?,
    )
}

/// The marks of every memory of a project, unlocked.
pub async fn project_marks(db: impl PgExecutor<'_>, project_id: Uuid) -> Result<HashMap<Uuid, Marks>> {
    marks_by_id(
        sqlx::query_as(
            "SELECT id, is_duplicate, duplicate_of, is_archived, archive_reason FROM task_memories
              WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_all(db)
        .await?,
    )
}

/// The marks an import restores on a memory it just inserted.
#[derive(Debug, Clone)]
pub struct ImportedMarks {
    pub id: Uuid,
    pub marks: Marks,
    pub archived_at: Option<DateTime<Utc>>,
}

/// Sets imported marks; returns the memories whose `duplicate_of` is a memory of another project.
pub async fn set_imported_marks(
    conn: &mut PgConnection,
    project_id: Uuid,
    marks: &[ImportedMarks],
) -> Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = marks.iter().map(|m| m.id).collect();
    let duplicate: Vec<bool> = marks.iter().map(|m| m.marks.is_duplicate).collect();
    let of: Vec<Option<Uuid>> = marks.iter().map(|m| m.marks.duplicate_of).collect();
    let archived: Vec<bool> = marks.iter().map(|m| m.marks.is_archived).collect();
    let at: Vec<Option<DateTime<Utc>>> = marks.iter().map(|m| m.archived_at).collect();
    let reason: Vec<Option<&str>> = marks.iter().map(|m| m.marks.archive_reason.map(|r| r.as_str())).collect();
    sqlx::query(
        "UPDATE task_memories m
            SET is_duplicate = r.duplicate, duplicate_of = r.of, is_archived = r.archived,
                archived_at = CASE WHEN r.archived THEN COALESCE(r.at, now()) END, archive_reason = r.reason
           FROM UNNEST($2::uuid[], $3::bool[], $4::uuid[], $5::bool[], $6::timestamptz[], $7::text[])
                AS r(id, duplicate, of, archived, at, reason)
          WHERE m.id = r.id AND m.project_id = $1",
    )
    .bind(project_id)
    .bind(&ids)
    .bind(&duplicate)
    .bind(&of)
    .bind(&archived)
    .bind(&at)
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_scalar(
        "SELECT m.id FROM task_memories m JOIN task_memories t ON t.id = m.duplicate_of
          WHERE m.id = ANY($1) AND t.project_id <> m.project_id ORDER BY m.id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?)
}

/// Retires memories an undo takes away: hidden like archived (with `reason`), kept with their
/// texts and file links, never restored by hand.
pub async fn retire(conn: &mut PgConnection, ids: &[Uuid], reason: ArchiveReason) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE task_memories SET is_archived = true, archived_at = now(), archive_reason = $2
          WHERE id = ANY($1) AND archive_reason IS DISTINCT FROM $2",
    )
    .bind(ids)
    .bind(reason.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected())
}
