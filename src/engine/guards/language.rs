//! The language boundary: two memories written in different scripts, or in languages the
//! detector (`whatlang`) names with confidence, say their facts to different readers and are
//! never merged. Values (code spans, paths, identifiers) are left out of what is detected.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use uuid::Uuid;
use whatlang::Info;

use crate::engine::candidates::partition::Partition;
use crate::engine::guards::held::Texts;
use crate::engine::similarity::ScoredPair;

/// Fewer words than this say too little for a language to be told apart (a script still is).
const MIN_WORDS_FOR_LANGUAGE: usize = 6;
/// The detector reads this many prose words at most: enough to tell a language with confidence,
/// and detection costs what it reads.
const MAX_WORDS_READ: usize = 40;

/// What a text is written in: its script, and its language when told with confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    script: whatlang::Script,
    language: Option<whatlang::Lang>,
}

fn written(text: &str) -> Option<Written> {
    // Prose only: paths, identifiers and code read as no language at all.
    let prose: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_alphabetic() || matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '\'')))
        .take(MAX_WORDS_READ)
        .collect();
    if clearly_english(&prose) {
        let language = (prose.len() >= MIN_WORDS_FOR_LANGUAGE).then_some(whatlang::Lang::Eng);
        return Some(Written { script: whatlang::Script::Latin, language });
    }
    let info: Info = whatlang::detect(&prose.join(" "))?;
    let language = (prose.len() >= MIN_WORDS_FOR_LANGUAGE && info.is_reliable()).then_some(info.lang());
    Some(Written { script: info.script(), language })
}

/// Function words no other language written in Latin letters uses: a text in ASCII letters
/// where they are frequent is English, and the detector (the costliest part of the guard) need
/// not read it.
const ENGLISH_ONLY: [&str; 16] = [
    "the", "and", "of", "with", "that", "which", "when", "should", "would", "this", "these", "from", "into", "after",
    "because", "their",
];

fn clearly_english(prose: &[&str]) -> bool {
    let ascii = prose.iter().all(|w| w.is_ascii());
    let marked = prose
        .iter()
        .filter(|w| {
            let word = w.trim_matches(|c: char| !c.is_ascii_alphabetic()).to_ascii_lowercase();
            ENGLISH_ONLY.contains(&word.as_str())
        })
        .count();
    ascii && marked >= 3 && marked * 10 >= prose.len()
}

fn apart(a: Option<Written>, b: Option<Written>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.script != b.script || matches!((a.language, b.language), (Some(x), Some(y)) if x != y),
        _ => false,
    }
}

/// `pairs` without those whose texts are in different scripts or languages; returns how many
/// were taken out.
pub fn keep_languages_apart(part: &Partition<'_>, pairs: &mut Vec<ScoredPair>, texts: &Texts<'_>) -> usize {
    // The originals of one consolidated memory stay together whatever they are written in.
    let across = |p: &ScoredPair| part.unit_of[p.a as usize] != part.unit_of[p.b as usize];
    let ids: HashSet<Uuid> =
        pairs.iter().filter(|p| across(p)).flat_map(|p| [p.a, p.b]).map(|n| part.node_ids[n as usize]).collect();
    let seen: HashMap<Uuid, Option<Written>> =
        ids.into_par_iter().map(|id| (id, texts.get(&id).and_then(|t| written(t)))).collect();
    let of = |node: u32| seen.get(&part.node_ids[node as usize]).copied().flatten();
    let before = pairs.len();
    pairs.retain(|p| !across(p) || !apart(of(p.a), of(p.b)));
    before - pairs.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_confident_languages_are_told_apart_and_code_is_no_language() {
        let english = written("The connection pool runs out when a session is held across the HTTP call.");
        let german = written("Der Verbindungspool läuft leer, wenn eine Sitzung über den HTTP-Aufruf gehalten wird.");
        let russian = written("Пул соединений исчерпывается, когда сессия удерживается во время вызова.");
        let english_too = written("Release the session before the slow call to the billing service, always.");
        assert!(apart(english, german), "{english:?} {german:?}");
        assert!(apart(english, russian));
        assert!(!apart(english, english_too), "{english:?} {english_too:?}");
        let french = written("Libérer la session avant l'appel lent au service de facturation, toujours.");
        assert!(apart(english, french), "{english:?} {french:?}");
        assert!(clearly_english(&[
            "Release", "the", "session", "before", "the", "call", "and", "retry", "with", "backoff."
        ]));
        assert!(!clearly_english(&["Der", "Pool", "ist", "leer", "wenn", "die", "Sitzung", "gehalten", "wird"]));
        let code = written("`pool_size=20` in src/db.rs");
        assert!(!apart(english, code));
    }
}
