//! Publishes one sweep command per tick of a cron schedule, and runs maintenance on the same
//! schedule. Any number of replicas may run: the command's message id (`sweep:<date>`) and the
//! tick's row in `consolidation_sweeps` make each tick happen once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{
        Bus, BusError, CommandKind, JobEventKind,
        messages::{JobEvent, SCHEMA_VERSION, SweepCommand, TriggerCommand},
    },
    config::{ConfigError, SchedulerConfig},
    store::{StoreError, changes, jobs, sweeps},
};

/// Upcoming ticks inspected to make sure the schedule ticks at most once a day.
const TICKS_CHECKED: usize = 8;
/// How far back the start-up catch-up looks for a missed tick, widening until one is found.
const CATCH_UP_WINDOWS_DAYS: [i64; 3] = [1, 8, 32];

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

pub struct Scheduler {
    pub db: PgPool,
    pub bus: Bus,
    pub schedule: Cron,
    pub config: SchedulerConfig,
    /// Audit rows inside the rollback window are never deleted, whatever the retention says.
    pub rollback_window_days: u32,
}

/// A cron expression with at most one tick per UTC day: a sweep is keyed by its date.
pub fn parse_schedule(expression: &str) -> Result<Cron, ConfigError> {
    let schedule = Cron::new(expression)
        .with_seconds_optional()
        .parse()
        .map_err(|error| ConfigError::new("SCHEDULE", format!("{expression:?} is not a cron expression: {error}")))?;
    let mut ticks = schedule.iter_after(Utc::now()).take(TICKS_CHECKED);
    let mut previous = ticks.next();
    for tick in ticks {
        if previous.is_some_and(|previous| previous.date_naive() == tick.date_naive()) {
            return Err(ConfigError::new(
                "SCHEDULE",
                format!("{expression:?} ticks more than once a day; a sweep is keyed by its UTC date"),
            ));
        }
        previous = Some(tick);
    }
    Ok(schedule)
}

impl Scheduler {
    /// The latest tick at or before `now`, if one is found within the catch-up windows.
    pub fn previous_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        CATCH_UP_WINDOWS_DAYS.iter().find_map(|days| {
            self.schedule.iter_after(now - chrono::Duration::days(*days)).take_while(|tick| *tick <= now).last()
        })
    }

    pub fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.find_next_occurrence(&now, false).ok()
    }

    /// Publishes the sweep of `tick`; every replica publishing the same tick yields one command.
    pub async fn publish_sweep(&self, tick: DateTime<Utc>) -> Result<(), SchedulerError> {
        let command =
            SweepCommand { schema_version: SCHEMA_VERSION, sweep_date: tick.date_naive(), scheduled_at: tick };
        let duplicate = self.bus.publish_command(CommandKind::Sweep, &command.idempotency_key(), &command).await?;
        tracing::info!(sweep_date = %command.sweep_date, duplicate, "sweep published");
        Ok(())
    }

    /// A tick missed while every scheduler was down is published once at the next start.
    pub async fn catch_up(&self, now: DateTime<Utc>) -> Result<bool, SchedulerError> {
        let Some(tick) = self.previous_tick(now) else { return Ok(false) };
        let latest = sweeps::latest_date(&self.db).await?;
        if latest.is_some_and(|date| date >= tick.date_naive()) {
            return Ok(false);
        }
        tracing::info!(%tick, "catching up a missed sweep");
        self.publish_sweep(tick).await?;
        Ok(true)
    }

    /// Retention, re-publication of stranded pending jobs, and failing abandoned ones.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<MaintenanceReport, SchedulerError> {
        let keep_days = self.config.audit_retention_days.max(self.rollback_window_days);
        let deleted_changes =
            changes::delete_older_than(&self.db, now - chrono::Duration::days(i64::from(keep_days))).await?;

        let mut republished = 0;
        for job in jobs::stale_pending(&self.db, Duration::from_secs(self.config.pending_grace_secs)).await? {
            let command = TriggerCommand {
                schema_version: SCHEMA_VERSION,
                job_id: job.id,
                project_id: job.project_id,
                options: None,
                trigger_type: serde_json::from_value(serde_json::json!(job.trigger_type))
                    .unwrap_or(jobs::TriggerType::Manual),
                triggered_by: job.triggered_by.clone(),
            };
            // The job id is the message id: if the first publish did arrive, this one is dropped.
            self.bus.publish_command(CommandKind::Trigger, &job.id.to_string(), &command).await?;
            republished += 1;
        }

        let mut failed = 0;
        for job in jobs::abandoned(&self.db, Duration::from_secs(self.config.abandoned_job_secs)).await? {
            let reason = format!(
                "worker {} stopped heartbeating at {:?} and the command was not redelivered",
                job.worker_id.as_deref().unwrap_or("?"),
                job.heartbeat_at
            );
            if jobs::fail(&self.db, job.id, &reason).await? {
                failed += 1;
                let mut event = JobEvent::new(JobEventKind::Failed.as_str(), job.id, job.project_id);
                event.error = Some(reason);
                self.bus.job_terminal_event(JobEventKind::Failed, &event).await?;
            }
        }
        // A sweep whose last job was failed here (or whose closing event was lost) closes now.
        for sweep in sweeps::running(&self.db).await? {
            if let Err(failure) = crate::worker::sweep::complete_if_done(&self.db, &self.bus, sweep.sweep_date).await {
                tracing::warn!(?failure, sweep_date = %sweep.sweep_date, "sweep completion check failed");
            }
        }
        let report = MaintenanceReport { deleted_changes, republished, failed };
        tracing::info!(?report, "maintenance done");
        Ok(report)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub deleted_changes: u64,
    pub republished: u64,
    pub failed: u64,
}

/// Catches up, then publishes a sweep and runs maintenance at every tick until `shutdown`.
pub async fn run(scheduler: Scheduler, shutdown: CancellationToken) {
    if let Err(error) = scheduler.catch_up(Utc::now()).await {
        tracing::warn!(%error, "catch-up failed");
    }
    if let Err(error) = scheduler.maintain(Utc::now()).await {
        tracing::warn!(%error, "maintenance failed");
    }
    loop {
        let now = Utc::now();
        let Some(tick) = scheduler.next_tick(now) else {
            tracing::error!("the schedule has no next tick; scheduler stops");
            return;
        };
        let wait = (tick - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(error) = scheduler.publish_sweep(tick).await {
            tracing::error!(%error, %tick, "sweep not published; the next start catches it up");
        }
        if let Err(error) = scheduler.maintain(Utc::now()).await {
            tracing::warn!(%error, "maintenance failed");
        }
    }
}
