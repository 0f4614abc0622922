//! Benchmarks that print JSON: the engine alone, and end to end through NATS and PostgreSQL.

pub mod e2e;
pub mod engine;
pub mod gateway;
pub mod lifecycle;
pub mod realtext;
pub mod soak;
