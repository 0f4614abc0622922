//! Deadlines and hand-overs (issue 24 items 4 and 5): a model endpoint that never answers costs
//! a job at most its budget, a cancel lands while a call hangs, a worker shutting down hands its
//! job to another without counting the attempt, and a worker that lost its lease leaves the
//! delivery to the new holder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use consolidator::bus::{
    CommandKind,
    messages::{CancelCommand, SCHEMA_VERSION},
};
use consolidator::config::RetentionConfig;
use consolidator::store::jobs;
use consolidator::worker::{self, Settled, Worker};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

/// A chat endpoint that accepts connections and never answers; counts the connections.
struct Hanging {
    url: String,
    accepted: Arc<AtomicUsize>,
}

fn hanging_endpoint() -> Hanging {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}/v1", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    std::thread::spawn({
        let accepted = accepted.clone();
        move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        }
    });
    Hanging { url, accepted }
}

impl Hanging {
    /// Waits until a model call reached the endpoint (the job is planning, its call hanging).
    async fn called(&self) {
        let reached = eventually(WAIT, || async { (self.accepted.load(Ordering::SeqCst) > 0).then_some(()) }).await;
        assert!(reached.is_some(), "no model call reached the endpoint");
    }
}

/// A worker whose synthesis endpoint is `endpoint`, with the given job budget and grace.
fn worker_on(env: &TestEnv, endpoint: &Hanging, budget_secs: u64, grace_secs: u64) -> Worker {
    let mut config = env.worker_config();
    config.llm_base_url = Some(endpoint.url.clone());
    config.llm_model = "test-model".to_owned();
    config.model_call_timeout_secs = 120;
    config.model_job_budget_secs = budget_secs;
    config.shutdown_grace_secs = grace_secs;
    Worker::new(env.db.clone(), env.bus.clone(), config, RetentionConfig::default())
}

async fn loaded_project(env: &TestEnv) -> Uuid {
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    project.id
}

async fn consolidated(env: &TestEnv, project_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM task_memories WHERE project_id = $1 AND memory_type IN ('consolidated', 'synthesis')",
    )
    .bind(project_id)
    .fetch_one(&env.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_job_whose_model_never_answers_completes_within_its_budget_on_extractive_text_and_says_so() {
    let env = TestEnv::new().await;
    let project_id = loaded_project(&env).await;
    let endpoint = hanging_endpoint();
    let running = env.spawn_worker_with(worker_on(&env, &endpoint, 2, 10));
    let command = trigger(project_id, json!({}));
    let started = Instant::now();
    publish_trigger(&env.bus, &command).await;

    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
    let took = started.elapsed();
    running.stop().await;

    assert!(took < Duration::from_secs(15), "a 2 s budget, not 3 x 120 s per call: {took:?}");
    assert!(endpoint.accepted.load(Ordering::SeqCst) >= 1, "the model was called");
    assert_eq!(job.summaries_created, 1, "the topic is synthesized from the extractive text");
    let result = &job.result.as_ref().unwrap().0;
    let model = &result["cost"]["model"];
    assert_eq!((model["budget_spent"].as_bool(), model["fallbacks"].as_u64()), (Some(true), Some(1)), "{model}");
    let warnings = result["warnings"].to_string();
    assert!(
        warnings.contains("model budget of 2 s spent") && warnings.contains("instead of the model: 1"),
        "{warnings}"
    );
}

#[tokio::test]
async fn a_cancel_during_planning_ends_the_job_within_seconds_while_its_model_call_hangs() {
    let env = TestEnv::new().await;
    let project_id = loaded_project(&env).await;
    let endpoint = hanging_endpoint();
    let running = env.spawn_worker_with(worker_on(&env, &endpoint, 300, 10));
    let command = trigger(project_id, json!({}));
    publish_trigger(&env.bus, &command).await;
    endpoint.called().await;

    let asked = Instant::now();
    let cancel = CancelCommand {
        schema_version: SCHEMA_VERSION,
        project_id,
        job_id: command.job_id,
        requested_by: "tester".into(),
    };
    env.bus.publish_command(CommandKind::Cancel, &Uuid::new_v4().to_string(), &cancel).await.unwrap();
    let job = wait_for_status(&env, command.job_id, "cancelled", WAIT).await;
    let took = asked.elapsed();
    running.stop().await;

    assert!(took < Duration::from_secs(10), "the hanging call did not hold the cancel: {took:?}");
    assert_eq!(job.error_message.as_deref(), Some("cancelled by tester before applying; nothing was applied"));
    assert_eq!(consolidated(&env, project_id).await, 0, "nothing was applied");
}

#[tokio::test]
async fn a_worker_shut_down_mid_job_hands_it_to_another_at_once_without_counting_an_attempt() {
    let env = TestEnv::new().await;
    let project_id = loaded_project(&env).await;
    let endpoint = hanging_endpoint();
    let stopping = env.spawn_worker_with(worker_on(&env, &endpoint, 300, 1));
    let first_worker = stopping.worker.worker_id.clone();
    let command = trigger(project_id, json!({}));
    publish_trigger(&env.bus, &command).await;
    endpoint.called().await;

    let asked = Instant::now();
    stopping.stop().await;
    let took = asked.elapsed();
    let released = jobs::get(&env.db, command.job_id).await.unwrap().unwrap();
    assert!(took < Duration::from_secs(10), "a 1 s grace, then the job is handed back: {took:?}");
    assert_eq!(released.status, "pending", "{released:?}");
    assert_eq!((released.attempts, released.failures), (0, 0), "{released:?}");

    let taking_over = env.spawn_worker();
    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
    taking_over.stop().await;
    assert_eq!((job.attempts, job.failures), (1, 0), "the shutdown was neither an attempt nor a failure");
    assert_ne!(job.worker_id.as_deref(), Some(first_worker.as_str()));
    assert_eq!(job.memories_merged, 5);
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_and_leaves_the_delivery_to_the_new_holder() {
    let env = TestEnv::new().await;
    let project_id = loaded_project(&env).await;
    let endpoint = hanging_endpoint();
    let worker = Arc::new(worker_on(&env, &endpoint, 300, 10));
    let settings = worker.consumer_settings(CommandKind::Trigger);
    let consumer: PullConsumer = worker.bus.command_consumer(CommandKind::Trigger, &settings).await.unwrap();
    let command = trigger(project_id, json!({}));
    publish_trigger(&env.bus, &command).await;
    let mut batch = consumer.batch().max_messages(1).expires(WAIT).messages().await.unwrap();
    let message = batch.next().await.expect("a delivery").unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker::process_one(&worker, CommandKind::Trigger, message).await }
    });
    endpoint.called().await;

    sqlx::query("UPDATE consolidation_jobs SET worker_id = 'another-worker', heartbeat_at = now() WHERE id = $1")
        .bind(command.job_id)
        .execute(&env.db)
        .await
        .unwrap();
    let settled = tokio::time::timeout(WAIT, running).await.expect("the run stopped").unwrap();

    assert_eq!(settled, Settled::Abandoned);
    let job = jobs::get(&env.db, command.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, "running", "untouched");
    assert_eq!(job.worker_id.as_deref(), Some("another-worker"), "untouched");
    let mut consumer = consumer;
    assert_eq!(consumer.info().await.unwrap().num_ack_pending, 1, "the delivery was neither acked nor nakked");
    assert_eq!(consolidated(&env, project_id).await, 0, "nothing was applied");
}
