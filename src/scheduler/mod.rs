//! Publishes one sweep command per tick of a cron schedule, and runs maintenance every minute.
//! Any number of replicas may run: the command's message id (`sweep:<tick>`) and the tick's row
//! in `consolidation_sweeps` make each tick happen once, and an advisory lock lets one replica
//! at a time do a maintenance pass.

mod maintenance;

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use maintenance::MaintenanceReport;

use crate::{
    bus::{
        Bus, BusError, CommandKind,
        messages::{SCHEMA_VERSION, SweepCommand},
    },
    config::{ConfigError, RetentionConfig, SchedulerConfig},
    store::{StoreError, sweeps},
};

/// How far back the catch-up looks for a missed tick, widening until one is found.
const CATCH_UP_WINDOWS_DAYS: [i64; 3] = [1, 8, 32];

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<sqlx::Error> for SchedulerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

pub struct Scheduler {
    pub db: PgPool,
    pub bus: Bus,
    pub schedule: Cron,
    pub config: SchedulerConfig,
    /// Audit rows inside the rollback window are never deleted, whatever the retention says.
    pub retention: RetentionConfig,
}

/// Any cron expression (seconds field optional) that ticks at all.
pub fn parse_schedule(expression: &str) -> Result<Cron, ConfigError> {
    let schedule = Cron::new(expression)
        .with_seconds_optional()
        .parse()
        .map_err(|error| ConfigError::new("SCHEDULE", format!("{expression:?} is not a cron expression: {error}")))?;
    if schedule.find_next_occurrence(&Utc::now(), false).is_err() {
        return Err(ConfigError::new("SCHEDULE", format!("{expression:?} never ticks")));
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
        let command = SweepCommand { schema_version: SCHEMA_VERSION, tick, scheduled_at: Utc::now() };
        let duplicate = self.bus.publish_command(CommandKind::Sweep, &command.idempotency_key(), &command).await?;
        tracing::info!(%tick, duplicate, "sweep published");
        Ok(())
    }

    /// The latest tick missed while every scheduler was down is published once at start.
    pub async fn catch_up(&self, now: DateTime<Utc>) -> Result<bool, SchedulerError> {
        let Some(tick) = self.previous_tick(now) else { return Ok(false) };
        if sweeps::latest_tick(&self.db).await?.is_some_and(|latest| latest >= tick) {
            return Ok(false);
        }
        tracing::info!(%tick, "catching up a missed sweep");
        self.publish_sweep(tick).await?;
        Ok(true)
    }

    fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.config.maintenance_interval_secs.max(1))
    }
}

/// Catches up, then publishes a sweep at every tick and runs maintenance every interval until
/// `shutdown`.
pub async fn run(scheduler: Scheduler, shutdown: CancellationToken) {
    // The first tick is the one after the instant catch-up looks back from: a tick that falls
    // while catch-up runs is published late, not skipped.
    let started = Utc::now();
    if let Err(error) = scheduler.catch_up(started).await {
        tracing::warn!(%error, "catch-up failed; maintenance retries it");
    }
    let mut maintenance = tokio::time::interval(scheduler.maintenance_interval());
    maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = scheduler.next_tick(started);
    loop {
        let Some(tick) = next else {
            tracing::error!("the schedule has no next tick; scheduler stops");
            return;
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {
                if let Err(error) = scheduler.publish_sweep(tick).await {
                    tracing::error!(%error, %tick, "sweep not published; maintenance retries it");
                }
                next = scheduler.next_tick(tick);
            }
            _ = maintenance.tick() => {
                if let Err(error) = scheduler.maintain(Utc::now()).await {
                    tracing::warn!(%error, "maintenance failed; the next pass retries");
                }
            }
        }
    }
}
