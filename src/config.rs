//! Settings from flags or environment variables, validated at start.
//!
//! Every field has an `env` name and a default that reaches the local PostgreSQL and NATS, so
//! `consolidator all` runs on a developer machine with no configuration at all.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use crate::domain::Prefix;

#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(name: &'static str, message: impl Into<String>) -> Self {
        Self { name, message: message.into() }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL connection string; the database is created if missing (unless SKIP_MIGRATIONS).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/consolidator")]
    pub database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// Do not apply pending migrations at start.
    #[arg(long, env = "SKIP_MIGRATIONS", default_value_t = false)]
    pub skip_migrations: bool,
}

/// How long the event stream keeps events unless `EVENTS_MAX_AGE_HOURS` says otherwise (7 days).
pub const DEFAULT_EVENTS_MAX_AGE_HOURS: u64 = 168;

#[derive(Args, Debug, Clone)]
pub struct NatsConfig {
    /// NATS server(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// NATS credentials file (JWT + nkey), if the server requires one.
    #[arg(long, env = "NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// NATS user name (with NATS_PASSWORD), if the server requires one.
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// Prefix of every subject, stream and consumer name.
    #[arg(long, env = "CONSOLIDATION_PREFIX", default_value = "consolidation")]
    pub prefix: String,
    /// How long the event stream keeps events, in hours.
    #[arg(long, env = "EVENTS_MAX_AGE_HOURS", default_value_t = DEFAULT_EVENTS_MAX_AGE_HOURS)]
    pub events_max_age_hours: u64,
    /// Replicas of both streams and the durable consumers (1 on a single server, 3 on a
    /// three-node cluster; at most 5, and at most the cluster's JetStream servers).
    #[arg(long, env = "STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
}

impl NatsConfig {
    pub fn prefix(&self) -> Result<Prefix, ConfigError> {
        Prefix::new(&self.prefix).map_err(|message| ConfigError::new("CONSOLIDATION_PREFIX", message))
    }

    /// `NATS_URL` split into its servers; a client connected to one learns the cluster's others.
    pub fn servers(&self) -> Result<Vec<async_nats::ServerAddr>, ConfigError> {
        let servers = self
            .nats_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| url.parse().map_err(|error| ConfigError::new("NATS_URL", format!("{url:?}: {error}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(ConfigError::new("NATS_URL", "names no server"));
        }
        Ok(servers)
    }

    pub fn replicas(&self) -> Result<usize, ConfigError> {
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(ConfigError::new("STREAM_REPLICAS", "must be between 1 and 5 (JetStream's limit)"));
        }
        Ok(self.stream_replicas)
    }

    pub fn events_max_age(&self) -> Result<Duration, ConfigError> {
        if self.events_max_age_hours == 0 {
            return Err(ConfigError::new("EVENTS_MAX_AGE_HOURS", "must be at least 1"));
        }
        Ok(Duration::from_secs(self.events_max_age_hours * 3600))
    }
}

#[derive(Args, Debug, Clone)]
pub struct GatewayConfig {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// HS256 secret that signs admin tokens, at least 32 bytes (this or JWT_PUBLIC_KEY is
    /// required; `all` on a loopback address makes one in LOCAL_SECRET_FILE when neither is set).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// RS256 public key (PEM text or a path to a PEM file); not together with JWT_SECRET.
    #[arg(long, env = "JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,
    /// Required `iss` claim, if set.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, if set.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Request timeout in seconds (SSE streams excepted).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "HTTP_BODY_LIMIT_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// How long POST /rollback waits for the result before answering 202, in milliseconds.
    #[arg(long, env = "ROLLBACK_WAIT_MS", default_value_t = 5000)]
    pub rollback_wait_ms: u64,
    /// Most memories accepted in one ingest request (more answer 413).
    #[arg(long, env = "INGEST_MAX_BATCH", default_value_t = 1000)]
    pub ingest_max_batch: usize,
    /// Most Server-Sent Event streams open at once (more answer 429).
    #[arg(long, env = "SSE_MAX_STREAMS", default_value_t = 256)]
    pub sse_max_streams: usize,
    /// Most vector searches running at once (more answer 429).
    #[arg(long, env = "SEARCH_MAX_CONCURRENT", default_value_t = 4)]
    pub search_max_concurrent: usize,
    /// Most embeddings one search may rank (a search over more answers 503: narrow it with
    /// `memory_type`, or raise this).
    #[arg(long, env = "SEARCH_MAX_CANDIDATES", default_value_t = 100_000)]
    pub search_max_candidates: usize,
    /// When set, `/metrics` answers only `Authorization: Bearer <this>` (admin JWTs are not
    /// asked for there).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::new("HTTP_REQUEST_TIMEOUT_SECS", "must be at least 1"));
        }
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::new("HTTP_BODY_LIMIT_BYTES", "must be at least 1024"));
        }
        if self.rollback_wait_ms >= self.request_timeout_secs * 1000 {
            return Err(ConfigError::new("ROLLBACK_WAIT_MS", "must be shorter than HTTP_REQUEST_TIMEOUT_SECS"));
        }
        if self.ingest_max_batch == 0 {
            return Err(ConfigError::new("INGEST_MAX_BATCH", "must be at least 1"));
        }
        // Semaphore::new panics above this; no deployment needs anywhere near it.
        let most = tokio::sync::Semaphore::MAX_PERMITS;
        if !(1..=most).contains(&self.sse_max_streams) {
            return Err(ConfigError::new("SSE_MAX_STREAMS", format!("must be 1 to {most}")));
        }
        if !(1..=most).contains(&self.search_max_concurrent) {
            return Err(ConfigError::new("SEARCH_MAX_CONCURRENT", format!("must be 1 to {most}")));
        }
        if self.search_max_candidates == 0 {
            return Err(ConfigError::new("SEARCH_MAX_CANDIDATES", "must be at least 1"));
        }
        Ok(())
    }
}

/// Where `all` on a loopback address keeps the development secret it generates when no
/// JWT_SECRET or JWT_PUBLIC_KEY is set, and where `token` reads it.
#[derive(Args, Debug, Clone)]
pub struct LocalSecretConfig {
    /// File holding the generated development secret (created with mode 0600); by default in
    /// the user's state directory, so `all` and `token` find it from any directory.
    #[arg(long, env = "LOCAL_SECRET_FILE", default_value_os_t = default_local_secret_file())]
    pub local_secret_file: std::path::PathBuf,
}

/// `$XDG_STATE_HOME/consolidator/jwt-secret`, else `~/.local/state/consolidator/jwt-secret`, else
/// `.consolidator/jwt-secret` (no home directory).
pub fn default_local_secret_file() -> std::path::PathBuf {
    let absolute = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from).filter(|path| path.is_absolute());
    match (absolute("XDG_STATE_HOME"), absolute("HOME")) {
        (Some(state), _) => state.join("consolidator").join("jwt-secret"),
        (None, Some(home)) => home.join(".local/state/consolidator/jwt-secret"),
        (None, None) => std::path::PathBuf::from(".consolidator/jwt-secret"),
    }
}

/// The URL a client on this machine reaches a listener on `addr` at: an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The OpenAI-compatible embeddings endpoint: the worker embeds merged memories with it, and the
/// gateway, `import` and the worker embed memories that arrive without `context_embedding`.
#[derive(Args, Debug, Clone)]
pub struct EmbeddingConfig {
    /// OpenAI-compatible base URL for embeddings (merged memories, and memories sent without
    /// `context_embedding`); unset: merged memories get the normalized centroid, and memories sent
    /// without an embedding are stored without one (never clustered).
    #[arg(long, env = "EMBEDDING_BASE_URL")]
    pub embedding_base_url: Option<String>,
    #[arg(long, env = "EMBEDDING_MODEL", default_value = "text-embedding-3-small")]
    pub embedding_model: String,
    #[arg(long, env = "EMBEDDING_API_KEY", hide_env_values = true)]
    pub embedding_api_key: Option<String>,
    /// Texts sent in one request to the embeddings endpoint.
    #[arg(long, env = "EMBEDDING_BATCH", default_value_t = 64)]
    pub embedding_batch: usize,
    /// Seconds that embedding the texts of one request (an ingest, a search, an import batch, a
    /// job's backlog) may take, retries included; past it the request fails and nothing is stored.
    #[arg(long, env = "EMBEDDING_DEADLINE_SECS", default_value_t = 20)]
    pub embedding_deadline_secs: u64,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            embedding_base_url: None,
            embedding_model: "text-embedding-3-small".to_owned(),
            embedding_api_key: None,
            embedding_batch: 64,
            embedding_deadline_secs: 20,
        }
    }
}

impl EmbeddingConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.embedding_batch == 0 || self.embedding_batch > 2048 {
            return Err(ConfigError::new("EMBEDDING_BATCH", "must be 1 to 2048 (OpenAI's limit per request)"));
        }
        if self.embedding_deadline_secs == 0 {
            return Err(ConfigError::new("EMBEDDING_DEADLINE_SECS", "must be at least 1"));
        }
        Ok(())
    }

    /// The endpoint, when one is configured (a blank base URL counts as none).
    pub fn base_url(&self) -> Option<&str> {
        self.embedding_base_url.as_deref().map(str::trim).filter(|url| !url.is_empty())
    }
}

#[derive(Args, Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs (and rollbacks, sweeps) in flight per worker process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,
    /// Seconds JetStream waits for an ack before redelivering; in-progress acks extend it.
    #[arg(long, env = "ACK_WAIT_SECS", default_value_t = 30)]
    pub ack_wait_secs: u64,
    /// Deliveries of one command before it is given up and dead-lettered.
    #[arg(long, env = "MAX_DELIVERIES", default_value_t = 5)]
    pub max_deliveries: i64,
    /// Seconds after its publication that a command may keep waiting out an outage of
    /// PostgreSQL or NATS (outage deliveries do not count against MAX_DELIVERIES).
    #[arg(long, env = "RETRY_BUDGET_SECS", default_value_t = 3600)]
    pub retry_budget_secs: u64,
    /// JetStream's own limit on deliveries of one command (default: enough for the retry budget
    /// at the longest backoff); when it is reached the worker turns the advisory into a dead letter.
    #[arg(long, env = "JETSTREAM_MAX_DELIVER")]
    pub jetstream_max_deliver: Option<i64>,
    /// Seconds after which a running job whose worker stopped heartbeating may be taken over.
    #[arg(long, env = "JOB_LEASE_SECS", default_value_t = 60)]
    pub job_lease_secs: u64,
    /// Sweep fan-out rate: trigger commands published per second.
    #[arg(long, env = "SWEEP_RATE_PER_SEC", default_value_t = 20)]
    pub sweep_rate_per_sec: u32,
    /// A clustering partition (one memory type) of at least this many memories has its pairs
    /// proposed by HNSW in a full run (each verified exactly); smaller ones use the exact product.
    #[arg(long, env = "ANN_MIN_CANDIDATES", default_value_t = 50_000)]
    pub ann_min_candidates: usize,
    /// Memory for the embeddings kept between jobs (MiB; 0 turns the cache off). A project of
    /// 100 000 memories of 1536 dimensions needs about 800 MiB to run incrementally from memory.
    #[arg(long, env = "EMBEDDING_CACHE_MB", default_value_t = 1024)]
    pub embedding_cache_mb: usize,
    /// Memory this worker's jobs may plan in (MiB), shared by the jobs it runs at once: a job is
    /// claimed only when its estimate (3 x 4 bytes per dimension plus 2 KiB per memory and 32
    /// MiB) fits beside the running ones, and fails at once when it exceeds the whole budget.
    /// Default: three quarters of the machine's memory less EMBEDDING_CACHE_MB.
    #[arg(long, env = "WORKER_MEMORY_BUDGET_MB")]
    pub worker_memory_budget_mb: Option<u64>,
    /// Clusters of at least this many memories also get a synthesis memory.
    #[arg(long, env = "SYNTHESIS_MIN_CLUSTER", default_value_t = 3)]
    pub synthesis_min_cluster: usize,
    /// Worker identity recorded on the jobs it runs (default: host name and process id).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// OpenAI-compatible base URL for synthesis (chat completions); extractive synthesis if unset.
    #[arg(long, env = "LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    #[arg(long, env = "LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,
    #[arg(long, env = "LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    #[command(flatten)]
    pub embedding: EmbeddingConfig,
    /// Seconds one request to a model endpoint may take (each retry is a request).
    #[arg(long, env = "MODEL_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub model_call_timeout_secs: u64,
    /// Seconds a job may spend on model calls, from its first; then its remaining texts use the
    /// extractive text or the centroid, and its result says so.
    #[arg(long, env = "MODEL_JOB_BUDGET_SECS", default_value_t = 300)]
    pub model_job_budget_secs: u64,
    /// Model requests in flight at once per worker process, all jobs together.
    #[arg(long, env = "MODEL_CONCURRENCY", default_value_t = 4)]
    pub model_concurrency: usize,
    /// Seconds a stopping worker (SIGTERM, Ctrl-C) gives its running jobs to finish before it
    /// hands them back (lease released, message redelivered at once) for another worker.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,
}

impl WorkerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.worker_concurrency == 0 {
            return Err(ConfigError::new("WORKER_CONCURRENCY", "must be at least 1"));
        }
        if self.ack_wait_secs < 2 {
            return Err(ConfigError::new("ACK_WAIT_SECS", "must be at least 2"));
        }
        if self.max_deliveries < 1 {
            return Err(ConfigError::new("MAX_DELIVERIES", "must be at least 1"));
        }
        if self.jetstream_max_deliver.is_some_and(|max| max < 1) {
            return Err(ConfigError::new("JETSTREAM_MAX_DELIVER", "must be at least 1"));
        }
        if self.job_lease_secs < 2 {
            return Err(ConfigError::new("JOB_LEASE_SECS", "must be at least 2"));
        }
        if self.sweep_rate_per_sec == 0 {
            return Err(ConfigError::new("SWEEP_RATE_PER_SEC", "must be at least 1"));
        }
        if self.synthesis_min_cluster < 2 {
            return Err(ConfigError::new("SYNTHESIS_MIN_CLUSTER", "must be at least 2"));
        }
        if self.model_call_timeout_secs == 0 {
            return Err(ConfigError::new("MODEL_CALL_TIMEOUT_SECS", "must be at least 1"));
        }
        if self.model_job_budget_secs == 0 {
            return Err(ConfigError::new("MODEL_JOB_BUDGET_SECS", "must be at least 1"));
        }
        if self.model_concurrency == 0 {
            return Err(ConfigError::new("MODEL_CONCURRENCY", "must be at least 1"));
        }
        self.embedding.validate()
    }

    /// A running job holds up to two connections (its snapshot or apply, and its lease's
    /// heartbeat), and the worker's listeners one more: a smaller pool would stall jobs on
    /// each other.
    pub fn check_pool(&self, max_connections: u32) -> Result<(), ConfigError> {
        let needed = self.worker_concurrency.saturating_mul(2).saturating_add(1);
        if (max_connections as usize) < needed {
            return Err(ConfigError::new(
                "DATABASE_MAX_CONNECTIONS",
                format!(
                    "{max_connections} connections cannot serve WORKER_CONCURRENCY={} (a worker needs two per job \
                     and one more: {needed}); raise DATABASE_MAX_CONNECTIONS or lower WORKER_CONCURRENCY",
                    self.worker_concurrency
                ),
            ));
        }
        Ok(())
    }

    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct SchedulerConfig {
    /// Cron schedule of the sweep (seconds field optional), evaluated in UTC.
    #[arg(long, env = "SCHEDULE", default_value = "0 2 * * *")]
    pub schedule: String,
    /// Seconds between maintenance passes (every replica runs them; one at a time does the work).
    #[arg(long, env = "MAINTENANCE_INTERVAL_SECS", default_value_t = 60)]
    pub maintenance_interval_secs: u64,
    /// Seconds a job or rollback may stay `pending` (since it was created or last re-published)
    /// before maintenance publishes its command again under a fresh message id.
    #[arg(long, env = "PENDING_GRACE_SECS", default_value_t = 60)]
    pub pending_grace_secs: u64,
    /// Seconds after its last heartbeat that a running job counts as abandoned: maintenance
    /// publishes its command again, and fails it if no worker took it that long after.
    #[arg(long, env = "ABANDONED_JOB_SECS", default_value_t = 120)]
    pub abandoned_job_secs: u64,
}

/// How long a job can be undone, and how long its audit rows are kept: the gateway, the worker
/// and the scheduler's purge all read these.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Days after completion during which a job can be rolled back.
    #[arg(long, env = "ROLLBACK_WINDOW_DAYS", default_value_t = 7)]
    pub rollback_window_days: u32,
    /// Days audit rows are kept (never less than the rollback window).
    #[arg(long, env = "AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { rollback_window_days: 7, audit_retention_days: 90 }
    }
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rollback_window_days == 0 {
            return Err(ConfigError::new("ROLLBACK_WINDOW_DAYS", "must be at least 1"));
        }
        Ok(())
    }

    /// Days audit rows are kept: the retention, but never less than the rollback window.
    pub fn audit_days(&self) -> u32 {
        self.audit_retention_days.max(self.rollback_window_days)
    }
}

#[derive(Args, Debug, Clone)]
pub struct LogConfig {
    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listeners_local_url_reaches_an_unspecified_address_on_loopback() {
        assert_eq!(local_url("0.0.0.0:9090".parse().unwrap()), "http://127.0.0.1:9090");
        assert_eq!(local_url("[::]:9090".parse().unwrap()), "http://[::1]:9090");
        assert_eq!(local_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
    }

    #[test]
    fn a_pool_too_small_for_the_workers_concurrency_is_refused_at_start() {
        #[derive(clap::Parser)]
        struct Settings {
            #[command(flatten)]
            worker: WorkerConfig,
        }
        let settings = <Settings as clap::Parser>::try_parse_from(["worker", "--worker-concurrency", "8"]).unwrap();
        assert!(settings.worker.check_pool(17).is_ok());
        let error = settings.worker.check_pool(10).unwrap_err().to_string();
        assert!(error.contains("DATABASE_MAX_CONNECTIONS") && error.contains("WORKER_CONCURRENCY=8"), "{error}");
        assert!(error.contains("17"), "{error}");
    }

    #[test]
    fn the_local_secret_is_found_from_any_directory() {
        if std::env::var_os("HOME").is_some_and(|home| std::path::Path::new(&home).is_absolute()) {
            assert!(default_local_secret_file().is_absolute());
        }
        assert!(default_local_secret_file().ends_with("consolidator/jwt-secret"));
    }
}
