//! The default synthesizer, deterministic and offline. It reads each topic member's sentences and
//! list items, gathers them into facts (paraphrases and restatements across members are one
//! fact, stated in the words of the first member that says it), gives each fact a kind (the
//! member's memory type first, cue words otherwise) and lists every fact once with the members
//! that state it. It declines a topic with fewer than two facts, or one of whose members states
//! every fact: such a synthesis would only restate a memory.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{FactKind, MemoryType, SynthesisFact};
use crate::engine::synthesis::cues::{Role, role};
use crate::engine::synthesis::{SynthesisDraft, SynthesisError, Synthesizer, TopicView};
use crate::engine::text::units::{UnitKind, units};
use crate::engine::text::words::Content;

/// Two sentences make one fact when their values and content words overlap this much
/// (Jaccard), or when the smaller is contained in the larger this much.
const SAME_FACT_JACCARD: f64 = 0.45;
const SAME_FACT_CONTAINMENT: f64 = 0.75;
/// A sentence with fewer items than this says too little to be a fact.
const MIN_FACT_ITEMS: usize = 2;
/// New facts one member brings at most (its gist is in its opening, not its 50th sentence).
const MAX_FACTS_PER_MEMBER: usize = 4;
/// Units of one member read at most.
const MAX_UNITS_PER_MEMBER: usize = 64;
const SUMMARY_WORDS: usize = 3;
const MIN_SUMMARY_WORD_CHARS: usize = 4;

struct Gathered {
    text: String,
    content: Content,
    kind: FactKind,
    /// Member indices, in member order.
    members: BTreeSet<usize>,
}

fn same_fact(a: &Content, b: &Content) -> bool {
    // "Pin serde to 1.0.200" and "Pin serde to 1.0.201" disagree: different values, two facts.
    if a.missing_from(b).0 > 0 && b.missing_from(a).0 > 0 {
        return false;
    }
    let shared = a.shared_with(b) as f64;
    let smaller = a.len().min(b.len()).max(1) as f64;
    a.overlap(b) >= SAME_FACT_JACCARD || shared / smaller >= SAME_FACT_CONTAINMENT
}

/// A unit as one line of a list: its own list marker and line breaks gone.
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let marker = |w: &str| {
        matches!(w, "-" | "*" | "+")
            || (w.ends_with('.') && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit()) && w.len() > 1)
    };
    let start = usize::from(words.first().is_some_and(|w| marker(w)));
    words[start..].join(" ")
}

/// A fact's kind: what its member is, else what its sentence says.
pub fn kind_of(memory_type: Option<MemoryType>, sentence: &str) -> FactKind {
    match memory_type {
        Some(MemoryType::ErrorFix) => FactKind::Fix,
        Some(MemoryType::Warning) => FactKind::Gotcha,
        Some(MemoryType::Decision) => FactKind::Decision,
        Some(MemoryType::Learning) => FactKind::Practice,
        _ => match role(sentence) {
            Role::Practice => FactKind::Practice,
            Role::Gotcha => FactKind::Gotcha,
            Role::Statement => FactKind::Fact,
        },
    }
}

fn gather(view: &TopicView<'_>) -> Vec<Gathered> {
    let mut facts: Vec<Gathered> = Vec::new();
    for (index, member) in view.members.iter().enumerate() {
        let mut brought = 0;
        // Bounded, since every unit is compared with every fact so far.
        for unit in member.texts.iter().flat_map(|t| units(t)).take(MAX_UNITS_PER_MEMBER) {
            // Titles, code blocks and lines announcing a list are material, not facts.
            if matches!(unit.kind, UnitKind::Line | UnitKind::Code) || unit.text.trim_end().ends_with(':') {
                continue;
            }
            let content = Content::of(&unit.text);
            if content.len() < MIN_FACT_ITEMS {
                continue;
            }
            let best = facts
                .iter_mut()
                .filter(|f| same_fact(&f.content, &content))
                .max_by(|a, b| a.content.overlap(&content).total_cmp(&b.content.overlap(&content)));
            match best {
                Some(fact) => {
                    fact.members.insert(index);
                }
                None if brought < MAX_FACTS_PER_MEMBER => {
                    brought += 1;
                    facts.push(Gathered {
                        kind: kind_of(member.memory_type, &unit.text),
                        text: one_line(&unit.text),
                        content,
                        members: BTreeSet::from([index]),
                    });
                }
                None => {}
            }
        }
    }
    facts
}

/// Up to three tags, else words, that at least two members use, most widely used first (a tag
/// that names a memory type says nothing about the topic).
fn shared_words(view: &TopicView<'_>) -> Vec<String> {
    let mut users: BTreeMap<String, (BTreeSet<usize>, usize)> = BTreeMap::new();
    let mut position = 0usize;
    for (index, member) in view.members.iter().enumerate() {
        for tag in &member.tags {
            let tag = tag.to_lowercase();
            if tag.replace('-', "_").parse::<MemoryType>().is_ok() {
                continue;
            }
            // Tags come before any word.
            let entry = users.entry(tag).or_insert_with(|| (BTreeSet::new(), 0));
            entry.0.insert(index);
        }
    }
    for (index, member) in view.members.iter().enumerate() {
        for text in &member.texts {
            for raw in text.split(|c: char| !c.is_alphanumeric() && c != '-') {
                let word = raw.trim_matches('-').to_lowercase();
                let plain = word.chars().all(char::is_alphabetic);
                if word.chars().count() < MIN_SUMMARY_WORD_CHARS || !plain || Content::of(&word).words.is_empty() {
                    continue;
                }
                position += 1;
                let entry = users.entry(word).or_insert_with(|| (BTreeSet::new(), position));
                entry.0.insert(index);
            }
        }
    }
    let mut shared: Vec<(String, usize, usize)> =
        users.into_iter().filter(|(_, (m, _))| m.len() >= 2).map(|(w, (m, first))| (w, m.len(), first)).collect();
    shared.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    shared.into_iter().take(SUMMARY_WORDS).map(|(w, _, _)| w).collect()
}

fn summary(view: &TopicView<'_>) -> String {
    let n = view.members.len();
    match shared_words(view).as_slice() {
        [] => format!("What {n} related memories say:"),
        [one] => format!("What {n} related memories say about {one}:"),
        [init @ .., last] => format!("What {n} related memories say about {} and {last}:", init.join(", ")),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveSynthesizer;

impl Synthesizer for ExtractiveSynthesizer {
    fn name(&self) -> &str {
        "extractive"
    }

    fn synthesize(&self, view: &TopicView<'_>) -> Result<SynthesisDraft, SynthesisError> {
        let n = view.members.len();
        if n < 2 {
            return Err(SynthesisError::InvalidAnswer("a topic has two members or more".into()));
        }
        let mut facts = gather(view);
        let contributing: BTreeSet<usize> = facts.iter().flat_map(|f| f.members.iter().copied()).collect();
        // A member that states every fact already says all the synthesis would.
        let one_says_all = (0..n).any(|m| facts.iter().all(|f| f.members.contains(&m)));
        if facts.len() < 2 || one_says_all {
            return Err(SynthesisError::NothingToAdd);
        }
        // By section, then the most widely stated first; otherwise in the order they were said.
        facts.sort_by_key(|f| (f.kind, std::cmp::Reverse(f.members.len())));
        let coverage = contributing.len() as f32 / n as f32;
        // Below 1 only for a topic held together by shared tags or files rather than closeness.
        let closeness = (view.weakest_link / view.related_at.max(f32::EPSILON)).min(1.0);
        Ok(SynthesisDraft {
            summary: summary(view),
            facts: facts
                .into_iter()
                .map(|f| SynthesisFact {
                    kind: f.kind,
                    text: f.text,
                    members: f.members.iter().map(|&i| view.members[i].id).collect(),
                })
                .collect(),
            confidence: (coverage * closeness).clamp(0.0, 1.0),
            prose: None,
        })
    }
}
