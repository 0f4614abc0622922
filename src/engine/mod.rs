//! Consolidation planner: pure logic, no async, no I/O of its own. `plan::plan` turns a project
//! snapshot, options and the current time into a plan the worker applies.

pub mod ann;
pub mod archive;
pub mod audit;
pub mod blast;
pub mod cluster;
pub mod clustering;
pub mod cues;
pub mod embed;
pub mod extractive;
pub mod guard;
pub mod held;
pub mod incremental;
pub mod merge;
pub mod model;
pub mod novelty;
pub mod options;
pub mod output;
pub mod partition;
pub mod plan;
pub mod plan_report;
pub mod prefilter;
pub mod promote;
pub mod similarity;
pub mod synthesis;
pub mod text;
pub mod words;

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod steady_state_tests;
#[cfg(test)]
pub(crate) mod tests;
