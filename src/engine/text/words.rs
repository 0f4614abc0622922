//! What a sentence says, as sets: its values (numbers, versions, identifiers, paths, commands,
//! code spans, URLs), which are facts and compared exactly, and its content words (English
//! Snowball stems, stop words removed), which paraphrases mostly share.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Function words, and the reporting words agents wrap every fact in ("fixed", "root cause",
/// "it took ... to track down"): neither tells one memory's content from another's.
const STOP_WORDS: &str = "\
    a about above after again all also am an and any are as at be because been before being \
    below between both but by can could did do does doing down during each few for from further \
    had has have having he her here hers him his how i if in into is it its itself just me more \
    most my no nor not now of off on once only or other our ours out over own same she should so \
    some such than that the their them then there these they this those through to too under \
    until up very was we were what when where which while who whom why will with would you your \
    yours via per within without already still yet ever even may might must shall let lets get \
    got make made fixed fix fixes resolved resolve issue issues problem successfully done work \
    worked works thing came come comes back happen happened happens occurred solution cause \
    caused root error errors raise raised track tracked down took take around line \
    lesson lessons learn learned learnt note noted notes worth remember remembering discovered \
    noticed realized realised found turns turned takeaway til tip observed gotcha beware again \
    went away solved solve solves whose decided decide chose choose chosen agreed agree opted opt";

/// Words stemmed and texts read on this thread, so what the planner meets again costs a lookup;
/// each cache is cleared when it grows past its size.
const STEM_CACHE_MAX: usize = 1 << 16;
const CONTENT_CACHE_MAX: usize = 1 << 12;

thread_local! {
    static CONTENTS: RefCell<HashMap<String, Content>> = RefCell::new(HashMap::new());
    static STEMS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// The English Snowball stem of a lower-case word.
pub fn stem(word: &str) -> String {
    STEMS.with_borrow_mut(|stems| {
        if let Some(stem) = stems.get(word) {
            return stem.clone();
        }
        if stems.len() >= STEM_CACHE_MAX {
            stems.clear();
        }
        let stem = STEMMER.stem(word).into_owned();
        stems.insert(word.to_owned(), stem.clone());
        stem
    })
}

static STOP_SET: LazyLock<HashSet<&str>> = LazyLock::new(|| STOP_WORDS.split_whitespace().collect());

fn is_stop_word(word: &str) -> bool {
    STOP_SET.contains(word)
}

/// A token is a value when it carries a digit, a path or identifier character, an interior dot
/// (`db.py`, `std::fs`), a flag dash, or an inner capital (`QueuePool`).
fn is_value(token: &str) -> bool {
    let inner_capital = token.chars().skip(1).any(char::is_uppercase) && token.chars().any(char::is_lowercase);
    let marked =
        token.chars().any(|c| c.is_ascii_digit() || matches!(c, '_' | '/' | '\\' | '=' | '#' | '@' | '$' | '<' | '>'))
            || token.contains("::")
            || token.trim_matches('.').contains('.')
            || (token.starts_with('-') && token.len() > 1)
            || inner_capital;
    // A lone "=" or "--" is punctuation, not a value.
    marked && token.chars().any(char::is_alphanumeric)
}

/// Takes the spans between pairs of `delimiter` out of `text`; an unmatched last delimiter
/// leaves its tail as prose.
fn take_spans(text: &str, delimiter: char, spans: &mut Vec<String>) -> String {
    let mut rest = String::with_capacity(text.len());
    let pieces: Vec<&str> = text.split(delimiter).collect();
    let paired = pieces.len() - (pieces.len() - 1) % 2;
    for (i, piece) in pieces.iter().enumerate() {
        if i % 2 == 1 && i < paired {
            let span = piece.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            if !span.is_empty() {
                spans.push(span);
            }
            rest.push(' ');
        } else {
            rest.push(' ');
            rest.push_str(piece);
        }
    }
    rest
}

/// A `"` right after a digit (`27"`) is an inch mark, not a quote: it must not pair with the
/// next quote and swallow the text between them.
pub fn is_inch_mark(previous: Option<char>) -> bool {
    previous.is_some_and(|c| c.is_ascii_digit())
}

fn inch_marks_apart(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = None;
    for c in text.chars() {
        out.push(if c == '"' && is_inch_mark(previous) { INCH } else { c });
        previous = Some(c);
    }
    out
}

/// What an inch mark is read as (the double prime), so it stays part of its value.
const INCH: char = '\u{2033}';

/// Code spans and quoted strings (error messages), whole, then the other tokens with
/// surrounding punctuation removed.
fn raw_tokens(text: &str) -> (Vec<String>, Vec<String>) {
    let mut spans = Vec::new();
    let rest = take_spans(text, '`', &mut spans);
    let rest = take_spans(&inch_marks_apart(&rest), '"', &mut spans);
    let tokens = rest
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '{' | '}' | '*'))
        .map(|t| t.trim_matches(|c: char| matches!(c, '.' | ':' | '!' | '?' | '\'' | '|' | '~' | '&')))
        .map(strip_emphasis)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    (spans, tokens)
}

/// The parts of a source location: `ingest.py:293` is `ingest.py` and `293` (and
/// `a.rs:12:5` three parts). Any other value (`pool_size=20`, a URL) is one fact, compared
/// whole: `pool_size=20` is not held by `pool_size=30` and `retries=20` together.
fn atoms(value: &str) -> Vec<&str> {
    let mut parts = value.split(':');
    let Some(path) = parts.next().filter(|p| !p.is_empty()) else { return Vec::new() };
    let numbers: Vec<&str> = parts.collect();
    if numbers.is_empty() || !numbers.iter().all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())) {
        return Vec::new();
    }
    std::iter::once(path).chain(numbers).collect()
}

/// "500s" and "1990s" are the number read as a plural (status codes, decades): the value is the
/// number. "60s" is sixty seconds and stays as it is.
fn plural_number(value: &str) -> String {
    match value.strip_suffix('s') {
        Some(number) if (3..=4).contains(&number.len()) && number.chars().all(|c| c.is_ascii_digit()) => {
            number.to_owned()
        }
        _ => value.to_owned(),
    }
}

/// The form in which two units are the same statement whatever their case, punctuation,
/// spacing, list marker or word endings: the Snowball stems of their words, in order.
pub fn unit_key(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| stem(&w.to_lowercase()))
        .map(|w| plural_number(&w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `_word_` and `**word**` are emphasis, not identifiers.
fn strip_emphasis(token: &str) -> &str {
    let inner = token.trim_matches(['_', '*']);
    if token.len() - inner.len() >= 2 && !inner.is_empty() {
        inner.trim_matches(['.', ',', ':', '!', '?'])
    } else {
        token
    }
}

/// What a piece of text says: its values and its content-word stems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    pub values: BTreeSet<String>,
    pub words: BTreeSet<String>,
    /// The parts of the compound values, so that `a.py:12` and `a.py (line 12)` say the same.
    atoms: BTreeSet<String>,
}

impl Content {
    pub fn of(text: &str) -> Content {
        if let Some(content) = CONTENTS.with_borrow(|contents| contents.get(text).cloned()) {
            return content;
        }
        let content = Content::read(text);
        CONTENTS.with_borrow_mut(|contents| {
            if contents.len() >= CONTENT_CACHE_MAX {
                contents.clear();
            }
            contents.insert(text.to_owned(), content.clone());
        });
        content
    }

    fn read(text: &str) -> Content {
        let (spans, tokens) = raw_tokens(text);
        let mut content = Content::default();
        for span in &spans {
            // A quoted message's words are said too: "Input should be a valid datetime" and the
            // same words unquoted state one thing.
            for token in span.split_whitespace().filter(|t| !is_value(t)) {
                content.add_words(token);
            }
        }
        content.values.extend(spans);
        for token in tokens {
            if is_value(&token) {
                let value = plural_number(&token.to_lowercase());
                content.atoms.extend(atoms(&value).into_iter().map(str::to_owned));
                content.values.insert(value);
                continue;
            }
            content.add_words(&token);
        }
        content
    }

    fn add_words(&mut self, token: &str) {
        let lower = token.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphabetic()).filter(|w| w.chars().count() >= 2) {
            let stem = stem(word);
            if !is_stop_word(word) && !is_stop_word(&stem) {
                self.words.insert(stem);
            }
        }
    }

    /// A code block's content: each non-empty line, spacing collapsed, as a value.
    pub fn of_lines(text: &str) -> Content {
        let values = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty() && !l.starts_with("```"))
            .collect();
        Content { values, ..Content::default() }
    }

    pub fn len(&self) -> usize {
        self.values.len() + self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn extend(&mut self, other: &Content) {
        self.values.extend(other.values.iter().cloned());
        self.words.extend(other.words.iter().cloned());
        self.atoms.extend(other.atoms.iter().cloned());
    }

    /// This content with only the words `keep` accepts; every value stays.
    pub fn with_words(&self, keep: impl Fn(&str) -> bool) -> Content {
        Content {
            values: self.values.clone(),
            words: self.words.iter().filter(|w| keep(w)).cloned().collect(),
            atoms: self.atoms.clone(),
        }
    }

    /// A value is held as a value; an identifier spelled as a plain word elsewhere
    /// ("QueuePool", "queuepool") is held either way.
    pub fn holds_value(&self, value: &str) -> bool {
        let held = |v: &str| self.values.contains(v) || self.atoms.contains(v);
        let plain = value.chars().all(char::is_alphabetic);
        held(value)
            || (plain && (self.words.contains(value) || self.words.contains(&stem(value))))
            || {
                let parts = atoms(value);
                parts.len() > 1 && parts.into_iter().all(held)
            }
            || (value.contains(' ') && self.holds_message(value))
    }

    /// A quoted message of plain words ("input should be a valid datetime") is held when its
    /// words are; a span with a value in it (`cargo test --release`) only as itself.
    fn holds_message(&self, span: &str) -> bool {
        let content = Content::of(span);
        content.values.is_empty() && content.words.iter().all(|w| self.holds_word(w))
    }

    pub fn holds_word(&self, word: &str) -> bool {
        self.words.contains(word) || self.values.contains(word)
    }

    /// How many of `other`'s items this content holds.
    pub fn shared_with(&self, other: &Content) -> usize {
        other.values.iter().filter(|v| self.holds_value(v)).count()
            + other.words.iter().filter(|w| self.holds_word(w)).count()
    }

    /// `other`'s items this content lacks, as (values, words).
    pub fn missing_from(&self, other: &Content) -> (usize, usize) {
        (
            other.values.iter().filter(|v| !self.holds_value(v)).count(),
            other.words.iter().filter(|w| !self.holds_word(w)).count(),
        )
    }

    /// How many of `other`'s values, and of its words that `wanted` lists, this content lacks.
    pub fn lacks_of(&self, other: &Content, wanted: &BTreeSet<String>) -> usize {
        other.values.iter().filter(|v| !self.holds_value(v)).count()
            + other.words.iter().filter(|w| wanted.contains(*w) && !self.holds_word(w)).count()
    }

    /// Jaccard overlap of values and words together.
    pub fn overlap(&self, other: &Content) -> f64 {
        let union = self.len() + other.len() - self.shared_with(other);
        if union == 0 { 1.0 } else { self.shared_with(other) as f64 / union as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn values_are_numbers_versions_paths_identifiers_flags_urls_and_code_spans() {
        let c = Content::of(
            "Bumped pydantic to 2.7.1 in backend/app/db.py, set pool_size=20, ran `cargo test -q` with --locked; see https://x.org/a and QueuePool.",
        );
        assert_eq!(
            c.values,
            set(&[
                "2.7.1",
                "backend/app/db.py",
                "pool_size=20",
                "cargo test -q",
                "--locked",
                "https://x.org/a",
                "queuepool"
            ])
        );
    }

    #[test]
    fn a_quoted_message_and_a_code_span_are_one_value_and_a_path_with_its_line_is_its_parts() {
        let a = Content::of("Fixed `Input should be a valid datetime` in api/ingest.py (line 293).");
        let b = Content::of("The parser rejected \"Input should be a valid datetime\" at api/ingest.py:293.");
        assert_eq!(a.missing_from(&b), (0, 2), "only parser and rejected are new");
        assert_eq!(Content::of("Set pool_size=20.").missing_from(&Content::of("Set pool_size=30.")), (1, 0));
        let both = Content::of("Set pool_size=30 and max_overflow=20.");
        assert_eq!(both.missing_from(&Content::of("Set pool_size=20.")), (1, 0), "a key=value is one fact");
        let two_places = Content::of("Seen in a.py:12 and b.py:40.");
        assert_eq!(two_places.missing_from(&Content::of("Seen in a.py (line 12).")), (0, 0));
        assert_eq!(Content::of("See https://x.io/a.").missing_from(&Content::of("See http://x.io/a.")), (1, 0));
    }

    #[test]
    fn markdown_emphasis_is_not_an_identifier() {
        assert_eq!(
            Content::of("It aims to be _minimal_ and **fast**."),
            Content::of("It aims to be minimal and fast.")
        );
    }

    #[test]
    fn content_words_are_stemmed_and_drop_stop_words() {
        let c = Content::of("The connections were leaking because sessions stayed open.");
        assert_eq!(c.words, set(&["connect", "leak", "session", "stay", "open"]));
        assert_eq!(Content::of("Connection leaks.").words, set(&["connect", "leak"]));
    }

    #[test]
    fn an_unmatched_backtick_leaves_the_rest_as_prose() {
        let c = Content::of("Quoted ` half a span");
        assert!(c.values.is_empty());
        assert_eq!(c.words, set(&["quot", "half", "span"]));
    }

    #[test]
    fn overlap_counts_values_and_words_together() {
        let a = Content::of("Doubled pool_size to 20 for the service.");
        let b = Content::of("Doubled pool_size to 30 for the service.");
        assert!(a.overlap(&b) > 0.5 && a.overlap(&b) < 1.0);
        assert_eq!(a.missing_from(&b), (1, 0));
    }
}
