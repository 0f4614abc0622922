//! Merging a cluster into one consolidated memory: each text field says once what its members
//! say (see `novelty`), tags, files and task ids are the union, reuse is summed and learned_at
//! is the earliest; coverage and compression say what the merge kept and how much it shrank.

pub mod build;
pub mod embed;
pub mod novelty;

use chrono::{DateTime, Utc};

use crate::domain::Memory;
use crate::engine::merge::novelty::{MergedField, merge_texts};

/// The text and bookkeeping fields of a consolidated memory (the planner adds ids, embedding
/// and provenance).
#[derive(Debug, Clone, PartialEq)]
pub struct MergedFields {
    pub task_id: Option<String>,
    /// The representative's task id, then every member's task ids and task id, each once.
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
    /// Share of the sources' distinct values and content words (per text field, all four
    /// fields counted together) that the merged fields hold.
    pub coverage: f32,
    /// Merged length / total source length, in characters over all four text fields.
    pub compression: f32,
    /// Merged execution_summary length / the longest source execution_summary.
    pub length_vs_longest: f32,
    /// The merged execution_summary's units, each with the members (indices) that state it.
    pub units: Vec<(String, Vec<usize>)>,
}

fn union<'a>(lists: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    lists.filter(move |&item| seen.insert(item)).cloned().collect()
}

fn ratio(numerator: usize, denominator: usize) -> f32 {
    if denominator == 0 { 1.0 } else { numerator as f32 / denominator as f32 }
}

/// Merges `members`, whose first element is the representative (possibly a consolidated
/// memory a newcomer folds into); the others follow in the order their units are appended.
/// `members` is never empty (a cluster).
pub fn merge_members(members: &[&Memory]) -> MergedFields {
    let field = |read: fn(&Memory) -> Option<&str>| -> MergedField {
        merge_texts(&members.iter().map(|m| read(m)).collect::<Vec<_>>())
    };
    let summary = field(|m| Some(m.execution_summary.as_str()));
    let goal = field(|m| m.goal.as_deref());
    let result = field(|m| m.result.as_deref());
    let feedback = field(|m| m.feedback.as_deref());
    let all = [&summary, &goal, &result, &feedback];
    let coverage = ratio(all.iter().map(|f| f.present_items).sum(), all.iter().map(|f| f.source_items).sum());
    let compression = ratio(all.iter().map(|f| f.chars()).sum(), all.iter().map(|f| f.source_chars).sum());
    let length_vs_longest = ratio(summary.chars(), summary.longest_source_chars);

    let representative = members[0];
    let task_ids = union(
        representative.task_id.iter().chain(members.iter().flat_map(|m| m.task_ids.iter().chain(m.task_id.iter()))),
    );
    MergedFields {
        task_id: representative.task_id.clone(),
        task_ids,
        units: summary.origins,
        execution_summary: summary.text.unwrap_or_default(),
        goal: goal.text,
        result: result.text,
        feedback: feedback.text,
        tags: union(members.iter().flat_map(|m| m.tags.iter())),
        files: union(members.iter().flat_map(|m| m.files.iter())),
        success: representative.success.or_else(|| members.iter().find_map(|m| m.success)),
        reused_count: members.iter().fold(0i32, |acc, m| acc.saturating_add(m.reused_count.max(0))),
        last_reused_at: members.iter().filter_map(|m| m.last_reused_at).max(),
        learned_at: members.iter().map(|m| m.learned_at).min().unwrap_or(representative.learned_at),
        coverage,
        compression,
        length_vs_longest,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::engine::text::units::{key, units};

    pub fn memory(id: u128, summary: &str) -> Memory {
        Memory {
            task_id: Some(format!("task-{id}")),
            success: Some(true),
            reused_count: 1,
            learned_at: Utc.with_ymd_and_hms(2025, 1, id as u32, 0, 0, 0).unwrap(),
            ..Memory::for_test(id, summary)
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
        assert_eq!(merged.coverage, 1.0);
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

    /// Five wordings of one fix, as five agents wrote them; the first holds the one gotcha.
    pub fn five_wordings() -> Vec<Memory> {
        [
            "Fixed the QueuePool limit error in backend/app/db/session.py. Sessions were held open during slow HTTP calls to the billing API. Released the session before the HTTP call and set pool_size=20. Gotcha: the pool fails when a background task keeps a session across an await.",
            "Fixed QueuePool limit errors in backend/app/db/session.py: sessions were held open during slow HTTP calls to the billing API. Released the session before the HTTP call and set pool_size=20.",
            "QueuePool limit error again in backend/app/db/session.py. Sessions held open during the slow billing API HTTP calls. Fix: release the session before the HTTP call, set pool_size=20.",
            "The QueuePool limit error came back in backend/app/db/session.py because sessions were held open during slow HTTP calls to the billing API. Releasing the session before the HTTP call and setting pool_size=20 fixed it.",
            "Fixed QueuePool limit errors: the session is now released before the slow HTTP call to the billing API, and pool_size=20 is set in backend/app/db/session.py.",
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| memory(i as u128 + 1, text))
        .collect()
    }

    #[test]
    fn five_wordings_of_one_fix_collapse_to_about_one_and_keep_the_gotcha() {
        let members = five_wordings();
        let merged = merge_members(&members.iter().collect::<Vec<_>>());
        assert!(merged.length_vs_longest <= 1.5, "{} {}", merged.length_vs_longest, merged.execution_summary);
        assert!(merged.compression <= 0.4, "{}", merged.compression);
        assert!(merged.coverage >= 0.95, "{}", merged.coverage);
        assert!(merged.execution_summary.starts_with(&members[0].execution_summary));
        assert!(merged.execution_summary.contains("fails when a background task keeps a session across an await"));
    }

    #[test]
    fn five_paraphrases_of_a_checkout_fix_say_it_once_and_keep_every_value_and_task_id() {
        // Five agents' wordings of one fix (the case a trial user measured at 2.32x).
        let texts = [
            "Checkout returned 500s intermittently. Root cause: a stale pooled connection that the database had already closed. Fixed by setting pool_recycle=60 and retrying the query once.",
            "Intermittent HTTP 500 errors on checkout were caused by stale connections in the pool (the database closes idle ones). Set pool_recycle=60 and added one retry.",
            "The checkout endpoint failed with 500 now and then because the pool handed out a stale connection. Solution: pool_recycle=60 plus a single retry of the query.",
            "Fixed flaky checkout 500s: stale pooled connections. Set pool_recycle=60 and retry once.",
            "Checkout 500s traced to stale connections from the pool; the database drops idle connections. Configured pool_recycle=60 and wrapped the query in one retry.",
        ];
        let members: Vec<Memory> = texts.iter().enumerate().map(|(i, t)| memory(i as u128 + 1, t)).collect();
        let merged = merge_members(&members.iter().collect::<Vec<_>>());
        assert!(merged.length_vs_longest <= 1.5, "{}: {}", merged.length_vs_longest, merged.execution_summary);
        for value in ["pool_recycle=60", "500"] {
            assert!(merged.execution_summary.contains(value), "{value}: {}", merged.execution_summary);
        }
        assert_eq!(merged.task_ids, vec!["task-1", "task-2", "task-3", "task-4", "task-5"]);
        assert_eq!(merged.coverage, 1.0);
        assert_eq!(merged.execution_summary.matches("pool_recycle=60").count(), 1, "{}", merged.execution_summary);
    }

    #[test]
    fn a_wording_that_differs_only_by_a_version_survives() {
        let a = memory(1, "Pinned sqlalchemy to 2.0.29 to stop the QueuePool errors.");
        let b = memory(2, "Pinned sqlalchemy to 2.0.29 to stop QueuePool errors.");
        let c = memory(3, "Pinned sqlalchemy to 2.0.30 to stop the QueuePool errors.");
        let merged = merge_members(&[&a, &b, &c]);
        assert_eq!(
            merged.execution_summary,
            "Pinned sqlalchemy to 2.0.29 to stop the QueuePool errors. Pinned sqlalchemy to 2.0.30 to stop the QueuePool errors."
        );
    }

    #[test]
    fn goals_merge_as_separate_sentences_not_run_together() {
        let mut a = memory(1, "A.");
        let mut b = memory(2, "B.");
        let mut c = memory(3, "C.");
        a.goal = Some("Stop the QueuePool timeouts".into());
        b.goal = Some("stop the queuepool timeouts".into());
        c.goal = Some("Make uploads to S3 resumable".into());
        let merged = merge_members(&[&a, &b, &c]);
        assert_eq!(merged.goal.as_deref(), Some("Stop the QueuePool timeouts. Make uploads to S3 resumable"));
    }

    #[test]
    fn every_task_id_is_kept_once_the_representatives_first() {
        let a = memory(3, "A.");
        let b = memory(1, "B.");
        let c = Memory { task_id: Some("task-3".into()), ..memory(2, "C.") };
        let merged = merge_members(&[&a, &b, &c]);
        assert_eq!(merged.task_id.as_deref(), Some("task-3"));
        assert_eq!(merged.task_ids, vec!["task-3", "task-1"]);
    }

    #[test]
    fn a_newcomer_folds_into_a_consolidated_memory_adding_only_what_is_new() {
        let consolidated = Memory {
            task_ids: vec!["task-1".into(), "task-2".into()],
            ..memory(1, "Raised pool_size to 20 after QueuePool timeouts.")
        };
        let newcomer = memory(3, "After QueuePool timeouts, raised pool_size to 20. Also set pool_recycle=280.");
        let merged = merge_members(&[&consolidated, &newcomer]);
        assert_eq!(
            merged.execution_summary,
            "Raised pool_size to 20 after QueuePool timeouts. Also set pool_recycle=280."
        );
        assert_eq!(merged.task_ids, vec!["task-1", "task-2", "task-3"]);
    }

    #[test]
    fn realistic_paraphrases_collapse_and_keep_their_values() {
        // Three wordings a user wrote in a trial of the service: each says the same fix.
        let texts = [
            "To regenerate the OpenAPI client run scripts/gen_client.sh with NODE_OPTIONS=--max-old-space-size=4096; the default heap runs out on the 2 MB spec.",
            "Regenerating the OpenAPI client: scripts/gen_client.sh needs NODE_OPTIONS=--max-old-space-size=4096, otherwise node runs out of heap on the 2 MB spec.",
            "scripts/gen_client.sh regenerates the OpenAPI client; set NODE_OPTIONS=--max-old-space-size=4096 first or node exhausts the default heap on the 2 MB spec.",
        ];
        let members: Vec<Memory> = texts.iter().enumerate().map(|(i, t)| memory(i as u128 + 1, t)).collect();
        let merged = merge_members(&members.iter().collect::<Vec<_>>());
        // The second wording names the process that runs out of heap ("node"), as the third does:
        // that word is the cluster's, so one more sentence stays; the third says nothing new.
        assert!(merged.length_vs_longest < 2.0, "{}: {}", merged.length_vs_longest, merged.execution_summary);
        assert!(!merged.execution_summary.contains("exhausts"), "{}", merged.execution_summary);
        assert!(merged.coverage >= 0.95);
        for value in ["scripts/gen_client.sh", "NODE_OPTIONS=--max-old-space-size=4096", "2 MB"] {
            assert!(merged.execution_summary.contains(value), "{value}");
        }
    }

    #[test]
    fn four_wordings_of_a_pin_fix_collapse_and_keep_every_version() {
        let texts = [
            "Fixed the flaky upload test by pinning reqwest to 0.11.27 in Cargo.toml; the multipart boundary changed in 0.12.0. Gotcha: cargo update silently bumps it back unless the version uses =0.11.27.",
            "Pinning reqwest to =0.11.27 in Cargo.toml resolved the flaky upload test caused by the multipart boundary change in reqwest 0.12.0; cargo update reverts an unpinned version. Beware: without the = sign cargo update bumps it again.",
            "Resolved the upload test flake: reqwest 0.12.0 altered multipart boundaries, so Cargo.toml now pins reqwest =0.11.27. Gotcha: use the exact = requirement or cargo update will bump it.",
            "Fix: pin reqwest =0.11.27 in Cargo.toml (a plain 0.11.27 gets bumped by cargo update).",
        ];
        let members: Vec<Memory> = texts.iter().enumerate().map(|(i, t)| memory(i as u128 + 1, t)).collect();
        let merged = merge_members(&members.iter().collect::<Vec<_>>());
        for value in ["0.11.27", "=0.11.27", "0.12.0", "Cargo.toml"] {
            assert!(merged.execution_summary.contains(value), "{value}");
        }
        assert!(merged.length_vs_longest <= 1.1, "{}: {}", merged.length_vs_longest, merged.execution_summary);
    }

    fn sentence() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "pool", "session", "timeout", "upload", "retry", "cache", "worker", "queue", "billing", "schema", "index",
            "lock", "release", "raise", "held", "slow", "stale", "token",
        ]);
        let value = prop::sample::select(vec![
            "2.0.29",
            "2.0.30",
            "pool_size=20",
            "pool_size=30",
            "retries=20",
            "src/db.rs",
            "`cargo test`",
            "#42",
            "27\"",
        ]);
        (prop::collection::vec(words, 2..7), prop::option::of(value), 0usize..3).prop_map(|(words, value, shape)| {
            let mut s = words.join(" ");
            if let Some(v) = value {
                s.push_str(&format!(" {v}"));
            }
            match shape {
                0 => format!("{s}."),
                1 => format!("- {s}"),
                _ => format!("Title {s}\n"),
            }
        })
    }

    fn member_strategy() -> impl Strategy<Value = (Vec<String>, Vec<String>, Option<String>)> {
        (
            prop::collection::vec(sentence(), 1..5),
            prop::collection::vec(prop::sample::select(vec!["db", "perf", "bug", "s3"]).prop_map(String::from), 0..3),
            prop::option::of((0u8..4).prop_map(|t| format!("task-{t}"))),
        )
    }

    proptest! {
        #[test]
        fn merges_cover_the_sources_and_lose_no_tag_file_or_task_id(
            specs in prop::collection::vec(member_strategy(), 2..7)
        ) {
            let members: Vec<Memory> = specs
                .iter()
                .enumerate()
                .map(|(i, (sentences, tags, task_id))| Memory {
                    tags: tags.clone(),
                    files: vec![format!("src/m{}.rs", i % 3)],
                    task_id: task_id.clone(),
                    goal: sentences.first().cloned(),
                    ..memory(i as u128 + 1, &sentences.join(" "))
                })
                .collect();
            let refs: Vec<&Memory> = members.iter().collect();
            let merged = merge_members(&refs);
            prop_assert!(merged.coverage >= 1.0, "{}", merged.coverage);
            // No unit says what another says, whatever its case, punctuation or word endings.
            for text in [Some(&merged.execution_summary), merged.goal.as_ref()].into_iter().flatten() {
                let keys: Vec<String> = units(text).iter().map(|u| key(&u.text)).collect();
                let distinct: std::collections::HashSet<&String> = keys.iter().collect();
                prop_assert_eq!(distinct.len(), keys.len(), "{:?}", text);
            }
            // Independently of how values are recognized: every value a member states is in the text.
            let text = merged.execution_summary.to_lowercase();
            for value in ["2.0.29", "2.0.30", "pool_size=20", "pool_size=30", "retries=20", "src/db.rs", "#42", "27\""] {
                if members.iter().any(|m| m.execution_summary.contains(value)) {
                    prop_assert!(text.contains(value), "{value} lost from {text:?}");
                }
            }
            for m in &members {
                prop_assert!(m.tags.iter().all(|t| merged.tags.contains(t)));
                prop_assert!(m.files.iter().all(|f| merged.files.contains(f)));
                prop_assert!(m.task_id.iter().all(|t| merged.task_ids.contains(t)));
            }
            let distinct: std::collections::HashSet<&String> = merged.task_ids.iter().collect();
            prop_assert_eq!(distinct.len(), merged.task_ids.len());
        }
    }
}
