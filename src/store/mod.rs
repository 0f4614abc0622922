//! SQL, and nothing else: typed rows and the queries the gateway, worker and scheduler run.

pub mod admin_actions;
pub mod cancel;
pub mod changes;
pub mod db;
pub mod embedding;
pub mod jobs;
pub mod memories;
pub mod plans;
pub mod playbook;
pub mod projects;
pub mod resident;
pub mod reviews;
pub mod rollbacks;
pub mod sweeps;
pub mod undo;
pub mod unembedded;
pub mod workers;

pub use db::{Db, connect};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The name of the constraint a database error violated, if it is a constraint violation.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

pub fn violated_constraint_of(error: &StoreError) -> Option<&str> {
    match error {
        StoreError::Database(db) => violated_constraint(db),
        _ => None,
    }
}
