//! Integration tests against the real PostgreSQL and NATS; one binary, one module per area.

#[path = "../common/mod.rs"]
mod common;
mod fixtures;
mod migrations;
mod private_nats;
mod scheduler;
mod store;
mod support;
mod worker;
