//! The workers page's routes (issue 25): workers alive with their running jobs, the command
//! stream's depth, and the dead letters read without consuming them.

use std::time::Duration;

use consolidator::{
    bus::messages::DeadLetter,
    store::{jobs, workers},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

async fn get(gateway: &TestGateway, path: &str) -> Value {
    ok(gateway.get(path).send().await.expect("sent"), StatusCode::OK).await
}

#[tokio::test]
async fn workers_lists_the_live_workers_with_their_running_jobs_and_the_command_streams_depth() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let accepted = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    let job_id: Uuid = ok(accepted.expect("sent"), StatusCode::ACCEPTED).await["job_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("job id");

    let idle = get(&gateway, "/api/v1/workers").await;
    assert_eq!(idle["workers"], json!([]), "{idle}");
    assert_eq!(idle["commands"], json!({"pending": 1, "ack_pending": 0, "redelivered": 0}), "{idle}");
    assert_eq!(idle["dead_letters"], 0);

    // A worker that beats and holds the job.
    workers::beat(&gateway.env.db, "w-test").await.expect("beat");
    jobs::claim(&gateway.env.db, job_id, "w-test", Duration::from_secs(60)).await.expect("claimed");
    let busy = get(&gateway, "/api/v1/workers").await;
    assert_eq!(busy["workers"].as_array().map(Vec::len), Some(1), "{busy}");
    let worker = &busy["workers"][0];
    assert_eq!(worker["worker_id"], "w-test");
    assert!(worker["last_heartbeat"].is_string() && worker["started_at"].is_string());
    assert_eq!(worker["running_jobs"][0]["job_id"], json!(job_id), "{worker}");
    assert_eq!(worker["running_jobs"][0]["project_id"], json!(project));
    let foreign = gateway.scoped(Method::GET, "/api/v1/workers", Uuid::new_v4()).send().await.expect("sent");
    let foreign = ok(foreign, StatusCode::OK).await;
    assert_eq!(foreign["workers"][0]["running_jobs"], json!([]), "another project's job is not shown");

    // A real worker writes its row while it runs and removes it when it stops.
    let running = gateway.env.spawn_worker();
    let listed = eventually(Duration::from_secs(15), || async {
        let page = get(&gateway, "/api/v1/workers").await;
        (page["workers"].as_array().map(Vec::len) == Some(2)).then_some(page)
    })
    .await;
    assert!(listed.is_some(), "the worker's row appears");
    running.stop().await;
    let page = get(&gateway, "/api/v1/workers").await;
    assert_eq!(page["workers"].as_array().map(Vec::len), Some(1), "{page}");
}

async fn dead_letter(gateway: &TestGateway, project: Uuid, reason: &str) {
    let payload = json!({"schema_version": 1, "job_id": Uuid::new_v4(), "project_id": project}).to_string();
    let subject = gateway.env.bus.prefix.command(consolidator::bus::CommandKind::Trigger);
    let letter = DeadLetter::new("trigger", subject, reason, payload.as_bytes());
    gateway.env.bus.publish_event(gateway.env.bus.prefix.dead_letter("trigger"), &letter).await.expect("published");
}

#[tokio::test]
async fn dead_letters_are_listed_newest_first_with_their_reasons_and_reading_them_consumes_nothing() {
    let gateway = TestGateway::start().await;
    let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    let empty = get(&gateway, "/api/v1/dead-letters").await;
    assert_eq!(empty, json!({"dead_letters": []}));
    dead_letter(&gateway, mine, "first reason").await;
    dead_letter(&gateway, theirs, "second reason").await;

    for _ in 0..2 {
        let page = get(&gateway, "/api/v1/dead-letters").await;
        let letters = page["dead_letters"].as_array().expect("letters");
        let reasons: Vec<&str> = letters.iter().map(|l| l["reason"].as_str().unwrap_or_default()).collect();
        assert_eq!(reasons, ["second reason", "first reason"], "{page}");
        assert!(letters[0]["seq"].as_u64() > letters[1]["seq"].as_u64());
        assert_eq!(letters[0]["subject"], gateway.env.bus.prefix.dead_letter("trigger"));
        assert!(letters[1]["payload"].as_str().is_some_and(|p| p.contains(&mine.to_string())), "{page}");
        assert!(letters[0]["at"].is_string());
    }
    let newest = get(&gateway, "/api/v1/dead-letters?limit=1").await;
    assert_eq!(newest["dead_letters"].as_array().map(Vec::len), Some(1));
    assert_eq!(newest["dead_letters"][0]["reason"], "second reason");
    assert_eq!(get(&gateway, "/api/v1/workers").await["dead_letters"], 2);

    let scoped = gateway.scoped(Method::GET, "/api/v1/dead-letters", mine).send().await.expect("sent");
    let scoped = ok(scoped, StatusCode::OK).await;
    assert_eq!(scoped["dead_letters"].as_array().map(Vec::len), Some(1), "{scoped}");
    assert_eq!(scoped["dead_letters"][0]["reason"], "first reason");
    for bad in ["limit=0", "limit=501", "other=1"] {
        let response = gateway.get(&format!("/api/v1/dead-letters?{bad}")).send().await.expect("sent");
        error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}
