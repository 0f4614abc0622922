//! `cmd.sweep`: one scheduled job for every enabled, idle project over its threshold; when all
//! of them have ended, one summary event.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Outcome, Worker, check::publish_trigger, failure::Failure};
use crate::{
    bus::messages::{SweepCommand, decode, tick_token},
    domain::SweepStatus,
    finish,
    store::{
        jobs::{self, CreateOutcome, NewJob, TriggerType},
        projects, sweeps,
    },
};

pub async fn handle(worker: &Worker, message: &Message) -> Outcome {
    let command: SweepCommand = match decode(&message.payload) {
        Ok(command) => command,
        Err(error) => return Outcome::Poison { reason: error.to_string() },
    };
    match run(worker, message, &command).await {
        Ok(outcome) => outcome,
        Err(failure) => failure.into(),
    }
}

/// The job id of a project's sweep job: the same tick can never create a second one.
pub fn sweep_job_id(project_id: Uuid, tick: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(&project_id, format!("sweep:{}", tick_token(tick)).as_bytes())
}

async fn run(worker: &Worker, message: &Message, command: &SweepCommand) -> Result<Outcome, Failure> {
    let tick = command.tick;
    // The first delivery claims the tick; a redelivery of an unfinished fan-out repeats it
    // harmlessly (job ids are derived from the tick, triggers are deduplicated by job id).
    let sweep = match sweeps::start(&worker.db, tick, command.scheduled_at).await? {
        Some(sweep) => sweep,
        None => sweeps::get(&worker.db, tick).await?.ok_or_else(|| Failure::Transient("sweep row vanished".into()))?,
    };
    if sweep.status == SweepStatus::Completed {
        return Ok(Outcome::Done);
    }
    let candidates = projects::sweep_candidates(&worker.db).await?;
    let considered = projects::count_enabled(&worker.db).await? as i32;
    let pause = Duration::from_secs(1) / worker.config.sweep_rate_per_sec;
    for candidate in candidates.iter().filter(|c| c.active_memories > i64::from(c.consolidation_threshold)) {
        let job = NewJob {
            id: sweep_job_id(candidate.id, tick),
            project_id: candidate.id,
            trigger_type: TriggerType::Scheduled,
            options: serde_json::json!({}),
            triggered_by: format!("scheduler:{}", tick.to_rfc3339()),
            scheduled_for: Some(tick),
            plan_of: None,
        };
        match jobs::create(&worker.db, &job).await? {
            CreateOutcome::Created(_) => {}
            CreateOutcome::Existing(existing) if !existing.is_finished() => {}
            CreateOutcome::Existing(_) | CreateOutcome::ProjectBusy { .. } => continue,
        }
        if let Err(failure) = publish_trigger(worker, &job).await {
            // One project's trouble does not stop the others; the job stays pending and the
            // maintenance pass re-publishes it.
            tracing::warn!(project_id = %job.project_id, ?failure, "sweep trigger not published");
        }
        // A fan-out over many projects outlasts the ack wait; keep the sweep's message alive, and
        // show maintenance that it is not a dead one.
        if let Err(error) = message.ack_with(AckKind::Progress).await {
            tracing::warn!(%error, "in-progress ack failed");
        }
        sweeps::record_progress(&worker.db, tick).await?;
        tokio::time::sleep(pause).await;
    }
    // Read back rather than accumulated: a redelivered fan-out skips the projects whose tick job
    // is already active, and must still count them.
    let job_ids = jobs::of_sweep(&worker.db, tick).await?;
    sweeps::record_fan_out(&worker.db, tick, considered, &job_ids).await?;
    tracing::info!(%tick, considered, triggered = job_ids.len(), "sweep fanned out");
    finish::close_sweep_if_done(&worker.db, &worker.bus, tick).await?;
    Ok(Outcome::Done)
}

/// Called when a job ends: completes its sweep if that was the sweep's last job.
pub async fn on_job_finished(worker: &Worker, job_id: Uuid) {
    let Ok(Some(job)) = jobs::get(&worker.db, job_id).await else { return };
    let Some(tick) = job.sweep_tick else { return };
    if let Err(failure) = finish::close_sweep_if_done(&worker.db, &worker.bus, tick).await {
        tracing::warn!(?failure, %tick, "sweep completion check failed");
    }
}
