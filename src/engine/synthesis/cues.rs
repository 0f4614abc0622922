//! Which role a sentence plays in a synthesis, from its cue phrases and its structure: a best
//! practice (an imperative, "always / never / prefer / avoid"), a gotcha (a condition under
//! which something fails, a warning, an error and its cause), or a plain statement.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Practice,
    Gotcha,
    Statement,
}

const GOTCHA_CUES: &[&str] = &[
    "fails when",
    "fails if",
    "fail when",
    "fail if",
    "failed when",
    "breaks when",
    "breaks if",
    "unless",
    "only if",
    "only when",
    "beware",
    "watch out",
    "careful",
    "gotcha",
    "pitfall",
    "caveat",
    "note that",
    "does not work",
    "doesn't work",
    "won't work",
    "silently",
    "cannot",
    "can't",
    "not supported",
];

/// Phrases that recommend wherever they stand ("we should pin", "prefer bulk inserts").
const PRACTICE_CUES: &[&str] = &["prefer ", "avoid ", "make sure", "should ", "recommended", "best practice"];
/// Adverbs that make a rule only when an instruction follows ("always run", "never call").
const RULE_ADVERBS: &[&str] = &["always", "never"];

/// Words that say something went wrong; a sentence carrying one states an error or its cause.
const ERROR_CUES: &[&str] = &[
    "error",
    "exception",
    "fail",
    "timeout",
    "timed out",
    "panic",
    "crash",
    "deadlock",
    "leak",
    "broken",
    "regression",
    "root cause",
    "caused",
    "cause was",
    "because",
];

/// Verbs that open an instruction.
const IMPERATIVES: &[&str] = &[
    "use",
    "set",
    "add",
    "release",
    "run",
    "call",
    "avoid",
    "prefer",
    "keep",
    "check",
    "ensure",
    "pin",
    "enable",
    "disable",
    "configure",
    "install",
    "remove",
    "upgrade",
    "bump",
    "pass",
    "wrap",
    "close",
    "restart",
    "raise",
    "increase",
    "reduce",
    "lower",
    "limit",
    "validate",
    "test",
    "do",
    "don't",
    "never",
    "always",
    "put",
    "move",
    "replace",
    "switch",
    "return",
    "create",
    "import",
    "include",
    "specify",
    "start",
    "stop",
    "clear",
    "retry",
    "apply",
    "drop",
    "mark",
    "split",
    "cache",
    "log",
    "await",
    "reuse",
];

/// Labels after which an instruction follows ("Fix: release the session").
const INSTRUCTION_LABELS: &[&str] = &["fix:", "solution:", "workaround:", "tip:", "rule:", "lesson:", "next time,"];

fn words(sentence: &str) -> Vec<String> {
    let mut s = sentence.trim().trim_start_matches(['-', '*', '•', ' ']).to_lowercase();
    for label in INSTRUCTION_LABELS {
        if let Some(rest) = s.strip_prefix(label) {
            s = rest.trim_start().to_owned();
        }
    }
    s.split(|c: char| !(c.is_alphabetic() || c == '\'')).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// Opens with an instruction: "Release the session", "Fix: pin tokio", "Don't call it twice";
/// a negation or rule adverb counts only with the verb it governs ("Don't worry" is not one).
pub fn is_imperative(sentence: &str) -> bool {
    let words = words(sentence);
    let verb = |i: usize| words.get(i).is_some_and(|w| IMPERATIVES.contains(&w.as_str()));
    match words.first().map(String::as_str) {
        Some("don't" | "never" | "always") => verb(1),
        Some("do") if words.get(1).is_some_and(|w| w == "not") => verb(2),
        // "Log shows a deadlock", "Test coverage is 80%": a noun that is also a verb, then the
        // sentence's own verb.
        Some(_) => verb(0) && !words.iter().skip(1).take(2).any(|w| FINITE_VERBS.contains(&w.as_str())),
        None => false,
    }
}

/// Verbs that make the word before them a subject, not an instruction.
const FINITE_VERBS: &[&str] = &[
    "is",
    "are",
    "was",
    "were",
    "has",
    "had",
    "have",
    "shows",
    "showed",
    "seems",
    "seemed",
    "looks",
    "looked",
    "took",
    "takes",
    "gets",
    "got",
    "returns",
    "returned",
    "contains",
    "contained",
];

/// A cue at the start of a word ("fail" in "failed", not "error" in "terror"); cues of several
/// words or ending in a space match as written.
fn has_cue(lower: &str, cue: &str) -> bool {
    lower.match_indices(cue).any(|(at, _)| lower[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric()))
}

/// "always" or "never" right before an instruction verb, anywhere: "we always run migrations".
fn states_a_rule(sentence: &str) -> bool {
    let words = words(sentence);
    words.windows(2).any(|w| RULE_ADVERBS.contains(&w[0].as_str()) && IMPERATIVES.contains(&w[1].as_str()))
}

pub fn role(sentence: &str) -> Role {
    let lower = format!("{} ", sentence.to_lowercase());
    let has = |cues: &[&str]| cues.iter().any(|c| has_cue(&lower, c));
    if has(GOTCHA_CUES) {
        Role::Gotcha
    } else if is_imperative(sentence) || states_a_rule(sentence) || has(PRACTICE_CUES) {
        Role::Practice
    } else if has(ERROR_CUES) {
        Role::Gotcha
    } else {
        Role::Statement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noun_that_is_also_a_verb_does_not_make_an_instruction_and_cues_start_words() {
        for s in ["Cache keys are per user.", "Test coverage is 80%.", "Return value was null."] {
            assert_eq!(role(s), Role::Statement, "{s}");
        }
        assert_eq!(role("Log shows a deadlock in the pool."), Role::Gotcha);
        assert!(has_cue("it failed twice", "fail") && has_cue("(error) at boot", "error"));
        assert!(!has_cue("a terror", "error"), "a cue starts a word");
    }

    #[test]
    fn imperatives_and_always_never_prefer_avoid_are_practices() {
        for s in [
            "Release the session before the HTTP call.",
            "Fix: release the session first.",
            "- Pin tokio to 1.38",
            "We always run migrations before deploys.",
            "Prefer bulk inserts over row-by-row writes.",
            "Don't call the pool from a signal handler.",
            "Do not run migrations twice.",
        ] {
            assert_eq!(role(s), Role::Practice, "{s}");
        }
    }

    #[test]
    fn failure_conditions_warnings_and_causes_are_gotchas() {
        for s in [
            "The upload fails when the file exceeds 10 MB.",
            "Works only if the pool is warm.",
            "Beware: retries are not idempotent.",
            "Root cause: sessions held during HTTP calls.",
            "QueuePool raised a timeout error under load.",
        ] {
            assert_eq!(role(s), Role::Gotcha, "{s}");
        }
    }

    #[test]
    fn plain_descriptions_are_statements() {
        assert_eq!(role("Tokio is a runtime for writing asynchronous applications."), Role::Statement);
        assert_eq!(role("Don't worry: utoipa is here to fill this gap."), Role::Statement);
        assert_eq!(role("It is assumed that the system always provides secure data."), Role::Statement);
        assert_eq!(role("It lets you focus on the API logic instead of documentation."), Role::Statement);
        assert_eq!(role("QueuePool limit reached in db.py."), Role::Statement);
    }
}
