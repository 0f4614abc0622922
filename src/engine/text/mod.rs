//! Text analysis shared by the merge, guard, synthesis and promote stages: units (sentences,
//! lines, list items, code blocks) and what each says (values and content words).

pub mod units;
pub mod words;
