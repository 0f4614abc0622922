//! `cmd.rollback`: undo one completed job inside the window, with the standing later jobs that
//! built on it first (`cascade`), unless a change that still stands conflicts.

use async_nats::jetstream::Message;
use chrono::{Duration, Utc};
use sqlx::PgConnection;
use tracing::Span;
use uuid::Uuid;

use super::{Outcome, Worker, events::job_event, failure::Failure, lease::InProgress};
use crate::{
    bus::messages::{RollbackCommand, RollbackEvent, SCHEMA_VERSION, decode, named_id},
    domain::{ArchiveReason, ChangeOperation, JobEventKind, RollbackEventKind},
    store::{
        jobs::{self, Job},
        rollbacks::{self, Rollback, RollbackStatus},
        undo::{self, JobTrail, Restored, Undo, later::LaterJob, standing_later_jobs},
    },
};

enum Decision {
    Completed {
        restored: i32,
        deleted: i32,
        warnings: Vec<String>,
        /// Later jobs rolled back first, newest first.
        cascaded: Vec<Uuid>,
    },
    /// This rollback's own result is in its row already (an earlier delivery wrote it).
    AlreadyRecorded,
    Refused {
        reason: String,
        conflicts: Vec<Uuid>,
        later_jobs: Vec<Uuid>,
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

/// Deliveries ran out: the rollback fails with the reason, unless it had ended already or the
/// payload does not name its project.
pub async fn give_up(worker: &Worker, payload: &[u8], reason: &str) {
    let (Some(rollback_id), Some(project_id)) = (named_id(payload, "rollback_id"), named_id(payload, "project_id"))
    else {
        return;
    };
    let Ok(Some(rollback)) = rollbacks::get(&worker.db, rollback_id).await else { return };
    if rollback.project_id != project_id {
        return;
    }
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
    let job = jobs::get(&worker.db, command.consolidation_id).await?.filter(|job| job.project_id == command.project_id);
    let Some(job) = job else {
        let reason = format!("project {} has no consolidation job {}", command.project_id, command.consolidation_id);
        let event =
            RollbackEvent { error: Some(reason.clone()), ..event_of_command(command, RollbackEventKind::Refused) };
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
        command.cascade,
    )
    .await?;
    if rollback.job_id != job.id {
        return Ok(Outcome::Poison {
            reason: format!("rollback id {} was already used for job {}", rollback.id, rollback.job_id),
        });
    }
    if !rollback.is_finished() {
        let decision = decide_and_restore(worker, &job, &rollback, command.cascade || rollback.cascade).await?;
        record(worker, &rollback, &decision).await?;
    }
    let rollback = rollbacks::get(&worker.db, rollback.id)
        .await?
        .ok_or_else(|| Failure::Transient("rollback row vanished".to_owned()))?;
    publish_result(worker, &rollback).await?;
    Ok(Outcome::Done)
}

async fn decide_and_restore(
    worker: &Worker,
    job: &Job,
    rollback: &Rollback,
    cascade: bool,
) -> Result<Decision, Failure> {
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
            cascaded: Vec::new(),
        });
    }
    if job.result_is_dry_run() {
        return Ok(refused(format!("job {} was a dry run and changed nothing", job.id)));
    }
    if let Some(purged) = job.audit_purged_at {
        return Ok(refused(undo::audit_gone(job.id, purged)));
    }
    let window = Duration::days(i64::from(worker.retention.rollback_window_days));
    let completed_at = job.completed_at.unwrap_or(job.created_at);
    if completed_at < Utc::now() - window {
        return Ok(refused(format!(
            "job {} completed at {completed_at}, outside the {}-day rollback window",
            job.id, worker.retention.rollback_window_days
        )));
    }

    let trail = JobTrail::read(&mut tx, job.id).await?;
    let counters = job.counters();
    let changed_something =
        counters.memories_merged + counters.memories_archived + counters.memories_promoted + counters.summaries_created
            > 0;
    if trail.is_empty() && changed_something {
        return Ok(refused(format!("job {}: its audit rows are gone; nothing can be restored", job.id)));
    }
    let trail = trail.without_unmerged(&mut tx).await?;
    let later = later_jobs(&mut tx, &job, &trail, completed_at).await?;
    let later_ids: Vec<Uuid> = later.iter().map(|(l, _)| l.id).collect();
    if !later.is_empty() && !cascade {
        let mut conflicts: Vec<Uuid> = later.iter().flat_map(|(l, _)| l.touched.iter().copied()).collect();
        conflicts.sort();
        conflicts.dedup();
        return Ok(Decision::Refused {
            reason: format!(
                "later jobs built on the memories of job {} and still stand: {}; roll them back first (newest \
                 first), or ask for \"cascade\": true",
                job.id,
                listed(&later_ids)
            ),
            conflicts,
            later_jobs: later_ids,
        });
    }

    let changed_by = format!("rollback:{}:{}", rollback.id, rollback.requested_by);
    let mut total = Restored::default();
    for (later_job, later_trail) in &later {
        // Locked like the job itself: a rollback of the later job running meanwhile finishes
        // first, and then there is nothing left of it to undo.
        match jobs::lock(&mut tx, later_job.id).await? {
            Some(locked) if locked.rolled_back_at.is_none() => {}
            _ => continue,
        }
        let conflicts = later_trail.changed_since(&mut tx).await?;
        if !conflicts.is_empty() {
            return Ok(Decision::Refused {
                reason: format!(
                    "cascade stopped at job {}: memories changed after it by a change that still stands: {}",
                    later_job.id,
                    listed(&conflicts)
                ),
                conflicts,
                later_jobs: vec![later_job.id],
            });
        }
        let undo = rollback_undo(
            job.project_id,
            later_job.id,
            &changed_by,
            format!("rollback {} of job {} (cascade from job {})", rollback.id, later_job.id, job.id),
        );
        total += later_trail.restore(&mut tx, &undo).await?;
        jobs::mark_rolled_back(&mut *tx, later_job.id).await?;
    }
    let conflicts = trail.changed_since(&mut tx).await?;
    if !conflicts.is_empty() {
        return Ok(Decision::Refused {
            reason: format!(
                "memories changed after job {} by a change that still stands (by hand): {}",
                job.id,
                listed(&conflicts)
            ),
            conflicts,
            later_jobs: Vec::new(),
        });
    }
    let undo =
        rollback_undo(job.project_id, job.id, &changed_by, format!("rollback {} of job {}", rollback.id, job.id));
    total += trail.restore(&mut tx, &undo).await?;
    jobs::mark_rolled_back(&mut *tx, job.id).await?;
    let mut warnings = Vec::new();
    if trail.is_empty() {
        warnings.push("the job changed nothing; nothing to restore".to_owned());
    }
    let (restored, deleted) = (total.restored as i32, total.retired as i32);
    rollbacks::complete(&mut *tx, rollback.id, restored, deleted, &warnings).await?;
    rollbacks::record_later_jobs(&mut *tx, rollback.id, &later_ids).await?;
    tx.commit().await?;
    Ok(Decision::Completed { restored, deleted, warnings, cascaded: later_ids })
}

fn rollback_undo(project_id: Uuid, job_id: Uuid, changed_by: &str, reason: String) -> Undo<'_> {
    Undo {
        project_id,
        audit_job: Some(job_id),
        operation: ChangeOperation::Rollback,
        retire_as: ArchiveReason::RolledBack,
        reason,
        changed_by,
    }
}

/// Every standing later job that built on this job's memories, or on a later one's, with what
/// each did; newest first, the order they are undone in.
async fn later_jobs(
    conn: &mut PgConnection,
    job: &Job,
    trail: &JobTrail,
    completed_at: chrono::DateTime<Utc>,
) -> Result<Vec<(LaterJob, JobTrail)>, Failure> {
    let mut found: Vec<(LaterJob, JobTrail)> = Vec::new();
    let mut seen = vec![job.id];
    let mut frontier = trail.memory_ids();
    while !frontier.is_empty() {
        let next = standing_later_jobs(&mut *conn, job.project_id, &seen, completed_at, &frontier).await?;
        frontier = Vec::new();
        for later in next {
            seen.push(later.id);
            let later_trail = JobTrail::read(&mut *conn, later.id).await?.without_unmerged(&mut *conn).await?;
            frontier.extend(later_trail.memory_ids());
            found.push((later, later_trail));
        }
    }
    found.sort_by_key(|(later, _)| std::cmp::Reverse((later.completed_at, later.id)));
    Ok(found)
}

fn listed(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
}

fn refused(reason: String) -> Decision {
    Decision::Refused { reason, conflicts: Vec::new(), later_jobs: Vec::new() }
}

async fn record(worker: &Worker, rollback: &Rollback, decision: &Decision) -> Result<(), Failure> {
    match decision {
        Decision::Completed { restored, deleted, warnings, cascaded } => {
            tracing::info!(restored, deleted, ?warnings, ?cascaded, "rollback completed");
        }
        Decision::AlreadyRecorded => tracing::info!("rollback already finished by an earlier delivery"),
        Decision::Refused { reason, conflicts, later_jobs } => {
            tracing::info!(%reason, "rollback refused");
            if rollbacks::finish_unsuccessful(&worker.db, rollback.id, RollbackStatus::Refused, reason, conflicts)
                .await?
            {
                rollbacks::record_later_jobs(&worker.db, rollback.id, later_jobs).await?;
            }
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
    event.later_jobs = rollback.later_jobs.0.clone();
    event.error = rollback.error.clone();
    worker.bus.rollback_event(kind, &event).await?;
    if kind == RollbackEventKind::Completed {
        for job_id in rollback.later_jobs.0.iter().chain([&rollback.job_id]) {
            let job = job_event(JobEventKind::RolledBack, *job_id, rollback.project_id);
            worker.bus.job_terminal_event(JobEventKind::RolledBack, &job).await?;
        }
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
        later_jobs: Vec::new(),
        error: None,
    }
}

fn event_of_command(command: &RollbackCommand, event: RollbackEventKind) -> RollbackEvent {
    RollbackEvent {
        schema_version: SCHEMA_VERSION,
        event,
        rollback_id: command.rollback_id,
        consolidation_id: command.consolidation_id,
        project_id: command.project_id,
        at: Utc::now(),
        success: false,
        memories_restored: 0,
        memories_deleted: 0,
        warnings: Vec::new(),
        conflicts: Vec::new(),
        later_jobs: Vec::new(),
        error: None,
    }
}
