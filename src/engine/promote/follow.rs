//! Playbook entries follow their cluster: an entry whose source memory this plan replaces (a
//! consolidated memory that a re-learned memory folds into, or a synthesis rebuilt for its
//! topic) moves to the created memory, with its members as supporters and its text as content.
//! One entry per cluster: the created memory is then not promoted again.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::{EntryState, Merge, PlaybookFollow, ProjectSnapshot, Synthesis};

pub fn follows(snapshot: &ProjectSnapshot, merges: &[Merge], syntheses: &[Synthesis]) -> Vec<PlaybookFollow> {
    // Replaced memory -> (created memory, its members, its text).
    let mut replaced_by: HashMap<Uuid, (Uuid, &[Uuid], &str)> = HashMap::new();
    for m in merges {
        for source in &m.sources {
            replaced_by.insert(source.id, (m.memory.id, &m.memory.consolidated_from, &m.memory.execution_summary));
        }
    }
    for s in syntheses {
        for old in &s.supersedes {
            replaced_by.insert(old.id, (s.memory.id, &s.memory.synthesized_from, &s.memory.execution_summary));
        }
    }
    let mut out: Vec<PlaybookFollow> = snapshot
        .playbook
        .iter()
        .filter_map(|entry| {
            let (memory_id, members, text) = replaced_by.get(&entry.source_memory_id?)?;
            Some(PlaybookFollow {
                entry_id: entry.id,
                memory_id: *memory_id,
                previous: EntryState {
                    source_memory_id: entry.source_memory_id,
                    supporting_memory_ids: entry.supporting_memory_ids.clone(),
                    content: entry.content.clone(),
                },
                next: EntryState {
                    source_memory_id: Some(*memory_id),
                    supporting_memory_ids: members.to_vec(),
                    content: (*text).to_owned(),
                },
            })
        })
        .collect();
    out.sort_by_key(|f| f.entry_id);
    // One entry per cluster: when two entries' sources end in one memory, the first follows.
    let mut taken = std::collections::HashSet::new();
    out.retain(|f| taken.insert(f.memory_id));
    out
}
