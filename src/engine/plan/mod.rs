//! The planner: snapshot + options + time in, a complete plan out. Pure: no I/O except through
//! the synthesizer and embedder the caller passes in. Planning runs in two steps so the caller
//! can load full rows only for what merges: `cluster` needs ids, versions and embeddings;
//! `build` then reads the texts of the memories `rows_needed` names.

pub mod audit;
pub mod left_out;
pub mod report;
pub mod units;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{
    Archive, ArchiveReason, Counters, Memory, MemoryType, Merge, Options, PhaseTimings, Plan, ProjectSnapshot,
    ScopeMode, ScopeReport,
};
use crate::engine::archive::stale_memories;
use crate::engine::candidates::partition::{Partition, leaf_originals};
pub use crate::engine::clustering::{Clustering, Found, Paired, cluster, group, pairs};
pub use crate::engine::config::EngineConfig;
pub use crate::engine::guards::held::Texts;
use crate::engine::guards::retarget::{retarget, settle};
pub use crate::engine::merge::build::Rows;
use crate::engine::merge::build::build_merge;
use crate::engine::merge::embed::Embedder;
use crate::engine::plan::audit::audit_rows;
use crate::engine::promote::build::promotions;
use crate::engine::promote::follow::follows;
use crate::engine::synthesis::Synthesizer;
use crate::engine::synthesis::build::{Inputs, Planned, plan_syntheses};
use crate::engine::synthesis::topics::Members;
use units::map_units;

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
    let never = CancellationToken::new();
    build(snapshot, clustering, &rows, options, config, job_id, now, synthesizer, embedder, &never)
}

/// The memories whose full rows `build` reads: every unit of a merge, and every memory a topic
/// link names.
pub fn rows_needed(clustering: &Clustering<'_>, options: &Options) -> Vec<Uuid> {
    let mut ids = BTreeSet::new();
    for f in &clustering.found {
        let part = &clustering.parts[f.partition];
        ids.extend(f.units.iter().map(|&u| part.units[u].id));
    }
    if options.summarize {
        let members = Members::new(&clustering.parts, &clustering.found, options.merge);
        for link in &clustering.links {
            for m in [link.a, link.b] {
                let part = &clustering.parts[members.partition(m)];
                ids.extend(members.units(m).into_iter().map(|u| part.units[u].id));
            }
        }
    }
    ids.into_iter().collect()
}

/// The plan from the clustering. Once `stop` is cancelled, merges and topics not yet started are
/// skipped and model calls return at once: the plan is then incomplete and must not be applied.
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
    stop: &CancellationToken,
) -> Plan {
    let started = Instant::now();
    let mut timings = PhaseTimings {
        partitions: clustering.partitions_ms,
        similarity: clustering.similarity_ms,
        clustering: clustering.clustering_ms,
        ..PhaseTimings::default()
    };
    let Clustering { parts, mut found, incremental, compared_nodes, mut warnings, mut guard, links, .. } = clustering;
    let originals: Originals<'_> = snapshot.originals.iter().map(|o| (o.id, o)).collect();
    for f in &mut found {
        f.cluster.members = provenance(f, &parts[f.partition], &originals);
    }
    let t = Instant::now();
    let merges: Vec<(Option<Merge>, Vec<String>)> = if options.merge {
        map_units(&found, embedder.outside_calls(), stop, |f| {
            build_merge(f, &parts[f.partition], rows, job_id, embedder)
        })
        .into_iter()
        .flatten()
        .collect()
    } else {
        Vec::new()
    };
    let (merges, merge_warnings): (Vec<Option<Merge>>, Vec<Vec<String>>) = merges.into_iter().unzip();
    let merges: Vec<Merge> = merges.into_iter().flatten().collect();
    warnings.extend(merge_warnings.into_iter().flatten());
    timings.merge = ms(t);

    retarget(&mut guard, &merges);

    let t = Instant::now();
    let planned = if options.summarize {
        let inputs = Inputs {
            snapshot,
            parts: &parts,
            found: &found,
            merges: &merges,
            links: &links,
            rows,
            threshold: options.similarity_threshold,
            merging: options.merge,
            superseded: guard.superseded.iter().map(|s| s.memory.id).collect(),
            config,
            job_id,
            now,
            stop,
        };
        plan_syntheses(&inputs, synthesizer, embedder)
    } else {
        Planned { syntheses: Vec::new(), outdated: Vec::new(), warnings: Vec::new() }
    };
    let Planned { syntheses, outdated, warnings: synthesis_warnings } = planned;
    warnings.extend(synthesis_warnings);
    timings.synthesis = ms(t);

    let t = Instant::now();
    let archives: Vec<(Archive, &Memory)> = if options.archive {
        let in_plan: HashSet<Uuid> = merges
            .iter()
            .flat_map(|m| m.sources.iter().map(|s| s.id))
            .chain(syntheses.iter().flat_map(|s| s.sources.iter().chain(&s.supersedes).map(|s| s.id)))
            .chain(guard.superseded.iter().map(|s| s.memory.id))
            .chain(outdated.iter().map(|(a, _)| a.memory_id))
            .chain(snapshot.pinned.iter().copied())
            .collect();
        stale_memories(&snapshot.memories, &in_plan, options, now)
            .into_iter()
            .map(|m| (Archive { memory_id: m.id, version: m.version, reason: ArchiveReason::Staleness }, m))
            .collect()
    } else {
        Vec::new()
    };
    settle(&mut guard, &archives.iter().map(|(a, _)| a.memory_id).collect());
    timings.archive = ms(t);

    let t = Instant::now();
    // An entry follows its cluster whether or not this job promotes.
    let follows = follows(snapshot, &merges, &syntheses);
    let promotions = if options.promote {
        promotions(snapshot, options, config, job_id, &found, &merges, &syntheses, &follows)
    } else {
        Vec::new()
    };
    timings.promote = ms(t);

    let changes =
        audit_rows(&found, &merges, &syntheses, &archives, &outdated, &guard.superseded, &promotions, options, now);
    let changes = [changes, audit::follow_rows(&follows)].concat();
    let archives: Vec<Archive> = archives
        .into_iter()
        .map(|(a, _)| a)
        .chain(guard.superseded.iter().map(|s| Archive {
            memory_id: s.memory.id,
            version: s.memory.version,
            reason: ArchiveReason::Superseded,
        }))
        .chain(outdated.into_iter().map(|(a, _)| a))
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
        follows,
        changes,
        counters,
        warnings,
        timings_ms: timings,
        scope: ScopeReport {
            mode: if incremental { ScopeMode::Incremental } else { ScopeMode::Full },
            reason: snapshot.scope.reason.clone(),
            candidates: parts.iter().map(Partition::len).sum(),
            compared: compared_nodes,
        },
        guard,
    }
}

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
type Originals<'a> = HashMap<Uuid, &'a Memory>;
