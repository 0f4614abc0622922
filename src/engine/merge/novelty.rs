//! Merging one text field of a cluster: the representative's text verbatim, then each unit
//! (sentence, line, list item, code block) of the other members that brings something the text
//! does not already carry, in source order; then, while the coverage of the sources' values and
//! shared content words is below target, the unit that adds most of what is missing.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::text::units::{Sep, Unit, UnitKind, units};
use crate::engine::text::words::Content;

/// A unit whose content words are at least this share new is kept even without a new value.
pub const NOVEL_WORD_SHARE: f64 = 0.5;
/// Share of the sources' values and content words the merged text must hold.
pub const COVERAGE_TARGET: f64 = 0.95;

struct Candidate {
    unit: Unit,
    content: Content,
    kept: bool,
}

/// One merged field: its text (None when no member has the field), the sources' distinct
/// items and how many of them the text holds, and the character lengths.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedField {
    pub text: Option<String>,
    pub source_items: usize,
    pub present_items: usize,
    pub source_chars: usize,
    pub longest_source_chars: usize,
}

impl MergedField {
    pub fn coverage(&self) -> f64 {
        if self.source_items == 0 { 1.0 } else { self.present_items as f64 / self.source_items as f64 }
    }

    pub fn chars(&self) -> usize {
        self.text.as_deref().map_or(0, |t| t.chars().count())
    }
}

/// Merges the texts of one field, the representative's first.
pub fn merge_texts(texts: &[Option<&str>]) -> MergedField {
    let present: Vec<&str> = texts.iter().flatten().map(|t| t.trim()).filter(|t| !t.is_empty()).collect();
    let source_chars = present.iter().map(|t| t.chars().count()).sum();
    let longest_source_chars = present.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let Some((lead, others)) = present.split_first() else {
        return MergedField { text: None, source_items: 0, present_items: 0, source_chars, longest_source_chars };
    };
    let mut said = Content::default();
    for unit in units(lead) {
        said.extend(&Content::of(&unit.text));
    }
    let mut sources = said.clone();
    let mut support: BTreeMap<String, usize> = said.words.iter().map(|w| (w.clone(), 1)).collect();
    let mut members: Vec<Vec<Candidate>> = others
        .iter()
        .map(|text| {
            let candidates: Vec<Candidate> = units(text)
                .into_iter()
                .map(|unit| {
                    let content = Content::of(&unit.text);
                    sources.extend(&content);
                    Candidate { unit, content, kept: false }
                })
                .collect();
            let words: BTreeSet<&String> = candidates.iter().flat_map(|c| c.content.words.iter()).collect();
            for word in words {
                *support.entry(word.clone()).or_default() += 1;
            }
            candidates
        })
        .collect();
    // What coverage asks for: every value, and the content words two members use. A word only
    // one member chose is its wording, not the cluster's fact: counting it would keep every
    // paraphrase whole (a statement of its own is kept anyway, for its new words or values).
    if !others.is_empty() {
        sources = sources.with_words(|w| support.get(w).is_some_and(|&n| n >= 2));
    }

    for candidate in members.iter_mut().flatten() {
        if brings_something_new(&said, &candidate.content) {
            said.extend(&candidate.content);
            candidate.kept = true;
        }
    }
    for _ in 0..MAX_TOP_UP_ROUNDS {
        if (said.shared_with(&sources) as f64) >= COVERAGE_TARGET * sources.len() as f64 {
            break;
        }
        let Some(best) = most_missing(&said, &sources, &members) else { break };
        let candidate = &mut members[best.0][best.1];
        said.extend(&candidate.content);
        candidate.kept = true;
    }
    // Measured again on the rendered text, where units meet (a quote opened in one can pair with
    // one in the next): whatever it lacks is added until the target holds, and past a bound every
    // remaining unit is kept, so the target holds whenever the sources allow it.
    let (mut text, mut held) = rendered(lead, &members);
    let mut rounds = 0;
    while (held.shared_with(&sources) as f64) < COVERAGE_TARGET * sources.len() as f64 {
        match most_missing(&held, &sources, &members) {
            Some((m, k)) if rounds < MAX_TOP_UP_ROUNDS => members[m][k].kept = true,
            Some(_) => members.iter_mut().flatten().for_each(|c| c.kept = true),
            None => break,
        }
        rounds += 1;
        (text, held) = rendered(lead, &members);
    }
    MergedField {
        text: Some(text),
        source_items: sources.len(),
        present_items: held.shared_with(&sources),
        source_chars,
        longest_source_chars,
    }
}

/// Rounds of adding one unit to the rendered text before every remaining unit is added at once.
const MAX_TOP_UP_ROUNDS: usize = 16;

/// The merged text and what it holds, measured unit by unit as a reader would split it.
fn rendered(lead: &str, members: &[Vec<Candidate>]) -> (String, Content) {
    let text = render(lead, members);
    let mut held = Content::default();
    for unit in units(&text) {
        held.extend(&Content::of(&unit.text));
    }
    (text, held)
}

/// A new value is a fact; otherwise enough new content words make a new statement, and a
/// paraphrase of what is already said brings neither.
fn brings_something_new(said: &Content, candidate: &Content) -> bool {
    let (new_values, new_words) = said.missing_from(candidate);
    new_values > 0
        || (!candidate.words.is_empty() && new_words as f64 / candidate.words.len() as f64 >= NOVEL_WORD_SHARE)
}

/// The unkept unit adding the most of what coverage asks for and `said` lacks, the earliest on ties.
fn most_missing(said: &Content, sources: &Content, members: &[Vec<Candidate>]) -> Option<(usize, usize)> {
    let mut best: Option<((usize, usize), usize)> = None;
    for (m, candidates) in members.iter().enumerate() {
        for (k, candidate) in candidates.iter().enumerate().filter(|(_, c)| !c.kept) {
            let gain = said.lacks_of(&candidate.content, &sources.words);
            if gain > 0 && best.is_none_or(|(_, g)| gain > g) {
                best = Some(((m, k), gain));
            }
        }
    }
    best.map(|(at, _)| at)
}

fn render(lead: &str, members: &[Vec<Candidate>]) -> String {
    let mut out = lead.to_owned();
    let mut last_kind = units(lead).last().map_or(UnitKind::Prose, |u| u.kind);
    for candidates in members {
        let mut first = true;
        // The strongest separator among the units skipped since the last kept one.
        let mut skipped = Sep::Space;
        for candidate in candidates {
            if !candidate.kept {
                skipped = skipped.max(candidate.unit.sep);
                continue;
            }
            let unit = &candidate.unit;
            let sep = if first {
                if last_kind == UnitKind::Prose && unit.kind == UnitKind::Prose { Sep::Space } else { Sep::Line }
            } else {
                unit.sep.max(skipped)
            };
            if sep == Sep::Space && last_kind == UnitKind::Prose && !out.ends_with(['.', '!', '?', ';', ':']) {
                // Items from different members read as sentences, not run together.
                out.push('.');
            }
            out.push_str(sep.as_str());
            out.push_str(&unit.text);
            last_kind = unit.kind;
            first = false;
            skipped = Sep::Space;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(texts: &[&str]) -> MergedField {
        merge_texts(&texts.iter().map(|t| Some(*t)).collect::<Vec<_>>())
    }

    #[test]
    fn a_paraphrase_adds_nothing_and_a_new_value_is_kept() {
        let m = merged(&[
            "Raised pool_size to 20 after connection timeouts.",
            "After connection timeouts, raised pool_size to 20.",
            "Raised pool_size to 30 after connection timeouts.",
        ]);
        assert_eq!(
            m.text.as_deref(),
            Some("Raised pool_size to 20 after connection timeouts. Raised pool_size to 30 after connection timeouts.")
        );
        assert_eq!(m.coverage(), 1.0);
    }

    #[test]
    fn titles_list_items_and_code_blocks_keep_their_lines() {
        let m = merged(&[
            "Pool settings\nThe pool is small.",
            "Pool settings\n- Set pool_size=20\n```\nexport POOL=20\n```\nThe pool is small.",
        ]);
        assert_eq!(
            m.text.as_deref(),
            Some("Pool settings\nThe pool is small.\n- Set pool_size=20\n```\nexport POOL=20\n```")
        );
    }

    #[test]
    fn goals_without_punctuation_become_separate_sentences() {
        let m = merged(&["Stop the QueuePool timeouts", "Find why uploads hang"]);
        assert_eq!(m.text.as_deref(), Some("Stop the QueuePool timeouts. Find why uploads hang"));
    }

    #[test]
    fn below_the_coverage_target_more_units_are_kept() {
        // "lambda" is one member's wording until a second member says it too.
        let one = merged(&[
            "Alpha beta gamma delta epsilon zeta eta theta iota kappa.",
            "Alpha beta gamma delta epsilon zeta eta theta iota lambda.",
        ]);
        assert_eq!(one.text.as_deref(), Some("Alpha beta gamma delta epsilon zeta eta theta iota kappa."));
        let two = merged(&[
            "Alpha beta gamma delta epsilon zeta eta theta iota kappa.",
            "Alpha beta gamma delta epsilon zeta eta theta iota lambda.",
            "Alpha beta gamma delta epsilon zeta eta theta lambda mu.",
        ]);
        assert!(two.coverage() >= COVERAGE_TARGET, "{two:?}");
        assert!(two.text.as_deref().is_some_and(|t| t.contains("lambda")), "{two:?}");
    }

    #[test]
    fn a_field_no_member_has_stays_absent() {
        let m = merge_texts(&[None, Some("  "), None]);
        assert_eq!(m.text, None);
        assert_eq!(m.coverage(), 1.0);
    }
}
