//! Synthesis of a topic (related memories that are not duplicates, see `topics`) into one memory
//! that lists the topic's distinct facts once each, grouped by kind, each traceable to the
//! members that state it. The default synthesizer is the deterministic, offline
//! `ExtractiveSynthesizer`; a model (`llm::openai`) may write the prose from the same facts.

pub mod build;
pub mod cues;
pub mod extractive;
pub mod topics;

use uuid::Uuid;

use crate::domain::{FactKind, MemoryType, SynthesisFact};
use crate::engine::budget::JobBudget;
pub use crate::engine::synthesis::extractive::ExtractiveSynthesizer;

/// One member of a topic as the synthesizer reads it: a consolidated memory this plan writes or
/// an active memory.
#[derive(Debug, Clone)]
pub struct TopicMember<'a> {
    /// The member's id once the plan is applied.
    pub id: Uuid,
    pub memory_type: Option<MemoryType>,
    /// A task id, else the id's first 8 hex digits.
    pub label: String,
    /// Execution summary first, then result and feedback.
    pub texts: Vec<&'a str>,
    pub tags: Vec<&'a str>,
}

#[derive(Debug, Clone)]
pub struct TopicView<'a> {
    pub topic_id: &'a str,
    /// The lowest similarity between two of its members.
    pub weakest_link: f32,
    /// The similarity at which memories are related without sharing a tag or a file (the bottom
    /// of the topic band).
    pub related_at: f32,
    pub members: Vec<TopicMember<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynthesisDraft {
    pub summary: String,
    pub facts: Vec<SynthesisFact>,
    pub confidence: f32,
    /// A model's prose written from `facts`; the stored text when present.
    pub prose: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SynthesisError {
    #[error("synthesis endpoint unreachable: {0}")]
    Transport(String),
    #[error("synthesis endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("invalid synthesis answer: {0}")]
    InvalidAnswer(String),
    /// Not sent or not waited for: the job's model budget is spent or the job was stopped.
    #[error("synthesis call skipped: {0}")]
    Skipped(String),
    /// Not a failure: the topic holds fewer than two distinct facts from two members.
    #[error("the topic holds too few distinct facts for a synthesis")]
    NothingToAdd,
}

pub trait Synthesizer: Send + Sync {
    fn name(&self) -> &str;
    fn synthesize(&self, view: &TopicView<'_>) -> Result<SynthesisDraft, SynthesisError>;
    /// Requests and tokens this instance spent; an offline synthesizer spends none.
    fn usage(&self) -> crate::domain::ModelUsage {
        crate::domain::ModelUsage::default()
    }
    /// An instance of its own for one job, bound by the job's budget and stop, so that the
    /// job's usage is counted apart; `None` when this one spends nothing.
    fn for_job(&self, _budget: &std::sync::Arc<JobBudget>) -> Option<std::sync::Arc<dyn Synthesizer>> {
        None
    }
    /// `Some(n)` when this is an outside model taking at most `n` calls at once: the planner
    /// then runs the units that call it on `n` plain threads, never on the compute pool.
    fn outside_calls(&self) -> Option<usize> {
        None
    }
}

/// Checks any synthesizer's draft: a summary, at least two facts, none blank, each with a
/// member, prose (if any) not blank, and a confidence within 0..=1.
pub fn validate_draft(draft: &SynthesisDraft) -> Result<(), SynthesisError> {
    let invalid = |m: &str| Err(SynthesisError::InvalidAnswer(m.to_owned()));
    if draft.summary.trim().is_empty() {
        return invalid("summary is empty");
    }
    if !(0.0..=1.0).contains(&draft.confidence) {
        return invalid(&format!("confidence {} is outside 0..=1", draft.confidence));
    }
    if draft.facts.len() < 2 {
        return invalid("fewer than two facts");
    }
    if draft.facts.iter().any(|f| f.text.trim().is_empty() || f.members.is_empty()) {
        return invalid("a fact is blank or has no member");
    }
    if draft.prose.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return invalid("prose is blank");
    }
    Ok(())
}

/// The section title of a kind of fact.
pub fn section(kind: FactKind) -> &'static str {
    match kind {
        FactKind::Fix => "Fixes",
        FactKind::Gotcha => "Gotchas",
        FactKind::Decision => "Decisions",
        FactKind::Practice => "Practices",
        FactKind::Fact => "Facts",
    }
}

/// The text stored as a synthesis memory's execution_summary: the model's prose when there is
/// one, else the summary and one line per fact, by section, with the labels of its members.
pub fn render(draft: &SynthesisDraft, labels: &dyn Fn(Uuid) -> String) -> String {
    if let Some(prose) = &draft.prose {
        return prose.trim().to_owned();
    }
    let mut out = draft.summary.trim().to_owned();
    for kind in [FactKind::Fix, FactKind::Gotcha, FactKind::Decision, FactKind::Practice, FactKind::Fact] {
        let facts: Vec<&SynthesisFact> = draft.facts.iter().filter(|f| f.kind == kind).collect();
        if facts.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{}:", section(kind)));
        for fact in facts {
            let by: Vec<String> = fact.members.iter().map(|&m| labels(m)).collect();
            out.push_str(&format!("\n- {} [{}]", fact.text.trim(), by.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Memory;
    use crate::engine::tests::{three_related_memories, topic_view};

    fn facts_of(draft: &SynthesisDraft, kind: FactKind) -> Vec<&str> {
        draft.facts.iter().filter(|f| f.kind == kind).map(|f| f.text.as_str()).collect()
    }

    #[test]
    fn a_topic_lists_each_fact_once_by_the_kind_its_member_is() {
        let members = three_related_memories();
        let view = topic_view(&members);
        let draft = ExtractiveSynthesizer.synthesize(&view).unwrap();
        assert_eq!(draft, ExtractiveSynthesizer.synthesize(&view).unwrap(), "deterministic");
        assert!(validate_draft(&draft).is_ok());
        assert_eq!(
            facts_of(&draft, FactKind::Fix),
            vec!["QueuePool limit reached in db.py under load.", "Release the session before the HTTP call."]
        );
        assert_eq!(facts_of(&draft, FactKind::Gotcha).len(), 1);
        assert_eq!(facts_of(&draft, FactKind::Decision).len(), 1);
        assert!(draft.facts.iter().all(|f| f.members.len() == 1));
        assert_eq!(draft.facts[2].members, vec![members[1].id], "each line names its member");
        assert_eq!(draft.summary, "What 3 related memories say about call and checkout:");
        // Every member contributes, and they are related without a shared tag or file.
        assert_eq!(draft.confidence, 1.0);
    }

    #[test]
    fn a_list_item_is_one_line_of_the_synthesis_without_its_marker() {
        let mut members = three_related_memories();
        members[1].execution_summary = "Checkout retries:\n- Retries of the checkout call are not\n  idempotent: a retried request can charge twice.".into();
        let draft = ExtractiveSynthesizer.synthesize(&topic_view(&members)).unwrap();
        let gotcha = draft.facts.iter().find(|f| f.kind == FactKind::Gotcha).map(|f| f.text.as_str());
        assert_eq!(
            gotcha,
            Some("Retries of the checkout call are not idempotent: a retried request can charge twice.")
        );
    }

    #[test]
    fn a_fact_two_members_state_is_listed_once_with_both() {
        let mut members = three_related_memories();
        members[1].execution_summary.push_str(" Release the session before the HTTP call!");
        let draft = ExtractiveSynthesizer.synthesize(&topic_view(&members)).unwrap();
        let release: Vec<_> = draft.facts.iter().filter(|f| f.text.contains("Release the session")).collect();
        assert_eq!(release.len(), 1, "{:?}", draft.facts);
        assert_eq!(release[0].members, vec![members[0].id, members[1].id]);
    }

    #[test]
    fn a_topic_one_member_says_all_of_gives_nothing_to_add() {
        let members = [
            Memory::for_test(
                1,
                "Tokio is a runtime for asynchronous Rust applications. It schedules tasks on threads.",
            ),
            Memory::for_test(2, "Tokio is an asynchronous runtime for Rust applications."),
        ];
        let result = ExtractiveSynthesizer.synthesize(&topic_view(&members));
        assert_eq!(result, Err(SynthesisError::NothingToAdd));
    }

    #[test]
    fn validation_rejects_bad_drafts() {
        let fact = |text: &str| SynthesisFact { kind: FactKind::Fact, text: text.into(), members: vec![Uuid::nil()] };
        let good =
            SynthesisDraft { summary: "s".into(), facts: vec![fact("a"), fact("b")], confidence: 0.9, prose: None };
        assert!(validate_draft(&good).is_ok());
        let cases = [
            SynthesisDraft { confidence: 1.5, ..good.clone() },
            SynthesisDraft { summary: " ".into(), ..good.clone() },
            SynthesisDraft { facts: vec![fact("a")], ..good.clone() },
            SynthesisDraft { facts: vec![fact("a"), fact(" ")], ..good.clone() },
            SynthesisDraft { prose: Some(" ".into()), ..good.clone() },
        ];
        for draft in cases {
            assert!(matches!(validate_draft(&draft), Err(SynthesisError::InvalidAnswer(_))), "{draft:?}");
        }
    }

    #[test]
    fn render_lists_each_section_with_the_labels_of_its_members() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let draft = SynthesisDraft {
            summary: "Sum:".into(),
            facts: vec![
                SynthesisFact { kind: FactKind::Fix, text: "Do it.".into(), members: vec![a, b] },
                SynthesisFact { kind: FactKind::Gotcha, text: "Beware.".into(), members: vec![b] },
            ],
            confidence: 0.9,
            prose: None,
        };
        let labels = |id: Uuid| if id == a { "t-1".to_owned() } else { "t-2".to_owned() };
        assert_eq!(render(&draft, &labels), "Sum:\nFixes:\n- Do it. [t-1, t-2]\nGotchas:\n- Beware. [t-2]");
        let prose = SynthesisDraft { prose: Some("In prose.".into()), ..draft };
        assert_eq!(render(&prose, &labels), "In prose.");
    }
}
