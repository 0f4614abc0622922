//! The planner: snapshot + options + time in, a complete plan out. Pure: no I/O except through
//! the synthesizer and embedder the caller passes in.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::ann::{AnnParams, approximate_pairs};
use super::archive::stale_memories;
use super::cluster::{clique_groups, describe};
use super::embed::{CentroidEmbedder, Embedder, validate_embedding};
use super::merge::merge_members;
use super::model::{ArchiveReason, ChangeOperation, MemorySnapshot, MemoryType, ProjectSnapshot};
use super::options::Options;
pub use super::output::*;
use super::promote::{category_and_base_priority, novel_candidates, priority};
use super::similarity::{UnitMatrix, exact_pairs};
use super::synthesis::{ClusterView, ExtractiveSynthesizer, SynthesisError, Synthesizer, render, validate_draft};

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// From this many clustering candidates in the project on, large partitions use the ANN path.
    pub ann_min_candidates: usize,
    /// Under the ANN path, partitions smaller than this still use the exact scan (cheap and exact).
    pub ann_min_partition: usize,
    /// Clusters of at least this many members also get a synthesis memory.
    pub synthesis_min_cluster: usize,
    /// A synthesis below this confidence is stored with needs_review.
    pub review_confidence: f32,
    pub ann: AnnParams,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ann_min_candidates: 20_000,
            ann_min_partition: 4_096,
            synthesis_min_cluster: 3,
            review_confidence: 0.80,
            ann: AnnParams::default(),
        }
    }
}

/// Candidates sharing a clustering partition (one memory type, or all with cross_type), sorted
/// by id so that the result does not depend on input order.
struct Partition<'a> {
    memories: Vec<&'a MemorySnapshot>,
    matrix: UnitMatrix,
}

/// A cluster with its members as indices into its partition, representative first, the rest by
/// descending similarity to it, then by id.
struct Found {
    partition: usize,
    ordered: Vec<usize>,
    cluster: Cluster,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn partitions<'a>(snapshot: &'a ProjectSnapshot, options: &Options, warnings: &mut Vec<String>) -> Vec<Partition<'a>> {
    let Some(dim) = snapshot.embedding_dim else {
        if !snapshot.memories.is_empty() {
            warnings.push("project has no embedding dimension: nothing clustered".into());
        }
        return Vec::new();
    };
    let mut groups: BTreeMap<Option<MemoryType>, Vec<(&MemorySnapshot, Vec<f32>)>> = BTreeMap::new();
    let mut skipped = 0usize;
    for memory in &snapshot.memories {
        // Synthesis memories summarize clusters whose sources are already duplicates; merging
        // them again would fold a summary into its own sources.
        if memory.memory_type == MemoryType::Synthesis {
            continue;
        }
        match memory.embedding.as_deref().and_then(|e| UnitMatrix::normalize(e, dim)) {
            Some(unit) => {
                let key = (!options.cross_type).then_some(memory.memory_type);
                groups.entry(key).or_default().push((memory, unit));
            }
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        warnings.push(format!("{skipped} memories have no usable embedding of dimension {dim} and were not clustered"));
    }
    groups
        .into_values()
        .map(|mut rows| {
            rows.sort_by_key(|(m, _)| m.id);
            let matrix = UnitMatrix::from_rows(rows.iter().map(|(_, e)| e.as_slice()), dim);
            Partition { memories: rows.into_iter().map(|(m, _)| m).collect(), matrix }
        })
        .collect()
}

pub fn plan(
    snapshot: &ProjectSnapshot,
    options: &Options,
    config: &EngineConfig,
    job_id: Uuid,
    now: DateTime<Utc>,
    synthesizer: &dyn Synthesizer,
    embedder: &dyn Embedder,
) -> Plan {
    let started = Instant::now();
    let mut timings = PhaseTimings::default();
    let mut warnings = Vec::new();

    let parts =
        if options.merge || options.summarize { partitions(snapshot, options, &mut warnings) } else { Vec::new() };
    let total_candidates: usize = parts.iter().map(|p| p.memories.len()).sum();
    let mut found = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let t = Instant::now();
        let use_ann = total_candidates >= config.ann_min_candidates && part.memories.len() >= config.ann_min_partition;
        let pairs = if use_ann {
            approximate_pairs(&part.matrix, options.similarity_threshold, &config.ann)
        } else {
            exact_pairs(&part.matrix, options.similarity_threshold)
        };
        timings.similarity += ms(t);
        let t = Instant::now();
        for group in clique_groups(part.memories.len(), &pairs) {
            if group.len() < options.min_cluster_size {
                continue;
            }
            let members: Vec<usize> = group.iter().map(|&i| i as usize).collect();
            let cluster = describe(&members, &part.memories, &part.matrix);
            let ordered = order_members(&members, &cluster, part);
            found.push(Found { partition: index, ordered, cluster });
        }
        timings.clustering += ms(t);
    }
    found.sort_by(|a, b| a.cluster.id.cmp(&b.cluster.id));

    let t = Instant::now();
    let merges: Vec<(Merge, Vec<String>)> = if options.merge {
        found.par_iter().map(|f| build_merge(f, &parts[f.partition], job_id, embedder)).collect()
    } else {
        Vec::new()
    };
    let (merges, merge_warnings): (Vec<Merge>, Vec<Vec<String>>) = merges.into_iter().unzip();
    warnings.extend(merge_warnings.into_iter().flatten());
    timings.merge = ms(t);

    let t = Instant::now();
    let syntheses: Vec<(Option<Synthesis>, Vec<String>)> = if options.summarize {
        found
            .par_iter()
            .filter(|f| f.ordered.len() >= config.synthesis_min_cluster)
            .map(|f| build_synthesis(f, &parts[f.partition], job_id, now, config, synthesizer, embedder))
            .collect()
    } else {
        Vec::new()
    };
    let mut synthesis_list = Vec::new();
    for (synthesis, w) in syntheses {
        synthesis_list.extend(synthesis);
        warnings.extend(w);
    }
    let syntheses = synthesis_list;
    timings.synthesis = ms(t);

    let t = Instant::now();
    let archives: Vec<(Archive, &MemorySnapshot)> = if options.archive {
        let in_plan: HashSet<Uuid> = merges
            .iter()
            .flat_map(|m| m.sources.iter().map(|s| s.id))
            .chain(syntheses.iter().flat_map(|s| s.sources.iter().map(|s| s.id)))
            .collect();
        stale_memories(&snapshot.memories, &in_plan, options, now)
            .into_iter()
            .map(|m| (Archive { memory_id: m.id, version: m.version, reason: ArchiveReason::Staleness }, m))
            .collect()
    } else {
        Vec::new()
    };
    timings.archive = ms(t);

    let t = Instant::now();
    let promotions = if options.promote {
        promote(snapshot, options, config, job_id, &found, &merges, &syntheses)
    } else {
        Vec::new()
    };
    timings.promote = ms(t);

    let changes = audit_rows(&found, &merges, &syntheses, &archives, &promotions, options, now);
    let archives: Vec<Archive> = archives.into_iter().map(|(a, _)| a).collect();
    let merged_sources: usize = merges.iter().map(|m| m.sources.len()).sum();
    let counters = Counters {
        clusters_found: found.len() as i32,
        memories_merged: merged_sources as i32,
        memories_archived: archives.len() as i32,
        memories_promoted: promotions.len() as i32,
        summaries_created: syntheses.len() as i32,
        needs_review: syntheses.iter().filter(|s| s.needs_review).count() as i32,
    };
    let memories_before = snapshot.memories.len() as i64;
    let memories_after =
        memories_before - merged_sources as i64 + merges.len() as i64 + syntheses.len() as i64 - archives.len() as i64;
    timings.total = ms(started);
    Plan {
        memories_before,
        memories_after,
        clusters: found.into_iter().map(|f| f.cluster).collect(),
        merges,
        syntheses,
        archives,
        promotions,
        changes,
        counters,
        warnings,
        timings_ms: timings,
    }
}

fn order_members(members: &[usize], cluster: &Cluster, part: &Partition<'_>) -> Vec<usize> {
    let rep = members.iter().copied().find(|&i| part.memories[i].id == cluster.representative).unwrap_or(members[0]);
    let mut rest: Vec<(f32, Uuid, usize)> = members
        .iter()
        .copied()
        .filter(|&i| i != rep)
        .map(|i| (part.matrix.similarity(rep, i), part.memories[i].id, i))
        .collect();
    rest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    std::iter::once(rep).chain(rest.into_iter().map(|(_, _, i)| i)).collect()
}

fn sources(f: &Found, part: &Partition<'_>) -> Vec<SourceRef> {
    let mut refs: Vec<SourceRef> =
        f.ordered.iter().map(|&i| SourceRef { id: part.memories[i].id, version: part.memories[i].version }).collect();
    refs.sort_by_key(|r| r.id);
    refs
}

/// Embeds with the configured embedder, falling back to the centroid on any error or invalid
/// answer. Returns the vector, the name of the embedder used, and a warning if it fell back.
fn embed_with_fallback(
    embedder: &dyn Embedder,
    text: &str,
    f: &Found,
    part: &Partition<'_>,
) -> (Vec<f32>, String, Option<String>) {
    let rows: Vec<&[f32]> = f.ordered.iter().map(|&i| part.matrix.row(i)).collect();
    let answer = embedder.embed(text, &rows).and_then(|v| validate_embedding(&v, part.matrix.dim).map(|_| v));
    match answer {
        Ok(v) => (v, embedder.name().to_owned(), None),
        Err(e) => {
            let centroid = CentroidEmbedder.embed(text, &rows).unwrap_or_else(|_| rows[0].to_vec());
            let warning =
                format!("cluster {}: embedder {} failed ({e}); used the centroid", f.cluster.id, embedder.name());
            (centroid, CentroidEmbedder.name().to_owned(), Some(warning))
        }
    }
}

fn build_merge(f: &Found, part: &Partition<'_>, job_id: Uuid, embedder: &dyn Embedder) -> (Merge, Vec<String>) {
    let members: Vec<&MemorySnapshot> = f.ordered.iter().map(|&i| part.memories[i]).collect();
    let fields = merge_members(&members);
    let (embedding, embedder_name, warning) = embed_with_fallback(embedder, &fields.execution_summary, f, part);
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
        embedding,
        success: fields.success,
        reused_count: fields.reused_count,
        last_reused_at: fields.last_reused_at,
        learned_at: fields.learned_at,
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
    };
    (merge, warning.into_iter().collect())
}

fn build_synthesis(
    f: &Found,
    part: &Partition<'_>,
    job_id: Uuid,
    now: DateTime<Utc>,
    config: &EngineConfig,
    synthesizer: &dyn Synthesizer,
    embedder: &dyn Embedder,
) -> (Option<Synthesis>, Vec<String>) {
    let mut warnings = Vec::new();
    let view = ClusterView { cluster: &f.cluster, members: f.ordered.iter().map(|&i| part.memories[i]).collect() };
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
        embedding,
        success: None,
        reused_count: 0,
        last_reused_at: None,
        learned_at: now,
        consolidated_from: Vec::new(),
        synthesized_from: f.cluster.members.clone(),
        synthesis_confidence: Some(draft.confidence),
        needs_review,
    };
    let synthesis = Synthesis {
        cluster_id: f.cluster.id.clone(),
        memory,
        sources: sources(f, part),
        confidence: draft.confidence,
        needs_review,
        patterns: draft.patterns,
        best_practices: draft.best_practices,
        gotchas: draft.gotchas,
        synthesizer: used,
    };
    (Some(synthesis), warnings)
}

fn promote(
    snapshot: &ProjectSnapshot,
    options: &Options,
    config: &EngineConfig,
    job_id: Uuid,
    found: &[Found],
    merges: &[Merge],
    syntheses: &[Synthesis],
) -> Vec<Promotion> {
    let by_cluster: BTreeMap<&str, &Found> = found.iter().map(|f| (f.cluster.id.as_str(), f)).collect();
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
    let texts: Vec<(&str, &[f32])> = candidates.iter().map(|c| (c.2.as_str(), c.1.embedding.as_slice())).collect();
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
                embedding: memory.embedding.clone(),
                confidence,
            }
        })
        .collect()
}

fn audit_rows(
    found: &[Found],
    merges: &[Merge],
    syntheses: &[Synthesis],
    archives: &[(Archive, &MemorySnapshot)],
    promotions: &[Promotion],
    options: &Options,
    now: DateTime<Utc>,
) -> Vec<PlannedChange> {
    let representative: BTreeMap<&str, Uuid> =
        found.iter().map(|f| (f.cluster.id.as_str(), f.cluster.representative)).collect();
    let mut rows = Vec::new();
    for m in merges {
        for s in &m.sources {
            rows.push(PlannedChange {
                operation: ChangeOperation::Merge,
                memory_id: s.id,
                previous_state: json!({"is_duplicate": false, "duplicate_of": null, "version": s.version}),
                new_state: json!({"is_duplicate": true, "duplicate_of": m.memory.id}),
                reason: format!(
                    "near-duplicate merged into consolidated memory {} (cluster {})",
                    m.memory.id, m.cluster_id
                ),
                confidence: Some(m.confidence),
            });
        }
        rows.push(PlannedChange {
            operation: ChangeOperation::Merge,
            memory_id: m.memory.id,
            previous_state: serde_json::Value::Null,
            new_state: json!({
                "created": true,
                "memory_type": MemoryType::Consolidated,
                "cluster_id": m.cluster_id,
                "representative": representative.get(m.cluster_id.as_str()),
                "consolidated_from": m.memory.consolidated_from,
                "coverage": m.coverage,
                "compression": m.compression,
                "length_vs_longest": m.length_vs_longest,
            }),
            reason: format!("consolidated {} near-duplicate memories", m.sources.len()),
            confidence: Some(m.confidence),
        });
    }
    for s in syntheses {
        rows.push(PlannedChange {
            operation: ChangeOperation::Summarize,
            memory_id: s.memory.id,
            previous_state: serde_json::Value::Null,
            new_state: json!({
                "created": true,
                "memory_type": MemoryType::Synthesis,
                "cluster_id": s.cluster_id,
                "synthesized_from": s.memory.synthesized_from,
                "synthesis_confidence": s.confidence,
                "needs_review": s.needs_review,
                "synthesizer": s.synthesizer,
            }),
            reason: format!("synthesized {} related memories", s.sources.len()),
            confidence: Some(s.confidence),
        });
    }
    for (a, m) in archives {
        rows.push(PlannedChange {
            operation: ChangeOperation::Archive,
            memory_id: a.memory_id,
            previous_state: json!({"is_archived": false, "archived_at": null, "archive_reason": null, "version": a.version}),
            new_state: json!({"is_archived": true, "archived_at": now, "archive_reason": a.reason}),
            reason: format!(
                "not reused for more than {} days and reused {} times (< {})",
                options.archive_stale_days, m.reused_count, options.archive_min_reuse
            ),
            confidence: None,
        });
    }
    for p in promotions {
        rows.push(PlannedChange {
            operation: ChangeOperation::Promote,
            memory_id: p.memory_id,
            previous_state: serde_json::Value::Null,
            new_state: json!({
                "entry_id": p.entry_id,
                "category": p.category,
                "priority": p.priority,
                "content": p.content,
                "supporting_memory_ids": p.supporting_memory_ids,
            }),
            reason: format!("confidence {:.3} >= {}", p.confidence, options.promote_confidence_threshold),
            confidence: Some(p.confidence),
        });
    }
    rows
}
