//! The planner: snapshot + options + time in, a complete plan out. Pure: no I/O except through
//! the synthesizer and embedder the caller passes in. Planning runs in two steps so the caller
//! can load full rows only for what merges: `cluster` needs ids, versions and embeddings;
//! `build` then reads the texts of the memories `rows_needed` names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use uuid::Uuid;

use super::ann::AnnParams;
use super::archive::stale_memories;
use super::audit::audit_rows;
pub use super::clustering::{Clustering, Found, Paired, cluster, group, pairs};
use super::embed::{CentroidEmbedder, Embedder, validate_embedding};
pub use super::held::Texts;
use super::merge::merge_members;
use super::model::{ArchiveReason, MemorySnapshot, MemoryType, ProjectSnapshot};
use super::options::Options;
pub use super::output::*;
use super::partition::{Partition, leaf_originals};
use super::promote::{category_and_base_priority, novel_candidates, priority};
use super::synthesis::{ClusterView, ExtractiveSynthesizer, SynthesisError, Synthesizer, render, validate_draft};

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// A partition of at least this many nodes uses the ANN path in a full run; smaller ones the
    /// exact product, which is faster there (measured: 17 000 nodes, exact 4 s, HNSW 9 s).
    pub ann_min_candidates: usize,
    /// Clusters of at least this many original memories also get a synthesis memory.
    pub synthesis_min_cluster: usize,
    /// A synthesis below this confidence is stored with needs_review.
    pub review_confidence: f32,
    pub ann: AnnParams,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ann_min_candidates: 50_000,
            synthesis_min_cluster: 3,
            review_confidence: 0.80,
            ann: AnnParams::default(),
        }
    }
}

/// Full rows by id: the texts `build` merges and synthesizes.
pub type Rows<'r> = HashMap<Uuid, &'r MemorySnapshot>;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Both steps on a snapshot that already holds full rows (tests, `bench engine`).
pub fn plan(
    snapshot: &ProjectSnapshot,
    options: &Options,
    config: &EngineConfig,
    job_id: Uuid,
    now: DateTime<Utc>,
    synthesizer: &dyn Synthesizer,
    embedder: &dyn Embedder,
) -> Plan {
    let clustering = cluster(snapshot, options, config);
    let rows: Rows<'_> = snapshot.memories.iter().chain(&snapshot.originals).map(|m| (m.id, m)).collect();
    build(snapshot, clustering, &rows, options, config, job_id, now, synthesizer, embedder)
}

/// The memories whose full rows `build` reads: every unit of a merge, and the original members
/// of a cluster large enough for a synthesis.
pub fn rows_needed(clustering: &Clustering<'_>, options: &Options, config: &EngineConfig) -> Vec<Uuid> {
    let mut ids = BTreeSet::new();
    for f in &clustering.found {
        let part = &clustering.parts[f.partition];
        ids.extend(f.units.iter().map(|&u| part.units[u].id));
        if options.summarize && f.nodes.len() >= config.synthesis_min_cluster {
            ids.extend(f.nodes.iter().map(|&n| part.node_ids[n]));
        }
    }
    ids.into_iter().collect()
}

/// Active synthesis memories by the original memories they summarize.
fn syntheses_by_original(snapshot: &ProjectSnapshot) -> HashMap<Uuid, Vec<&MemorySnapshot>> {
    let mut index: HashMap<Uuid, Vec<&MemorySnapshot>> = HashMap::new();
    for m in snapshot.memories.iter().filter(|m| m.memory_type == MemoryType::Synthesis) {
        for id in &m.synthesized_from {
            index.entry(*id).or_default().push(m);
        }
    }
    index
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    snapshot: &ProjectSnapshot,
    clustering: Clustering<'_>,
    rows: &Rows<'_>,
    options: &Options,
    config: &EngineConfig,
    job_id: Uuid,
    now: DateTime<Utc>,
    synthesizer: &dyn Synthesizer,
    embedder: &dyn Embedder,
) -> Plan {
    let started = Instant::now();
    let mut timings = PhaseTimings {
        partitions: clustering.partitions_ms,
        similarity: clustering.similarity_ms,
        clustering: clustering.clustering_ms,
        ..PhaseTimings::default()
    };
    let Clustering { parts, mut found, incremental, compared_nodes, mut warnings, mut guard, .. } = clustering;
    let originals: Originals<'_> = snapshot.originals.iter().map(|o| (o.id, o)).collect();
    for f in &mut found {
        f.cluster.members = provenance(f, &parts[f.partition], &originals);
    }
    let t = Instant::now();
    let merges: Vec<(Option<Merge>, Vec<String>)> = if options.merge {
        found.par_iter().map(|f| build_merge(f, &parts[f.partition], rows, job_id, embedder)).collect()
    } else {
        Vec::new()
    };
    let (merges, merge_warnings): (Vec<Option<Merge>>, Vec<Vec<String>>) = merges.into_iter().unzip();
    let merges: Vec<Merge> = merges.into_iter().flatten().collect();
    warnings.extend(merge_warnings.into_iter().flatten());
    timings.merge = ms(t);

    retarget(&mut guard, &merges);

    let t = Instant::now();
    let by_original = syntheses_by_original(snapshot);
    let syntheses: Vec<(Option<Synthesis>, Vec<String>)> = if options.summarize {
        found
            .par_iter()
            .filter(|f| f.nodes.len() >= config.synthesis_min_cluster)
            .filter_map(|f| superseded_syntheses(f, &by_original).map(|superseded| (f, superseded)))
            .map(|(f, superseded)| {
                build_synthesis(f, &parts[f.partition], rows, superseded, job_id, now, config, synthesizer, embedder)
            })
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
            .chain(syntheses.iter().flat_map(|s| s.sources.iter().chain(&s.supersedes).map(|s| s.id)))
            .chain(guard.superseded.iter().map(|s| s.memory.id))
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

    let changes = audit_rows(&found, &merges, &syntheses, &archives, &guard.superseded, &promotions, options, now);
    let archives: Vec<Archive> = archives
        .into_iter()
        .map(|(a, _)| a)
        .chain(guard.superseded.iter().map(|s| Archive {
            memory_id: s.memory.id,
            version: s.memory.version,
            reason: ArchiveReason::Superseded,
        }))
        .collect();
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
    let superseded: usize = syntheses.iter().map(|s| s.supersedes.len()).sum();
    let memories_after = memories_before - merged_sources as i64 + merges.len() as i64 + syntheses.len() as i64
        - superseded as i64
        - archives.len() as i64;
    timings.total = timings.partitions + timings.similarity + timings.clustering + ms(started);
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
        scope: ScopeReport {
            mode: if incremental { "incremental" } else { "full" }.to_owned(),
            reason: snapshot.scope.reason.clone(),
            candidates: parts.iter().map(Partition::len).sum(),
            compared: compared_nodes,
        },
        guard,
    }
}

/// A held memory that this plan merges is represented afterwards by the consolidated memory:
/// reviews and supersessions name that one, and two reviews that become the same pair are one.
fn retarget(guard: &mut GuardReport, merges: &[Merge]) {
    let into: HashMap<Uuid, SourceRef> = merges
        .iter()
        .flat_map(|m| m.sources.iter().map(|s| (s.id, SourceRef { id: m.memory.id, version: NEW_MEMORY_VERSION })))
        .collect();
    let moved = |r: SourceRef| into.get(&r.id).copied().unwrap_or(r);
    let mut seen = HashSet::new();
    let mut reviews = Vec::with_capacity(guard.reviews.len());
    for mut review in std::mem::take(&mut guard.reviews) {
        (review.older, review.newer) = (moved(review.older), moved(review.newer));
        if seen.insert((review.older.id, review.newer.id)) {
            reviews.push(review);
        }
    }
    guard.reviews = reviews;
    for s in &mut guard.superseded {
        s.superseded_by = moved(SourceRef { id: s.superseded_by, version: 0 }).id;
    }
}

/// The version a memory has when the apply inserts it.
pub const NEW_MEMORY_VERSION: i64 = 1;

/// The original memories a cluster stands for: each consolidated unit's provenance (down to
/// plain memories, whether or not their embeddings took part) and each plain unit, sorted.
fn provenance(f: &Found, part: &Partition<'_>, originals: &Originals<'_>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = f
        .units
        .iter()
        .flat_map(|&u| {
            let unit = part.units[u];
            match unit.memory_type {
                MemoryType::Consolidated => leaf_originals(unit, originals),
                _ => vec![unit.id],
            }
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The snapshot's original memories by id.
type Originals<'a> = HashMap<Uuid, &'a MemorySnapshot>;

fn sources(f: &Found, part: &Partition<'_>) -> Vec<SourceRef> {
    let mut refs: Vec<SourceRef> =
        f.units.iter().map(|&u| SourceRef { id: part.units[u].id, version: part.units[u].version }).collect();
    refs.sort_by_key(|r| r.id);
    refs
}

/// Full rows of the units, lead first; `None` when one is missing (deleted since the snapshot).
fn unit_rows<'r>(f: &Found, part: &Partition<'_>, rows: &Rows<'r>) -> Option<Vec<&'r MemorySnapshot>> {
    f.units.iter().map(|&u| rows.get(&part.units[u].id).copied()).collect()
}

/// The active syntheses this cluster's new synthesis replaces: those of a part of its memories.
/// `None` when one already summarizes exactly these memories (nothing to refresh). A synthesis
/// that also covers memories outside the cluster is left alone.
fn superseded_syntheses(f: &Found, by_original: &HashMap<Uuid, Vec<&MemorySnapshot>>) -> Option<Vec<SourceRef>> {
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

/// Embeds with the configured embedder, falling back to the centroid on any error or invalid
/// answer. Returns the vector, the name of the embedder used, and a warning if it fell back.
fn embed_with_fallback(
    embedder: &dyn Embedder,
    text: &str,
    f: &Found,
    part: &Partition<'_>,
) -> (Vec<f32>, String, Option<String>) {
    let rows: Vec<&[f32]> = f.nodes.iter().map(|&i| part.matrix.row(i)).collect();
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

fn build_merge(
    f: &Found,
    part: &Partition<'_>,
    rows: &Rows<'_>,
    job_id: Uuid,
    embedder: &dyn Embedder,
) -> (Option<Merge>, Vec<String>) {
    let Some(members) = unit_rows(f, part, rows) else {
        return (None, vec![format!("cluster {}: a member vanished since the snapshot; not merged", f.cluster.id)]);
    };
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
    };
    (Some(merge), warning.into_iter().collect())
}

#[allow(clippy::too_many_arguments)]
fn build_synthesis(
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
    let originals: Option<Vec<&MemorySnapshot>> =
        f.nodes.iter().map(|&n| rows.get(&part.node_ids[n]).copied()).collect();
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
        embedding,
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

fn promote(
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
