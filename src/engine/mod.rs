//! Consolidation planner: pure logic, no async, no I/O of its own. `plan::plan` turns a project
//! snapshot, options and the current time into a plan the worker applies. One folder per stage,
//! in the order the planner runs them: `candidates` (partitions, incremental selection),
//! `similarity` (exact, prefiltered and approximate pairs), `guards` (the value guard: pairs held
//! apart, reviews and supersessions), `clustering` (clique groups), `merge` (merged text,
//! embeddings), `synthesis`, `archive`, `promote`, and `plan` (the orchestration, its audit rows
//! and its bounded report). `text` is the sentence and word analysis the text stages share;
//! `budget` bounds what a job spends on outside model calls. The records a plan is made of live
//! in `domain`.

pub mod archive;
pub mod budget;
pub mod candidates;
pub mod clustering;
pub mod config;
pub mod guards;
pub mod merge;
pub mod plan;
pub mod promote;
pub mod similarity;
pub mod synthesis;
pub mod text;

#[cfg(test)]
pub(crate) mod tests;
