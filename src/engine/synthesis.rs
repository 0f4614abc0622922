//! Synthesis of a cluster of 3+ memories into patterns, best practices and gotchas. The default
//! `ExtractiveSynthesizer` is deterministic and offline: it picks the sentences most members
//! support and sorts them into the three lists by cue words.

use std::collections::BTreeSet;

use super::cluster::Cluster;
use super::model::MemorySnapshot;
use super::text::{Sentence, sentences, tokens};

/// A cluster and its member memories, in the cluster's member order.
#[derive(Debug, Clone)]
pub struct ClusterView<'a> {
    pub cluster: &'a Cluster,
    pub members: Vec<&'a MemorySnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynthesisDraft {
    pub summary: String,
    pub patterns: Vec<String>,
    pub best_practices: Vec<String>,
    pub gotchas: Vec<String>,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SynthesisError {
    #[error("synthesis endpoint unreachable: {0}")]
    Transport(String),
    #[error("synthesis endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("invalid synthesis answer: {0}")]
    InvalidAnswer(String),
}

pub trait Synthesizer: Send + Sync {
    fn name(&self) -> &str;
    fn synthesize(&self, view: &ClusterView<'_>) -> Result<SynthesisDraft, SynthesisError>;
}

/// Checks any synthesizer's draft: a summary, at least one list item, no blank items and a
/// confidence within 0..=1.
pub fn validate_draft(draft: &SynthesisDraft) -> Result<(), SynthesisError> {
    let invalid = |m: &str| Err(SynthesisError::InvalidAnswer(m.to_owned()));
    if draft.summary.trim().is_empty() {
        return invalid("summary is empty");
    }
    if !(0.0..=1.0).contains(&draft.confidence) {
        return invalid(&format!("confidence {} is outside 0..=1", draft.confidence));
    }
    let lists = [&draft.patterns, &draft.best_practices, &draft.gotchas];
    if lists.iter().all(|l| l.is_empty()) {
        return invalid("patterns, best_practices and gotchas are all empty");
    }
    if lists.iter().any(|l| l.iter().any(|item| item.trim().is_empty())) {
        return invalid("a list item is blank");
    }
    Ok(())
}

/// Share of a sentence's tokens a member must contain to count as supporting it.
const SUPPORT_CONTAINMENT: f64 = 0.6;
const MAX_ITEMS_PER_LIST: usize = 4;
const SUMMARY_SENTENCES: usize = 2;

const GOTCHA_CUES: [&str; 22] = [
    "warning",
    "watch out",
    "gotcha",
    "error",
    "fail",
    "cause",
    "because",
    "never",
    "leak",
    "deadlock",
    "cannot",
    "lost",
    "deprecated",
    "removed",
    "blocked",
    "exception",
    "timeout",
    "timed out",
    "not ",
    "n't",
    "unexpected",
    "too ",
];
const PRACTICE_CUES: [&str; 18] = [
    "fix",
    "use ",
    "should",
    "always",
    "set ",
    "add ",
    "prefer",
    "avoid",
    "make ",
    "instead",
    "next time",
    "going forward",
    "solution",
    "workaround",
    "to avoid",
    "decided",
    "chose",
    "so ",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Pattern,
    BestPractice,
    Gotcha,
}

fn bucket(sentence: &str) -> Bucket {
    let lower = sentence.to_lowercase();
    let has = |cues: &[&str]| cues.iter().any(|c| lower.contains(c));
    if has(&PRACTICE_CUES) {
        Bucket::BestPractice
    } else if has(&GOTCHA_CUES) {
        Bucket::Gotcha
    } else {
        Bucket::Pattern
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveSynthesizer;

struct Scored {
    sentence: Sentence,
    support: usize,
    first_seen: usize,
}

impl Synthesizer for ExtractiveSynthesizer {
    fn name(&self) -> &str {
        "extractive"
    }

    fn synthesize(&self, view: &ClusterView<'_>) -> Result<SynthesisDraft, SynthesisError> {
        let n = view.members.len();
        if n == 0 {
            return Err(SynthesisError::InvalidAnswer("cluster has no members".into()));
        }
        let member_tokens: Vec<BTreeSet<String>> = view
            .members
            .iter()
            .map(|m| tokens(&format!("{} {}", m.execution_summary, m.result.as_deref().unwrap_or(""))))
            .collect();
        let mut scored: Vec<Scored> = Vec::new();
        for member in &view.members {
            let texts = [Some(member.execution_summary.as_str()), member.result.as_deref()];
            for sentence in texts.into_iter().flatten().flat_map(sentences) {
                if sentence.tokens.is_empty() || scored.iter().any(|s| s.sentence.says_the_same_as(&sentence)) {
                    continue;
                }
                let support = member_tokens.iter().filter(|t| supports(t, &sentence)).count();
                let first_seen = scored.len();
                scored.push(Scored { sentence, support, first_seen });
            }
        }
        scored.sort_by(|a, b| b.support.cmp(&a.support).then(a.first_seen.cmp(&b.first_seen)));

        let (mut patterns, mut best_practices, mut gotchas) = (Vec::new(), Vec::new(), Vec::new());
        let mut selected: Vec<&Scored> = Vec::new();
        for s in &scored {
            let list = match bucket(&s.sentence.text) {
                Bucket::Pattern => &mut patterns,
                Bucket::BestPractice => &mut best_practices,
                Bucket::Gotcha => &mut gotchas,
            };
            if list.len() < MAX_ITEMS_PER_LIST {
                list.push(s.sentence.text.clone());
                selected.push(s);
            }
        }
        let covered = member_tokens.iter().filter(|t| selected.iter().any(|s| supports(t, &s.sentence))).count();
        let coverage = covered as f32 / n as f32;
        let support_share = if selected.is_empty() {
            0.0
        } else {
            selected.iter().map(|s| s.support as f32 / n as f32).sum::<f32>() / selected.len() as f32
        };
        let confidence = (0.5 * view.cluster.cohesion + 0.3 * coverage + 0.2 * support_share).clamp(0.0, 1.0);
        let kind = view.cluster.memory_type.map_or("related", |t| t.as_str());
        let central: Vec<&str> = scored.iter().take(SUMMARY_SENTENCES).map(|s| s.sentence.text.as_str()).collect();
        let summary = format!("Synthesis of {n} {kind} memories: {}", central.join(" "));
        Ok(SynthesisDraft { summary, patterns, best_practices, gotchas, confidence })
    }
}

fn supports(member_tokens: &BTreeSet<String>, sentence: &Sentence) -> bool {
    let common = sentence.tokens.iter().filter(|t| member_tokens.contains(*t)).count();
    common as f64 / sentence.tokens.len() as f64 >= SUPPORT_CONTAINMENT
}

/// The text stored as a synthesis memory's execution_summary.
pub fn render(draft: &SynthesisDraft) -> String {
    let mut out = draft.summary.trim().to_owned();
    for (title, items) in
        [("Patterns", &draft.patterns), ("Best practices", &draft.best_practices), ("Gotchas", &draft.gotchas)]
    {
        if !items.is_empty() {
            out.push_str(&format!("\n{title}:"));
            for item in items {
                out.push_str(&format!("\n- {}", item.trim()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::engine::model::MemoryType;

    fn member(id: u128, summary: &str) -> MemorySnapshot {
        MemorySnapshot::for_test(id, summary)
    }

    fn cluster(cohesion: f32) -> Cluster {
        Cluster {
            id: "c".into(),
            members: vec![],
            representative: Uuid::nil(),
            cohesion,
            memory_type: Some(MemoryType::ErrorFix),
        }
    }

    #[test]
    fn extractive_synthesis_is_deterministic_and_sorts_sentences_into_lists() {
        let ms = [
            member(
                1,
                "Fixed QueuePool limit reached in db.py. Root cause: sessions held during HTTP calls. Fix: release the session before the call.",
            ),
            member(
                2,
                "QueuePool limit reached again in db.py. The cause was that sessions were held during HTTP calls. Release the session before the call.",
            ),
            member(3, "Resolved QueuePool limit reached in db.py. Sessions held during HTTP calls caused it."),
        ];
        let c = cluster(0.95);
        let view = ClusterView { cluster: &c, members: ms.iter().collect() };
        let a = ExtractiveSynthesizer.synthesize(&view).unwrap();
        let b = ExtractiveSynthesizer.synthesize(&view).unwrap();
        assert_eq!(a, b);
        assert!(validate_draft(&a).is_ok());
        assert!(a.summary.starts_with("Synthesis of 3 error_fix memories:"));
        assert!(a.best_practices.iter().any(|s| s.contains("release the session")), "{a:?}");
        assert!(a.gotchas.iter().any(|s| s.contains("HTTP calls")), "{a:?}");
        assert!(a.confidence >= 0.8, "{}", a.confidence);
    }

    #[test]
    fn unrelated_texts_in_a_loose_cluster_give_low_confidence() {
        let ms = [
            member(1, "Alpha beta gamma delta."),
            member(2, "Epsilon zeta eta theta."),
            member(3, "Iota kappa lambda mu."),
        ];
        let c = cluster(0.6);
        let draft =
            ExtractiveSynthesizer.synthesize(&ClusterView { cluster: &c, members: ms.iter().collect() }).unwrap();
        assert!(draft.confidence < 0.8, "{}", draft.confidence);
    }

    #[test]
    fn validation_rejects_bad_drafts() {
        let good = SynthesisDraft {
            summary: "s".into(),
            patterns: vec!["p".into()],
            best_practices: vec![],
            gotchas: vec![],
            confidence: 0.9,
        };
        assert!(validate_draft(&good).is_ok());
        let cases = [
            SynthesisDraft { confidence: 1.5, ..good.clone() },
            SynthesisDraft { summary: " ".into(), ..good.clone() },
            SynthesisDraft { patterns: vec![], ..good.clone() },
            SynthesisDraft { patterns: vec!["".into()], ..good.clone() },
        ];
        for draft in cases {
            assert!(matches!(validate_draft(&draft), Err(SynthesisError::InvalidAnswer(_))), "{draft:?}");
        }
    }

    #[test]
    fn render_lists_each_non_empty_section() {
        let draft = SynthesisDraft {
            summary: "Sum.".into(),
            patterns: vec![],
            best_practices: vec!["Do it.".into()],
            gotchas: vec!["Beware.".into()],
            confidence: 0.9,
        };
        assert_eq!(render(&draft), "Sum.\nBest practices:\n- Do it.\nGotchas:\n- Beware.");
    }
}
