//! `cmd.rollback`: undo one completed job inside the window, unless later changes conflict.

use std::collections::HashMap;

use async_nats::jetstream::Message;
use chrono::{Duration, Utc};
use sqlx::PgConnection;
use tracing::Span;
use uuid::Uuid;

use super::{Outcome, Worker, events::job_event, failure::Failure, lease::InProgress};
use crate::{
    bus::messages::{RollbackCommand, RollbackEvent, SCHEMA_VERSION, decode, named_id},
    domain::{ChangeOperation, JobEventKind, RollbackEventKind},
    store::{
        changes::{self, ChangeRow, NewChange},
        jobs::{self, Job},
        memories, playbook,
        rollbacks::{self, Rollback, RollbackStatus},
    },
};

/// Audit rows read per page while collecting what a job changed.
const CHANGES_PAGE: i64 = 10_000;

enum Decision {
    Completed {
        restored: i32,
        deleted: i32,
        warnings: Vec<String>,
    },
    /// This rollback's own result is in its row already (an earlier delivery wrote it).
    AlreadyRecorded,
    Refused {
        reason: String,
        conflicts: Vec<Uuid>,
    },
}

pub async fn handle(worker: &Worker, message: &Message) -> Outcome {
    let command: RollbackCommand = match decode(&message.payload) {
        Ok(command) => command,
        Err(error) => {
            let reason = error.to_string();
            give_up(worker, &message.payload, &reason).await;
            return Outcome::Poison { reason };
        }
    };
    Span::current().record("job_id", command.consolidation_id.to_string());
    if command.requested_by.trim().is_empty() {
        let reason = "requested_by must not be empty";
        give_up(worker, &message.payload, reason).await;
        return Outcome::Poison { reason: reason.to_owned() };
    }
    let _alive = InProgress::start(worker, message);
    match run(worker, &command).await {
        Ok(outcome) => outcome,
        Err(failure) => failure.into(),
    }
}

/// Deliveries ran out: the rollback fails with the reason, unless it had ended already.
pub async fn give_up(worker: &Worker, payload: &[u8], reason: &str) {
    let Some(rollback_id) = named_id(payload, "rollback_id") else { return };
    let Ok(Some(rollback)) = rollbacks::get(&worker.db, rollback_id).await else { return };
    match rollbacks::finish_unsuccessful(&worker.db, rollback.id, RollbackStatus::Failed, reason, &[]).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::error!(%error, "could not record the rollback's failure");
            return;
        }
    }
    let mut event = event_of(&rollback, RollbackEventKind::Failed);
    event.error = Some(reason.to_owned());
    if let Err(error) = worker.bus.rollback_event(RollbackEventKind::Failed, &event).await {
        tracing::warn!(%error, "rollback failed event not published");
    }
}

async fn run(worker: &Worker, command: &RollbackCommand) -> Result<Outcome, Failure> {
    let Some(job) = jobs::get(&worker.db, command.consolidation_id).await? else {
        let reason = format!("consolidation job {} does not exist", command.consolidation_id);
        let event = RollbackEvent {
            error: Some(reason.clone()),
            ..event_of_command(command, Uuid::nil(), RollbackEventKind::Refused)
        };
        worker.bus.rollback_event(RollbackEventKind::Refused, &event).await?;
        return Ok(Outcome::Poison { reason });
    };
    Span::current().record("project_id", job.project_id.to_string());
    let rollback = rollbacks::create(
        &worker.db,
        command.rollback_id,
        job.id,
        job.project_id,
        command.reason.as_deref(),
        &command.requested_by,
    )
    .await?;
    if rollback.job_id != job.id {
        return Ok(Outcome::Poison {
            reason: format!("rollback id {} was already used for job {}", rollback.id, rollback.job_id),
        });
    }
    if !rollback.is_finished() {
        let decision = decide_and_restore(worker, &job, &rollback).await?;
        record(worker, &rollback, &decision).await?;
    }
    let rollback = rollbacks::get(&worker.db, rollback.id)
        .await?
        .ok_or_else(|| Failure::Transient("rollback row vanished".to_owned()))?;
    publish_result(worker, &rollback).await?;
    Ok(Outcome::Done)
}

async fn decide_and_restore(worker: &Worker, job: &Job, rollback: &Rollback) -> Result<Decision, Failure> {
    let mut tx = worker.db.begin().await?;
    // A redelivery that arrives while the first run holds this row waits here, then finds the
    // rollback finished and leaves its result alone.
    match rollbacks::lock(&mut tx, rollback.id).await? {
        Some(current) if current.is_finished() => return Ok(Decision::AlreadyRecorded),
        Some(_) => {}
        None => return Err(Failure::Transient(format!("rollback {} vanished", rollback.id))),
    }
    let Some(job) = jobs::lock(&mut tx, job.id).await? else {
        return Ok(refused(format!("consolidation job {} does not exist", job.id)));
    };
    if job.status != jobs::JobStatus::Completed {
        return Ok(refused(format!("job {} is {}; only a completed job can be rolled back", job.id, job.status)));
    }
    if job.rolled_back_at.is_some() {
        // The first rollback's result is the answer to every later request for the same job.
        let Some(first) = rollbacks::completed_for_job(&mut *tx, job.id).await? else {
            return Ok(refused(format!("job {} was already rolled back", job.id)));
        };
        if first.id == rollback.id {
            return Ok(Decision::AlreadyRecorded);
        }
        let warnings = vec![format!("job {} was already rolled back by rollback {}", job.id, first.id)];
        rollbacks::complete(&mut *tx, rollback.id, first.memories_restored, first.memories_deleted, &warnings).await?;
        tx.commit().await?;
        return Ok(Decision::Completed {
            restored: first.memories_restored,
            deleted: first.memories_deleted,
            warnings,
        });
    }
    if job.result_is_dry_run() {
        return Ok(refused(format!("job {} was a dry run and changed nothing", job.id)));
    }
    let window = Duration::days(i64::from(worker.retention.rollback_window_days));
    let completed_at = job.completed_at.unwrap_or(job.created_at);
    if completed_at < Utc::now() - window {
        return Ok(refused(format!(
            "job {} completed at {completed_at}, outside the {}-day rollback window",
            job.id, worker.retention.rollback_window_days
        )));
    }

    let touched = Touched::collect(&mut tx, job.id).await?;
    let conflicts = touched.conflicts(&mut tx, job.id, completed_at).await?;
    if !conflicts.is_empty() {
        let listed = conflicts.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ");
        return Ok(Decision::Refused { reason: format!("memories changed after job {}: {listed}", job.id), conflicts });
    }

    let changed_by = format!("rollback:{}:{}", rollback.id, rollback.requested_by);
    let reason = format!("rollback {} of job {}", rollback.id, job.id);
    let restored = memories::unmark_duplicates(&mut tx, &touched.sources).await?
        + memories::unarchive(&mut tx, &touched.archived).await?;
    playbook::deactivate(&mut tx, &touched.entries, &reason, Some(job.id), &changed_by).await?;
    let deleted = memories::delete(&mut tx, &touched.created).await?;
    changes::insert_batch(&mut tx, Some(job.id), job.project_id, &changed_by, &touched.audit_rows(&reason)).await?;
    jobs::mark_rolled_back(&mut *tx, job.id).await?;
    let mut warnings = Vec::new();
    if touched.entries.is_empty()
        && touched.created.is_empty()
        && touched.sources.is_empty()
        && touched.archived.is_empty()
    {
        warnings.push("the job changed nothing; nothing to restore".to_owned());
    }
    rollbacks::complete(&mut *tx, rollback.id, restored as i32, deleted as i32, &warnings).await?;
    tx.commit().await?;
    Ok(Decision::Completed { restored: restored as i32, deleted: deleted as i32, warnings })
}

fn refused(reason: String) -> Decision {
    Decision::Refused { reason, conflicts: Vec::new() }
}

/// What a job did, read back from its audit rows.
struct Touched {
    /// Memory id -> its version right after the job.
    versions_after: HashMap<Uuid, i64>,
    sources: Vec<Uuid>,
    archived: Vec<Uuid>,
    created: Vec<Uuid>,
    entries: Vec<Uuid>,
}

impl Touched {
    async fn collect(conn: &mut PgConnection, job_id: Uuid) -> Result<Self, Failure> {
        let mut rows: Vec<ChangeRow> = Vec::new();
        loop {
            let page = changes::for_job(&mut *conn, job_id, None, rows.last().map(|row| row.id), CHANGES_PAGE).await?;
            let done = (page.len() as i64) < CHANGES_PAGE;
            rows.extend(page);
            if done {
                break;
            }
        }
        let mut touched = Touched {
            versions_after: HashMap::new(),
            sources: vec![],
            archived: vec![],
            created: vec![],
            entries: vec![],
        };
        for row in rows.iter().filter(|row| row.operation != ChangeOperation::Rollback) {
            let previous_version = row.previous_state.as_ref().and_then(|state| state.0["version"].as_i64());
            match (row.operation, previous_version) {
                (ChangeOperation::Merge | ChangeOperation::Summarize, None) => {
                    touched.created.push(row.memory_id);
                    touched.versions_after.insert(row.memory_id, 1);
                }
                // A merged source, or an earlier synthesis a grown cluster's synthesis replaced.
                (ChangeOperation::Merge | ChangeOperation::Summarize, Some(version)) => {
                    touched.sources.push(row.memory_id);
                    touched.versions_after.insert(row.memory_id, version + 1);
                }
                (ChangeOperation::Archive, Some(version)) => {
                    touched.archived.push(row.memory_id);
                    touched.versions_after.insert(row.memory_id, version + 1);
                }
                (ChangeOperation::Promote, _) => {
                    let entry = row.new_state.as_ref().and_then(|state| state.0["entry_id"].as_str());
                    if let Some(entry) = entry.and_then(|id| id.parse().ok()) {
                        touched.entries.push(entry);
                    }
                }
                _ => {}
            }
        }
        Ok(touched)
    }

    /// Memories whose version moved since the job, that are gone, or that a later change touched.
    async fn conflicts(
        &self,
        conn: &mut PgConnection,
        job_id: Uuid,
        since: chrono::DateTime<Utc>,
    ) -> Result<Vec<Uuid>, Failure> {
        let ids: Vec<Uuid> = self.versions_after.keys().copied().collect();
        let current: HashMap<Uuid, i64> = memories::lock_versions(&mut *conn, &ids)
            .await?
            .into_iter()
            .map(|(id, version, _, _)| (id, version))
            .collect();
        let mut conflicts: Vec<Uuid> = self
            .versions_after
            .iter()
            .filter(|(id, after)| current.get(id) != Some(after))
            .map(|(id, _)| *id)
            .chain(changes::later_changes(&mut *conn, &ids, job_id, since).await?.into_iter().map(|row| row.memory_id))
            .collect();
        conflicts.sort();
        conflicts.dedup();
        Ok(conflicts)
    }

    fn audit_rows(&self, reason: &str) -> Vec<NewChange> {
        let row = |memory_id: Uuid, previous: serde_json::Value, new: Option<serde_json::Value>| NewChange {
            operation: ChangeOperation::Rollback,
            memory_id,
            previous_state: Some(previous),
            new_state: new,
            reason: reason.to_owned(),
            confidence: None,
        };
        let restored_source = serde_json::json!({"is_duplicate": false, "duplicate_of": null});
        let restored_archive = serde_json::json!({"is_archived": false, "archived_at": null, "archive_reason": null});
        self.sources
            .iter()
            .map(|id| row(*id, serde_json::json!({"is_duplicate": true}), Some(restored_source.clone())))
            .chain(
                self.archived
                    .iter()
                    .map(|id| row(*id, serde_json::json!({"is_archived": true}), Some(restored_archive.clone()))),
            )
            .chain(
                self.created.iter().map(|id| {
                    row(*id, serde_json::json!({"exists": true}), Some(serde_json::json!({"deleted": true})))
                }),
            )
            .collect()
    }
}

async fn record(worker: &Worker, rollback: &Rollback, decision: &Decision) -> Result<(), Failure> {
    match decision {
        Decision::Completed { restored, deleted, warnings } => {
            tracing::info!(restored, deleted, ?warnings, "rollback completed");
        }
        Decision::AlreadyRecorded => tracing::info!("rollback already finished by an earlier delivery"),
        Decision::Refused { reason, conflicts } => {
            tracing::info!(%reason, "rollback refused");
            rollbacks::finish_unsuccessful(&worker.db, rollback.id, RollbackStatus::Refused, reason, conflicts).await?;
        }
    }
    Ok(())
}

async fn publish_result(worker: &Worker, rollback: &Rollback) -> Result<(), Failure> {
    let kind = match rollback.status {
        RollbackStatus::Completed => RollbackEventKind::Completed,
        RollbackStatus::Refused => RollbackEventKind::Refused,
        _ => RollbackEventKind::Failed,
    };
    let mut event = event_of(rollback, kind);
    event.success = kind == RollbackEventKind::Completed;
    event.memories_restored = rollback.memories_restored;
    event.memories_deleted = rollback.memories_deleted;
    event.warnings = rollback.warnings.0.clone();
    event.conflicts = rollback.conflicts.0.clone();
    event.error = rollback.error.clone();
    worker.bus.rollback_event(kind, &event).await?;
    if kind == RollbackEventKind::Completed {
        let job = job_event(JobEventKind::RolledBack, rollback.job_id, rollback.project_id);
        worker.bus.job_terminal_event(JobEventKind::RolledBack, &job).await?;
    }
    Ok(())
}

fn event_of(rollback: &Rollback, event: RollbackEventKind) -> RollbackEvent {
    RollbackEvent {
        schema_version: SCHEMA_VERSION,
        event,
        rollback_id: rollback.id,
        consolidation_id: rollback.job_id,
        project_id: rollback.project_id,
        at: rollback.completed_at.unwrap_or_else(Utc::now),
        success: false,
        memories_restored: 0,
        memories_deleted: 0,
        warnings: Vec::new(),
        conflicts: Vec::new(),
        error: None,
    }
}

fn event_of_command(command: &RollbackCommand, project_id: Uuid, event: RollbackEventKind) -> RollbackEvent {
    RollbackEvent {
        schema_version: SCHEMA_VERSION,
        event,
        rollback_id: command.rollback_id,
        consolidation_id: command.consolidation_id,
        project_id,
        at: Utc::now(),
        success: false,
        memories_restored: 0,
        memories_deleted: 0,
        warnings: Vec::new(),
        conflicts: Vec::new(),
        error: None,
    }
}
