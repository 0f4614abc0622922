//! Merging one text field of a cluster so that it says each thing once and keeps every fact.
//! Each text is split into units (sentences, lines, list items, code blocks). The
//! representative's units lead, in order; each unit of the other members, in source order,
//! either repeats what is said (dropped), says more than one kept unit and all it says (takes
//! its place: "cargo fmt and cargo clippy" over "cargo fmt"), or brings a new value or enough
//! new content words (kept, in its source position). Then no clause may be lost: a dropped unit
//! whose missing words its closest kept unit does not replace with words of its own (a
//! rewording would) is kept after all.

use std::collections::{BTreeMap, HashSet};

use crate::engine::text::units::{Sep, Unit, UnitKind, key, statement, units};
use crate::engine::text::words::Content;

/// A unit whose content words are at least this share new is kept even without a new value.
pub const NOVEL_WORD_SHARE: f64 = 0.5;
/// Share of the sources' values and clauses the merged text must hold: all of them.
pub const COVERAGE_TARGET: f64 = 1.0;

/// A unit's place: (source, unit index), the representative being source 0.
type Pos = (usize, usize);

struct Piece {
    unit: Unit,
    /// What its statement says (its label aside), compared with other units.
    content: Content,
    /// What its whole text says, label included: what it adds to a text holding it.
    whole: Content,
    /// What each clause of its statement says (see [`clauses`]).
    clauses: Vec<Content>,
    key: String,
    negated: bool,
}

impl Piece {
    fn new(unit: Unit) -> Piece {
        let (content, whole) = if unit.kind == UnitKind::Code {
            // A code block says its lines: one that holds every line of another says more.
            let lines = Content::of_lines(&unit.text);
            (lines.clone(), lines)
        } else {
            (Content::of(statement(&unit.text)), Content::of(&unit.text))
        };
        let clauses = clauses(statement(&unit.text)).iter().map(|c| Content::of(c)).collect();
        Piece { content, whole, clauses, key: key(&unit.text), negated: negated(&unit.text), unit }
    }

    /// Holds every value and word of `other`, and says something `other` does not.
    fn says_more_than(&self, other: &Piece) -> bool {
        self.unit.kind == other.unit.kind
            && self.negated == other.negated
            && self.content.missing_from(&other.content) == (0, 0)
            && other.content.missing_from(&self.content) != (0, 0)
    }
}

/// "Do not set X" says the opposite of "Set X ...", though its content words (stop words
/// aside) are fewer: a negated unit never stands in for an affirmed one, nor the reverse.
fn negated(text: &str) -> bool {
    // Verb negations only: "cursor pagination, not OFFSET" contrasts, it does not negate.
    const NEGATIONS: [&str; 16] = [
        "do not",
        "does not",
        "did not",
        "must not",
        "should not",
        "is not",
        "are not",
        "cannot",
        "can't",
        "don't",
        "doesn't",
        "isn't",
        "won't",
        "shouldn't",
        "never",
        "avoid",
    ];
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let joined = format!(" {} ", words.join(" "));
    NEGATIONS.iter().any(|n| joined.contains(&format!(" {n} ")))
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
    /// For each unit of the merged text, in order, its text and the members (by index, 0 = the
    /// representative) that state it: the one it was taken from first, then those whose unit
    /// it stands for.
    pub origins: Vec<(String, Vec<usize>)>,
}

impl MergedField {
    pub fn coverage(&self) -> f64 {
        if self.source_items == 0 { 1.0 } else { self.present_items as f64 / self.source_items as f64 }
    }

    pub fn chars(&self) -> usize {
        self.text.as_deref().map_or(0, |t| t.chars().count())
    }
}

/// The units kept so far: each place holds the unit shown there.
struct Kept<'a> {
    sources: &'a [Vec<Piece>],
    shown: BTreeMap<Pos, Pos>,
    /// Title lines that differ from the one shown at a place only in their last words: those
    /// words, shown after it ("... -- development / documentation").
    tails: BTreeMap<Pos, Vec<String>>,
    /// The unit each tail comes from, index for index, and whether it joined by a shared name.
    tail_from: BTreeMap<Pos, Vec<(Pos, bool)>>,
    keys: HashSet<&'a str>,
    said: Content,
}

impl<'a> Kept<'a> {
    fn piece(&self, (s, k): Pos) -> &'a Piece {
        &self.sources[s][k]
    }

    fn is_shown(&self, pos: Pos) -> bool {
        self.shown.values().any(|&p| p == pos)
    }

    fn keep(&mut self, place: Pos, pos: Pos) {
        if let Some(old) = self.shown.insert(place, pos) {
            self.keys.remove(self.piece(old).key.as_str());
        }
        let piece = self.piece(pos);
        self.keys.insert(piece.key.as_str());
        self.said.extend(&piece.whole);
    }

    /// Drops each shown unit (the first aside) that one other shown unit says with more, when
    /// the text without it still loses nothing: a unit an upgrade left behind ("Next time,
    /// prefer X" beside "..., so prefer X").
    fn prune(&mut self) {
        let places: Vec<Pos> = self.shown.keys().copied().skip(1).collect();
        for place in places {
            let Some(&pos) = self.shown.get(&place) else { continue };
            let piece = self.piece(pos);
            let closest = self
                .shown
                .iter()
                .filter(|(p, _)| **p != place)
                .map(|(_, &s)| &self.piece(s).content)
                .max_by_key(|c| c.shared_with(&piece.content));
            if closest.is_none_or(|c| brings_something_new(c, &piece.content)) {
                continue;
            }
            self.shown.remove(&place);
            if self.first_lost(false).is_some() {
                self.shown.insert(place, pos);
            } else {
                self.keys.remove(piece.key.as_str());
            }
        }
    }

    /// The first source unit not shown whose clauses the text loses: judged on the shown units
    /// (cheap), or on the rendered text as a reader splits it (where units meet, a quote opened
    /// in one can pair with one in the next).
    fn first_lost(&self, on_rendered: bool) -> Option<Pos> {
        let (shown, held) = if on_rendered {
            rendered(&render(self))
        } else {
            let pieces = self.shown.values().map(|&p| self.piece(p));
            let mut held = pieces.clone().fold(Content::default(), |mut acc, p| {
                acc.extend(&p.whole);
                acc
            });
            for tail in self.tails.values().flatten() {
                held.extend(&Content::of(tail));
            }
            (pieces.map(|p| p.content.clone()).collect(), held)
        };
        self.sources
            .iter()
            .enumerate()
            .flat_map(|(s, pieces)| (0..pieces.len()).map(move |k| (s, k)))
            .find(|&pos| !self.is_shown(pos) && loses(self.piece(pos), &shown, &held) > 0)
    }

    /// Keeps `pos` in the place of a kept unit it says more than, or in its own place.
    fn add(&mut self, pos: Pos) {
        let piece = self.piece(pos);
        let place = self.shown.iter().find(|(_, shown)| piece.says_more_than(self.piece(**shown))).map(|(p, _)| *p);
        self.keep(place.unwrap_or(pos), pos);
    }

    fn consider(&mut self, pos: Pos) {
        let piece = self.piece(pos);
        if piece.content.is_empty() || self.keys.contains(piece.key.as_str()) {
            return;
        }
        // "X -- development" beside "X -- documentation": one title line; "This package
        // contains X." beside "This package contains Y.": one sentence.
        if matches!(piece.unit.kind, UnitKind::Line | UnitKind::Prose) && self.fuse(pos, false) {
            return;
        }
        if brings_something_new(&self.said, &piece.content) {
            // A new title that shares only a name ("IntelliJ IDEA ...") joins that title line.
            if piece.unit.kind == UnitKind::Line && self.fuse(pos, true) {
                return;
            }
            self.add(pos);
        }
    }

    /// Shows a title line (or a short sentence of another member) as the last words it adds to
    /// a shown unit of its kind it shares its opening with, when it has any.
    fn fuse(&mut self, pos: Pos, by_name: bool) -> bool {
        let piece = self.piece(pos);
        let kind = piece.unit.kind;
        let found = self.shown.iter().find_map(|(place, &shown)| {
            let other = self.piece(shown);
            (other.unit.kind == kind && shown.0 != pos.0)
                .then(|| tail(&other.unit.text, &piece.unit.text, kind, by_name))
                .flatten()
                .map(|t| (*place, t))
        });
        let Some((place, tail)) = found else { return false };
        let tails = self.tails.entry(place).or_default();
        if !tails.contains(&tail) {
            tails.push(tail);
            self.tail_from.entry(place).or_default().push((pos, by_name));
        }
        self.said.extend(&piece.whole);
        true
    }

    /// Drops each fused tail whose every word and value the rest of the text says ("API
    /// Reference" beside a sentence naming the API reference).
    fn prune_tails(&mut self) {
        let shown = self.shown.values().fold(Content::default(), |mut acc, &p| {
            acc.extend(&self.piece(p).whole);
            acc
        });
        let places: Vec<Pos> = self.tails.keys().copied().collect();
        for place in places {
            let mut k = 0;
            while k < self.tails.get(&place).map_or(0, Vec::len) {
                let content = Content::of(&self.tails[&place][k]);
                let mut rest = shown.clone();
                for (p, tails) in &self.tails {
                    for (j, t) in tails.iter().enumerate() {
                        if (*p, j) != (place, k) {
                            rest.extend(&Content::of(t));
                        }
                    }
                }
                let adds = content.values.iter().any(|v| !rest.holds_value(v))
                    || content.words.iter().any(|w| !rest.holds_word(w) && !rest.holds_value(w));
                // A title that joined by a name only stays while, all said, it is still new.
                let joined_by_name = self.tail_from.get(&place).and_then(|f| f.get(k)).filter(|(_, by_name)| *by_name);
                let adds = adds
                    && joined_by_name.is_none_or(|&(from, _)| brings_something_new(&rest, &self.piece(from).content));
                match self.tails.get_mut(&place) {
                    Some(tails) if !adds => {
                        tails.remove(k);
                        if let Some(from) = self.tail_from.get_mut(&place) {
                            from.remove(k);
                        }
                    }
                    _ => k += 1,
                }
            }
        }
    }
}

/// Merges the texts of one field, the representative's first.
pub fn merge_texts(texts: &[Option<&str>]) -> MergedField {
    let (members, present): (Vec<usize>, Vec<&str>) =
        texts.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i, t.trim()))).filter(|(_, t)| !t.is_empty()).unzip();
    let source_chars = present.iter().map(|t| t.chars().count()).sum();
    let longest_source_chars = present.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    if present.is_empty() {
        return MergedField {
            text: None,
            source_items: 0,
            present_items: 0,
            source_chars,
            longest_source_chars,
            origins: Vec::new(),
        };
    }
    let sources: Vec<Vec<Piece>> =
        present.iter().map(|text| units(text).into_iter().map(Piece::new).collect()).collect();
    let mut kept = Kept {
        sources: &sources,
        shown: BTreeMap::new(),
        tails: BTreeMap::new(),
        tail_from: BTreeMap::new(),
        keys: HashSet::new(),
        said: Content::default(),
    };
    for (k, piece) in sources[0].iter().enumerate() {
        if !kept.keys.contains(piece.key.as_str()) {
            kept.keep((0, k), (0, k));
        }
    }
    for (s, pieces) in sources.iter().enumerate().skip(1) {
        for k in 0..pieces.len() {
            kept.consider((s, k));
        }
    }
    kept.prune_tails();
    keep_every_clause(&mut kept, false);
    kept.prune();
    keep_every_clause(&mut kept, true);
    let text = render(&kept);
    let (source_items, present_items) = coverage_items(&sources, &text);
    MergedField {
        origins: origins(&kept)
            .into_iter()
            .map(|(text, from)| (text, from.into_iter().map(|s| members[s]).collect()))
            .collect(),
        text: Some(text),
        source_items,
        present_items,
        source_chars,
        longest_source_chars,
    }
}

/// Keeps dropped units whose clauses the text would lose until none is lost.
fn keep_every_clause(kept: &mut Kept, on_rendered: bool) {
    // Each round shows a unit never shown before (a replaced unit is held by its replacement).
    for _ in 0..kept.sources.iter().map(Vec::len).sum::<usize>() {
        match kept.first_lost(on_rendered) {
            Some(pos) => kept.add(pos),
            None => return,
        }
    }
}

/// What each unit of a rendered text says, and all it holds.
fn rendered(text: &str) -> (Vec<Content>, Content) {
    let mut held = Content::default();
    let shown = units(text)
        .into_iter()
        .map(|unit| {
            if unit.kind == UnitKind::Code {
                let lines = Content::of_lines(&unit.text);
                held.extend(&lines);
                return lines;
            }
            held.extend(&Content::of(&unit.text));
            Content::of(statement(&unit.text))
        })
        .collect();
    (shown, held)
}

/// How many items of `piece` the text would lose: its values the text does not hold, and the
/// missing words of each of its clauses that the text does not say (it holds less than half of
/// the clause) or says in part (the closest shown unit says nothing the clause does not: a
/// clause left out of it, such as "and cargo clippy"). A closest unit with words of its own is
/// a rewording, and the clause's missing words are its wording.
fn loses(piece: &Piece, shown: &[Content], held: &Content) -> usize {
    let (values, words) = held.missing_from(&piece.content);
    if words == 0 {
        return values;
    }
    let lost: usize = piece
        .clauses
        .iter()
        .map(|clause| {
            let missing = held.missing_from(clause).1;
            if missing == 0 || 2 * held.shared_with(clause) < clause.len() {
                return missing;
            }
            let closest = shown.iter().max_by_key(|c| c.shared_with(clause));
            if closest.is_some_and(|c| clause.missing_from(c) != (0, 0)) { 0 } else { missing }
        })
        .sum();
    values + lost
}

/// A unit's clauses: split at semicolons, colons, dashes and ", and" / ", but" / ", so".
fn clauses(text: &str) -> Vec<String> {
    let mut out = vec![text.to_owned()];
    for mark in ["; ", ": ", " - ", " -- ", " — ", ", and ", ", but ", ", so ", ", which "] {
        out = out.iter().flat_map(|t| t.split(mark)).map(str::to_owned).collect();
    }
    out.retain(|c| !c.trim().is_empty());
    out
}

/// (items the sources state, items the rendered text holds): every distinct value, every
/// content word the text holds, and the words of the clauses it left out.
fn coverage_items(sources: &[Vec<Piece>], text: &str) -> (usize, usize) {
    let (shown, held) = rendered(text);
    let mut all = Content::default();
    let mut lost = 0;
    for piece in sources.iter().flatten() {
        all.extend(&piece.content);
        let (values, _) = held.missing_from(&piece.content);
        lost += loses(piece, &shown, &held) - values;
    }
    let values = all.values.len();
    let held_values = all.values.iter().filter(|v| held.holds_value(v)).count();
    let held_words = all.words.iter().filter(|w| held.holds_word(w)).count();
    (values + held_words + lost, held_values + held_words)
}

/// A new value is a fact; otherwise enough new content words make a new statement, and a
/// paraphrase of what is already said brings neither. A unit that restates values already said
/// ("See PR #7400", "Implemented in db.py (PR #7400)") weighs its new words against its values
/// too: it points at the same facts in other words.
fn brings_something_new(said: &Content, candidate: &Content) -> bool {
    let (new_values, new_words) = said.missing_from(candidate);
    if new_values > 0 {
        true
    } else if candidate.values.is_empty() {
        !candidate.words.is_empty() && new_words as f64 / candidate.words.len() as f64 >= NOVEL_WORD_SHARE
    } else {
        new_words as f64 / candidate.len() as f64 >= NOVEL_WORD_SHARE
    }
}

/// The last words of `line` after the opening it shares with `shown`, when that opening is at
/// least half of each and three words or more: "X -- documentation" after "X -- development"
/// (for a sentence, when the rest of it shares nothing with the shown one's).
fn tail(shown: &str, line: &str, kind: UnitKind, by_name: bool) -> Option<String> {
    let bare = |t: &str| t.trim_end_matches(['.', '!', '?']).to_owned();
    let (shown, line) = if kind == UnitKind::Prose { (bare(shown), bare(line)) } else { (shown.into(), line.into()) };
    let (a, b): (Vec<&str>, Vec<&str>) = (shown.split_whitespace().collect(), line.split_whitespace().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x.eq_ignore_ascii_case(y)).count();
    // Titles share most of their words, or (`by_name`) a name ("IntelliJ IDEA Platform API",
    // "IntelliJ IDEA Extension Point Framework"); sentences share most of their words, and a
    // negation is never a tail.
    let enough = if kind == UnitKind::Line && by_name {
        common >= 2 && 2 * common >= a.len().min(b.len())
    } else {
        common >= 3 && 2 * common >= a.len().max(b.len())
    };
    let tail = &b[common.min(b.len())..];
    let negated = tail.first().is_some_and(|w| matches!(w.to_lowercase().as_str(), "not" | "no" | "never"));
    // A sentence's tail states another thing only when it shares nothing with the shown one's
    // (else it is a rewording of it, judged as one).
    let distinct = kind != UnitKind::Prose || {
        let (mine, theirs) = (Content::of(&a[common.min(a.len())..].join(" ")), Content::of(&tail.join(" ")));
        !theirs.is_empty() && theirs.shared_with(&mine) == 0
    };
    (enough && distinct && !negated && common < b.len() && common < a.len()).then(|| tail.join(" "))
}

/// A shown unit with the tails fused into it: a title's as `X / Y`, parenthesised variants
/// as `X (a, b)`, a sentence's as `X; Y.`.
fn fused(unit: &Unit, tails: Option<&Vec<String>>) -> String {
    let Some(tails) = tails.filter(|t| !t.is_empty()) else { return unit.text.clone() };
    if unit.kind == UnitKind::Prose {
        let body = unit.text.trim_end_matches(['.', '!', '?']);
        let end = &unit.text[body.len()..];
        return format!("{body}; {}{}", tails.join("; "), if end.is_empty() { "." } else { end });
    }
    let inner = |t: &str| t.strip_prefix('(').and_then(|t| t.strip_suffix(')')).map(str::to_owned);
    let open = unit.text.rfind(" (").filter(|_| unit.text.ends_with(')'));
    let variants: Option<Vec<String>> = tails.iter().map(|t| inner(t)).collect();
    match (open, variants) {
        (Some(at), Some(variants)) => {
            let head = &unit.text[..at];
            let first = &unit.text[at + 2..unit.text.len() - 1];
            format!("{head} ({first}, {})", variants.join(", "))
        }
        _ => format!("{} / {}", unit.text, tails.join(" / ")),
    }
}

/// For each shown unit, the sources stating it: its own, then every source with a unit of the
/// same key or one it says more than.
fn origins(kept: &Kept) -> Vec<(String, Vec<usize>)> {
    kept.shown
        .iter()
        .map(|(place, &(s, k))| {
            let shown = kept.piece((s, k));
            let text = fused(&shown.unit, kept.tails.get(place));
            let mut from = vec![s];
            for &((tail_source, _), _) in kept.tail_from.get(place).into_iter().flatten() {
                if !from.contains(&tail_source) {
                    from.push(tail_source);
                }
            }
            for (other, pieces) in kept.sources.iter().enumerate() {
                let states = pieces.iter().any(|p| p.key == shown.key || shown.says_more_than(p));
                if other != s && states && !from.contains(&other) {
                    from.push(other);
                }
            }
            (text, from)
        })
        .collect()
}

fn render(kept: &Kept) -> String {
    let mut out = String::new();
    let mut previous: Option<(Pos, UnitKind)> = None;
    for (&place, &pos) in &kept.shown {
        let unit = &kept.piece(pos).unit;
        if let Some(((ps, pk), last_kind)) = previous {
            let sep = if ps == place.0 {
                kept.sources[ps][pk + 1..=place.1].iter().map(|p| p.unit.sep).max().unwrap_or(Sep::Space)
            } else if last_kind == UnitKind::Prose && unit.kind == UnitKind::Prose {
                Sep::Space
            } else {
                Sep::Line
            };
            let sep = if sep == Sep::Space && (last_kind != UnitKind::Prose || unit.kind != UnitKind::Prose) {
                Sep::Line
            } else if ps != place.0 && out.ends_with(':') {
                // A unit from another member never completes one that announces what follows.
                Sep::Paragraph
            } else {
                sep
            };
            if sep == Sep::Space && !out.ends_with(['.', '!', '?', ';', ':']) {
                // Units from different members read as sentences, not run together.
                out.push('.');
            }
            out.push_str(sep.as_str());
        }
        out.push_str(&fused(unit, kept.tails.get(&place)));
        if unit.kind == UnitKind::Code && !unit.text.trim_end().ends_with("```") {
            // An unclosed fence would swallow what follows.
            out.push_str("\n```");
        }
        previous = Some((place, unit.kind));
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
    fn a_clause_one_wording_adds_is_kept_in_place_of_the_shorter_wording() {
        let m = merged(&[
            "Run cargo fmt before pushing to the main branch. CI rejects unformatted code.",
            "Run cargo fmt and cargo clippy before pushing to the main branch.",
        ]);
        assert_eq!(
            m.text.as_deref(),
            Some("Run cargo fmt and cargo clippy before pushing to the main branch. CI rejects unformatted code.")
        );
        assert_eq!(m.coverage(), 1.0);
        let from: Vec<&Vec<usize>> = m.origins.iter().map(|(_, from)| from).collect();
        assert_eq!(from, vec![&vec![1, 0], &vec![0]]);
        assert_eq!(m.origins[1].0, "CI rejects unformatted code.");
    }

    #[test]
    fn title_lines_that_differ_in_their_last_words_are_one_line() {
        let m = merged(&[
            "library for parsing the mspub file structure -- development\nLibmspub interprets mspub diagrams.",
            "library for parsing the mspub file structure -- documentation\nLibmspub interprets mspub diagrams.",
            "library for parsing the mspub file structure -- tools\nLibmspub interprets mspub diagrams.",
        ]);
        assert_eq!(
            m.text.as_deref(),
            Some(
                "library for parsing the mspub file structure -- development / documentation / tools\nLibmspub interprets mspub diagrams."
            )
        );
        assert_eq!(m.coverage(), 1.0);
    }

    #[test]
    fn variants_in_parentheses_and_short_sentences_sharing_their_opening_are_one_unit() {
        let m = merged(&[
            "Open GL canvas library (common files)\nClutter makes fast 2D single window applications.\n\nThis package contains translations.",
            "Open GL canvas library (development files)\nClutter makes fast 2D single window applications.\n\nThis package contains headers.",
            "Open GL canvas library (documentation)\nClutter makes fast 2D single window applications.\n\nThis package contains the manual.",
        ]);
        assert_eq!(
            m.text.as_deref(),
            Some(
                "Open GL canvas library (common files, development files, documentation)\nClutter makes fast 2D single \
                 window applications.\n\nThis package contains translations; headers; the manual."
            )
        );
        assert_eq!(m.coverage(), 1.0);
        assert_eq!(m.origins.last().map(|o| o.1.clone()), Some(vec![0, 1, 2]), "each tail's source states it");
    }

    #[test]
    fn a_new_title_sharing_only_a_name_joins_the_title_line() {
        let m = merged(&[
            "IntelliJ IDEA Platform API\nIntelliJ IDEA is a Java IDE.",
            "IntelliJ IDEA Extension Point Framework\nIntelliJ IDEA is a Java IDE.",
        ]);
        let text = m.text.unwrap_or_default();
        assert_eq!(text, "IntelliJ IDEA Platform API / Extension Point Framework\nIntelliJ IDEA is a Java IDE.");
    }

    #[test]
    fn a_title_joined_by_name_leaves_when_the_rest_of_the_text_says_it() {
        let m = merged(&[
            "IntelliJ IDEA Platform API\nThe IDE is for Java.",
            "IntelliJ IDEA Project Model\nIt handles the project files and build scripts of large repositories.",
        ]);
        assert_eq!(m.coverage(), 1.0);
        let text = m.text.unwrap_or_default();
        assert!(text.starts_with("IntelliJ IDEA Platform API\n"), "{text}");
        assert!(text.ends_with("It handles the project files and build scripts of large repositories."), "{text}");
    }

    #[test]
    fn a_sentence_that_negates_is_never_fused_as_a_tail() {
        let m = merged(&["The cache is safe to share.", "The cache is not safe to share across workers."]);
        let text = m.text.unwrap_or_default();
        assert!(!text.contains("; not"), "{text}");
        assert!(text.contains("The cache is not safe to share across workers."), "{text}");
    }

    #[test]
    fn a_code_block_holding_every_line_of_another_replaces_it() {
        let m = merged(&[
            "Use it:\n```\nlet tz = get()?;\nprintln!(\"{tz}\");\n```",
            "Use it:\n```\nlet tz = get()?;\nprintln!(\"{tz}\");\n# Ok::<(), E>(())\n```",
        ]);
        let text = m.text.unwrap_or_default();
        assert_eq!(text.matches("let tz").count(), 1, "{text}");
        assert!(text.contains("# Ok::<(), E>(())"), "{text}");
    }

    #[test]
    fn a_negated_unit_never_stands_in_for_an_affirmed_one() {
        let m =
            merged(&["Do not set pool_size=20 in production.", "Set pool_size=20 in production to stop the timeouts."]);
        let text = m.text.unwrap_or_default();
        assert!(text.starts_with("Do not set pool_size=20 in production."), "{text}");
    }

    #[test]
    fn a_scope_naming_a_value_is_part_of_the_statement_and_an_unclosed_fence_is_closed() {
        // A scope that names a value is a fact.
        let m = merged(&["PostgreSQL 15: install libpq-dev first.", "PostgreSQL 16: install libpq-dev first."]);
        let text = m.text.unwrap_or_default();
        assert!(text.contains("PostgreSQL 15") && text.contains("PostgreSQL 16"), "{text}");
        let m = merged(&["Run:\n```\ncargo test", "Also set pool_size=20 in db.py."]);
        let text = m.text.unwrap_or_default();
        assert!(text.ends_with("```\nAlso set pool_size=20 in db.py."), "{text}");
    }

    #[test]
    fn a_lead_in_is_wording_and_the_statement_is_said_once() {
        let m = merged(&[
            "Lesson learned: PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) shows whether a query read from the cache or from disk.",
            "Learned about postgres: PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) shows whether a query read from the cache or from disk.",
            "Worth remembering for postgres: PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) shows whether a query read from the cache or from disk.",
        ]);
        let text = m.text.unwrap_or_default();
        assert_eq!(text.matches("EXPLAIN").count(), 1, "{text}");
    }

    #[test]
    fn a_clause_left_out_of_the_text_shows_in_coverage() {
        let sources: Vec<Vec<Piece>> = ["Run cargo fmt and cargo clippy before pushing to the main branch."]
            .iter()
            .map(|t| units(t).into_iter().map(Piece::new).collect())
            .collect();
        let (items, held) = coverage_items(&sources, "Run cargo fmt before pushing to the main branch.");
        assert!(held < items, "{held} of {items}");
        let (items, held) =
            coverage_items(&sources, "Before pushing to the main branch, run cargo clippy and cargo fmt.");
        assert_eq!(held, items);
    }

    #[test]
    fn a_field_no_member_has_stays_absent() {
        let m = merge_texts(&[None, Some("  "), None]);
        assert_eq!(m.text, None);
        assert_eq!(m.coverage(), 1.0);
    }
}
