//! Exact above-threshold pairs at a sixth of the cost for high-dimensional embeddings: the
//! all-pairs product runs on a random projection to `PREFILTER_DIM` dimensions, and every pair it
//! proposes above a safety margin is verified on the full vectors. A reported pair is always
//! exact; a true pair is missed only when its projected cosine undershoots by more than
//! `PREFILTER_SIGMAS` standard deviations.

use crate::domain::Embedding;
use crate::engine::similarity::ann::project;
use crate::engine::similarity::{ScoredPair, UnitMatrix, cross_pairs, dot, exact_pairs};

pub const PREFILTER_DIM: usize = 256;
/// The margin below the threshold, in standard deviations of the projected cosine.
const PREFILTER_SIGMAS: f32 = 6.0;
/// Below this threshold the margin grows so wide that the prefilter proposes too much.
const PREFILTER_MIN_THRESHOLD: f32 = 0.8;
/// The same for a few rows against many (new memories or topic seeds against a store): every
/// proposal costs one exact product, so a wider margin still pays down to here.
const CROSS_MIN_THRESHOLD: f32 = 0.6;
/// Below this many rows projecting costs more than it saves.
const PREFILTER_MIN_ROWS: usize = 4 * PREFILTER_DIM;
const PREFILTER_SEED: u64 = 0x00c0_51de_0f11_7e25;

/// Rows projected per batch when reduced forms are computed: bounds the copy they need.
const REDUCE_BATCH: usize = 8192;

/// Whether projecting pays: vectors with at least twice the projection's dimensions, a
/// threshold high enough for a narrow margin (`min_threshold`), and enough rows on the side that
/// is scanned.
fn worth(dim: usize, threshold: f32, min_threshold: f32, rows: usize) -> bool {
    dim >= 2 * PREFILTER_DIM && threshold >= min_threshold && rows >= PREFILTER_MIN_ROWS
}

/// The cosine of two projections a true pair at `threshold` stays above (but for 6 sigmas).
fn floor(threshold: f32) -> f32 {
    threshold - PREFILTER_SIGMAS * (1.0 - threshold * threshold) / (PREFILTER_DIM as f32).sqrt()
}

/// Every pair with cosine >= `threshold`, sorted by (a, b); through the projection when the
/// vectors have at least twice its dimensions, otherwise by the exact product directly.
pub fn prefiltered_pairs(matrix: &UnitMatrix, threshold: f32) -> Vec<ScoredPair> {
    pairs_with(matrix, threshold, || project(matrix, PREFILTER_DIM, PREFILTER_SEED))
}

/// `prefiltered_pairs` of the unit vectors `embeddings` (the rows of `matrix`), whose reduced
/// forms are computed once and kept with them.
pub fn prefiltered_pairs_of(matrix: &UnitMatrix, embeddings: &[Embedding], threshold: f32) -> Vec<ScoredPair> {
    pairs_with(matrix, threshold, || reduced(embeddings, matrix.dim))
}

fn pairs_with(matrix: &UnitMatrix, threshold: f32, reduce: impl FnOnce() -> UnitMatrix) -> Vec<ScoredPair> {
    if !worth(matrix.dim, threshold, PREFILTER_MIN_THRESHOLD, matrix.len()) {
        return exact_pairs(matrix, threshold);
    }
    exact_pairs(&reduce(), floor(threshold))
        .into_iter()
        .filter_map(|p| {
            let similarity = matrix.similarity(p.a as usize, p.b as usize);
            (similarity >= threshold).then_some(ScoredPair { similarity, ..p })
        })
        .collect()
}

/// Every (row of `left`, row of `right`, cosine) with cosine >= `threshold`, sorted, as
/// `cross_pairs` finds them, through the reduced forms of both sides' embeddings (the rows of
/// `left` and `right`) when that pays.
pub fn prefiltered_cross(
    (left, left_embeddings): (&UnitMatrix, &[Embedding]),
    (right, right_embeddings): (&UnitMatrix, &[Embedding]),
    threshold: f32,
) -> Vec<(u32, u32, f32)> {
    if !worth(left.dim, threshold, CROSS_MIN_THRESHOLD, right.len()) {
        return cross_pairs(left, right, threshold);
    }
    let (left_reduced, right_reduced) = (reduced(left_embeddings, left.dim), reduced(right_embeddings, right.dim));
    cross_pairs(&left_reduced, &right_reduced, floor(threshold))
        .into_iter()
        .filter_map(|(a, b, _)| {
            let similarity = dot(left.row(a as usize), right.row(b as usize));
            (similarity >= threshold).then_some((a, b, similarity))
        })
        .collect()
}

/// The reduced forms of `embeddings` (unit vectors of `dim` values) as a matrix: those not
/// computed yet are projected in batches and kept with their embeddings.
pub fn reduced(embeddings: &[Embedding], dim: usize) -> UnitMatrix {
    let missing: Vec<&Embedding> = embeddings.iter().filter(|e| e.reduced().is_none()).collect();
    for batch in missing.chunks(REDUCE_BATCH) {
        let rows = UnitMatrix::from_rows(batch.iter().map(|e| &***e), dim);
        let projected = project(&rows, PREFILTER_DIM, PREFILTER_SEED);
        for (i, e) in batch.iter().enumerate() {
            e.set_reduced(projected.row(i).into());
        }
    }
    let rows = embeddings
        .iter()
        .map(|e| e.reduced().unwrap_or_else(|| unreachable!("every reduced form was set above")))
        .collect();
    UnitMatrix::from_shared(rows, PREFILTER_DIM.min(dim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::generate;

    #[test]
    fn the_prefilter_finds_exactly_the_pairs_of_the_full_product_on_realistic_embeddings() {
        let (snapshot, _) = generate(3_000, 1536, 7);
        let rows: Vec<Vec<f32>> = snapshot
            .memories
            .iter()
            .filter_map(|m| m.embedding.as_deref().and_then(|e| UnitMatrix::normalize(e, 1536)))
            .collect();
        let matrix = UnitMatrix::from_rows(rows.iter().map(Vec::as_slice), 1536);
        let exact: Vec<(u32, u32)> = exact_pairs(&matrix, 0.9).iter().map(|p| (p.a, p.b)).collect();
        let filtered: Vec<(u32, u32)> = prefiltered_pairs(&matrix, 0.9).iter().map(|p| (p.a, p.b)).collect();
        assert!(exact.len() > 500, "fixture: {} pairs", exact.len());
        assert_eq!(filtered, exact);
    }

    #[test]
    fn the_cross_prefilter_finds_what_the_full_cross_product_finds_and_keeps_the_reduced_forms() {
        let (snapshot, _) = generate(3_000, 1536, 11);
        let embeddings: Vec<Embedding> =
            snapshot.memories.iter().filter_map(|m| m.embedding.as_deref().and_then(Embedding::normalized)).collect();
        let all = UnitMatrix::from_shared(embeddings.iter().map(Embedding::shared).collect(), 1536);
        let left = UnitMatrix::from_rows(embeddings[..300].iter().map(|e| &**e), 1536);
        for threshold in [0.9, 0.65] {
            let exact: Vec<(u32, u32)> = cross_pairs(&left, &all, threshold).iter().map(|&(a, b, _)| (a, b)).collect();
            let filtered: Vec<(u32, u32)> =
                prefiltered_cross((&left, &embeddings[..300]), (&all, &embeddings), threshold)
                    .iter()
                    .map(|&(a, b, _)| (a, b))
                    .collect();
            assert!(exact.len() > 300, "fixture at {threshold}: {} pairs", exact.len());
            assert_eq!(filtered, exact, "at {threshold}");
        }
        assert!(embeddings.iter().all(|e| e.reduced().is_some()), "each vector keeps its reduced form");
        let kept = embeddings[0].reduced();
        let again = reduced(&embeddings[..1], 1536);
        assert!(std::sync::Arc::ptr_eq(&kept.unwrap(), &embeddings[0].reduced().unwrap()), "not computed twice");
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn low_dimensions_and_low_thresholds_use_the_exact_product() {
        let matrix = UnitMatrix::from_rows([[1.0f32, 0.0].as_slice(), [0.8, 0.6].as_slice()], 2);
        assert_eq!(prefiltered_pairs(&matrix, 0.75).len(), 1);
        let wide: Vec<Vec<f32>> = (0..3).map(|i| (0..1536).map(|k| ((i * 7 + k) % 5) as f32 + 1.0).collect()).collect();
        let few = UnitMatrix::from_rows(wide.iter().map(Vec::as_slice), 1536);
        assert_eq!(prefiltered_pairs(&few, 0.5), exact_pairs(&few, 0.5), "a few rows are not worth projecting");
    }
}
