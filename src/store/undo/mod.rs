//! Undo (DESIGN.md §6): what a job left on the store, read back from its audit rows, checked
//! against the store as it is now, and taken back in the caller's transaction. Rollback (a whole
//! job) and unmerge (one consolidated memory) share it.

pub mod later;
pub mod unmerge;

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    Result,
    changes::{self, ChangeRow, NewChange},
    memories::{self, Marks, Usage},
    playbook,
};
use crate::domain::{ArchiveReason, ChangeOperation};

pub use later::standing_later_jobs;

/// Why a job whose audit rows the purge removed cannot be undone.
pub fn audit_gone(job_id: Uuid, purged_at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "job {job_id}: its audit rows were purged at {purged_at} (AUDIT_RETENTION_DAYS), so it can no longer be \
         rolled back"
    )
}

/// Audit rows read per page while collecting what a job changed.
const CHANGES_PAGE: i64 = 10_000;

/// A memory a job marked duplicate of another (a merged source, or a synthesis it replaced).
#[derive(Debug, Clone)]
pub struct Marked {
    pub id: Uuid,
    pub duplicate_of: Option<Uuid>,
}

/// A memory a job created.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: Uuid,
    pub cluster_id: Option<String>,
    /// The member whose usage the memory carries back when it is retired.
    pub heir: Option<Uuid>,
    /// The reuse count it was created with (None in audit rows older than that record).
    pub initial_reuses: Option<i32>,
    /// A synthesis's first member: its heir when it replaced no earlier synthesis.
    first_member: Option<Uuid>,
}

impl Created {
    /// From the audit row that records the memory's creation (its new state).
    fn from_audit(id: Uuid, new: Option<&Value>) -> Created {
        Created {
            id,
            cluster_id: new.and_then(|s| s["cluster_id"].as_str()).map(str::to_owned),
            heir: uuid_at(new, "representative"),
            initial_reuses: new.and_then(|s| s["reused_count"].as_i64()).and_then(|n| i32::try_from(n).ok()),
            first_member: new.and_then(|s| s["synthesized_from"][0].as_str()).and_then(|id| id.parse().ok()),
        }
    }
}

/// Heirs of created memories that name no representative: the first memory they replaced
/// (`replaced`: created memory -> a memory marked its duplicate), else a synthesis's first member.
pub(crate) fn inherit(created: &mut [Created], replaced: &HashMap<Uuid, Uuid>) {
    for c in created {
        c.heir = c.heir.or_else(|| replaced.get(&c.id).copied()).or(c.first_member);
    }
}

/// The created memories among `ids`, as the audit rows of their creation describe them (a memory
/// without such a row is left out).
pub async fn created(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Created>> {
    let rows: Vec<(Uuid, Option<sqlx::types::Json<Value>>)> = sqlx::query_as(
        "SELECT DISTINCT ON (memory_id) memory_id, new_state FROM consolidation_changes
          WHERE memory_id = ANY($1) AND operation IN ('merge', 'summarize') AND previous_state IS NULL
          ORDER BY memory_id, id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let by_id: HashMap<Uuid, Created> =
        rows.into_iter().map(|(id, new)| (id, Created::from_audit(id, new.as_ref().map(|n| &n.0)))).collect();
    Ok(ids.iter().filter_map(|id| by_id.get(id).cloned()).collect())
}

/// What one job did, read back from its audit rows.
#[derive(Debug, Clone, Default)]
pub struct JobTrail {
    pub job_id: Uuid,
    pub marked: Vec<Marked>,
    pub archived: Vec<(Uuid, Option<ArchiveReason>)>,
    pub created: Vec<Created>,
    pub entries: Vec<Uuid>,
    /// Entries the job moved to a memory it created, as moves back.
    pub followed: Vec<playbook::Move>,
}

/// What an undo restored and retired.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Restored {
    pub restored: u64,
    pub retired: u64,
}

impl std::ops::AddAssign for Restored {
    fn add_assign(&mut self, other: Restored) {
        self.restored += other.restored;
        self.retired += other.retired;
    }
}

fn uuid_at(state: Option<&Value>, key: &str) -> Option<Uuid> {
    state.and_then(|s| s[key].as_str()).and_then(|id| id.parse().ok())
}

impl JobTrail {
    pub async fn read(conn: &mut PgConnection, job_id: Uuid) -> Result<Self> {
        let mut rows: Vec<ChangeRow> = Vec::new();
        loop {
            let page = changes::for_job(&mut *conn, job_id, None, rows.last().map(|row| row.id), CHANGES_PAGE).await?;
            let done = (page.len() as i64) < CHANGES_PAGE;
            rows.extend(page);
            if done {
                break;
            }
        }
        let mut trail = JobTrail { job_id, ..JobTrail::default() };
        // Merged sources per created memory: the heir when the row names no representative.
        let mut first_source: HashMap<Uuid, Uuid> = HashMap::new();
        for row in &rows {
            let previous = row.previous_state.as_ref().map(|state| &state.0);
            let new = row.new_state.as_ref().map(|state| &state.0);
            match (row.operation, previous.is_some()) {
                (ChangeOperation::Merge | ChangeOperation::Summarize, false) => {
                    trail.created.push(Created::from_audit(row.memory_id, new))
                }
                (ChangeOperation::Merge | ChangeOperation::Summarize, true) => {
                    let duplicate_of = uuid_at(new, "duplicate_of");
                    if let Some(target) = duplicate_of {
                        first_source.entry(target).or_insert(row.memory_id);
                    }
                    trail.marked.push(Marked { id: row.memory_id, duplicate_of });
                }
                (ChangeOperation::Archive, true) => {
                    let reason = new.and_then(|s| s["archive_reason"].as_str()).and_then(|r| r.parse().ok());
                    trail.archived.push((row.memory_id, reason));
                }
                (ChangeOperation::Promote, false) => trail.entries.extend(uuid_at(new, "entry_id")),
                (ChangeOperation::Promote, true) => {
                    trail.followed.extend(previous.zip(new).and_then(|(p, n)| playbook::Move::back(p, n)))
                }
                _ => {}
            }
        }
        for created in &mut trail.created {
            created.heir = created.heir.or_else(|| first_source.get(&created.id).copied()).or(created.first_member);
        }
        Ok(trail)
    }

    pub fn is_empty(&self) -> bool {
        self.marked.is_empty()
            && self.archived.is_empty()
            && self.created.is_empty()
            && self.entries.is_empty()
            && self.followed.is_empty()
    }

    /// Every memory the job changed or created.
    pub fn memory_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .marked
            .iter()
            .map(|m| m.id)
            .chain(self.archived.iter().map(|(id, _)| *id))
            .chain(self.created.iter().map(|c| c.id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Leaves out the clusters of this job that an unmerge took back already: nothing of them is
    /// left to restore, and their changed marks are no conflict.
    pub async fn without_unmerged(mut self, conn: &mut PgConnection) -> Result<Self> {
        let ids: Vec<Uuid> = self.created.iter().map(|c| c.id).collect();
        let marks = memories::lock_marks(&mut *conn, &ids).await?;
        let unmerged: std::collections::HashSet<Uuid> = marks
            .iter()
            .filter(|(_, m)| m.archive_reason == Some(ArchiveReason::Unmerged))
            .map(|(id, _)| *id)
            .collect();
        if unmerged.is_empty() {
            return Ok(self);
        }
        // The unmerge cleared every duplicate mark on its memory: what a source carries now
        // (active, or merged again by a later job) is not this job's.
        self.created.retain(|c| !unmerged.contains(&c.id));
        self.marked.retain(|m| !m.duplicate_of.is_some_and(|target| unmerged.contains(&target)));
        Ok(self)
    }

    /// Memories that no longer carry the marks this job left (changed by hand, or by a later job
    /// that still stands), locked until the transaction ends. A reuse changes no mark.
    pub async fn changed_since(&self, conn: &mut PgConnection) -> Result<Vec<Uuid>> {
        let marks = memories::lock_marks(&mut *conn, &self.memory_ids()).await?;
        let active = |m: &Marks| !m.is_duplicate && !m.is_archived;
        let mut changed: Vec<Uuid> = self
            .marked
            .iter()
            .filter(|s| !marks.get(&s.id).is_some_and(|m| m.is_duplicate && m.duplicate_of == s.duplicate_of))
            .map(|s| s.id)
            .chain(
                self.archived
                    .iter()
                    .filter(|(id, reason)| {
                        !marks
                            .get(id)
                            .is_some_and(|m| m.is_archived && (reason.is_none() || m.archive_reason == *reason))
                    })
                    .map(|(id, _)| *id),
            )
            .chain(self.created.iter().filter(|c| !marks.get(&c.id).is_some_and(active)).map(|c| c.id))
            .collect();
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// Takes the job back: sources lose their duplicate mark, archived memories return, created
    /// memories carry their later reuses to their heir and are retired, promoted entries are
    /// deactivated and followed ones move back; every restoration is an audit row of `operation`.
    pub async fn restore(&self, conn: &mut PgConnection, undo: &Undo<'_>) -> Result<Restored> {
        let marked: Vec<Uuid> = self.marked.iter().map(|m| m.id).collect();
        let archived: Vec<Uuid> = self.archived.iter().map(|(id, _)| *id).collect();
        let restored = memories::unmark_duplicates(conn, &marked).await? + memories::unarchive(conn, &archived).await?;
        let mut audit: Vec<NewChange> = self
            .marked
            .iter()
            .map(|m| {
                undo.row(
                    m.id,
                    json!({"is_duplicate": true, "duplicate_of": m.duplicate_of}),
                    json!({"is_duplicate": false, "duplicate_of": null}),
                )
            })
            .chain(self.archived.iter().map(|(id, reason)| {
                undo.row(
                    *id,
                    json!({"is_archived": true, "archive_reason": reason}),
                    json!({"is_archived": false, "archived_at": null, "archive_reason": null}),
                )
            }))
            .collect();
        let retired = retire(conn, &self.created, undo, &mut audit).await?;
        playbook::deactivate(conn, &self.entries, &undo.reason, undo.audit_job, undo.changed_by).await?;
        playbook::move_entries(conn, &self.followed, &undo.reason, undo.audit_job, undo.changed_by).await?;
        changes::insert_batch(conn, undo.audit_job, undo.project_id, undo.changed_by, &audit).await?;
        Ok(Restored { restored, retired })
    }
}

/// Who undoes, why, and how the audit rows and retired memories are marked.
pub struct Undo<'a> {
    pub project_id: Uuid,
    /// The job the audit rows are filed under (a rollback's job; None for an unmerge, a change
    /// by hand).
    pub audit_job: Option<Uuid>,
    pub operation: ChangeOperation,
    pub retire_as: ArchiveReason,
    pub reason: String,
    pub changed_by: &'a str,
}

impl Undo<'_> {
    fn row(&self, memory_id: Uuid, previous: Value, new: Value) -> NewChange {
        NewChange {
            operation: self.operation,
            memory_id,
            previous_state: Some(previous),
            new_state: Some(new),
            reason: self.reason.clone(),
            confidence: None,
        }
    }
}

/// Retires created memories; the reuses each gained after its creation go to its heir first
/// (audited as `reuse`), so no reuse is lost with it.
async fn retire(
    conn: &mut PgConnection,
    created: &[Created],
    undo: &Undo<'_>,
    audit: &mut Vec<NewChange>,
) -> Result<u64> {
    let ids: Vec<Uuid> = created.iter().map(|c| c.id).collect();
    let usage = memories::usage(&mut *conn, &ids).await?;
    for c in created {
        let (Some(now), Some(initial), Some(heir)) = (usage.get(&c.id), c.initial_reuses, c.heir) else { continue };
        let gained = Usage { reused_count: now.reused_count - initial, last_reused_at: now.last_reused_at };
        if gained.reused_count <= 0 {
            continue;
        }
        // The heir may be an original that is itself merged (a fold-in's representative): the
        // reuses go where a reuse of it would count now.
        let heir = memories::reuse_holder(conn, heir).await?.unwrap_or(heir);
        if memories::add_usage(conn, heir, gained).await? == 0 {
            continue;
        }
        audit.push(NewChange {
            operation: ChangeOperation::Reuse,
            memory_id: heir,
            previous_state: Some(json!({"carried_from": c.id})),
            new_state: Some(json!({"reuses_added": gained.reused_count, "last_reused_at": gained.last_reused_at})),
            reason: format!("reuses of {} carried back when it was retired ({})", c.id, undo.reason),
            confidence: None,
        });
    }
    let retired = memories::retire(conn, &ids, undo.retire_as).await?;
    audit.extend(created.iter().map(|c| {
        undo.row(c.id, json!({"is_archived": false}), json!({"is_archived": true, "archive_reason": undo.retire_as}))
    }));
    Ok(retired)
}
