//! The plan's promotions: confident created memories whose cluster has no playbook entry yet and
//! whose text no active entry already says.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use crate::domain::{Merge, NewMemory, Options, ProjectSnapshot, Promotion, Synthesis};
use crate::engine::clustering::Found;
use crate::engine::config::EngineConfig;
use crate::engine::promote::{category_and_base_priority, novel_candidates, priority};

pub fn promotions(
    snapshot: &ProjectSnapshot,
    options: &Options,
    config: &EngineConfig,
    job_id: Uuid,
    found: &[Found],
    merges: &[Merge],
    syntheses: &[Synthesis],
) -> Vec<Promotion> {
    // A cluster that grew keeps the playbook entry it already has rather than getting a second.
    let supported: HashSet<Uuid> =
        snapshot.playbook.iter().flat_map(|e| e.supporting_memory_ids.iter().copied()).collect();
    let by_cluster: BTreeMap<&str, &Found> = found
        .iter()
        .filter(|f| !f.cluster.members.iter().any(|id| supported.contains(id)))
        .map(|f| (f.cluster.id.as_str(), f))
        .collect();
    let candidates: Vec<(&Found, &NewMemory, String, f32)> = merges
        .iter()
        .map(|m| (&m.cluster_id, &m.memory, m.memory.execution_summary.clone(), m.confidence))
        .chain(syntheses.iter().map(|s| {
            let summary = s.memory.execution_summary.lines().next().unwrap_or_default().to_owned();
            (&s.cluster_id, &s.memory, summary, s.confidence)
        }))
        .filter(|c| c.3 >= options.promote_confidence_threshold)
        .filter_map(|(cluster_id, memory, content, confidence)| {
            by_cluster.get(cluster_id.as_str()).map(|f| (*f, memory, content, confidence))
        })
        .collect();
    let Some(dim) = snapshot.embedding_dim else {
        return Vec::new();
    };
    let texts: Vec<(&str, &[f32])> =
        candidates.iter().map(|c| (c.2.as_str(), c.1.embedding.as_deref().unwrap_or_default())).collect();
    let use_ann = snapshot.playbook.len() + candidates.len() >= config.ann_min_candidates;
    let novel = novel_candidates(&snapshot.playbook, &texts, dim, use_ann, &config.ann);
    candidates
        .into_iter()
        .zip(novel)
        .filter(|(_, novel)| *novel)
        .map(|((f, memory, content, confidence), _)| {
            let (category, base) = category_and_base_priority(f.cluster.memory_type);
            Promotion {
                entry_id: Uuid::new_v5(&job_id, format!("promote:{}", memory.id).as_bytes()),
                memory_id: memory.id,
                content,
                category: category.to_owned(),
                priority: priority(base, confidence, f.cluster.members.len(), memory.reused_count.max(0)),
                tags: memory.tags.clone(),
                supporting_memory_ids: f.cluster.members.clone(),
                embedding: memory.embedding.clone().unwrap_or_default(),
                confidence,
            }
        })
        .collect()
}
