//! Everything a test needs, one import away (`use crate::harness::*`): its own database and
//! subject prefix (`TestEnv`), workers, the gateway served in-process (`TestGateway`), fixtures,
//! and helpers for commands and events.

pub mod embedder;
pub mod env;
pub mod fixtures;
pub mod gateway;
pub mod http;
pub mod support;

pub use embedder::*;
pub use env::*;
pub use fixtures::*;
pub use gateway::*;
pub use http::*;
pub use support::*;
