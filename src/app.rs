//! Starts any combination of gateway, worker and scheduler against one database and one NATS,
//! and stops them all on Ctrl-C or SIGTERM (running jobs get SHUTDOWN_GRACE_SECS to finish, then
//! are handed back to another worker).

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::Bus,
    config::{
        DatabaseConfig, EmbeddingConfig, GatewayConfig, LocalSecretConfig, NatsConfig, RetentionConfig,
        SchedulerConfig, WorkerConfig,
    },
    gateway::{self, API_PREFIX, auth, local_secret},
    scheduler, store, worker,
};

/// Lifetime of the admin token `all` prints when it runs on the local development secret.
pub const LOCAL_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// What `all` on loopback without a configured key runs on: the local secret and a ready token.
pub struct LocalAccess {
    pub secret_file: std::path::PathBuf,
    pub created: bool,
    pub token: String,
    pub base_url: String,
}

/// When neither JWT_SECRET nor JWT_PUBLIC_KEY is set and the gateway listens on a loopback
/// address only, signs with the local development secret (made on first use) and returns it
/// with an admin token. Anywhere else nothing changes: the gateway then refuses to start.
pub fn local_development_access(
    gateway: &mut GatewayConfig,
    secret: &LocalSecretConfig,
) -> anyhow::Result<Option<LocalAccess>> {
    let configured = gateway.jwt_secret.as_deref().is_some_and(|s| !s.is_empty())
        || gateway.jwt_public_key.as_deref().is_some_and(|k| !k.is_empty());
    if configured || !gateway.http_addr.ip().is_loopback() {
        return Ok(None);
    }
    let path = &secret.local_secret_file;
    let (value, created) =
        local_secret::load_or_create(path).context("the local development secret (LOCAL_SECRET_FILE)")?;
    let claims = auth::Claims::admin("local-admin", vec![auth::ALL_PROJECTS.to_owned()], LOCAL_TOKEN_TTL_SECS);
    let token = auth::mint(&value, &claims).context("signing the local admin token")?;
    gateway.jwt_secret = Some(value);
    let base_url = crate::config::local_url(gateway.http_addr);
    Ok(Some(LocalAccess { secret_file: path.clone(), created, token, base_url }))
}

impl LocalAccess {
    /// What the person who started `all` needs to use it at once.
    pub fn announcement(&self) -> String {
        let made = if self.created { "created now" } else { "made earlier" };
        // The program as it was started, so the printed command works as pasted.
        let program = std::env::args().next().unwrap_or_else(|| "consolidator".to_owned());
        format!(
            "No JWT_SECRET or JWT_PUBLIC_KEY set and the gateway listens on loopback only: tokens are signed with \
             the development secret in {file} ({made}, mode 0600).\n\
             Admin token for every project, valid {hours} h:\n\n{token}\n\n\
             Console: {base}/console (paste the token above)\n\
             API: {base}{API_PREFIX}  OpenAPI document: {base}/openapi.json\n\
             In another terminal (`token` reads the same secret file):\n  \
             export TOKEN=$({program} token)\n  \
             curl -H \"Authorization: Bearer $TOKEN\" {base}{API_PREFIX}/projects\n",
            file = self.secret_file.display(),
            hours = LOCAL_TOKEN_TTL_SECS / 3600,
            token = self.token,
            base = self.base_url,
        )
    }
}

/// The secret `consolidator token` signs with: JWT_SECRET, else the local development secret.
pub fn token_secret(jwt_secret: Option<String>, secret: &LocalSecretConfig) -> anyhow::Result<String> {
    match jwt_secret.filter(|s| !s.is_empty()) {
        Some(value) if value.len() < auth::MIN_SECRET_BYTES => Err(anyhow::anyhow!(
            "invalid setting JWT_SECRET: {} bytes; the gateway accepts only secrets of at least {} bytes",
            value.len(),
            auth::MIN_SECRET_BYTES
        )),
        Some(value) => Ok(value),
        None => local_secret::read(&secret.local_secret_file).with_context(|| {
            format!(
                "no JWT_SECRET set, and no local development secret in {} (LOCAL_SECRET_FILE): \
                 `consolidator all` writes it there when it starts on a loopback address without JWT_SECRET \
                 (if it runs with another LOCAL_SECRET_FILE, give `token` the same one), or set JWT_SECRET",
                secret.local_secret_file.display()
            )
        }),
    }
}

/// Which components this process runs.
pub struct Components {
    pub gateway: Option<GatewayConfig>,
    pub worker: Option<WorkerConfig>,
    pub scheduler: Option<SchedulerConfig>,
    /// The rollback window and audit retention every component reads.
    pub retention: RetentionConfig,
    /// The embeddings endpoint the gateway embeds texts with (the worker reads its own copy).
    pub embedding: EmbeddingConfig,
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

/// What a process may do to the two JetStream streams.
#[derive(Debug, Clone, Copy)]
pub enum StreamAccess {
    /// Create them, or update them to this process's settings (a worker, `setup`).
    Manage,
    /// Find both as they are, waiting this long for them to appear (gateway, scheduler, demo).
    Bind(std::time::Duration),
    /// Find the events stream as it is (a read-only subscriber: `watch`).
    BindEvents(std::time::Duration),
}

pub async fn connect_bus(config: &NatsConfig, name: &str, access: StreamAccess) -> anyhow::Result<Bus> {
    let prefix = config.prefix()?;
    let bus = Bus::connect(config, prefix, name).await.context("connecting to NATS (NATS_URL)")?;
    let events_max_age = config.events_max_age()?;
    let [commands, events] = bus.stream_configs(events_max_age);
    match access {
        StreamAccess::Manage => {
            bus.ensure_streams(events_max_age).await.context("creating JetStream streams")?;
        }
        StreamAccess::Bind(patience) => {
            for wanted in [commands, events] {
                bus.bind_stream(&wanted, patience).await?;
            }
        }
        StreamAccess::BindEvents(patience) => {
            bus.bind_stream(&events, patience).await?;
        }
    }
    Ok(bus)
}

pub async fn run(database: DatabaseConfig, nats: NatsConfig, components: Components) -> anyhow::Result<()> {
    components.retention.validate()?;
    if let Some(config) = &components.worker {
        config.validate()?;
        config.check_pool(database.database_max_connections)?;
    }
    let schedule = match &components.scheduler {
        Some(config) => Some(scheduler::parse_schedule(&config.schedule)?),
        None => None,
    };
    if let Some(config) = &components.gateway {
        config.validate()?;
        components.embedding.validate()?;
        gateway::auth::Auth::from_config(config)?;
    }
    let retention = components.retention;
    let db = connect_database(&database).await?;
    tracing::info!(database = %redact(&database.database_url), "connected to PostgreSQL; migrations applied");
    // Only a process with a worker creates or updates the streams; the others find them.
    let access = match components.worker {
        Some(_) => StreamAccess::Manage,
        None => StreamAccess::Bind(crate::bus::streams::SETUP_BUDGET),
    };
    let bus = connect_bus(&nats, "consolidator", access).await?;
    tracing::info!(nats = %nats.nats_url, prefix = %bus.prefix, "connected to NATS; streams ready");

    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    if let Some(config) = components.worker {
        let worker = Arc::new(worker::Worker::new(db.clone(), bus.clone(), config, retention.clone()));
        let token = shutdown.clone();
        tasks.spawn(async move { worker::run(worker, token).await.context("worker") });
    }
    if let (Some(config), Some(schedule)) = (components.scheduler, schedule) {
        let retention = retention.clone();
        let scheduler = scheduler::Scheduler { db: db.clone(), bus: bus.clone(), schedule, config, retention };
        let token = shutdown.clone();
        tasks.spawn(async move {
            scheduler::run(scheduler, token).await;
            Ok(())
        });
    }
    if let Some(config) = components.gateway {
        let addr = config.http_addr;
        let timeout = std::time::Duration::from_secs(config.request_timeout_secs);
        let requests_db =
            store::db::connect_for_requests(&database.database_url, database.database_max_connections, timeout)
                .await
                .context("connecting the gateway to PostgreSQL (DATABASE_URL)")?;
        let state = gateway::AppState::new(requests_db, bus.clone(), config, retention.clone())?
            .with_embedding(&components.embedding)?;
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
    use super::*;

    fn gateway(addr: &str) -> GatewayConfig {
        GatewayConfig {
            http_addr: addr.parse().unwrap(),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            request_timeout_secs: 10,
            body_limit_bytes: 1024 * 1024,
            rollback_wait_ms: 1000,
            ingest_max_batch: 10,
            sse_max_streams: 4,
            search_max_concurrent: 2,
            search_max_candidates: 100,
            metrics_token: None,
        }
    }

    fn secret_file() -> LocalSecretConfig {
        let dir = std::env::temp_dir().join(format!("consolidator-app-{}", uuid::Uuid::new_v4().simple()));
        LocalSecretConfig { local_secret_file: dir.join("jwt-secret") }
    }

    #[test]
    fn all_on_loopback_without_a_key_signs_with_the_local_secret_and_hands_out_a_working_token() {
        let file = secret_file();
        let mut config = gateway("127.0.0.1:8080");
        let access = local_development_access(&mut config, &file).unwrap().expect("local access");
        assert!(access.created && access.announcement().contains(&access.token));
        assert!(access.announcement().contains("Console: http://127.0.0.1:8080/console"));
        let auth = auth::Auth::from_config(&config).expect("the gateway starts on the local secret");
        let claims = auth.verify(&access.token).expect("the printed token is accepted");
        assert_eq!(claims.projects, vec![auth::ALL_PROJECTS.to_owned()]);
        let token_secret = token_secret(None, &file).expect("`token` reads the same file");
        assert_eq!(Some(token_secret), config.jwt_secret);
        let again = local_development_access(&mut gateway("[::1]:8080"), &file).unwrap().expect("local access");
        assert!(!again.created, "the file is made once");
        let _ = std::fs::remove_dir_all(file.local_secret_file.parent().unwrap());
    }

    #[test]
    fn a_configured_key_or_a_public_address_gets_no_local_secret() {
        let file = secret_file();
        let mut public = gateway("0.0.0.0:8080");
        assert!(local_development_access(&mut public, &file).unwrap().is_none());
        assert!(auth::Auth::from_config(&public).is_err(), "a public gateway without a key refuses to start");
        let mut configured = gateway("127.0.0.1:8080");
        configured.jwt_secret = Some("s".repeat(40));
        assert!(local_development_access(&mut configured, &file).unwrap().is_none());
        assert!(!file.local_secret_file.exists());
        assert!(token_secret(Some("short".to_owned()), &file).is_err(), "a secret the gateway would refuse");
        assert!(token_secret(None, &file).is_err(), "no secret anywhere");
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(redact("postgres:///x"), "postgres:///x");
    }
}
