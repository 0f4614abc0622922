//! Gateway: a token limited to some projects learns nothing about the others. An id of another
//! project's job, rollback or memory is answered exactly as an unknown id, and asking takes no
//! lock on the other project's rows.

use std::time::Duration;

use consolidator::store::{jobs::TriggerType, rollbacks};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

/// Status and body, with `id` written as `<id>` so two answers about different ids compare.
async fn answer(response: reqwest::Response, id: &str) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body").replace(id, "<id>");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_foreign_id_is_answered_exactly_as_an_unknown_one() {
    let gateway = TestGateway::start().await;
    let theirs = gateway.project().await;
    let mine = gateway.project().await;
    let job = finished_job(&gateway, theirs, TriggerType::Manual, true, json!({"dry_run": false})).await;
    let rollback = Uuid::new_v4();
    rollbacks::create(&gateway.env.db, rollback, job.id, theirs, None, "someone", false).await.expect("rollback row");
    let memory_id = ingest(&gateway, theirs, &[memory_json("theirs", "learning", direction(0, 0.0))]).await[0];

    let routes: Vec<(Method, String, Option<Value>, String)> = vec![
        (Method::GET, "/api/v1/consolidation/status/{}".into(), None, job.id.to_string()),
        (Method::GET, "/api/v1/consolidation/status/{}/events".into(), None, job.id.to_string()),
        (Method::GET, "/api/v1/consolidation/jobs/{}/changes".into(), None, job.id.to_string()),
        (Method::GET, "/api/v1/consolidation/rollback/{}".into(), None, rollback.to_string()),
        (Method::GET, "/api/v1/memories/{}".into(), None, memory_id.to_string()),
        (Method::GET, "/api/v1/memories/{}/changes".into(), None, memory_id.to_string()),
        (Method::POST, "/api/v1/memories/{}/archive".into(), None, memory_id.to_string()),
        (Method::POST, "/api/v1/memories/{}/unarchive".into(), None, memory_id.to_string()),
        (Method::POST, "/api/v1/memories/{}/reuse".into(), None, memory_id.to_string()),
        (
            Method::POST,
            "/api/v1/consolidation/rollback".into(),
            Some(json!({"consolidation_id": "{}"})),
            job.id.to_string(),
        ),
    ];
    for (method, template, body, id) in routes {
        let unknown_id = Uuid::new_v4().to_string();
        let send = |id: &str| {
            let path = template.replace("{}", id);
            let request = gateway.scoped(method.clone(), &path, mine);
            match &body {
                Some(body) => {
                    request.json(&serde_json::from_str::<Value>(&body.to_string().replace("{}", id)).expect("json"))
                }
                None => request,
            }
            .send()
        };
        let foreign = answer(send(&id).await.expect("sent"), &id).await;
        let unknown = answer(send(&unknown_id).await.expect("sent"), &unknown_id).await;
        assert_eq!(foreign.0, StatusCode::NOT_FOUND, "{method} {template}: {foreign:?}");
        assert_eq!(foreign, unknown, "{method} {template}: a foreign id must read as an unknown one");
    }
    let theirs_still =
        ok(gateway.get(&format!("/api/v1/memories/{memory_id}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!((theirs_still["is_archived"].clone(), theirs_still["reused_count"].clone()), (json!(false), json!(5)));
    gateway.stop().await;
}

#[tokio::test]
async fn a_taken_memory_id_is_answered_alike_whichever_project_holds_it_and_names_no_constraint() {
    let gateway = TestGateway::start().await;
    let theirs = gateway.project().await;
    let mine = gateway.project().await;
    let their_memory = memory_json("theirs", "learning", direction(0, 0.0));
    let my_memory = memory_json("mine", "learning", direction(1, 0.0));
    ingest(&gateway, theirs, std::slice::from_ref(&their_memory)).await;
    ingest(&gateway, mine, std::slice::from_ref(&my_memory)).await;

    let path = format!("/api/v1/projects/{mine}/memories");
    let mut answers = Vec::new();
    for taken in [&their_memory, &my_memory] {
        let id = taken["id"].as_str().expect("id").to_owned();
        let mut again = taken.clone();
        again["execution_summary"] = json!("a new text under a taken id");
        let response = gateway.scoped(Method::POST, &path, mine).json(&json!({"memories": [again]})).send().await;
        answers.push(answer(response.expect("sent"), &id).await);
    }
    assert_eq!(answers[0].0, StatusCode::CONFLICT, "{answers:?}");
    assert_eq!(answers[0], answers[1], "another project's id must read as one's own");
    let message = answers[0].1["message"].as_str().expect("message");
    assert!(message.starts_with("memories[0].id") && !message.contains("pkey"), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_foreign_memory_action_waits_for_no_lock() {
    let gateway = TestGateway::start().await;
    let theirs = gateway.project().await;
    let mine = gateway.project().await;
    let memory_id = ingest(&gateway, theirs, &[memory_json("theirs", "learning", direction(0, 0.0))]).await[0];
    // Another session holds the row, as a long job's apply would.
    let mut holder = gateway.env.db.begin().await.expect("transaction");
    sqlx::query("SELECT id FROM task_memories WHERE id = $1 FOR UPDATE")
        .bind(memory_id)
        .execute(&mut *holder)
        .await
        .expect("row locked");

    let request = gateway.scoped(Method::POST, &format!("/api/v1/memories/{memory_id}/archive"), mine).send();
    let response = tokio::time::timeout(Duration::from_secs(3), request).await;
    let response = response.expect("answered without waiting for the lock").expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    holder.rollback().await.expect("released");
    gateway.stop().await;
}
