//! Keeps a long job alive: in-progress acks to JetStream and lease renewals in PostgreSQL.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{AckKind, Message};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Worker;
use crate::domain::Phase;
use crate::store::jobs;

/// Phase and progress the job reports; the keeper writes the latest with each heartbeat.
#[derive(Debug, Clone)]
pub struct Progress {
    pub phase: Phase,
    pub progress: f32,
}

/// A running keeper: in-progress acks and lease renewals; dropping it stops both.
pub struct LeaseKeeper {
    stop: CancellationToken,
    pub progress: watch::Sender<Progress>,
    /// Cancelled when another worker took the job over: the caller abandons its run.
    pub lost: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _acks: InProgress,
}

impl LeaseKeeper {
    pub fn start(worker: &Worker, message: Arc<Message>, job_id: Uuid) -> Self {
        let acks = InProgress::start(worker, &message);
        let stop = CancellationToken::new();
        let lost = CancellationToken::new();
        let (progress, mut updates) = watch::channel(Progress { phase: Phase::Loading, progress: 0.0 });
        // A third of the shortest deadline leaves two chances before either one expires.
        let every = Duration::from_secs(worker.config.ack_wait_secs.min(worker.config.job_lease_secs)) / 3;
        let db = worker.db.clone();
        let worker_id = worker.worker_id.clone();
        let task = tokio::spawn({
            let stop = stop.clone();
            let lost = lost.clone();
            async move {
                let mut ticker = tokio::time::interval(every);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = ticker.tick() => {}
                    }
                    let current = updates.borrow_and_update().clone();
                    match jobs::heartbeat(&db, job_id, &worker_id, current.phase, current.progress).await {
                        Ok(jobs::Heartbeat::Renewed) => {}
                        Ok(jobs::Heartbeat::Finished) => return,
                        Ok(jobs::Heartbeat::Lost) => {
                            tracing::warn!(%job_id, "lease lost to another worker");
                            lost.cancel();
                            return;
                        }
                        Err(error) => tracing::warn!(%error, "heartbeat failed"),
                    }
                }
            }
        });
        Self { stop, progress, lost, task: Some(task), _acks: acks }
    }

    pub fn report(&self, phase: Phase, progress: f32) {
        self.progress.send_replace(Progress { phase, progress });
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// In-progress acks while a command runs: its message stays with this worker instead of being
/// redelivered (a rollback's redelivery would wait on the rollback's row lock).
pub struct InProgress {
    stop: CancellationToken,
}

impl InProgress {
    pub fn start(worker: &Worker, message: &Message) -> Self {
        let stop = CancellationToken::new();
        let every = Duration::from_secs(worker.config.ack_wait_secs) / 3;
        let message = message.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut ticker = tokio::time::interval(every);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = ticker.tick() => {}
                    }
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(%error, "in-progress ack failed");
                    }
                }
            }
        });
        Self { stop }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
