//! How a handler's errors map onto outcomes: an outage (database or NATS unreachable) waits
//! without using up deliveries, other trouble is retried a bounded number of times, an
//! impossible command is not retried.

use super::Outcome;
use crate::{bus::BusError, store::StoreError};

#[derive(Debug)]
pub enum Failure {
    /// The database or NATS is unreachable (or refusing connections for now): wait for it.
    Outage(String),
    /// Worth a few more tries: a conflict or an error that is not an outage.
    Transient(String),
    /// Retrying cannot help: the job exists but cannot run; it fails with the reason.
    Impossible(String),
    /// Retrying cannot help and the command names no job of its own to fail.
    Rejected(String),
    /// Valid but early (the project runs another job): wait without using up deliveries.
    Busy(String),
    /// This worker is shutting down: the run stopped and the command goes to another worker at
    /// once, without counting as a failure.
    Shutdown,
}

/// SQLSTATE classes and codes that mean "the server is not there for now": connection
/// exceptions, shutdown and start-up, too many connections, and the conflicts a retry resolves.
fn is_outage_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || matches!(code, "53300" | "40001" | "40P01" | "55P03")
}

pub fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_outage_state(&code)),
        _ => false,
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        if is_outage(&error) {
            Self::Outage(format!("database unavailable: {error}"))
        } else {
            Self::Transient(format!("database error: {error}"))
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => error.into(),
            other => Self::Transient(other.to_string()),
        }
    }
}

impl From<crate::finish::FinishError> for Failure {
    fn from(error: crate::finish::FinishError) -> Self {
        match error {
            crate::finish::FinishError::Store(error) => error.into(),
            crate::finish::FinishError::Bus(error) => error.into(),
            other => Self::Transient(other.to_string()),
        }
    }
}

impl From<BusError> for Failure {
    fn from(error: BusError) -> Self {
        match error {
            BusError::Encode(_) => Self::Transient(error.to_string()),
            _ => Self::Outage(error.to_string()),
        }
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Outage(reason) | Failure::Busy(reason) => Outcome::Retry { reason, counted: false },
            Failure::Transient(reason) => Outcome::Retry { reason, counted: true },
            Failure::Impossible(reason) | Failure::Rejected(reason) => Outcome::Poison { reason },
            Failure::Shutdown => Outcome::Release,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_servers_are_outages_and_query_errors_are_not() {
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
        assert!(is_outage(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))));
        assert!(!is_outage(&sqlx::Error::RowNotFound));
        assert!(is_outage_state("08006") && is_outage_state("57P01") && is_outage_state("57P03"));
        assert!(!is_outage_state("23505") && !is_outage_state("22021"));
        assert!(matches!(Failure::from(sqlx::Error::PoolTimedOut), Failure::Outage(_)));
        assert!(matches!(Failure::from(sqlx::Error::RowNotFound), Failure::Transient(_)));
    }
}
