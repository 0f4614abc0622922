//! Durable JetStream consumers that run consolidation jobs, rollbacks, checks and sweeps.
//!
//! Each command kind has its own consumer and its own concurrency limit, so a long
//! consolidation never delays the rollbacks or sweeps queued behind it. [`process_one`] is the
//! single step the loop repeats; tests call it directly.

pub mod advisories;
mod apply;
mod backlog;
mod boundary;
mod cancel;
mod check;
mod cost;
mod dry_run;
mod embedding_cache;
mod events;
pub(crate) mod failure;
mod guards;
mod interrupt;
mod lease;
mod memory;
pub mod outcome;
mod planning;
mod presence;
mod reviewed_plan;
mod rollback;
mod scope;
pub(crate) mod sweep;
mod trigger;
mod unmerge;

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::Message;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{Bus, BusError, CommandKind, messages::named_id, streams::ConsumerSettings},
    config::{RetentionConfig, WorkerConfig},
    engine::{
        budget::{Gate, JobBudget},
        config::EngineConfig,
        merge::embed::{CentroidEmbedder, Embedder},
        synthesis::{ExtractiveSynthesizer, Synthesizer},
    },
    llm::{OpenAiConfig, OpenAiEmbedder, OpenAiSynthesizer, TextEmbedder},
    store::{jobs, rollbacks},
};
pub use outcome::{Outcome, RetryPolicy, Settled};

/// How long one pull request waits for a message before the loop looks at shutdown again.
const PULL_EXPIRY: Duration = Duration::from_secs(2);
/// Retries of a failed call to an OpenAI-compatible endpoint (then the offline model is used).
const MODEL_RETRIES: u32 = 2;
/// Rollbacks, checks and sweeps are short: a few in flight each is plenty.
const SMALL_COMMAND_CONCURRENCY: usize = 2;

/// Everything a handler needs, shared by all in-flight commands of one worker process.
pub struct Worker {
    pub db: PgPool,
    pub bus: Bus,
    pub config: WorkerConfig,
    pub retention: RetentionConfig,
    pub worker_id: String,
    pub engine: EngineConfig,
    pub synthesizer: Arc<dyn Synthesizer>,
    pub embedder: Arc<dyn Embedder>,
    /// Embeds the memories stored without an embedding before a job plans (EMBEDDING_BASE_URL).
    pub text_embedder: Option<TextEmbedder>,
    /// Embeddings read by earlier jobs, so a steady-state job reads only what is new.
    pub embeddings: Arc<embedding_cache::WorkerEmbeddingCache>,
    /// Model requests in flight, all jobs together (MODEL_CONCURRENCY).
    pub model_gate: Arc<Gate>,
    /// Cancelled when the shutdown grace runs out: running jobs hand themselves back.
    pub stop_jobs: CancellationToken,
    /// WORKER_MEMORY_BUDGET_MB, shared by the jobs this worker runs.
    pub memory: memory::MemoryGate,
}

impl Worker {
    /// A worker with the models the configuration names: OpenAI-compatible endpoints when
    /// their base URLs are set, the offline extractive synthesizer and centroid otherwise.
    pub fn new(db: PgPool, bus: Bus, config: WorkerConfig, retention: RetentionConfig) -> Self {
        let worker_id = config.worker_id();
        let endpoint = |base_url: &Option<String>, model: &str, api_key: &Option<String>| {
            base_url.as_ref().map(|base_url| OpenAiConfig {
                base_url: base_url.clone(),
                model: model.to_owned(),
                api_key: api_key.clone(),
                timeout: Duration::from_secs(config.model_call_timeout_secs),
                max_retries: MODEL_RETRIES,
            })
        };
        let synthesizer: Arc<dyn Synthesizer> =
            match endpoint(&config.llm_base_url, &config.llm_model, &config.llm_api_key) {
                Some(endpoint) => Arc::new(OpenAiSynthesizer::new(endpoint)),
                None => Arc::new(ExtractiveSynthesizer),
            };
        let embedder: Arc<dyn Embedder> = match endpoint(
            &config.embedding.embedding_base_url,
            &config.embedding.embedding_model,
            &config.embedding.embedding_api_key,
        ) {
            Some(endpoint) => Arc::new(OpenAiEmbedder::new(endpoint)),
            None => Arc::new(CentroidEmbedder),
        };
        let engine = EngineConfig {
            ann_min_candidates: config.ann_min_candidates,
            synthesis_min_cluster: config.synthesis_min_cluster,
            ..EngineConfig::default()
        };
        let embeddings = Arc::new(embedding_cache::WorkerEmbeddingCache::new(config.embedding_cache_mb * 1024 * 1024));
        let model_gate = Gate::new(config.model_concurrency);
        let stop_jobs = CancellationToken::new();
        let text_embedder = TextEmbedder::from_config(&config.embedding);
        let memory = memory::MemoryGate::new(
            config
                .worker_memory_budget_mb
                .unwrap_or_else(|| memory::default_budget_mb(memory::machine_mb(), config.embedding_cache_mb as u64)),
        );
        Self {
            db,
            bus,
            config,
            retention,
            worker_id,
            engine,
            synthesizer,
            embedder,
            text_embedder,
            embeddings,
            model_gate,
            stop_jobs,
            memory,
        }
    }

    pub fn with_models(mut self, synthesizer: Arc<dyn Synthesizer>, embedder: Arc<dyn Embedder>) -> Self {
        self.synthesizer = synthesizer;
        self.embedder = embedder;
        self
    }

    /// A job's model budget: its share of time, the worker's bound on calls, and its stop.
    pub fn model_budget(&self, stop: CancellationToken) -> Arc<JobBudget> {
        let budget = Duration::from_secs(self.config.model_job_budget_secs);
        JobBudget::new(budget, self.model_gate.clone(), stop)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.config.job_lease_secs)
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_deliveries: self.config.max_deliveries,
            budget: Duration::from_secs(self.config.retry_budget_secs),
        }
    }

    /// JetStream's own delivery limit: room for the counted failures plus an outage as long as
    /// the retry budget at the longest backoff, with a margin for ack-wait redeliveries.
    pub fn jetstream_max_deliver(&self) -> i64 {
        self.config.jetstream_max_deliver.unwrap_or_else(|| {
            let outage = self.config.retry_budget_secs / outcome::MAX_RETRY_DELAY.as_secs().max(1);
            self.config.max_deliveries + i64::try_from(outage).unwrap_or(i64::MAX / 2) + 16
        })
    }

    pub fn consumer_settings(&self, kind: CommandKind) -> ConsumerSettings {
        let in_flight = match kind {
            CommandKind::Trigger => self.config.worker_concurrency,
            _ => SMALL_COMMAND_CONCURRENCY,
        };
        ConsumerSettings {
            ack_wait: Duration::from_secs(self.config.ack_wait_secs),
            max_deliver: self.jetstream_max_deliver(),
            // Room for several replicas' in-flight messages.
            max_ack_pending: (in_flight * 64) as i64,
        }
    }
}

/// Handles one delivery of `kind` completely: run it, then ack, retry or dead-letter it.
pub async fn process_one(worker: &Worker, kind: CommandKind, message: Message) -> Settled {
    let delivered = outcome::deliveries(&message);
    let info = message.info().ok().map(|info| info.stream_sequence);
    let span = tracing::info_span!(
        "command",
        command = kind.as_str(),
        stream_sequence = info,
        delivered,
        job_id = tracing::field::Empty,
        project_id = tracing::field::Empty
    );
    let result = tracing::Instrument::instrument(
        async {
            match kind {
                CommandKind::Trigger => trigger::handle(worker, &message).await,
                CommandKind::Rollback => rollback::handle(worker, &message).await,
                CommandKind::Check => check::handle(worker, &message).await,
                CommandKind::Sweep => sweep::handle(worker, &message).await,
                CommandKind::Cancel => cancel::handle(worker, &message).await,
                CommandKind::Unmerge => unmerge::handle(worker, &message).await,
            }
        },
        span.clone(),
    )
    .await;
    let failures = match &result {
        Outcome::Retry { counted: true, .. } => count_failure(worker, kind, &message.payload).await,
        _ => None,
    };
    let settled = tracing::Instrument::instrument(
        outcome::settle(&worker.bus, &message, kind.as_str(), result, worker.retry_policy(), failures),
        span.clone(),
    )
    .await;
    if let Settled::GaveUp(reason) = &settled {
        tracing::Instrument::instrument(give_up(worker, kind, &message.payload, reason), span).await;
    }
    settled
}

/// Counts a failure that is not an outage on the row the command names, so outage deliveries
/// never use up its tries; None (count the deliveries instead) when it names no row.
async fn count_failure(worker: &Worker, kind: CommandKind, payload: &[u8]) -> Option<i64> {
    let counted = match kind {
        CommandKind::Trigger => jobs::count_failure(&worker.db, named_id(payload, "job_id")?).await,
        CommandKind::Rollback => rollbacks::count_failure(&worker.db, named_id(payload, "rollback_id")?).await,
        CommandKind::Sweep | CommandKind::Check | CommandKind::Cancel | CommandKind::Unmerge => return None,
    };
    counted.ok().flatten().map(i64::from)
}

/// Records the final failure of a command that will not be delivered again.
async fn give_up(worker: &Worker, kind: CommandKind, payload: &[u8], reason: &str) {
    match kind {
        CommandKind::Trigger => trigger::give_up(worker, payload, reason).await,
        CommandKind::Rollback => rollback::give_up(worker, payload, reason).await,
        CommandKind::Sweep | CommandKind::Check | CommandKind::Cancel | CommandKind::Unmerge => {}
    }
}

/// Runs every command consumer until `shutdown`, then drains in-flight commands: running jobs
/// get SHUTDOWN_GRACE_SECS to finish, then hand themselves back for another worker. A consumer
/// that cannot be set up stops the ones already running (they drain) and is the error.
pub async fn run(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), BusError> {
    let stop = shutdown.child_token();
    let mut loops = JoinSet::new();
    let setup = start_consuming(&worker, &stop, &mut loops).await;
    if setup.is_err() {
        stop.cancel();
    }
    let grace = tokio::spawn({
        let (worker, stop) = (worker.clone(), stop.clone());
        async move {
            stop.cancelled().await;
            tokio::time::sleep(Duration::from_secs(worker.config.shutdown_grace_secs)).await;
            tracing::warn!(worker_id = %worker.worker_id, "shutdown grace ran out; handing running jobs back");
            worker.stop_jobs.cancel();
        }
    });
    while loops.join_next().await.is_some() {}
    grace.abort();
    tracing::info!(worker_id = %worker.worker_id, "worker drained and stopped");
    setup
}

/// Sets up each command kind's consumer and starts its loop, then the advisory listener; stops
/// early, with nothing more to start, once `stop` is cancelled.
async fn start_consuming(
    worker: &Arc<Worker>,
    stop: &CancellationToken,
    loops: &mut JoinSet<()>,
) -> Result<(), BusError> {
    for kind in CommandKind::ALL {
        let settings = worker.consumer_settings(kind);
        let consumer = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            consumer = worker.bus.command_consumer(kind, &settings) => consumer?,
        };
        let limit = match kind {
            CommandKind::Trigger => worker.config.worker_concurrency,
            _ => SMALL_COMMAND_CONCURRENCY,
        };
        loops.spawn(consume(worker.clone(), kind, consumer, limit, stop.clone()));
    }
    let advisories = advisories::subscribe(&worker.bus).await?;
    loops.spawn(advisories::listen(worker.clone(), advisories, stop.clone()));
    loops.spawn(presence::beat(worker.clone(), stop.clone()));
    tracing::info!(worker_id = %worker.worker_id, prefix = %worker.bus.prefix, "worker consuming commands");
    Ok(())
}

async fn consume(
    worker: Arc<Worker>,
    kind: CommandKind,
    consumer: async_nats::jetstream::consumer::PullConsumer,
    limit: usize,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limit));
    let mut in_flight = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let pulled = tokio::select! {
            _ = shutdown.cancelled() => break,
            batch = consumer.batch().max_messages(1).expires(PULL_EXPIRY).messages() => batch,
        };
        let mut batch = match pulled {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, command = kind.as_str(), "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match batch.next().await {
            Some(Ok(message)) => {
                let worker = worker.clone();
                in_flight.spawn(async move {
                    process_one(&worker, kind, message).await;
                    drop(permit);
                });
            }
            Some(Err(error)) => {
                tracing::debug!(%error, command = kind.as_str(), "pull ended without a message");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {}
        }
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}
