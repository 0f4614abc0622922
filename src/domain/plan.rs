//! The plan a job applies (or, with `dry_run`, only reports): the records the planner produces
//! and the worker, the job result and the API read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::memory::NewMemory;
use super::options::ValueGuard;
use super::vocabulary::{
    ArchiveReason, ChangeOperation, FactKind, MemoryType, ReviewKind, ReviewSuggestion, ScopeMode,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Active memories before and after applying this plan.
    pub memories_before: i64,
    pub memories_after: i64,
    pub clusters: Vec<Cluster>,
    pub merges: Vec<Merge>,
    pub syntheses: Vec<Synthesis>,
    pub archives: Vec<Archive>,
    pub promotions: Vec<Promotion>,
    /// Active playbook entries moved to the memory that now stands for their cluster or topic.
    pub follows: Vec<PlaybookFollow>,
    /// Every audit row the apply must write, in a stable order: merges (sources then the
    /// created memory), syntheses, archives, promotions.
    pub changes: Vec<PlannedChange>,
    pub counters: Counters,
    pub warnings: Vec<String>,
    pub timings_ms: PhaseTimings,
    pub scope: ScopeReport,
    /// What the value guard held back (DESIGN.md §11).
    pub guard: GuardReport,
}

/// The value guard's work in one plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardReport {
    pub value_guard: ValueGuard,
    /// Above-threshold node pairs kept out of every cluster because their values differ.
    pub held_pairs: usize,
    /// Held pairs of memories a person already judged in the review queue: not proposed again.
    pub judged_pairs: usize,
    /// `value_guard=review`: possible updates for the review queue.
    pub reviews: Vec<ReviewItem>,
    /// `value_guard=auto`: older memories superseded by newer ones (they are in `archives` too).
    pub superseded: Vec<Supersession>,
    /// What the merge policy kept out of clusters.
    pub boundaries: MergeBoundaries,
}

/// What the merge policy kept out of clusters, by boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergeBoundaries {
    /// Pinned memories that had near-duplicates: never merged, archived or superseded.
    pub pinned: usize,
    /// Above-threshold pairs held apart because their texts are in different languages or scripts.
    pub language_pairs: usize,
}

impl GuardReport {
    pub fn new(value_guard: ValueGuard) -> Self {
        GuardReport {
            value_guard,
            held_pairs: 0,
            judged_pairs: 0,
            reviews: Vec::new(),
            superseded: Vec::new(),
            boundaries: MergeBoundaries::default(),
        }
    }

    pub fn absorb(&mut self, other: GuardReport) {
        self.held_pairs += other.held_pairs;
        self.judged_pairs += other.judged_pairs;
        self.reviews.extend(other.reviews);
        self.superseded.extend(other.superseded);
        self.boundaries.language_pairs += other.boundaries.language_pairs;
        self.boundaries.pinned += other.boundaries.pinned;
    }
}

/// Two near-identical memories that differ in a value: perhaps the newer updates the older.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub kind: ReviewKind,
    pub older: SourceRef,
    pub newer: SourceRef,
    #[serde(serialize_with = "super::figures::ratio")]
    pub similarity: f32,
    /// `left`: the older memory's values, `right`: the newer one's.
    pub difference: Difference,
    /// `supersede`: approving archives the older memory as superseded by the newer.
    pub suggestion: ReviewSuggestion,
}

/// An older memory hidden because a newer one states a different value of the same fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supersession {
    pub memory: SourceRef,
    pub superseded_by: Uuid,
    #[serde(serialize_with = "super::figures::ratio")]
    pub similarity: f32,
    pub difference: Difference,
}

/// Which memories this plan compared, and why (DESIGN.md §11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeReport {
    pub mode: ScopeMode,
    pub reason: String,
    /// Clustering nodes: plain memories plus the original sources of consolidated ones.
    pub candidates: usize,
    /// Nodes compared against all others (every node in a full run; the fresh ones otherwise).
    pub compared: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub id: Uuid,
    /// The version the plan was computed from: the apply skips a memory whose version moved.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merge {
    pub cluster_id: String,
    /// memory_type `consolidated`.
    pub memory: NewMemory,
    pub sources: Vec<SourceRef>,
    #[serde(serialize_with = "super::figures::ratio")]
    pub coverage: f32,
    #[serde(serialize_with = "super::figures::ratio")]
    pub compression: f32,
    #[serde(serialize_with = "super::figures::ratio")]
    pub length_vs_longest: f32,
    /// The cluster's cohesion.
    #[serde(serialize_with = "super::figures::ratio")]
    pub confidence: f32,
    /// Name of the embedder that produced `memory.embedding`.
    pub embedder: String,
    /// The merged text's units, in order, each with the sources that state it.
    pub units: Vec<MergedUnit>,
}

/// One unit (sentence, line, list item, title) of a merged text and the sources that state it:
/// the one it was taken from first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergedUnit {
    pub text: String,
    pub sources: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synthesis {
    /// Derived from the topic's member ids (`memory.synthesized_from`).
    pub topic_id: String,
    /// memory_type `synthesis`.
    pub memory: NewMemory,
    /// The active memories the topic reads, as snapshotted (a merged member's sources).
    pub sources: Vec<SourceRef>,
    /// Earlier syntheses of part of this topic, replaced by this one (marked duplicate of it).
    pub supersedes: Vec<SourceRef>,
    #[serde(serialize_with = "super::figures::ratio")]
    pub confidence: f32,
    pub needs_review: bool,
    /// The topic's distinct facts, each once, with the members that state it.
    pub facts: Vec<SynthesisFact>,
    /// Name of the synthesizer whose draft was used (after any fallback).
    pub synthesizer: String,
}

/// One line of a synthesis: what it states and which topic members (active memory ids) say it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SynthesisFact {
    pub kind: FactKind,
    pub text: String,
    pub members: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archive {
    pub memory_id: Uuid,
    pub version: i64,
    pub reason: ArchiveReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub entry_id: Uuid,
    /// The id of a memory created by this plan's merges or syntheses.
    pub memory_id: Uuid,
    pub content: String,
    pub category: String,
    pub priority: i32,
    pub tags: Vec<String>,
    pub supporting_memory_ids: Vec<Uuid>,
    pub embedding: Vec<f32>,
    #[serde(serialize_with = "super::figures::ratio")]
    pub confidence: f32,
}

/// What a playbook entry says and stands on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryState {
    pub source_memory_id: Option<Uuid>,
    pub supporting_memory_ids: Vec<Uuid>,
    pub content: String,
}

/// An active playbook entry whose source memory this plan replaces (its cluster grew, or its
/// topic's synthesis was rebuilt): it moves to the created memory, one entry per cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookFollow {
    pub entry_id: Uuid,
    /// The created memory the entry comes from after this plan.
    pub memory_id: Uuid,
    pub previous: EntryState,
    pub next: EntryState,
}

/// One audit row for `consolidation_changes`. Shapes by operation (rollback relies on them):
///
/// | operation   | memory_id          | previous_state | new_state |
/// |-------------|--------------------|----------------|-----------|
/// | `merge`     | each source        | `{"is_duplicate":false,"duplicate_of":null,"version":v}` | `{"is_duplicate":true,"duplicate_of":<new id>}` |
/// | `merge`     | created memory     | `null` | `{"created":true,"memory_type":"consolidated","cluster_id":..,"representative":..,"consolidated_from":[..],"coverage":c,"compression":r,"length_vs_longest":l}` |
/// | `summarize` | created memory     | `null` | `{"created":true,"memory_type":"synthesis","topic_id":..,"synthesized_from":[..],"facts":n,"synthesis_confidence":c,"needs_review":b,"synthesizer":name}` |
/// | `summarize` | replaced synthesis | as for a merged source | `{"is_duplicate":true,"duplicate_of":<new id>}` |
/// | `archive`   | archived memory    | `{"is_archived":false,"archived_at":null,"archive_reason":null,"version":v}` | `{"is_archived":true,"archived_at":<now RFC 3339>,"archive_reason":"staleness"}` (or `outdated`, `superseded`) |
/// | `promote`   | promoted (created) memory | `null` | `{"entry_id":..,"category":..,"priority":..,"content":..,"supporting_memory_ids":[..]}` |
/// | `promote`   | created memory an entry follows | `{"entry_id":..,"source_memory_id":..,"supporting_memory_ids":[..],"content":..}` | `{"entry_id":..,"followed":true,"source_memory_id":..,"supporting_memory_ids":[..],"content":..}` |
///
/// `confidence` is the cluster cohesion for merges, the synthesis confidence for summaries and
/// the promotion confidence for promotions; `None` for archives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub operation: ChangeOperation,
    pub memory_id: Uuid,
    pub previous_state: serde_json::Value,
    pub new_state: serde_json::Value,
    pub reason: String,
    #[serde(serialize_with = "super::figures::ratio_opt")]
    pub confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub clusters_found: i32,
    /// Sources marked duplicate.
    pub memories_merged: i32,
    pub memories_archived: i32,
    pub memories_promoted: i32,
    pub summaries_created: i32,
    pub needs_review: i32,
}

/// Milliseconds per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimings {
    /// Filled by the worker: reading the snapshot, and the full rows of what merges.
    #[serde(serialize_with = "super::figures::millis")]
    pub load_snapshot: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub load_rows: f64,
    /// Building the partitions (nodes, unit vectors).
    #[serde(serialize_with = "super::figures::millis")]
    pub partitions: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub similarity: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub clustering: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub merge: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub synthesis: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub archive: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub promote: f64,
    #[serde(serialize_with = "super::figures::millis")]
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Hex of a uuid v5 over the sorted member ids: the same members always give the same id.
    pub id: String,
    /// Sorted.
    pub members: Vec<Uuid>,
    pub representative: Uuid,
    /// Average pairwise cosine similarity.
    #[serde(serialize_with = "super::figures::ratio")]
    pub cohesion: f32,
    /// The members' type, or `None` for a cross-type cluster that mixes types.
    pub memory_type: Option<MemoryType>,
}

/// How two texts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// Each states a value the other does not (versions, numbers, ids, addresses, hashes).
    Value,
    /// One negates what the other states.
    Polarity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    /// The first text's values the second lacks (for polarity: `negated` or `affirmed`).
    pub left: Vec<String>,
    pub right: Vec<String>,
}

impl Difference {
    /// The two sides swapped: the difference seen from the second text.
    pub fn swapped(self) -> Difference {
        Difference { kind: self.kind, left: self.right, right: self.left }
    }

    /// `1.26 -> 2.0`, for review items and audit reasons.
    pub fn describe(&self) -> String {
        format!("{} vs {}", self.left.join(", "), self.right.join(", "))
    }
}

/// The blast-radius limit (DESIGN.md §11): a plan that would hide more than `max_changed_share`
/// of the active memories (marked duplicate or archived) is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// Active memories before the plan.
    pub active: i64,
    /// Active memories the plan marks duplicate (merge sources, replaced syntheses) or archives.
    pub changed: i64,
    #[serde(serialize_with = "super::figures::ratio")]
    pub share: f64,
    #[serde(serialize_with = "super::figures::shortest_f32")]
    pub limit: f32,
    pub exceeded: bool,
}

impl BlastRadius {
    pub fn of(plan: &Plan, max_changed_share: f32) -> BlastRadius {
        let duplicates: usize = plan.merges.iter().map(|m| m.sources.len()).sum::<usize>()
            + plan.syntheses.iter().map(|s| s.supersedes.len()).sum::<usize>();
        let changed = (duplicates + plan.archives.len()) as i64;
        let active = plan.memories_before;
        let share = if active > 0 { changed as f64 / active as f64 } else { 0.0 };
        // Compared at the option's own precision, so a share equal to the limit passes.
        BlastRadius { active, changed, share, limit: max_changed_share, exceeded: (share as f32) > max_changed_share }
    }

    /// The job's error when the limit stops it.
    pub fn describe(&self) -> String {
        format!(
            "blast radius: the plan would mark {} of {} active memories duplicate or archived (share {:.3}), \
             above max_changed_share {}; nothing was applied, the plan is in the job result",
            self.changed, self.active, self.share, self.limit
        )
    }
}
