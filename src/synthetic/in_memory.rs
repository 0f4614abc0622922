//! A plan applied to a snapshot in memory, as the worker applies it to the database: what the
//! engine's lifecycle properties and the in-memory part of `bench lifecycle` run day after day.

use std::collections::{BTreeSet, HashSet};

use uuid::Uuid;

use crate::domain::{Memory, MemoryType, NewMemory, Plan, PlaybookEntrySnapshot, ProjectSnapshot, Scope};

fn created(memory: &NewMemory) -> Memory {
    Memory::from(memory.clone())
}

/// Applies `plan` to `snapshot`: merged units and replaced syntheses leave the active memories
/// (a plain one becomes an original of its consolidated memory), archived ones leave, created
/// memories join, promotions join the playbook and followed entries move. Returns the ids of the
/// created memories. The scope is reset to a full run.
pub fn apply(snapshot: &mut ProjectSnapshot, plan: &Plan) -> Vec<Uuid> {
    let merged: HashSet<Uuid> = plan.merges.iter().flat_map(|m| m.sources.iter().map(|s| s.id)).collect();
    let replaced: HashSet<Uuid> = plan.syntheses.iter().flat_map(|s| s.supersedes.iter().map(|r| r.id)).collect();
    let archived: HashSet<Uuid> = plan.archives.iter().map(|a| a.memory_id).collect();
    let mut kept = Vec::with_capacity(snapshot.memories.len());
    for memory in std::mem::take(&mut snapshot.memories) {
        if merged.contains(&memory.id) {
            if memory.memory_type != MemoryType::Consolidated {
                snapshot.originals.push(memory);
            }
        } else if !replaced.contains(&memory.id) && !archived.contains(&memory.id) {
            kept.push(memory);
        }
    }
    let new: Vec<Memory> = plan
        .merges
        .iter()
        .map(|m| created(&m.memory))
        .chain(plan.syntheses.iter().map(|s| created(&s.memory)))
        .collect();
    let ids = new.iter().map(|m| m.id).collect();
    kept.extend(new);
    snapshot.memories = kept;
    snapshot.scope = Scope::default();
    for follow in &plan.follows {
        if let Some(entry) = snapshot.playbook.iter_mut().find(|e| e.id == follow.entry_id) {
            entry.source_memory_id = follow.next.source_memory_id;
            entry.supporting_memory_ids = follow.next.supporting_memory_ids.clone();
            entry.content = follow.next.content.clone();
        }
    }
    snapshot.playbook.extend(plan.promotions.iter().map(|p| PlaybookEntrySnapshot {
        id: p.entry_id,
        content: p.content.clone(),
        category: p.category.clone(),
        embedding: Some(p.embedding.clone().into()),
        supporting_memory_ids: p.supporting_memory_ids.clone(),
        source_memory_id: Some(p.memory_id),
    }));
    ids
}

/// The scope of an incremental run that compares `fresh` against everything.
pub fn incremental(fresh: impl IntoIterator<Item = Uuid>) -> Scope {
    Scope { fresh: Some(fresh.into_iter().collect::<BTreeSet<Uuid>>()), reason: "incremental".to_owned() }
}
