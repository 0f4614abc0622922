//! Test harness: every test gets its own database and its own NATS subject prefix, so tests run
//! in parallel without seeing each other. DATABASE_URL / NATS_URL (default: the standard local
//! ports) are used when they answer; otherwise, if a Docker engine exists, testcontainers starts
//! PostgreSQL and NATS with JetStream once for the whole test binary.

use std::{net::ToSocketAddrs, str::FromStr, sync::Arc, time::Duration};

use consolidator::config::RetentionConfig;
use consolidator::domain::Prefix;
use consolidator::{
    bus::Bus,
    config::{EmbeddingConfig, NatsConfig, WorkerConfig},
    store,
    worker::Worker,
};
use sqlx::{ConnectOptions, PgPool, postgres::PgConnectOptions};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

struct Services {
    database_url: String,
    nats_url: String,
}

static SERVICES: OnceCell<Services> = OnceCell::const_new();

fn reachable(url: &str, default_port: u16) -> bool {
    let authority = url.split("://").nth(1).unwrap_or(url);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = host_port.split(['/', ',', '?']).next().unwrap_or(host_port);
    let target = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:{default_port}") };
    target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
}

async fn services() -> &'static Services {
    SERVICES
        .get_or_init(|| async {
            let database_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
            let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned());
            let database_url =
                if reachable(&database_url, 5432) { database_url } else { start_postgres_container().await };
            let nats_url = if reachable(&nats_url, 4222) { nats_url } else { start_nats_container().await };
            Services { database_url, nats_url }
        })
        .await
}

async fn start_postgres_container() -> String {
    use testcontainers_modules::{postgres::Postgres, testcontainers::runners::AsyncRunner};
    assert!(docker_available(), "PostgreSQL is not reachable (DATABASE_URL) and no Docker engine exists");
    let container = Postgres::default().start().await.expect("starting a PostgreSQL container");
    let port = container.get_host_port_ipv4(5432).await.expect("container port");
    // The container lives as long as the test binary.
    Box::leak(Box::new(container));
    format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")
}

async fn start_nats_container() -> String {
    use testcontainers_modules::{
        nats::{Nats, NatsServerCmd},
        testcontainers::{ImageExt, runners::AsyncRunner},
    };
    assert!(docker_available(), "NATS is not reachable (NATS_URL) and no Docker engine exists");
    let command = NatsServerCmd::default().with_jetstream();
    let container = Nats::default().with_cmd(&command).start().await.expect("starting a NATS container");
    let port = container.get_host_port_ipv4(4222).await.expect("container port");
    Box::leak(Box::new(container));
    format!("nats://127.0.0.1:{port}")
}

/// One test's private world: a fresh migrated database and a fresh subject prefix.
pub struct TestEnv {
    pub db: PgPool,
    pub database_name: String,
    pub nats: NatsConfig,
    pub bus: Bus,
    admin_url: String,
}

impl TestEnv {
    pub async fn new() -> Self {
        let env = Self::without_migrations().await;
        store::db::migrate_up(&env.db).await.expect("migrations apply to a fresh database");
        env
    }

    /// Like [`TestEnv::new`], on a NATS server of the test's own.
    pub async fn with_nats_url(nats_url: &str) -> Self {
        Self::with_nats(|nats| nats.nats_url = nats_url.to_owned()).await
    }

    /// Like [`TestEnv::new`], with NATS settings of the test's choosing (a server, a user, a prefix).
    pub async fn with_nats(configure: impl FnOnce(&mut NatsConfig)) -> Self {
        let env = Self::on(configure).await;
        store::db::migrate_up(&env.db).await.expect("migrations apply to a fresh database");
        env
    }

    /// A fresh, empty database (no migrations applied).
    pub async fn without_migrations() -> Self {
        Self::on(|_| {}).await
    }

    async fn on(configure: impl FnOnce(&mut NatsConfig)) -> Self {
        let services = services().await;
        let id = Uuid::new_v4().simple().to_string();
        let database_name = format!("consolidator_test_{}", &id[..16]);
        let admin = PgConnectOptions::from_str(&services.database_url).expect("valid DATABASE_URL");
        let database_url = admin.clone().database(&database_name).to_url_lossy().to_string();
        store::db::create_database_if_missing(&database_url).await.expect("creating the test database");
        let db = store::connect(&database_url, 8).await.expect("connecting to the test database");
        let mut nats = NatsConfig {
            nats_url: services.nats_url.clone(),
            nats_creds: None,
            nats_user: None,
            nats_password: None,
            prefix: format!("t{}", &id[..12]),
            events_max_age_hours: 1,
            stream_replicas: 1,
        };
        configure(&mut nats);
        let bus = Bus::connect(&nats, Prefix::new(&nats.prefix).expect("valid prefix"), "consolidator-test")
            .await
            .expect("connecting to NATS");
        bus.ensure_streams(Duration::from_secs(3600)).await.expect("creating streams");
        Self { db, database_name, nats, bus, admin_url: services.database_url.clone() }
    }

    /// The URL of this test's own database.
    pub fn database_url(&self) -> String {
        let admin = PgConnectOptions::from_str(&self.admin_url).expect("valid DATABASE_URL");
        admin.database(&self.database_name).to_url_lossy().to_string()
    }

    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            worker_concurrency: 4,
            ack_wait_secs: 5,
            max_deliveries: 4,
            retry_budget_secs: 3600,
            jetstream_max_deliver: None,
            job_lease_secs: 4,
            sweep_rate_per_sec: 200,
            ann_min_candidates: 50_000,
            embedding_cache_mb: 64,
            worker_memory_budget_mb: None,
            synthesis_min_cluster: 3,
            worker_id: Some(format!("test-worker-{}", Uuid::new_v4().simple())),
            llm_base_url: None,
            llm_model: "none".to_owned(),
            llm_api_key: None,
            embedding: EmbeddingConfig::default(),
            model_call_timeout_secs: 30,
            model_job_budget_secs: 300,
            model_concurrency: 4,
            shutdown_grace_secs: 10,
        }
    }

    pub fn worker(&self) -> Worker {
        Worker::new(self.db.clone(), self.bus.clone(), self.worker_config(), RetentionConfig::default())
    }

    /// Starts a worker loop in the background; cancel the token to stop and drain it.
    pub fn spawn_worker(&self) -> RunningWorker {
        self.spawn_worker_with(self.worker())
    }

    pub fn spawn_worker_with(&self, worker: Worker) -> RunningWorker {
        let shutdown = CancellationToken::new();
        let worker = Arc::new(worker);
        let handle = tokio::spawn(consolidator::worker::run(worker.clone(), shutdown.clone()));
        RunningWorker { shutdown, handle, worker }
    }
}

pub struct RunningWorker {
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<(), consolidator::bus::BusError>>,
    pub worker: Arc<Worker>,
}

impl RunningWorker {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.handle).await;
    }
}

impl Drop for TestEnv {
    /// Best effort: drop the test database and delete the test's streams, so runs leave nothing
    /// behind. A thread with its own runtime (and its own NATS connection, bounded in time), since
    /// the test's runtime may be single-threaded and is blocked here.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.database_name.clone();
        let (nats, prefix) = (self.nats.clone(), self.bus.prefix.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut conn).await;
                }
                let cleanup = async {
                    if let Ok(bus) = Bus::connect(&nats, prefix, "consolidator-test-cleanup").await {
                        let _ = bus.delete_streams().await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), cleanup).await;
            });
        })
        .join();
    }
}

use sqlx::Connection;

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
