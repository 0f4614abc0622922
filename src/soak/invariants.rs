//! The invariants checked after every step, against the store and the driver's model of it.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::memories::{self, Marks};

/// What the driver knows the store must hold.
#[derive(Debug, Default)]
pub struct Model {
    /// Every memory an agent wrote.
    pub originals: HashSet<Uuid>,
    /// Reuses written with the memories plus every reuse the gateway counted.
    pub reuses: i64,
}

/// The marks of every memory of the project.
pub async fn marks(db: &PgPool, project_id: Uuid) -> Result<HashMap<Uuid, Marks>, String> {
    memories::project_marks(db, project_id).await.map_err(|error| error.to_string())
}

fn retired(marks: &Marks) -> bool {
    marks.archive_reason.is_some_and(|reason| reason.is_retirement())
}

/// Every invariant that holds after any step; the first broken one is the error.
pub async fn check(db: &PgPool, project_id: Uuid, model: &Model) -> Result<(), String> {
    let all = marks(db, project_id).await?;
    // No original memory is lost: it exists with its text, is never retired, and is active,
    // archived, or merged into a chain that ends in a live memory.
    let texts: HashMap<Uuid, bool> = sqlx::query_as::<_, (Uuid, bool)>(
        "SELECT id, length(execution_summary) > 0 FROM task_memories WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_all(db)
    .await
    .map_err(|error| error.to_string())?
    .into_iter()
    .collect();
    for id in &model.originals {
        let Some(marks) = all.get(id) else { return Err(format!("original memory {id} is gone")) };
        if texts.get(id) != Some(&true) {
            return Err(format!("original memory {id} lost its text"));
        }
        if retired(marks) {
            return Err(format!("original memory {id} was retired ({:?})", marks.archive_reason));
        }
        let mut at = *id;
        for _ in 0..64 {
            match all.get(&at) {
                Some(Marks { is_duplicate: true, duplicate_of: Some(next), .. }) => at = *next,
                Some(live) if !live.is_duplicate && !retired(live) => break,
                other => {
                    return Err(format!("original memory {id} leads through {at} to {other:?}, not a live memory"));
                }
            }
        }
    }
    // No reuse is lost: the live memories hold every reuse ever counted.
    let live: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(reused_count), 0)::bigint FROM task_memories
          WHERE project_id = $1 AND NOT is_duplicate AND COALESCE(archive_reason, '') NOT IN ('rolled_back', 'unmerged')",
    )
    .bind(project_id)
    .fetch_one(db)
    .await
    .map_err(|error| error.to_string())?;
    if live != model.reuses {
        /// A retired memory with reuses: id, type, reuses, reason, its carries, its initial reuses.
        type Retired = (Uuid, String, i32, Option<String>, Option<String>, Option<i64>);
        let retired: Vec<Retired> = sqlx::query_as(
            "SELECT m.id, m.memory_type, m.reused_count, m.archive_reason,
                    (SELECT string_agg(c.new_state::text, ';') FROM consolidation_changes c
                      WHERE c.operation = 'reuse' AND c.previous_state ->> 'carried_from' = m.id::text),
                    (SELECT (c.new_state ->> 'reused_count')::bigint FROM consolidation_changes c
                      WHERE c.memory_id = m.id AND c.previous_state IS NULL AND c.operation IN ('merge', 'summarize')
                      LIMIT 1)
               FROM task_memories m
              WHERE m.project_id = $1 AND COALESCE(m.archive_reason, '') IN ('rolled_back', 'unmerged')
                AND m.reused_count > 0",
        )
        .bind(project_id)
        .fetch_all(db)
        .await
        .map_err(|error| error.to_string())?;
        return Err(format!(
            "the live memories hold {live} reuses, {} were counted; retired with reuses: {retired:?}",
            model.reuses
        ));
    }
    // Every change has an audit row.
    let unaudited: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM task_memories m
          WHERE m.project_id = $1
            AND (m.is_duplicate OR m.is_archived OR m.memory_type IN ('consolidated', 'synthesis'))
            AND NOT EXISTS (SELECT 1 FROM consolidation_changes c WHERE c.memory_id = m.id)
          LIMIT 5",
    )
    .bind(project_id)
    .fetch_all(db)
    .await
    .map_err(|error| error.to_string())?;
    if !unaudited.is_empty() {
        return Err(format!("changed memories without an audit row: {unaudited:?}"));
    }
    // A superseded memory names a memory that exists (a job's own or an approved review's).
    let dangling: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM task_memories m
          WHERE m.project_id = $1 AND m.archive_reason = 'superseded'
            AND NOT EXISTS (
                SELECT 1 FROM consolidation_changes c JOIN task_memories t
                    ON t.id::text = c.new_state ->> 'superseded_by'
                 WHERE c.memory_id = m.id AND c.operation = 'archive')
          LIMIT 5",
    )
    .bind(project_id)
    .fetch_all(db)
    .await
    .map_err(|error| error.to_string())?;
    if !dangling.is_empty() {
        return Err(format!("superseded in favour of a memory that does not exist: {dangling:?}"));
    }
    // The counts the triggers keep are the counts of the rows.
    type Counts = (i64, i64, i64);
    let (kept, counted): (Option<Counts>, Counts) = (
        sqlx::query_as("SELECT active, duplicates, archived FROM project_memory_counts WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(db)
            .await
            .map_err(|error| error.to_string())?,
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE NOT is_archived AND NOT is_duplicate), count(*) FILTER (WHERE is_duplicate),
                    count(*) FILTER (WHERE is_archived AND NOT is_duplicate)
               FROM task_memories WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_one(db)
        .await
        .map_err(|error| error.to_string())?,
    );
    if kept.unwrap_or_default() != counted {
        return Err(format!("kept memory counts {kept:?} differ from the rows' {counted:?}"));
    }
    // No job stays non-terminal.
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consolidation_jobs WHERE project_id = $1 AND status IN ('pending', 'running')",
    )
    .bind(project_id)
    .fetch_one(db)
    .await
    .map_err(|error| error.to_string())?;
    if open != 0 {
        return Err(format!("{open} jobs are still pending or running"));
    }
    Ok(())
}
