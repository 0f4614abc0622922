//! A dry run's end: its bounded report in the job result, and its whole plan stored so that it
//! can be applied as reviewed (`reviewed_plan`).

use super::{
    Worker,
    boundary::End,
    cost::CostMeter,
    events::{completed_event, event_result},
    failure::Failure,
    guards,
};
use crate::{
    domain::{BlastRadius, JobCounters, JobEventKind, JobResult, Options, Plan},
    engine::plan::report,
    store::{
        jobs::{self, Job},
        plans,
    },
};

pub async fn complete(
    worker: &Worker,
    job: &Job,
    plan: Plan,
    options: &Options,
    complete: bool,
    meter: CostMeter,
) -> Result<Option<End>, Failure> {
    let blast = BlastRadius::of(&plan, options.max_changed_share);
    let counters = JobCounters::from(&plan.counters);
    let mut result = JobResult {
        dry_run: true,
        blocked_by: None,
        plan: Some(report::report(&plan, report::PLAN_REPORT_LIMIT)),
        applied: None,
        guards: guards::summary(&plan, &blast, None),
        clustering: options.incremental_base(complete),
        cost: Some(meter.report(plan.memories_before)),
        applied_plan: None,
    };
    let before = i32::try_from(plan.memories_before).unwrap_or(i32::MAX);
    let after = i32::try_from(plan.memories_after).unwrap_or(i32::MAX);
    let mut tx = worker.db.begin().await?;
    let window = worker.retention.rollback_window_days;
    if plans::save(&mut tx, job.id, job.project_id, plan, window).await?.is_none() {
        if let Some(report) = result.plan.as_mut() {
            report.warnings.push(serde_json::Value::from(plans::TOO_LARGE));
        }
    }
    if !jobs::complete(&mut *tx, job.id, &worker.worker_id, &counters, before, after, &result).await? {
        return Ok(None);
    }
    tx.commit().await?;
    let mut completed = completed_event(job);
    completed.counters = Some(counters);
    completed.memories_before = Some(before);
    completed.memories_after = Some(after);
    completed.result = Some(event_result(&result));
    Ok(Some(End { kind: JobEventKind::Completed, event: completed }))
}
