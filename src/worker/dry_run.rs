//! A dry run's end: its bounded report in the job result, and its whole plan stored so that it
//! can be applied as reviewed (`reviewed_plan`).

use super::{Worker, boundary::End, cost::CostMeter, failure::Failure, guards, trigger::event_result};
use crate::{
    bus::messages::JobEvent,
    domain::{BlastRadius, JobCounters, JobEventKind, JobResult, Options, Plan},
    engine::plan::report,
    store::{
        jobs::{self, Job},
        plans,
    },
};

#[allow(clippy::too_many_arguments)]
pub async fn complete(
    worker: &Worker,
    job: &Job,
    plan: &Plan,
    options: &Options,
    complete: bool,
    blast: &BlastRadius,
    meter: CostMeter,
    mut completed: JobEvent,
) -> Result<Option<End>, Failure> {
    let counters = JobCounters::from(&plan.counters);
    let result = JobResult {
        dry_run: true,
        blocked_by: None,
        plan: Some(report::report(plan, report::PLAN_REPORT_LIMIT)),
        applied: None,
        guards: guards::summary(plan, blast, None),
        clustering: options.incremental_base(complete),
        cost: Some(meter.report(plan.memories_before)),
        applied_plan: None,
    };
    let before = i32::try_from(plan.memories_before).unwrap_or(i32::MAX);
    let after = i32::try_from(plan.memories_after).unwrap_or(i32::MAX);
    let mut tx = worker.db.begin().await?;
    plans::save(&mut tx, job.id, job.project_id, plan).await?;
    if !jobs::complete(&mut *tx, job.id, &worker.worker_id, &counters, before, after, &result).await? {
        return Ok(None);
    }
    tx.commit().await?;
    completed.counters = Some(counters);
    completed.memories_before = Some(before);
    completed.memories_after = Some(after);
    completed.result = Some(event_result(&result));
    Ok(Some(End { kind: JobEventKind::Completed, event: completed }))
}
