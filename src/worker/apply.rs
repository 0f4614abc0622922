//! Applies a plan in one transaction: rows locked, versions checked against the snapshot the
//! plan came from. A cluster with any member changed meanwhile is left out, not overwritten.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::cost::{self, CostMeter};
use super::{
    Worker, guards,
    reviewed_plan::{self, KeptIds},
};
use crate::{
    domain::{
        Applied, AppliedMerge, AppliedSynthesis, Archive, ArchiveReason, BlastRadius, JobResult, Merge, NewMemory,
        OpenedReview, Options, Plan, PlaybookFollow, PlaybookOperation, Promotion, SourceRef, Synthesis,
    },
    store::{
        Result, cancel, changes,
        changes::NewChange,
        jobs::{self, Job, JobCounters},
        memories::{self, Usage},
        playbook::{self, NewEntry},
        projects, reviews,
    },
};

/// How an apply ended.
pub enum ApplyOutcome {
    Committed(Box<Committed>),
    /// This worker no longer holds the job: nothing was changed.
    Lost,
    /// A cancel request (by the named actor) reached the job before its commit: nothing was changed.
    Cancelled(String),
}

pub struct Committed {
    pub counters: JobCounters,
    pub memories_before: i32,
    pub memories_after: i32,
    /// Memories the plan wanted to change that changed since the snapshot.
    pub skipped_memories: Vec<Uuid>,
    pub result: JobResult,
}

/// Applies the plan in one transaction; changes nothing unless it ends `Committed`.
pub async fn apply(
    worker: &Worker,
    job: &Job,
    plan: &Plan,
    options: &Options,
    complete: bool,
    mut meter: CostMeter,
) -> Result<ApplyOutcome> {
    let mut tx = worker.db.begin().await?;
    let expected = expected_versions(plan);
    let ids: Vec<Uuid> = expected.keys().copied().collect();
    let current: HashMap<Uuid, (i64, bool, bool)> = memories::lock_versions(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|(id, version, archived, duplicate)| (id, (version, archived, duplicate)))
        .collect();
    let changed: HashSet<Uuid> = expected
        .iter()
        .filter(|(id, version)| !matches!(current.get(id), Some((now, false, false)) if now == *version))
        .map(|(id, _)| *id)
        .collect();
    let planned: HashSet<Uuid> =
        plan.merges.iter().map(|m| m.memory.id).chain(plan.syntheses.iter().map(|s| s.memory.id)).collect();
    // A supersession stands only in favour of a memory that is active after this commit.
    let targets: Vec<Uuid> =
        plan.guard.superseded.iter().map(|s| s.superseded_by).filter(|id| !planned.contains(id)).collect();
    let live_targets: HashSet<Uuid> = memories::lock_versions(&mut tx, &targets)
        .await?
        .into_iter()
        .filter(|(_, _, archived, duplicate)| !archived && !duplicate)
        .map(|(id, ..)| id)
        .collect();
    let kept = Kept::select(plan, &changed, &live_targets);

    // Usage is read under the locks: a reuse that reached a source after the snapshot is carried.
    let usage_of = memories::usage(&mut *tx, &ids).await?;
    let carried = |refs: &[SourceRef]| Usage::sum(refs.iter().filter_map(|r| usage_of.get(&r.id)));
    let with_usage = |memory: &NewMemory, usage: Usage| NewMemory {
        reused_count: usage.reused_count,
        last_reused_at: usage.last_reused_at,
        ..memory.clone()
    };
    let new_rows: Vec<NewMemory> = kept
        .merges
        .iter()
        .map(|merge| with_usage(&merge.memory, carried(&merge.sources)))
        .chain(kept.syntheses.iter().map(|synthesis| with_usage(&synthesis.memory, carried(&synthesis.supersedes))))
        .collect();
    let created_usage: HashMap<Uuid, i32> = new_rows.iter().map(|row| (row.id, row.reused_count)).collect();
    memories::insert_batch(&mut tx, job.project_id, &new_rows).await?;

    let (sources, targets): (Vec<Uuid>, Vec<Uuid>) =
        kept.merges.iter().flat_map(|merge| merge.sources.iter().map(|source| (source.id, merge.memory.id))).unzip();
    memories::mark_duplicates(&mut tx, &sources, &targets).await?;
    let (replaced, replacements): (Vec<Uuid>, Vec<Uuid>) = kept
        .syntheses
        .iter()
        .flat_map(|synthesis| synthesis.supersedes.iter().map(|old| (old.id, synthesis.memory.id)))
        .unzip();
    memories::mark_duplicates(&mut tx, &replaced, &replacements).await?;

    let mut archived = 0;
    for (reason, ids) in kept.archives_by_reason() {
        archived += memories::archive(&mut tx, &ids, reason).await?;
    }

    let entries: Vec<NewEntry> = kept
        .promotions
        .iter()
        .map(|promotion| NewEntry {
            id: promotion.entry_id,
            content: promotion.content.clone(),
            category: promotion.category.clone(),
            tags: promotion.tags.clone(),
            priority: promotion.priority,
            supporting_memory_ids: promotion.supporting_memory_ids.clone(),
            embedding: Some(promotion.embedding.clone()),
            source_memory_id: Some(promotion.memory_id),
        })
        .collect();
    let changed_by = format!("worker:{}", worker.worker_id);
    let reason = format!("promoted by consolidation job {}", job.id);
    playbook::insert_batch(
        &mut tx,
        job.project_id,
        &entries,
        PlaybookOperation::Promote,
        &reason,
        Some(job.id),
        &changed_by,
    )
    .await?;

    let moves: Vec<playbook::Move> = kept
        .follows
        .iter()
        .map(|f| playbook::Move { entry_id: f.entry_id, from: f.previous.clone(), to: f.next.clone() })
        .collect();
    let reason = format!("follows its cluster in consolidation job {}", job.id);
    playbook::move_entries(&mut tx, &moves, &reason, Some(job.id), &changed_by).await?;

    let audit: Vec<NewChange> = plan
        .changes
        .iter()
        .filter(|change| kept.touches(change.memory_id))
        .map(|change| NewChange {
            operation: change.operation,
            memory_id: change.memory_id,
            previous_state: Some(change.previous_state.clone()).filter(|state| !state.is_null()),
            new_state: Some(with_reused_count(&change.new_state, created_usage.get(&change.memory_id)))
                .filter(|state| !state.is_null()),
            reason: change.reason.clone(),
            confidence: change.confidence,
        })
        .collect();
    changes::insert_batch(&mut tx, Some(job.id), job.project_id, &changed_by, &audit).await?;

    // A review names memories as they are after this commit: unchanged ones, or what it created.
    let created: HashSet<Uuid> = new_rows.iter().map(|row| row.id).collect();
    let proposed = guards::new_reviews(job.id, plan, |id| {
        !changed.contains(&id) && (created.contains(&id) || !planned.contains(&id))
    });
    let stored = reviews::open_batch(&mut tx, job.project_id, job.id, &proposed).await?;
    let opened: HashSet<Uuid> = stored.opened.iter().copied().collect();

    let counters = JobCounters {
        memories_merged: sources.len() as i32,
        memories_archived: archived as i32,
        memories_promoted: entries.len() as i32,
        summaries_created: kept.syntheses.len() as i32,
    };
    let memories_before = i32::try_from(plan.memories_before).unwrap_or(i32::MAX);
    let memories_after = projects::active_memory_count(&mut *tx, job.project_id).await? as i32;
    let applied_plan = job.plan_of.map(|dry_run_id| reviewed_plan::account(dry_run_id, plan, &kept.ids(), &changed));
    let mut skipped_memories: Vec<Uuid> = changed.into_iter().collect();
    skipped_memories.sort();
    let applied = Applied {
        created_memory_ids: new_rows.iter().map(|row| row.id).collect(),
        merges: kept
            .merges
            .iter()
            .map(|merge| AppliedMerge {
                cluster_id: merge.cluster_id.clone(),
                memory_id: merge.memory.id,
                sources: merge.sources.iter().map(|source| source.id).collect(),
                source_type: merge.memory.source_type,
                coverage: merge.coverage,
                compression: merge.compression,
                length_vs_longest: merge.length_vs_longest,
                confidence: merge.confidence,
            })
            .collect(),
        syntheses: kept
            .syntheses
            .iter()
            .map(|synthesis| AppliedSynthesis {
                topic_id: synthesis.topic_id.clone(),
                memory_id: synthesis.memory.id,
                confidence: synthesis.confidence,
                needs_review: synthesis.needs_review,
                supersedes: synthesis.supersedes.iter().map(|old| old.id).collect(),
            })
            .collect(),
        playbook_entry_ids: entries.iter().map(|entry| entry.id).collect(),
        skipped_changed_memories: skipped_memories.clone(),
        reviews: proposed
            .iter()
            .filter(|review| opened.contains(&review.id))
            .map(|review| OpenedReview {
                review_id: review.id,
                kind: review.kind,
                older_memory_id: review.older.0,
                newer_memory_id: review.newer.0,
                similarity: review.similarity,
                difference: review.difference.clone(),
                suggestion: review.suggestion,
            })
            .collect(),
        superseded: plan.guard.superseded.iter().filter(|s| kept.touches(s.memory.id)).cloned().collect(),
        warnings: plan.warnings.clone(),
        timings_ms: plan.timings_ms,
        scope: plan.scope.clone(),
    };
    let written = new_rows.iter().map(cost::new_memory_bytes).sum::<u64>()
        + entries.iter().map(cost::entry_bytes).sum::<u64>()
        + audit.iter().map(NewChange::bytes).sum::<u64>();
    meter.applied(written);
    let result = JobResult {
        dry_run: false,
        blocked_by: None,
        plan: None,
        applied: Some(applied),
        guards: guards::summary(
            plan,
            &BlastRadius::of(plan, options.max_changed_share),
            Some((opened.len(), stored.refreshed.len())),
        ),
        // A cluster left out because a member changed is judged again only by a full run.
        clustering: options.incremental_base(complete && skipped_memories.is_empty()),
        cost: Some(meter.report(plan.memories_before)),
        applied_plan,
    };
    // The last phase boundary, with the job row locked: a cancel request either is here now or
    // waits for this commit and finds the job completed.
    if let Some(requested_by) = cancel::lock_requested_by(&mut tx, job.id).await? {
        tx.rollback().await?;
        return Ok(ApplyOutcome::Cancelled(requested_by));
    }
    let still_ours =
        jobs::complete(&mut *tx, job.id, &worker.worker_id, &counters, memories_before, memories_after, &result)
            .await?;
    if !still_ours {
        return Ok(ApplyOutcome::Lost);
    }
    tx.commit().await?;
    Ok(ApplyOutcome::Committed(Box::new(Committed {
        counters,
        memories_before,
        memories_after,
        skipped_memories,
        result,
    })))
}

/// A created memory's audit row records the usage it started with: a rollback carries back only
/// the reuses counted on it afterwards.
fn with_reused_count(state: &serde_json::Value, reused_count: Option<&i32>) -> serde_json::Value {
    let mut state = state.clone();
    if let (Some(count), Some(fields)) = (reused_count, state.as_object_mut()) {
        fields.insert("reused_count".to_owned(), serde_json::json!(count));
    }
    state
}

/// The version each memory the plan changes had in the snapshot.
fn expected_versions(plan: &Plan) -> HashMap<Uuid, i64> {
    let merge_sources = plan.merges.iter().flat_map(|merge| &merge.sources);
    let synthesis_sources =
        plan.syntheses.iter().flat_map(|synthesis| synthesis.sources.iter().chain(&synthesis.supersedes));
    merge_sources
        .chain(synthesis_sources)
        .map(|source| (source.id, source.version))
        .chain(plan.archives.iter().map(|archive| (archive.memory_id, archive.version)))
        .collect()
}

/// The part of a plan whose memories did not change since the snapshot.
struct Kept<'a> {
    merges: Vec<&'a Merge>,
    syntheses: Vec<&'a Synthesis>,
    archives: Vec<&'a Archive>,
    promotions: Vec<&'a Promotion>,
    follows: Vec<&'a PlaybookFollow>,
    memory_ids: HashSet<Uuid>,
}

impl<'a> Kept<'a> {
    /// `live_targets`: memories the plan does not create that are active under the apply's locks.
    fn select(plan: &'a Plan, changed: &HashSet<Uuid>, live_targets: &HashSet<Uuid>) -> Self {
        let clean = |sources: &[SourceRef]| sources.iter().all(|s| !changed.contains(&s.id));
        let merges: Vec<&Merge> = plan.merges.iter().filter(|m| clean(&m.sources)).collect();
        // A topic that names a merge left out is left out with it.
        let left_out: HashSet<Uuid> = plan.merges.iter().filter(|m| !clean(&m.sources)).map(|m| m.memory.id).collect();
        let syntheses: Vec<&Synthesis> = plan
            .syntheses
            .iter()
            .filter(|s| clean(&s.sources) && clean(&s.supersedes))
            .filter(|s| !s.memory.synthesized_from.iter().any(|id| left_out.contains(id)))
            .collect();
        let created: HashSet<Uuid> =
            merges.iter().map(|m| m.memory.id).chain(syntheses.iter().map(|s| s.memory.id)).collect();
        let archived: HashSet<Uuid> = plan.archives.iter().map(|a| a.memory_id).collect();
        let superseded_by: HashMap<Uuid, Uuid> =
            plan.guard.superseded.iter().map(|s| (s.memory.id, s.superseded_by)).collect();
        let stands = |archive: &Archive| match superseded_by.get(&archive.memory_id) {
            Some(by) if archive.reason == ArchiveReason::Superseded => {
                created.contains(by) || (live_targets.contains(by) && !archived.contains(by))
            }
            _ => true,
        };
        let archives: Vec<_> = plan.archives.iter().filter(|a| !changed.contains(&a.memory_id) && stands(a)).collect();
        let promotions: Vec<_> = plan.promotions.iter().filter(|p| created.contains(&p.memory_id)).collect();
        let follows: Vec<_> = plan.follows.iter().filter(|f| created.contains(&f.memory_id)).collect();
        let memory_ids = merges
            .iter()
            .flat_map(|m| m.sources.iter().map(|s| s.id))
            .chain(syntheses.iter().flat_map(|s| s.sources.iter().chain(&s.supersedes).map(|source| source.id)))
            .chain(created.iter().copied())
            .chain(archives.iter().map(|a| a.memory_id))
            .collect();
        Self { merges, syntheses, archives, promotions, follows, memory_ids }
    }

    fn ids(&self) -> KeptIds {
        KeptIds {
            merges: self.merges.iter().map(|m| m.memory.id).collect(),
            syntheses: self.syntheses.iter().map(|s| s.memory.id).collect(),
            archives: self.archives.iter().map(|a| a.memory_id).collect(),
            promotions: self.promotions.iter().map(|p| p.entry_id).collect(),
        }
    }

    fn touches(&self, memory_id: Uuid) -> bool {
        self.memory_ids.contains(&memory_id)
    }

    fn archives_by_reason(&self) -> Vec<(ArchiveReason, Vec<Uuid>)> {
        let mut groups: Vec<(ArchiveReason, Vec<Uuid>)> = Vec::new();
        for archive in &self.archives {
            let reason = archive.reason;
            match groups.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, ids)) => ids.push(archive.memory_id),
                None => groups.push((reason, vec![archive.memory_id])),
            }
        }
        groups
    }
}
