//! The `consolidator` binary: parses the command line and calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use consolidator::{
    app::{self, Components},
    bus::JobEventKind,
    config::{DatabaseConfig, GatewayConfig, LocalSecretConfig, LogConfig, NatsConfig, SchedulerConfig, WorkerConfig},
    demo,
    gateway::auth,
    interchange, store, telemetry, watch,
};

#[derive(Parser)]
#[command(name = "consolidator", version, about = "Consolidates AI agents' task memories")]
struct Cli {
    #[command(flatten)]
    log: LogConfig,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; boxing the configurations would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// HTTP admin API.
    Gateway {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        gateway: GatewayConfig,
    },
    /// JetStream consumers that run jobs, rollbacks, checks and sweeps.
    Worker {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        worker: WorkerConfig,
    },
    /// Publishes the scheduled sweep and runs maintenance.
    Scheduler {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        nats: NatsConfig,
        #[command(flatten)]
        scheduler: SchedulerConfig,
        /// Days after completion during which a job can be rolled back (retention never cuts into it).
        #[arg(long, env = "ROLLBACK_WINDOW_DAYS", default_value_t = 7)]
        rollback_window_days: u32,
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
        /// The gateway's address, for the console URL and the rollback command.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway_url: String,
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
    /// Benchmarks that print JSON.
    Bench {
        #[command(subcommand)]
        kind: BenchKind,
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

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum BenchKind {
    /// Trigger latency of a running gateway under concurrent load (run it from a second process).
    Gateway(consolidator::bench::gateway::GatewayBenchArgs),
    /// Plans a synthetic project with the engine alone: phase timings and peak memory.
    Engine {
        #[command(flatten)]
        data: SyntheticData,
        /// Also measure the ANN path's recall of above-threshold pairs against exact search.
        #[arg(long)]
        check_recall: bool,
    },
    /// Seeds a project in a fresh database, publishes a trigger to an in-process worker and
    /// waits for the completed event.
    E2e(EndToEnd),
    /// Consolidates a project, then runs one job per day of new arrivals (a share re-learned
    /// facts) end to end: per day the mode, duration, active memories and re-learned leftovers.
    Lifecycle {
        #[command(flatten)]
        run: EndToEnd,
        #[command(flatten)]
        lifecycle: consolidator::bench::lifecycle::LifecycleArgs,
    },
    /// Plans the real-text set (scripts/realtext/build.py) with the engine: pair precision and
    /// recall against its truth, merged-text coverage and compression, example merges.
    Realtext {
        #[arg(long, default_value = "testdata/realtext/memories.jsonl")]
        input: std::path::PathBuf,
        #[arg(long, default_value = "testdata/realtext/truth.json")]
        truth: std::path::PathBuf,
        #[arg(long, default_value_t = 0.90)]
        threshold: f32,
        /// How many merges to print whole.
        #[arg(long, default_value_t = 3)]
        examples: usize,
        /// `review` (the default, as in a job), `auto` or `off`: compare the value guard's effect.
        #[arg(long, default_value = "review", value_parser = parse_value_guard)]
        value_guard: consolidator::engine::options::ValueGuard,
    },
}

fn parse_value_guard(text: &str) -> Result<consolidator::engine::options::ValueGuard, String> {
    consolidator::engine::options::ValueGuard::ALL
        .into_iter()
        .find(|guard| guard.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not one of review, auto, off"))
}

/// What an end-to-end benchmark runs against, and on which memories.
#[derive(clap::Args)]
struct EndToEnd {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    nats: NatsConfig,
    #[command(flatten)]
    worker: WorkerConfig,
    /// A memory interchange file (e.g. from scripts/bench/gen_memories.py); else synthetic data.
    #[arg(long)]
    input: Option<std::path::PathBuf>,
    #[command(flatten)]
    data: SyntheticData,
}

impl EndToEnd {
    /// Memories from the interchange file, or the synthetic set.
    fn memories(&self) -> anyhow::Result<Vec<consolidator::store::memories::NewMemory>> {
        Ok(match &self.input {
            Some(path) => {
                let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                interchange::parse(std::io::BufReader::new(file), None)?
            }
            None => consolidator::bench::e2e::synthetic_memories(self.data.memories, self.data.dim, self.data.seed),
        })
    }
}

/// The size and seed of a generated benchmark project.
#[derive(clap::Args)]
struct SyntheticData {
    #[arg(long, default_value_t = 1000)]
    memories: usize,
    #[arg(long, default_value_t = 1536)]
    dim: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Subcommand)]
enum MigrateAction {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log.log_format);
    match cli.command {
        Command::Gateway { database, nats, gateway } => {
            app::run(database, nats, Components { gateway: Some(gateway), worker: None, scheduler: None }).await
        }
        Command::Worker { database, nats, worker } => {
            app::run(database, nats, Components { gateway: None, worker: Some(worker), scheduler: None }).await
        }
        Command::Scheduler { database, nats, scheduler, rollback_window_days } => {
            let components =
                Components { gateway: None, worker: None, scheduler: Some((scheduler, rollback_window_days)) };
            app::run(database, nats, components).await
        }
        Command::All { database, nats, mut gateway, worker, scheduler, local_secret } => {
            if let Some(access) = app::local_development_access(&mut gateway, &local_secret)? {
                eprintln!("{}", access.announcement());
            }
            let window = worker.rollback_window_days;
            let components =
                Components { gateway: Some(gateway), worker: Some(worker), scheduler: Some((scheduler, window)) };
            app::run(database, nats, components).await
        }
        Command::Migrate { database, action } => migrate(database, action).await,
        Command::Import { database, project, file } => {
            let db = app::connect_database(&database).await?;
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
            );
            let count = interchange::import(&db, project, reader).await?;
            eprintln!("imported {count} memories into project {project}");
            Ok(())
        }
        Command::Export { database, project, out } => {
            let db = app::connect_database(&database).await?;
            let count = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                    interchange::export(&db, project, std::io::BufWriter::new(file)).await?
                }
                None => interchange::export(&db, project, std::io::stdout().lock()).await?,
            };
            eprintln!("exported {count} memories of project {project}");
            Ok(())
        }
        Command::Demo { database, nats, dry_run, gateway_url, timeout_secs } => {
            let db = app::connect_database(&database).await?;
            let bus = app::connect_bus(&nats, "consolidator-demo").await?;
            let base_url = gateway_url.trim_end_matches('/').to_owned();
            let options = demo::DemoOptions {
                dry_run,
                progress_bar: true,
                patience: std::time::Duration::from_secs(timeout_secs),
            };
            eprintln!("loading {} memories into a new project and triggering a job...", demo::DATA.lines().count());
            let run = demo::run(&db, &bus, &options).await?;
            println!("\n{}", run.report);
            let program = std::env::args().next().unwrap_or_else(|| "consolidator".to_owned());
            println!("{}", run.next_steps(&base_url, &program));
            Ok(())
        }
        Command::Watch { nats, job_id, json, timeout_secs } => {
            let bus = app::connect_bus(&nats, "consolidator-watch").await?;
            let patience = timeout_secs.map(std::time::Duration::from_secs);
            let end = match watch::run(&bus, job_id, json, patience, &mut std::io::stdout().lock()).await {
                // The reader went away (`watch --json ID | head`): nothing left to tell.
                Err(watch::WatchError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(());
                }
                ended => ended?,
            };
            if end.event != JobEventKind::Completed.as_str() {
                anyhow::bail!("{}", watch::summary(&end));
            }
            Ok(())
        }
        Command::Bench { kind } => bench(kind).await,
        Command::Token { jwt_secret, local_secret, sub, projects, role, ttl_secs, issuer, audience } => {
            let secret = app::token_secret(jwt_secret, &local_secret)?;
            let claims = auth::Claims {
                role: Some(role),
                iss: issuer,
                aud: audience.map(serde_json::Value::String),
                ..auth::Claims::admin(&sub, projects, ttl_secs)
            };
            println!("{}", auth::mint(&secret, &claims).context("signing the token")?);
            Ok(())
        }
    }
}

async fn migrate(database: DatabaseConfig, action: MigrateAction) -> anyhow::Result<()> {
    if matches!(action, MigrateAction::Up) {
        store::db::create_database_if_missing(&database.database_url).await.context("creating the database")?;
    }
    let pool = store::connect(&database.database_url, 2).await.context("connecting to PostgreSQL (DATABASE_URL)")?;
    match action {
        MigrateAction::Up => store::db::migrate_up(&pool).await.context("applying migrations")?,
        MigrateAction::Down { to } => store::db::migrate_down(&pool, to).await.context("reverting migrations")?,
        MigrateAction::Status => {}
    }
    for migration in store::db::migration_status(&pool).await? {
        let state = if migration.applied { "applied" } else { "pending" };
        println!("{:>16} {state:8} {}", migration.version, migration.description);
    }
    Ok(())
}

async fn bench(kind: BenchKind) -> anyhow::Result<()> {
    let report = match kind {
        BenchKind::Engine { data: SyntheticData { memories, dim, seed }, check_recall } => {
            let args = consolidator::bench::engine::EngineBenchArgs { memories, dim, seed, check_recall };
            tokio::task::spawn_blocking(move || consolidator::bench::engine::run(&args)).await?
        }
        BenchKind::Realtext { input, truth, threshold, examples, value_guard } => {
            let args = consolidator::bench::realtext::RealtextArgs { input, truth, threshold, examples, value_guard };
            tokio::task::spawn_blocking(move || consolidator::bench::realtext::run(&args)).await??
        }
        BenchKind::Gateway(args) => serde_json::to_value(consolidator::bench::gateway::run(args).await?)?,
        BenchKind::E2e(run) => {
            let seeded = run.memories()?;
            consolidator::bench::e2e::run(&run.database.database_url, &run.nats, run.worker, seeded).await?
        }
        BenchKind::Lifecycle { run, lifecycle } => {
            let seeded = run.memories()?;
            let url = &run.database.database_url;
            consolidator::bench::lifecycle::run(url, &run.nats, run.worker, seeded, &lifecycle, run.data.seed).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
