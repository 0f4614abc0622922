//! Unmerge: one consolidated memory taken back (DESIGN.md §6). Its sources return, it is retired
//! (kept, marked `unmerged`, audited), the syntheses and playbook entries that came from it are
//! undone, and its member set is kept apart, so the next job does not merge it again while the
//! texts stay as they are.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use super::{JobTrail, Marked, Undo};
use crate::domain::{ArchiveReason, ChangeOperation, MemoryType};
use crate::store::{Result, playbook};

/// What an unmerge did.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmerged {
    pub memory_id: Uuid,
    /// The job that wrote the consolidated memory.
    pub job_id: Uuid,
    /// Memories that are active again (the merged sources, and syntheses an undone one replaced).
    pub restored: Vec<Uuid>,
    /// The consolidated memory and the syntheses that came from it.
    pub retired: Vec<Uuid>,
    /// Pairs of original memories kept apart from now on.
    pub kept_apart: usize,
}

/// Why an unmerge cannot be done.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No such memory in this project.
    NotFound(String),
    /// Not (or no longer) something an unmerge applies to.
    Conflict(String),
    /// Its job's audit rows are gone.
    Gone(String),
}

/// Who asks, and the limits they ask within.
pub struct Request<'a> {
    pub project_id: Uuid,
    pub memory_id: Uuid,
    pub requested_by: &'a str,
    pub reason: Option<&'a str>,
    pub window_days: u32,
}

#[derive(sqlx::FromRow)]
struct Target {
    project_id: Uuid,
    memory_type: String,
    is_duplicate: bool,
    duplicate_of: Option<Uuid>,
    is_archived: bool,
    archive_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Origin {
    job_id: Uuid,
    completed_at: Option<DateTime<Utc>>,
    audit_purged_at: Option<DateTime<Utc>>,
    new_state: Option<Json<Value>>,
}

/// Unmerges `request.memory_id` in the caller's transaction.
pub async fn unmerge(conn: &mut PgConnection, request: &Request<'_>) -> Result<Result<Unmerged, Refusal>> {
    let id = request.memory_id;
    let target: Option<Target> = sqlx::query_as(
        "SELECT project_id, memory_type, is_duplicate, duplicate_of, is_archived, archive_reason
           FROM task_memories WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(target) = target.filter(|t| t.project_id == request.project_id) else {
        return Ok(Err(Refusal::NotFound(format!("memory {id} does not exist in project {}", request.project_id))));
    };
    if target.memory_type != MemoryType::Consolidated.as_str() {
        return Ok(Err(Refusal::Conflict(format!(
            "memory {id} is a {} memory; only a consolidated memory can be unmerged",
            target.memory_type
        ))));
    }
    if target.is_duplicate {
        let into = target.duplicate_of.map_or_else(|| "another memory".to_owned(), |into| into.to_string());
        return Ok(Err(Refusal::Conflict(format!("memory {id} was merged into {into} since; unmerge that one"))));
    }
    if target.is_archived {
        let reason = target.archive_reason.unwrap_or_else(|| "archived".to_owned());
        return Ok(Err(Refusal::Conflict(format!("memory {id} is archived ({reason}); nothing to unmerge"))));
    }
    let origin: Option<Origin> = sqlx::query_as(
        "SELECT c.job_id, j.completed_at, j.audit_purged_at, c.new_state
           FROM consolidation_changes c JOIN consolidation_jobs j ON j.id = c.job_id
          WHERE c.memory_id = $1 AND c.operation = 'merge' AND c.previous_state IS NULL
          ORDER BY c.id LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(origin) = origin else {
        return Ok(Err(Refusal::Gone(format!(
            "memory {id} has no job in the audit trail (imported, or its audit rows were purged)"
        ))));
    };
    if origin.audit_purged_at.is_some() {
        return Ok(Err(Refusal::Gone(format!("the audit rows of job {} were purged", origin.job_id))));
    }
    let completed_at = origin.completed_at.unwrap_or_else(Utc::now);
    if completed_at < Utc::now() - Duration::days(i64::from(request.window_days)) {
        return Ok(Err(Refusal::Conflict(format!(
            "memory {id} was written by job {} at {completed_at}, outside the {}-day rollback window",
            origin.job_id, request.window_days
        ))));
    }

    // Its syntheses: the ones its job wrote for its cluster, and any written from it since;
    // only what is still active is undone (a synthesis replaced or archived since stays as it is).
    let cluster_id = origin.new_state.as_ref().and_then(|s| s.0["cluster_id"].as_str()).map(str::to_owned);
    let syntheses: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM task_memories m
          WHERE m.project_id = $1 AND m.memory_type = 'synthesis' AND NOT m.is_archived AND NOT m.is_duplicate
            AND ($2 = ANY(m.synthesized_from)
                 OR EXISTS (SELECT 1 FROM consolidation_changes c
                             WHERE c.memory_id = m.id AND c.job_id = $3 AND c.operation = 'summarize'
                               AND c.previous_state IS NULL AND c.new_state ->> 'cluster_id' = $4))
          ORDER BY m.id FOR UPDATE",
    )
    .bind(request.project_id)
    .bind(id)
    .bind(origin.job_id)
    .bind(cluster_id)
    .fetch_all(&mut *conn)
    .await?;
    // Syntheses first: one whose heir is this memory hands its reuses on before it retires.
    let mut created = super::created(&mut *conn, &syntheses).await?;
    created.extend(super::created(&mut *conn, &[id]).await?);

    let retired_ids: Vec<Uuid> = created.iter().map(|c| c.id).collect();
    let marked: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, duplicate_of FROM task_memories
          WHERE duplicate_of = ANY($1) AND is_duplicate ORDER BY id FOR UPDATE",
    )
    .bind(&retired_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut replaced: HashMap<Uuid, Uuid> = HashMap::new();
    for (source, into) in &marked {
        replaced.entry(*into).or_insert(*source);
    }
    super::inherit(&mut created, &replaced);
    // An entry that followed its cluster here moves back to where it came from (which this
    // unmerge restores); one promoted from here is deactivated.
    let followed = playbook::follows_back(&mut *conn, &retired_ids).await?;
    let moved: Vec<Uuid> = followed.iter().map(|m| m.entry_id).collect();
    let entries: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM playbook_entries
          WHERE project_id = $1 AND source_memory_id = ANY($2) AND is_active AND id <> ALL($3)",
    )
    .bind(request.project_id)
    .bind(&retired_ids)
    .bind(&moved)
    .fetch_all(&mut *conn)
    .await?;
    let sources: Vec<Uuid> = marked.iter().filter(|(_, into)| *into == id).map(|(source, _)| *source).collect();
    let trail = JobTrail {
        job_id: origin.job_id,
        marked: marked.iter().map(|(m, into)| Marked { id: *m, duplicate_of: Some(*into) }).collect(),
        archived: Vec::new(),
        created,
        entries,
        followed,
    };
    let reason = match request.reason {
        Some(reason) => format!("unmerged by {}: {reason}", request.requested_by),
        None => format!("unmerged by {}", request.requested_by),
    };
    let undo = Undo {
        project_id: request.project_id,
        audit_job: None,
        operation: ChangeOperation::Unmerge,
        retire_as: ArchiveReason::Unmerged,
        reason,
        changed_by: request.requested_by,
    };
    trail.restore(&mut *conn, &undo).await?;
    let kept_apart = keep_apart(&mut *conn, request.project_id, id, &sources).await?;
    Ok(Ok(Unmerged {
        memory_id: id,
        job_id: origin.job_id,
        restored: trail.marked.iter().map(|m| m.id).collect(),
        retired: retired_ids,
        kept_apart,
    }))
}

/// Records every pair of original memories that came into `unmerged` from different sources.
async fn keep_apart(conn: &mut PgConnection, project_id: Uuid, unmerged: Uuid, sources: &[Uuid]) -> Result<usize> {
    let rows: Vec<(Uuid, Vec<Uuid>)> = sqlx::query_as(
        "SELECT id, CASE WHEN memory_type = 'consolidated' AND consolidated_from IS NOT NULL
                         THEN consolidated_from ELSE ARRAY[id] END
           FROM task_memories WHERE id = ANY($1)",
    )
    .bind(sources)
    .fetch_all(&mut *conn)
    .await?;
    let mut pairs: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
    for (i, (_, left)) in rows.iter().enumerate() {
        for (_, right) in &rows[i + 1..] {
            for a in left {
                for b in right {
                    if a != b {
                        pairs.insert((*a.min(b), *a.max(b)));
                    }
                }
            }
        }
    }
    let originals: Vec<Uuid> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let digests: HashMap<Uuid, String> =
        sqlx::query_as::<_, (Uuid, String)>("SELECT id, md5(execution_summary) FROM task_memories WHERE id = ANY($1)")
            .bind(&originals)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let pairs: Vec<(Uuid, Uuid)> =
        pairs.into_iter().filter(|(a, b)| digests.contains_key(a) && digests.contains_key(b)).collect();
    let (low, high): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    let low_digest: Vec<&str> = low.iter().map(|id| digests[id].as_str()).collect();
    let high_digest: Vec<&str> = high.iter().map(|id| digests[id].as_str()).collect();
    sqlx::query(
        "INSERT INTO consolidation_kept_apart (project_id, low_id, high_id, low_digest, high_digest, unmerged_id)
         SELECT $1, l, h, ld, hd, $6 FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[]) AS p(l, h, ld, hd)
         ON CONFLICT (project_id, low_id, high_id)
         DO UPDATE SET low_digest = EXCLUDED.low_digest, high_digest = EXCLUDED.high_digest,
                       unmerged_id = EXCLUDED.unmerged_id, created_at = now()",
    )
    .bind(project_id)
    .bind(&low)
    .bind(&high)
    .bind(&low_digest)
    .bind(&high_digest)
    .bind(unmerged)
    .execute(&mut *conn)
    .await?;
    Ok(pairs.len())
}

/// Pairs a person took apart whose texts are still what they were: the clustering keeps them
/// apart (smaller id first).
pub async fn kept_apart(conn: &mut PgConnection, project_id: Uuid) -> Result<BTreeSet<(Uuid, Uuid)>> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT k.low_id, k.high_id FROM consolidation_kept_apart k
           JOIN task_memories a ON a.id = k.low_id JOIN task_memories b ON b.id = k.high_id
          WHERE k.project_id = $1 AND md5(a.execution_summary) = k.low_digest
            AND md5(b.execution_summary) = k.high_digest",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}
