//! A job's result, as the worker stores it in `consolidation_jobs.result` and the completed event
//! carries it: what a real run changed, or (a dry run, or a plan the blast radius stopped) the
//! plan, bounded. The gateway, the demo, the benchmarks and the console read this shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::options::{ClusteringOptions, ValueGuard};
use super::plan::{BlastRadius, Counters, Difference, MergeBoundaries, PhaseTimings, ScopeReport, Supersession};
use super::vocabulary::{MemoryType, ReviewKind, ReviewSuggestion};

/// A job's four counters: what it merged, archived, promoted and summarized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobCounters {
    pub memories_merged: i32,
    pub memories_archived: i32,
    pub memories_promoted: i32,
    pub summaries_created: i32,
}

impl From<&super::plan::Counters> for JobCounters {
    fn from(counters: &super::plan::Counters) -> Self {
        JobCounters {
            memories_merged: counters.memories_merged,
            memories_archived: counters.memories_archived,
            memories_promoted: counters.memories_promoted,
            summaries_created: counters.summaries_created,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    pub dry_run: bool,
    /// Set when a limit stopped the plan (`max_changed_share`); the plan is then in `plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// The plan of a dry run or of a blocked job, bounded (`PlanReport`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<PlanReport>,
    /// What a real run changed.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub applied: Option<Applied>,
    #[schema(value_type = Object)]
    pub guards: GuardsSummary,
    /// The clustering options the next job compares with to run incrementally; null when this
    /// job cannot serve as its base.
    #[schema(value_type = Option<Object>)]
    pub clustering: Option<ClusteringOptions>,
    /// What the job cost; absent from results stored before cost reports existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub cost: Option<JobCost>,
    /// A job that applied a dry run's stored plan: what it took from that plan and what it left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub applied_plan: Option<AppliedPlan>,
}

/// What a job applying a dry run's plan (`POST /consolidation/jobs/{dry_run_id}/apply`) took from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPlan {
    pub dry_run_id: Uuid,
    /// Changes (merges, syntheses, archives, promotions) applied as the dry run planned them.
    pub applied: usize,
    /// Changes left out because something they touch changed since the dry run.
    pub left_out: Vec<LeftOut>,
}

/// One planned change a job left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub kind: PlannedKind,
    /// The memories the change reads (a merge's or synthesis's sources, the archived memory).
    pub memory_ids: Vec<Uuid>,
    pub reason: String,
}

/// The kinds of change a plan holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedKind {
    Merge,
    Synthesis,
    Archive,
    Promotion,
}

/// Calls to the model endpoints (synthesis and embeddings) and the tokens they reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// HTTP requests sent, retries included.
    pub calls: u64,
    /// `usage.total_tokens` summed over the answers that reported it.
    pub tokens: u64,
    /// Texts (a synthesis's prose, a new memory's embedding) that used the extractive text or the
    /// centroid because their model call failed, timed out or was not made; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fallbacks: u64,
    /// The job's model budget (MODEL_JOB_BUDGET_SECS) ran out: the calls it still needed were
    /// not made; absent when it did not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budget_spent: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::ops::Add for ModelUsage {
    type Output = ModelUsage;
    fn add(self, other: ModelUsage) -> ModelUsage {
        ModelUsage {
            calls: self.calls + other.calls,
            tokens: self.tokens + other.tokens,
            fallbacks: self.fallbacks + other.fallbacks,
            budget_spent: self.budget_spent || other.budget_spent,
        }
    }
}

/// A job's cost report: wall-clock time per phase (from the start of loading), throughput, memory
/// and the bytes and model calls it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCost {
    /// Reading the snapshot (ids, versions, embeddings not in the worker's cache).
    pub loading_ms: f64,
    /// The plan, texts of what merges included.
    pub planning_ms: f64,
    /// The transaction that writes the plan; 0 for a dry run.
    pub applying_ms: f64,
    pub total_ms: f64,
    /// Active memories the job considered, per second of `total_ms`.
    pub memories_per_second: f64,
    /// The worker process's peak resident memory when the job ended (every job it ran counts);
    /// absent where the operating system does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// The embeddings the plan held (snapshot and originals).
    pub vectors_mib: f64,
    /// Embedding and text bytes read from PostgreSQL (embeddings served by the cache excluded).
    pub bytes_read: u64,
    /// Embedding, text and audit bytes written.
    pub bytes_written: u64,
    /// Memories stored without an embedding that the job embedded before planning
    /// (EMBEDDING_BASE_URL); their calls are counted in `model`. Absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub memories_embedded: u64,
    pub model: ModelUsage,
}

impl JobCost {
    /// Figures rounded to what they mean: milliseconds to a tenth, rates and sizes to a unit or a tenth.
    pub fn rounded(self) -> JobCost {
        let tenth = |x: f64| (x * 10.0).round() / 10.0;
        JobCost {
            loading_ms: tenth(self.loading_ms),
            planning_ms: tenth(self.planning_ms),
            applying_ms: tenth(self.applying_ms),
            total_ms: tenth(self.total_ms),
            memories_per_second: self.memories_per_second.round(),
            peak_rss_mib: self.peak_rss_mib.map(tenth),
            vectors_mib: tenth(self.vectors_mib),
            ..self
        }
    }
}

impl JobResult {
    /// Timings and scope, wherever this kind of result keeps them.
    pub fn timings_and_scope(&self) -> (Option<&PhaseTimings>, Option<&ScopeReport>) {
        match (&self.applied, &self.plan) {
            (Some(applied), _) => (Some(&applied.timings_ms), Some(&applied.scope)),
            (None, Some(plan)) => (Some(&plan.timings_ms), Some(&plan.scope)),
            (None, None) => (None, None),
        }
    }
}

/// What a real run changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub created_memory_ids: Vec<Uuid>,
    pub merges: Vec<AppliedMerge>,
    pub syntheses: Vec<AppliedSynthesis>,
    pub playbook_entry_ids: Vec<Uuid>,
    /// Memories the plan wanted to change that changed since its snapshot (their clusters were
    /// left out).
    pub skipped_changed_memories: Vec<Uuid>,
    /// Review rows this job opened.
    pub reviews: Vec<OpenedReview>,
    pub superseded: Vec<Supersession>,
    pub warnings: Vec<String>,
    pub timings_ms: PhaseTimings,
    pub scope: ScopeReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedMerge {
    pub cluster_id: String,
    pub memory_id: Uuid,
    pub sources: Vec<Uuid>,
    pub source_type: Option<MemoryType>,
    #[serde(serialize_with = "super::figures::ratio")]
    pub coverage: f32,
    #[serde(serialize_with = "super::figures::ratio")]
    pub compression: f32,
    #[serde(serialize_with = "super::figures::ratio")]
    pub length_vs_longest: f32,
    #[serde(serialize_with = "super::figures::ratio")]
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedSynthesis {
    /// Results stored before topics named it `cluster_id`.
    #[serde(alias = "cluster_id")]
    pub topic_id: String,
    pub memory_id: Uuid,
    #[serde(serialize_with = "super::figures::ratio")]
    pub confidence: f32,
    pub needs_review: bool,
    pub supersedes: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenedReview {
    pub review_id: Uuid,
    pub kind: ReviewKind,
    pub older_memory_id: Uuid,
    pub newer_memory_id: Uuid,
    #[serde(serialize_with = "super::figures::ratio")]
    pub similarity: f32,
    pub difference: Difference,
    pub suggestion: ReviewSuggestion,
}

/// `result.guards`: what each guard held back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardsSummary {
    pub value_guard: ValueGuardSummary,
    pub blast_radius: BlastRadius,
    /// Absent from results written before the merge policy's boundaries were counted.
    #[serde(default)]
    pub merge_policy: MergeBoundaries,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueGuardSummary {
    pub mode: ValueGuard,
    pub held_pairs: usize,
    pub judged_pairs: usize,
    pub reviews_proposed: usize,
    /// Review rows this job opened and open ones it brought up to date (null for a plan that
    /// was not applied).
    pub reviews_opened: Option<usize>,
    pub reviews_refreshed: Option<usize>,
    pub superseded: usize,
}

/// A plan as a dry run stores it: bounded whatever the project's size. Each list keeps its first
/// `limit` entries (without embeddings, their own lists cut with a `<name>_total` beside them),
/// and `totals` says how many there were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    pub memories_before: i64,
    pub memories_after: i64,
    pub clusters: Vec<Value>,
    pub merges: Vec<Value>,
    pub syntheses: Vec<Value>,
    pub archives: Vec<Value>,
    pub promotions: Vec<Value>,
    pub changes: Vec<Value>,
    pub warnings: Vec<Value>,
    pub counters: Counters,
    pub timings_ms: PhaseTimings,
    pub scope: ScopeReport,
    pub guard: GuardReportView,
    pub totals: BTreeMap<String, usize>,
    pub limit: usize,
    pub truncated: bool,
}

/// The value guard's part of a bounded plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardReportView {
    pub value_guard: ValueGuard,
    pub held_pairs: usize,
    pub judged_pairs: usize,
    #[serde(default)]
    pub boundaries: MergeBoundaries,
    pub reviews: Vec<Value>,
    pub superseded: Vec<Value>,
}

/// A job's result as its completed event carries it: whole while small, else a summary that
/// points at the job. Read in this order (untagged): a summary has `truncated`, which a whole
/// result lacks; anything else is a result written by an earlier version, passed on as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventResult {
    Summary(Box<ResultSummary>),
    Whole(Box<JobResult>),
    Stored(Value),
}

/// The counts of a result too large for an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultSummary {
    pub dry_run: bool,
    /// Why this is a summary, and where the whole result is.
    pub truncated: String,
    pub created_memories: usize,
    pub merges: usize,
    pub syntheses: usize,
    pub archives: usize,
    pub promotions: usize,
    pub skipped_changed_memories: usize,
    pub reviews: usize,
    pub guards: GuardsSummary,
    pub timings_ms: Option<PhaseTimings>,
    pub scope: Option<ScopeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<JobCost>,
}

impl ResultSummary {
    pub fn of(result: &JobResult, truncated: String) -> Self {
        let applied = result.applied.as_ref();
        let plan = result.plan.as_ref();
        let planned = |count: fn(&PlanReport) -> usize| plan.map_or(0, count);
        let (timings, scope) = result.timings_and_scope();
        ResultSummary {
            dry_run: result.dry_run,
            truncated,
            created_memories: applied.map_or(0, |a| a.created_memory_ids.len()),
            merges: applied.map_or(0, |a| a.merges.len()).max(planned(|p| p.merges.len())),
            syntheses: applied.map_or(0, |a| a.syntheses.len()).max(planned(|p| p.syntheses.len())),
            archives: planned(|p| p.archives.len()),
            promotions: applied.map_or(0, |a| a.playbook_entry_ids.len()).max(planned(|p| p.promotions.len())),
            skipped_changed_memories: applied.map_or(0, |a| a.skipped_changed_memories.len()),
            reviews: applied.map_or(0, |a| a.reviews.len()),
            guards: result.guards.clone(),
            timings_ms: timings.copied(),
            scope: scope.cloned(),
            cost: result.cost,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_result_is_read_back_as_the_kind_it_was_written() {
        let guards = json!({
            "value_guard": {"mode": "review", "held_pairs": 0, "judged_pairs": 0, "reviews_proposed": 0,
                            "reviews_opened": null, "reviews_refreshed": null, "superseded": 0},
            "blast_radius": {"active": 0, "changed": 0, "share": 0.0, "limit": 0.6, "exceeded": false},
        });
        let whole = json!({"dry_run": false, "guards": guards, "clustering": null});
        assert!(matches!(serde_json::from_value(whole).unwrap(), EventResult::Whole(_)));
        let summary = json!({"dry_run": false, "truncated": "too large", "created_memories": 1, "merges": 1,
            "syntheses": 0, "archives": 0, "promotions": 0, "skipped_changed_memories": 0, "reviews": 0,
            "guards": guards, "timings_ms": null, "scope": null});
        assert!(matches!(serde_json::from_value(summary).unwrap(), EventResult::Summary(_)));
        let earlier = json!({"dry_run": false, "merges": [1]});
        assert_eq!(serde_json::from_value::<EventResult>(earlier.clone()).unwrap(), EventResult::Stored(earlier));
    }
}
