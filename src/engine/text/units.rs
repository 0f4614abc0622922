//! Splitting memory texts into units (sentences, standalone lines, list items, code blocks)
//! that remember what separated them, so a merged text keeps its line structure. The splitter
//! never breaks inside inline or fenced code, file paths, version numbers, decimals,
//! abbreviations or list markers; each bullet or numbered list item is one unit.

use std::collections::BTreeSet;

/// Two normalized sentences whose token sets overlap at least this much (Jaccard) say the same.
pub const NEAR_DUPLICATE_JACCARD: f64 = 0.85;

const ABBREVIATIONS: [&str; 22] = [
    "e.g", "i.e", "etc", "vs", "cf", "approx", "incl", "fig", "no", "nr", "mr", "mrs", "ms", "dr", "st", "jr", "sr",
    "inc", "ltd", "co", "dept", "al",
];

/// What separates a unit from the one before it in its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sep {
    Space,
    Line,
    Paragraph,
}

impl Sep {
    pub fn as_str(self) -> &'static str {
        match self {
            Sep::Space => " ",
            Sep::Line => "\n",
            Sep::Paragraph => "\n\n",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A sentence of a paragraph.
    Prose,
    /// A line that stands alone: a heading or a title line without a full stop.
    Line,
    /// A bullet or numbered list item.
    Item,
    /// A fenced code block.
    Code,
}

/// One sentence, line, list item or code block of a text, with what preceded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub text: String,
    pub sep: Sep,
    pub kind: UnitKind,
}

/// Splits text into sentences, trimmed, never empty.
pub fn split_sentences(text: &str) -> Vec<String> {
    units(text).into_iter().map(|u| u.text).collect()
}

/// Splits text into units, keeping its line structure: fenced code blocks whole, each list
/// item and each standalone line (heading, title) on its own, paragraphs split into sentences.
pub fn units(text: &str) -> Vec<Unit> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut next_sep = Sep::Paragraph;
    let mut paragraph = String::new();
    let mut paragraph_sep = Sep::Paragraph;
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.starts_with("```") {
            flush_paragraph(&mut paragraph, paragraph_sep, &mut out, &mut next_sep);
            let mut block = vec![lines[i].trim_end()];
            i += 1;
            while i < lines.len() {
                block.push(lines[i].trim_end());
                i += 1;
                if block.last().is_some_and(|l| l.trim().starts_with("```")) {
                    break;
                }
            }
            push_unit(&mut out, &block.join("\n"), next_sep, UnitKind::Code);
            next_sep = Sep::Line;
            continue;
        }
        if trimmed.is_empty() {
            flush_paragraph(&mut paragraph, paragraph_sep, &mut out, &mut next_sep);
            if !out.is_empty() {
                next_sep = Sep::Paragraph;
            }
        } else if continues_item(lines[i], &out, &paragraph) {
            if let Some(item) = out.last_mut() {
                item.text.push('\n');
                item.text.push_str(lines[i].trim_end());
            }
        } else if is_list_item(trimmed)
            || stands_alone(trimmed, &lines[i + 1..], paragraph.is_empty())
            || (out.is_empty() && paragraph.is_empty() && is_title(trimmed, &lines[i + 1..]))
        {
            flush_paragraph(&mut paragraph, paragraph_sep, &mut out, &mut next_sep);
            let kind = if is_list_item(trimmed) { UnitKind::Item } else { UnitKind::Line };
            // A list item is one unit, whatever punctuation it contains.
            push_unit(&mut out, trimmed, next_sep, kind);
            next_sep = Sep::Line;
        } else {
            if paragraph.is_empty() {
                paragraph_sep = next_sep;
            } else {
                paragraph.push(' ');
            }
            paragraph.push_str(trimmed);
        }
        i += 1;
    }
    flush_paragraph(&mut paragraph, paragraph_sep, &mut out, &mut next_sep);
    out
}

/// A heading, or a line without closing punctuation that a line starting anew (a capital, a
/// digit, a heading) follows, or that is a paragraph of its own with more text after it: a
/// title, not the first half of a wrapped sentence.
fn stands_alone(line: &str, rest: &[&str], starts_paragraph: bool) -> bool {
    if line.starts_with('#') {
        return true;
    }
    if line.ends_with(['.', '!', '?', ',', ';', ':', '-', '(', '&']) || ends_in_joining_word(line) {
        return false;
    }
    match rest.first().map(|l| l.trim()) {
        Some(next) if !next.is_empty() => {
            next.chars().next().is_some_and(|c| {
                c.is_uppercase()
                    || c.is_ascii_digit()
                    || matches!(c, '#' | '`')
                    // Markdown that opens a paragraph ("**Serde JSON** is", "[![badge]", "<img"),
                    // after a first line that is a paragraph's start: a title.
                    || (starts_paragraph && matches!(c, '*' | '_' | '[' | '!' | '<'))
            })
        }
        _ => starts_paragraph && rest.iter().any(|l| !l.trim().is_empty()),
    }
}

/// The first line of a text, followed by more text, that does not end mid-sentence (a comma,
/// a joining word): a title, whatever the next line starts with ("simple Linux inotify Python
/// bindings -- documentation" above "pyinotify is a ..."). A hard-wrapped first sentence ends
/// in a word that asks for more ("the", "of", "and"), or its next line starts with one
/// ("by raising ...").
fn is_title(line: &str, rest: &[&str]) -> bool {
    const CONTINUING: [&str; 12] =
        ["by", "because", "so", "when", "then", "after", "before", "since", "until", "if", "using", "while"];
    let Some(next) = rest.first().map(|l| l.trim()).filter(|l| !l.is_empty()) else { return false };
    let next_word = next.split_whitespace().next().unwrap_or_default();
    let mut sentences = Vec::new();
    split_prose(line, &mut sentences);
    !JOINING.contains(&next_word)
        && !CONTINUING.contains(&next_word)
        && sentences.len() == 1
        && line.chars().count() <= 100
        && !line.ends_with(['.', ',', ';', ':', '-', '(', '&', '/'])
        && !ends_in_joining_word(line)
}

/// Words that ask for more after them: a line ending in one wraps its sentence.
const JOINING: [&str; 40] = [
    "a", "an", "the", "of", "and", "or", "to", "for", "with", "in", "on", "at", "by", "from", "as", "is", "are",
    "that", "which", "be", "into", "its", "their", "but", "during", "over", "under", "about", "between", "through",
    "across", "via", "within", "while", "when", "because", "if", "than", "after", "before",
];

fn ends_in_joining_word(line: &str) -> bool {
    let last = line.rsplit(char::is_whitespace).next().unwrap_or_default().to_lowercase();
    JOINING.contains(&last.as_str())
}

/// An indented line right after a list item continues it.
fn continues_item(line: &str, out: &[Unit], paragraph: &str) -> bool {
    paragraph.is_empty()
        && line.starts_with([' ', '\t'])
        && !is_list_item(line.trim())
        && out.last().is_some_and(|u| u.kind == UnitKind::Item)
}

fn flush_paragraph(paragraph: &mut String, sep: Sep, out: &mut Vec<Unit>, next_sep: &mut Sep) {
    if paragraph.trim().is_empty() {
        paragraph.clear();
        return;
    }
    let mut sentences = Vec::new();
    split_prose(paragraph, &mut sentences);
    for (k, sentence) in sentences.iter().enumerate() {
        push_unit(out, sentence, if k == 0 { sep } else { Sep::Space }, UnitKind::Prose);
    }
    paragraph.clear();
    *next_sep = Sep::Line;
}

fn push_unit(out: &mut Vec<Unit>, text: &str, sep: Sep, kind: UnitKind) {
    let t = text.trim();
    if !t.is_empty() {
        out.push(Unit { text: t.to_owned(), sep, kind });
    }
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
        } else if c == '"' && !in_code && !crate::engine::text::words::is_inch_mark(i.checked_sub(1).map(|p| chars[p]))
        {
            quote_open = !quote_open;
        } else if !in_code
            && !quote_open
            && matches!(c, '.' | '!' | '?')
            && !is_ellipsis(&chars, i)
            && ends_sentence(&chars, start, i)
        {
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

/// "SELECT ... FOR UPDATE": an ellipsis stands for words left out, it ends nothing.
fn is_ellipsis(chars: &[char], i: usize) -> bool {
    chars[i] == '.' && i > 0 && chars[i - 1] == '.'
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

/// The form in which two units say the same thing: their [`statement`], [`normalize`]d, then
/// stemmed ([`crate::engine::text::words::unit_key`]).
pub fn key(unit: &str) -> String {
    crate::engine::text::words::unit_key(&normalize(statement(unit)))
}

/// A unit without its label: "Lesson learned: X", "Beware (nats): X" and "tokio gotcha: X"
/// state X. A label is at most four words before the first ": ", naming no value ("TMChan: X"
/// is a definition), not a list item, and something follows it. A plain scope ("Linux: X")
/// reads as a label too: "Linux: X" and "Windows: X" merge to one of them.
pub fn statement(unit: &str) -> &str {
    let Some((label, rest)) = unit.split_once(": ") else { return unit };
    let words = label.split_whitespace().count();
    let plain = label.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '(' | ')' | '-' | '\'' | '_' | '*'));
    let names_a_value = !crate::engine::text::words::Content::of(label).values.is_empty();
    if (1..=4).contains(&words)
        && label.chars().count() <= 40
        && plain
        && !names_a_value
        && !is_list_item(label)
        && !rest.trim().is_empty()
    {
        rest.trim_start()
    } else {
        unit
    }
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
}

pub fn sentences(text: &str) -> Vec<Sentence> {
    split_sentences(text).iter().map(|s| Sentence::new(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_line_before_markdown_emphasis_stands_alone() {
        let parts: Vec<String> =
            units("serde_json\n**Serde JSON** is a fast JSON library.").into_iter().map(|u| u.text).collect();
        assert_eq!(parts, vec!["serde_json", "**Serde JSON** is a fast JSON library."]);
    }

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
    fn a_title_line_without_a_full_stop_is_not_fused_into_the_next_sentence() {
        let u = units("Internet Storage Name Service - development files\nOpen-iSNS is an implementation. It works.");
        assert_eq!(
            u[0],
            Unit {
                text: "Internet Storage Name Service - development files".into(),
                sep: Sep::Paragraph,
                kind: UnitKind::Line
            }
        );
        assert_eq!(u[1].text, "Open-iSNS is an implementation.");
        assert_eq!((u[1].sep, u[2].sep), (Sep::Line, Sep::Space));
    }

    #[test]
    fn wrapped_prose_lines_join_and_blank_lines_separate_paragraphs() {
        let u = units("# Title\nA sentence that is\nwrapped here.\n\nNext paragraph.");
        let shape: Vec<(&str, Sep, UnitKind)> = u.iter().map(|u| (u.text.as_str(), u.sep, u.kind)).collect();
        assert_eq!(
            shape,
            vec![
                ("# Title", Sep::Paragraph, UnitKind::Line),
                ("A sentence that is wrapped here.", Sep::Line, UnitKind::Prose),
                ("Next paragraph.", Sep::Paragraph, UnitKind::Prose),
            ]
        );
    }

    #[test]
    fn a_wrapped_list_item_stays_one_unit_and_a_title_paragraph_stands_alone() {
        let u = units("Data for the crate\n\n- **Data** - a tree that\n  spans lines\n- Next\n\nLast words");
        let shape: Vec<(&str, UnitKind)> = u.iter().map(|u| (u.text.as_str(), u.kind)).collect();
        assert_eq!(
            shape,
            vec![
                ("Data for the crate", UnitKind::Line),
                ("- **Data** - a tree that\n  spans lines", UnitKind::Item),
                ("- Next", UnitKind::Item),
                ("Last words", UnitKind::Prose),
            ]
        );
    }

    #[test]
    fn a_first_line_is_a_title_whatever_follows_unless_it_wraps_a_sentence() {
        let parts =
            split_sentences("simple Linux inotify Python bindings -- documentation\npyinotify is a module. It works.");
        assert_eq!(
            parts,
            vec!["simple Linux inotify Python bindings -- documentation", "pyinotify is a module.", "It works."]
        );
        let wrapped = split_sentences("This crate provides a fast implementation of the\nfoo algorithm. Done.");
        assert_eq!(wrapped, vec!["This crate provides a fast implementation of the foo algorithm.", "Done."]);
    }

    #[test]
    fn an_ellipsis_ends_no_sentence() {
        assert_eq!(
            split_sentences("Locked the row with SELECT ... FOR UPDATE. It held."),
            vec!["Locked the row with SELECT ... FOR UPDATE.", "It held."]
        );
    }

    #[test]
    fn a_short_label_is_not_the_statement() {
        assert_eq!(statement("Beware (nats): A consumer stops."), "A consumer stops.");
        assert_eq!(statement("Lesson learned: x"), "x");
        assert_eq!(statement("Set pool_size=20: it helped"), "Set pool_size=20: it helped");
        assert_eq!(statement("Steps:"), "Steps:");
        assert_eq!(statement("* TBMChan: a bounded channel"), "* TBMChan: a bounded channel");
        assert_eq!(key("Warning: Holding a guard deadlocks."), key("Careful: holding a guard deadlocks"));
    }

    #[test]
    fn keys_ignore_case_punctuation_markers_and_word_endings() {
        assert_eq!(key("- Raised the pools, quickly!"), key("raise the pool quickly"));
        assert_ne!(key("Raised pool_size to 20."), key("Raised pool_size to 30."));
    }

    #[test]
    fn normalize_ignores_case_spacing_markers_and_final_punctuation() {
        assert_eq!(normalize("- Use   the Pool."), "use the pool");
        assert_eq!(normalize("USE THE POOL"), "use the pool");
        assert_eq!(normalize("1. Use the pool!"), "use the pool");
    }

    #[test]
    fn tokens_keep_paths_and_versions() {
        let t = tokens("bumped to 2.7.1 in backend/app/db.py, done.");
        assert!(t.contains("2.7.1") && t.contains("backend/app/db.py") && t.contains("done"));
    }
}
