//! The plan's promotions: confident created memories whose cluster or topic has no playbook entry
//! yet and whose text no active entry already says.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use crate::domain::{
    FactKind, MemoryType, Merge, NewMemory, Options, PlaybookFollow, ProjectSnapshot, Promotion, Synthesis,
    SynthesisFact,
};
use crate::engine::clustering::Found;
use crate::engine::config::EngineConfig;
use crate::engine::promote::{category_and_base_priority, novel_candidates, priority};

/// Memory type, members, created memory, entry content, confidence.
type Candidate<'a> = (Option<MemoryType>, Vec<Uuid>, &'a NewMemory, String, f32);

/// The type a topic's entry is filed under: that of its most frequent kind of fact.
fn topic_type(facts: &[SynthesisFact]) -> Option<MemoryType> {
    let mut counts: BTreeMap<FactKind, usize> = BTreeMap::new();
    for f in facts {
        *counts.entry(f.kind).or_default() += 1;
    }
    let (kind, _) = counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
    match kind {
        FactKind::Fix => Some(MemoryType::ErrorFix),
        FactKind::Gotcha => Some(MemoryType::Warning),
        FactKind::Decision => Some(MemoryType::Decision),
        FactKind::Practice => Some(MemoryType::Learning),
        FactKind::Fact => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn promotions(
    snapshot: &ProjectSnapshot,
    options: &Options,
    config: &EngineConfig,
    job_id: Uuid,
    found: &[Found],
    merges: &[Merge],
    syntheses: &[Synthesis],
    follows: &[PlaybookFollow],
) -> Vec<Promotion> {
    let followed: HashSet<Uuid> = follows.iter().map(|f| f.memory_id).collect();
    // A cluster that grew keeps the playbook entry it already has rather than getting a second.
    let supported: HashSet<Uuid> =
        snapshot.playbook.iter().flat_map(|e| e.supporting_memory_ids.iter().copied()).collect();
    let by_cluster: BTreeMap<&str, &Found> = found
        .iter()
        .filter(|f| !f.cluster.members.iter().any(|id| supported.contains(id)))
        .map(|f| (f.cluster.id.as_str(), f))
        .collect();
    let merged = merges.iter().filter_map(|m| {
        let f = by_cluster.get(m.cluster_id.as_str())?;
        let members = f.cluster.members.clone();
        Some((f.cluster.memory_type, members, &m.memory, m.memory.execution_summary.clone(), m.confidence))
    });
    // A topic with a member that has (or gets in this plan) an entry: that entry says it first.
    let promoted_merges: HashSet<Uuid> = merges
        .iter()
        .filter(|m| {
            m.confidence >= options.promote_confidence_threshold && by_cluster.contains_key(m.cluster_id.as_str())
        })
        .map(|m| m.memory.id)
        .collect();
    let sources: HashSet<Uuid> = snapshot.playbook.iter().filter_map(|e| e.source_memory_id).collect();
    // The originals each consolidated memory stands for: created by this plan, or in the store.
    let originals: HashMap<Uuid, &[Uuid]> = merges
        .iter()
        .map(|m| (m.memory.id, m.memory.consolidated_from.as_slice()))
        .chain(snapshot.memories.iter().map(|m| (m.id, m.consolidated_from.as_slice())))
        .filter(|(_, from)| !from.is_empty())
        .collect();
    let has_entry = |id: &Uuid| {
        promoted_merges.contains(id)
            || sources.contains(id)
            || originals.get(id).map_or(supported.contains(id), |from| from.iter().any(|o| supported.contains(o)))
    };
    let summarized = syntheses.iter().filter(|s| !s.memory.synthesized_from.iter().any(has_entry)).map(|s| {
        let members = s.memory.synthesized_from.clone();
        (topic_type(&s.facts), members, &s.memory, s.memory.execution_summary.clone(), s.confidence)
    });
    let candidates: Vec<Candidate<'_>> = merged
        .chain(summarized)
        .filter(|c| c.4 >= options.promote_confidence_threshold && !followed.contains(&c.2.id))
        .collect();
    let Some(dim) = snapshot.embedding_dim else {
        return Vec::new();
    };
    let texts: Vec<(&str, &[f32])> =
        candidates.iter().map(|c| (c.3.as_str(), c.2.embedding.as_deref().unwrap_or_default())).collect();
    let use_ann = snapshot.playbook.len() + candidates.len() >= config.ann_min_candidates;
    let novel = novel_candidates(&snapshot.playbook, &texts, dim, use_ann, &config.ann);
    candidates
        .into_iter()
        .zip(novel)
        .filter(|(_, novel)| *novel)
        .map(|((memory_type, members, memory, content, confidence), _)| {
            let (category, base) = category_and_base_priority(memory_type);
            Promotion {
                entry_id: Uuid::new_v5(&job_id, format!("promote:{}", memory.id).as_bytes()),
                memory_id: memory.id,
                content,
                category: category.to_owned(),
                priority: priority(base, confidence, members.len(), memory.reused_count.max(0)),
                tags: memory.tags.clone(),
                supporting_memory_ids: members,
                embedding: memory.embedding.clone().unwrap_or_default(),
                confidence,
            }
        })
        .collect()
}
