//! Gateway: every refusal says what to do next.

use reqwest::StatusCode;
use serde_json::json;

use consolidator::store::jobs::TriggerType;

use crate::harness::*;

#[tokio::test]
async fn a_refused_token_names_the_command_that_mints_one() {
    let gateway = TestGateway::start().await;
    let path = gateway.url("/api/v1/projects");
    let missing = gateway.client.get(&path).send().await.expect("sent");
    let expired_token = token_with(&["*".to_owned()], "admin", chrono::Utc::now().timestamp() - 3600, SECRET);
    let expired = gateway.client.get(&path).bearer_auth(expired_token).send().await.expect("sent");
    let malformed = gateway.client.get(&path).bearer_auth("not-a-jwt").send().await.expect("sent");
    let foreign_key = token_with(&["*".to_owned()], "admin", chrono::Utc::now().timestamp() + 600, &"x".repeat(40));
    let resigned = gateway.client.get(&path).bearer_auth(foreign_key).send().await.expect("sent");

    for (response, says) in
        [(missing, "missing"), (expired, "expired"), (malformed, "malformed"), (resigned, "JWT_SECRET")]
    {
        let message = error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(message.contains(says) && message.contains("`consolidator token`"), "{message}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn an_oversized_or_ill_typed_body_is_answered_in_the_clients_terms() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let path = format!("/api/v1/projects/{project}/memories");

    let huge = json!({"memories": [memory_json(&"x".repeat(2 * 1024 * 1024), "learning", direction(0, 0.0))]});
    let message = error(
        gateway.post(&path, &huge).send().await.expect("sent"),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(message, "the request body exceeds 1048576 bytes (HTTP_BODY_LIMIT_BYTES)");
    let batch: Vec<_> = (0..101).map(|i| memory_json(&format!("m{i}"), "learning", direction(i % 8, 0.0))).collect();
    let message = error(
        gateway.post(&path, &json!({"memories": batch})).send().await.expect("sent"),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert!(message.contains("INGEST_MAX_BATCH"), "{message}");

    let ill_typed = json!({"memories": [memory_json("m", "bogus", direction(0, 0.0))]});
    let message = error(
        gateway.post(&path, &ill_typed).send().await.expect("sent"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
    )
    .await;
    assert!(message.contains("memories[0].memory_type") && message.contains("bogus"), "{message}");
    assert!(!message.contains(" at line "), "no parser position: {message}");
    gateway.stop().await;
}

#[tokio::test]
async fn cancelling_a_rolled_back_job_says_it_was_rolled_back() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({})).await;
    sqlx::query("UPDATE consolidation_jobs SET rolled_back_at = now() WHERE id = $1")
        .bind(job.id)
        .execute(&gateway.env.db)
        .await
        .unwrap();

    let path = format!("/api/v1/consolidation/jobs/{}/cancel", job.id);
    let message =
        error(gateway.post(&path, &json!({})).send().await.expect("sent"), StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("was rolled back at"), "{message}");
    gateway.stop().await;
}
