//! What the planner reads about one project: its active memories, the originals behind its
//! consolidated memories, its playbook, and which memories this job compares.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::embedding::Embedding;
use super::memory::Memory;

/// Which memories a job compares: all of them, or (incremental) only those new or changed since
/// the base job against everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    /// `None`: a full run. `Some(ids)`: the active memories new or changed since the base job.
    pub fresh: Option<std::collections::BTreeSet<Uuid>>,
    /// Why this scope was chosen, in words for the job result.
    pub reason: String,
}

/// One active playbook entry, used to avoid promoting a near-identical entry twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookEntrySnapshot {
    pub id: Uuid,
    pub content: String,
    pub category: String,
    pub embedding: Option<Embedding>,
    pub supporting_memory_ids: Vec<Uuid>,
    /// The created memory it was promoted from (or followed to since).
    #[serde(default)]
    pub source_memory_id: Option<Uuid>,
}

/// Everything the planner reads about one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectSnapshot {
    pub project_id: Uuid,
    pub embedding_dim: Option<usize>,
    pub memories: Vec<Memory>,
    /// The original sources of the active consolidated memories (duplicates themselves), with
    /// their embeddings: a newcomer must be similar to every one of them to fold in.
    pub originals: Vec<Memory>,
    pub playbook: Vec<PlaybookEntrySnapshot>,
    pub scope: Scope,
    /// Memory pairs (smaller id first) a person already judged in the review queue: the value
    /// guard still keeps them apart but does not propose them again.
    #[serde(default)]
    pub judged: std::collections::BTreeSet<(Uuid, Uuid)>,
    /// Memory pairs (smaller id first) a person took apart with an unmerge, texts unchanged since:
    /// never in one cluster.
    #[serde(default)]
    pub apart: std::collections::BTreeSet<(Uuid, Uuid)>,
    /// Active memories a person pinned: never merged, archived or superseded.
    #[serde(default)]
    pub pinned: std::collections::BTreeSet<Uuid>,
    /// Active syntheses with a member edited since they were written: rebuilt or archived.
    #[serde(default)]
    pub outdated_syntheses: std::collections::BTreeSet<Uuid>,
}

impl ProjectSnapshot {
    /// A full-run snapshot of these memories, with no consolidated history and no playbook.
    pub fn new(project_id: Uuid, embedding_dim: Option<usize>, memories: Vec<Memory>) -> Self {
        ProjectSnapshot {
            project_id,
            embedding_dim,
            memories,
            originals: Vec::new(),
            playbook: Vec::new(),
            scope: Scope::default(),
            judged: std::collections::BTreeSet::new(),
            apart: std::collections::BTreeSet::new(),
            pinned: std::collections::BTreeSet::new(),
            outdated_syntheses: std::collections::BTreeSet::new(),
        }
    }
}
