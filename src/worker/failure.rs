//! How a handler's errors map onto outcomes: database and NATS trouble is transient,
//! an impossible command is not.

use super::Outcome;
use crate::{bus::BusError, store::StoreError};

#[derive(Debug)]
pub enum Failure {
    /// Worth retrying: the database or NATS may come back.
    Transient(String),
    /// Retrying cannot help: the job exists but cannot run; it fails with the reason.
    Impossible(String),
    /// Retrying cannot help and the command names no job of its own to fail.
    Rejected(String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Transient(error.to_string())
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(format!("database error: {error}"))
    }
}

impl From<BusError> for Failure {
    fn from(error: BusError) -> Self {
        Self::Transient(error.to_string())
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Transient(reason) => Outcome::Retry { reason },
            Failure::Impossible(reason) | Failure::Rejected(reason) => Outcome::Poison { reason },
        }
    }
}
