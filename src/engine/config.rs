//! The planner's own settings (not per-job options): where the ANN path starts, which clusters
//! get a synthesis, and when a synthesis needs review.

use crate::engine::similarity::ann::AnnParams;

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// A partition of at least this many nodes uses the ANN path in a full run; smaller ones the
    /// exact product, which is faster there (measured: 17 000 nodes, exact 4 s, HNSW 9 s).
    pub ann_min_candidates: usize,
    /// Clusters of at least this many original memories also get a synthesis memory.
    pub synthesis_min_cluster: usize,
    /// A synthesis below this confidence is stored with needs_review.
    pub review_confidence: f32,
    pub ann: AnnParams,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ann_min_candidates: 50_000,
            synthesis_min_cluster: 3,
            review_confidence: 0.80,
            ann: AnnParams::default(),
        }
    }
}
