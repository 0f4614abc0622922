//! Finishing what several components share: a sweep closes when the last of its jobs ends,
//! whichever component ended it (a worker, a cancel through the gateway, maintenance), and a
//! cancelled job's terminal event is told the same way by whoever cancels it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::{
    bus::{
        Bus, BusError,
        messages::{JobEvent, SCHEMA_VERSION, SweepSummary, tick_token},
    },
    domain::{JobEventKind, JobStatus, SweepStatus},
    store::{StoreError, jobs, jobs::Job, sweeps},
};

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("encoding the sweep summary: {0}")]
    Encode(serde_json::Error),
}

/// Completes the sweep of `tick` and publishes its summary once every job it triggered ended.
pub async fn close_sweep_if_done(db: &PgPool, bus: &Bus, tick: DateTime<Utc>) -> Result<(), FinishError> {
    let Some(sweep) = sweeps::get(db, tick).await? else { return Ok(()) };
    if sweep.status == SweepStatus::Completed || sweep.fanned_out_at.is_none() {
        return Ok(());
    }
    let mut summary = SweepSummary {
        schema_version: SCHEMA_VERSION,
        tick: Some(tick),
        sweep_date: Some(sweep.sweep_date),
        projects_considered: sweep.projects_considered,
        projects_triggered: sweep.projects_triggered,
        job_ids: sweep.job_ids.clone(),
        ..Default::default()
    };
    for job_id in &sweep.job_ids {
        let Some(job) = jobs::get(db, *job_id).await? else { continue };
        match job.status {
            JobStatus::Completed => summary.jobs_completed += 1,
            JobStatus::Failed => summary.jobs_failed += 1,
            JobStatus::Cancelled => summary.jobs_cancelled += 1,
            JobStatus::Pending | JobStatus::Running => return Ok(()),
        }
        summary.memories_merged += i64::from(job.memories_merged);
        summary.memories_archived += i64::from(job.memories_archived);
        summary.memories_promoted += i64::from(job.memories_promoted);
        summary.summaries_created += i64::from(job.summaries_created);
    }
    let value = serde_json::to_value(&summary).map_err(FinishError::Encode)?;
    // Published before the row is closed: a failure leaves the sweep open for the next job's
    // end or a redelivery, and concurrent closers are deduplicated by the message id.
    let subject = bus.prefix.sweep_completed(tick);
    bus.publish_event_once(subject, &format!("sweep:{}.completed", tick_token(tick)), &summary).await?;
    if sweeps::complete(db, tick, &value).await? {
        tracing::info!(%tick, completed = summary.jobs_completed, failed = summary.jobs_failed, "sweep completed");
    }
    Ok(())
}

/// The `cancelled` event of a job that ended so, from its row.
pub fn cancelled_event(job: &Job) -> JobEvent {
    let mut event = JobEvent::new(JobEventKind::Cancelled, job.id, job.project_id);
    event.at = job.completed_at.unwrap_or(event.at);
    event.phase = Some(job.phase);
    event.error = job.error_message.clone();
    event
}
