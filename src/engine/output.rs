//! The plan the worker applies (or, with `dry_run`, only reports).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use super::cluster::Cluster;
use super::guard::Difference;
use super::model::{ArchiveReason, ChangeOperation, MemoryType};
use super::options::ValueGuard;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Active memories before and after applying this plan.
    pub memories_before: i64,
    pub memories_after: i64,
    pub clusters: Vec<Cluster>,
    pub merges: Vec<Merge>,
    pub syntheses: Vec<Synthesis>,
    pub archives: Vec<Archive>,
    pub promotions: Vec<Promotion>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

impl GuardReport {
    pub fn new(value_guard: ValueGuard) -> Self {
        GuardReport { value_guard, held_pairs: 0, judged_pairs: 0, reviews: Vec::new(), superseded: Vec::new() }
    }

    pub fn absorb(&mut self, other: GuardReport) {
        self.held_pairs += other.held_pairs;
        self.judged_pairs += other.judged_pairs;
        self.reviews.extend(other.reviews);
        self.superseded.extend(other.superseded);
    }
}

/// Two near-identical memories that differ in a value: perhaps the newer updates the older.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    /// `possible_update`.
    pub kind: String,
    pub older: SourceRef,
    pub newer: SourceRef,
    pub similarity: f32,
    /// `left`: the older memory's values, `right`: the newer one's.
    pub difference: Difference,
    /// `supersede`: approving archives the older memory as superseded by the newer.
    pub suggestion: String,
}

/// An older memory hidden because a newer one states a different value of the same fact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Supersession {
    pub memory: SourceRef,
    pub superseded_by: Uuid,
    pub similarity: f32,
    pub difference: Difference,
}

/// Which memories this plan compared, and why (DESIGN.md §11).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeReport {
    /// `full` or `incremental`.
    pub mode: String,
    pub reason: String,
    /// Clustering nodes: plain memories plus the original sources of consolidated ones.
    pub candidates: usize,
    /// Nodes compared against all others (every node in a full run; the fresh ones otherwise).
    pub compared: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub id: Uuid,
    /// The version the plan was computed from: the apply skips a memory whose version moved.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewMemory {
    pub id: Uuid,
    pub memory_type: MemoryType,
    pub task_id: Option<String>,
    /// Every source's task id, the representative's first (merges); empty otherwise.
    pub task_ids: Vec<String>,
    pub execution_summary: String,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    pub tags: Vec<String>,
    pub files: Vec<String>,
    pub embedding: Vec<f32>,
    pub success: Option<bool>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
    /// For a consolidated memory: the type its sources share.
    pub source_type: Option<MemoryType>,
    /// The original memories (never other consolidated ones): the sources plus what folded in.
    pub consolidated_from: Vec<Uuid>,
    pub synthesized_from: Vec<Uuid>,
    pub synthesis_confidence: Option<f32>,
    pub needs_review: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Merge {
    pub cluster_id: String,
    /// memory_type `consolidated`.
    pub memory: NewMemory,
    pub sources: Vec<SourceRef>,
    pub coverage: f32,
    pub compression: f32,
    pub length_vs_longest: f32,
    /// The cluster's cohesion.
    pub confidence: f32,
    /// Name of the embedder that produced `memory.embedding`.
    pub embedder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Synthesis {
    pub cluster_id: String,
    /// memory_type `synthesis`.
    pub memory: NewMemory,
    pub sources: Vec<SourceRef>,
    /// Earlier syntheses of this cluster's memories, replaced by this one (marked duplicate of it).
    pub supersedes: Vec<SourceRef>,
    pub confidence: f32,
    pub needs_review: bool,
    pub patterns: Vec<String>,
    pub best_practices: Vec<String>,
    pub gotchas: Vec<String>,
    /// Name of the synthesizer whose draft was used (after any fallback).
    pub synthesizer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Archive {
    pub memory_id: Uuid,
    pub version: i64,
    pub reason: ArchiveReason,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub confidence: f32,
}

/// One audit row for `consolidation_changes`. Shapes by operation (rollback relies on them):
///
/// | operation   | memory_id          | previous_state | new_state |
/// |-------------|--------------------|----------------|-----------|
/// | `merge`     | each source        | `{"is_duplicate":false,"duplicate_of":null,"version":v}` | `{"is_duplicate":true,"duplicate_of":<new id>}` |
/// | `merge`     | created memory     | `null` | `{"created":true,"memory_type":"consolidated","cluster_id":..,"representative":..,"consolidated_from":[..],"coverage":c,"compression":r,"length_vs_longest":l}` |
/// | `summarize` | created memory     | `null` | `{"created":true,"memory_type":"synthesis","cluster_id":..,"synthesized_from":[..],"synthesis_confidence":c,"needs_review":b,"synthesizer":name}` |
/// | `archive`   | archived memory    | `{"is_archived":false,"archived_at":null,"archive_reason":null,"version":v}` | `{"is_archived":true,"archived_at":<now RFC 3339>,"archive_reason":"staleness"}` |
/// | `promote`   | promoted (created) memory | `null` | `{"entry_id":..,"category":..,"priority":..,"content":..,"supporting_memory_ids":[..]}` |
///
/// `confidence` is the cluster cohesion for merges, the synthesis confidence for summaries and
/// the promotion confidence for promotions; `None` for archives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedChange {
    pub operation: ChangeOperation,
    pub memory_id: Uuid,
    pub previous_state: serde_json::Value,
    pub new_state: serde_json::Value,
    pub reason: String,
    pub confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PhaseTimings {
    /// Filled by the worker: reading the snapshot, and the full rows of what merges.
    pub load_snapshot: f64,
    pub load_rows: f64,
    /// Building the partitions (nodes, unit vectors).
    pub partitions: f64,
    pub similarity: f64,
    pub clustering: f64,
    pub merge: f64,
    pub synthesis: f64,
    pub archive: f64,
    pub promote: f64,
    pub total: f64,
}
