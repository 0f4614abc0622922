//! The live-store simulation (DESIGN.md §11): a seeded driver plays a store's life against the
//! real gateway (its router, in-process), a real worker on NATS and PostgreSQL — agents ingest new
//! memories and re-learned copies and reuse them; jobs run (full, incremental, dry, cancelled);
//! an admin rolls jobs back in random order (cascade or not), unmerges, settles reviews, archives
//! and unarchives by hand — and checks the store's invariants after every step (`invariants`).
//! `consolidator bench soak` runs it long; the test suite runs it short on three seeds.

mod driver;
mod invariants;

use std::collections::BTreeMap;

use serde::Serialize;

pub use driver::run;

#[derive(Debug, Clone, Copy)]
pub struct SoakConfig {
    pub steps: usize,
    pub seed: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub steps: usize,
    /// Steps taken, by action, and how each ended (`action:outcome`).
    pub actions: BTreeMap<String, usize>,
    pub memories_ingested: usize,
    pub active_at_end: i64,
    pub invariant_checks: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// An invariant broke: the seed and step reproduce it.
    #[error("seed {seed}, step {step} ({action}): {message}")]
    Invariant { seed: u64, step: usize, action: String, message: String },
    #[error("seed {seed}, step {step}: {message}")]
    Driver { seed: u64, step: usize, message: String },
}
