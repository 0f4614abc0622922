//! Approximate candidate pairs for large partitions: vectors are reduced by a seeded Gaussian
//! random projection, indexed with HNSW (hnsw_rs), and every proposed pair is then verified
//! against the full vectors, so a reported pair is always exact; only recall is approximate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use ndarray::{Array2, ArrayView2};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::engine::similarity::{ScoredPair, UnitMatrix, dot};

/// Tuning of the ANN path. Measured with `consolidator bench engine` (seed 42, 1536 dims, 2 cores):
/// 20 000 memories, recall 1.0 of above-threshold pairs; 100 000 memories, 9 233 of the 9 239
/// true clusters found in 29 s (12 connections / ef 32 found 9 026; 24 / 80 found all in 138 s).
#[derive(Debug, Clone, PartialEq)]
pub struct AnnParams {
    /// Dimensions after random projection: distances in HNSW cost this much instead of `dim`.
    pub projection_dim: usize,
    pub max_connections: usize,
    pub ef_construction: usize,
    /// Neighbours asked for per memory: bounds how large a near-duplicate group is fully found.
    pub neighbours: usize,
    pub ef_search: usize,
    /// Projected similarity may undershoot the true one; proposals down to threshold - margin
    /// are verified exactly.
    pub projected_margin: f32,
    pub seed: u64,
}

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams {
            projection_dim: 128,
            max_connections: 16,
            ef_construction: 48,
            neighbours: 16,
            ef_search: 64,
            projected_margin: 0.25,
            seed: 0x5eed_c0de,
        }
    }
}

/// Cosine distance over unit vectors, clamped at zero: rounding can push a dot product of a
/// vector with itself past 1.0, which the stock `DistDot` asserts against.
#[derive(Debug, Clone, Copy, Default)]
struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

const HNSW_MAX_LAYERS: usize = 16;

/// The rows reduced to `k` dimensions by a Gaussian random projection seeded with `seed`, each
/// normalized again (the cosine of two normalized projections estimates the original cosine
/// with a spread of about (1 - cos²) / sqrt(k)).
pub fn project(matrix: &UnitMatrix, k: usize, seed: u64) -> UnitMatrix {
    let k = k.min(matrix.dim);
    let projection = projection_matrix(matrix.dim, k, seed);
    let data = matrix.data();
    let view = ArrayView2::from_shape((matrix.len(), matrix.dim), data.as_ref())
        .unwrap_or_else(|_| unreachable!("matrix data is rows * dim by construction"));
    let reduced = view.dot(projection.as_ref());
    let mut data = Vec::with_capacity(matrix.len() * k);
    for row in reduced.rows() {
        let row: Vec<f32> = row.iter().copied().collect();
        // A zero projection is astronomically unlikely; a zero row simply finds no neighbours.
        data.extend(UnitMatrix::normalize(&row, k).unwrap_or(row));
    }
    UnitMatrix::from_data(data, k)
}

/// Projection matrices by (dim, k, seed).
type Drawn = HashMap<(usize, usize, u64), Arc<Array2<f32>>>;

/// The Gaussian projection matrix for (dim, k, seed), drawn once per process: drawing a
/// 1536 x 256 matrix costs more than projecting a thousand rows with it.
fn projection_matrix(dim: usize, k: usize, seed: u64) -> Arc<Array2<f32>> {
    static DRAWN: OnceLock<Mutex<Drawn>> = OnceLock::new();
    let draw = || {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Arc::new(Array2::from_shape_fn((dim, k), |_| gaussian(&mut rng)))
    };
    let Ok(mut drawn) = DRAWN.get_or_init(Default::default).lock() else {
        return draw();
    };
    drawn.entry((dim, k, seed)).or_insert_with(draw).clone()
}

/// Standard normal draw (Box-Muller).
pub fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let radius: f64 = (-2.0 * u1.ln()).sqrt();
    let u2: f64 = rng.random::<f64>();
    (radius * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Above-threshold pairs proposed by HNSW and verified exactly, sorted by (a, b).
pub fn approximate_pairs(matrix: &UnitMatrix, threshold: f32, params: &AnnParams) -> Vec<ScoredPair> {
    let n = matrix.len();
    if n < 2 {
        return Vec::new();
    }
    let reduced = project(matrix, params.projection_dim, params.seed);
    let index: Hnsw<'_, f32, UnitCosine> =
        Hnsw::new(params.max_connections, n, HNSW_MAX_LAYERS, params.ef_construction, UnitCosine);
    let items: Vec<(&[f32], usize)> = (0..n).map(|i| (reduced.row(i), i)).collect();
    index.parallel_insert_slice(&items);
    let floor = threshold - params.projected_margin;
    let k = params.neighbours.min(n - 1) + 1;
    let mut pairs: Vec<ScoredPair> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            index
                .search(reduced.row(i), k, params.ef_search.max(k))
                .into_iter()
                .filter_map(move |neighbour| {
                    let j = neighbour.d_id;
                    if j == i || 1.0 - neighbour.distance < floor {
                        return None;
                    }
                    let similarity = matrix.similarity(i, j);
                    (similarity >= threshold).then(|| ScoredPair { a: i.min(j) as u32, b: i.max(j) as u32, similarity })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    pairs.sort_by_key(|p| (p.a, p.b));
    pairs.dedup_by_key(|p| (p.a, p.b));
    pairs
}

/// Share of the exact pairs that the approximate scan also found (1.0 when there are none).
pub fn pair_recall(exact: &[ScoredPair], approximate: &[ScoredPair]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let found: std::collections::HashSet<(u32, u32)> = approximate.iter().map(|p| (p.a, p.b)).collect();
    let hits = exact.iter().filter(|p| found.contains(&(p.a, p.b))).count();
    hits as f64 / exact.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::similarity::exact_pairs;

    fn random_unit(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| gaussian(rng)).collect();
        UnitMatrix::normalize(&v, dim).unwrap()
    }

    #[test]
    fn ann_pairs_are_exact_and_recall_the_planted_near_duplicates() {
        let dim = 256;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut rows = Vec::new();
        for _ in 0..600 {
            let center = random_unit(&mut rng, dim);
            rows.push(center.clone());
            if rows.len() % 3 == 0 {
                let noise = random_unit(&mut rng, dim);
                let twin: Vec<f32> = center.iter().zip(&noise).map(|(c, e)| 0.97 * c + 0.243 * e).collect();
                rows.push(UnitMatrix::normalize(&twin, dim).unwrap());
            }
        }
        let matrix = UnitMatrix::from_rows(rows.iter().map(Vec::as_slice), dim);
        let exact = exact_pairs(&matrix, 0.9);
        let approximate = approximate_pairs(&matrix, 0.9, &AnnParams::default());
        assert!(exact.len() >= 150);
        assert!(approximate.iter().all(|p| p.a < p.b && matrix.similarity(p.a as usize, p.b as usize) >= 0.9));
        assert!(pair_recall(&exact, &approximate) >= 0.99);
    }

    #[test]
    fn recall_counts_the_share_of_exact_pairs_found() {
        let p = |a, b| ScoredPair { a, b, similarity: 0.95 };
        assert_eq!(pair_recall(&[p(0, 1), p(1, 2)], &[p(0, 1)]), 0.5);
        assert_eq!(pair_recall(&[], &[]), 1.0);
    }
}
