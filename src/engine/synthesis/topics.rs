//! Topics: groups of related active memories that are not duplicates. A member is what the store
//! holds after the plan: a merge cluster (its consolidated memory) or one unit. Two members are
//! linked when the mean similarity of their original memories lies in a band below the merge
//! threshold (`topic_band`), or a little lower (`topic_shared_band`) when they share a tag or a
//! file. A topic is complete-linkage: every two of its members are linked, so a topic never
//! chains from one subject to the next.
//!
//! Links are searched from *seeds*: the plan's merge clusters, the units new or changed since the
//! base job, and the members of syntheses that must be rebuilt; in a small project (up to
//! `topic_all_seeds_max` nodes), every unit, so that an incremental run finds what a full one does. The search costs seeds x nodes x dimension multiply-adds; past `topic_search_budget`
//! it keeps the seeds that fit (merge clusters first) and says so in a warning.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use uuid::Uuid;

use crate::domain::{Embedding, Options, ProjectSnapshot};
use crate::engine::candidates::partition::Partition;
use crate::engine::clustering::Found;
use crate::engine::config::EngineConfig;
use crate::engine::similarity::prefilter::prefiltered_cross;
use crate::engine::similarity::{UnitMatrix, cross_pairs, dot, exact_pairs};

/// A topic member as the clustering step sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    /// A merge cluster: an index into `Clustering::found`.
    Cluster(usize),
    /// One active memory left as it is: partition and unit index.
    Unit { partition: usize, unit: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// `a < b`.
    pub a: Member,
    pub b: Member,
    /// Mean similarity of their original memories.
    pub similarity: f32,
}

/// Where each member's nodes are: its partition and node indices.
pub struct Members<'p, 'a> {
    parts: &'p [Partition<'a>],
    found: &'p [Found],
    /// Per partition, unit index -> the merge cluster holding it.
    cluster_of: Vec<BTreeMap<usize, usize>>,
}

impl<'p, 'a> Members<'p, 'a> {
    /// `merging`: whether the plan merges its clusters (else each unit stays a member).
    pub fn new(parts: &'p [Partition<'a>], found: &'p [Found], merging: bool) -> Self {
        let mut cluster_of = vec![BTreeMap::new(); parts.len()];
        if merging {
            for (index, f) in found.iter().enumerate() {
                for &u in &f.units {
                    cluster_of[f.partition].insert(u, index);
                }
            }
        }
        Members { parts, found, cluster_of }
    }

    pub fn of_unit(&self, partition: usize, unit: usize) -> Member {
        match self.cluster_of[partition].get(&unit) {
            Some(&index) => Member::Cluster(index),
            None => Member::Unit { partition, unit },
        }
    }

    pub fn partition(&self, member: Member) -> usize {
        match member {
            Member::Cluster(index) => self.found[index].partition,
            Member::Unit { partition, .. } => partition,
        }
    }

    pub fn nodes(&self, member: Member) -> Vec<u32> {
        match member {
            Member::Cluster(index) => self.found[index].nodes.iter().map(|&n| n as u32).collect(),
            Member::Unit { partition, unit } => self.parts[partition].nodes_of[unit].clone(),
        }
    }

    /// The active memories (unit indices) the member stands for.
    pub fn units(&self, member: Member) -> Vec<usize> {
        match member {
            Member::Cluster(index) => self.found[index].units.clone(),
            Member::Unit { unit, .. } => vec![unit],
        }
    }

    pub fn rows(&self, member: Member) -> Vec<&[f32]> {
        let matrix = &self.parts[self.partition(member)].matrix;
        self.nodes(member).into_iter().map(|n| matrix.row(n as usize)).collect()
    }

    /// Mean similarity of the two members' original memories.
    pub fn similarity(&self, a: Member, b: Member) -> f32 {
        let (ra, rb) = (self.rows(a), self.rows(b));
        let total: f32 = ra.iter().flat_map(|x| rb.iter().map(move |y| dot(x, y))).sum();
        total / (ra.len() * rb.len()).max(1) as f32
    }

    fn all_units(&self) -> impl Iterator<Item = Member> + '_ {
        self.parts.iter().enumerate().flat_map(move |(p, part)| (0..part.units.len()).map(move |u| self.of_unit(p, u)))
    }
}

/// The lowest similarity any link may have.
pub fn lowest_link(options: &Options, config: &EngineConfig) -> f32 {
    options.similarity_threshold - config.topic_band - config.topic_shared_band
}

/// Every member pair at or above `lowest_link` that a seed takes part in, sorted.
pub fn links(
    snapshot: &ProjectSnapshot,
    members: &Members<'_, '_>,
    reseed: &HashSet<Uuid>,
    options: &Options,
    config: &EngineConfig,
    warnings: &mut Vec<String>,
) -> Vec<Link> {
    let parts = members.parts;
    let total_nodes: usize = parts.iter().map(Partition::len).sum();
    if total_nodes == 0 {
        return Vec::new();
    }
    let mut seeds: BTreeSet<Member> =
        members.found.iter().flat_map(|f| f.units.iter().map(|&u| members.of_unit(f.partition, u))).collect();
    // A small project is searched whole, incremental or not: its topics are the same either way.
    let all = total_nodes <= config.topic_all_seeds_max;
    for member in members.all_units() {
        let Member::Unit { partition, unit } = member else { continue };
        let part = &parts[partition];
        let fresh = snapshot.scope.fresh.is_some() && part.nodes_of[unit].iter().any(|&n| part.fresh[n as usize]);
        if all || fresh || reseed.contains(&part.units[unit].id) {
            seeds.insert(member);
        }
    }
    let dim = parts[0].matrix.dim.max(1);
    let budget_nodes = (config.topic_search_budget / (total_nodes * dim) as u64) as usize;
    let mut kept: Vec<Member> = Vec::new();
    let mut seed_nodes = 0usize;
    for &seed in &seeds {
        let n = members.nodes(seed).len();
        if seed_nodes + n > budget_nodes {
            continue;
        }
        seed_nodes += n;
        kept.push(seed);
    }
    if kept.len() < seeds.len() {
        warnings.push(format!(
            "topic search: {} of {} seeds within the budget of {} multiply-adds; the others wait for a later run",
            kept.len(),
            seeds.len(),
            config.topic_search_budget
        ));
    }
    let low = lowest_link(options, config);
    if all && kept.len() == seeds.len() {
        return scored(members, every_pair(members, low), low);
    }
    let mut candidates = candidate_pairs(members, &kept, None, low);
    // As in an incremental merge search, the members the seeds reach are compared among
    // themselves: a topic is judged on all of its links.
    let seeded: BTreeSet<Member> = kept.iter().copied().collect();
    let reached: Vec<Member> = candidates
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .filter(|m| !seeded.contains(m))
        .collect::<BTreeSet<Member>>()
        .into_iter()
        .collect();
    let reached_nodes: usize = reached.iter().map(|&m| members.nodes(m).len()).sum();
    if (reached_nodes * reached_nodes * dim) as u64 <= config.topic_search_budget {
        candidates.extend(candidate_pairs(members, &reached, Some(&reached), low));
    } else {
        warnings.push(format!(
            "topic search: the {} members the seeds reach were not compared among themselves",
            reached.len()
        ));
    }
    scored(members, candidates, low)
}

fn scored(members: &Members<'_, '_>, candidates: BTreeSet<(Member, Member)>, low: f32) -> Vec<Link> {
    candidates
        .into_iter()
        .map(|(a, b)| Link { a, b, similarity: members.similarity(a, b) })
        .filter(|l| l.similarity >= low)
        .collect()
}

/// Member pairs with a node pair at or above `low`, every member against every other: each
/// partition against itself and the ones after it, so no product is computed twice.
fn every_pair(members: &Members<'_, '_>, low: f32) -> BTreeSet<(Member, Member)> {
    let parts = members.parts;
    let member = |p: usize, node: u32| members.of_unit(p, parts[p].unit_of[node as usize] as usize);
    let mut out = BTreeSet::new();
    for (p, part) in parts.iter().enumerate() {
        let within = exact_pairs(&part.matrix, low).into_iter().map(|pair| (member(p, pair.a), member(p, pair.b)));
        let across = parts.iter().enumerate().skip(p + 1).flat_map(|(q, other)| {
            cross_pairs(&part.matrix, &other.matrix, low).into_iter().map(move |(i, j, _)| (member(p, i), member(q, j)))
        });
        out.extend(within.chain(across).filter(|(a, b)| a != b).map(|(a, b)| (a.min(b), a.max(b))));
    }
    out
}

/// The rows of `chosen` members' nodes in partition `p` (as a matrix and as embeddings), with the
/// member each row belongs to.
fn rows_in(members: &Members<'_, '_>, chosen: &[Member], p: usize) -> (Vec<Member>, UnitMatrix, Vec<Embedding>) {
    let part = &members.parts[p];
    let owners: Vec<(Member, u32)> = chosen
        .iter()
        .filter(|&&m| members.partition(m) == p)
        .flat_map(|&m| members.nodes(m).into_iter().map(move |n| (m, n)))
        .collect();
    let matrix = UnitMatrix::from_rows(owners.iter().map(|&(_, n)| part.matrix.row(n as usize)), part.matrix.dim);
    let embeddings = owners.iter().map(|&(_, n)| part.embeddings[n as usize].clone()).collect();
    (owners.into_iter().map(|(m, _)| m).collect(), matrix, embeddings)
}

/// Member pairs with a node pair at or above `low`: `left` against `right` (every member when
/// `None`).
fn candidate_pairs(
    members: &Members<'_, '_>,
    left: &[Member],
    right: Option<&[Member]>,
    low: f32,
) -> BTreeSet<(Member, Member)> {
    let mut out = BTreeSet::new();
    for p in 0..members.parts.len() {
        let (owners, matrix, embeddings) = rows_in(members, left, p);
        if owners.is_empty() {
            continue;
        }
        for (q, other) in members.parts.iter().enumerate() {
            let found = match right {
                None => prefiltered_cross((&matrix, &embeddings), (&other.matrix, &other.embeddings), low)
                    .into_iter()
                    .map(|(i, j, _)| (owners[i as usize], members.of_unit(q, other.unit_of[j as usize] as usize)))
                    .collect::<Vec<_>>(),
                Some(chosen) => {
                    let (right_owners, right_matrix, right_embeddings) = rows_in(members, chosen, q);
                    prefiltered_cross((&matrix, &embeddings), (&right_matrix, &right_embeddings), low)
                        .into_iter()
                        .map(|(i, j, _)| (owners[i as usize], right_owners[j as usize]))
                        .collect()
                }
            };
            out.extend(found.into_iter().filter(|(a, b)| a != b).map(|(a, b)| (a.min(b), a.max(b))));
        }
    }
    out
}

/// Complete-linkage groups of two or more members over the links `keep` accepts, at most
/// `max_members` each: the strongest link first; two groups join only when every pair across
/// them is linked. `standing` groups (the topics of syntheses that still hold) are where the
/// agglomeration starts, so a topic stays as it is unless it grows. Each group sorted; groups
/// in order of their first member.
pub fn agglomerate(
    links: &[Link],
    keep: impl Fn(&Link) -> bool,
    max_members: usize,
    standing: &[Vec<Member>],
) -> Vec<Vec<Member>> {
    let kept: Vec<&Link> = links.iter().filter(|l| keep(l)).collect();
    let linked: HashSet<(Member, Member)> = kept.iter().map(|l| (l.a, l.b)).collect();
    let mut order = kept.clone();
    order.sort_by(|x, y| y.similarity.total_cmp(&x.similarity).then((x.a, x.b).cmp(&(y.a, y.b))));
    let mut group_of: BTreeMap<Member, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<Member>> = Vec::new();
    for group in standing {
        if group.iter().any(|m| group_of.contains_key(m)) {
            continue;
        }
        for &m in group {
            group_of.insert(m, groups.len());
        }
        groups.push(group.clone());
    }
    for link in order {
        let ga = group_of.get(&link.a).copied();
        let gb = group_of.get(&link.b).copied();
        if ga.is_some() && ga == gb {
            continue;
        }
        let left = ga.map_or_else(|| vec![link.a], |g| groups[g].clone());
        let right = gb.map_or_else(|| vec![link.b], |g| groups[g].clone());
        if left.len() + right.len() > max_members {
            continue;
        }
        let complete = left.iter().all(|&x| right.iter().all(|&y| linked.contains(&(x.min(y), x.max(y)))));
        if !complete {
            continue;
        }
        let target = ga.or(gb).unwrap_or(groups.len());
        if target == groups.len() {
            groups.push(Vec::new());
        }
        let mut joined: Vec<Member> = left.into_iter().chain(right).collect();
        joined.sort_unstable();
        joined.dedup();
        for other in [ga, gb].into_iter().flatten().filter(|&g| g != target) {
            groups[other].clear();
        }
        for &m in &joined {
            group_of.insert(m, target);
        }
        groups[target] = joined;
    }
    let mut groups: Vec<Vec<Member>> = groups.into_iter().filter(|g| g.len() >= 2).collect();
    groups.sort();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(u: usize) -> Member {
        Member::Unit { partition: 0, unit: u }
    }

    fn link(a: usize, b: usize, similarity: f32) -> Link {
        Link { a: unit(a.min(b)), b: unit(a.max(b)), similarity }
    }

    #[test]
    fn a_topic_does_not_chain_and_respects_its_size() {
        // 0~1, 1~2, 0 and 2 unrelated: {0,1} and 2 alone, never {0,1,2}.
        let groups = agglomerate(&[link(0, 1, 0.85), link(1, 2, 0.84)], |_| true, 8, &[]);
        assert_eq!(groups, vec![vec![unit(0), unit(1)]]);
        let triangle = [link(0, 1, 0.85), link(1, 2, 0.84), link(0, 2, 0.83), link(3, 4, 0.9)];
        let all = |_: &Link| true;
        assert_eq!(agglomerate(&triangle, all, 8, &[]), vec![vec![unit(0), unit(1), unit(2)], vec![unit(3), unit(4)]]);
        assert_eq!(agglomerate(&triangle, all, 2, &[]), vec![vec![unit(0), unit(1)], vec![unit(3), unit(4)]]);
        assert!(agglomerate(&triangle, |l| l.similarity > 0.95, 8, &[]).is_empty());
        // A standing topic {1, 2} keeps 1 from the stronger link to 0 (0 is not linked to 3).
        let standing = vec![vec![unit(1), unit(2)]];
        assert_eq!(
            agglomerate(&triangle[..2], all, 8, &standing),
            vec![vec![unit(1), unit(2)], vec![unit(3), unit(4)]][..1]
        );
    }
}
