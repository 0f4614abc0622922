//! Sentence splitting and normalization for merging memory texts. The splitter never breaks
//! inside inline or fenced code, file paths, version numbers, decimals, abbreviations or list
//! markers; each bullet or numbered list item is one unit.

use std::collections::BTreeSet;

/// Two normalized sentences whose token sets overlap at least this much (Jaccard) say the same.
pub const NEAR_DUPLICATE_JACCARD: f64 = 0.85;

const ABBREVIATIONS: [&str; 22] = [
    "e.g", "i.e", "etc", "vs", "cf", "approx", "incl", "fig", "no", "nr", "mr", "mrs", "ms", "dr", "st", "jr", "sr",
    "inc", "ltd", "co", "dept", "al",
];

/// Splits text into sentences, trimmed, never empty.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    let mut paragraph = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            if in_fence {
                paragraph.push_str(line);
                push_trimmed(&mut out, &paragraph);
                paragraph.clear();
            } else {
                split_prose(&paragraph, &mut out);
                paragraph.clear();
                paragraph.push_str(line);
                paragraph.push('\n');
            }
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            paragraph.push_str(line);
            paragraph.push('\n');
            continue;
        }
        if trimmed.is_empty() || is_list_item(trimmed) {
            split_prose(&paragraph, &mut out);
            paragraph.clear();
            if !trimmed.is_empty() {
                // A list item is one unit, whatever punctuation it contains.
                push_trimmed(&mut out, trimmed);
            }
            continue;
        }
        if !paragraph.is_empty() {
            paragraph.push(' ');
        }
        paragraph.push_str(trimmed);
    }
    if in_fence {
        push_trimmed(&mut out, &paragraph);
    } else {
        split_prose(&paragraph, &mut out);
    }
    out
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let t = s.trim();
    if !t.is_empty() {
        out.push(t.to_owned());
    }
}

fn is_list_item(line: &str) -> bool {
    if let Some(rest) = line.strip_prefix(['-', '*', '•']) {
        return rest.starts_with(' ');
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && digits <= 3 && {
        let rest = &line[digits..];
        (rest.starts_with(". ") || rest.starts_with(") ")) && rest.len() > 2
    }
}

fn split_prose(text: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let mut start = 0;
    let mut in_code = false;
    let mut quote_open = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            in_code = !in_code;
        } else if c == '"' {
            quote_open = !quote_open;
        } else if !in_code && !quote_open && matches!(c, '.' | '!' | '?') && ends_sentence(&chars, start, i) {
            let mut end = i + 1;
            while end < chars.len() && matches!(chars[end], ')' | '"' | '\'') {
                end += 1;
            }
            push_trimmed(out, &chars[start..end].iter().collect::<String>());
            start = end;
            i = end;
            continue;
        }
        i += 1;
    }
    push_trimmed(out, &chars[start..].iter().collect::<String>());
}

/// A terminator ends a sentence when whitespace follows and the next word starts like a new
/// sentence (capital, digit, quote, code, bracket), and the word before is not an abbreviation.
/// "a.py", "2.0" or "e.g." inside a sentence therefore never split.
fn ends_sentence(chars: &[char], start: usize, i: usize) -> bool {
    let mut j = i + 1;
    while j < chars.len() && matches!(chars[j], ')' | '"' | '\'') {
        j += 1;
    }
    if j >= chars.len() {
        return true;
    }
    if !chars[j].is_whitespace() {
        return false;
    }
    while j < chars.len() && chars[j].is_whitespace() {
        j += 1;
    }
    let Some(&next) = chars.get(j) else {
        return true;
    };
    if !(next.is_uppercase() || next.is_ascii_digit() || matches!(next, '"' | '`' | '(' | '[' | '\'')) {
        return false;
    }
    if chars[i] != '.' {
        return true;
    }
    let word_start =
        chars[start..i].iter().rposition(|c| c.is_whitespace() || *c == '(').map_or(start, |p| start + p + 1);
    let word: String = chars[word_start..i].iter().collect::<String>().to_lowercase();
    if ABBREVIATIONS.contains(&word.as_str()) {
        return false;
    }
    // A single letter ("J. Smith") is an initial, not the end of a sentence.
    !(word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
}

/// Lowercased, whitespace collapsed, list marker and trailing punctuation removed: the form in
/// which two sentences are compared.
pub fn normalize(sentence: &str) -> String {
    let mut s = sentence.trim();
    if is_list_item(s) {
        s = s.trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '-' | '*' | '•' | '.' | ')'));
    }
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    collapsed.trim_end_matches(['.', '!', '?', ';', ':', ',']).trim().to_owned()
}

/// Word tokens: runs of letters, digits and the characters that hold paths, versions and
/// identifiers together (`._/-#:`), stripped of trailing punctuation.
pub fn tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | '#' | ':')))
        .map(|t| t.trim_matches(|c: char| matches!(c, '.' | ':' | '-')).to_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let common = a.intersection(b).count();
    common as f64 / (a.len() + b.len() - common) as f64
}

/// A sentence prepared for comparison.
#[derive(Debug, Clone)]
pub struct Sentence {
    pub text: String,
    pub normalized: String,
    pub tokens: BTreeSet<String>,
}

impl Sentence {
    pub fn new(text: &str) -> Sentence {
        let normalized = normalize(text);
        Sentence { tokens: tokens(&normalized), text: text.trim().to_owned(), normalized }
    }

    pub fn says_the_same_as(&self, other: &Sentence) -> bool {
        self.normalized == other.normalized || jaccard(&self.tokens, &other.tokens) >= NEAR_DUPLICATE_JACCARD
    }
}

pub fn sentences(text: &str) -> Vec<Sentence> {
    split_sentences(text).iter().map(|s| Sentence::new(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_sentences() {
        assert_eq!(
            split_sentences("Fixed the bug. It was a race! Why? Nobody knows."),
            vec!["Fixed the bug.", "It was a race!", "Why?", "Nobody knows."]
        );
    }

    #[test]
    fn keeps_paths_versions_and_decimals_intact() {
        let s = split_sentences("Edited backend/app/db/users.py and bumped pydantic to 2.7.1 today. Took 3.5 hours.");
        assert_eq!(s, vec!["Edited backend/app/db/users.py and bumped pydantic to 2.7.1 today.", "Took 3.5 hours."]);
    }

    #[test]
    fn keeps_abbreviations_and_initials_intact() {
        let s = split_sentences("Use a pool, e.g. PgBouncer. Also see the note by J. Smith on caching etc. Done.");
        assert_eq!(s, vec!["Use a pool, e.g. PgBouncer.", "Also see the note by J. Smith on caching etc. Done."]);
    }

    #[test]
    fn keeps_inline_code_and_quoted_errors_intact() {
        let s = split_sentences("Fixed `Foo. Bar()` in x.rs. Saw \"Error. Retry later\" twice. Ok.");
        assert_eq!(s, vec!["Fixed `Foo. Bar()` in x.rs.", "Saw \"Error. Retry later\" twice.", "Ok."]);
    }

    #[test]
    fn keeps_fenced_code_blocks_whole() {
        let s = split_sentences("Run this:\n```\nlet a = 1. Then b;\nOk. Next\n```\nIt works.");
        assert_eq!(s.len(), 3);
        assert!(s[1].starts_with("```") && s[1].contains("Ok. Next") && s[1].ends_with("```"));
        assert_eq!(s[2], "It works.");
    }

    #[test]
    fn each_list_item_is_one_unit() {
        let s = split_sentences("Steps:\n- Stop the server. Then wait.\n- Restart it\n1. First. Second.\n2) Last");
        assert_eq!(s, vec!["Steps:", "- Stop the server. Then wait.", "- Restart it", "1. First. Second.", "2) Last"]);
    }

    #[test]
    fn normalize_ignores_case_spacing_markers_and_final_punctuation() {
        assert_eq!(normalize("- Use   the Pool."), "use the pool");
        assert_eq!(normalize("USE THE POOL"), "use the pool");
        assert_eq!(normalize("1. Use the pool!"), "use the pool");
    }

    #[test]
    fn near_duplicates_are_detected_but_different_numbers_are_not() {
        let a = Sentence::new("Set pool_recycle=280 on the engine in backend/app/db/session.py.");
        let b = Sentence::new("set pool_recycle=280 on the engine in backend/app/db/session.py");
        let c = Sentence::new("CI run #123: green after the change.");
        let d = Sentence::new("CI run #456: green after the change.");
        assert!(a.says_the_same_as(&b));
        assert!(!c.says_the_same_as(&d));
    }

    #[test]
    fn tokens_keep_paths_and_versions() {
        let t = tokens("bumped to 2.7.1 in backend/app/db.py, done.");
        assert!(t.contains("2.7.1") && t.contains("backend/app/db.py") && t.contains("done"));
    }
}
