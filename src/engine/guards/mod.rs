//! The value guard (DESIGN.md §11): near-identical texts that state different values are held
//! apart, proposed for review or superseded, and named after the merges; texts in different
//! languages are never merged. The other limit, the
//! blast radius, is measured on the finished plan (`domain::BlastRadius`).

pub mod held;
pub mod language;
pub mod retarget;
pub mod value;
