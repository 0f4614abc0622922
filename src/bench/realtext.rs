//! `consolidator bench realtext`: plans the real-text set (`scripts/realtext/build.py`) with the
//! engine and reports clustering precision and recall of pairs against the set's truth, the
//! merged texts' coverage and compression, and a few merges to read.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::engine::{figures_of, merge_stats};
use crate::domain::{GuardReport, Merge};
use crate::domain::{Memory, ProjectSnapshot};
use crate::domain::{Options, ValueGuard};
use crate::engine::merge::embed::CentroidEmbedder;
use crate::engine::plan::{EngineConfig, plan};
use crate::engine::synthesis::ExtractiveSynthesizer;
use crate::engine::text::units::{UnitKind, key, units};
use crate::engine::text::words::Content;
use crate::interchange::{self, InterchangeError};
use crate::synthetic::anchor;

#[derive(Debug, Clone, PartialEq)]
pub struct RealtextArgs {
    pub input: PathBuf,
    pub truth: PathBuf,
    pub threshold: f32,
    pub examples: usize,
    pub value_guard: ValueGuard,
}

/// Groups that should merge and pairs (of sibling crates) that must not. A truth file of
/// `gen_memories.py` has groups only.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Truth {
    pub groups: Vec<Vec<Uuid>>,
    #[serde(default)]
    pub must_not: Vec<(Uuid, Uuid)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RealtextError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Truth { path: String, source: serde_json::Error },
    #[error("{path}: {source}")]
    Memories { path: String, source: InterchangeError },
}

pub fn run(args: &RealtextArgs) -> Result<Value, RealtextError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| RealtextError::Read { path: path.display().to_string(), source })
    };
    let memories = interchange::parse(read(&args.input)?.as_slice(), None)
        .map_err(|source| RealtextError::Memories { path: args.input.display().to_string(), source })?;
    let truth: Truth = serde_json::from_slice(&read(&args.truth)?)
        .map_err(|source| RealtextError::Truth { path: args.truth.display().to_string(), source })?;
    let memories = memories.into_iter().map(Memory::from).collect();
    Ok(evaluate(memories, &truth, args.threshold, args.value_guard, args.examples))
}

fn pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b { (a, b) } else { (b, a) }
}

fn pairs_of<'a>(groups: impl Iterator<Item = &'a Vec<Uuid>>) -> BTreeSet<(Uuid, Uuid)> {
    let mut out = BTreeSet::new();
    for group in groups {
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                out.insert(pair(*a, *b));
            }
        }
    }
    out
}

pub fn evaluate(
    memories: Vec<Memory>,
    truth: &Truth,
    threshold: f32,
    value_guard: ValueGuard,
    examples: usize,
) -> Value {
    let dim = memories.iter().find_map(|m| m.embedding.as_ref().map(|e| e.len()));
    let snapshot = ProjectSnapshot::new(Uuid::nil(), dim, memories);
    let options = Options { similarity_threshold: threshold, archive: false, value_guard, ..Options::default() };
    let started = Instant::now();
    let result = plan(
        &snapshot,
        &options,
        &EngineConfig::default(),
        Uuid::from_u128(1),
        anchor(),
        &ExtractiveSynthesizer,
        &CentroidEmbedder,
    );
    let plan_ms = started.elapsed().as_secs_f64() * 1e3;

    let predicted = pairs_of(result.clusters.iter().map(|c| &c.members));
    let expected = pairs_of(truth.groups.iter());
    let must_not: BTreeSet<(Uuid, Uuid)> = truth.must_not.iter().map(|(a, b)| pair(*a, *b)).collect();
    let hits = predicted.intersection(&expected).count();
    let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    let by_id: HashMap<Uuid, &Memory> = snapshot.memories.iter().map(|m| (m.id, m)).collect();
    let mut shown: Vec<&Merge> = result.merges.iter().collect();
    shown.sort_by(|a, b| b.sources.len().cmp(&a.sources.len()).then(a.cluster_id.cmp(&b.cluster_id)));
    let mut longest: Vec<&Merge> = result.merges.iter().collect();
    longest.sort_by(|a, b| b.length_vs_longest.total_cmp(&a.length_vs_longest));
    json!({
        "memories": snapshot.memories.len(),
        "threshold": threshold,
        "value_guard": value_guard.as_str(),
        "guard": {
            "held_pairs": result.guard.held_pairs,
            "boundaries": result.guard.boundaries,
            "reviews": result.guard.reviews.len(),
            "held_truth_pairs": held_pairs(&result.guard, &expected),
            "held_must_not_pairs": held_pairs(&result.guard, &must_not),
            "examples": result.guard.reviews.iter().take(examples).map(|r| json!({
                "older": by_id.get(&r.older.id).map(|m| m.execution_summary.lines().next().unwrap_or_default()),
                "newer": by_id.get(&r.newer.id).map(|m| m.execution_summary.lines().next().unwrap_or_default()),
                "difference": r.difference,
            })).collect::<Vec<_>>(),
        },
        "plan_ms": plan_ms,
        "clusters": result.clusters.len(),
        "pairs": {
            "predicted": predicted.len(),
            "truth": expected.len(),
            "correct": hits,
            "precision": ratio(hits, predicted.len()),
            "recall": ratio(hits, expected.len()),
            "must_not_merged": predicted.intersection(&must_not).count(),
            "must_not_total": must_not.len(),
        },
        "merge_text": merge_stats(&figures_of(&result.merges)),
        "merged_text_checks": text_checks(&result.merges, &by_id),
        "syntheses": result.syntheses.len(),
        "synthesis_examples": result
            .syntheses
            .iter()
            .take(examples)
            .map(|s| {
                let members: Vec<&str> =
                    s.memory.synthesized_from.iter().filter_map(|id| by_id.get(id)).map(|m| m.execution_summary.as_str()).collect();
                json!({"confidence": s.confidence, "text": s.memory.execution_summary, "members": members})
            })
            .collect::<Vec<_>>(),
        "promotions": result.promotions.len(),
        "examples": shown.iter().take(examples).map(|m| example(m, &by_id)).collect::<Vec<_>>(),
        "longest_examples": longest.iter().take(examples).map(|m| example(m, &by_id)).collect::<Vec<_>>(),
    })
}

/// How many of `pairs` the guard held back (as review items: each names one pair of memories).
fn held_pairs(guard: &GuardReport, pairs: &BTreeSet<(Uuid, Uuid)>) -> usize {
    guard
        .reviews
        .iter()
        .map(|r| pair(r.older.id, r.newer.id))
        .chain(guard.superseded.iter().map(|s| pair(s.memory.id, s.superseded_by)))
        .filter(|p| pairs.contains(p))
        .count()
}

/// What a reader checks in every merged summary: no unit says what another says (same key:
/// case, punctuation and word endings aside), and every value a source states is kept.
fn text_checks(merges: &[Merge], by_id: &HashMap<Uuid, &Memory>) -> Value {
    let content = |text: &str| {
        units(text).iter().fold(Content::default(), |mut acc, u| {
            // A code block's fence ("```rust" or "```compile_fail") is not a value it states.
            acc.extend(&if u.kind == UnitKind::Code { Content::of_lines(&u.text) } else { Content::of(&u.text) });
            acc
        })
    };
    let (mut repeating, mut repeated_units, mut values, mut kept, mut losing) = (0, 0, 0, 0, 0);
    let mut lost = Vec::new();
    for merge in merges {
        let text = &merge.memory.execution_summary;
        let keys: Vec<String> = units(text).iter().map(|u| key(&u.text)).collect();
        let distinct: BTreeSet<&String> = keys.iter().collect();
        repeated_units += keys.len() - distinct.len();
        repeating += usize::from(keys.len() > distinct.len());
        let held = content(text);
        let mut stated = BTreeSet::new();
        for id in &merge.memory.consolidated_from {
            if let Some(member) = by_id.get(id) {
                stated.extend(content(&member.execution_summary).values);
            }
        }
        let held_now = stated.iter().filter(|v| held.holds_value(v)).count();
        lost.extend(stated.iter().filter(|v| !held.holds_value(v)).map(|v| json!({"value": v, "merged": text})));
        values += stated.len();
        kept += held_now;
        losing += usize::from(held_now < stated.len());
    }
    json!({
        "merges_repeating_a_unit": repeating,
        "repeated_units": repeated_units,
        "source_values": values,
        "values_kept": if values == 0 { 1.0 } else { kept as f64 / values as f64 },
        "merges_losing_a_value": losing,
        "lost_values": lost,
    })
}

fn example(merge: &Merge, by_id: &HashMap<Uuid, &Memory>) -> Value {
    let members: Vec<Value> = merge
        .memory
        .consolidated_from
        .iter()
        .filter_map(|id| by_id.get(id))
        .map(|m| {
            json!({
                "task_id": m.task_id,
                "first_line": m.execution_summary.lines().next().unwrap_or_default(),
                "text": m.execution_summary,
                "chars": m.execution_summary.chars().count(),
            })
        })
        .collect();
    json!({
        "cluster_id": merge.cluster_id,
        "members": members,
        "merged": merge.memory.execution_summary,
        "task_ids": merge.memory.task_ids,
        "coverage": merge.coverage,
        "compression": merge.compression,
        "length_vs_longest": merge.length_vs_longest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: u128, embedding: Vec<f32>, summary: &str) -> Memory {
        Memory {
            embedding: Some(embedding.into()),
            task_id: Some(format!("crate@{id}")),
            ..Memory::for_test(id, summary)
        }
    }

    #[test]
    fn pairs_are_scored_against_the_truth_and_must_not_pairs_counted() {
        let (a, b, c, d) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
        let memories = vec![
            memory(1, vec![1.0, 0.0, 0.0], "Serde 1.0.1 serializes data."),
            memory(2, vec![1.0, 0.01, 0.0], "Serde 1.0.2 serializes data."),
            memory(3, vec![0.0, 1.0, 0.0], "Tokio is a runtime."),
            memory(4, vec![0.0, 1.0, 0.01], "Tokio-util has codecs."),
        ];
        let truth = Truth { groups: vec![vec![a, b]], must_not: vec![(c, d)] };
        let report = evaluate(memories, &truth, 0.9, ValueGuard::Off, 1);
        assert_eq!(report["pairs"]["predicted"], 2);
        assert_eq!(report["pairs"]["correct"], 1);
        assert_eq!(report["pairs"]["precision"], 0.5);
        assert_eq!(report["pairs"]["recall"], 1.0);
        assert_eq!(report["pairs"]["must_not_merged"], 1);
        assert_eq!(report["examples"].as_array().map(Vec::len), Some(1));
        assert!(report["merge_text"]["min_coverage"].as_f64().is_some_and(|c| c >= 0.95));
    }

    #[test]
    fn with_the_value_guard_two_versions_are_held_apart_and_counted() {
        let memories = vec![
            memory(1, vec![1.0, 0.0, 0.0], "Serde 1.0.1 serializes data."),
            memory(2, vec![1.0, 0.01, 0.0], "Serde 1.0.2 serializes data."),
        ];
        let truth = Truth { groups: vec![vec![Uuid::from_u128(1), Uuid::from_u128(2)]], must_not: vec![] };
        let report = evaluate(memories, &truth, 0.9, ValueGuard::Review, 1);
        assert_eq!(report["pairs"]["predicted"], 0);
        assert_eq!(report["guard"]["held_pairs"], 1);
        assert_eq!(report["guard"]["held_truth_pairs"], 1);
        assert_eq!(report["value_guard"], "review");
    }
}
