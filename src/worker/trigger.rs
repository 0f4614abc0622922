//! `cmd.trigger`: create or find the job, claim it, plan, apply, report.

use std::sync::Arc;

use async_nats::jetstream::Message;
use tracing::Span;
use uuid::Uuid;

use super::events::{completed_event, event_result};
use super::{
    Outcome, Worker, apply,
    apply::ApplyOutcome,
    boundary::{self, End, Step},
    cost::CostMeter,
    dry_run,
    events::job_event,
    failure::Failure,
    guards,
    interrupt::JobStop,
    lease::LeaseKeeper,
    memory::{self, Reservation},
    planning::{self, Planned},
    reviewed_plan, sweep,
};
use crate::{
    bus::messages::{TriggerCommand, decode, named_id},
    domain::{BlastRadius, JobEventKind, Options, Phase},
    store::{
        jobs::{self, ClaimOutcome, CreateOutcome, Job, NewJob},
        projects::{self, Project},
    },
};
use tokio::sync::OwnedSemaphorePermit;

pub async fn handle(worker: &Worker, message: &Message) -> Outcome {
    let command: TriggerCommand = match decode(&message.payload) {
        Ok(command) => command,
        Err(error) => {
            // The job it names (if any) fails with the reason rather than waiting for maintenance.
            let reason = error.to_string();
            give_up(worker, &message.payload, &reason).await;
            return Outcome::Poison { reason };
        }
    };
    Span::current().record("job_id", command.job_id.to_string()).record("project_id", command.project_id.to_string());
    let result = if command.triggered_by.trim().is_empty() {
        Err(Failure::Impossible("triggered_by must not be empty".to_owned()))
    } else {
        run(worker, message, &command).await
    };
    match result {
        Ok(outcome) => outcome,
        Err(Failure::Impossible(reason)) => {
            fail_job(worker, command.job_id, command.project_id, &reason).await;
            Outcome::Poison { reason }
        }
        Err(failure) => failure.into(),
    }
}

/// The command will not be delivered again: the job it names fails with the reason, when the
/// payload names the job's project too (and no worker holds it alive).
pub async fn give_up(worker: &Worker, payload: &[u8], reason: &str) {
    if let (Some(job_id), Some(project_id)) = (named_id(payload, "job_id"), named_id(payload, "project_id")) {
        fail_job(worker, job_id, project_id, reason).await;
    }
}

async fn fail_job(worker: &Worker, job_id: Uuid, project_id: Uuid, reason: &str) {
    match jobs::fail_unless_held(&worker.db, job_id, project_id, reason, worker.lease()).await {
        Ok(true) => announce_failure(worker, job_id, reason).await,
        Ok(false) => {}
        Err(error) => tracing::error!(%error, "could not record the job's failure"),
    }
}

async fn announce_failure(worker: &Worker, job_id: Uuid, reason: &str) {
    let Ok(Some(job)) = jobs::get(&worker.db, job_id).await else { return };
    let mut event = job_event(JobEventKind::Failed, job.id, job.project_id);
    event.error = Some(reason.to_owned());
    if let Err(error) = worker.bus.job_terminal_event(JobEventKind::Failed, &event).await {
        tracing::warn!(%error, "failed event not published");
    }
    sweep::on_job_finished(worker, job.id).await;
}

async fn run(worker: &Worker, message: &Message, command: &TriggerCommand) -> Result<Outcome, Failure> {
    let project = projects::get(&worker.db, command.project_id)
        .await?
        .ok_or_else(|| Failure::Rejected(format!("project {} does not exist", command.project_id)))?;
    let job = ensure_job(worker, command).await?;
    // Only a job nobody started is refused: one running since before the project was disabled is
    // left to its worker (or taken over below), and a finished one answers as finished.
    if !project.consolidation_enabled && job.status == jobs::JobStatus::Pending {
        return Err(Failure::Impossible(format!("consolidation is disabled for project {}", project.id)));
    }
    let options = Options::resolve(&project.consolidation_options.0, &job.options.0)
        .map_err(|error| Failure::Impossible(format!("invalid options: {error}")))?;

    // Held until the run ends: the jobs this worker runs share WORKER_MEMORY_BUDGET_MB.
    if let (Some(dry_run_id), false) = (job.plan_of, job.is_finished()) {
        reviewed_plan::check(worker, &job, dry_run_id).await?;
    }
    // A finished job only has its end published again: it needs no memory.
    let _memory = match job.is_finished() {
        true => None,
        false => match reserve_memory(worker, &project).await? {
            Some(reserved) => Some(reserved),
            None => return Ok(Outcome::Wait { delay: worker.lease() }),
        },
    };
    let job = match jobs::claim(&worker.db, job.id, &worker.worker_id, worker.lease()).await? {
        ClaimOutcome::Claimed(job) => job,
        ClaimOutcome::Finished(job) => {
            republish_end(worker, &job).await?;
            sweep::on_job_finished(worker, job.id).await;
            return Ok(Outcome::Done);
        }
        ClaimOutcome::HeldElsewhere(_) => return Ok(Outcome::Wait { delay: worker.lease() }),
        ClaimOutcome::NotFound => return Err(Failure::Impossible(format!("job {} vanished", job.id))),
    };
    if i64::from(job.attempts) > worker.config.max_deliveries {
        // Each earlier run ended with its worker gone (a crash, an out-of-memory kill): stop here
        // rather than take down worker after worker.
        let reason = format!("claimed {} times and no run finished: each ended with its worker gone", job.attempts - 1);
        if jobs::fail(&worker.db, job.id, &reason).await? {
            announce_failure(worker, job.id, &reason).await;
        }
        return Ok(Outcome::Poison { reason });
    }
    tracing::info!(attempt = job.attempts, dry_run = options.dry_run, "job claimed");
    let keeper = LeaseKeeper::start(worker, Arc::new(message.clone()), job.id);
    let result = execute(worker, &job, &options, project.embedding_dim, &keeper).await;
    let lost = keeper.lost.is_cancelled();
    keeper.stop().await;
    // The commit decides, not the keeper: a heartbeat that lands after this worker's own commit
    // finds the job finished, and the completed event must still go out.
    let end = match result {
        Ok(Some(finished)) => finished,
        // Another worker took the job over meanwhile; its run decides, and its answer to the
        // delivery (never this worker's ack) settles the message.
        Ok(None) => return Ok(Outcome::Abandon),
        Err(_) if lost => return Ok(Outcome::Abandon),
        Err(Failure::Shutdown) => {
            tracing::info!("worker shutting down: job handed back to pending");
            match jobs::release(&worker.db, job.id, &worker.worker_id, "handed back by a worker shutting down").await {
                Ok(true) => {}
                Ok(false) => return Ok(Outcome::Abandon),
                Err(error) => tracing::warn!(%error, "could not release the job at shutdown"),
            }
            return Err(Failure::Shutdown);
        }
        Err(failure) => {
            if let Failure::Transient(reason) | Failure::Outage(reason) = &failure {
                if let Err(error) = jobs::release(&worker.db, job.id, &worker.worker_id, reason).await {
                    tracing::warn!(%error, "could not release the job after a failure");
                }
            }
            return Err(failure);
        }
    };
    worker.bus.job_terminal_event(end.kind, &end.event).await?;
    sweep::on_job_finished(worker, job.id).await;
    Ok(Outcome::Done)
}

/// The project's share of the worker's memory budget; None while the running jobs hold too
/// much of it, and a failure naming the budget when the project needs more than all of it.
async fn reserve_memory(worker: &Worker, project: &Project) -> Result<Option<OwnedSemaphorePermit>, Failure> {
    // A job's snapshot holds the active memories and the duplicates (a merged memory's originals).
    let counts = projects::memory_counts(&worker.db, project.id).await?;
    let rows = u64::try_from(counts.active + counts.duplicate).unwrap_or(0);
    let dim = project.embedding_dim.and_then(|dim| u64::try_from(dim).ok()).unwrap_or(0);
    let need = memory::need_mb(rows, dim);
    match worker.memory.reserve(need) {
        Reservation::Granted(permit) => Ok(Some(permit)),
        Reservation::Busy => {
            tracing::info!(need_mb = need, "waiting for memory: the running jobs hold the budget");
            Ok(None)
        }
        Reservation::NeverFits => Err(Failure::Impossible(format!(
            "project {} holds {rows} memories of {dim} dimensions: a job needs about {need} MiB, more than \
             this worker's WORKER_MEMORY_BUDGET_MB ({} MiB); raise the budget or run the project on a larger worker",
            project.id,
            worker.memory.budget_mb()
        ))),
    }
}

/// The job row, created here when the publisher did not write one.
async fn ensure_job(worker: &Worker, command: &TriggerCommand) -> Result<Job, Failure> {
    if let Some(job) = jobs::get(&worker.db, command.job_id).await? {
        if job.project_id != command.project_id {
            return Err(Failure::Rejected(format!(
                "job {} belongs to project {}, not {}",
                job.id, job.project_id, command.project_id
            )));
        }
        return Ok(job);
    }
    if let Some(dry_run_id) = command.plan_of {
        let named = jobs::get(&worker.db, dry_run_id).await?;
        if named.is_none_or(|dry_run| dry_run.project_id != command.project_id) {
            return Err(Failure::Impossible(format!(
                "plan_of names job {dry_run_id}, not a job of project {}",
                command.project_id
            )));
        }
    }
    let new = NewJob {
        id: command.job_id,
        project_id: command.project_id,
        trigger_type: command.trigger_type,
        options: command.options.clone().unwrap_or_else(|| serde_json::json!({})),
        triggered_by: command.triggered_by.clone(),
        scheduled_for: None,
        plan_of: command.plan_of,
    };
    match jobs::create(&worker.db, &new).await? {
        CreateOutcome::Created(job) => {
            let event = job_event(JobEventKind::Queued, job.id, job.project_id);
            worker.bus.job_progress_event(JobEventKind::Queued, &event).await;
            Ok(job)
        }
        CreateOutcome::Existing(job) => Ok(job),
        // A valid command that came too early: retried with backoff until the active job ends.
        CreateOutcome::ProjectBusy { active_job_id } => Err(Failure::Busy(format!(
            "project {} already has an active job{}",
            command.project_id,
            active_job_id.map(|id| format!(" {id}")).unwrap_or_default()
        ))),
    }
}

/// Loads, plans and applies, stopping at a phase boundary when a cancel request came; returns
/// the terminal event (completed, failed by the blast-radius limit, or cancelled), or None if
/// the lease was lost.
async fn execute(
    worker: &Worker,
    job: &Job,
    options: &Options,
    embedding_dim: Option<i32>,
    keeper: &LeaseKeeper,
) -> Result<Option<End>, Failure> {
    let stop = JobStop::start(worker, job.id, keeper.lost.clone());
    let mut started = job_event(JobEventKind::Started, job.id, job.project_id);
    started.phase = Some(Phase::Loading);
    worker.bus.job_progress_event(JobEventKind::Started, &started).await;
    if let Step::Stop(end) = boundary::check(worker, job, Phase::Loading, &stop).await? {
        return Ok(end.map(|end| *end));
    }

    let mut meter = CostMeter::start();
    let planned = match job.plan_of {
        Some(dry_run_id) => reviewed_plan::load(worker, job, dry_run_id, &mut meter).await?,
        None => planning::plan(worker, job, options, embedding_dim, keeper, &stop, &mut meter).await?,
    };
    let (plan, complete) = match planned {
        Planned::Plan { plan, complete } => (*plan, complete),
        Planned::Stop(end) => return Ok(end),
    };
    if let Step::Stop(end) = boundary::check(worker, job, Phase::Applying, &stop).await? {
        return Ok(end.map(|end| *end));
    }
    let blast = BlastRadius::of(&plan, options.max_changed_share);
    if blast.exceeded && !options.dry_run {
        return Ok(guards::fail_blocked(
            worker,
            job,
            &plan,
            options,
            complete,
            &blast,
            meter.report(plan.memories_before),
        )
        .await?);
    }
    worker.bus.job_progress_event(JobEventKind::Progress, &planning::progress(keeper, job, Phase::Applying, 0.7)).await;

    if options.dry_run {
        return dry_run::complete(worker, job, plan, options, complete, meter).await;
    }
    let applied = match apply::apply(worker, job, &plan, options, complete, meter).await? {
        ApplyOutcome::Committed(committed) => committed,
        ApplyOutcome::Lost => return Ok(None),
        ApplyOutcome::Cancelled(by) => return boundary::cancelled(worker, job, &by, "its commit").await,
    };
    tracing::info!(
        merged = applied.counters.memories_merged,
        archived = applied.counters.memories_archived,
        promoted = applied.counters.memories_promoted,
        summaries = applied.counters.summaries_created,
        skipped = applied.skipped_memories.len(),
        "job completed"
    );
    let mut completed = completed_event(job);
    completed.counters = Some(applied.counters);
    completed.memories_before = Some(applied.memories_before);
    completed.memories_after = Some(applied.memories_after);
    completed.result = Some(event_result(&applied.result));
    Ok(Some(End { kind: JobEventKind::Completed, event: completed }))
}

/// A redelivered command for a finished job: make sure its end reached the event stream.
async fn republish_end(worker: &Worker, job: &Job) -> Result<(), Failure> {
    let kind = JobEventKind::of_finished(job.status);
    let mut event = job_event(kind, job.id, job.project_id);
    event.at = job.completed_at.unwrap_or(event.at);
    event.phase = Some(job.phase);
    event.progress = Some(job.progress);
    event.error = job.error_message.clone();
    event.memories_before = job.memories_before;
    event.memories_after = job.memories_after;
    event.counters = Some(job.counters());
    event.result = match job.typed_result() {
        Some(result) => Some(event_result(&result)),
        None => job.event_result(),
    };
    worker.bus.job_terminal_event(kind, &event).await?;
    Ok(())
}
