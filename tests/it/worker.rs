//! The worker end to end on the real NATS and PostgreSQL.

use std::{collections::HashSet, sync::Arc, time::Duration};

use consolidator::config::RetentionConfig;
use consolidator::llm::{OpenAiConfig, OpenAiSynthesizer};
use consolidator::{
    bus::{
        CommandKind,
        messages::{CheckCommand, DeadLetter, SCHEMA_VERSION},
    },
    domain::{MemoryType, NewMemory},
    engine::{
        merge::embed::CentroidEmbedder,
        synthesis::{ExtractiveSynthesizer, SynthesisDraft, SynthesisError, Synthesizer, TopicView},
    },
    store::{jobs, memories, projects},
};
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

async fn count(env: &TestEnv, sql: &str, project_id: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(project_id).fetch_one(&env.db).await.unwrap()
}

async fn consolidated(env: &TestEnv, project_id: Uuid) -> i64 {
    count(env, "SELECT count(*) FROM task_memories WHERE project_id = $1 AND memory_type = 'consolidated'", project_id)
        .await
}

#[tokio::test]
async fn a_trigger_runs_to_completed_with_rows_changes_and_events() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let scenario = Scenario::new();
    fixtures::insert(&env.db, project.id, &scenario.all()).await;
    let worker = env.spawn_worker();
    let command = trigger(project.id, serde_json::json!({}));

    publish_trigger(&env.bus, &command).await;

    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
    assert_eq!(job.memories_merged, 5, "the triple and the pair are merged");
    assert_eq!(job.memories_archived, 1, "the stale memory is archived");
    assert_eq!(job.summaries_created, 1, "the merged triple and its related learning are a topic");
    assert_eq!(job.memories_before, Some(8));
    assert_eq!(job.memories_after, Some(8 - 5 - 1 + 2 + 1));
    assert_eq!(job.progress, 1.0);

    let consolidated = consolidated(&env, project.id).await;
    assert_eq!(consolidated, 2);
    let sources = memories::get(&env.db, scenario.triple[1].id).await.unwrap().unwrap();
    assert!(sources.is_duplicate);
    let merged = memories::get(&env.db, sources.duplicate_of.unwrap()).await.unwrap().unwrap();
    let mut from = merged.consolidated_from.clone().unwrap();
    from.sort();
    let mut triple: Vec<Uuid> = scenario.triple.iter().map(|m| m.id).collect();
    triple.sort();
    assert_eq!(from, triple);
    assert!(merged.tags.contains(&"test".to_owned()));
    let stale = memories::get(&env.db, scenario.stale.id).await.unwrap().unwrap();
    assert_eq!((stale.is_archived, stale.archive_reason.map(|reason| reason.as_str())), (true, Some("staleness")));

    let audit = consolidator::store::changes::for_job(&env.db, job.id, None, None, 1000).await.unwrap();
    assert_eq!(audit.iter().filter(|c| c.operation == "merge" && c.previous_state.is_some()).count(), 5);
    assert_eq!(audit.iter().filter(|c| c.operation == "archive").count(), 1);
    assert_eq!(audit.iter().filter(|c| c.operation == "summarize").count(), 1);
    assert_eq!(audit.iter().filter(|c| c.operation == "promote").count() as i32, job.memories_promoted);

    // The cost report: phases, throughput, bytes; no model endpoint, so no calls.
    let cost = &job.result.as_ref().unwrap().0["cost"];
    let ms = |key: &str| cost[key].as_f64().unwrap_or_else(|| panic!("{key} in {cost}"));
    assert!(ms("loading_ms") > 0.0 && ms("planning_ms") > 0.0 && ms("applying_ms") > 0.0, "{cost}");
    assert!(ms("total_ms") + 0.2 >= ms("loading_ms") + ms("planning_ms") + ms("applying_ms"), "{cost}");
    assert!(ms("memories_per_second") > 0.0, "{cost}");
    let dim = scenario.triple[0].embedding.as_ref().unwrap().len() as u64;
    assert!(cost["bytes_read"].as_u64().unwrap() >= 8 * 4 * dim, "every embedding was read once: {cost}");
    assert!(cost["bytes_written"].as_u64().unwrap() >= 3 * 4 * dim, "three memories created: {cost}");
    assert_eq!(cost["model"], serde_json::json!({"calls": 0, "tokens": 0}));

    let events = job_events(&env.bus, project.id, job.id, WAIT).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"queued"));
    assert!(kinds.contains(&"started") && kinds.contains(&"progress"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"completed"));
    let completed = events.last().unwrap();
    assert_eq!(completed.counters.as_ref().unwrap().memories_merged, 5);
    worker.stop().await;
}

#[tokio::test]
async fn a_worker_reads_no_embedding_twice_and_an_edited_one_again() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let scenario = Scenario::new();
    fixtures::insert(&env.db, project.id, &scenario.all()).await;
    let dim = scenario.triple[0].embedding.as_ref().unwrap().len() as u64;
    let worker = env.spawn_worker();
    let mut bytes_read = Vec::new();
    for round in 0..4 {
        if round == 3 {
            // An edit moves the memory's version: its embedding is read again, never served stale.
            sqlx::query("UPDATE task_memories SET context_embedding = context_embedding WHERE id = $1")
                .bind(scenario.unrelated[0].id)
                .execute(&env.db)
                .await
                .unwrap();
        }
        let command = trigger(project.id, serde_json::json!({"mode": "full"}));
        publish_trigger(&env.bus, &command).await;
        let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
        bytes_read.push(job.result.as_ref().unwrap().0["cost"]["bytes_read"].as_u64().unwrap());
    }
    assert!(bytes_read[0] >= 8 * 4 * dim, "the first job reads every embedding: {bytes_read:?}");
    // The second reads the embeddings of what the first created (consolidated memories,
    // syntheses, playbook entries); the third and fourth read the same texts, and the fourth
    // exactly one embedding more: the third read none.
    assert!(bytes_read[2] < bytes_read[1], "{bytes_read:?}");
    assert_eq!(
        bytes_read[3] - bytes_read[2],
        4 * dim,
        "only the edited memory's embedding is read again: {bytes_read:?}"
    );
    worker.stop().await;
}

async fn run_job(env: &TestEnv, project_id: Uuid, options: serde_json::Value) -> jobs::Job {
    let command = trigger(project_id, options);
    publish_trigger(&env.bus, &command).await;
    wait_for_status(env, command.job_id, "completed", WAIT).await
}

#[tokio::test]
async fn a_worker_keeping_a_projects_rows_sees_reuses_and_deletions_made_between_jobs() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(400);
    let note = |axis: usize| {
        let summary = format!("Note {axis} about its own subject.");
        fixtures::memory(&summary, MemoryType::Learning, fixtures::direction(axis * 2, 0.0))
    };
    let stale: Vec<NewMemory> = (0..3).map(|axis| fixtures::stale(note(axis), long_ago)).collect();
    let fresh = note(3);
    fixtures::insert(&env.db, project.id, &[stale.clone(), vec![fresh.clone()]].concat()).await;
    let worker = env.spawn_worker();
    // The first job reads every row and archives nothing; the worker keeps the rows.
    let first = run_job(&env, project.id, serde_json::json!({"mode": "full", "archive": false})).await;
    assert_eq!(first.memories_before, Some(4));
    // Between jobs an agent reuses one stale memory (no version change) and one is deleted.
    sqlx::query("UPDATE task_memories SET reused_count = 3, last_reused_at = now() WHERE id = $1")
        .bind(stale[0].id)
        .execute(&env.db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM task_memories WHERE id = $1").bind(stale[1].id).execute(&env.db).await.unwrap();
    let second = run_job(&env, project.id, serde_json::json!({"mode": "full"})).await;
    assert_eq!(second.memories_before, Some(3), "the deleted memory is not planned");
    let archived: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM task_memories WHERE project_id = $1 AND is_archived ORDER BY id")
            .bind(project.id)
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(archived, vec![stale[2].id], "the reused memory is no longer stale; the untouched one is archived");
    worker.stop().await;
}

/// An OpenAI-compatible chat endpoint on 127.0.0.1:0 answering every request with a valid
/// synthesis and `usage.total_tokens` = `tokens`; returns its base URL.
fn chat_endpoint(tokens: u64) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}/v1", listener.local_addr().expect("address"));
    let content = r#"{"text":"Raise the pool size [1]; the related note says why [2].","confidence":0.9}"#;
    let body = serde_json::json!({
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": tokens - 20, "completion_tokens": 20, "total_tokens": tokens}
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut request = vec![0u8; length];
            let _ = reader.read_exact(&mut request);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(answer.as_bytes());
        }
    });
    url
}

#[tokio::test]
async fn a_jobs_model_calls_and_tokens_are_in_its_cost() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let model = OpenAiConfig {
        base_url: chat_endpoint(120),
        model: "test-model".to_owned(),
        api_key: None,
        timeout: Duration::from_secs(10),
        max_retries: 0,
    };
    let worker = env.worker().with_models(Arc::new(OpenAiSynthesizer::new(model)), Arc::new(CentroidEmbedder));
    let running = env.spawn_worker_with(worker);
    let mut usage = Vec::new();
    for _ in 0..2 {
        let command = trigger(project.id, serde_json::json!({"dry_run": true}));
        publish_trigger(&env.bus, &command).await;
        let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
        assert_eq!(job.summaries_created, 1, "the scenario's topic is synthesized by the model");
        usage.push(job.result.as_ref().unwrap().0["cost"]["model"].clone());
    }
    // Each job counts its own calls: the second does not carry the first's.
    assert_eq!(usage[0], serde_json::json!({"calls": 1, "tokens": 120}), "{usage:?}");
    assert_eq!(usage[1], usage[0], "{usage:?}");
    running.stop().await;
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_reports_the_plan() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.spawn_worker();
    let command = trigger(project.id, serde_json::json!({"dry_run": true}));

    publish_trigger(&env.bus, &command).await;

    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
    assert_eq!(job.memories_merged, 5);
    assert_eq!(projects::active_memory_count(&env.db, project.id).await.unwrap(), 8);
    assert_eq!(count(&env, "SELECT count(*) FROM consolidation_changes WHERE project_id = $1", project.id).await, 0);
    let plan = &job.result.as_ref().unwrap().0["plan"];
    assert!(!plan.to_string().contains("\"embedding\""), "a bounded plan: no embeddings");
    assert_eq!(plan["truncated"], false);
    assert_eq!(plan["merges"].as_array().unwrap().len(), 2);
    let cost = &job.result.as_ref().unwrap().0["cost"];
    assert_eq!((cost["applying_ms"].as_f64(), cost["bytes_written"].as_u64()), (Some(0.0), Some(0)), "{cost}");
    let events = job_events(&env.bus, project.id, job.id, WAIT).await;
    let last_result = serde_json::to_value(events.last().unwrap().result.as_ref().unwrap()).unwrap();
    assert!(last_result["plan"]["clusters"].is_array());
    worker.stop().await;
}

#[tokio::test]
async fn the_same_command_delivered_twice_applies_once() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;
    // The same idempotency key is dropped by JetStream; a different key gets through and must
    // be absorbed by the job state.
    publish_trigger(&env.bus, &command).await;
    env.bus.publish_command(CommandKind::Trigger, "another-key", &command).await.unwrap();

    let worker = env.spawn_worker();
    wait_for_status(&env, command.job_id, "completed", WAIT).await;
    let drained = eventually(WAIT, || async {
        let info =
            env.bus.jetstream.get_stream(env.bus.prefix.commands_stream()).await.ok()?.cached_info().state.messages;
        (info == 0).then_some(())
    })
    .await;
    worker.stop().await;

    assert!(drained.is_some(), "both deliveries were consumed");
    let consolidated = consolidated(&env, project.id).await;
    assert_eq!(consolidated, 2);
    let merges = count(
        &env,
        "SELECT count(*) FROM consolidation_changes WHERE project_id = $1 AND operation = 'merge'",
        project.id,
    )
    .await;
    assert_eq!(merges, 7);
    assert_eq!(jobs::get(&env.db, command.job_id).await.unwrap().unwrap().attempts, 1);
}

#[tokio::test]
async fn two_workers_share_many_projects_and_run_each_job_exactly_once() {
    let env = TestEnv::new().await;
    let mut commands = Vec::new();
    for _ in 0..12 {
        let project = fixtures::project(&env.db, 1).await;
        fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
        commands.push(trigger(project.id, serde_json::json!({})));
    }
    let one_at_a_time = |env: &TestEnv| {
        let mut config = env.worker_config();
        config.worker_concurrency = 1;
        consolidator::worker::Worker::new(env.db.clone(), env.bus.clone(), config, RetentionConfig::default())
    };
    let first = env.spawn_worker_with(one_at_a_time(&env));
    let second = env.spawn_worker_with(one_at_a_time(&env));

    for command in &commands {
        publish_trigger(&env.bus, command).await;
    }

    let mut workers = HashSet::new();
    for command in &commands {
        let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
        assert_eq!(job.attempts, 1);
        assert_eq!(job.memories_merged, 5);
        workers.insert(job.worker_id.unwrap());
    }
    first.stop().await;
    second.stop().await;
    assert_eq!(workers.len(), 2, "both workers took jobs");
    let total = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM task_memories WHERE memory_type = 'consolidated'")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(total, 24);
}

/// Extractive synthesis, slowed down so a test can kill the worker in the middle of a job.
struct SlowSynthesizer(Duration);

impl Synthesizer for SlowSynthesizer {
    fn name(&self) -> &str {
        "slow-extractive"
    }

    fn synthesize(&self, view: &TopicView<'_>) -> Result<SynthesisDraft, SynthesisError> {
        std::thread::sleep(self.0);
        ExtractiveSynthesizer.synthesize(view)
    }
}

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_and_another_finishes_it_once() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let slow = env.worker().with_models(Arc::new(SlowSynthesizer(Duration::from_secs(3))), Arc::new(CentroidEmbedder));
    let doomed = env.spawn_worker_with(slow);
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;
    wait_for_status(&env, command.job_id, "running", WAIT).await;

    doomed.handle.abort();
    let survivor = env.spawn_worker();

    let job = wait_for_status(&env, command.job_id, "completed", Duration::from_secs(60)).await;
    survivor.stop().await;
    assert_eq!(job.attempts, 2, "the survivor took the job over");
    assert_ne!(job.worker_id, doomed.worker.worker_id.clone().into());
    let consolidated = consolidated(&env, project.id).await;
    assert_eq!(consolidated, 2);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM consolidation_changes WHERE project_id = $1 AND operation = 'archive'",
            project.id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_poison_command_is_dead_lettered_and_the_consumer_keeps_going() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.spawn_worker();
    let garbage = br#"{"schema_version":1,"job_id":"not-a-uuid"}"#;
    env.bus
        .jetstream
        .publish(env.bus.prefix.command(CommandKind::Trigger), garbage.as_slice().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let missing_project = trigger(Uuid::new_v4(), serde_json::json!({}));
    publish_trigger(&env.bus, &missing_project).await;
    let bad_options = trigger(project.id, serde_json::json!({"similarity_threshold": 2.0}));
    publish_trigger(&env.bus, &bad_options).await;
    let good = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &good).await;

    wait_for_status(&env, good.job_id, "completed", WAIT).await;
    let letters =
        events_until::<DeadLetter>(&env.bus, env.bus.prefix.dead_letter("trigger"), Duration::from_secs(10), |_| false)
            .await;
    worker.stop().await;

    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters.iter().any(|(_, l)| l.payload.as_bytes() == garbage && l.reason.contains("not valid JSON")));
    assert!(letters.iter().any(|(_, l)| l.reason.contains("does not exist")));
    assert!(letters.iter().any(|(_, l)| l.reason.contains("similarity_threshold")));
    let failed = jobs::get(&env.db, bad_options.job_id).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.error_message.unwrap().contains("similarity_threshold"));
}

#[tokio::test]
async fn a_check_starts_a_threshold_job_only_above_the_threshold() {
    let env = TestEnv::new().await;
    let over = fixtures::project(&env.db, 3).await;
    let under = fixtures::project(&env.db, 100).await;
    fixtures::insert(&env.db, over.id, &Scenario::new().all()).await;
    fixtures::insert(&env.db, under.id, &Scenario::new().all()).await;
    let worker = env.spawn_worker();

    for project_id in [over.id, under.id] {
        let check = CheckCommand { schema_version: SCHEMA_VERSION, project_id, requested_by: "agent".to_owned() };
        env.bus.publish_command(CommandKind::Check, &Uuid::new_v4().to_string(), &check).await.unwrap();
    }

    let done = eventually(WAIT, || async {
        let history =
            jobs::history(&env.db, over.id, &jobs::HistoryFilter { limit: 5, ..Default::default() }).await.ok()?;
        history.into_iter().find(|job| job.status == "completed")
    })
    .await
    .expect("a threshold job completed");
    worker.stop().await;
    assert_eq!(done.trigger_type, "threshold");
    assert!(
        jobs::history(&env.db, under.id, &jobs::HistoryFilter { limit: 5, ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
}

/// id, is_duplicate, duplicate_of, is_archived, archived_at, archive_reason, execution_summary, reused_count
type TouchedRow = (Uuid, bool, Option<Uuid>, bool, Option<chrono::DateTime<chrono::Utc>>, Option<String>, String, i32);

struct Snapshot(Vec<TouchedRow>);

async fn touched_columns(env: &TestEnv, project_id: Uuid) -> Snapshot {
    Snapshot(
        sqlx::query_as(
            "SELECT id, is_duplicate, duplicate_of, is_archived, archived_at, archive_reason, execution_summary, reused_count
               FROM task_memories WHERE project_id = $1 AND archive_reason IS DISTINCT FROM 'rolled_back' ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&env.db)
        .await
        .unwrap(),
    )
}

async fn completed_job(env: &TestEnv) -> (Uuid, Uuid, Scenario, Snapshot) {
    let project = fixtures::project(&env.db, 1).await;
    let scenario = Scenario::new();
    fixtures::insert(&env.db, project.id, &scenario.all()).await;
    let before = touched_columns(env, project.id).await;
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;
    wait_for_status(env, command.job_id, "completed", WAIT).await;
    (project.id, command.job_id, scenario, before)
}

#[tokio::test]
async fn a_rollback_restores_every_touched_column_exactly_and_keeps_the_audit_trail() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let (project_id, job_id, _, before) = completed_job(&env).await;
    let job_changes = count(&env, "SELECT count(*) FROM consolidation_changes WHERE project_id = $1", project_id).await;

    let result = rollback(&env, project_id, job_id, Uuid::new_v4()).await;

    assert!(result.success, "{result:?}");
    assert_eq!(result.memories_restored, 6, "five sources and one archived memory");
    assert_eq!(result.memories_deleted, 3, "two consolidated memories and one synthesis");
    assert_eq!(touched_columns(&env, project_id).await.0, before.0);
    let active_entries =
        count(&env, "SELECT count(*) FROM playbook_entries WHERE project_id = $1 AND is_active", project_id).await;
    assert_eq!(active_entries, 0);
    let after_changes =
        count(&env, "SELECT count(*) FROM consolidation_changes WHERE project_id = $1", project_id).await;
    assert_eq!(after_changes, job_changes + 9, "job rows kept, one rollback row per restored or deleted memory");
    assert!(jobs::get(&env.db, job_id).await.unwrap().unwrap().rolled_back_at.is_some());

    let again = rollback(&env, project_id, job_id, Uuid::new_v4()).await;
    assert!(again.success);
    assert_eq!((again.memories_restored, again.memories_deleted), (6, 3), "the first result is returned");
    assert!(again.warnings[0].contains("already rolled back"));
    assert_eq!(touched_columns(&env, project_id).await.0, before.0);
    worker.stop().await;
}

#[tokio::test]
async fn a_rollback_refuses_when_a_merged_memory_changed_later() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let (project_id, job_id, scenario, _) = completed_job(&env).await;
    // A change by hand that still stands: the merged source is made active again.
    let mut conn = env.db.acquire().await.unwrap();
    memories::unmark_duplicates(&mut conn, &[scenario.triple[0].id]).await.unwrap();

    let result = rollback(&env, project_id, job_id, Uuid::new_v4()).await;

    worker.stop().await;
    assert!(!result.success);
    assert_eq!(result.event, "refused");
    assert_eq!(result.conflicts, vec![scenario.triple[0].id]);
    assert!(result.error.unwrap().contains(&scenario.triple[0].id.to_string()));
    assert!(memories::get(&env.db, scenario.triple[1].id).await.unwrap().unwrap().is_duplicate, "nothing restored");
}

#[tokio::test]
async fn a_rollback_refuses_outside_the_window_and_for_unknown_jobs() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker();
    let (project_id, job_id, _, _) = completed_job(&env).await;
    sqlx::query("UPDATE consolidation_jobs SET completed_at = now() - interval '8 days' WHERE id = $1")
        .bind(job_id)
        .execute(&env.db)
        .await
        .unwrap();

    let late = rollback(&env, project_id, job_id, Uuid::new_v4()).await;
    let unknown = rollback(&env, Uuid::nil(), Uuid::new_v4(), Uuid::new_v4()).await;

    worker.stop().await;
    assert_eq!(late.event, "refused");
    assert!(late.error.unwrap().contains("outside the 7-day rollback window"));
    assert_eq!(unknown.event, "refused");
    assert!(unknown.error.unwrap().contains("has no consolidation job"));
}

#[tokio::test]
async fn a_job_survives_a_nats_server_restart() {
    let nats = crate::private_nats::PrivateNats::start().await;
    let env = TestEnv::with_nats_url(&nats.url).await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let slow = env.worker().with_models(Arc::new(SlowSynthesizer(Duration::from_secs(2))), Arc::new(CentroidEmbedder));
    let worker = env.spawn_worker_with(slow);
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;
    wait_for_status(&env, command.job_id, "running", WAIT).await;

    let nats = nats.restart().await;

    let job = wait_for_status(&env, command.job_id, "completed", Duration::from_secs(90)).await;
    assert_eq!(job.memories_merged, 5);
    let events = job_events(&env.bus, project.id, job.id, Duration::from_secs(30)).await;
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("completed"));
    worker.stop().await;
    drop(nats);
}

#[tokio::test]
async fn a_long_consolidation_does_not_delay_a_rollback_queued_behind_it() {
    let env = TestEnv::new().await;
    let quick = env.spawn_worker();
    let (project_id, job_id, _, _) = completed_job(&env).await;
    quick.stop().await;
    let long_project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, long_project.id, &Scenario::new().all()).await;
    let mut config = env.worker_config();
    config.worker_concurrency = 1;
    let slow = consolidator::worker::Worker::new(env.db.clone(), env.bus.clone(), config, RetentionConfig::default())
        .with_models(Arc::new(SlowSynthesizer(Duration::from_secs(8))), Arc::new(CentroidEmbedder));
    let worker = env.spawn_worker_with(slow);
    let long = trigger(long_project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &long).await;
    wait_for_status(&env, long.job_id, "running", WAIT).await;

    let result = rollback(&env, project_id, job_id, Uuid::new_v4()).await;

    assert!(result.success, "{result:?}");
    assert_eq!(jobs::get(&env.db, long.job_id).await.unwrap().unwrap().status, "running", "the rollback did not wait");
    wait_for_status(&env, long.job_id, "completed", WAIT).await;
    worker.stop().await;
}

#[tokio::test]
async fn a_trigger_for_a_busy_project_waits_for_the_active_job_instead_of_being_lost() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let slow = env.worker().with_models(Arc::new(SlowSynthesizer(Duration::from_secs(2))), Arc::new(CentroidEmbedder));
    let worker = env.spawn_worker_with(slow);
    let first = trigger(project.id, serde_json::json!({}));
    let second = trigger(project.id, serde_json::json!({}));

    publish_trigger(&env.bus, &first).await;
    wait_for_status(&env, first.job_id, "running", WAIT).await;
    publish_trigger(&env.bus, &second).await;

    let first_job = wait_for_status(&env, first.job_id, "completed", WAIT).await;
    let second_job = wait_for_status(&env, second.job_id, "completed", WAIT).await;
    worker.stop().await;
    assert_eq!(first_job.memories_merged, 5);
    assert_eq!(second_job.memories_merged, 0, "the first job left nothing to merge");
    assert!(second_job.started_at.unwrap() >= first_job.completed_at.unwrap());
}

#[tokio::test]
async fn a_trigger_for_a_disabled_project_fails_its_job_and_is_dead_lettered() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let off = projects::ConsolidationSettings { enabled: false, threshold: 1, options: serde_json::json!({}) };
    projects::update_settings(&env.db, project.id, &off).await.unwrap();
    let worker = env.spawn_worker();
    let command = trigger(project.id, serde_json::json!({}));

    publish_trigger(&env.bus, &command).await;

    let job = wait_for_status(&env, command.job_id, "failed", WAIT).await;
    let letters = events_until::<DeadLetter>(&env.bus, env.bus.prefix.dead_letter("trigger"), WAIT, |_| true).await;
    worker.stop().await;
    assert!(job.error_message.unwrap().contains("disabled"));
    assert_eq!(letters.len(), 1);
    assert_eq!(projects::active_memory_count(&env.db, project.id).await.unwrap(), 8, "nothing consolidated");
}

#[tokio::test]
async fn the_memories_a_synthesis_stands_for_at_least_are_configurable() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let mut config = env.worker_config();
    // The one topic (the merged triple and the related learning) stands for four memories.
    config.synthesis_min_cluster = 5;
    let worker = env.spawn_worker_with(consolidator::worker::Worker::new(
        env.db.clone(),
        env.bus.clone(),
        config,
        RetentionConfig::default(),
    ));
    let command = trigger(project.id, serde_json::json!({}));

    publish_trigger(&env.bus, &command).await;

    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;
    worker.stop().await;
    assert_eq!(job.summaries_created, 0, "a topic of four memories is below five");
}

#[tokio::test]
async fn a_job_whose_project_exceeds_the_workers_memory_budget_fails_at_once_naming_it() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let mut config = env.worker_config();
    // Below the estimate's fixed part: no project fits.
    config.worker_memory_budget_mb = Some(16);
    let worker = env.spawn_worker_with(consolidator::worker::Worker::new(
        env.db.clone(),
        env.bus.clone(),
        config,
        RetentionConfig::default(),
    ));
    let command = trigger(project.id, serde_json::json!({}));

    publish_trigger(&env.bus, &command).await;

    let job = wait_for_status(&env, command.job_id, "failed", WAIT).await;
    let letters = events_until::<DeadLetter>(&env.bus, env.bus.prefix.dead_letter("trigger"), WAIT, |_| true).await;
    worker.stop().await;
    let error = job.error_message.unwrap_or_default();
    assert!(error.contains("WORKER_MEMORY_BUDGET_MB (16 MiB)") && error.contains("holds 8 memories"), "{error}");
    assert_eq!(letters.len(), 1);
    assert_eq!(job.attempts, 0, "never claimed");
    assert_eq!(projects::active_memory_count(&env.db, project.id).await.unwrap(), 8, "nothing consolidated");
}
