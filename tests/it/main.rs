//! Integration tests against the real PostgreSQL and NATS; one binary, one module per area.

mod bus;
mod console;
mod demo;
mod gateway;
mod gateway_e2e;
mod gateway_jobs;
mod gateway_limits;
mod gateway_memories;
mod gateway_nul;
mod gateway_projects;
mod gateway_rollback;
mod gateway_scope;
mod gateway_spec;
mod gateway_views;
mod guards_bus;
mod guards_http;
mod guards_schema;
mod harness;
mod migrations;
mod private_nats;
mod recovery;
mod scheduler;
mod steady_state;
mod store;
mod watch;
mod worker;
