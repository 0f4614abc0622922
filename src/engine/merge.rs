//! Merging a cluster into one consolidated memory: the representative's text plus every
//! sentence of the other members it does not already say, the union of tags and files, summed
//! reuse and the earliest learned_at, with a preservation score.

use chrono::{DateTime, Utc};

use super::model::MemorySnapshot;
use super::text::{Sentence, sentences};

/// The text and bookkeeping fields of a consolidated memory (the planner adds ids, embedding
/// and provenance).
#[derive(Debug, Clone, PartialEq)]
pub struct MergedFields {
    pub task_id: Option<String>,
    /// Every member's task ids: the representative's first, deduplicated, in member order.
    pub task_ids: Vec<String>,
    pub execution_summary: String,
    pub goal: Option<String>,
    pub result: Option<String>,
    pub feedback: Option<String>,
    pub tags: Vec<String>,
    pub files: Vec<String>,
    pub success: Option<bool>,
    pub reused_count: i32,
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
    /// Share of the sources' distinct sentences (all text fields) present in the result.
    pub preservation: f32,
}

/// Text accumulated sentence by sentence, skipping what it already says.
struct MergedText {
    parts: Vec<String>,
    said: Vec<Sentence>,
}

impl MergedText {
    fn new() -> MergedText {
        MergedText { parts: Vec::new(), said: Vec::new() }
    }

    fn add(&mut self, text: &str) {
        for sentence in sentences(text) {
            if !self.says(&sentence) {
                self.parts.push(sentence.text.clone());
                self.said.push(sentence);
            }
        }
    }

    fn says(&self, sentence: &Sentence) -> bool {
        self.said.iter().any(|s| s.says_the_same_as(sentence))
    }

    fn into_text(self) -> Option<String> {
        (!self.parts.is_empty()).then(|| self.parts.join(" "))
    }
}

fn merge_field<'a>(values: impl Iterator<Item = Option<&'a str>>) -> MergedText {
    let mut merged = MergedText::new();
    for value in values.flatten() {
        merged.add(value);
    }
    merged
}

fn union(lists: impl Iterator<Item = Vec<String>>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in lists.flatten() {
        if seen.insert(item.clone()) {
            out.push(item);
        }
    }
    out
}

/// Reads one text field of a memory.
type FieldOf = fn(&MemorySnapshot) -> Option<&str>;

/// Merges `members`, whose first element is the representative; the others follow in the order
/// their sentences are appended.
pub fn merge_members(members: &[&MemorySnapshot]) -> MergedFields {
    let summary = merge_field(members.iter().map(|m| Some(m.execution_summary.as_str())));
    let goal = merge_field(members.iter().map(|m| m.goal.as_deref()));
    let result = merge_field(members.iter().map(|m| m.result.as_deref()));
    let feedback = merge_field(members.iter().map(|m| m.feedback.as_deref()));

    let mut distinct = 0usize;
    let mut present = 0usize;
    let fields: [(&MergedText, FieldOf); 4] = [
        (&summary, |m| Some(m.execution_summary.as_str())),
        (&goal, |m| m.goal.as_deref()),
        (&result, |m| m.result.as_deref()),
        (&feedback, |m| m.feedback.as_deref()),
    ];
    for (merged, field) in fields {
        let mut source_sentences: Vec<Sentence> = Vec::new();
        for text in members.iter().filter_map(|m| field(m)) {
            for s in sentences(text) {
                if !source_sentences.iter().any(|o| o.normalized == s.normalized) {
                    source_sentences.push(s);
                }
            }
        }
        distinct += source_sentences.len();
        present += source_sentences.iter().filter(|s| merged.says(s)).count();
    }
    let preservation = if distinct == 0 { 1.0 } else { present as f32 / distinct as f32 };

    let representative = members[0];
    let task_ids = union(
        std::iter::once(representative.task_id.clone().into_iter().collect())
            .chain(members.iter().map(|m| m.task_ids.iter().cloned().chain(m.task_id.clone()).collect())),
    );
    MergedFields {
        task_id: representative.task_id.clone(),
        task_ids,
        execution_summary: summary.into_text().unwrap_or_default(),
        goal: goal.into_text(),
        result: result.into_text(),
        feedback: feedback.into_text(),
        tags: union(members.iter().map(|m| m.tags.clone())),
        files: union(members.iter().map(|m| m.files.clone())),
        success: representative.success.or_else(|| members.iter().find_map(|m| m.success)),
        reused_count: members.iter().fold(0i32, |acc, m| acc.saturating_add(m.reused_count.max(0))),
        last_reused_at: members.iter().filter_map(|m| m.last_reused_at).max(),
        learned_at: members.iter().map(|m| m.learned_at).min().unwrap_or(representative.learned_at),
        preservation,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    pub fn memory(id: u128, summary: &str) -> MemorySnapshot {
        MemorySnapshot {
            task_id: Some(format!("task-{id}")),
            success: Some(true),
            reused_count: 1,
            learned_at: Utc.with_ymd_and_hms(2025, 1, id as u32, 0, 0, 0).unwrap(),
            ..MemorySnapshot::for_test(id, summary)
        }
    }

    #[test]
    fn keeps_the_representative_text_and_appends_only_new_sentences() {
        let a = memory(1, "Fixed the pool timeout in db.py. Raised pool_size to 20.");
        let b = memory(2, "raised pool_size to 20. Verified with `pytest tests/ -q`.");
        let merged = merge_members(&[&a, &b]);
        assert_eq!(
            merged.execution_summary,
            "Fixed the pool timeout in db.py. Raised pool_size to 20. Verified with `pytest tests/ -q`."
        );
        assert_eq!(merged.preservation, 1.0);
    }

    #[test]
    fn unions_tags_and_files_sums_reuse_and_takes_the_earliest_date() {
        let mut a = memory(5, "A.");
        a.tags = vec!["db".into(), "bug".into()];
        a.files = vec!["a.py".into()];
        a.reused_count = 4;
        let mut b = memory(2, "B.");
        b.tags = vec!["bug".into(), "perf".into()];
        b.files = vec!["b.py".into(), "a.py".into()];
        b.reused_count = 3;
        b.last_reused_at = Some(Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap());
        let merged = merge_members(&[&a, &b]);
        assert_eq!(merged.tags, vec!["db", "bug", "perf"]);
        assert_eq!(merged.files, vec!["a.py", "b.py"]);
        assert_eq!(merged.reused_count, 7);
        assert_eq!(merged.learned_at, b.learned_at);
        assert_eq!(merged.last_reused_at, b.last_reused_at);
        assert_eq!(merged.task_id.as_deref(), Some("task-5"));
    }

    #[test]
    fn optional_fields_merge_and_stay_absent_when_no_member_has_them() {
        let mut a = memory(1, "A.");
        let mut b = memory(2, "B.");
        a.result = Some("Set pool_recycle=280.".into());
        b.result = Some("Set pool_recycle=280. The error no longer occurs.".into());
        let merged = merge_members(&[&a, &b]);
        assert_eq!(merged.result.as_deref(), Some("Set pool_recycle=280. The error no longer occurs."));
        assert_eq!(merged.goal, None);
        assert_eq!(merged.feedback, None);
    }
}
