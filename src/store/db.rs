//! Connection, database creation and the embedded migrations.

use std::{str::FromStr, time::Duration};

use sqlx::{
    ConnectOptions, Connection, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{Result, StoreError};

pub static MIGRATOR: Migrator = sqlx::migrate!();

pub type Db = PgPool;

const SLOW_STATEMENT: Duration = Duration::from_secs(10);

/// One row of `migrate status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

fn options(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|error| StoreError::InvalidUrl(error.to_string()))
}

pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    pool(options(url)?, max_connections).await
}

/// A pool whose statements PostgreSQL itself cancels half a second after `request_timeout`: the
/// gateway's, so that a request its timeout gave up on (and answered 503) leaves no query
/// running or waiting on a lock.
pub async fn connect_for_requests(url: &str, max_connections: u32, request_timeout: Duration) -> Result<PgPool> {
    let timeout = format!("{}ms", (request_timeout + Duration::from_millis(500)).as_millis());
    pool(options(url)?.options([("statement_timeout", timeout.as_str())]), max_connections).await
}

async fn pool(options: PgConnectOptions, max_connections: u32) -> Result<PgPool> {
    // Large projects legitimately run multi-second bulk statements; warn only past that.
    let options = options
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, SLOW_STATEMENT);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

/// Creates the database named in `url` if it does not exist yet (through the `postgres` database).
pub async fn create_database_if_missing(url: &str) -> Result<bool> {
    let target = options(url)?;
    let name =
        target.get_database().ok_or_else(|| StoreError::InvalidUrl("the url names no database".to_owned()))?.to_owned();
    let mut admin = PgConnection::connect_with(&target.clone().database("postgres")).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if exists {
        return Ok(false);
    }
    let quoted = name.replace('"', "\"\"");
    match sqlx::query(&format!("CREATE DATABASE \"{quoted}\"")).execute(&mut admin).await {
        Ok(_) => Ok(true),
        // Another process created it between the check and the statement.
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => Ok(false),
        Err(error) => Err(error.into()),
    }
}

pub async fn migrate_up(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Reverts applied migrations newer than `target` (0 reverts them all).
pub async fn migrate_down(pool: &PgPool, target: i64) -> Result<()> {
    MIGRATOR.undo(pool, target).await?;
    Ok(())
}

pub async fn migration_status(pool: &PgPool) -> Result<Vec<MigrationStatus>> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    let applied: Vec<i64> = if table_exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| MigrationStatus {
            version: migration.version,
            description: migration.description.to_string(),
            applied: applied.contains(&migration.version),
        })
        .collect())
}
