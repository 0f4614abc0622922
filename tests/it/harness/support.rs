//! Helpers shared by the worker and scheduler tests: publishing commands, reading events back.

use std::time::Duration;

use consolidator::{
    bus::{
        Bus, CommandKind,
        messages::{JobEvent, RollbackCommand, RollbackEvent, SCHEMA_VERSION, TriggerCommand},
    },
    domain::{MemoryType, NewMemory},
    store::jobs::{self, TriggerType},
};
use futures::StreamExt;
use uuid::Uuid;

use super::{
    env::{TestEnv, eventually},
    fixtures::{self, direction},
};

const WAIT: Duration = Duration::from_secs(30);

pub async fn wait_for_status(env: &TestEnv, job_id: Uuid, status: &str, timeout: Duration) -> jobs::Job {
    eventually(timeout, || async { jobs::get(&env.db, job_id).await.ok().flatten().filter(|job| job.status == status) })
        .await
        .unwrap_or_else(|| panic!("job {job_id} did not reach {status}"))
}

/// Publishes a rollback of `job_id` and waits for its result event.
pub async fn rollback(env: &TestEnv, project_id: Uuid, job_id: Uuid, rollback_id: Uuid) -> RollbackEvent {
    let command = RollbackCommand {
        schema_version: SCHEMA_VERSION,
        rollback_id,
        project_id,
        consolidation_id: job_id,
        reason: Some("test".to_owned()),
        requested_by: "admin".to_owned(),
        cascade: false,
    };
    env.bus.publish_command(CommandKind::Rollback, &rollback_id.to_string(), &command).await.unwrap();
    let events = events_until::<RollbackEvent>(
        &env.bus,
        env.bus.prefix.rollback_events_of(project_id, rollback_id),
        WAIT,
        |_| true,
    )
    .await;
    events.into_iter().next().expect("a rollback result").1
}

pub fn trigger(project_id: Uuid, options: serde_json::Value) -> TriggerCommand {
    TriggerCommand {
        schema_version: SCHEMA_VERSION,
        job_id: Uuid::new_v4(),
        project_id,
        options: Some(options),
        trigger_type: TriggerType::Manual,
        triggered_by: "tester".to_owned(),
        plan_of: None,
    }
}

pub async fn publish_trigger(bus: &Bus, command: &TriggerCommand) {
    bus.publish_command(CommandKind::Trigger, &command.job_id.to_string(), command).await.expect("trigger published");
}

/// Every message on `filter` so far, waiting up to `timeout` for one whose payload satisfies `last`.
pub async fn events_until<T: serde::de::DeserializeOwned>(
    bus: &Bus,
    filter: String,
    timeout: Duration,
    last: impl Fn(&T) -> bool,
) -> Vec<(String, T)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut messages = bus.replay_events(filter).await.expect("replay");
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, messages.next()).await {
        let event: T = serde_json::from_slice(&message.payload).expect("event payload is JSON of the right shape");
        let done = last(&event);
        seen.push((message.subject.to_string(), event));
        if done {
            break;
        }
    }
    seen
}

pub async fn job_events(bus: &Bus, project_id: Uuid, job_id: Uuid, timeout: Duration) -> Vec<JobEvent> {
    events_until::<JobEvent>(bus, bus.prefix.job_events_of(project_id, job_id), timeout, |event| {
        event.event == "completed" || event.event == "failed"
    })
    .await
    .into_iter()
    .map(|(_, event)| event)
    .collect()
}

/// A project's memories for the standard scenario: a near-duplicate triple about one library,
/// a near-duplicate pair of decisions, two unrelated memories, and one stale memory.
pub struct Scenario {
    pub triple: Vec<NewMemory>,
    pub pair: Vec<NewMemory>,
    pub unrelated: Vec<NewMemory>,
    pub stale: NewMemory,
}

impl Scenario {
    pub fn new() -> Self {
        let triple = vec![
            fixtures::memory(
                "Fixed the sqlx pool timeout by raising max_connections to 20. The default of 10 starved the workers.",
                MemoryType::ErrorFix,
                direction(0, 0.0),
            ),
            fixtures::memory(
                "Raised the sqlx pool max_connections to 20 to fix acquire timeouts. Workers were starved at 10.",
                MemoryType::ErrorFix,
                direction(0, 0.05),
            ),
            fixtures::memory(
                "sqlx acquire timeouts went away after max_connections went from 10 to 20. Check pool size first.",
                MemoryType::ErrorFix,
                direction(0, 0.1),
            ),
        ];
        let pair = vec![
            fixtures::memory(
                "Decided to use JetStream work queues for commands. Always ack only after the database commit.",
                MemoryType::Decision,
                direction(4, 0.0),
            ),
            fixtures::memory(
                "We chose JetStream work-queue streams to carry commands. Never ack before the commit: a crash loses the job.",
                MemoryType::Decision,
                direction(4, 0.08),
            ),
        ];
        let unrelated = vec![
            fixtures::memory("The CSS grid broke on Safari 15.", MemoryType::Discovery, direction(8, 0.0)),
            // Related to the triple (similarity about 0.86), not a duplicate: with the merged
            // triple it is a topic, and gets a synthesis.
            fixtures::memory(
                "Pool size alone is not enough: sqlx holds a connection for the whole transaction, so keep \
                 transactions short.",
                MemoryType::Learning,
                fixtures::leaning(0, 0.86, 11),
            ),
        ];
        let stale = fixtures::stale(
            fixtures::memory("An old note nobody reads.", MemoryType::Learning, direction(13, 0.0)),
            chrono::Utc::now() - chrono::Duration::days(400),
        );
        Self { triple, pair, unrelated, stale }
    }

    pub fn all(&self) -> Vec<NewMemory> {
        let mut all = self.triple.clone();
        all.extend(self.pair.clone());
        all.extend(self.unrelated.clone());
        all.push(self.stale.clone());
        all
    }
}

/// A scheduler on the test's database and prefix: `schedule`, hourly maintenance that publishes a
/// pending job again at once and leaves running ones an hour.
pub fn test_scheduler(env: &TestEnv, schedule: &str) -> consolidator::scheduler::Scheduler {
    consolidator::scheduler::Scheduler {
        db: env.db.clone(),
        bus: env.bus.clone(),
        schedule: consolidator::scheduler::parse_schedule(schedule).expect("a schedule"),
        config: consolidator::config::SchedulerConfig {
            schedule: schedule.to_owned(),
            maintenance_interval_secs: 60,
            pending_grace_secs: 0,
            abandoned_job_secs: 3600,
        },
        retention: consolidator::config::RetentionConfig::default(),
    }
}
