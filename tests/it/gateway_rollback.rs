//! Gateway: rollback requests, the quick refusals, the bounded wait, and rollback status.

use consolidator::{
    bus::{CommandKind, messages::RollbackCommand},
    store::{
        jobs::{self, TriggerType},
        rollbacks,
    },
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

#[tokio::test]
async fn rollback_is_refused_at_once_for_unknown_unfinished_dry_run_and_old_jobs() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let failed = finished_job(&gateway, project, TriggerType::Manual, false, Value::Null).await;
    let dry_run = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": true})).await;
    let old = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    sqlx::query("UPDATE consolidation_jobs SET completed_at = now() - interval '8 days' WHERE id = $1")
        .bind(old.id)
        .execute(&gateway.env.db)
        .await
        .expect("aged");
    let accepted = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    let pending = ok(accepted.expect("sent"), StatusCode::ACCEPTED).await["job_id"].clone();

    error(
        post_rollback(&gateway, json!({"consolidation_id": Uuid::new_v4()})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let message =
        error(post_rollback(&gateway, json!({"consolidation_id": pending})).await, StatusCode::CONFLICT, "conflict")
            .await;
    assert!(message.contains("pending"), "{message}");
    let message =
        error(post_rollback(&gateway, json!({"job_id": failed.id})).await, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("failed"), "{message}");
    let message =
        error(post_rollback(&gateway, json!({"consolidation_id": dry_run.id})).await, StatusCode::CONFLICT, "conflict")
            .await;
    assert!(message.contains("dry run"), "{message}");
    let message = error(
        post_rollback(&gateway, json!({"consolidation_id": old.id})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(message.contains("7-day rollback window"), "{message}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM consolidation_rollbacks")
        .fetch_one(&gateway.env.db)
        .await
        .expect("count");
    assert_eq!(rows, 0, "a refused request records nothing");
    gateway.stop().await;
}

#[tokio::test]
async fn rollback_refuses_malformed_requests_and_foreign_tokens() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;

    error(
        post_rollback(&gateway, json!({"reason": "no id"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
    )
    .await;
    // The reason travels on the bus, which takes at most 256 characters.
    let long = json!({"consolidation_id": job.id, "reason": "x".repeat(257)});
    let message =
        error(post_rollback(&gateway, long).await, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
    assert!(message.contains("at most 256"), "{message}");
    let malformed =
        gateway.request(Method::POST, "/api/v1/consolidation/rollback").header("content-type", "application/json");
    error(malformed.body("[").send().await.expect("sent"), StatusCode::BAD_REQUEST, "bad_request").await;
    let foreign = gateway
        .scoped(Method::POST, "/api/v1/consolidation/rollback", Uuid::new_v4())
        .json(&json!({"consolidation_id": job.id}));
    error(foreign.send().await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}

#[tokio::test]
async fn without_a_result_in_time_the_answer_is_202_with_a_location_to_poll() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 300).await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;

    let response =
        post_rollback(&gateway, json!({"consolidation_id": job.id, "reason": "merged the wrong ones"})).await;
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let body = ok(response, StatusCode::ACCEPTED).await;
    let rollback_id = body["rollback_id"].as_str().expect("rollback id").to_owned();
    assert_eq!(location, format!("/api/v1/consolidation/rollback/{rollback_id}"));
    assert_eq!((body["status"].clone(), body["success"].clone()), (json!("pending"), json!(false)));

    let polled = ok(gateway.get(&location).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(polled["consolidation_id"], json!(job.id));
    assert_eq!(polled["reason"], "merged the wrong ones");
    assert_eq!(polled["requested_by"], "tester@example.com");
    let prefix = &gateway.env.bus.prefix;
    let stream = gateway.env.bus.jetstream.get_stream(prefix.commands_stream()).await.expect("stream");
    let message =
        stream.get_last_raw_message_by_subject(&prefix.command(CommandKind::Rollback)).await.expect("command");
    assert_eq!(message.headers.get("Nats-Msg-Id").map(|id| id.as_str().to_owned()), Some(rollback_id.clone()));
    let command: RollbackCommand = serde_json::from_slice(&message.payload).expect("rollback command");
    assert_eq!(command.consolidation_id, job.id);
    gateway.stop().await;
}

#[tokio::test]
async fn rolling_back_a_rolled_back_job_answers_the_first_result() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    let first = Uuid::new_v4();
    rollbacks::create(&gateway.env.db, first, job.id, project, None, "someone", false).await.expect("created");
    rollbacks::complete(&gateway.env.db, first, 3, 1, &[]).await.expect("completed");
    jobs::mark_rolled_back(&gateway.env.db, job.id).await.expect("marked");

    let body = ok(post_rollback(&gateway, json!({"consolidation_id": job.id})).await, StatusCode::OK).await;
    assert_eq!(body["rollback_id"], json!(first));
    assert_eq!(
        (body["success"].clone(), body["memories_restored"].clone(), body["memories_deleted"].clone()),
        (json!(true), json!(3), json!(1))
    );
    assert!(body["warnings"][0].as_str().is_some_and(|warning| warning.contains("already rolled back")), "{body}");
    gateway.stop().await;
}

#[tokio::test]
async fn rollback_status_answers_404_for_unknown_and_foreign_ids() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    let id = Uuid::new_v4();
    rollbacks::create(&gateway.env.db, id, job.id, project, Some("why"), "someone", false).await.expect("created");

    let read =
        ok(gateway.get(&format!("/api/v1/consolidation/rollback/{id}")).send().await.expect("sent"), StatusCode::OK)
            .await;
    assert_eq!((read["status"].clone(), read["project_id"].clone()), (json!("pending"), json!(project)));
    let unknown =
        gateway.get(&format!("/api/v1/consolidation/rollback/{}", Uuid::new_v4())).send().await.expect("sent");
    error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let foreign =
        gateway.scoped(Method::GET, &format!("/api/v1/consolidation/rollback/{id}"), Uuid::new_v4()).send().await;
    error(foreign.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    error(
        gateway.get("/api/v1/consolidation/rollback/abc").send().await.expect("sent"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_rollback_the_worker_refuses_for_a_change_by_hand_is_409_naming_the_memory() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 8000).await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let status = consolidate(&gateway, project).await;
    assert_eq!(status["status"], "completed", "{status}");
    let created = status["created_memory_ids"][0].as_str().expect("the job created a memory").to_owned();
    ok(
        gateway.post(&format!("/api/v1/memories/{created}/archive"), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;

    let response = post_rollback(&gateway, json!({"consolidation_id": status["job_id"]})).await;
    let message = error(response, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("refused") && message.contains(&created), "{message}");
    worker.stop().await;
    gateway.stop().await;
}
