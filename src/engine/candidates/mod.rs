//! Candidates: which memories take part in clustering and which of their pairs are compared.

pub mod incremental;
pub mod partition;
