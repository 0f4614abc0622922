//! Synthesis of a cluster of 3+ memories into patterns, best practices and gotchas. The default
//! synthesizer is the deterministic, offline `ExtractiveSynthesizer` (see `extractive`).

pub mod build;
pub mod cues;
pub mod extractive;

use crate::domain::Cluster;
use crate::domain::Memory;
pub use crate::engine::synthesis::extractive::ExtractiveSynthesizer;

/// A cluster and its member memories, in the cluster's member order.
#[derive(Debug, Clone)]
pub struct ClusterView<'a> {
    pub cluster: &'a Cluster,
    pub members: Vec<&'a Memory>,
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
    /// Not a failure: the cluster holds nothing a synthesis would add to its merged memory.
    #[error("synthesis would only restate the consolidated memory")]
    NothingToAdd,
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
    use crate::domain::MemoryType;

    fn member(id: u128, summary: &str) -> Memory {
        Memory::for_test(id, summary)
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

    fn synthesize(cohesion: f32, ms: &[Memory]) -> Result<SynthesisDraft, SynthesisError> {
        let c = cluster(cohesion);
        ExtractiveSynthesizer.synthesize(&ClusterView { cluster: &c, members: ms.iter().collect() })
    }

    #[test]
    fn members_that_only_describe_give_nothing_to_add() {
        let ms = [
            member(1, "Tokio is a runtime for asynchronous Rust applications."),
            member(2, "Tokio is an asynchronous runtime for Rust applications."),
            member(3, "A runtime for asynchronous applications in Rust."),
        ];
        assert_eq!(synthesize(0.97, &ms), Err(SynthesisError::NothingToAdd));
    }

    #[test]
    fn a_tight_cluster_whose_members_agree_on_nothing_stays_below_promotion() {
        let ms = [
            member(1, "Pin serde to 1.0.200 in Cargo.toml."),
            member(2, "The build fails when openssl headers are missing."),
            member(3, "Run cargo update before releasing."),
        ];
        let draft = synthesize(0.98, &ms).unwrap();
        assert!(draft.confidence < 0.8, "{}", draft.confidence);
    }

    #[test]
    fn shared_content_is_a_pattern_stated_once_and_a_lone_claim_is_attributed() {
        let ms = [
            Memory {
                task_id: Some("t-1".into()),
                ..member(1, "Uploads stall on the S3 client. Set the timeout to 30s.")
            },
            Memory { task_id: Some("t-2".into()), ..member(2, "Uploads stall on the S3 client again.") },
            Memory {
                task_id: Some("t-3".into()),
                ..member(3, "The S3 client uploads stall. Beware: retries are not idempotent.")
            },
        ];
        let draft = synthesize(0.95, &ms).unwrap();
        assert_eq!(draft.patterns, vec!["Uploads stall on the S3 client."]);
        assert_eq!(draft.best_practices, vec!["Set the timeout to 30s (only in t-1)."]);
        assert_eq!(draft.gotchas, vec!["Beware: retries are not idempotent (only in t-3)."]);
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
