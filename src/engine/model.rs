//! Input snapshot types and the closed vocabularies (memory types, archive reasons, change
//! operations) shared with the store and the audit log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not one of a closed vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! closed_vocabulary {
    ($name:ident, $kind:literal, [$($variant:ident => $text:literal),+ $(,)?]) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: $kind, value: s.to_owned() }),
                }
            }
        }
    };
}

closed_vocabulary!(MemoryType, "memory type", [
    ErrorFix => "error_fix",
    Discovery => "discovery",
    Decision => "decision",
    Learning => "learning",
    Warning => "warning",
    CodebaseKnowledge => "codebase_knowledge",
    Consolidated => "consolidated",
    Synthesis => "synthesis",
]);

closed_vocabulary!(ArchiveReason, "archive reason", [
    Staleness => "staleness",
    LowValue => "low_value",
    Manual => "manual",
    Superseded => "superseded",
]);

closed_vocabulary!(ChangeOperation, "change operation", [
    Merge => "merge",
    Archive => "archive",
    Promote => "promote",
    Summarize => "summarize",
    Rollback => "rollback",
]);

/// One active memory (not archived, not a duplicate) as read from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySnapshot {
    pub id: Uuid,
    pub version: i64,
    pub memory_type: MemoryType,
    pub task_id: Option<String>,
    pub execution_summary: String,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    pub tags: Vec<String>,
    pub files: Vec<String>,
    pub embedding: Option<Vec<f32>>,
    pub success: Option<bool>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
    /// For a consolidated memory: the memory_type its sources share (`None` when they differ).
    pub source_type: Option<MemoryType>,
    /// For a consolidated memory: its original sources (never other consolidated memories).
    pub consolidated_from: Vec<Uuid>,
    /// For a synthesis memory: the original memories it summarizes.
    pub synthesized_from: Vec<Uuid>,
    /// Task ids a consolidated memory already carries; empty for plain memories.
    pub task_ids: Vec<String>,
}

impl MemorySnapshot {
    /// The type this memory clusters under when `cross_type` is off: its own, or for a
    /// consolidated memory the type its sources share.
    pub fn clustering_type(&self) -> Option<MemoryType> {
        match self.memory_type {
            MemoryType::Consolidated => self.source_type,
            own => Some(own),
        }
    }
}

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
    pub embedding: Option<Vec<f32>>,
    pub supporting_memory_ids: Vec<Uuid>,
}

/// Everything the planner reads about one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectSnapshot {
    pub project_id: Uuid,
    pub embedding_dim: Option<usize>,
    pub memories: Vec<MemorySnapshot>,
    /// The original sources of the active consolidated memories (duplicates themselves), with
    /// their embeddings: a newcomer must be similar to every one of them to fold in.
    pub originals: Vec<MemorySnapshot>,
    pub playbook: Vec<PlaybookEntrySnapshot>,
    pub scope: Scope,
    /// Memory pairs (smaller id first) a person already judged in the review queue: the value
    /// guard still keeps them apart but does not propose them again.
    #[serde(default)]
    pub judged: std::collections::BTreeSet<(Uuid, Uuid)>,
}

impl ProjectSnapshot {
    /// A full-run snapshot of these memories, with no consolidated history and no playbook.
    pub fn new(project_id: Uuid, embedding_dim: Option<usize>, memories: Vec<MemorySnapshot>) -> Self {
        ProjectSnapshot {
            project_id,
            embedding_dim,
            memories,
            originals: Vec::new(),
            playbook: Vec::new(),
            scope: Scope::default(),
            judged: std::collections::BTreeSet::new(),
        }
    }
}

#[cfg(test)]
impl MemorySnapshot {
    /// A plain memory for tests; set what a test is about with struct update syntax.
    pub(crate) fn for_test(id: u128, summary: &str) -> Self {
        MemorySnapshot {
            id: Uuid::from_u128(id),
            version: 1,
            memory_type: MemoryType::ErrorFix,
            task_id: None,
            execution_summary: summary.to_owned(),
            goal: None,
            result: None,
            feedback: None,
            tags: vec![],
            files: vec![],
            embedding: None,
            success: None,
            reused_count: 0,
            last_reused_at: None,
            learned_at: DateTime::<Utc>::UNIX_EPOCH,
            source_type: None,
            consolidated_from: vec![],
            synthesized_from: vec![],
            task_ids: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_value_round_trips_through_text_and_serde() {
        for t in MemoryType::ALL {
            assert_eq!(t.as_str().parse::<MemoryType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(t.as_str()));
        }
        for r in ArchiveReason::ALL {
            assert_eq!(r.as_str().parse::<ArchiveReason>(), Ok(r));
        }
        for op in ChangeOperation::ALL {
            assert_eq!(op.as_str().parse::<ChangeOperation>(), Ok(op));
        }
        assert_eq!(MemoryType::ALL.len(), 8);
        assert_eq!(ArchiveReason::LowValue.as_str(), "low_value");
    }

    #[test]
    fn parsing_an_unknown_value_names_the_value() {
        let err = "bugfix".parse::<MemoryType>().unwrap_err();
        assert_eq!(err.to_string(), "unknown memory type \"bugfix\"");
    }
}
