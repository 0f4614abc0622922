//! A job that applies a dry run's stored plan instead of planning (`plan_of`): the plan an
//! operator reviewed, applied as it stands where nothing it touches changed since, and an
//! account of every change left out.

use uuid::Uuid;

use super::{Worker, cost::CostMeter, failure::Failure, planning::Planned};
use crate::{
    domain::{ModelUsage, PhaseTimings},
    store::{StoreError, jobs::Job, plans, projects},
};

/// Before the job is claimed: refused when another job applies or applied the plan, or the plan
/// is not kept (older than the window, too large, or not a dry run of this project).
pub async fn check(worker: &Worker, job: &Job, dry_run_id: Uuid) -> Result<(), Failure> {
    if let Some(other) = plans::applied_by(&worker.db, dry_run_id, job.id).await? {
        return Err(Failure::Impossible(format!("the plan of dry run {dry_run_id} is applied by job {other}")));
    }
    if !plans::is_kept(&worker.db, dry_run_id, worker.retention.rollback_window_days).await? {
        return Err(not_kept(job, dry_run_id, worker.retention.rollback_window_days));
    }
    Ok(())
}

fn not_kept(job: &Job, dry_run_id: Uuid, window: u32) -> Failure {
    Failure::Impossible(format!(
        "dry run {dry_run_id} of project {} has no plan to apply: it is not a completed dry run of this project, \
         its plan was too large to keep, or it is older than {window} days",
        job.project_id
    ))
}

/// The dry run's plan, counted against today's store.
pub async fn load(worker: &Worker, job: &Job, dry_run_id: Uuid, meter: &mut CostMeter) -> Result<Planned, Failure> {
    let window = worker.retention.rollback_window_days;
    let (mut plan, bytes) = match plans::load(&worker.db, job.project_id, dry_run_id, window).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(not_kept(job, dry_run_id, window)),
        Err(StoreError::Corrupt(reason)) => return Err(Failure::Impossible(reason)),
        Err(error) => return Err(error.into()),
    };
    plan.memories_before = projects::active_memory_count(&worker.db, job.project_id).await?;
    meter.loaded_plan(bytes);
    plan.timings_ms = PhaseTimings { load_snapshot: meter.loading_ms(), ..PhaseTimings::default() };
    meter.planned(0, ModelUsage::default());
    // A reviewed plan judged the store as it was: the next job plans in full.
    Ok(Planned::Plan { plan: Box::new(plan), complete: false })
}
