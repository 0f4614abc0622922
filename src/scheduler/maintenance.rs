//! One maintenance pass: retention, and recovery of whatever an outage stranded. Every replica
//! runs it every interval; a transaction-scoped advisory lock lets one at a time do the work.
//!
//! A command published again gets a fresh Nats-Msg-Id: the duplicate window would drop a
//! re-publication under the old one, and the job state in PostgreSQL keeps it effectively once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Scheduler, SchedulerError};
use crate::domain::JobEventKind;
use crate::{
    bus::{
        CommandKind,
        messages::{JobEvent, RollbackCommand, SCHEMA_VERSION, SweepCommand, TriggerCommand, tick_token},
    },
    store::{admin_actions, changes, jobs, rollbacks, sweeps},
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// False when another replica held the lock: this pass did nothing.
    pub ran: bool,
    pub deleted_changes: u64,
    pub deleted_admin_actions: u64,
    pub republished_jobs: u64,
    pub republished_rollbacks: u64,
    pub failed_jobs: u64,
    pub republished_sweeps: u64,
}

/// A message id no earlier publication used.
fn fresh_message_id(key: &str) -> String {
    format!("{key}:republished:{}", uuid::Uuid::new_v4())
}

impl Scheduler {
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<MaintenanceReport, SchedulerError> {
        let mut lock = self.db.begin().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(format!("consolidator:maintenance:{}", self.bus.prefix))
            .fetch_one(&mut *lock)
            .await?;
        if !held {
            tracing::debug!("another replica is maintaining");
            return Ok(MaintenanceReport::default());
        }
        let mut report = MaintenanceReport { ran: true, ..Default::default() };
        let cutoff = now - chrono::Duration::days(i64::from(self.retention.audit_days()));
        report.deleted_changes = changes::delete_older_than(&self.db, cutoff).await?;
        report.deleted_admin_actions = admin_actions::delete_older_than(&self.db, cutoff).await?;
        self.republish_pending_jobs(&mut report).await?;
        self.recover_abandoned_jobs(&mut report).await?;
        self.republish_pending_rollbacks(&mut report).await?;
        self.recover_sweeps(now, &mut report).await?;
        lock.commit().await?;
        if report != (MaintenanceReport { ran: true, ..Default::default() }) {
            tracing::info!(?report, "maintenance done");
        }
        Ok(report)
    }

    fn pending_grace(&self) -> Duration {
        Duration::from_secs(self.config.pending_grace_secs)
    }

    fn abandoned_after(&self) -> Duration {
        Duration::from_secs(self.config.abandoned_job_secs)
    }

    async fn republish_trigger(&self, job: &jobs::Job) -> Result<(), SchedulerError> {
        let command = TriggerCommand {
            schema_version: SCHEMA_VERSION,
            job_id: job.id,
            project_id: job.project_id,
            options: None,
            trigger_type: serde_json::from_value(serde_json::json!(job.trigger_type))
                .unwrap_or(jobs::TriggerType::Manual),
            triggered_by: job.triggered_by.clone(),
            plan_of: job.plan_of,
        };
        let stored = self
            .bus
            .publish_command_stored(CommandKind::Trigger, &fresh_message_id(&job.id.to_string()), &command)
            .await?;
        jobs::mark_published(&self.db, job.id, stored.sequence).await?;
        Ok(())
    }

    /// Whether the command maintenance last published for a row still waits in the work queue
    /// (its workers are busy, or down): then there is nothing to recover yet.
    async fn still_queued(&self, published_seq: Option<i64>) -> Result<bool, SchedulerError> {
        match published_seq.and_then(|sequence| u64::try_from(sequence).ok()) {
            Some(sequence) => Ok(self.bus.command_still_queued(sequence).await?),
            None => Ok(false),
        }
    }

    /// Pending jobs whose command may never have reached the stream, or is gone from it.
    async fn republish_pending_jobs(&self, report: &mut MaintenanceReport) -> Result<(), SchedulerError> {
        for job in jobs::stale_pending(&self.db, self.pending_grace()).await? {
            if self.still_queued(job.published_seq).await? {
                continue;
            }
            self.republish_trigger(&job).await?;
            report.republished_jobs += 1;
        }
        Ok(())
    }

    /// A running job nobody renews: published again first (any worker takes over a stale lease);
    /// failed, with the reason, only once that message is gone from the queue (a worker took it,
    /// or JetStream gave up on it) and the job is still abandoned that long after.
    async fn recover_abandoned_jobs(&self, report: &mut MaintenanceReport) -> Result<(), SchedulerError> {
        for job in jobs::abandoned(&self.db, self.abandoned_after()).await? {
            if self.still_queued(job.published_seq).await? {
                continue;
            }
            let republished_since_lease_died =
                job.published_at.zip(job.heartbeat_at).is_some_and(|(published, heartbeat)| published > heartbeat);
            if !republished_since_lease_died {
                self.republish_trigger(&job).await?;
                report.republished_jobs += 1;
                continue;
            }
            let reason = format!(
                "worker {} stopped heartbeating at {} and no worker took the job over after it was \
                 published again at {}",
                job.worker_id.as_deref().unwrap_or("?"),
                job.heartbeat_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
                job.published_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
            );
            if jobs::fail_abandoned(&self.db, job.id, &reason, self.abandoned_after()).await? {
                report.failed_jobs += 1;
                let mut event = JobEvent::new(JobEventKind::Failed, job.id, job.project_id);
                event.error = Some(reason);
                self.bus.job_terminal_event(JobEventKind::Failed, &event).await?;
            }
        }
        Ok(())
    }

    async fn republish_pending_rollbacks(&self, report: &mut MaintenanceReport) -> Result<(), SchedulerError> {
        for rollback in rollbacks::stale_pending(&self.db, self.pending_grace()).await? {
            if self.still_queued(rollback.published_seq).await? {
                continue;
            }
            let command = RollbackCommand {
                schema_version: SCHEMA_VERSION,
                rollback_id: rollback.id,
                project_id: rollback.project_id,
                consolidation_id: rollback.job_id,
                reason: rollback.reason.clone(),
                requested_by: rollback.requested_by.clone(),
                cascade: rollback.cascade,
            };
            let message_id = fresh_message_id(&rollback.id.to_string());
            let stored = self.bus.publish_command_stored(CommandKind::Rollback, &message_id, &command).await?;
            rollbacks::mark_published(&self.db, rollback.id, stored.sequence).await?;
            report.republished_rollbacks += 1;
        }
        Ok(())
    }

    /// The latest tick without a sweep (its publication failed, or every scheduler was down),
    /// a sweep whose fan-out was interrupted, and sweeps whose last job ended unnoticed.
    async fn recover_sweeps(&self, now: DateTime<Utc>, report: &mut MaintenanceReport) -> Result<(), SchedulerError> {
        let grace = chrono::Duration::from_std(self.pending_grace()).unwrap_or_default();
        if let Some(tick) = self.previous_tick(now).filter(|tick| *tick <= now - grace) {
            let swept = sweeps::latest_tick(&self.db).await?.is_some_and(|latest| latest >= tick);
            // A sweep command still in the queue will create the row: don't add another.
            if !swept && !self.bus.command_queued(CommandKind::Sweep).await? {
                tracing::info!(%tick, "publishing a missed sweep again");
                self.republish_sweep(tick).await?;
                report.republished_sweeps += 1;
            }
        }
        let stalled_after = chrono::Duration::from_std(self.abandoned_after()).unwrap_or_default();
        for sweep in sweeps::running(&self.db).await? {
            let last_sign_of_life = sweep.progress_at.unwrap_or(sweep.created_at);
            if sweep.fanned_out_at.is_none()
                && last_sign_of_life < now - stalled_after
                && !self.bus.command_queued(CommandKind::Sweep).await?
            {
                tracing::info!(tick = %sweep.tick, "finishing an interrupted sweep fan-out");
                self.republish_sweep(sweep.tick).await?;
                report.republished_sweeps += 1;
                continue;
            }
            if let Err(failure) = crate::finish::close_sweep_if_done(&self.db, &self.bus, sweep.tick).await {
                tracing::warn!(?failure, tick = %sweep.tick, "sweep completion check failed");
            }
        }
        Ok(())
    }

    async fn republish_sweep(&self, tick: DateTime<Utc>) -> Result<(), SchedulerError> {
        let command = SweepCommand { schema_version: SCHEMA_VERSION, tick, scheduled_at: Utc::now() };
        let message_id = fresh_message_id(&format!("sweep:{}", tick_token(tick)));
        self.bus.publish_command(CommandKind::Sweep, &message_id, &command).await?;
        Ok(())
    }
}
