//! The memory records: a memory as the planner and the interchange format read it, a memory
//! about to be stored, and a stored memory with its state as the API shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::embedding::Embedding;
use super::vocabulary::{ArchiveReason, MemoryType};

/// One memory's content and provenance, as read from the store (one active memory in a
/// planning snapshot, or any memory in an export).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
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
    pub embedding: Option<Embedding>,
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

impl Memory {
    /// Bytes of its texts (summary, goal, result, feedback), as stored.
    pub fn text_bytes(&self) -> usize {
        text_bytes(&self.execution_summary, [&self.goal, &self.result, &self.feedback])
    }

    /// The type this memory clusters under when `cross_type` is off: its own, or for a
    /// consolidated memory the type its sources share.
    pub fn clustering_type(&self) -> Option<MemoryType> {
        match self.memory_type {
            MemoryType::Consolidated => self.source_type,
            own => Some(own),
        }
    }

    /// A plain memory for tests; set what a test is about with struct update syntax.
    #[cfg(test)]
    pub(crate) fn for_test(id: u128, summary: &str) -> Self {
        Memory {
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

/// A memory to insert: ingested, imported, or created by a plan (with its provenance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Validated against the project's dimension before it gets here.
    pub embedding: Option<Vec<f32>>,
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

/// The version a memory has when it is inserted.
pub const NEW_MEMORY_VERSION: i64 = 1;

fn text_bytes(summary: &str, fields: [&Option<String>; 3]) -> usize {
    summary.len() + fields.iter().map(|t| t.as_deref().map_or(0, str::len)).sum::<usize>()
}

impl NewMemory {
    /// Bytes of its texts (summary, goal, result, feedback), as stored.
    pub fn text_bytes(&self) -> usize {
        text_bytes(&self.execution_summary, [&self.goal, &self.result, &self.feedback])
    }
}

impl From<NewMemory> for Memory {
    fn from(m: NewMemory) -> Self {
        Memory {
            id: m.id,
            version: NEW_MEMORY_VERSION,
            memory_type: m.memory_type,
            task_id: m.task_id,
            execution_summary: m.execution_summary,
            goal: m.goal,
            result: m.result,
            feedback: m.feedback,
            tags: m.tags,
            files: m.files,
            embedding: m.embedding.map(Embedding::from),
            success: m.success,
            reused_count: m.reused_count,
            last_reused_at: m.last_reused_at,
            learned_at: m.learned_at,
            source_type: m.source_type,
            consolidated_from: m.consolidated_from,
            synthesized_from: m.synthesized_from,
            task_ids: m.task_ids,
        }
    }
}

impl From<Memory> for NewMemory {
    fn from(m: Memory) -> Self {
        NewMemory {
            id: m.id,
            memory_type: m.memory_type,
            task_id: m.task_id,
            task_ids: m.task_ids,
            execution_summary: m.execution_summary,
            goal: m.goal,
            result: m.result,
            feedback: m.feedback,
            tags: m.tags,
            files: m.files,
            embedding: m.embedding.map(|e| e.to_vec()),
            success: m.success,
            reused_count: m.reused_count,
            last_reused_at: m.last_reused_at,
            learned_at: m.learned_at,
            source_type: m.source_type,
            consolidated_from: m.consolidated_from,
            synthesized_from: m.synthesized_from,
            synthesis_confidence: None,
            needs_review: false,
        }
    }
}

/// A stored memory with its state, as the API shows it (the embedding only when asked).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredMemory {
    pub id: Uuid,
    pub project_id: Uuid,
    pub task_id: Option<String>,
    pub execution_summary: String,
    pub memory_type: MemoryType,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    pub tags: Vec<String>,
    pub files: Vec<String>,
    /// Decoded from storage; the API shows it only when asked.
    #[serde(skip)]
    pub embedding: Option<Vec<f32>>,
    pub success: Option<bool>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
    pub is_duplicate: bool,
    pub duplicate_of: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub consolidated_from: Option<Vec<Uuid>>,
    pub consolidated_at: Option<DateTime<Utc>>,
    pub synthesized_from: Option<Vec<Uuid>>,
    pub synthesized_at: Option<DateTime<Utc>>,
    pub synthesis_confidence: Option<f32>,
    pub needs_review: bool,
    pub is_archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub archive_reason: Option<ArchiveReason>,
    /// For a consolidated memory: the memory_type its sources share (null when they differ).
    pub source_type: Option<MemoryType>,
    /// For a consolidated memory: the task ids of all its sources.
    pub task_ids: Vec<String>,
    /// Never merged, archived or superseded by a job (`POST /memories/{id}/pin`).
    pub pinned: bool,
}

impl StoredMemory {
    /// The record the planner and the interchange format read.
    pub fn into_memory(self) -> Memory {
        Memory {
            id: self.id,
            version: self.version,
            memory_type: self.memory_type,
            task_id: self.task_id,
            execution_summary: self.execution_summary,
            goal: self.goal,
            result: self.result,
            feedback: self.feedback,
            tags: self.tags,
            files: self.files,
            embedding: self.embedding.map(Embedding::from),
            success: self.success,
            reused_count: self.reused_count,
            last_reused_at: self.last_reused_at,
            learned_at: self.learned_at,
            source_type: self.source_type,
            consolidated_from: self.consolidated_from.unwrap_or_default(),
            synthesized_from: self.synthesized_from.unwrap_or_default(),
            task_ids: self.task_ids,
        }
    }
}

/// A project's memories by state: active, merged into another (duplicate), archived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryCounts {
    pub active: i64,
    pub duplicate: i64,
    pub archived: i64,
}
