//! The language boundary: two memories written in different scripts, or in languages the
//! detector (`whatlang`) names with confidence, say their facts to different readers and are
//! never merged. Values (code spans, paths, identifiers) are left out of what is detected.

use std::collections::HashMap;

use uuid::Uuid;
use whatlang::Info;

use crate::engine::candidates::partition::Partition;
use crate::engine::guards::held::Texts;
use crate::engine::similarity::ScoredPair;

/// Fewer words than this say too little for a language to be told apart (a script still is).
const MIN_WORDS_FOR_LANGUAGE: usize = 6;

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
        .collect();
    let info: Info = whatlang::detect(&prose.join(" "))?;
    let language = (prose.len() >= MIN_WORDS_FOR_LANGUAGE && info.is_reliable()).then_some(info.lang());
    Some(Written { script: info.script(), language })
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
    let mut seen: HashMap<Uuid, Option<Written>> = HashMap::new();
    let mut of = |node: u32| {
        let id = part.node_ids[node as usize];
        *seen.entry(id).or_insert_with(|| texts.get(&id).and_then(|t| written(t)))
    };
    let before = pairs.len();
    pairs.retain(|p| {
        // The originals of one consolidated memory stay together whatever they are written in.
        part.unit_of[p.a as usize] == part.unit_of[p.b as usize] || !apart(of(p.a), of(p.b))
    });
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
        let code = written("`pool_size=20` in src/db.rs");
        assert!(!apart(english, code));
    }
}
