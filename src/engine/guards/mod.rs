//! What a plan may not do on its own (DESIGN.md §11): merge texts that differ in a value, or hide
//! more than `max_changed_share` of the active memories.

pub mod held;
pub mod retarget;
pub mod value;
