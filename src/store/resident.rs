//! A project's rows as a worker keeps them between jobs: every memory's planning columns (no
//! texts, no embeddings), read whole once, then brought up to date by reading only the rows some
//! transaction wrote since (`touched_xid` not visible in the snapshot they were read at). A row
//! deleted since is never in such a delta, so the kept rows are checked against the project's
//! maintained counts and read whole again when they disagree.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Result, StoreError};
use crate::domain::MemoryType;

/// The planning columns of one memory, in any state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanningRow {
    pub id: Uuid,
    pub version: i64,
    pub memory_type: String,
    pub source_type: Option<String>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
    pub has_embedding: bool,
    /// Bumped only when the embedding itself is written: the key of the worker's cached vector.
    pub embedding_version: i64,
    pub consolidated_from: Vec<Uuid>,
    pub synthesized_from: Vec<Uuid>,
    /// The transaction that last wrote the memory's content or state (`written_xid`), as text.
    pub written_xid: String,
    pub updated_at: DateTime<Utc>,
    pub is_duplicate: bool,
    pub is_archived: bool,
}

impl PlanningRow {
    pub fn is_active(&self) -> bool {
        !self.is_duplicate && !self.is_archived
    }
}

const PLANNING_COLUMNS: &str = "m.id, m.version, m.memory_type, m.source_type, m.reused_count, m.last_reused_at,
    m.learned_at, m.context_embedding IS NOT NULL AS has_embedding, m.embedding_version,
    COALESCE(m.consolidated_from, '{}') AS consolidated_from, COALESCE(m.synthesized_from, '{}') AS synthesized_from,
    m.written_xid::text AS written_xid, m.updated_at, m.is_duplicate, m.is_archived";

/// Every row of one project as of `snapshot` (a `pg_snapshot` as text).
pub struct ResidentRows {
    snapshot: String,
    rows: HashMap<Uuid, PlanningRow>,
}

impl ResidentRows {
    pub fn rows(&self) -> impl Iterator<Item = &PlanningRow> {
        self.rows.values()
    }

    pub fn get(&self, id: &Uuid) -> Option<&PlanningRow> {
        self.rows.get(id)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// (active, duplicates, archived), counted as `project_memory_counts` counts them.
    fn counts(&self) -> (i64, i64, i64) {
        self.rows.values().fold((0, 0, 0), |(a, d, r), row| match (row.is_duplicate, row.is_archived) {
            (true, _) => (a, d + 1, r),
            (false, true) => (a, d, r + 1),
            (false, false) => (a + 1, d, r),
        })
    }

    /// The originals behind the active consolidated memories: their sources, and recursively the
    /// sources of any consolidated memory among them (written before source types existed).
    pub fn originals(&self) -> HashSet<Uuid> {
        let mut found = HashSet::new();
        let mut pending: Vec<Uuid> = self
            .rows
            .values()
            .filter(|r| r.is_active() && r.memory_type == MemoryType::Consolidated.as_str())
            .flat_map(|r| r.consolidated_from.iter().copied())
            .collect();
        while let Some(id) = pending.pop() {
            let Some(row) = self.rows.get(&id) else { continue };
            if !found.insert(id) {
                continue;
            }
            if row.memory_type == MemoryType::Consolidated.as_str() {
                pending.extend(row.consolidated_from.iter().copied());
            }
        }
        found
    }
}

/// Brings `kept` (the rows a worker read for an earlier job, if any) up to date in one
/// repeatable-read transaction, or reads every row when nothing was kept or the kept rows miss
/// a deletion. Returns the rows and how many were read.
pub async fn refresh(
    conn: &mut PgConnection,
    project_id: Uuid,
    kept: Option<ResidentRows>,
) -> Result<(ResidentRows, usize)> {
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *conn).await?;
    let result = refresh_in_transaction(conn, project_id, kept).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    sqlx::query(end).execute(&mut *conn).await?;
    result
}

async fn refresh_in_transaction(
    conn: &mut PgConnection,
    project_id: Uuid,
    kept: Option<ResidentRows>,
) -> Result<(ResidentRows, usize)> {
    let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text").fetch_one(&mut *conn).await?;
    if let Some(mut resident) = kept {
        let changed: Vec<PlanningRow> = sqlx::query_as(&format!(
            "SELECT {PLANNING_COLUMNS} FROM task_memories m
              WHERE m.project_id = $1 AND NOT pg_visible_in_snapshot(m.touched_xid, $2::text::pg_snapshot)"
        ))
        .bind(project_id)
        .bind(&resident.snapshot)
        .fetch_all(&mut *conn)
        .await?;
        let read = changed.len();
        resident.rows.extend(changed.into_iter().map(|row| (row.id, row)));
        resident.snapshot = snapshot.clone();
        let counts = super::projects::memory_counts(&mut *conn, project_id).await?;
        if (counts.active, counts.duplicate, counts.archived) == resident.counts() {
            return Ok((resident, read));
        }
        tracing::debug!("kept rows miss a deletion: reading the project's rows again");
    }
    let rows: Vec<PlanningRow> =
        sqlx::query_as(&format!("SELECT {PLANNING_COLUMNS} FROM task_memories m WHERE m.project_id = $1"))
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?;
    let read = rows.len();
    Ok((ResidentRows { snapshot, rows: rows.into_iter().map(|row| (row.id, row)).collect() }, read))
}

/// A `pg_snapshot` parsed: which transactions it saw committed.
pub struct XidSnapshot {
    xmin: u64,
    xmax: u64,
    in_progress: HashSet<u64>,
}

impl XidSnapshot {
    /// Parses `xmin:xmax:xip,...` as PostgreSQL writes it.
    pub fn parse(text: &str) -> Result<XidSnapshot> {
        let corrupt = || StoreError::Corrupt(format!("not a pg_snapshot: {text:?}"));
        let mut parts = text.splitn(3, ':');
        let mut next = || parts.next().ok_or_else(corrupt);
        let (xmin, xmax, xip) = (next()?, next()?, next()?);
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| corrupt());
        let in_progress =
            xip.split(',').filter(|s| !s.trim().is_empty()).map(number).collect::<Result<HashSet<u64>>>()?;
        Ok(XidSnapshot { xmin: number(xmin)?, xmax: number(xmax)?, in_progress })
    }

    /// `pg_visible_in_snapshot(xid, snapshot)`.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.in_progress.contains(&xid))
    }

    /// Whether the transaction `xid` (as text) was visible; a value that is no number is not.
    pub fn sees_text(&self, xid: &str) -> bool {
        xid.parse::<u64>().is_ok_and(|xid| self.sees(xid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_what_committed_before_it_and_not_what_ran_or_came_after() {
        let snapshot = XidSnapshot::parse("100:105:101,103").unwrap();
        assert!(snapshot.sees(99));
        assert!(snapshot.sees(100), "xmin itself committed before when not in progress");
        assert!(!snapshot.sees(101));
        assert!(snapshot.sees(102));
        assert!(!snapshot.sees(103));
        assert!(!snapshot.sees(105));
        assert!(!snapshot.sees(200));
        assert!(XidSnapshot::parse("7:7:").unwrap().sees(6));
        assert!(!XidSnapshot::parse("7:7:").unwrap().sees(7));
        assert!(XidSnapshot::parse("7:x:").is_err());
        assert!(XidSnapshot::parse("7").is_err());
    }
}
