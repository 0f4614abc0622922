//! Phase boundaries of a job: where a cancel request is honoured (DESIGN.md §11). A job stops
//! between loading, planning and applying, inside planning between its units (`interrupt`), and
//! inside the apply transaction just before its commit (`apply`); stopped anywhere, it has
//! changed nothing. The same boundaries end the run of a worker that lost the job or whose
//! shutdown grace ran out.

use super::{
    Worker,
    events::job_event,
    failure::Failure,
    interrupt::{Interrupt, JobStop},
};
use crate::domain::JobEventKind;
use crate::domain::Phase;
use crate::{
    bus::messages::JobEvent,
    store::{cancel, jobs::Job},
};

/// How a run ended: the terminal event to publish.
pub struct End {
    pub kind: JobEventKind,
    pub event: JobEvent,
}

pub enum Step {
    Continue,
    /// Stop here: `None` when this worker lost the job meanwhile (its new holder decides).
    Stop(Option<Box<End>>),
}

/// The cancelled end of a job whose cancel request `requested_by` made before `phase`.
pub async fn cancelled(worker: &Worker, job: &Job, requested_by: &str, phase: &str) -> Result<Option<End>, Failure> {
    let error = format!("cancelled by {requested_by} before {phase}; nothing was applied");
    if !cancel::finish(&worker.db, job.id, &worker.worker_id, &error).await? {
        return Ok(None);
    }
    tracing::info!(phase, requested_by, "job cancelled");
    let mut event = job_event(JobEventKind::Cancelled, job.id, job.project_id);
    event.phase = Some(Phase::Cancelled);
    event.error = Some(error);
    Ok(Some(End { kind: JobEventKind::Cancelled, event }))
}

/// Where an interrupted job goes before `phase`: cancelled, left to the worker that holds it, or
/// (shutdown) handed back as [`Failure::Shutdown`].
pub async fn interrupted(worker: &Worker, job: &Job, phase: Phase, why: Interrupt) -> Result<Option<End>, Failure> {
    match why {
        Interrupt::Cancelled(by) => cancelled(worker, job, &by, phase.as_str()).await,
        Interrupt::Lost => Ok(None),
        Interrupt::Shutdown => Err(Failure::Shutdown),
    }
}

/// Before `phase` starts: stop if someone asked the job to, or if `stop` says it must.
pub async fn check(worker: &Worker, job: &Job, phase: Phase, stop: &JobStop) -> Result<Step, Failure> {
    if let Some(why) = stop.reason() {
        return Ok(Step::Stop(interrupted(worker, job, phase, why).await?.map(Box::new)));
    }
    match cancel::requested_by(&worker.db, job.id).await? {
        None => Ok(Step::Continue),
        Some(by) => Ok(Step::Stop(cancelled(worker, job, &by, phase.as_str()).await?.map(Box::new))),
    }
}
