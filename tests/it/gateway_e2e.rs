//! Gateway end to end, with a worker: ingest -> trigger -> live events until completed ->
//! status -> history -> changes -> rollback -> the memories are as before.

use std::{collections::BTreeMap, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

/// Every memory of the project, hidden ones included: id -> the fields a rollback restores.
async fn all_memories(gateway: &TestGateway, project: Uuid) -> BTreeMap<String, Value> {
    let path = format!("/api/v1/projects/{project}/memories?include_archived=true&include_duplicates=true&limit=500");
    let page = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    page["memories"]
        .as_array()
        .expect("memories")
        .iter()
        // A rolled-back job's memories are retired: kept, but not part of the store as it was.
        .filter(|memory| memory["archive_reason"] != "rolled_back")
        .map(|memory| {
            let id = memory["id"].as_str().expect("id").to_owned();
            let kept = json!({
                "summary": memory["execution_summary"],
                "is_duplicate": memory["is_duplicate"],
                "duplicate_of": memory["duplicate_of"],
                "is_archived": memory["is_archived"],
                "reused_count": memory["reused_count"],
                "tags": memory["tags"],
                "files": memory["files"],
            });
            (id, kept)
        })
        .collect()
}

#[tokio::test]
async fn ingest_trigger_follow_inspect_and_roll_back_leaves_the_memories_as_before() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 8000).await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let before = all_memories(&gateway, project).await;

    let accepted = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    let job_id = ok(accepted.expect("sent"), StatusCode::ACCEPTED).await["job_id"].as_str().expect("job id").to_owned();
    let events = gateway.get(&format!("/api/v1/consolidation/status/{job_id}/events")).send().await.expect("sent");
    let (events, ended) = read_sse(events, Duration::from_secs(60)).await;
    assert!(ended, "the event stream closes at the end of the job");
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names.last(), Some(&"completed"), "{names:?}");
    assert!(names.contains(&"started"), "{names:?}");
    assert_eq!(names.first(), Some(&"queued"), "the gateway announces the job it queued");

    let status =
        ok(gateway.get(&format!("/api/v1/consolidation/status/{job_id}")).send().await.expect("sent"), StatusCode::OK)
            .await;
    assert_eq!(status["status"], "completed");
    assert!(status["counters"]["memories_merged"].as_i64().is_some_and(|merged| merged > 0), "{status}");
    let created: Vec<String> = serde_json::from_value(status["created_memory_ids"].clone()).expect("ids");
    assert!(!created.is_empty(), "{status}");
    assert_eq!(status["memories_before"], 7);
    assert!(status["memories_after"].as_i64().is_some_and(|after| after < 7), "{status}");

    let history = gateway.get(&format!("/api/v1/consolidation/history/{project}")).send().await.expect("sent");
    let history = ok(history, StatusCode::OK).await;
    assert_eq!(history["jobs"][0]["job_id"], status["job_id"]);
    assert_eq!(history["jobs"][0]["status"], "completed");

    let merges = gateway.get(&format!("/api/v1/consolidation/jobs/{job_id}/changes?operation=merge")).send().await;
    let merges = ok(merges.expect("sent"), StatusCode::OK).await;
    let merges = merges["changes"].as_array().expect("changes");
    assert!(!merges.is_empty());
    assert!(merges.iter().all(|change| change["operation"] == "merge" && change["job_id"] == status["job_id"]));
    let visible =
        ok(gateway.get(&format!("/api/v1/projects/{project}/memories")).send().await.expect("sent"), StatusCode::OK)
            .await;
    let visible_ids: Vec<&str> =
        visible["memories"].as_array().expect("memories").iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(created.iter().all(|id| visible_ids.contains(&id.as_str())), "created memories are listed");
    assert!(visible_ids.len() < before.len() + created.len(), "merged sources are hidden");

    let response =
        gateway.post("/api/v1/consolidation/rollback", &json!({"consolidation_id": job_id, "reason": "e2e"})).send();
    let result = ok(response.await.expect("sent"), StatusCode::OK).await;
    assert_eq!(result["success"], true, "{result}");
    assert!(result["memories_restored"].as_i64().is_some_and(|restored| restored > 0), "{result}");
    assert_eq!(result["memories_deleted"].as_i64(), Some(created.len() as i64), "{result}");
    assert!(result["rollback_id"].as_str().and_then(|id| id.parse::<Uuid>().ok()).is_some());

    assert_eq!(all_memories(&gateway, project).await, before, "the memories are as before the job");
    let status =
        ok(gateway.get(&format!("/api/v1/consolidation/status/{job_id}")).send().await.expect("sent"), StatusCode::OK)
            .await;
    assert!(status["rolled_back_at"].is_string(), "{status}");
    let rollback = gateway.get(result["location"].as_str().expect("location")).send().await.expect("sent");
    assert_eq!(ok(rollback, StatusCode::OK).await["status"], "completed");
    worker.stop().await;
    gateway.stop().await;
}
