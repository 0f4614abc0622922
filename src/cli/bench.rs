//! `consolidator bench ...` (built with `--features bench`): benchmarks that print JSON.

use anyhow::Context;
use clap::Subcommand;
use consolidator::{
    bench,
    config::{DatabaseConfig, NatsConfig, WorkerConfig},
    domain::{NewMemory, ValueGuard},
    interchange,
};

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum BenchKind {
    /// Trigger latency of a running gateway under concurrent load (run it from a second process).
    Gateway(bench::gateway::GatewayBenchArgs),
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
        lifecycle: bench::lifecycle::LifecycleArgs,
    },
    /// The live-store simulation run long: agents, jobs and an admin through the gateway, the
    /// store's invariants checked after every step (DESIGN.md §11).
    Soak {
        #[command(flatten)]
        services: Services,
        #[arg(long, default_value_t = 1000)]
        steps: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
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
        value_guard: ValueGuard,
    },
}

fn parse_value_guard(text: &str) -> Result<ValueGuard, String> {
    ValueGuard::ALL
        .into_iter()
        .find(|guard| guard.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not one of review, auto, off"))
}

/// What an end-to-end benchmark runs against, and on which memories.
/// The PostgreSQL, NATS and in-process worker an end-to-end benchmark runs against.
#[derive(clap::Args)]
pub struct Services {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    nats: NatsConfig,
    #[command(flatten)]
    worker: WorkerConfig,
}

#[derive(clap::Args)]
pub struct EndToEnd {
    #[command(flatten)]
    services: Services,
    /// A memory interchange file (e.g. from scripts/bench/gen_memories.py); else synthetic data.
    #[arg(long)]
    input: Option<std::path::PathBuf>,
    #[command(flatten)]
    data: SyntheticData,
}

impl EndToEnd {
    /// Memories from the interchange file, or the synthetic set.
    fn memories(&self) -> anyhow::Result<Vec<NewMemory>> {
        Ok(match &self.input {
            Some(path) => {
                let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                interchange::parse(std::io::BufReader::new(file), None)?
            }
            None => consolidator::synthetic::synthetic_memories(self.data.memories, self.data.dim, self.data.seed),
        })
    }
}

/// The size and seed of a generated benchmark project.
#[derive(clap::Args)]
pub struct SyntheticData {
    #[arg(long, default_value_t = 1000)]
    memories: usize,
    #[arg(long, default_value_t = 1536)]
    dim: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub async fn run(kind: BenchKind) -> anyhow::Result<()> {
    let report = match kind {
        BenchKind::Engine { data: SyntheticData { memories, dim, seed }, check_recall } => {
            let args = bench::engine::EngineBenchArgs { memories, dim, seed, check_recall };
            tokio::task::spawn_blocking(move || bench::engine::run(&args)).await?
        }
        BenchKind::Realtext { input, truth, threshold, examples, value_guard } => {
            let args = bench::realtext::RealtextArgs { input, truth, threshold, examples, value_guard };
            tokio::task::spawn_blocking(move || bench::realtext::run(&args)).await??
        }
        BenchKind::Gateway(args) => serde_json::to_value(bench::gateway::run(args).await?)?,
        BenchKind::E2e(run) => {
            let seeded = run.memories()?;
            let Services { database, nats, worker } = run.services;
            bench::e2e::run(&database.database_url, &nats, worker, seeded).await?
        }
        BenchKind::Soak { services: Services { database, nats, worker }, steps, seed } => {
            let config = consolidator::soak::SoakConfig { steps, seed };
            bench::soak::run(&database.database_url, &nats, worker, config).await?
        }
        BenchKind::Lifecycle { run, lifecycle } => {
            let seeded = run.memories()?;
            let Services { database, nats, worker } = run.services;
            bench::lifecycle::run(&database.database_url, &nats, worker, seeded, &lifecycle, run.data.seed).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
