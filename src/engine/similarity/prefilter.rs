//! Exact above-threshold pairs at a sixth of the cost for high-dimensional embeddings: the
//! all-pairs product runs on a random projection to `PREFILTER_DIM` dimensions, and every pair it
//! proposes above a safety margin is verified on the full vectors. A reported pair is always
//! exact; a true pair is missed only when its projected cosine undershoots by more than
//! `PREFILTER_SIGMAS` standard deviations.

use crate::engine::similarity::ann::project;
use crate::engine::similarity::{ScoredPair, UnitMatrix, exact_pairs};

pub const PREFILTER_DIM: usize = 256;
/// The margin below the threshold, in standard deviations of the projected cosine.
const PREFILTER_SIGMAS: f32 = 6.0;
/// Below this threshold the margin grows so wide that the prefilter proposes too much.
const PREFILTER_MIN_THRESHOLD: f32 = 0.8;
/// Below this many rows projecting costs more than it saves.
const PREFILTER_MIN_ROWS: usize = 4 * PREFILTER_DIM;
const PREFILTER_SEED: u64 = 0x00c0_51de_0f11_7e25;

/// Every pair with cosine >= `threshold`, sorted by (a, b); through the projection when the
/// vectors have at least twice its dimensions, otherwise by the exact product directly.
pub fn prefiltered_pairs(matrix: &UnitMatrix, threshold: f32) -> Vec<ScoredPair> {
    if matrix.dim < 2 * PREFILTER_DIM || threshold < PREFILTER_MIN_THRESHOLD || matrix.len() < PREFILTER_MIN_ROWS {
        return exact_pairs(matrix, threshold);
    }
    let reduced = project(matrix, PREFILTER_DIM, PREFILTER_SEED);
    let margin = PREFILTER_SIGMAS * (1.0 - threshold * threshold) / (PREFILTER_DIM as f32).sqrt();
    exact_pairs(&reduced, threshold - margin)
        .into_iter()
        .filter_map(|p| {
            let similarity = matrix.similarity(p.a as usize, p.b as usize);
            (similarity >= threshold).then_some(ScoredPair { similarity, ..p })
        })
        .collect()
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
    fn low_dimensions_and_low_thresholds_use_the_exact_product() {
        let matrix = UnitMatrix::from_rows([[1.0f32, 0.0].as_slice(), [0.8, 0.6].as_slice()], 2);
        assert_eq!(prefiltered_pairs(&matrix, 0.75).len(), 1);
        let wide: Vec<Vec<f32>> = (0..3).map(|i| (0..1536).map(|k| ((i * 7 + k) % 5) as f32 + 1.0).collect()).collect();
        let few = UnitMatrix::from_rows(wide.iter().map(Vec::as_slice), 1536);
        assert_eq!(prefiltered_pairs(&few, 0.5), exact_pairs(&few, 0.5), "a few rows are not worth projecting");
    }
}
