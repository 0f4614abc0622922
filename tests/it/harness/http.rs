//! Driving the service through its HTTP API the way the gateway tests do: jobs finished
//! through the store, memories ingested as JSON, a real job run to its end, event streams read.

use std::time::Duration;

use consolidator::store::jobs::{self, Job, JobCounters, NewJob, TriggerType};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    env::eventually,
    fixtures::direction,
    gateway::{TestGateway, ok},
};

/// A pending manual job written to the store (no command published).
pub async fn pending_job(gateway: &TestGateway, project: Uuid) -> Uuid {
    let new = NewJob {
        id: Uuid::new_v4(),
        project_id: project,
        trigger_type: TriggerType::Manual,
        options: json!({}),
        triggered_by: "tester".to_owned(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(&gateway.env.db, &new).await.expect("job");
    new.id
}

/// A job taken through the store to `completed` (or `failed`), as a worker would.
pub async fn finished_job(
    gateway: &TestGateway,
    project: Uuid,
    trigger_type: TriggerType,
    completed: bool,
    result: Value,
) -> Job {
    let db = &gateway.env.db;
    let new = NewJob {
        id: Uuid::new_v4(),
        project_id: project,
        trigger_type,
        options: json!({}),
        triggered_by: "tester".to_owned(),
        scheduled_for: None,
        plan_of: None,
    };
    jobs::create(db, &new).await.expect("job created");
    jobs::claim(db, new.id, "test-worker", Duration::from_secs(60)).await.expect("claimed");
    if completed {
        let counters =
            JobCounters { memories_merged: 2, memories_archived: 1, memories_promoted: 0, summaries_created: 1 };
        assert!(jobs::complete(db, new.id, "test-worker", &counters, 10, 8, &result).await.expect("completed"));
    } else {
        assert!(jobs::fail(db, new.id, "it broke").await.expect("failed"));
    }
    jobs::get(db, new.id).await.expect("read").expect("exists")
}

/// One Server-Sent Event: (event name, id, JSON data).
pub type Sse = (String, Option<String>, Value);

/// Reads an SSE response to its end (or `timeout`), returning the events and whether it ended.
pub async fn read_sse(response: reqwest::Response, timeout: Duration) -> (Vec<Sse>, bool) {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let ended = tokio::time::timeout(timeout, async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    })
    .await
    .is_ok();
    let events = text
        .split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|line| line.strip_prefix(name).map(|value| value.trim_start().to_owned()))
            };
            let data = field("data:")?;
            Some((field("event:").unwrap_or_default(), field("id:"), serde_json::from_str(&data).expect("JSON data")))
        })
        .collect();
    (events, ended)
}

pub fn memory_json(summary: &str, memory_type: &str, embedding: Vec<f32>) -> Value {
    json!({
        "id": Uuid::new_v4(),
        "task_id": format!("task-{}", Uuid::new_v4().simple()),
        "execution_summary": summary,
        "memory_type": memory_type,
        "tags": ["test"],
        "files": ["src/lib.rs"],
        "context_embedding": embedding,
        "success": true,
        "reused_count": 5,
        "last_reused_at": chrono::Utc::now(),
    })
}

pub async fn ingest(gateway: &TestGateway, project: Uuid, memories: &[Value]) -> Vec<Uuid> {
    let response =
        gateway.post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": memories})).send().await;
    let body = ok(response.expect("sent"), StatusCode::CREATED).await;
    serde_json::from_value(body["ids"].clone()).expect("ids")
}

/// Runs a real job through the worker and returns its finished status.
pub async fn consolidate(gateway: &TestGateway, project: Uuid) -> Value {
    let accepted = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    let job_id = ok(accepted.expect("sent"), StatusCode::ACCEPTED).await["job_id"].as_str().expect("job id").to_owned();
    finished_status(gateway, &job_id).await
}

/// The job's status once it has completed or failed (a minute at most).
pub async fn finished_status(gateway: &TestGateway, job_id: &str) -> Value {
    eventually(Duration::from_secs(60), || async {
        let status = gateway.get(&format!("/api/v1/consolidation/status/{job_id}")).send().await.ok()?;
        let status: Value = status.json().await.ok()?;
        (status["status"] == "completed" || status["status"] == "failed").then_some(status)
    })
    .await
    .expect("the job finished")
}

/// Memories that merge: three near-identical, two near-identical, two loners.
pub fn clustered_memories() -> Vec<Value> {
    vec![
        memory_json("Retry the flaky upload with backoff.", "error_fix", direction(0, 0.0)),
        memory_json("Upload flakes: retry it with exponential backoff.", "error_fix", direction(0, 0.03)),
        memory_json("The upload step is flaky; a retry with backoff fixes it.", "error_fix", direction(0, 0.06)),
        memory_json("Config lives in settings.toml.", "codebase_knowledge", direction(4, 0.0)),
        memory_json("Settings are read from settings.toml at start.", "codebase_knowledge", direction(4, 0.04)),
        memory_json("Use the staging database for load tests.", "decision", direction(8, 0.0)),
        memory_json("The API rate limit is 100 requests a minute.", "learning", direction(12, 0.0)),
    ]
}

/// `POST /consolidation/rollback` with the admin token.
pub async fn post_rollback(gateway: &TestGateway, body: Value) -> reqwest::Response {
    gateway.post("/api/v1/consolidation/rollback", &body).send().await.expect("sent")
}
