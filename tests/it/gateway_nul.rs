//! Gateway: a NUL character (U+0000) in any text is a 422 naming the field, never a 500, and
//! nothing of the request is stored.

use consolidator::gateway::auth::{self, Claims};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

const NUL: &str = "before\u{0}after";

#[tokio::test]
async fn a_nul_in_any_text_is_a_422_naming_the_field() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &[memory_json("kept", "learning", direction(0, 0.0))]).await[0];
    let job = finished_job(&gateway, project, consolidator::store::jobs::TriggerType::Manual, true, json!({})).await;
    let with = |field: &str, value: Value| {
        let mut memory = memory_json("fine", "learning", direction(1, 0.0));
        memory[field] = value;
        json!({"memories": [memory]})
    };
    let memories = format!("/api/v1/projects/{project}/memories");
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, "/api/v1/projects".into(), json!({"name": NUL}), "name"),
        (Method::POST, memories.clone(), with("execution_summary", json!(NUL)), "memories[0].execution_summary"),
        (Method::POST, memories.clone(), with("goal", json!(NUL)), "memories[0].goal"),
        (Method::POST, memories.clone(), with("task_id", json!(NUL)), "memories[0].task_id"),
        (Method::POST, memories.clone(), with("tags", json!(["ok", NUL])), "memories[0].tags[1]"),
        (Method::POST, memories.clone(), with("files", json!([NUL])), "memories[0].files[0]"),
        (Method::POST, format!("/api/v1/memories/{stored}/archive"), json!({"reason": NUL}), "reason"),
        (Method::POST, format!("/api/v1/memories/{stored}/reuse"), json!({"reason": NUL}), "reason"),
        (
            Method::POST,
            "/api/v1/consolidation/rollback".into(),
            json!({"consolidation_id": job.id, "reason": NUL}),
            "reason",
        ),
        (
            Method::POST,
            "/api/v1/consolidation/trigger".into(),
            json!({"project_id": project, "options": {"mode": NUL}}),
            "options.mode",
        ),
        (
            Method::PUT,
            format!("/api/v1/consolidation/configure/{project}"),
            json!({"options": {NUL: true}}),
            "options.",
        ),
    ];
    for (method, path, body, field) in cases {
        let response = gateway.request(method.clone(), &path).json(&body).send().await.expect("sent");
        let message = error(response, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
        assert!(message.starts_with(field) && message.contains("NUL"), "{method} {path}: {message}");
    }

    let listed = ok(gateway.get(&memories).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(listed["memories"].as_array().map(Vec::len), Some(1), "nothing of a refused batch was stored");
    let memory =
        ok(gateway.get(&format!("/api/v1/memories/{stored}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!((memory["is_archived"].clone(), memory["reused_count"].clone()), (json!(false), json!(5)));
    gateway.stop().await;
}

#[tokio::test]
async fn a_token_whose_subject_holds_a_nul_is_refused_naming_the_claim() {
    let message = refusal_of_a_token_for(NUL.to_owned()).await;
    assert!(message.contains("sub") && message.contains("NUL"), "{message}");
}

#[tokio::test]
async fn a_token_whose_subject_is_longer_than_the_bus_takes_is_refused_naming_the_claim() {
    let message = refusal_of_a_token_for("a".repeat(257)).await;
    assert!(message.contains("sub claim: at most 256"), "{message}");
}

/// The 422 message a request gets with an admin token whose subject is `sub`.
async fn refusal_of_a_token_for(sub: String) -> String {
    let gateway = TestGateway::start().await;
    let mut claims = Claims::admin("admin", vec!["*".to_owned()], 600);
    claims.sub = sub;
    let token = auth::mint(SECRET, &claims).expect("signed");
    let response = gateway
        .client
        .post(gateway.url("/api/v1/projects"))
        .bearer_auth(token)
        .json(&json!({"name": "fine"}))
        .send()
        .await
        .expect("sent");
    let message = error(response, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
    gateway.stop().await;
    message
}
