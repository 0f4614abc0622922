//! Starts any combination of gateway, worker and scheduler against one database and one NATS,
//! and stops them all on Ctrl-C or SIGTERM (in-flight jobs drain first).

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::Bus,
    config::{DatabaseConfig, GatewayConfig, NatsConfig, SchedulerConfig, WorkerConfig},
    gateway, scheduler, store, worker,
};

/// Which components this process runs.
pub struct Components {
    pub gateway: Option<GatewayConfig>,
    pub worker: Option<WorkerConfig>,
    pub scheduler: Option<(SchedulerConfig, u32)>,
}

/// Connects, creating the database and applying migrations unless told not to.
pub async fn connect_database(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    if !config.skip_migrations {
        store::db::create_database_if_missing(&config.database_url)
            .await
            .context("creating the database (DATABASE_URL)")?;
    }
    let pool = store::connect(&config.database_url, config.database_max_connections)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    if !config.skip_migrations {
        store::db::migrate_up(&pool).await.context("applying migrations")?;
    }
    Ok(pool)
}

pub async fn connect_bus(config: &NatsConfig, name: &str) -> anyhow::Result<Bus> {
    let prefix = config.prefix()?;
    let bus = Bus::connect(config, prefix, name).await.context("connecting to NATS (NATS_URL)")?;
    bus.ensure_streams(config.events_max_age()?).await.context("creating JetStream streams")?;
    Ok(bus)
}

pub async fn run(database: DatabaseConfig, nats: NatsConfig, components: Components) -> anyhow::Result<()> {
    if let Some(config) = &components.worker {
        config.validate()?;
    }
    let schedule = match &components.scheduler {
        Some((config, _)) => Some(scheduler::parse_schedule(&config.schedule)?),
        None => None,
    };
    if let Some(config) = &components.gateway {
        gateway::auth::Auth::from_config(config)?;
    }
    let db = connect_database(&database).await?;
    tracing::info!(database = %redact(&database.database_url), "connected to PostgreSQL; migrations applied");
    let bus = connect_bus(&nats, "consolidator").await?;
    tracing::info!(nats = %nats.nats_url, prefix = %bus.prefix, "connected to NATS; streams ready");

    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    if let Some(config) = components.worker {
        let worker = Arc::new(worker::Worker::new(db.clone(), bus.clone(), config));
        let token = shutdown.clone();
        tasks.spawn(async move { worker::run(worker, token).await.context("worker") });
    }
    if let (Some((config, rollback_window_days)), Some(schedule)) = (components.scheduler, schedule) {
        let scheduler =
            scheduler::Scheduler { db: db.clone(), bus: bus.clone(), schedule, config, rollback_window_days };
        let token = shutdown.clone();
        tasks.spawn(async move {
            scheduler::run(scheduler, token).await;
            Ok(())
        });
    }
    if let Some(config) = components.gateway {
        let addr = config.http_addr;
        let state = gateway::AppState::new(db.clone(), bus.clone(), config)?;
        let token = shutdown.clone();
        tasks.spawn(async move {
            gateway::serve(state, token).await.map(|_| ()).with_context(|| format!("gateway on {addr} (HTTP_ADDR)"))
        });
    }

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested; draining"),
        Some(ended) = tasks.join_next() => {
            shutdown.cancel();
            report(ended)?;
        }
    }
    shutdown.cancel();
    while let Some(ended) = tasks.join_next().await {
        report(ended)?;
    }
    tracing::info!("stopped");
    Ok(())
}

fn report(ended: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    ended.context("component panicked")?
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// The database url without its password, for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(redact("postgres:///x"), "postgres:///x");
    }
}
