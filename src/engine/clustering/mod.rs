//! The clustering phase of a plan: partitions, above-threshold pairs (all of them, or in an
//! incremental run those a fresh memory can take part in), clique groups over original memories,
//! and each group described with its units (the active memories a merge marks duplicate).

pub mod clique;

use std::collections::BTreeSet;
use std::time::Instant;

use uuid::Uuid;

use crate::domain::Cluster;
use crate::domain::GuardReport;
use crate::domain::{Memory, MemoryType, ProjectSnapshot};
use crate::domain::{Options, ValueGuard};
use crate::engine::candidates::incremental::fresh_pairs;
use crate::engine::candidates::partition::{Partition, partitions};
use crate::engine::clustering::clique::{clique_groups, cluster_id};
use crate::engine::config::EngineConfig;
use crate::engine::guards::held::{Texts, guarded_nodes, screen};
use crate::engine::guards::language::keep_languages_apart;
use crate::engine::similarity::ScoredPair;
use crate::engine::similarity::ann::approximate_pairs;
use crate::engine::similarity::prefilter::prefiltered_pairs_of;
use crate::engine::synthesis::build::reseed;
use crate::engine::synthesis::topics::{Link, Members, links};

/// A group to act on: at least two units, at least `min_cluster_size` original memories.
pub struct Found {
    pub partition: usize,
    /// Node indices into the partition, sorted.
    pub nodes: Vec<usize>,
    /// Unit indices into the partition: the lead first, then by descending similarity to it, then id.
    pub units: Vec<usize>,
    /// `members` are the original memories (node ids); `representative` is the lead unit.
    pub cluster: Cluster,
}

pub struct Clustering<'a> {
    pub parts: Vec<Partition<'a>>,
    pub found: Vec<Found>,
    pub incremental: bool,
    /// Nodes compared against everything (all nodes in a full run).
    pub compared_nodes: usize,
    pub partitions_ms: f64,
    pub similarity_ms: f64,
    pub clustering_ms: f64,
    pub warnings: Vec<String>,
    /// What the value guard held back.
    pub guard: GuardReport,
    /// Topic links (empty unless the job summarizes).
    pub links: Vec<Link>,
}

/// An incremental partition with more than 1/FULL_PATH_FRESH_SHARE of its nodes fresh runs the
/// full product instead.
const FULL_PATH_FRESH_SHARE: usize = 4;
/// Below this many nodes the choice does not matter.
const FULL_PATH_MIN_NODES: usize = 2048;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The similarity phase: partitions and each one's above-threshold pairs, before the guard and
/// the clique step.
pub struct Paired<'a> {
    pub parts: Vec<Partition<'a>>,
    /// Per partition, its above-threshold pairs.
    pub pairs: Vec<Vec<ScoredPair>>,
    pub incremental: bool,
    pub compared_nodes: usize,
    pub partitions_ms: f64,
    pub similarity_ms: f64,
    pub warnings: Vec<String>,
}

impl Paired<'_> {
    /// Ids of the nodes whose texts the value guard reads (none when it is off).
    pub fn guarded_ids(&self, options: &Options) -> Vec<Uuid> {
        if options.value_guard == ValueGuard::Off {
            return Vec::new();
        }
        let mut ids: Vec<Uuid> = self
            .parts
            .iter()
            .zip(&self.pairs)
            .flat_map(|(part, pairs)| guarded_nodes(part, pairs).into_iter().map(|n| part.node_ids[n as usize]))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Partitions and above-threshold pairs (all of them, or in an incremental run those a fresh
/// memory can take part in).
pub fn pairs<'a>(snapshot: &'a ProjectSnapshot, options: &Options, config: &EngineConfig) -> Paired<'a> {
    let mut warnings = Vec::new();
    let t = Instant::now();
    let parts =
        if options.merge || options.summarize { partitions(snapshot, options, &mut warnings) } else { Vec::new() };
    let partitions_ms = ms(t);
    let incremental = snapshot.scope.fresh.is_some();
    let t = Instant::now();
    let mut compared_nodes = 0;
    let mut all = Vec::with_capacity(parts.len());
    for part in &parts {
        let threshold = options.similarity_threshold;
        let fresh = part.fresh.iter().filter(|&&f| f).count();
        // Past a share of fresh nodes (a bulk import), scoring them against all costs more than
        // the full product.
        let scored_fresh =
            incremental && (fresh * FULL_PATH_FRESH_SHARE < part.len() || part.len() < FULL_PATH_MIN_NODES);
        let pairs = if scored_fresh {
            fresh_pairs(part, threshold)
        } else if part.len() >= config.ann_min_candidates {
            approximate_pairs(&part.matrix, threshold, &config.ann)
        } else {
            prefiltered_pairs_of(&part.matrix, &part.embeddings, threshold)
        };
        compared_nodes += if scored_fresh { fresh } else { part.len() };
        all.push(pairs);
    }
    let similarity_ms = ms(t);
    Paired { parts, pairs: all, incremental, compared_nodes, partitions_ms, similarity_ms, warnings }
}

/// The guard and the clique step: pairs whose texts differ in a value are taken out (`held`),
/// then the clique groups of what is left become clusters; then, for a job that summarizes, the
/// topic links around them.
pub fn group<'a>(
    snapshot: &ProjectSnapshot,
    paired: Paired<'a>,
    texts: &Texts<'_>,
    options: &Options,
    config: &EngineConfig,
) -> Clustering<'a> {
    let Paired { parts, pairs, incremental, compared_nodes, partitions_ms, similarity_ms, mut warnings } = paired;
    let t = Instant::now();
    let mut found = Vec::new();
    let mut guard = GuardReport::new(options.value_guard);
    for (index, (part, mut pairs)) in parts.iter().zip(pairs).enumerate() {
        guard.boundaries.pinned += keep_pinned_apart(part, &mut pairs, &snapshot.pinned);
        guard.boundaries.language_pairs += keep_languages_apart(part, &mut pairs, texts);
        let mut screened = screen(part, pairs, texts, options.value_guard, &snapshot.judged);
        guard.absorb(screened.report);
        if !snapshot.apart.is_empty() {
            let id = |n: u32| part.node_ids[n as usize];
            screened.pairs.retain(|p| {
                let (a, b) = (id(p.a), id(p.b));
                !snapshot.apart.contains(&(a.min(b), a.max(b)))
            });
        }
        for group in clique_groups(part.len(), &screened.pairs, &part.locked_groups()) {
            let nodes: Vec<usize> = group.iter().map(|&i| i as usize).collect();
            let mut units: Vec<usize> = nodes.iter().map(|&n| part.unit_of[n] as usize).collect();
            units.sort_unstable();
            units.dedup();
            if units.len() < 2 || nodes.len() < options.min_cluster_size {
                continue;
            }
            let (cluster, units) = describe(&nodes, units, part);
            found.push(Found { partition: index, nodes, units, cluster });
        }
    }
    found.sort_by(|a, b| a.cluster.id.cmp(&b.cluster.id));
    let links = if options.summarize {
        let members = Members::new(&parts, &found, options.merge);
        links(snapshot, &members, &reseed(snapshot), options, config, &mut warnings)
    } else {
        Vec::new()
    };
    let clustering_ms = ms(t);
    Clustering {
        parts,
        found,
        incremental,
        compared_nodes,
        partitions_ms,
        similarity_ms,
        clustering_ms,
        warnings,
        guard,
        links,
    }
}

/// Both steps on a snapshot that holds the texts itself (tests, benches).
pub fn cluster<'a>(snapshot: &'a ProjectSnapshot, options: &Options, config: &EngineConfig) -> Clustering<'a> {
    let texts: Texts<'_> =
        snapshot.memories.iter().chain(&snapshot.originals).map(|m| (m.id, m.execution_summary.as_str())).collect();
    group(snapshot, pairs(snapshot, options, config), &texts, options, config)
}

/// `pairs` without those touching a pinned memory (a unit that is pinned, through any of its
/// nodes); returns how many pinned memories had one.
fn keep_pinned_apart(part: &Partition<'_>, pairs: &mut Vec<ScoredPair>, pinned: &BTreeSet<Uuid>) -> usize {
    if pinned.is_empty() {
        return 0;
    }
    let unit_pinned = |node: u32| {
        let unit = part.units[part.unit_of[node as usize] as usize];
        pinned.contains(&unit.id).then_some(unit.id)
    };
    let mut held: BTreeSet<Uuid> = BTreeSet::new();
    pairs.retain(|p| {
        // The originals of one consolidated memory are not near-duplicates kept apart.
        if part.unit_of[p.a as usize] == part.unit_of[p.b as usize] {
            return true;
        }
        let touched: Vec<Uuid> = [unit_pinned(p.a), unit_pinned(p.b)].into_iter().flatten().collect();
        held.extend(&touched);
        touched.is_empty()
    });
    held.len()
}

/// Sorted original ids, lead unit, cohesion (average pairwise similarity of the originals) and
/// type. The lead is an existing consolidated memory when the group has one (its text already
/// says what its sources said: the newcomers add to it), else the member with the highest
/// reused_count, then the highest centrality, then the smallest id.
fn describe(nodes: &[usize], units: Vec<usize>, part: &Partition<'_>) -> (Cluster, Vec<usize>) {
    let k = nodes.len();
    // `units` is sorted: a unit's centrality sits at its position there.
    let position = |node: usize| units.binary_search(&(part.unit_of[node] as usize)).unwrap_or(0);
    let mut centrality = vec![0.0f32; units.len()];
    let mut total = 0.0f64;
    for x in 0..k {
        for y in x + 1..k {
            let s = part.matrix.similarity(nodes[x], nodes[y]);
            centrality[position(nodes[x])] += s;
            centrality[position(nodes[y])] += s;
            total += f64::from(s);
        }
    }
    let pair_count = (k * (k - 1) / 2).max(1);
    let consolidated = |m: &Memory| m.memory_type == MemoryType::Consolidated;
    let lead = (0..units.len())
        .max_by(|&x, &y| {
            let (mx, my) = (part.units[units[x]], part.units[units[y]]);
            consolidated(mx)
                .cmp(&consolidated(my))
                .then(mx.reused_count.cmp(&my.reused_count))
                .then(centrality[x].total_cmp(&centrality[y]))
                .then(my.id.cmp(&mx.id))
        })
        .map_or(units[0], |x| units[x]);
    let lead_nodes = &part.nodes_of[lead];
    let closeness = |u: usize| -> f32 {
        let own = &part.nodes_of[u];
        let sum: f32 = own
            .iter()
            .flat_map(|&a| lead_nodes.iter().map(move |&b| (a, b)))
            .map(|(a, b)| part.matrix.similarity(a as usize, b as usize))
            .sum();
        sum / (own.len() * lead_nodes.len()).max(1) as f32
    };
    let mut rest: Vec<(f32, Uuid, usize)> =
        units.iter().copied().filter(|&u| u != lead).map(|u| (closeness(u), part.units[u].id, u)).collect();
    rest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let ordered: Vec<usize> = std::iter::once(lead).chain(rest.into_iter().map(|(_, _, u)| u)).collect();

    let members: Vec<Uuid> = nodes.iter().map(|&n| part.node_ids[n]).collect();
    let memory_type = part.memory_type.or_else(|| {
        let first = part.units[ordered[0]].clustering_type();
        ordered.iter().all(|&u| part.units[u].clustering_type() == first).then_some(first).flatten()
    });
    let cluster = Cluster {
        id: cluster_id(&members),
        members,
        representative: part.units[lead].id,
        cohesion: (total / pair_count as f64) as f32,
        memory_type,
    };
    (cluster, ordered)
}
