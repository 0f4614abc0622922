//! Incremental candidate selection: a job whose base job clustered the same memories with the
//! same options compares only what is new. Every fresh node is scored against every node of its
//! partition; the old nodes it reaches (with the other originals of their consolidated memory)
//! are then scored among themselves, so each group that can contain a fresh node is judged on
//! all of its pairs. A pair the selection leaves out can only keep two memories apart, never
//! put them together: the clique rule is checked on real edges only.

use std::collections::BTreeSet;

use crate::domain::Embedding;
use crate::engine::candidates::partition::Partition;
use crate::engine::similarity::prefilter::prefiltered_cross;
use crate::engine::similarity::{ScoredPair, UnitMatrix, exact_pairs};

fn sub_matrix(part: &Partition<'_>, rows: &[u32]) -> UnitMatrix {
    UnitMatrix::from_rows(rows.iter().map(|&i| part.matrix.row(i as usize)), part.matrix.dim)
}

/// The above-threshold pairs an incremental run needs, sorted by (a, b), `a < b`.
pub fn fresh_pairs(part: &Partition<'_>, threshold: f32) -> Vec<ScoredPair> {
    let fresh: Vec<u32> = (0..part.len() as u32).filter(|&i| part.fresh[i as usize]).collect();
    if fresh.is_empty() {
        return Vec::new();
    }
    let mut pairs: Vec<ScoredPair> = Vec::new();
    let mut reached: BTreeSet<u32> = BTreeSet::new();
    let fresh_embeddings: Vec<Embedding> = fresh.iter().map(|&i| part.embeddings[i as usize].clone()).collect();
    let found =
        prefiltered_cross((&sub_matrix(part, &fresh), &fresh_embeddings), (&part.matrix, &part.embeddings), threshold);
    for (f, j, similarity) in found {
        let (a, b) = (fresh[f as usize], j);
        if a == b || (part.fresh[b as usize] && b < a) {
            continue;
        }
        if !part.fresh[b as usize] {
            reached.insert(b);
        }
        pairs.push(ScoredPair { a: a.min(b), b: a.max(b), similarity });
    }
    let old: Vec<u32> = reached
        .iter()
        .flat_map(|&node| part.nodes_of[part.unit_of[node as usize] as usize].iter().copied())
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    for pair in exact_pairs(&sub_matrix(part, &old), threshold) {
        let (a, b) = (old[pair.a as usize], old[pair.b as usize]);
        // Pairs inside one consolidated memory's originals hold it together already.
        if part.unit_of[a as usize] != part.unit_of[b as usize] {
            pairs.push(ScoredPair { a: a.min(b), b: a.max(b), similarity: pair.similarity });
        }
    }
    pairs.sort_by_key(|p| (p.a, p.b));
    pairs.dedup_by_key(|p| (p.a, p.b));
    pairs
}
