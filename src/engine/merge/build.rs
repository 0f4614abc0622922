//! A cluster's merge as the plan holds it: the consolidated memory (merged fields, embedding,
//! provenance) and its sources.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::{Memory, MemoryType, Merge, MergedUnit, NewMemory, SourceRef};
use crate::engine::candidates::partition::Partition;
use crate::engine::clustering::Found;
use crate::engine::merge::embed::{CentroidEmbedder, Embedder, validate_embedding};
use crate::engine::merge::merge_members;

/// Full rows by id: the texts the merge and synthesis stages read.
pub type Rows<'r> = HashMap<Uuid, &'r Memory>;

/// Embeds with the configured embedder, falling back to the centroid on any error or invalid
/// answer. Returns the vector, the name of the embedder used, and a warning if it fell back.
/// `rows` are the unit-norm embeddings of the memories `text` stands for (at least one); `what`
/// names it in the warning.
pub fn embed_with_fallback(
    embedder: &dyn Embedder,
    text: &str,
    rows: &[&[f32]],
    dim: usize,
    what: &str,
) -> (Vec<f32>, String, Option<String>) {
    let answer = embedder.embed(text, rows).and_then(|v| validate_embedding(&v, dim).map(|_| v));
    match answer {
        Ok(v) => (v, embedder.name().to_owned(), None),
        Err(e) => {
            let centroid = CentroidEmbedder
                .embed(text, rows)
                .unwrap_or_else(|_| rows.first().map(|r| r.to_vec()).unwrap_or_default());
            let warning = format!("{what}: embedder {} failed ({e}); used the centroid", embedder.name());
            (centroid, CentroidEmbedder.name().to_owned(), Some(warning))
        }
    }
}

pub fn build_merge(
    f: &Found,
    part: &Partition<'_>,
    rows: &Rows<'_>,
    job_id: Uuid,
    embedder: &dyn Embedder,
) -> (Option<Merge>, Vec<String>) {
    let Some(members) = unit_rows(f, part, rows) else {
        return (None, vec![format!("cluster {}: a member vanished since the snapshot; not merged", f.cluster.id)]);
    };
    let mut fields = merge_members(&members);
    let units = std::mem::take(&mut fields.units)
        .into_iter()
        .map(|(text, from)| MergedUnit { text, sources: from.into_iter().map(|i| members[i].id).collect() })
        .collect();
    let node_rows: Vec<&[f32]> = f.nodes.iter().map(|&i| part.matrix.row(i)).collect();
    let what = format!("cluster {}", f.cluster.id);
    let (embedding, embedder_name, warning) =
        embed_with_fallback(embedder, &fields.execution_summary, &node_rows, part.matrix.dim, &what);
    let memory = NewMemory {
        id: Uuid::new_v5(&job_id, format!("merge:{}", f.cluster.id).as_bytes()),
        memory_type: MemoryType::Consolidated,
        task_id: fields.task_id,
        task_ids: fields.task_ids,
        execution_summary: fields.execution_summary,
        goal: fields.goal,
        result: fields.result,
        feedback: fields.feedback,
        tags: fields.tags,
        files: fields.files,
        embedding: Some(embedding),
        success: fields.success,
        reused_count: fields.reused_count,
        last_reused_at: fields.last_reused_at,
        learned_at: fields.learned_at,
        source_type: f.cluster.memory_type,
        consolidated_from: f.cluster.members.clone(),
        synthesized_from: Vec::new(),
        synthesis_confidence: None,
        needs_review: false,
    };
    let merge = Merge {
        cluster_id: f.cluster.id.clone(),
        memory,
        sources: sources(f, part),
        coverage: fields.coverage,
        compression: fields.compression,
        length_vs_longest: fields.length_vs_longest,
        confidence: f.cluster.cohesion,
        embedder: embedder_name,
        units,
    };
    (Some(merge), warning.into_iter().collect())
}

pub fn sources(f: &Found, part: &Partition<'_>) -> Vec<SourceRef> {
    let mut refs: Vec<SourceRef> =
        f.units.iter().map(|&u| SourceRef { id: part.units[u].id, version: part.units[u].version }).collect();
    refs.sort_by_key(|r| r.id);
    refs
}

/// Full rows of the units, lead first; `None` when one is missing (deleted since the snapshot).
pub fn unit_rows<'r>(f: &Found, part: &Partition<'_>, rows: &Rows<'r>) -> Option<Vec<&'r Memory>> {
    f.units.iter().map(|&u| rows.get(&part.units[u].id).copied()).collect()
}
