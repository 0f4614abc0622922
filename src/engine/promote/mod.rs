//! Promotion of created memories into the playbook.
//!
//! A consolidated memory is promoted when its cluster's cohesion, a synthesis memory when its
//! synthesis confidence, is >= `promote_confidence_threshold`, unless an active playbook entry
//! (or an earlier promotion of the same plan) is near-identical: embedding cosine >=
//! `PLAYBOOK_DUPLICATE_SIMILARITY`, or normalized content whose token sets overlap >=
//! `text::NEAR_DUPLICATE_JACCARD`.
//!
//! Category, from the cluster's memory type:
//!
//! | cluster type        | category          | base priority |
//! |---------------------|-------------------|---------------|
//! | warning             | `gotchas`         | 8             |
//! | error_fix           | `troubleshooting` | 7             |
//! | decision            | `architecture`    | 6             |
//! | learning            | `best_practices`  | 6             |
//! | discovery           | `insights`        | 5             |
//! | codebase_knowledge  | `codebase`        | 4             |
//! | mixed or other      | `general`         | 5             |
//!
//! One cluster yields at most one entry: its consolidated memory is considered first, and the
//! synthesis of the same cluster shares its centroid embedding, so it is promoted only when
//! the consolidated memory is not (merge off, or below the threshold).
//!
//! Near-duplicates are found by embedding when both sides have one (one blocked similarity scan
//! over playbook + candidates, so the check stays fast for thousands of promotions); text is
//! compared against exact normalized content and against entries that have no embedding.
//!
//! Priority (1..=10) = base + 1 if confidence >= 0.95, + 1 if the cluster has >= 5 members,
//! + 1 if the members' summed reuse is >= 20; capped at 10.

pub mod build;
pub mod follow;

use std::collections::HashSet;

use crate::domain::{Embedding, MemoryType, PlaybookEntrySnapshot};
use crate::engine::similarity::ann::{AnnParams, approximate_pairs};
use crate::engine::similarity::prefilter::{prefiltered_cross, prefiltered_pairs_of};
use crate::engine::similarity::{UnitMatrix, dot};
use crate::engine::text::units::{NEAR_DUPLICATE_JACCARD, Sentence, jaccard};

pub const PLAYBOOK_DUPLICATE_SIMILARITY: f32 = 0.95;
/// Candidates under 1/CROSS_SHARE of all rows are scored against the rest instead of all pairs.
const CROSS_SHARE: usize = 12;
const MAX_PRIORITY: i32 = 10;
const HIGH_CONFIDENCE: f32 = 0.95;
const LARGE_CLUSTER: usize = 5;
const WELL_REUSED: i32 = 20;

pub fn category_and_base_priority(memory_type: Option<MemoryType>) -> (&'static str, i32) {
    match memory_type {
        Some(MemoryType::Warning) => ("gotchas", 8),
        Some(MemoryType::ErrorFix) => ("troubleshooting", 7),
        Some(MemoryType::Decision) => ("architecture", 6),
        Some(MemoryType::Learning) => ("best_practices", 6),
        Some(MemoryType::Discovery) => ("insights", 5),
        Some(MemoryType::CodebaseKnowledge) => ("codebase", 4),
        _ => ("general", 5),
    }
}

pub fn priority(base: i32, confidence: f32, cluster_size: usize, total_reuse: i32) -> i32 {
    let bonus = i32::from(confidence >= HIGH_CONFIDENCE)
        + i32::from(cluster_size >= LARGE_CLUSTER)
        + i32::from(total_reuse >= WELL_REUSED);
    (base + bonus).clamp(1, MAX_PRIORITY)
}

/// An existing or already-promoted entry, as compared against a new one.
pub struct KnownEntry {
    pub content: Sentence,
    pub embedding: Option<Vec<f32>>,
}

impl KnownEntry {
    pub fn new(content: &str, embedding: Option<Vec<f32>>) -> KnownEntry {
        KnownEntry {
            content: Sentence::new(content),
            embedding: embedding.and_then(|e| crate::engine::similarity::UnitMatrix::normalize(&e, e.len())),
        }
    }

    pub fn is_near_duplicate_of(&self, other: &KnownEntry) -> bool {
        if let (Some(a), Some(b)) = (&self.embedding, &other.embedding) {
            if a.len() == b.len() && dot(a, b) >= PLAYBOOK_DUPLICATE_SIMILARITY {
                return true;
            }
        }
        self.content.normalized == other.content.normalized
            || jaccard(&self.content.tokens, &other.content.tokens) >= NEAR_DUPLICATE_JACCARD
    }
}

/// `embedding` as a unit vector of `dim` values: itself when it is one, else normalized.
fn unit_of(embedding: Option<&Embedding>, dim: usize) -> Option<Embedding> {
    let e = embedding.filter(|e| e.len() == dim)?;
    if e.is_unit() { Some(e.clone()) } else { Embedding::normalized(e) }
}

/// For each candidate (content, unit embedding), in order: true when it is neither near-identical
/// to an active playbook entry nor to an earlier accepted candidate.
pub fn novel_candidates(
    playbook: &[PlaybookEntrySnapshot],
    candidates: &[(&str, &[f32])],
    dim: usize,
    use_ann: bool,
    ann: &AnnParams,
) -> Vec<bool> {
    let (with_embedding, text_only): (Vec<_>, Vec<_>) =
        playbook.iter().map(|e| (e, unit_of(e.embedding.as_ref(), dim))).partition(|(_, unit)| unit.is_some());
    let text_only: Vec<KnownEntry> = text_only.into_iter().map(|(e, _)| KnownEntry::new(&e.content, None)).collect();
    let p = with_embedding.len();
    // Entries' vectors come from the worker's cache as unit vectors: shared, with the reduced
    // forms the prefilter computed for them in earlier jobs.
    let embeddings: Vec<Embedding> = with_embedding
        .into_iter()
        .filter_map(|(_, unit)| unit)
        .chain(candidates.iter().map(|c| Embedding::from(c.1.to_vec())))
        .collect();
    let matrix = UnitMatrix::from_shared(embeddings.iter().map(Embedding::shared).collect(), dim);
    let mut earlier: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
    // A steady-state job promotes a few against a large playbook: scoring only the candidates'
    // rows costs far less than all pairs.
    if candidates.len() * CROSS_SHARE < p + candidates.len() {
        let rows = UnitMatrix::from_rows(candidates.iter().map(|c| c.1), dim);
        let found = prefiltered_cross((&rows, &embeddings[p..]), (&matrix, &embeddings), PLAYBOOK_DUPLICATE_SIMILARITY);
        for (c, j, _) in found {
            let (c, j) = (c as usize, j as usize);
            if j < p + c {
                earlier[c].push(j);
            }
        }
    } else {
        let pairs = if use_ann {
            approximate_pairs(&matrix, PLAYBOOK_DUPLICATE_SIMILARITY, ann)
        } else {
            prefiltered_pairs_of(&matrix, &embeddings, PLAYBOOK_DUPLICATE_SIMILARITY)
        };
        for pair in pairs {
            let (a, b) = (pair.a as usize, pair.b as usize);
            if b >= p {
                earlier[b - p].push(a);
            }
        }
    }
    let mut contents: HashSet<String> =
        playbook.iter().map(|e| crate::engine::text::units::normalize(&e.content)).collect();
    let mut accepted = vec![false; candidates.len()];
    for (c, (content, _)) in candidates.iter().enumerate() {
        let by_embedding = earlier[c].iter().any(|&a| a < p || accepted[a - p]);
        let entry = KnownEntry::new(content, None);
        let by_text =
            contents.contains(&entry.content.normalized) || text_only.iter().any(|k| k.is_near_duplicate_of(&entry));
        if !by_embedding && !by_text {
            accepted[c] = true;
            contents.insert(entry.content.normalized);
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_follows_the_table() {
        assert_eq!(category_and_base_priority(Some(MemoryType::Warning)), ("gotchas", 8));
        assert_eq!(category_and_base_priority(Some(MemoryType::ErrorFix)), ("troubleshooting", 7));
        assert_eq!(category_and_base_priority(None), ("general", 5));
    }

    #[test]
    fn priority_adds_bonuses_and_is_capped() {
        assert_eq!(priority(7, 0.9, 2, 0), 7);
        assert_eq!(priority(7, 0.96, 5, 25), 10);
        assert_eq!(priority(8, 0.99, 6, 100), 10);
    }

    #[test]
    fn near_duplicates_match_by_embedding_or_by_text() {
        let a = KnownEntry::new("Use selectinload for async relationships.", Some(vec![1.0, 0.0]));
        let b = KnownEntry::new("Something else entirely.", Some(vec![0.99, 0.05]));
        let c = KnownEntry::new("use selectinload for async relationships", None);
        let d = KnownEntry::new("Set pool_recycle below the balancer timeout.", Some(vec![0.0, 1.0]));
        assert!(a.is_near_duplicate_of(&b));
        assert!(a.is_near_duplicate_of(&c));
        assert!(!a.is_near_duplicate_of(&d));
    }

    #[test]
    fn novel_candidates_skip_playbook_twins_and_repeats_within_the_plan() {
        let entry = |content: &str, embedding: Option<Vec<f32>>| PlaybookEntrySnapshot {
            source_memory_id: None,
            id: uuid::Uuid::new_v4(),
            content: content.into(),
            category: "general".into(),
            embedding: embedding.map(Into::into),
            supporting_memory_ids: vec![],
        };
        let playbook = [entry("Known by vector.", Some(vec![1.0, 0.0, 0.0])), entry("Known by text only.", None)];
        let (x, y, z) = ([0.999, 0.04, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
        let candidates: [(&str, &[f32]); 5] = [
            ("Anything.", &x),
            ("New fact.", &y),
            ("New fact, said again.", &y),
            ("known by text only", &z),
            ("Another new fact.", &z),
        ];
        let novel = novel_candidates(&playbook, &candidates, 3, false, &AnnParams::default());
        assert_eq!(novel, vec![false, true, false, false, true]);

        // The same answer from the candidates-only scoring a large playbook takes.
        let dim = 80;
        let widen = |v: &[f32]| -> Vec<f32> { (0..dim).map(|k| v.get(k).copied().unwrap_or(0.0)).collect() };
        let mut large: Vec<PlaybookEntrySnapshot> = playbook
            .iter()
            .map(|e| PlaybookEntrySnapshot {
                embedding: e.embedding.as_deref().map(widen).map(Into::into),
                ..e.clone()
            })
            .collect();
        large.extend((10..dim).map(|k| {
            let mut v = vec![0.0; dim];
            v[k] = 1.0;
            entry(&format!("Filler {k}."), Some(v))
        }));
        let wide: Vec<Vec<f32>> = candidates.iter().map(|c| widen(c.1)).collect();
        let wide_candidates: Vec<(&str, &[f32])> =
            candidates.iter().zip(&wide).map(|(c, v)| (c.0, v.as_slice())).collect();
        assert!(
            wide_candidates.len() * CROSS_SHARE < large.len() + wide_candidates.len(),
            "fixture takes the cross path"
        );
        let novel = novel_candidates(&large, &wide_candidates, dim, false, &AnnParams::default());
        assert_eq!(novel, vec![false, true, false, false, true]);
    }
}
