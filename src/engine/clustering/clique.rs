//! Clique clustering: every pair inside a cluster is above the threshold. Complete-linkage
//! agglomeration in descending linkage order builds the cliques, then a local pass moves single
//! members to the clique where they complete more pairs than they leave behind.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use uuid::Uuid;

use crate::engine::similarity::ScoredPair;

/// Namespace of cluster ids (uuid v5 over the sorted member ids).
const CLUSTER_NAMESPACE: Uuid = Uuid::from_u128(0x6c0e_7a1d_3b8f_4c52_9e0a_1f2d_3c4b_5a69);

/// Passes of the member-moving refinement; each pass strictly increases the number of
/// above-threshold pairs kept together, so it converges, usually in one or two passes.
const MAX_REFINEMENT_PASSES: usize = 8;

pub fn cluster_id(sorted_members: &[Uuid]) -> String {
    let bytes: Vec<u8> = sorted_members.iter().flat_map(|id| *id.as_bytes()).collect();
    Uuid::new_v5(&CLUSTER_NAMESPACE, &bytes).simple().to_string()
}

/// Sparse symmetric graph of above-threshold pairs.
struct Graph {
    neighbours: Vec<Vec<(u32, f32)>>,
}

impl Graph {
    fn new(n: usize, pairs: &[ScoredPair]) -> Graph {
        let mut neighbours = vec![Vec::new(); n];
        for p in pairs {
            neighbours[p.a as usize].push((p.b, p.similarity));
            neighbours[p.b as usize].push((p.a, p.similarity));
        }
        for list in &mut neighbours {
            list.sort_by_key(|&(j, _)| j);
            list.dedup_by_key(|&mut (j, _)| j);
        }
        Graph { neighbours }
    }

    fn similarity(&self, a: u32, b: u32) -> Option<f32> {
        let list = &self.neighbours[a as usize];
        list.binary_search_by_key(&b, |&(j, _)| j).ok().map(|k| list[k].1)
    }

    /// Minimum similarity across the two groups, or `None` when some cross pair is below the
    /// threshold (not an edge), i.e. merging them would break the clique property.
    fn linkage(&self, left: &[u32], right: &[u32]) -> Option<f32> {
        let mut min = f32::INFINITY;
        for &a in left {
            for &b in right {
                min = min.min(self.similarity(a, b)?);
            }
        }
        Some(min)
    }

    fn adjacent_to_all(&self, v: u32, group: &[u32]) -> bool {
        group.iter().all(|&m| m == v || self.similarity(v, m).is_some())
    }
}

/// Working state: `groups[g]` lists members, `group_of[v]` the group of node v. Every node starts
/// in its own group; an emptied group stays as an empty slot.
struct Partition {
    groups: Vec<Vec<u32>>,
    group_of: Vec<usize>,
    version: Vec<u32>,
    /// Nodes of a locked group never move.
    locked: Vec<bool>,
}

impl Partition {
    fn neighbour_groups(&self, graph: &Graph, g: usize) -> BTreeSet<usize> {
        self.groups[g]
            .iter()
            .flat_map(|&m| graph.neighbours[m as usize].iter())
            .map(|&(j, _)| self.group_of[j as usize])
            .filter(|&h| h != g)
            .collect()
    }
}

/// Groups of at least two nodes (indices into the partition, each sorted) in which every pair is
/// an edge of `pairs`. `locked` groups (each sorted, disjoint) start together and stay together:
/// they are the original sources of a consolidated memory, so a node joins them only when it is
/// an edge with every one of them. The result depends only on the node order, the pairs and the
/// locked groups, so callers that order nodes canonically (by id) get the same groups for any
/// input order.
pub fn clique_groups(n: usize, pairs: &[ScoredPair], locked: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let graph = Graph::new(n, pairs);
    let mut part = Partition {
        groups: (0..n as u32).map(|v| vec![v]).collect(),
        group_of: (0..n).collect(),
        version: vec![0; n],
        locked: vec![false; n],
    };
    for group in locked.iter().filter(|g| g.len() > 1) {
        let home = group[0] as usize;
        for &v in &group[1..] {
            part.groups[v as usize].clear();
            part.group_of[v as usize] = home;
        }
        part.groups[home] = group.clone();
        for &v in group {
            part.locked[v as usize] = true;
        }
    }
    agglomerate(&graph, &mut part, pairs);
    refine(&graph, &mut part);
    let mut groups: Vec<Vec<u32>> = part
        .groups
        .into_iter()
        .filter(|g| g.len() >= 2)
        .map(|mut g| {
            g.sort_unstable();
            g
        })
        .collect();
    groups.sort();
    groups
}

type HeapEntry = (u32, Reverse<(usize, usize)>, u32, u32);

fn agglomerate(graph: &Graph, part: &mut Partition, pairs: &[ScoredPair]) {
    // Similarities are >= the threshold (> 0), so their bit patterns order like the floats.
    // Each pair of starting groups once: a locked group meets a neighbour through many pairs.
    let starting: BTreeSet<(usize, usize)> = pairs
        .iter()
        .map(|p| (part.group_of[p.a as usize], part.group_of[p.b as usize]))
        .filter(|(g, h)| g != h)
        .map(|(g, h)| (g.min(h), g.max(h)))
        .collect();
    let mut heap: BinaryHeap<HeapEntry> = starting
        .into_iter()
        .filter_map(|(g, h)| {
            graph.linkage(&part.groups[g], &part.groups[h]).map(|link| (link.to_bits(), Reverse((g, h)), 0, 0))
        })
        .collect();
    while let Some((_, Reverse((g, h)), vg, vh)) = heap.pop() {
        if part.version[g] != vg || part.version[h] != vh || part.groups[g].is_empty() || part.groups[h].is_empty() {
            continue;
        }
        let moved = std::mem::take(&mut part.groups[h]);
        for &m in &moved {
            part.group_of[m as usize] = g;
        }
        part.groups[g].extend(moved);
        part.version[g] += 1;
        part.version[h] += 1;
        for other in part.neighbour_groups(graph, g) {
            if let Some(link) = graph.linkage(&part.groups[g], &part.groups[other]) {
                let key = (g.min(other), g.max(other));
                let (vk0, vk1) = (part.version[key.0], part.version[key.1]);
                heap.push((link.to_bits(), Reverse(key), vk0, vk1));
            }
        }
    }
}

fn refine(graph: &Graph, part: &mut Partition) {
    for _ in 0..MAX_REFINEMENT_PASSES {
        let mut moved_any = false;
        for v in 0..part.group_of.len() as u32 {
            if part.locked[v as usize] {
                continue;
            }
            let from = part.group_of[v as usize];
            let kept_pairs = part.groups[from].len() - 1;
            let best = neighbour_groups_of_node(graph, part, v)
                .into_iter()
                .filter(|&to| graph.adjacent_to_all(v, &part.groups[to]))
                .map(|to| (part.groups[to].len(), Reverse(to)))
                .filter(|&(gained_pairs, _)| gained_pairs > kept_pairs)
                .max();
            if let Some((_, Reverse(to))) = best {
                part.groups[from].retain(|&m| m != v);
                part.groups[to].push(v);
                part.group_of[v as usize] = to;
                moved_any = true;
            }
        }
        if !moved_any {
            break;
        }
    }
}

fn neighbour_groups_of_node(graph: &Graph, part: &Partition, v: u32) -> BTreeSet<usize> {
    let own = part.group_of[v as usize];
    graph.neighbours[v as usize].iter().map(|&(j, _)| part.group_of[j as usize]).filter(|&g| g != own).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: u32, b: u32, similarity: f32) -> ScoredPair {
        ScoredPair { a, b, similarity }
    }

    #[test]
    fn a_chain_does_not_pull_its_ends_together() {
        // 0~1 and 1~2 above threshold, 0~2 not: only the stronger pair clusters.
        let groups = clique_groups(3, &[pair(0, 1, 0.91), pair(1, 2, 0.92)], &[]);
        assert_eq!(groups, vec![vec![1, 2]]);
    }

    #[test]
    fn a_full_clique_becomes_one_group() {
        let pairs = [pair(0, 1, 0.95), pair(0, 2, 0.93), pair(1, 2, 0.94), pair(2, 3, 0.91)];
        assert_eq!(clique_groups(4, &pairs, &[]), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn refinement_moves_a_member_to_where_it_completes_more_pairs() {
        // Node 0 pairs first with 1 (highest similarity); but 0 is adjacent to all of {2,3,4},
        // a larger clique that 1 cannot join: moving 0 there keeps 3 pairs instead of 1.
        let pairs = [
            pair(0, 1, 0.99),
            pair(0, 2, 0.95),
            pair(0, 3, 0.95),
            pair(0, 4, 0.95),
            pair(2, 3, 0.97),
            pair(2, 4, 0.97),
            pair(3, 4, 0.97),
        ];
        assert_eq!(clique_groups(5, &pairs, &[]), vec![vec![0, 2, 3, 4]]);
    }

    #[test]
    fn a_node_joins_a_locked_group_only_when_it_is_an_edge_with_every_member() {
        // {0,1} are the originals of a consolidated memory. 2 is close to both and joins; 3 is
        // close to 0 only and stays out, even though 0~3 is the strongest pair.
        let pairs = [pair(0, 1, 0.95), pair(0, 2, 0.92), pair(1, 2, 0.93), pair(0, 3, 0.99)];
        assert_eq!(clique_groups(4, &pairs, &[vec![0, 1]]), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn locked_members_never_move_to_another_group() {
        // 1 would complete more pairs with {2,3,4}, but it belongs to the locked group {0,1}.
        let pairs = [
            pair(0, 1, 0.91),
            pair(1, 2, 0.99),
            pair(1, 3, 0.99),
            pair(1, 4, 0.99),
            pair(2, 3, 0.97),
            pair(2, 4, 0.97),
            pair(3, 4, 0.97),
        ];
        assert_eq!(clique_groups(5, &pairs, &[vec![0, 1]]), vec![vec![0, 1], vec![2, 3, 4]]);
    }

    #[test]
    fn two_locked_groups_fold_together_only_when_every_cross_pair_is_an_edge() {
        let full = [
            pair(0, 1, 0.95),
            pair(2, 3, 0.95),
            pair(0, 2, 0.93),
            pair(0, 3, 0.92),
            pair(1, 2, 0.94),
            pair(1, 3, 0.91),
        ];
        assert_eq!(clique_groups(4, &full, &[vec![0, 1], vec![2, 3]]), vec![vec![0, 1, 2, 3]]);
        let missing = &full[..5];
        assert_eq!(clique_groups(4, missing, &[vec![0, 1], vec![2, 3]]), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn cluster_ids_depend_only_on_the_member_set() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(cluster_id(&[a, b]), cluster_id(&[a, b]));
        assert_ne!(cluster_id(&[a, b]), cluster_id(&[a]));
        assert_eq!(cluster_id(&[a, b]).len(), 32);
    }
}
