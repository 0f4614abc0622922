//! The worker's row in `workers` (`GET /workers`): beaten while the worker runs, removed when it
//! stops.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::store::workers;

/// How often the row is beaten.
const BEAT_EVERY: Duration = Duration::from_secs(10);

pub async fn beat(worker: Arc<Worker>, stop: CancellationToken) {
    loop {
        if let Err(error) = workers::beat(&worker.db, &worker.worker_id).await {
            tracing::debug!(%error, "worker heartbeat not recorded");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(BEAT_EVERY) => {}
        }
    }
    if let Err(error) = workers::remove(&worker.db, &worker.worker_id).await {
        tracing::debug!(%error, "worker row not removed");
    }
}
