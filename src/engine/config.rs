//! The planner's own settings (not per-job options): where the ANN path starts, which clusters
//! get a synthesis, how topics are found, and when a synthesis needs review.

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
    /// Topic members are linked below the merge threshold by at most this much...
    pub topic_band: f32,
    /// ...and this much further when they share a tag or a file.
    pub topic_shared_band: f32,
    /// Members (merge clusters or single memories) of one topic at most.
    pub topic_max_members: usize,
    /// Up to this many nodes, the topic search starts from every unit (incremental runs too).
    pub topic_all_seeds_max: usize,
    /// Multiply-adds the topic search may spend per plan.
    pub topic_search_budget: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ann_min_candidates: 50_000,
            synthesis_min_cluster: 3,
            review_confidence: 0.80,
            ann: AnnParams::default(),
            topic_band: 0.22,
            topic_shared_band: 0.05,
            topic_max_members: 6,
            topic_all_seeds_max: 4096,
            topic_search_budget: 4_000_000_000,
        }
    }
}
