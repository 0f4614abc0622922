//! consolidator: keeps AI agents' task-memory stores lean and trustworthy.
//!
//! `gateway` (HTTP) and other services publish commands on NATS JetStream (`bus`); `worker`s
//! consume them, plan with the pure `engine` and apply the plan to PostgreSQL (`store`); the
//! `scheduler` publishes one sweep per tick. `app` starts any combination of them. Every module
//! speaks the vocabulary of `domain`, which imports none of them.
#![forbid(unsafe_code)]

pub mod app;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bus;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod finish;
pub mod gateway;
pub mod interchange;
pub mod llm;
pub mod scheduler;
pub mod soak;
pub mod store;
pub mod synthetic;
pub mod telemetry;
pub mod unmerge;
pub mod watch;
pub mod worker;
