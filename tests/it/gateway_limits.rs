//! Gateway: the configured limits on open event streams and on the cost of one search, each
//! answered with a JSON error beyond it.

use std::time::Duration;

use consolidator::store::jobs::TriggerType;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn event_streams_beyond_the_cap_get_429_and_a_closed_one_frees_its_place() {
    let gateway = TestGateway::start_with(|config| config.sse_max_streams = 1).await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({})).await;
    let path = format!("/api/v1/consolidation/status/{}/events", job.id);

    let first = gateway.get(&path).send().await.expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    let second = gateway.get(&path).send().await.expect("sent");
    assert_eq!(second.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
    let message = error(second, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("SSE_MAX_STREAMS"), "{message}");

    // The job ended without an event on the stream: the first stream tells it from the
    // database and closes, which frees its place.
    let (events, ended) = read_sse(first, Duration::from_secs(20)).await;
    assert!(ended && events.last().is_some_and(|(name, _, _)| name == "completed"), "{events:?}");
    let third = eventually(Duration::from_secs(5), || async {
        let response = gateway.get(&path).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(response)
    })
    .await;
    assert!(third.is_some(), "the closed stream's place was not freed");
    gateway.stop().await;
}

#[tokio::test]
async fn a_search_that_would_rank_more_than_the_cap_is_503_and_a_narrower_one_runs() {
    let gateway = TestGateway::start_with(|config| config.search_max_candidates = 2).await;
    let project = gateway.project().await;
    ingest(
        &gateway,
        project,
        &[
            memory_json("one", "learning", direction(0, 0.0)),
            memory_json("two", "learning", direction(1, 0.0)),
            memory_json("three", "decision", direction(2, 0.0)),
        ],
    )
    .await;
    let path = format!("/api/v1/projects/{project}/memories/search");

    let all = gateway.post(&path, &json!({"embedding": direction(0, 0.0)})).send().await.expect("sent");
    let message = error(all, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(message.contains("SEARCH_MAX_CANDIDATES"), "{message}");
    let narrow = gateway.post(&path, &json!({"embedding": direction(0, 0.0), "memory_type": "learning"})).send().await;
    let found = ok(narrow.expect("sent"), StatusCode::OK).await;
    assert_eq!(found["results"].as_array().map(Vec::len), Some(2));
    gateway.stop().await;
}

#[tokio::test]
async fn searches_beyond_the_concurrency_cap_get_429_while_one_runs() {
    let gateway = TestGateway::start_with(|config| config.search_max_concurrent = 1).await;
    let project = gateway.project().await;
    ingest(&gateway, project, &[memory_json("one", "learning", direction(0, 0.0))]).await;
    let path = format!("/api/v1/projects/{project}/memories/search");
    // Holds the first search inside its read, as a search over a huge project would be.
    let mut blocker = gateway.env.db.begin().await.expect("transaction");
    sqlx::query("LOCK TABLE task_memories IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.expect("locked");

    let first = tokio::spawn(gateway.post(&path, &json!({"embedding": direction(0, 0.0)})).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = gateway.post(&path, &json!({"embedding": direction(0, 0.0)})).send().await.expect("sent");
    assert!(second.headers().contains_key("retry-after"));
    let message = error(second, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("SEARCH_MAX_CONCURRENT"), "{message}");
    blocker.rollback().await.expect("released");
    let first = first.await.expect("joined").expect("sent");
    assert_eq!(ok(first, StatusCode::OK).await["results"].as_array().map(Vec::len), Some(1));
    gateway.stop().await;
}

#[tokio::test]
async fn a_request_its_timeout_gave_up_on_leaves_no_query_behind() {
    let gateway = TestGateway::start_with(|config| {
        config.request_timeout_secs = 2;
        config.rollback_wait_ms = 1000;
    })
    .await;
    let project = gateway.project().await;
    ingest(&gateway, project, &[memory_json("held", "learning", direction(0, 0.0))]).await;
    let memory: uuid::Uuid = sqlx::query_scalar("SELECT id FROM task_memories WHERE project_id = $1")
        .bind(project)
        .fetch_one(&gateway.env.db)
        .await
        .unwrap();
    // Another session holds the memory's row: the reuse waits on it.
    let mut holder = gateway.env.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM task_memories WHERE id = $1 FOR UPDATE")
        .bind(memory)
        .execute(&mut *holder)
        .await
        .unwrap();

    let reuse = gateway.post(&format!("/api/v1/memories/{memory}/reuse"), &json!({})).send().await.expect("sent");
    let message = error(reuse, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let waiting = eventually(Duration::from_secs(5), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&gateway.env.db)
        .await
        .ok()?;
        (waiting == 0).then_some(waiting)
    })
    .await;
    holder.rollback().await.unwrap();

    assert!(message.contains("2 s"), "{message}");
    assert_eq!(waiting, Some(0), "the abandoned request's statement still waits on the lock");
    gateway.stop().await;
}

#[tokio::test]
async fn one_token_holds_at_most_half_of_the_event_streams() {
    let gateway = TestGateway::start_with(|config| config.sse_max_streams = 2).await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, false, json!({})).await;
    let path = format!("/api/v1/consolidation/status/{}/events", job.id);

    let first = gateway.get(&path).send().await.expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    let second = gateway.get(&path).send().await.expect("sent");
    let message = error(second, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert!(message.contains("this token") && message.contains("SSE_MAX_STREAMS"), "{message}");
    let claims = consolidator::gateway::auth::Claims {
        sub: "someone-else@example.com".to_owned(),
        ..consolidator::gateway::auth::Claims::admin("x", vec!["*".to_owned()], 600)
    };
    let other = consolidator::gateway::auth::mint(SECRET, &claims).expect("signed");
    let someone_else = gateway.client.get(gateway.url(&path)).bearer_auth(other).send().await.expect("sent");
    assert_eq!(someone_else.status(), StatusCode::OK, "another client still gets the other half");
    drop((first, someone_else));
    gateway.stop().await;
}
