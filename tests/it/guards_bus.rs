//! Guards through the bus (DESIGN.md §11): the value guard's reviews and supersessions, the
//! blast-radius limit and `cmd.cancel`, each run by a real worker.

use std::time::Duration;

use consolidator::{
    bus::{
        CommandKind,
        messages::{CancelCommand, DeadLetter, JobEvent, SCHEMA_VERSION},
    },
    store::{
        changes,
        jobs::{self, NewJob, TriggerType},
        memories,
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

async fn count(env: &TestEnv, sql: &str, project_id: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(project_id).fetch_one(&env.db).await.expect("count")
}

async fn open_reviews(env: &TestEnv, project_id: Uuid) -> i64 {
    count(env, "SELECT count(*) FROM consolidation_reviews WHERE project_id = $1 AND status = 'open'", project_id).await
}

async fn terminal_event(env: &TestEnv, project_id: Uuid, job_id: Uuid) -> JobEvent {
    let filter = env.bus.prefix.job_events_of(project_id, job_id);
    let events = events_until::<JobEvent>(&env.bus, filter, WAIT, |e| {
        matches!(e.event.as_str(), "completed" | "failed" | "cancelled")
    })
    .await;
    events.into_iter().map(|(_, e)| e).next_back().expect("a job event")
}

#[tokio::test]
async fn a_changed_address_is_never_merged_and_opens_one_review_that_a_rerun_does_not_repeat() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let (paraphrases, newer) = router_addresses();
    fixtures::insert(&env.db, project.id, &[paraphrases.clone(), vec![newer.clone()]].concat()).await;
    let worker = env.spawn_worker();

    let first = trigger(project.id, json!({}));
    publish_trigger(&env.bus, &first).await;
    let job = wait_for_status(&env, first.job_id, "completed", WAIT).await;

    assert_eq!(job.memories_merged, 2, "the two paraphrases merge");
    let kept = memories::get(&env.db, newer.id).await.unwrap().unwrap();
    assert!(!kept.is_duplicate && !kept.is_archived, "the new address stays on its own");
    let result = job.result.clone().expect("result").0;
    assert_eq!(result["guards"]["value_guard"]["held_pairs"], 2, "{result}");
    assert_eq!(result["guards"]["value_guard"]["reviews_opened"], 1, "both held pairs name the merged memory");
    let review = &result["reviews"][0];
    assert_eq!(review["newer_memory_id"], newer.id.to_string());
    assert_eq!(review["difference"]["left"], json!(["192.168.7.1"]));
    assert_eq!(review["difference"]["right"], json!(["192.168.9.1"]));
    let event = terminal_event(&env, project.id, job.id).await;
    assert_eq!(event.event, "completed");
    let event_result = serde_json::to_value(event.result.expect("result in the event")).expect("json");
    assert_eq!(event_result["reviews"].as_array().map(Vec::len), Some(1));
    assert_eq!(open_reviews(&env, project.id).await, 1);
    let (older_id, older_version): (Uuid, i64) =
        sqlx::query_as("SELECT older_memory_id, older_version FROM consolidation_reviews WHERE project_id = $1")
            .bind(project.id)
            .fetch_one(&env.db)
            .await
            .unwrap();
    let merged = memories::get(&env.db, older_id).await.unwrap().expect("the review names the merged memory");
    assert_eq!((merged.memory_type.as_str(), merged.version), ("consolidated", older_version));

    let second = trigger(project.id, json!({"mode": "full"}));
    publish_trigger(&env.bus, &second).await;
    let again = wait_for_status(&env, second.job_id, "completed", WAIT).await;
    worker.stop().await;

    let result = again.result.expect("result").0;
    assert_eq!(result["guards"]["value_guard"]["reviews_opened"], 0, "{result}");
    assert_eq!(result["guards"]["value_guard"]["reviews_refreshed"], 1, "the open review is kept up to date");
    assert_eq!(open_reviews(&env, project.id).await, 1);
    assert!(!memories::get(&env.db, newer.id).await.unwrap().unwrap().is_duplicate);
}

#[tokio::test]
async fn value_guard_auto_supersedes_the_older_memory_and_a_rollback_restores_it() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let (paraphrases, newer) = router_addresses();
    let older = paraphrases[0].clone();
    fixtures::insert(&env.db, project.id, &[older.clone(), newer.clone()]).await;
    let worker = env.spawn_worker();

    let command = trigger(project.id, json!({"value_guard": "auto"}));
    publish_trigger(&env.bus, &command).await;
    let job = wait_for_status(&env, command.job_id, "completed", WAIT).await;

    let hidden = memories::get(&env.db, older.id).await.unwrap().unwrap();
    assert_eq!((hidden.is_archived, hidden.archive_reason.map(|reason| reason.as_str())), (true, Some("superseded")));
    assert!(!hidden.is_duplicate, "superseded, not merged");
    assert_eq!(changes::superseded_by(&env.db, older.id).await.unwrap(), Some(newer.id));
    assert_eq!(job.memories_merged, 0);
    let audit = changes::for_job(&env.db, job.id, Some(consolidator::domain::ChangeOperation::Archive), None, 100)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    let new_state = audit[0].new_state.as_ref().expect("new state").0.clone();
    assert_eq!(new_state["superseded_by"], newer.id.to_string());
    assert_eq!(job.result.expect("result").0["guards"]["value_guard"]["superseded"], 1);

    let undone = rollback(&env, project.id, job.id, Uuid::new_v4()).await;
    worker.stop().await;
    assert!(undone.success, "{undone:?}");
    let restored = memories::get(&env.db, older.id).await.unwrap().unwrap();
    assert!(!restored.is_archived && restored.archive_reason.is_none());
}

#[tokio::test]
async fn a_plan_beyond_the_blast_radius_fails_naming_share_and_limit_and_changes_nothing() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.spawn_worker();

    let command = trigger(project.id, json!({"max_changed_share": 0.6}));
    publish_trigger(&env.bus, &command).await;
    let job = wait_for_status(&env, command.job_id, "failed", WAIT).await;
    let event = terminal_event(&env, project.id, job.id).await;
    worker.stop().await;

    let error = job.error_message.expect("error");
    assert!(error.contains("6 of 8 active memories") && error.contains("share 0.750"), "{error}");
    assert!(error.contains("max_changed_share 0.6"), "{error}");
    let result = job.result.expect("the plan stays readable").0;
    assert_eq!(result["plan"]["merges"].as_array().map(Vec::len), Some(2), "{result}");
    assert_eq!(result["guards"]["blast_radius"]["exceeded"], true);
    assert!(!result.to_string().contains("\"embedding\""), "bounded like a dry run's plan");
    let changed = "SELECT count(*) FROM task_memories WHERE project_id = $1 AND (is_duplicate OR is_archived OR memory_type IN ('consolidated', 'synthesis'))";
    assert_eq!(count(&env, changed, project.id).await, 0);
    assert_eq!(count(&env, "SELECT count(*) FROM consolidation_changes WHERE project_id = $1", project.id).await, 0);
    assert_eq!((event.event.as_str(), event.error.as_deref()), ("failed", Some(error.as_str())));
}

async fn publish_cancel(env: &TestEnv, project_id: Uuid, job_id: Uuid, requested_by: &str) {
    let command =
        CancelCommand { schema_version: SCHEMA_VERSION, project_id, job_id, requested_by: requested_by.to_owned() };
    env.bus.publish_command(CommandKind::Cancel, &Uuid::new_v4().to_string(), &command).await.expect("published");
}

#[tokio::test]
async fn cmd_cancel_ends_a_pending_job_and_dead_letters_a_cancel_of_an_ended_or_unknown_job_or_a_malformed_one() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    let new = NewJob {
        id: Uuid::new_v4(),
        project_id: project.id,
        trigger_type: TriggerType::Manual,
        options: json!({}),
        triggered_by: "tester".to_owned(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(&env.db, &new).await.expect("pending job");
    let worker = env.spawn_worker();

    publish_cancel(&env, project.id, new.id, "ops-bot").await;
    let job = wait_for_status(&env, new.id, "cancelled", WAIT).await;
    assert_eq!(job.cancel_requested_by.as_deref(), Some("ops-bot"));
    assert_eq!(terminal_event(&env, project.id, new.id).await.event, "cancelled");
    assert_eq!(jobs::active_for_project(&env.db, project.id).await.unwrap(), None, "the project is free again");

    publish_cancel(&env, project.id, new.id, "someone-else").await;
    publish_cancel(&env, project.id, Uuid::new_v4(), "ops-bot").await;
    let garbage = br#"{"schema_version":1,"job_id":42}"#;
    let subject = env.bus.prefix.command(CommandKind::Cancel);
    env.bus.jetstream.publish(subject, garbage.as_slice().into()).await.unwrap().await.unwrap();
    let letters =
        events_until::<DeadLetter>(&env.bus, env.bus.prefix.dead_letter("cancel"), Duration::from_secs(15), |_| false)
            .await;
    worker.stop().await;

    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters.iter().any(|(_, l)| l.reason.contains("already ended (cancelled)")), "{letters:?}");
    assert!(letters.iter().any(|(_, l)| l.reason.contains("has no job")), "{letters:?}");
    assert!(letters.iter().any(|(_, l)| l.payload.as_bytes() == garbage && l.reason.contains("not valid JSON")));
}

#[tokio::test]
async fn a_job_that_finds_a_cancel_request_at_a_phase_boundary_ends_cancelled_and_changes_nothing() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let command = trigger(project.id, json!({}));
    let new = NewJob {
        id: command.job_id,
        project_id: project.id,
        trigger_type: TriggerType::Manual,
        options: json!({}),
        triggered_by: "tester".to_owned(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(&env.db, &new).await.expect("job");
    // The request a gateway records for a running job, here before the worker reaches its first
    // boundary.
    sqlx::query("UPDATE consolidation_jobs SET cancel_requested_at = now(), cancel_requested_by = 'ops' WHERE id = $1")
        .bind(new.id)
        .execute(&env.db)
        .await
        .unwrap();
    let worker = env.spawn_worker();
    publish_trigger(&env.bus, &command).await;
    let job = wait_for_status(&env, new.id, "cancelled", WAIT).await;
    let event = terminal_event(&env, project.id, new.id).await;
    worker.stop().await;

    assert_eq!(job.phase, "cancelled");
    assert!(job.error_message.unwrap().contains("cancelled by ops before loading"));
    assert_eq!(event.event, "cancelled");
    let changed = "SELECT count(*) FROM task_memories WHERE project_id = $1 AND (is_duplicate OR is_archived OR memory_type IN ('consolidated', 'synthesis'))";
    assert_eq!(count(&env, changed, project.id).await, 0);
}
