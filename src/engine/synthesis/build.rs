//! The plan's syntheses: topics from the clustering step's links, one synthesis per topic with
//! two facts or more (the synthesizer's draft, the extractive one as the fallback), the earlier
//! syntheses each replaces, and the outdated syntheses nothing replaces (archived).

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{
    Archive, ArchiveReason, Memory, MemoryType, Merge, NewMemory, ProjectSnapshot, SourceRef, Synthesis,
};
use crate::engine::candidates::partition::Partition;
use crate::engine::clustering::Found;
use crate::engine::clustering::clique::cluster_id;
use crate::engine::config::EngineConfig;
use crate::engine::merge::build::{Rows, embed_with_fallback};
use crate::engine::merge::embed::Embedder;
use crate::engine::plan::units::map_units;
use crate::engine::synthesis::topics::{Link, Member, Members, agglomerate};
use crate::engine::synthesis::{
    ExtractiveSynthesizer, SynthesisError, Synthesizer, TopicMember, TopicView, render, validate_draft,
};

/// What the synthesis stage reads.
pub struct Inputs<'a, 'r> {
    pub snapshot: &'a ProjectSnapshot,
    pub parts: &'a [Partition<'a>],
    pub found: &'a [Found],
    pub merges: &'a [Merge],
    pub links: &'a [Link],
    pub rows: &'a Rows<'r>,
    pub threshold: f32,
    pub merging: bool,
    /// Memories the plan archives as superseded: no topic reads them.
    pub superseded: HashSet<Uuid>,
    pub config: &'a EngineConfig,
    pub job_id: Uuid,
    pub now: DateTime<Utc>,
    /// Topics not started once it is cancelled are skipped.
    pub stop: &'a CancellationToken,
}

pub struct Planned {
    pub syntheses: Vec<Synthesis>,
    /// Outdated syntheses no new one replaces, with the reason for the audit row.
    pub outdated: Vec<(Archive, String)>,
    pub warnings: Vec<String>,
}

/// A topic member with what the stage needs of it.
struct Described<'a> {
    id: Uuid,
    memory_type: Option<MemoryType>,
    label: String,
    texts: Vec<&'a str>,
    tags: &'a [String],
    files: &'a [String],
    marks: BTreeSet<&'a str>,
    sources: Vec<SourceRef>,
    nodes: usize,
}

fn union(into: &mut Vec<String>, more: &[String]) {
    for item in more {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

fn label(task_id: Option<&String>, id: Uuid) -> String {
    task_id.cloned().unwrap_or_else(|| id.simple().to_string()[..8].to_owned())
}

fn texts<'m>(summary: &'m str, result: &'m Option<String>, feedback: &'m Option<String>) -> Vec<&'m str> {
    std::iter::once(summary).chain(result.as_deref()).chain(feedback.as_deref()).collect()
}

fn marks<'m>(tags: &'m [String], files: &'m [String]) -> BTreeSet<&'m str> {
    tags.iter().map(|t| t.as_str()).chain(files.iter().map(|f| f.as_str())).collect()
}

fn describe<'a>(
    member: Member,
    members: &Members<'_, '_>,
    parts: &[Partition<'_>],
    merge_of: &HashMap<usize, &'a Merge>,
    rows: &Rows<'a>,
    superseded: &HashSet<Uuid>,
) -> Option<Described<'a>> {
    let nodes = members.nodes(member).len();
    match member {
        Member::Cluster(index) => {
            let merge = merge_of.get(&index)?;
            let m = &merge.memory;
            Some(Described {
                id: m.id,
                memory_type: m.source_type,
                label: label(m.task_id.as_ref(), m.id),
                texts: texts(&m.execution_summary, &m.result, &m.feedback),
                tags: &m.tags,
                files: &m.files,
                marks: marks(&m.tags, &m.files),
                sources: merge.sources.clone(),
                nodes,
            })
        }
        Member::Unit { partition, unit } => {
            let snapshot_row = parts[partition].units[unit];
            if superseded.contains(&snapshot_row.id) {
                return None;
            }
            let m: &'a Memory = rows.get(&snapshot_row.id)?;
            Some(Described {
                id: m.id,
                memory_type: m.clustering_type(),
                label: label(m.task_id.as_ref(), m.id),
                texts: texts(&m.execution_summary, &m.result, &m.feedback),
                tags: &m.tags,
                files: &m.files,
                marks: marks(&m.tags, &m.files),
                sources: vec![SourceRef { id: snapshot_row.id, version: snapshot_row.version }],
                nodes,
            })
        }
    }
}

/// Every active memory id, and every original id, mapped to the member id it belongs to once the
/// plan is applied (a merged unit to its consolidated memory).
fn successors(
    inputs: &Inputs<'_, '_>,
    members: &Members<'_, '_>,
    merge_of: &HashMap<usize, &Merge>,
) -> HashMap<Uuid, Uuid> {
    // An active memory outside every partition (no embedding, or no clustering type) stays.
    let mut next: HashMap<Uuid, Uuid> = inputs.snapshot.memories.iter().map(|m| (m.id, m.id)).collect();
    for (p, part) in inputs.parts.iter().enumerate() {
        for (node, &id) in part.node_ids.iter().enumerate() {
            let unit = part.unit_of[node] as usize;
            let successor = match members.of_unit(p, unit) {
                Member::Cluster(index) => merge_of.get(&index).map_or(part.units[unit].id, |m| m.memory.id),
                Member::Unit { .. } => part.units[unit].id,
            };
            next.insert(id, successor);
            next.insert(part.units[unit].id, successor);
        }
    }
    next
}

/// The active memories outdated syntheses read: the topic search starts from them too.
pub fn reseed(snapshot: &ProjectSnapshot) -> HashSet<Uuid> {
    let active: HashSet<Uuid> = snapshot.memories.iter().map(|m| m.id).collect();
    let mut ids = HashSet::new();
    for s in snapshot.memories.iter().filter(|m| m.memory_type == MemoryType::Synthesis) {
        let gone = s.synthesized_from.iter().any(|id| !active.contains(id));
        if gone || snapshot.outdated_syntheses.contains(&s.id) {
            ids.extend(s.synthesized_from.iter().filter(|id| active.contains(id)));
        }
    }
    ids
}

/// An active synthesis the plan may replace: its members as they will be, and why it is outdated.
struct Existing<'m> {
    memory: &'m Memory,
    members: BTreeSet<Uuid>,
    outdated: Option<String>,
}

fn existing<'m>(snapshot: &'m ProjectSnapshot, next: &HashMap<Uuid, Uuid>) -> Vec<Existing<'m>> {
    let syntheses = snapshot.memories.iter().filter(|m| m.memory_type == MemoryType::Synthesis);
    syntheses
        .filter(|s| !snapshot.pinned.contains(&s.id))
        .map(|s| {
            let members: BTreeSet<Uuid> = s.synthesized_from.iter().filter_map(|id| next.get(id).copied()).collect();
            let gone: Vec<Uuid> = s.synthesized_from.iter().filter(|id| next.get(id) != Some(id)).copied().collect();
            let outdated = if let Some(id) = gone.first() {
                Some(format!("synthesis outdated: member {id} was merged, archived or undone"))
            } else if snapshot.outdated_syntheses.contains(&s.id) {
                Some("synthesis outdated: a member changed since it was written".to_owned())
            } else {
                None
            };
            Existing { memory: s, members, outdated }
        })
        .collect()
}

pub fn plan_syntheses(inputs: &Inputs<'_, '_>, synthesizer: &dyn Synthesizer, embedder: &dyn Embedder) -> Planned {
    let members = Members::new(inputs.parts, inputs.found, inputs.merging);
    let by_cluster: HashMap<&str, &Merge> = inputs.merges.iter().map(|m| (m.cluster_id.as_str(), m)).collect();
    let merge_of: HashMap<usize, &Merge> = inputs
        .found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| by_cluster.get(f.cluster.id.as_str()).map(|m| (i, *m)))
        .collect();
    let mut described: HashMap<Member, Described<'_>> = HashMap::new();
    for link in inputs.links {
        for m in [link.a, link.b] {
            if !described.contains_key(&m)
                && let Some(d) = describe(m, &members, inputs.parts, &merge_of, inputs.rows, &inputs.superseded)
            {
                described.insert(m, d);
            }
        }
    }
    let band = inputs.threshold - inputs.config.topic_band;
    let keep = |l: &Link| {
        let (Some(a), Some(b)) = (described.get(&l.a), described.get(&l.b)) else { return false };
        l.similarity >= band || !a.marks.is_disjoint(&b.marks)
    };
    let mut next = successors(inputs, &members, &merge_of);
    // A memory the plan archives as superseded leaves its topics.
    next.retain(|id, _| !inputs.superseded.contains(id));
    let olds = existing(inputs.snapshot, &next);
    // Topics whose synthesis still holds stand as they are, unless they grow.
    let member_of: HashMap<Uuid, Member> = described.iter().map(|(m, d)| (d.id, *m)).collect();
    let standing: Vec<Vec<Member>> = olds
        .iter()
        .filter(|o| o.outdated.is_none())
        .filter_map(|o| {
            let mut group: Vec<Member> =
                o.members.iter().map(|id| member_of.get(id).copied()).collect::<Option<_>>()?;
            group.sort_unstable();
            (group.len() >= 2).then_some(group)
        })
        .collect();
    let groups = agglomerate(inputs.links, keep, inputs.config.topic_max_members, &standing);
    let similarity: HashMap<(Member, Member), f32> = inputs.links.iter().map(|l| ((l.a, l.b), l.similarity)).collect();

    let topics: Vec<(Vec<Member>, Vec<SourceRef>)> = groups
        .into_iter()
        .filter(|g| g.iter().map(|m| described[m].nodes).sum::<usize>() >= inputs.config.synthesis_min_cluster)
        .filter_map(|g| {
            let ids: BTreeSet<Uuid> = g.iter().map(|m| described[m].id).collect();
            let within = olds.iter().filter(|o| !o.members.is_empty() && o.members.is_subset(&ids));
            let mut replaced = Vec::new();
            for old in within {
                if old.members == ids && old.outdated.is_none() {
                    return None;
                }
                replaced.push(SourceRef { id: old.memory.id, version: old.memory.version });
            }
            Some((g, replaced))
        })
        .collect();

    let outside_calls = synthesizer.outside_calls().max(embedder.outside_calls());
    let built: Vec<(Option<Synthesis>, Vec<String>)> =
        map_units(&topics, outside_calls, inputs.stop, |(group, supersedes)| {
            let weakest_link = group
                .iter()
                .enumerate()
                .flat_map(|(i, a)| group[i + 1..].iter().map(move |b| (*a, *b)))
                .filter_map(|key| similarity.get(&key).copied())
                .fold(f32::INFINITY, f32::min);
            let parts: Vec<&Described<'_>> = group.iter().map(|m| &described[m]).collect();
            let rows: Vec<&[f32]> = group.iter().flat_map(|&m| members.rows(m)).collect();
            build_synthesis(inputs, &parts, &rows, weakest_link, supersedes.clone(), synthesizer, embedder)
        })
        .into_iter()
        .flatten()
        .collect();
    let mut syntheses = Vec::new();
    let mut warnings = Vec::new();
    for (synthesis, w) in built {
        syntheses.extend(synthesis);
        warnings.extend(w);
    }
    let replaced: HashSet<Uuid> = syntheses.iter().flat_map(|s| s.supersedes.iter().map(|r| r.id)).collect();
    let outdated = olds
        .into_iter()
        .filter(|o| !replaced.contains(&o.memory.id))
        .filter_map(|o| {
            let reason = o.outdated?;
            let archive =
                Archive { memory_id: o.memory.id, version: o.memory.version, reason: ArchiveReason::Outdated };
            Some((archive, reason))
        })
        .collect();
    Planned { syntheses, outdated, warnings }
}

fn build_synthesis(
    inputs: &Inputs<'_, '_>,
    members: &[&Described<'_>],
    rows: &[&[f32]],
    weakest_link: f32,
    supersedes: Vec<SourceRef>,
    synthesizer: &dyn Synthesizer,
    embedder: &dyn Embedder,
) -> (Option<Synthesis>, Vec<String>) {
    let mut ids: Vec<Uuid> = members.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    let topic_id = cluster_id(&ids);
    let view = TopicView {
        topic_id: &topic_id,
        weakest_link,
        related_at: inputs.threshold - inputs.config.topic_band,
        members: members
            .iter()
            .map(|d| TopicMember {
                id: d.id,
                memory_type: d.memory_type,
                label: d.label.clone(),
                texts: d.texts.clone(),
                tags: d.tags.iter().map(String::as_str).collect(),
            })
            .collect(),
    };
    let mut warnings = Vec::new();
    let mut used = synthesizer.name().to_owned();
    let draft = match synthesizer.synthesize(&view).and_then(|d| validate_draft(&d).map(|_| d)) {
        Ok(d) => d,
        Err(SynthesisError::NothingToAdd) => return (None, vec![]),
        Err(e) => {
            warnings
                .push(format!("topic {topic_id}: synthesizer {} failed ({e}); used extractive", synthesizer.name()));
            used = ExtractiveSynthesizer.name().to_owned();
            match ExtractiveSynthesizer.synthesize(&view).and_then(|d| validate_draft(&d).map(|_| d)) {
                Ok(d) => d,
                Err(SynthesisError::NothingToAdd) => return (None, warnings),
                Err(e) => {
                    warnings.push(format!("topic {topic_id}: no synthesis ({e})"));
                    return (None, warnings);
                }
            }
        }
    };
    let labels: HashMap<Uuid, &str> = members.iter().map(|d| (d.id, d.label.as_str())).collect();
    let text = render(&draft, &|id| labels.get(&id).map_or_else(|| id.to_string(), |l| (*l).to_owned()));
    let dim = rows.first().map_or(0, |r| r.len());
    let (embedding, _, warning) = embed_with_fallback(embedder, &text, rows, dim, &format!("topic {topic_id}"));
    warnings.extend(warning);
    let needs_review = draft.confidence < inputs.config.review_confidence;
    let mut tags: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    for d in members {
        union(&mut tags, d.tags);
        union(&mut files, d.files);
    }
    let mut sources: Vec<SourceRef> = members.iter().flat_map(|d| d.sources.iter().copied()).collect();
    sources.sort_by_key(|r| r.id);
    sources.dedup();
    let memory = NewMemory {
        id: Uuid::new_v5(&inputs.job_id, format!("synthesis:{topic_id}").as_bytes()),
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
        learned_at: inputs.now,
        source_type: None,
        consolidated_from: Vec::new(),
        synthesized_from: ids,
        synthesis_confidence: Some(draft.confidence),
        needs_review,
    };
    let synthesis = Synthesis {
        topic_id,
        memory,
        sources,
        supersedes,
        confidence: draft.confidence,
        needs_review,
        facts: draft.facts,
        synthesizer: used,
    };
    (Some(synthesis), warnings)
}
