//! Cosine similarity over unit vectors: the exact blocked all-pairs scan (matrix multiplication
//! through ndarray/matrixmultiply) and the scalar kernels shared with the ANN path.

pub mod ann;
pub mod prefilter;

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use rayon::prelude::*;

/// Rows per block of the all-pairs scan: a 512 x 512 block of similarities is 1 MiB, so the scan
/// never holds more than a few blocks per thread whatever the number of memories.
pub const BLOCK_ROWS: usize = 512;

/// A pair of row indices (`a < b`) and their cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub a: u32,
    pub b: u32,
    pub similarity: f32,
}

/// A matrix of unit-norm vectors, one per row: contiguous (row-major), or rows shared with the
/// worker's cache, which are never copied unless a product needs the whole matrix at once.
#[derive(Debug, Clone)]
pub struct UnitMatrix {
    pub dim: usize,
    rows: Rows,
}

#[derive(Debug, Clone)]
enum Rows {
    Contiguous(Vec<f32>),
    Shared(Vec<Arc<[f32]>>),
}

impl UnitMatrix {
    /// Normalizes each vector. Returns `None` for a vector with a wrong length, a non-finite
    /// value or zero norm, so the caller can leave that memory out.
    pub fn normalize(vector: &[f32], dim: usize) -> Option<Vec<f32>> {
        if vector.len() != dim || vector.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let norm = dot(vector, vector).sqrt();
        if norm <= f32::EPSILON {
            return None;
        }
        Some(vector.iter().map(|x| x / norm).collect())
    }

    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a [f32]>, dim: usize) -> UnitMatrix {
        let rows = rows.into_iter();
        let mut data = Vec::with_capacity(rows.size_hint().0 * dim);
        for row in rows {
            data.extend_from_slice(row);
        }
        UnitMatrix { dim, rows: Rows::Contiguous(data) }
    }

    /// Row-major `data` of unit rows of `dim` values each.
    pub fn from_data(data: Vec<f32>, dim: usize) -> UnitMatrix {
        UnitMatrix { dim, rows: Rows::Contiguous(data) }
    }

    /// Unit rows of `dim` values each, shared rather than copied.
    pub fn from_shared(rows: Vec<Arc<[f32]>>, dim: usize) -> UnitMatrix {
        UnitMatrix { dim, rows: Rows::Shared(rows) }
    }

    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Contiguous(data) => data.len().checked_div(self.dim).unwrap_or(0),
            Rows::Shared(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        match &self.rows {
            Rows::Contiguous(data) => &data[i * self.dim..(i + 1) * self.dim],
            Rows::Shared(rows) => &rows[i],
        }
    }

    pub fn similarity(&self, a: usize, b: usize) -> f32 {
        dot(self.row(a), self.row(b))
    }

    /// The rows in one row-major slice: borrowed when contiguous, else copied once.
    pub fn data(&self) -> Cow<'_, [f32]> {
        match &self.rows {
            Rows::Contiguous(data) => Cow::Borrowed(data),
            Rows::Shared(rows) => Cow::Owned(rows.iter().flat_map(|row| row.iter().copied()).collect()),
        }
    }

    /// The matrix with its rows in one slice, for products over all of it (each block is then
    /// read many times): itself when contiguous, else a copy.
    pub fn contiguous(&self) -> Cow<'_, UnitMatrix> {
        match &self.rows {
            Rows::Contiguous(_) => Cow::Borrowed(self),
            Rows::Shared(_) => Cow::Owned(UnitMatrix::from_data(self.data().into_owned(), self.dim)),
        }
    }

    /// Rows `start..end` as a matrix view; shared rows are gathered into a block of their own.
    fn block(&self, start: usize, end: usize) -> CowArray<'_, f32, Ix2> {
        match &self.rows {
            Rows::Contiguous(data) => {
                let slice = &data[start * self.dim..end * self.dim];
                CowArray::from(
                    ArrayView2::from_shape((end - start, self.dim), slice)
                        .unwrap_or_else(|_| unreachable!("slice length is rows * dim by construction")),
                )
            }
            Rows::Shared(rows) => {
                let mut block = Array2::zeros((end - start, self.dim));
                for (mut target, row) in block.rows_mut().into_iter().zip(&rows[start..end]) {
                    target
                        .as_slice_mut()
                        .unwrap_or_else(|| unreachable!("a fresh array is standard layout"))
                        .copy_from_slice(row);
                }
                CowArray::from(block)
            }
        }
    }
}

/// Dot product with eight independent accumulators so the compiler can vectorize it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Every pair with similarity >= `threshold`, exactly, sorted by (a, b). Only blocks on or above
/// the diagonal are multiplied, in parallel, and each block is reduced to its pairs at once.
pub fn exact_pairs(matrix: &UnitMatrix, threshold: f32) -> Vec<ScoredPair> {
    let matrix = matrix.contiguous();
    let n = matrix.len();
    let blocks = n.div_ceil(BLOCK_ROWS);
    let tiles: Vec<(usize, usize)> = (0..blocks).flat_map(|i| (i..blocks).map(move |j| (i, j))).collect();
    let mut pairs: Vec<ScoredPair> = tiles
        .par_iter()
        .flat_map_iter(|&(bi, bj)| {
            let (a0, a1) = (bi * BLOCK_ROWS, ((bi + 1) * BLOCK_ROWS).min(n));
            let (b0, b1) = (bj * BLOCK_ROWS, ((bj + 1) * BLOCK_ROWS).min(n));
            let product = matrix.block(a0, a1).dot(&matrix.block(b0, b1).t());
            let mut found = Vec::new();
            for (r, row) in product.rows().into_iter().enumerate() {
                let a = a0 + r;
                let first = if bi == bj { r + 1 } else { 0 };
                for (c, &s) in row.iter().enumerate().skip(first) {
                    if s >= threshold {
                        found.push(ScoredPair { a: a as u32, b: (b0 + c) as u32, similarity: s });
                    }
                }
            }
            found
        })
        .collect();
    pairs.sort_by_key(|p| (p.a, p.b));
    pairs
}

/// Every (row of `left`, row of `right`, similarity) with similarity >= `threshold`, exactly,
/// sorted. `right` is scanned in blocks in parallel, so memory stays bounded by the block size.
pub fn cross_pairs(left: &UnitMatrix, right: &UnitMatrix, threshold: f32) -> Vec<(u32, u32, f32)> {
    let (n, m) = (left.len(), right.len());
    if n == 0 || m == 0 {
        return Vec::new();
    }
    // Each right block is gathered once per left block: worth it only while the left side is a
    // block or two (new memories against a store), else the right side is copied once.
    let left = left.contiguous();
    let right = if n > 2 * BLOCK_ROWS { right.contiguous() } else { Cow::Borrowed(right) };
    let tiles: Vec<(usize, usize)> =
        (0..n.div_ceil(BLOCK_ROWS)).flat_map(|i| (0..m.div_ceil(BLOCK_ROWS)).map(move |j| (i, j))).collect();
    let mut found: Vec<(u32, u32, f32)> = tiles
        .par_iter()
        .flat_map_iter(|&(bi, bj)| {
            let (a0, a1) = (bi * BLOCK_ROWS, ((bi + 1) * BLOCK_ROWS).min(n));
            let (b0, b1) = (bj * BLOCK_ROWS, ((bj + 1) * BLOCK_ROWS).min(m));
            let product = left.block(a0, a1).dot(&right.block(b0, b1).t());
            let mut out = Vec::new();
            for (r, row) in product.rows().into_iter().enumerate() {
                for (c, &s) in row.iter().enumerate() {
                    if s >= threshold {
                        out.push(((a0 + r) as u32, (b0 + c) as u32, s));
                    }
                }
            }
            out
        })
        .collect();
    found.sort_by_key(|&(a, b, _)| (a, b));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        UnitMatrix::normalize(v, v.len()).unwrap()
    }

    #[test]
    fn normalize_rejects_wrong_length_nan_and_zero_vectors() {
        assert!(UnitMatrix::normalize(&[1.0, 2.0], 3).is_none());
        assert!(UnitMatrix::normalize(&[f32::NAN, 1.0], 2).is_none());
        assert!(UnitMatrix::normalize(&[0.0, 0.0], 2).is_none());
        let v = UnitMatrix::normalize(&[3.0, 4.0], 2).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn shared_rows_give_the_products_contiguous_rows_give() {
        let rows: Vec<Vec<f32>> = (0..2 * BLOCK_ROWS + 9)
            .map(|i| unit(&[(i % 7) as f32 + 1.0, (i % 5) as f32, (i % 3) as f32, 1.0]))
            .collect();
        let contiguous = UnitMatrix::from_rows(rows.iter().map(Vec::as_slice), 4);
        let shared = UnitMatrix::from_shared(rows.iter().map(|r| Arc::from(r.as_slice())).collect(), 4);
        assert_eq!(shared.len(), contiguous.len());
        assert_eq!(shared.row(BLOCK_ROWS + 3), contiguous.row(BLOCK_ROWS + 3));
        assert_eq!(exact_pairs(&shared, 0.99), exact_pairs(&contiguous, 0.99));
        let left = UnitMatrix::from_rows(rows[..20].iter().map(Vec::as_slice), 4);
        assert_eq!(cross_pairs(&left, &shared, 0.99), cross_pairs(&left, &contiguous, 0.99));
        assert!(!cross_pairs(&left, &shared, 0.99).is_empty());
        assert_eq!(shared.data().as_ref(), contiguous.data().as_ref());
    }

    #[test]
    fn dot_matches_a_naive_sum_including_the_tail() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn blocked_scan_finds_exactly_the_pairs_a_naive_scan_finds() {
        // More rows than one block, so off-diagonal tiles and tile edges are exercised.
        let n = BLOCK_ROWS + 37;
        let dim = 8;
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                let group = (i % 50) as f32;
                unit(
                    &(0..dim)
                        .map(|k| ((group + 1.0) * (k as f32 + 1.0)).sin() + 0.01 * ((i * 7 + k) % 5) as f32)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let matrix = UnitMatrix::from_rows(rows.iter().map(Vec::as_slice), dim);
        let pairs = exact_pairs(&matrix, 0.98);
        let mut naive = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if dot(&rows[a], &rows[b]) >= 0.98 {
                    naive.push((a as u32, b as u32));
                }
            }
        }
        let found: Vec<(u32, u32)> = pairs.iter().map(|p| (p.a, p.b)).collect();
        assert!(!naive.is_empty());
        assert_eq!(found.len(), naive.len());
        let mismatches = found.iter().zip(&naive).filter(|(x, y)| x != y).count();
        // Blocked and naive sums may round differently right at the threshold.
        assert!(mismatches <= naive.len() / 1000, "{mismatches} mismatches");
    }
}
