//! The value guard (DESIGN.md §11): two texts close enough to merge that state different values
//! ("router IP 192.168.7.1" / "192.168.9.1", "Merged PR #260" / "#480", "numpy 1.26" / "2.0") or
//! opposite polarity ("works" / "does not work") are different facts, or an old and a new state of
//! one fact. Embedding similarity cannot tell them apart; this module can, and the clustering step
//! uses it as a veto on a pair before the clique rule runs.
//!
//! A difference needs both sides: each text holds a value the other does not, and the two
//! unmatched values have the same shape (digits and letters in the same places: `#260` / `#480`,
//! `1.26` / `2.0`). A value only one text mentions is a detail the other left out (a paraphrase
//! that adds "took 54 minutes" or "CI run #94249"), never a reason to keep duplicates apart; a
//! value both mention (the line number of a stack trace the paraphrases share) matches. Some
//! values are incidental: how long the work took ("it took about 50 minutes to track down" in one
//! paraphrase, "116 minutes" in the next) and where it was checked ("Confirmed on CI run #94249")
//! are reports about the work, not facts about the system; and a bare
//! number is compared only with a bare number in the same words ("pool size 20 connections" /
//! "30 connections", not "UTS 46" / "RFC 3492").

use std::collections::BTreeSet;

use crate::domain::{Difference, DifferenceKind};
use crate::engine::text::units::split_sentences;
use crate::engine::text::words::Content;

/// A run of hexadecimal characters at least this long, with digits and letters, is a hash or an
/// id (`a1b2c3d`): two of them differ as hashes whatever their digit pattern.
const MIN_HASH_LEN: usize = 7;
/// Opposite polarity counts only between texts whose content words and values mostly agree:
/// below this overlap the negation belongs to a different sentence, not to the same statement.
const POLARITY_MIN_OVERLAP: f64 = 0.7;
/// A verb negated: `not` after an auxiliary ("does not work"), a contraction, `cannot`, `never`,
/// `no longer`. A contrastive `not` ("Redis, not RabbitMQ") and a descriptive `no` ("no timezone")
/// negate no statement.
const AUXILIARIES: [&str; 17] = [
    "do", "does", "did", "is", "are", "was", "were", "can", "could", "should", "will", "would", "has", "have", "had",
    "must", "may",
];
const NEGATING_WORDS: [&str; 2] = ["cannot", "never"];
/// A sentence with one of these verbs and a unit of time reports the effort, not a fact.
const EFFORT_VERBS: [&str; 6] = ["took", "take", "takes", "taken", "spent", "spend"];
const TIME_UNITS: [&str; 14] =
    ["ms", "second", "seconds", "sec", "secs", "minute", "minutes", "min", "mins", "hour", "hours", "h", "day", "days"];
/// A sentence opening with one of these reports how the work was checked.
const CHECK_REPORTS: [&str; 6] = ["confirmed", "verified", "tested", "checked", "reproduced", "validated"];
/// The shape of a bare number.
const BARE_NUMBER: &str = "0";

/// One guarded value: its text, its shape and (for a bare number) the words beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Value {
    text: String,
    shape: String,
    neighbours: BTreeSet<String>,
}

/// What the guard compares of one text: its values and whether it negates.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    content: Content,
    /// Guarded values (those with a digit) outside effort reports.
    values: Vec<Value>,
    negated: bool,
}

impl Claims {
    pub fn of(text: &str) -> Claims {
        let content = Content::of(text);
        let facts: Vec<String> = split_sentences(text).into_iter().filter(|s| !reports_the_work(s)).collect();
        let facts = facts.join(" ");
        let words = plain_words(&facts);
        let values = Content::of(&facts)
            .values
            .into_iter()
            .filter(|v| is_guarded(v))
            .map(|text| {
                let shape = shape(&text);
                let neighbours = if shape == BARE_NUMBER { neighbours(&words, &text) } else { BTreeSet::new() };
                Value { text, shape, neighbours }
            })
            .collect();
        Claims { negated: negates(text), values, content }
    }
}

/// Lower-cased words and numbers in order, punctuation dropped.
fn plain_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|w| w.trim_matches('.').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The words right before and after each occurrence of `number`.
fn neighbours(words: &[String], number: &str) -> BTreeSet<String> {
    let alphabetic = |w: &&String| w.chars().all(char::is_alphabetic);
    let mut out = BTreeSet::new();
    for (i, _) in words.iter().enumerate().filter(|(_, w)| *w == number) {
        out.extend(words[..i].last().filter(alphabetic).cloned());
        out.extend(words.get(i + 1).filter(alphabetic).cloned());
    }
    out
}

/// How long the work took, or how it was checked.
fn reports_the_work(sentence: &str) -> bool {
    let words = plain_words(sentence);
    let effort = words.iter().any(|w| EFFORT_VERBS.contains(&w.as_str()))
        && words.iter().any(|w| TIME_UNITS.contains(&w.as_str()));
    effort || words.first().is_some_and(|w| CHECK_REPORTS.contains(&w.as_str()))
}

/// Values the guard protects: those with a digit (numbers, versions, ids with digits, addresses,
/// ports, hashes, paths with a number) and snake_case names (`icu_properties` / `icu_collator`:
/// sibling packages whose descriptions differ in nothing else). Paths, settings and code spans
/// without digits are left to the merge text, which keeps each of them.
fn is_guarded(value: &str) -> bool {
    value.chars().any(|c| c.is_ascii_digit()) || (value.contains('_') && !value.contains(['/', ' ', '=']))
}

/// A value's shape: each run of digits is `0`, each run of letters `a`, other characters stay;
/// a dotted version of any length is `0.0`; a hash is `hex`.
fn shape(value: &str) -> String {
    let hex = value.len() >= MIN_HASH_LEN
        && value.chars().all(|c| c.is_ascii_hexdigit())
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic());
    if hex {
        return "hex".to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut last = None;
    for c in value.chars() {
        let class = if c.is_ascii_digit() {
            '0'
        } else if c.is_alphabetic() {
            'a'
        } else if c.is_whitespace() {
            ' '
        } else {
            c
        };
        if !(last == Some(class) && matches!(class, '0' | 'a' | ' ')) {
            out.push(class);
        }
        last = Some(class);
    }
    while out.contains("0.0.0") {
        out = out.replace("0.0.0", "0.0");
    }
    out
}

/// Whether the text negates a verb (`no_std` and `non-blocking` are names, not negations).
fn negates(text: &str) -> bool {
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '_' | '-')))
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().enumerate().any(|(i, word)| {
        let previous = i.checked_sub(1).map(|j| words[j]);
        let next = words.get(i + 1).copied();
        word.ends_with("n't")
            || NEGATING_WORDS.contains(word)
            || (*word == "not" && previous.is_some_and(|p| AUXILIARIES.contains(&p)))
            || (*word == "no" && next == Some("longer"))
    })
}

/// The first side's guarded values the second side does not hold.
fn unmatched<'a>(side: &'a Claims, other: &Claims) -> Vec<&'a Value> {
    side.values.iter().filter(|value| !other.content.holds_value(&value.text)).collect()
}

/// Two unmatched values state different values of one thing: same shape, and for bare numbers
/// a word in common beside them.
fn rivals(x: &Value, y: &Value) -> bool {
    x.shape == y.shape && (x.shape != BARE_NUMBER || !x.neighbours.is_disjoint(&y.neighbours))
}

/// How `a` and `b` differ in a value or in polarity; `None` when they may share a cluster.
pub fn difference(a: &Claims, b: &Claims) -> Option<Difference> {
    let (left, right) = (unmatched(a, b), unmatched(b, a));
    let pick = |side: &[&Value], other: &[&Value]| -> Vec<String> {
        side.iter().filter(|x| other.iter().any(|y| rivals(x, y))).map(|x| x.text.clone()).collect()
    };
    let (l, r) = (pick(&left, &right), pick(&right, &left));
    if !l.is_empty() {
        return Some(Difference { kind: DifferenceKind::Value, left: l, right: r });
    }
    if a.negated != b.negated
        && a.content.overlap(&b.content).min(b.content.overlap(&a.content)) >= POLARITY_MIN_OVERLAP
    {
        let word = |negated: bool| vec![if negated { "negated" } else { "affirmed" }.to_owned()];
        return Some(Difference { kind: DifferenceKind::Polarity, left: word(a.negated), right: word(b.negated) });
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn differ(a: &str, b: &str) -> Option<Difference> {
        difference(&Claims::of(a), &Claims::of(b))
    }

    #[test]
    fn addresses_pull_requests_and_versions_that_differ_are_different_facts() {
        let ip = differ("The router IP is 192.168.7.1.", "The router IP is 192.168.9.1.").unwrap();
        assert_eq!(
            (ip.kind, ip.left, ip.right),
            (DifferenceKind::Value, vec!["192.168.7.1".into()], vec!["192.168.9.1".into()])
        );
        assert!(differ("Merged PR #260 into main.", "Merged PR #480 into main.").is_some());
        assert!(differ("Upgraded numpy to 1.26 in the worker.", "Upgraded numpy to 2.0.1 in the worker.").is_some());
        assert!(differ("The API listens on port 8080.", "The API listens on port 9090.").is_some());
        assert!(differ("Deployed commit a1b2c3d4 to staging.", "Deployed commit 9f8e7d60 to staging.").is_some());
        assert!(differ("Logs go to logs/run-12.txt.", "Logs go to logs/run-13.txt.").is_some());
    }

    #[test]
    fn a_value_only_one_text_mentions_is_a_detail_not_a_difference() {
        let a = "Workaround applied at crates/store/src/settings.rs:1115: serialize ids as strings.";
        let b = "Workaround applied at crates/store/src/settings.rs:1115: serialize ids as strings. Confirmed on CI run #94249.";
        let c = "Serialize ids as strings (see crates/store/src/settings.rs, line 1115). It took about 54 minutes.";
        assert_eq!(differ(a, b), None);
        assert_eq!(differ(a, c), None, "path:line and path (line n) say the same");
        assert_eq!(differ(b, c), None, "a run number and a duration are different shapes");
    }

    #[test]
    fn a_shared_stack_trace_line_does_not_block_paraphrases() {
        let a = "Fixed KeyError at app/orders.py:300: the cache key was missing.";
        let b = "The cache key was missing, which raised KeyError at app/orders.py:300; added it.";
        assert_eq!(differ(a, b), None);
    }

    #[test]
    fn a_negated_statement_differs_from_the_affirmed_one() {
        let d = differ(
            "Retrying the upload works after a token refresh.",
            "Retrying the upload does not work after a token refresh.",
        )
        .unwrap();
        assert_eq!(d.kind, DifferenceKind::Polarity);
        assert_eq!((d.left, d.right), (vec!["affirmed".to_owned()], vec!["negated".to_owned()]));
        assert_eq!(
            differ("Retrying works after a refresh.", "Retrying works after a refresh, nothing else needed."),
            None
        );
        assert_eq!(
            differ(
                "Use selectinload for the orders relation.",
                "Cleared the cache; the dashboard no longer shows stale totals."
            ),
            None,
            "a negation in an unrelated text is not opposite polarity"
        );
        assert_eq!(
            differ(
                "Decision for dispatch: NATS JetStream, not RabbitMQ, for replay.",
                "We chose NATS JetStream over RabbitMQ for dispatch because of replay."
            ),
            None,
            "a contrastive not negates no statement"
        );
        assert!(differ("The cache is invalidated on deploy.", "The cache isn't invalidated on deploy.").is_some());
        assert!(
            differ("The cache is invalidated on deploy.", "The cache is no longer invalidated on deploy.").is_some()
        );
    }

    #[test]
    fn how_long_the_work_took_and_where_it_was_checked_are_not_facts_that_keeps_paraphrases_apart() {
        let a = "Chose Celery over RQ for retries (PR #16249). It took about 50 minutes to track down.";
        let b = "We chose Celery over RQ because of retries, see PR #16249. It took about 116 minutes to track down.";
        assert_eq!(differ(a, b), None);
        assert!(differ("Raised the timeout to 30 seconds.", "Raised the timeout to 60 seconds.").is_some());
        let c = "Chose Celery over RQ for retries (PR #16249). Confirmed on CI run #94249.";
        let d = "Chose Celery over RQ for retries, see PR #16249. Confirmed on CI run #20230.";
        assert_eq!(differ(c, d), None, "where the work was checked is a report, not a fact");
        assert!(differ("Merged PR #260 after review.", "Merged PR #480 after review.").is_some());
    }

    #[test]
    fn bare_numbers_differ_only_beside_the_same_words_and_no_std_is_a_name() {
        assert!(differ("Set the pool to 20 connections.", "Set the pool to 30 connections.").is_some());
        assert_eq!(differ("Implements IDNA from UTS 46.", "Implements IDNA, see RFC 3492."), None);
        assert_eq!(differ("A no_std random number crate.", "A random number crate for no_std."), None);
    }

    #[test]
    fn sibling_packages_that_differ_in_one_snake_case_name_are_different_facts() {
        let d = differ("Data for the `icu_properties` crate.", "Data for the `icu_collator` crate.").unwrap();
        assert_eq!((d.left, d.right), (vec!["icu_properties".to_owned()], vec!["icu_collator".to_owned()]));
        assert_eq!(differ("Set acks_late on the task.", "Set acks_late on the task; retries use backoff_max."), None);
    }

    #[test]
    fn shapes_tell_numbers_versions_and_hashes_apart() {
        assert_eq!(shape("#94249"), "#0");
        assert_eq!(shape("54"), "0");
        assert_eq!(shape("2.7.1"), shape("1.26"));
        assert_eq!(shape("v3"), "a0");
        assert_eq!(shape("deadbeef42"), "hex");
        assert_ne!(shape("192.168.7.1:8080"), shape("8080"));
    }

    proptest! {
        #[test]
        fn a_text_never_differs_from_itself(text in "[a-z0-9 .#:/-]{0,80}") {
            prop_assert_eq!(differ(&text, &text), None);
        }

        #[test]
        fn difference_is_symmetric(a in "[a-z]{1,8} [0-9]{1,4}(\\.[0-9]{1,3})? [a-z ]{0,20}( not)?", b in "[a-z]{1,8} [0-9]{1,4}(\\.[0-9]{1,3})? [a-z ]{0,20}( not)?") {
            let (ab, ba) = (differ(&a, &b), differ(&b, &a));
            prop_assert_eq!(ab.map(Difference::swapped), ba);
        }

        #[test]
        fn changing_one_number_in_a_sentence_is_always_a_difference(x in 0u32..100_000, y in 0u32..100_000) {
            prop_assume!(x != y);
            let (a, b) = (format!("Raised the pool size to {x} connections."), format!("Raised the pool size to {y} connections."));
            prop_assert_eq!(differ(&a, &b).map(|d| d.kind), Some(DifferenceKind::Value));
        }

        #[test]
        fn adding_a_sentence_with_new_values_is_never_a_difference(n in 0u32..100_000, m in 1u32..500) {
            let a = format!("Fixed the timeout in api/client.py:{m} by raising the limit.");
            let b = format!("{a} Confirmed on CI run #{n}.");
            prop_assert_eq!(differ(&a, &b), None);
        }
    }
}
