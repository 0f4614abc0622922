//! A cluster's synthesis as the plan holds it: the synthesizer's draft (the extractive one as
//! the fallback), rendered, embedded, and the earlier syntheses it replaces.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Memory, MemoryType, NewMemory, ProjectSnapshot, SourceRef, Synthesis};
use crate::engine::candidates::partition::Partition;
use crate::engine::clustering::Found;
use crate::engine::config::EngineConfig;
use crate::engine::merge::build::{Rows, embed_with_fallback, sources, unit_rows};
use crate::engine::merge::embed::Embedder;
use crate::engine::synthesis::{
    ClusterView, ExtractiveSynthesizer, SynthesisError, Synthesizer, render, validate_draft,
};

/// Active synthesis memories by the original memories they summarize.
pub fn syntheses_by_original(snapshot: &ProjectSnapshot) -> HashMap<Uuid, Vec<&Memory>> {
    let mut index: HashMap<Uuid, Vec<&Memory>> = HashMap::new();
    // A pinned synthesis is never superseded: a new one is written beside it.
    let syntheses = snapshot.memories.iter().filter(|m| m.memory_type == MemoryType::Synthesis);
    for m in syntheses.filter(|m| !snapshot.pinned.contains(&m.id)) {
        for id in &m.synthesized_from {
            index.entry(*id).or_default().push(m);
        }
    }
    index
}

/// The active syntheses this cluster's new synthesis replaces: those of a part of its memories.
/// `None` when one already summarizes exactly these memories (nothing to refresh). A synthesis
/// that also covers memories outside the cluster is left alone.
pub fn superseded_syntheses(f: &Found, by_original: &HashMap<Uuid, Vec<&Memory>>) -> Option<Vec<SourceRef>> {
    let members: HashSet<Uuid> = f.cluster.members.iter().copied().collect();
    let mut refs: Vec<SourceRef> = Vec::new();
    for synthesis in f.cluster.members.iter().filter_map(|id| by_original.get(id)).flatten() {
        if !synthesis.synthesized_from.iter().all(|id| members.contains(id)) {
            continue;
        }
        if synthesis.synthesized_from.len() == members.len() {
            return None;
        }
        refs.push(SourceRef { id: synthesis.id, version: synthesis.version });
    }
    refs.sort_by_key(|r| r.id);
    refs.dedup();
    Some(refs)
}

#[allow(clippy::too_many_arguments)]
pub fn build_synthesis(
    f: &Found,
    part: &Partition<'_>,
    rows: &Rows<'_>,
    supersedes: Vec<SourceRef>,
    job_id: Uuid,
    now: DateTime<Utc>,
    config: &EngineConfig,
    synthesizer: &dyn Synthesizer,
    embedder: &dyn Embedder,
) -> (Option<Synthesis>, Vec<String>) {
    let mut warnings = Vec::new();
    // The originals speak for the cluster; when one's row is gone, the units do.
    let originals: Option<Vec<&Memory>> = f.nodes.iter().map(|&n| rows.get(&part.node_ids[n]).copied()).collect();
    let Some(members) = originals.or_else(|| unit_rows(f, part, rows)) else {
        return (None, vec![format!("cluster {}: a member vanished since the snapshot; no synthesis", f.cluster.id)]);
    };
    let view = ClusterView { cluster: &f.cluster, members };
    let mut used = synthesizer.name().to_owned();
    let draft = match synthesizer.synthesize(&view).and_then(|d| validate_draft(&d).map(|_| d)) {
        Ok(d) => d,
        Err(SynthesisError::NothingToAdd) => return (None, vec![]),
        Err(e) => {
            warnings.push(format!(
                "cluster {}: synthesizer {} failed ({e}); used extractive",
                f.cluster.id,
                synthesizer.name()
            ));
            used = ExtractiveSynthesizer.name().to_owned();
            match ExtractiveSynthesizer.synthesize(&view).and_then(|d| validate_draft(&d).map(|_| d)) {
                Ok(d) => d,
                Err(SynthesisError::NothingToAdd) => return (None, warnings),
                Err(e) => {
                    warnings.push(format!("cluster {}: no synthesis ({e})", f.cluster.id));
                    return (None, warnings);
                }
            }
        }
    };
    let text = render(&draft);
    let (embedding, _, warning) = embed_with_fallback(embedder, &text, f, part);
    warnings.extend(warning);
    let needs_review = draft.confidence < config.review_confidence;
    let mut tags = Vec::new();
    let mut files = Vec::new();
    for m in &view.members {
        for t in &m.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        for p in &m.files {
            if !files.contains(p) {
                files.push(p.clone());
            }
        }
    }
    let memory = NewMemory {
        id: Uuid::new_v5(&job_id, format!("synthesis:{}", f.cluster.id).as_bytes()),
        memory_type: MemoryType::Synthesis,
        task_id: None,
        task_ids: Vec::new(),
        execution_summary: text,
        goal: None,
        result: None,
        feedback: None,
        tags,
        files,
        embedding: Some(embedding),
        success: None,
        reused_count: 0,
        last_reused_at: None,
        learned_at: now,
        source_type: None,
        consolidated_from: Vec::new(),
        synthesized_from: f.cluster.members.clone(),
        synthesis_confidence: Some(draft.confidence),
        needs_review,
    };
    let synthesis = Synthesis {
        cluster_id: f.cluster.id.clone(),
        memory,
        sources: sources(f, part),
        supersedes,
        confidence: draft.confidence,
        needs_review,
        patterns: draft.patterns,
        best_practices: draft.best_practices,
        gotchas: draft.gotchas,
        synthesizer: used,
    };
    (Some(synthesis), warnings)
}
