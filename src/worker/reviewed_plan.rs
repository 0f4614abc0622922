//! A job that applies a dry run's stored plan instead of planning (`plan_of`): the plan an
//! operator reviewed, applied as it stands where nothing it touches changed since, and an
//! account of every change left out.

use std::collections::HashSet;

use uuid::Uuid;

use super::{Worker, cost::CostMeter, failure::Failure, planning::Planned};
use crate::{
    domain::{AppliedPlan, LeftOut, ModelUsage, PhaseTimings, Plan, PlannedKind, SourceRef},
    store::{StoreError, jobs::Job, plans, projects},
};

/// The dry run's plan, counted against today's store; fails the job when the plan is gone
/// (older than the window) or another job applies or applied it.
pub async fn load(worker: &Worker, job: &Job, dry_run_id: Uuid, meter: &mut CostMeter) -> Result<Planned, Failure> {
    if let Some(other) = plans::applied_by(&worker.db, dry_run_id, job.id).await? {
        return Err(Failure::Impossible(format!("the plan of dry run {dry_run_id} is applied by job {other}")));
    }
    let (mut plan, bytes) = match plans::load(&worker.db, job.project_id, dry_run_id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return Err(Failure::Impossible(format!(
                "dry run {dry_run_id} of project {} has no plan to apply: it is not a completed dry run of \
                 this project, or older than {} days",
                job.project_id,
                plans::APPLY_WINDOW_DAYS
            )));
        }
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

/// What the apply kept of each kind of change (created memory ids for merges and syntheses,
/// archived ids, promoted entry ids).
pub struct KeptIds {
    pub merges: HashSet<Uuid>,
    pub syntheses: HashSet<Uuid>,
    pub archives: HashSet<Uuid>,
    pub promotions: HashSet<Uuid>,
}

/// Each planned change the apply left out, with why: `changed` holds the memories whose version
/// or state moved since the dry run.
pub fn account(dry_run_id: Uuid, plan: &Plan, kept: &KeptIds, changed: &HashSet<Uuid>) -> AppliedPlan {
    let moved = |refs: &mut dyn Iterator<Item = &SourceRef>| -> Vec<Uuid> {
        refs.filter(|source| changed.contains(&source.id)).map(|source| source.id).collect()
    };
    let since = |ids: &[Uuid]| {
        let named: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        format!("changed since the dry run: {}", named.join(", "))
    };
    let mut left_out = Vec::new();
    for merge in plan.merges.iter().filter(|m| !kept.merges.contains(&m.memory.id)) {
        let moved = moved(&mut merge.sources.iter());
        left_out.push(LeftOut {
            kind: PlannedKind::Merge,
            memory_ids: merge.sources.iter().map(|s| s.id).collect(),
            reason: since(&moved),
        });
    }
    for synthesis in plan.syntheses.iter().filter(|s| !kept.syntheses.contains(&s.memory.id)) {
        let moved = moved(&mut synthesis.sources.iter().chain(&synthesis.supersedes));
        let reason = match moved.is_empty() {
            true => "a merge it reads was left out".to_owned(),
            false => since(&moved),
        };
        let memory_ids = synthesis.sources.iter().chain(&synthesis.supersedes).map(|s| s.id).collect();
        left_out.push(LeftOut { kind: PlannedKind::Synthesis, memory_ids, reason });
    }
    for archive in plan.archives.iter().filter(|a| !kept.archives.contains(&a.memory_id)) {
        let reason = match changed.contains(&archive.memory_id) {
            true => since(&[archive.memory_id]),
            false => "the memory superseding it is no longer active".to_owned(),
        };
        left_out.push(LeftOut { kind: PlannedKind::Archive, memory_ids: vec![archive.memory_id], reason });
    }
    for promotion in plan.promotions.iter().filter(|p| !kept.promotions.contains(&p.entry_id)) {
        left_out.push(LeftOut {
            kind: PlannedKind::Promotion,
            memory_ids: vec![promotion.memory_id],
            reason: "the memory it promotes was left out".to_owned(),
        });
    }
    let planned = plan.merges.len() + plan.syntheses.len() + plan.archives.len() + plan.promotions.len();
    AppliedPlan { dry_run_id, applied: planned - left_out.len(), left_out }
}
