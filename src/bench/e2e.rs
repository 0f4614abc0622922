//! `consolidator bench e2e`: seed a project, publish one trigger to an in-process worker, wait
//! for the `completed` event, and report the timings as JSON.

use std::{sync::Arc, time::Instant};

use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::engine::MergeFigures;
use crate::domain::Prefix;
use crate::{
    bus::{
        Bus, CommandKind,
        messages::{JobEvent, SCHEMA_VERSION, TriggerCommand},
    },
    config::{NatsConfig, WorkerConfig},
    domain::{JobEventKind, JobResult, NewMemory},
    store::{
        self,
        jobs::TriggerType,
        projects::{self, NewProject},
    },
    worker::{self, Worker},
};

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("{0}")]
    Run(String),
}

/// A fresh database and subject prefix, one project in it and an in-process worker: what the
/// end-to-end and lifecycle benchmarks run jobs against.
pub struct Harness {
    pub db: sqlx::PgPool,
    pub bus: Bus,
    pub project_id: Uuid,
    database_url: String,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), crate::bus::BusError>>,
}

/// One job, from the publication of its trigger to its completed event.
pub struct JobRun {
    pub end_to_end_ms: f64,
    pub phases: serde_json::Map<String, serde_json::Value>,
    pub completed: JobEvent,
    /// The job's whole result as stored (an event carries only a summary of a large one).
    pub result: Option<JobResult>,
}

impl Harness {
    /// Creates the database beside `database_url`, the streams, the project and the worker.
    pub async fn start(
        database_url: &str,
        nats: &NatsConfig,
        worker_config: WorkerConfig,
    ) -> Result<Harness, E2eError> {
        let run_id = Uuid::new_v4().simple().to_string();
        let database_url = fresh_database_url(database_url, &run_id)?;
        store::db::create_database_if_missing(&database_url).await?;
        let db = store::connect(&database_url, 8).await?;
        store::db::migrate_up(&db).await?;
        let prefix = Prefix::new(&format!("bench{}", &run_id[..10])).map_err(E2eError::Run)?;
        let bus = Bus::connect(nats, prefix, "consolidator-bench").await?;
        bus.ensure_streams(std::time::Duration::from_secs(3600)).await?;
        let project_id = Uuid::new_v4();
        let project = NewProject {
            id: project_id,
            name: "bench".to_owned(),
            consolidation_enabled: true,
            consolidation_threshold: 1,
            consolidation_options: json!({}),
        };
        projects::create(&db, &project).await?;
        let shutdown = CancellationToken::new();
        let worker =
            Arc::new(Worker::new(db.clone(), bus.clone(), worker_config, crate::config::RetentionConfig::default()));
        let running = tokio::spawn(worker::run(worker, shutdown.clone()));
        Ok(Harness { db, bus, project_id, database_url, shutdown, running })
    }

    /// Loads memories into the project; returns the milliseconds it took.
    pub async fn load(&self, memories: &[NewMemory]) -> Result<f64, E2eError> {
        let started = Instant::now();
        crate::interchange::load(&self.db, self.project_id, memories)
            .await
            .map_err(|error| E2eError::Run(error.to_string()))?;
        // As the peer implementation does: the measured job starts from a settled table.
        for table in ["task_memories", "memory_files"] {
            sqlx::query(&format!("VACUUM ANALYZE {table}")).execute(&self.db).await.map_err(store::StoreError::from)?;
        }
        Ok(started.elapsed().as_secs_f64() * 1e3)
    }

    /// Publishes a trigger and waits for the job's completed event.
    pub async fn run_job(&self, options: Option<serde_json::Value>) -> Result<JobRun, E2eError> {
        let job_id = Uuid::new_v4();
        let mut events = self
            .bus
            .client
            .subscribe(self.bus.prefix.job_events_of(self.project_id, job_id))
            .await
            .map_err(|e| E2eError::Run(e.to_string()))?;
        let command = TriggerCommand {
            schema_version: SCHEMA_VERSION,
            job_id,
            project_id: self.project_id,
            options,
            trigger_type: TriggerType::Manual,
            triggered_by: "bench".to_owned(),
            plan_of: None,
        };
        let published = Instant::now();
        self.bus.publish_command(CommandKind::Trigger, &job_id.to_string(), &command).await?;
        let mut phases = serde_json::Map::new();
        let completed = loop {
            let message = events.next().await.ok_or_else(|| E2eError::Run("event subscription ended".to_owned()))?;
            let event: JobEvent = serde_json::from_slice(&message.payload).map_err(|e| E2eError::Run(e.to_string()))?;
            let at = published.elapsed().as_secs_f64() * 1e3;
            let label = event.phase.map_or_else(|| event.event.to_string(), |phase| format!("{}:{phase}", event.event));
            phases.insert(label, json!(at));
            match event.event {
                JobEventKind::Completed => break event,
                JobEventKind::Failed => return Err(E2eError::Run(format!("job failed: {:?}", event.error))),
                _ => {}
            }
        };
        let end_to_end_ms = published.elapsed().as_secs_f64() * 1e3;
        let result = store::jobs::get(&self.db, job_id).await?.and_then(|job| job.typed_result());
        Ok(JobRun { end_to_end_ms, phases, completed, result })
    }

    /// Stops the worker, deletes the run's streams and drops the database.
    pub async fn stop(self) -> Result<(), E2eError> {
        self.shutdown.cancel();
        let _ = self.running.await;
        self.bus.delete_streams().await?;
        self.db.close().await;
        drop_database(&self.database_url).await
    }
}

/// Runs the benchmark on `memories` against the database at `database_url` (a fresh database
/// named after the run is created beside it) and the NATS of `nats`.
pub async fn run(
    database_url: &str,
    nats: &NatsConfig,
    worker_config: WorkerConfig,
    memories: Vec<NewMemory>,
) -> Result<serde_json::Value, E2eError> {
    let harness = Harness::start(database_url, nats, worker_config).await?;
    let count = memories.len();
    let dim = memories.iter().find_map(|m| m.embedding.as_ref().map(Vec::len)).unwrap_or(0);
    let seed_ms = harness.load(&memories).await?;
    // The parsed file is not the service's memory: measure the job without it.
    let load_peak_rss_mib = crate::telemetry::peak_rss_mib();
    drop(memories);
    let job_peak_measured = crate::telemetry::reset_peak_rss();
    let job = harness.run_job(None).await?;
    harness.stop().await?;
    let completed = job.completed;
    let (timings, _) = job.result.as_ref().map(JobResult::timings_and_scope).unwrap_or_default();
    let merges: Vec<MergeFigures> = job
        .result
        .as_ref()
        .and_then(|result| result.applied.as_ref())
        .map(|applied| applied.merges.iter().map(MergeFigures::from).collect())
        .unwrap_or_default();
    Ok(json!({
        "memories": count,
        "dim": dim,
        "seed_ms": seed_ms,
        "end_to_end_ms": job.end_to_end_ms,
        "events_ms_since_publish": job.phases,
        "engine_timings_ms": timings,
        "cost": job.result.as_ref().and_then(|result| result.cost),
        // The merges the job result lists, as the worker stores them.
        "merge_text": super::engine::merge_stats(&merges),
        "counters": completed.counters,
        "memories_before": completed.memories_before,
        "memories_after": completed.memories_after,
        // Parsing and loading the file, then the job alone (the input dropped, the peak reset).
        "load_peak_rss_mib": load_peak_rss_mib,
        "job_peak_rss_mib": if job_peak_measured { crate::telemetry::peak_rss_mib() } else { None },
    }))
}

fn fresh_database_url(url: &str, run_id: &str) -> Result<String, E2eError> {
    use std::str::FromStr;

    use sqlx::ConnectOptions;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| E2eError::Run(e.to_string()))?;
    Ok(options.database(&format!("consolidator_bench_{}", &run_id[..12])).to_url_lossy().to_string())
}

async fn drop_database(url: &str) -> Result<(), E2eError> {
    use std::str::FromStr;

    use sqlx::Connection;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| E2eError::Run(e.to_string()))?;
    let name = options.get_database().unwrap_or_default().replace('"', "");
    let mut admin =
        sqlx::PgConnection::connect_with(&options.database("postgres")).await.map_err(store::StoreError::from)?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .map_err(store::StoreError::from)?;
    Ok(())
}
