//! The MCP endpoint (`/mcp`): driven by the official Python client as an agent would, and held to
//! the API's project scope.

use std::time::Duration;

use consolidator::store::memories;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

/// The `mcp` package version CI installs (.ci/run) and this test installs when it is missing.
const MCP_PACKAGE: &str = "mcp==2.3.0";

/// One JSON-RPC `tools/call` over plain HTTP; returns the call's result.
async fn call_tool(gateway: &TestGateway, token: &str, name: &str, arguments: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}});
    let response = gateway
        .client
        .post(gateway.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&request)
        .send()
        .await
        .expect("sent");
    let body = ok(response, StatusCode::OK).await;
    assert!(body.get("error").is_none(), "a JSON-RPC error: {body}");
    body["result"].clone()
}

fn tool_error(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "expected a tool error: {result}");
    result["structuredContent"]["error"].as_str().expect("an error code")
}

async fn python_mcp_client() {
    let present = |_: ()| async {
        tokio::process::Command::new("python3")
            .args(["-c", "import mcp.client.streamable_http"])
            .status()
            .await
            .is_ok_and(|status| status.success())
    };
    if present(()).await {
        return;
    }
    let installed = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", MCP_PACKAGE])
        .status()
        .await
        .is_ok_and(|status| status.success());
    assert!(installed && present(()).await, "the Python MCP client is missing: python3 -m pip install {MCP_PACKAGE}");
}

#[tokio::test]
async fn an_agent_remembers_recalls_consolidates_and_rolls_back_through_the_python_mcp_client() {
    python_mcp_client().await;
    let fake = FakeEmbedder::start().await;
    let gateway = TestGateway::embedding(&fake.config(16)).await;
    let mut worker_config = gateway.env.worker_config();
    worker_config.embedding = fake.config(16);
    let worker = gateway.env.spawn_worker_with(consolidator::worker::Worker::new(
        gateway.env.db.clone(),
        gateway.env.bus.clone(),
        worker_config,
        consolidator::config::RetentionConfig::default(),
    ));
    let project = gateway.project().await;
    let agent = token(&[project.to_string()], "admin");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ci/mcp_client.py");
    let run = tokio::process::Command::new("python3")
        .args([script, &gateway.url("/mcp"), &agent, &project.to_string()])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run).await.expect("the client finished").expect("ran");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the client failed:\n{stdout}\n{stderr}");
    for line in [
        "ok list_tools ",
        "ok remember 3 embedded",
        "ok recall ",
        "ok forget and restore",
        "ok consolidate dry_run job ",
        "ok consolidate merged 2",
        "ok list_reviews ",
        "ok rollback ",
        "all ok",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(line)), "no `{line}` in:\n{stdout}");
    }
    let page =
        ok(gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(page["active_memories"], 3, "the rollback restored the three memories: {page}");
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_token_for_one_project_can_neither_recall_nor_forget_another_projects_memories() {
    let gateway = TestGateway::start().await;
    let (mine, theirs) = (gateway.project().await, gateway.project().await);
    let hidden = ingest(&gateway, theirs, &[memory_json("Their secret.", "learning", direction(2, 0.0))]).await[0];
    ingest(&gateway, mine, &[memory_json("Mine.", "learning", direction(2, 0.0))]).await;
    let agent = token(&[mine.to_string()], "admin");
    let query = |project: Uuid| json!({"project_id": project, "embedding": direction(2, 0.0)});

    let recalled = call_tool(&gateway, &agent, "recall", query(theirs)).await;
    let forgot = call_tool(&gateway, &agent, "forget", json!({"memory_id": hidden})).await;
    let reviews = call_tool(&gateway, &agent, "list_reviews", json!({"project_id": theirs})).await;
    let remembered = call_tool(
        &gateway,
        &agent,
        "remember",
        json!({"project_id": theirs, "execution_summary": "x",
                                                       "memory_type": "learning"}),
    )
    .await;

    assert_eq!(tool_error(&recalled), "forbidden", "{recalled}");
    assert_eq!(tool_error(&forgot), "not_found", "another project's memory is unknown: {forgot}");
    assert_eq!(tool_error(&reviews), "forbidden");
    assert_eq!(tool_error(&remembered), "forbidden");
    let stored = memories::get(&gateway.env.db, hidden).await.expect("read").expect("exists");
    assert!(!stored.is_archived, "nothing changed in the other project");
    let own = call_tool(&gateway, &agent, "recall", query(mine)).await;
    assert_eq!(own["structuredContent"]["results"][0]["memory"]["execution_summary"], "Mine.", "{own}");
    let counted =
        ok(gateway.get(&format!("/api/v1/projects/{theirs}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(counted["active_memories"], 1, "nothing was stored in the other project: {counted}");
    gateway.stop().await;
}

#[tokio::test]
async fn the_mcp_endpoint_answers_a_missing_or_bad_token_with_the_apis_401() {
    let gateway = TestGateway::start().await;
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});

    let anonymous = gateway.client.post(gateway.url("/mcp")).json(&request).send().await.expect("sent");
    let forged = gateway.client.post(gateway.url("/mcp")).bearer_auth("not-a-jwt").json(&request).send().await;

    assert!(error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await.contains("Authorization"));
    error(forged.expect("sent"), StatusCode::UNAUTHORIZED, "unauthorized").await;
    gateway.stop().await;
}
