//! Continuous recovery (DESIGN.md §4): outages do not use up deliveries, JetStream's give-up is
//! not silent, and the races a redelivery can run into.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{Message, consumer::PullConsumer};
use consolidator::config::RetentionConfig;
use consolidator::domain::{RollbackEventKind, TriggerType};
use consolidator::{
    bus::{
        CommandKind,
        messages::{CancelCommand, CheckCommand, DeadLetter, RollbackCommand, SCHEMA_VERSION, TriggerCommand},
    },
    store::{
        jobs::{self, NewJob},
        projects, rollbacks,
    },
    worker::{self, Settled, Worker, advisories},
};
use futures::StreamExt;
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

async fn consumer(worker: &Worker, kind: CommandKind) -> PullConsumer {
    worker.bus.command_consumer(kind, &worker.consumer_settings(kind)).await.unwrap()
}

/// The next delivery of the consumer's message (a redelivery once its ack wait or Nak delay passes).
async fn next_delivery(consumer: &PullConsumer) -> Message {
    let mut batch = consumer.batch().max_messages(1).expires(WAIT).messages().await.unwrap();
    batch.next().await.expect("a delivery").unwrap()
}

/// A project with the fixture memories, a worker that is not running and its trigger consumer,
/// and a trigger for the project (not published yet).
async fn loaded_project_and_trigger() -> (TestEnv, projects::Project, Worker, PullConsumer, TriggerCommand) {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.worker();
    let consumer = consumer(&worker, CommandKind::Trigger).await;
    let command = trigger(project.id, serde_json::json!({}));
    (env, project, worker, consumer, command)
}

/// The job row the gateway writes before it publishes `command`.
async fn job_row_of(env: &TestEnv, command: &TriggerCommand) -> jobs::NewJob {
    let job = jobs::NewJob {
        id: command.job_id,
        project_id: command.project_id,
        trigger_type: jobs::TriggerType::Manual,
        options: serde_json::json!({}),
        triggered_by: command.triggered_by.clone(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(&env.db, &job).await.unwrap();
    job
}

async fn dead_letters(env: &TestEnv, command: &str, timeout: Duration) -> Vec<DeadLetter> {
    events_until::<DeadLetter>(&env.bus, env.bus.prefix.dead_letter(command), timeout, |_| false)
        .await
        .into_iter()
        .map(|(_, letter)| letter)
        .collect()
}

#[tokio::test]
async fn an_outage_does_not_use_up_deliveries_and_the_job_completes_when_the_database_is_back() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;
    // A worker whose database is unreachable, allowed two deliveries for failures that are not
    // outages.
    let mut config = env.worker_config();
    config.max_deliveries = 2;
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let down = Worker::new(unreachable, env.bus.clone(), config, RetentionConfig::default());
    let consumer = consumer(&down, CommandKind::Trigger).await;

    for delivery in 1..=4 {
        let message = next_delivery(&consumer).await;
        assert_eq!(
            worker::process_one(&down, CommandKind::Trigger, message).await,
            Settled::Redelivering,
            "{delivery}"
        );
    }

    let up = env.spawn_worker();
    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
    up.stop().await;
    assert_eq!(job.memories_merged, 5);
    assert!(dead_letters(&env, "trigger", Duration::from_millis(500)).await.is_empty());
}

#[tokio::test]
async fn jetstreams_own_give_up_becomes_a_dead_letter_and_a_failed_job() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let mut config = env.worker_config();
    config.ack_wait_secs = 2;
    config.jetstream_max_deliver = Some(2);
    let worker = Arc::new(Worker::new(env.db.clone(), env.bus.clone(), config, RetentionConfig::default()));
    let consumer = consumer(&worker, CommandKind::Trigger).await;
    let listening = advisories::subscribe(&env.bus).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::spawn(advisories::listen(worker.clone(), listening, shutdown.clone()));
    let command = trigger(project.id, serde_json::json!({}));
    job_row_of(&env, &command).await;
    publish_trigger(&env.bus, &command).await;

    // Two workers that crash on it: delivered, never answered.
    for _ in 0..2 {
        let _ = next_delivery(&consumer).await;
    }
    // The server notices the limit when it next looks for a message to deliver (a worker's pull).
    let mut third = consumer.batch().max_messages(1).expires(Duration::from_secs(5)).messages().await.unwrap();
    assert!(third.next().await.is_none(), "not delivered a third time");

    let failed = wait_for_status(&env, command.job_id, "failed", WAIT).await;
    let letters = dead_letters(&env, "trigger", Duration::from_secs(3)).await;
    shutdown.cancel();
    listener.await.unwrap();
    assert!(failed.error_message.unwrap().contains("JetStream stopped delivering"));
    assert_eq!(letters.len(), 1, "{letters:?}");
    let sent: TriggerCommand = serde_json::from_str(&letters[0].payload).unwrap();
    assert_eq!((sent.job_id, letters[0].deliveries), (command.job_id, Some(2)));
    let stream = env.bus.jetstream.get_stream(env.bus.prefix.commands_stream()).await.unwrap();
    assert_eq!(stream.cached_info().state.messages, 0, "the given-up message is removed");
}

#[tokio::test]
async fn a_redelivered_check_finds_its_own_job_instead_of_creating_a_second() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 3).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.worker();
    let consumer = consumer(&worker, CommandKind::Check).await;
    let check = CheckCommand { schema_version: SCHEMA_VERSION, project_id: project.id, requested_by: "agent".into() };
    env.bus.publish_command(CommandKind::Check, "task-41-finished", &check).await.unwrap();
    let message = next_delivery(&consumer).await;

    assert_eq!(worker::process_one(&worker, CommandKind::Check, message.clone()).await, Settled::Acked);
    let history = || async {
        jobs::history(&env.db, project.id, &jobs::HistoryFilter { limit: 10, ..Default::default() }).await.unwrap()
    };
    let first = history().await;
    assert_eq!(first.len(), 1);
    // The job ran and ended; then the same check arrives again (its ack was lost).
    sqlx::query("UPDATE consolidation_jobs SET status = 'completed', completed_at = now() WHERE id = $1")
        .bind(first[0].id)
        .execute(&env.db)
        .await
        .unwrap();
    assert_eq!(worker::process_one(&worker, CommandKind::Check, message).await, Settled::Acked);
    assert_eq!(history().await.len(), 1, "no second job for the same check");
}

#[tokio::test]
async fn a_redelivered_trigger_of_a_running_job_in_a_since_disabled_project_waits_for_it() {
    let (env, project, worker, consumer, command) = loaded_project_and_trigger().await;
    publish_trigger(&env.bus, &command).await;
    let job = job_row_of(&env, &command).await;
    jobs::claim(&env.db, job.id, "the worker running it", Duration::from_secs(60)).await.unwrap();
    let off = projects::ConsolidationSettings { enabled: false, threshold: 1, options: serde_json::json!({}) };
    projects::update_settings(&env.db, project.id, &off).await.unwrap();

    let settled = worker::process_one(&worker, CommandKind::Trigger, next_delivery(&consumer).await).await;

    assert_eq!(settled, Settled::Redelivering);
    assert_eq!(jobs::get(&env.db, job.id).await.unwrap().unwrap().status, "running");
    assert!(dead_letters(&env, "trigger", Duration::from_millis(500)).await.is_empty());
}

async fn completed_job(env: &TestEnv) -> (Uuid, Uuid) {
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;
    let running = env.spawn_worker();
    wait_for_status(env, command.job_id, "completed", WAIT).await;
    running.stop().await;
    (project.id, command.job_id)
}

fn rollback_command(project_id: Uuid, job_id: Uuid) -> RollbackCommand {
    RollbackCommand {
        schema_version: SCHEMA_VERSION,
        rollback_id: Uuid::new_v4(),
        project_id,
        consolidation_id: job_id,
        reason: Some("test".into()),
        requested_by: "admin".into(),
        cascade: false,
    }
}

#[tokio::test]
async fn a_rollback_redelivered_mid_run_keeps_its_own_result() {
    let env = TestEnv::new().await;
    let (project_id, job_id) = completed_job(&env).await;
    let worker = env.worker();
    let consumer = consumer(&worker, CommandKind::Rollback).await;
    let command = rollback_command(project_id, job_id);
    env.bus.publish_command(CommandKind::Rollback, &command.rollback_id.to_string(), &command).await.unwrap();
    let message = next_delivery(&consumer).await;

    let (first, second) = tokio::join!(
        worker::process_one(&worker, CommandKind::Rollback, message.clone()),
        worker::process_one(&worker, CommandKind::Rollback, message),
    );

    assert_eq!((first, second), (Settled::Acked, Settled::Acked));
    let row = rollbacks::get(&env.db, command.rollback_id).await.unwrap().unwrap();
    assert_eq!(row.status, "completed");
    assert!(row.memories_restored > 0);
    assert!(row.warnings.0.is_empty(), "its own result, not 'already rolled back by itself': {:?}", row.warnings.0);
}

#[tokio::test]
async fn giving_up_on_a_rollback_that_completed_changes_nothing_and_announces_nothing() {
    let env = TestEnv::new().await;
    let (project_id, job_id) = completed_job(&env).await;
    let command = rollback_command(project_id, job_id);
    let running = env.spawn_worker();
    let result = crate::harness::rollback(&env, project_id, job_id, command.rollback_id).await;
    running.stop().await;
    assert!(result.success);
    // A stray copy of the command that JetStream then gives up on.
    let worker = Arc::new(env.worker());
    let stream = env.bus.jetstream.get_stream(env.bus.prefix.commands_stream()).await.unwrap();
    let stray = RollbackCommand { rollback_id: command.rollback_id, ..rollback_command(project_id, job_id) };
    env.bus.publish_command(CommandKind::Rollback, "stray-copy", &stray).await.unwrap();
    let sequence = stream.get_info().await.unwrap().state.last_sequence;
    let failed_events = env
        .bus
        .client
        .subscribe(env.bus.prefix.rollback_event(project_id, command.rollback_id, RollbackEventKind::Failed))
        .await
        .unwrap();

    let advisory = advisories::MaxDeliveriesAdvisory {
        stream: env.bus.prefix.commands_stream(),
        consumer: env.bus.prefix.consumer(CommandKind::Rollback),
        stream_seq: sequence,
        deliveries: 5,
    };
    advisories::handle(&worker, &advisory).await;

    let row = rollbacks::get(&env.db, command.rollback_id).await.unwrap().unwrap();
    assert_eq!(row.status, "completed");
    let announced = tokio::time::timeout(Duration::from_millis(700), failed_events.take(1).collect::<Vec<_>>()).await;
    assert!(announced.is_err(), "no failed event for a completed rollback");
    assert_eq!(
        dead_letters(&env, "rollback", Duration::from_secs(2)).await.len(),
        1,
        "the stray copy is dead-lettered"
    );
}

#[tokio::test]
async fn commands_with_overlong_actors_or_reasons_or_a_nul_are_dead_lettered_naming_the_field() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let worker = env.spawn_worker();
    let mut long = trigger(project.id, serde_json::json!({}));
    long.triggered_by = "x".repeat(500 * 1024);
    publish_trigger(&env.bus, &long).await;
    let mut nul = trigger(project.id, serde_json::json!({}));
    nul.triggered_by = "agent\u{0}".into();
    publish_trigger(&env.bus, &nul).await;
    let reason = RollbackCommand { reason: Some("r".repeat(257)), ..rollback_command(Uuid::new_v4(), Uuid::new_v4()) };
    env.bus.publish_command(CommandKind::Rollback, &reason.rollback_id.to_string(), &reason).await.unwrap();

    let triggers = eventually(WAIT, || async {
        let letters = dead_letters(&env, "trigger", Duration::from_millis(300)).await;
        (letters.len() == 2).then_some(letters)
    })
    .await
    .expect("both triggers dead-lettered");
    let rollbacks_letters = dead_letters(&env, "rollback", Duration::from_secs(2)).await;
    worker.stop().await;

    assert!(triggers.iter().any(|l| l.reason.contains("triggered_by: at most 256 characters")), "{triggers:?}");
    assert!(triggers.iter().any(|l| l.reason.contains("triggered_by: must not contain a NUL")), "{triggers:?}");
    assert!(rollbacks_letters.iter().any(|l| l.reason.contains("reason: at most 256 characters")));
    assert!(jobs::get(&env.db, long.job_id).await.unwrap().is_none(), "nothing created");
    assert!(rollbacks::get(&env.db, reason.rollback_id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_command_that_fails_to_decode_fails_the_job_it_names_instead_of_leaving_it_pending() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let mut command = trigger(project.id, serde_json::json!({}));
    job_row_of(&env, &command).await;
    command.triggered_by = "y".repeat(300);
    let worker = env.spawn_worker();

    publish_trigger(&env.bus, &command).await;

    let failed = wait_for_status(&env, command.job_id, "failed", WAIT).await;
    worker.stop().await;
    assert!(failed.error_message.unwrap().contains("triggered_by: at most 256 characters"));
}

#[tokio::test]
async fn a_job_whose_runs_keep_ending_with_their_worker_gone_is_failed_not_retried_forever() {
    let (env, project, worker, consumer, command) = loaded_project_and_trigger().await;
    job_row_of(&env, &command).await;
    // Four runs so far, each ended by its worker dying (crash, out-of-memory kill).
    sqlx::query(
        "UPDATE consolidation_jobs SET status = 'running', attempts = 4, worker_id = 'dead',
                heartbeat_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(command.job_id)
    .execute(&env.db)
    .await
    .unwrap();
    publish_trigger(&env.bus, &command).await;

    let settled = worker::process_one(&worker, CommandKind::Trigger, next_delivery(&consumer).await).await;

    assert_eq!(settled, Settled::DeadLettered);
    let job = jobs::get(&env.db, command.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, "failed");
    assert!(job.error_message.unwrap().contains("claimed 4 times and no run finished"));
    assert_eq!(projects::active_memory_count(&env.db, project.id).await.unwrap(), 8, "nothing applied");
}

#[tokio::test]
async fn failures_that_are_not_outages_are_counted_on_the_row() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let command = trigger(project.id, serde_json::json!({}));
    job_row_of(&env, &command).await;
    assert_eq!(jobs::count_failure(&env.db, command.job_id).await.unwrap(), Some(1));
    assert_eq!(jobs::count_failure(&env.db, command.job_id).await.unwrap(), Some(2));
    assert_eq!(jobs::count_failure(&env.db, Uuid::new_v4()).await.unwrap(), None, "no row, no count");
}

#[tokio::test]
async fn a_command_naming_another_project_is_dead_lettered_and_changes_nothing() {
    let env = TestEnv::new().await;
    let (project_id, job_id) = completed_job(&env).await;
    let other = fixtures::project(&env.db, 2).await;
    let pending = NewJob {
        id: Uuid::new_v4(),
        project_id: other.id,
        trigger_type: TriggerType::Manual,
        options: serde_json::json!({}),
        triggered_by: "tester".to_owned(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(&env.db, &pending).await.unwrap();
    let worker = env.spawn_worker();

    let rollback = rollback_command(other.id, job_id);
    env.bus.publish_command(CommandKind::Rollback, &rollback.rollback_id.to_string(), &rollback).await.unwrap();
    let cancel = CancelCommand {
        schema_version: SCHEMA_VERSION,
        project_id,
        job_id: pending.id,
        requested_by: "intruder".to_owned(),
    };
    env.bus.publish_command(CommandKind::Cancel, "foreign-cancel", &cancel).await.unwrap();
    // Undecodable, naming the other project's job under this project: the job must not fail.
    let garbage = serde_json::json!({"job_id": pending.id, "project_id": project_id, "trigger_type": 7});
    let subject = env.bus.prefix.command(CommandKind::Trigger);
    env.bus.jetstream.publish(subject, garbage.to_string().into()).await.unwrap().await.unwrap();

    let letters = eventually(WAIT, || async {
        let mut letters = dead_letters(&env, "rollback", Duration::from_millis(300)).await;
        letters.extend(dead_letters(&env, "cancel", Duration::from_millis(300)).await);
        letters.extend(dead_letters(&env, "trigger", Duration::from_millis(300)).await);
        (letters.len() == 3).then_some(letters)
    })
    .await
    .expect("three dead letters");
    worker.stop().await;

    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(
        reasons.contains(&format!("project {} has no consolidation job {job_id}", other.id).as_str()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&format!("project {project_id} has no job {}", pending.id).as_str()), "{reasons:?}");
    let job = jobs::get(&env.db, job_id).await.unwrap().unwrap();
    assert!(job.rolled_back_at.is_none(), "the completed job stands");
    let untouched = jobs::get(&env.db, pending.id).await.unwrap().unwrap();
    assert_eq!((untouched.status.as_str(), untouched.cancel_requested_by), ("pending", None));
}

#[tokio::test]
async fn a_command_whose_dead_letter_would_exceed_the_message_limit_still_leaves_one() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    // Control characters take six bytes each once escaped in the letter's JSON.
    let payload = vec![1u8; 900_000];
    let subject = env.bus.prefix.command(CommandKind::Trigger);
    env.bus.jetstream.publish(subject, payload.clone().into()).await.unwrap().await.unwrap();

    let letters = eventually(WAIT, || async {
        let letters = dead_letters(&env, "trigger", Duration::from_millis(500)).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await
    .expect("a dead letter");
    worker.stop().await;

    let letter = &letters[0];
    assert!(letter.payload_truncated, "{} bytes of payload kept", letter.payload.len());
    assert_eq!(letter.payload_bytes, 900_000);
    assert!(!letter.payload.is_empty() && letter.payload.bytes().all(|byte| byte == 1));
    let whole = DeadLetter::new("trigger", String::new(), "", &payload);
    assert_eq!(letter.payload_sha256, whole.payload_sha256);
    assert!(letter.reason.contains("not valid JSON"), "{}", letter.reason);
}
