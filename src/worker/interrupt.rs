//! Why a running job must stop before its next boundary, seen while it runs rather than only at
//! its phase boundaries: a cancel request (polled), the lease lost to another worker, or the
//! worker's shutdown grace running out. The first reason cancels the job's stop token, which
//! the planner and the model calls watch.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Worker;
use crate::store::cancel;

/// How often a running job looks for a cancel request between its boundaries.
const CANCEL_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupt {
    /// Someone (named) asked the job to stop: it ends cancelled.
    Cancelled(String),
    /// Another worker holds the job now: this one leaves it, and its delivery, alone.
    Lost,
    /// This worker is shutting down: the job goes back to pending for another worker.
    Shutdown,
}

/// The watcher of one job; dropping it stops the watching.
pub struct JobStop {
    token: CancellationToken,
    reason: Arc<OnceLock<Interrupt>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl JobStop {
    /// Watches for a cancel request of `job_id`, for `lost` (the lease keeper's) and for the
    /// worker's `stop_jobs`.
    pub fn start(worker: &Worker, job_id: Uuid, lost: CancellationToken) -> JobStop {
        let token = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        let (db, shutdown) = (worker.db.clone(), worker.stop_jobs.clone());
        let watcher = tokio::spawn(tracing::Instrument::in_current_span({
            let (token, reason) = (token.clone(), reason.clone());
            async move {
                let why = loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = lost.cancelled() => break Interrupt::Lost,
                        _ = shutdown.cancelled() => break Interrupt::Shutdown,
                        _ = tokio::time::sleep(CANCEL_POLL) => {
                            if let Ok(Some(by)) = cancel::requested_by(&db, job_id).await {
                                break Interrupt::Cancelled(by);
                            }
                        }
                    }
                };
                tracing::info!(?why, "job interrupted");
                let _ = reason.set(why);
                token.cancel();
            }
        }));
        JobStop { token, reason, watcher }
    }

    /// Cancelled once the job must stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn reason(&self) -> Option<Interrupt> {
        self.reason.get().cloned()
    }
}

impl Drop for JobStop {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}
