//! `consolidator bench engine`: plans a synthetic snapshot and reports phase timings, plan
//! sizes, peak resident memory and, on request, the ANN path's recall against the exact scan.

use std::time::Instant;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::MemoryType;
use crate::domain::Options;
use crate::domain::{AppliedMerge, Merge};
use crate::engine::merge::embed::CentroidEmbedder;
use crate::engine::plan::{EngineConfig, plan};
use crate::engine::similarity::ann::{approximate_pairs, pair_recall};
use crate::engine::similarity::{UnitMatrix, exact_pairs};
use crate::engine::synthesis::ExtractiveSynthesizer;
use crate::synthetic::{anchor, generate};

#[derive(Debug, Clone, PartialEq)]
pub struct EngineBenchArgs {
    pub memories: usize,
    pub dim: usize,
    pub seed: u64,
    pub check_recall: bool,
}

pub fn run(args: &EngineBenchArgs) -> Value {
    let t = Instant::now();
    let (snapshot, truth) = generate(args.memories, args.dim, args.seed);
    let generate_ms = t.elapsed().as_secs_f64() * 1000.0;
    let options = Options::default();
    let config = EngineConfig::default();
    let t = Instant::now();
    let result =
        plan(&snapshot, &options, &config, Uuid::from_u128(1), anchor(), &ExtractiveSynthesizer, &CentroidEmbedder);
    let plan_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut report = json!({
        "memories": args.memories,
        "dim": args.dim,
        "seed": args.seed,
        "generate_ms": generate_ms,
        "plan_ms": plan_ms,
        "timings_ms": result.timings_ms,
        "ann_path": args.memories >= config.ann_min_candidates,
        "clusters": result.clusters.len(),
        "merges": result.merges.len(),
        "syntheses": result.syntheses.len(),
        "archives": result.archives.len(),
        "promotions": result.promotions.len(),
        "merge_text": merge_stats(&figures_of(&result.merges)),
        "truth_groups": truth.groups.len(),
        "truth_chains": truth.chains.len(),
        "peak_rss_mib": crate::telemetry::peak_rss_mib(),
    });
    if args.check_recall {
        report["recall"] = recall(&snapshot, &options, &config);
    }
    report
}

/// One merge's text figures, from a plan or from a stored job result.
#[derive(Debug, Clone, Copy)]
pub struct MergeFigures {
    pub coverage: f32,
    pub compression: f32,
    pub length_vs_longest: f32,
}

impl From<&AppliedMerge> for MergeFigures {
    fn from(m: &AppliedMerge) -> Self {
        MergeFigures { coverage: m.coverage, compression: m.compression, length_vs_longest: m.length_vs_longest }
    }
}

impl From<&Merge> for MergeFigures {
    fn from(m: &Merge) -> Self {
        MergeFigures { coverage: m.coverage, compression: m.compression, length_vs_longest: m.length_vs_longest }
    }
}

/// Coverage and compression over merges: min and mean coverage, mean compression, mean and max
/// merged summary length against the longest source summary.
pub fn merge_stats(merges: &[MergeFigures]) -> Value {
    let n = merges.len().max(1) as f64;
    let mean = |f: fn(&MergeFigures) -> f32| merges.iter().map(|m| f64::from(f(m))).sum::<f64>() / n;
    json!({
        "merges": merges.len(),
        "min_coverage": merges.iter().map(|m| m.coverage).fold(1.0f32, f32::min),
        "mean_coverage": mean(|m| m.coverage),
        "mean_compression": mean(|m| m.compression),
        "mean_length_vs_longest": mean(|m| m.length_vs_longest),
        "p90_length_vs_longest": p90(merges.iter().map(|m| m.length_vs_longest).collect()),
        "max_length_vs_longest": merges.iter().map(|m| m.length_vs_longest).fold(0.0f32, f32::max),
        "merges_over_1_5x_longest": merges.iter().filter(|m| m.length_vs_longest > 1.5).count(),
    })
}

/// The value below which nine in ten of `values` lie (0 for none).
fn p90(mut values: Vec<f32>) -> f32 {
    values.sort_by(f32::total_cmp);
    values.get((values.len() * 9).div_ceil(10).saturating_sub(1)).copied().unwrap_or(0.0)
}

/// The figures of a plan's merges.
pub fn figures_of(merges: &[Merge]) -> Vec<MergeFigures> {
    merges.iter().map(MergeFigures::from).collect()
}

/// Recall of above-threshold pairs, ANN vs exact, per memory-type partition and overall.
fn recall(snapshot: &crate::domain::ProjectSnapshot, options: &Options, config: &EngineConfig) -> Value {
    let dim = snapshot.embedding_dim.unwrap_or(0);
    let (mut exact_total, mut found_total) = (0usize, 0.0f64);
    let mut ann_ms = 0.0;
    for memory_type in MemoryType::ALL {
        let rows: Vec<Vec<f32>> = snapshot
            .memories
            .iter()
            .filter(|m| m.memory_type == memory_type)
            .filter_map(|m| m.embedding.as_deref().and_then(|e| UnitMatrix::normalize(e, dim)))
            .collect();
        let matrix = UnitMatrix::from_rows(rows.iter().map(Vec::as_slice), dim);
        let exact = exact_pairs(&matrix, options.similarity_threshold);
        let t = Instant::now();
        let approximate = approximate_pairs(&matrix, options.similarity_threshold, &config.ann);
        ann_ms += t.elapsed().as_secs_f64() * 1000.0;
        found_total += pair_recall(&exact, &approximate) * exact.len() as f64;
        exact_total += exact.len();
    }
    json!({
        "exact_pairs": exact_total,
        "ann_found": found_total.round(),
        "recall": if exact_total == 0 { 1.0 } else { found_total / exact_total as f64 },
        "ann_ms": ann_ms,
    })
}
