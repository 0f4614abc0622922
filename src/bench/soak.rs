//! `consolidator bench soak`: the live-store simulation (`crate::soak`) run long, on a fresh
//! database and subject prefix, with an in-process worker. Prints the report; exits non-zero
//! with the seed and step when an invariant breaks.

use std::time::Instant;

use serde_json::{Value, json};

use super::e2e::{E2eError, Harness};
use crate::config::{NatsConfig, RetentionConfig, WorkerConfig};
use crate::soak::{self, SoakConfig};

pub async fn run(
    database_url: &str,
    nats: &NatsConfig,
    worker_config: WorkerConfig,
    config: SoakConfig,
) -> Result<Value, E2eError> {
    let harness = Harness::start(database_url, nats, worker_config).await?;
    let started = Instant::now();
    let outcome =
        soak::run(harness.db.clone(), harness.bus.clone(), harness.project_id, RetentionConfig::default(), config)
            .await;
    let seconds = started.elapsed().as_secs_f64();
    harness.stop().await?;
    let report = outcome.map_err(|error| E2eError::Run(error.to_string()))?;
    Ok(json!({"benchmark": "soak", "seconds": seconds, "report": report}))
}
