//! The command line: every subcommand and the settings each reads (declared once in
//! `consolidator::config`, flattened where a subcommand needs them). `run` dispatches.

#[cfg(feature = "bench")]
mod bench;
mod run;

use clap::{Parser, Subcommand};
use consolidator::config::{
    DatabaseConfig, EmbeddingConfig, GatewayConfig, LocalSecretConfig, LogConfig, NatsConfig, RetentionConfig,
    SchedulerConfig, WorkerConfig,
};

#[derive(Parser)]
#[command(name = "consolidator", version, about = "Consolidates AI agents' task memories")]
pub struct Cli {
    #[command(flatten)]
    pub log: LogConfig,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start; boxing the configurations would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// HTTP admin API.
    Gateway {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        gateway: GatewayConfig,
        #[command(flatten)]
        embedding: EmbeddingConfig,
        #[command(flatten)]
        retention: RetentionConfig,
    },
    /// JetStream consumers that run jobs, rollbacks, checks and sweeps.
    Worker {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        #[command(flatten)]
        retention: RetentionConfig,
    },
    /// Publishes the scheduled sweep and runs maintenance.
    Scheduler {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        scheduler: SchedulerConfig,
        #[command(flatten)]
        retention: RetentionConfig,
    },
    /// Gateway, worker and scheduler in one process.
    All {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        gateway: GatewayConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        #[command(flatten)]
        scheduler: SchedulerConfig,
        #[command(flatten)]
        local_secret: LocalSecretConfig,
        #[command(flatten)]
        retention: RetentionConfig,
    },
    /// Applies the migrations and creates the JetStream streams, or updates them to these
    /// settings (what a worker does at start); then exits.
    Setup {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
    },
    /// Applies, reverts or lists the SQL migrations.
    Migrate {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Loads a memory interchange file (JSON Lines) into a project: all of it or nothing.
    Import {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        embedding: EmbeddingConfig,
        #[arg(long)]
        project: uuid::Uuid,
        file: std::path::PathBuf,
    },
    /// Writes a project's memories as JSON Lines (to stdout unless --out).
    Export {
        #[command(flatten)]
        database: DatabaseConfig,
        #[arg(long)]
        project: uuid::Uuid,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Loads a bundled set of several hundred agent memories into a new project, runs one job
    /// (a worker must be running: `consolidator all`) with a live progress bar, and prints a
    /// before/after report, the console URL and the rollback command.
    Demo {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        /// Plan only: report what the job would do, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The gateway's URL, for the console link and the rollback command (default: from
        /// HTTP_ADDR, the address the gateway listens on).
        #[arg(long)]
        gateway_url: Option<String>,
        #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080", hide = true)]
        http_addr: std::net::SocketAddr,
        /// Seconds to wait for the job's first event before giving up (no worker running?).
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Follows a job's events until it ends: a progress bar, or the events as JSON lines.
    Watch {
        #[command(flatten)]
        nats: NatsConfig,
        job_id: uuid::Uuid,
        /// Print each event as one JSON line instead of the progress bar.
        #[arg(long)]
        json: bool,
        /// Give up after this many seconds without an event (default: wait as long as it takes).
        #[arg(long)]
        timeout_secs: Option<u64>,
    },
    /// Prints the AsyncAPI 3.0 document of the NATS subjects (docs/asyncapi.json is its output with
    /// the default prefix; the gateway serves it at /asyncapi.json).
    Asyncapi {
        /// The subject prefix to write the document for (not read from CONSOLIDATION_PREFIX, so
        /// the committed document does not depend on the environment).
        #[arg(long, default_value = "consolidation")]
        prefix: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Benchmarks that print JSON (built with `--features bench`).
    #[cfg(feature = "bench")]
    Bench {
        #[command(subcommand)]
        kind: bench::BenchKind,
    },
    /// Benchmarks: this binary was built without them (`--features bench`).
    #[cfg(not(feature = "bench"))]
    #[command(hide = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Mints an admin token signed with JWT_SECRET, or else with the local development secret
    /// that `all` made.
    Token {
        #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        #[command(flatten)]
        local_secret: LocalSecretConfig,
        /// Subject (who the token speaks for).
        #[arg(long, default_value = "dev-admin")]
        sub: String,
        /// Projects the token may touch: ids, or `*` for all.
        #[arg(long, value_delimiter = ',', default_value = "*")]
        projects: Vec<String>,
        #[arg(long, default_value = "admin")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        #[arg(long, env = "JWT_ISSUER")]
        issuer: Option<String>,
        #[arg(long, env = "JWT_AUDIENCE")]
        audience: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum MigrateAction {
    /// Creates the database if needed and applies pending migrations.
    Up,
    /// Reverts migrations newer than --to (default 0: all of them).
    Down {
        #[arg(long, default_value_t = 0)]
        to: i64,
    },
    /// Lists migrations and whether each is applied.
    Status,
}
