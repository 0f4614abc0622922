//! The guards' part of a job's result (DESIGN.md §11): what the value guard held back, the blast
//! radius, and the failure of a plan beyond it (its plan kept readable like a dry run's).

use uuid::Uuid;

use super::{Worker, boundary::End, events::job_event};
use crate::{
    domain::{
        BlastRadius, EventResult, GuardsSummary, JobCost, JobEventKind, JobResult, Options, Phase, Plan,
        ValueGuardSummary,
    },
    engine::plan::report,
    store::{jobs, jobs::Job},
};

/// `result.guards`: how many pairs each guard held back. `stored` is the number of review rows
/// this job opened and of open ones it brought up to date (None for a dry run, which stores none).
pub fn summary(plan: &Plan, blast: &BlastRadius, stored: Option<(usize, usize)>) -> GuardsSummary {
    GuardsSummary {
        value_guard: ValueGuardSummary {
            mode: plan.guard.value_guard,
            held_pairs: plan.guard.held_pairs,
            judged_pairs: plan.guard.judged_pairs,
            reviews_proposed: plan.guard.reviews.len(),
            reviews_opened: stored.map(|s| s.0),
            reviews_refreshed: stored.map(|s| s.1),
            superseded: plan.guard.superseded.len(),
        },
        blast_radius: *blast,
        merge_policy: plan.guard.boundaries,
    }
}

/// Fails the job because its plan exceeds the blast radius; the plan goes into the result,
/// bounded and without embeddings. None when this worker no longer holds the job.
pub async fn fail_blocked(
    worker: &Worker,
    job: &Job,
    plan: &Plan,
    options: &Options,
    complete: bool,
    blast: &BlastRadius,
    cost: JobCost,
) -> Result<Option<End>, crate::store::StoreError> {
    let error = blast.describe();
    let result = JobResult {
        dry_run: false,
        blocked_by: Some("max_changed_share".to_owned()),
        plan: Some(report::report(plan, report::PLAN_REPORT_LIMIT)),
        applied: None,
        guards: summary(plan, blast, None),
        clustering: options.incremental_base(complete),
        cost: Some(cost),
        applied_plan: None,
    };
    let before = i32::try_from(plan.memories_before).unwrap_or(i32::MAX);
    if !jobs::fail_with_result(&worker.db, job.id, &worker.worker_id, &error, before, &result).await? {
        return Ok(None);
    }
    tracing::warn!(share = blast.share, limit = blast.limit, "plan exceeds the blast radius; not applied");
    let mut event = job_event(JobEventKind::Failed, job.id, job.project_id);
    event.phase = Some(Phase::Failed);
    event.error = Some(error);
    event.memories_before = Some(before);
    event.result = Some(EventResult::Whole(Box::new(result)));
    Ok(Some(End { kind: JobEventKind::Failed, event }))
}

/// The review items of a plan as they are stored: ids derived from the job and the pair (a row
/// that exists for the pair keeps its own id).
pub fn new_reviews(job_id: Uuid, plan: &Plan, kept: impl Fn(Uuid) -> bool) -> Vec<crate::store::reviews::NewReview> {
    plan.guard
        .reviews
        .iter()
        .filter(|r| kept(r.older.id) && kept(r.newer.id))
        .map(|r| crate::store::reviews::NewReview {
            id: Uuid::new_v5(&job_id, format!("review:{}:{}", r.older.id, r.newer.id).as_bytes()),
            kind: r.kind,
            older: (r.older.id, r.older.version),
            newer: (r.newer.id, r.newer.version),
            similarity: r.similarity,
            difference: r.difference.clone(),
            suggestion: r.suggestion,
        })
        .collect()
}
