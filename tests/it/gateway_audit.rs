//! The audit page's route (issue 25): every administrator's action, who and when, with a
//! configuration change's values before and after.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

async fn audit(gateway: &TestGateway, query: &str) -> Value {
    ok(gateway.get(&format!("/api/v1/audit?{query}")).send().await.expect("sent"), StatusCode::OK).await
}

#[tokio::test]
async fn configuration_changes_triggers_and_cancels_are_listed_newest_first_with_who_and_the_values_before_and_after() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let other = gateway.project().await;

    let path = format!("/api/v1/consolidation/configure/{project}");
    ok(gateway.put(&path, &json!({"enabled": false, "threshold": 77})).send().await.expect("sent"), StatusCode::OK)
        .await;
    ok(gateway.put(&path, &json!({"enabled": true})).send().await.expect("sent"), StatusCode::OK).await;
    let accepted = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    let job = ok(accepted.expect("sent"), StatusCode::ACCEPTED).await;
    let job_id = job["job_id"].as_str().expect("job id").to_owned();
    let cancel = gateway.post(&format!("/api/v1/consolidation/jobs/{job_id}/cancel"), &json!({})).send().await;
    assert!(cancel.expect("sent").status().is_success());
    let other_path = format!("/api/v1/consolidation/configure/{other}");
    ok(gateway.put(&other_path, &json!({"threshold": 5})).send().await.expect("sent"), StatusCode::OK).await;

    let page = audit(&gateway, &format!("project_id={project}")).await;
    let actions = page["actions"].as_array().expect("actions");
    let names: Vec<&str> = actions.iter().map(|a| a["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["job_cancelled", "job_triggered", "configuration_changed", "configuration_changed"]);
    assert!(actions.iter().all(|a| a["actor"] == "tester@example.com" && a["project_id"] == json!(project)));
    assert_eq!(actions[0]["target_id"], json!(job_id));
    assert_eq!(actions[1]["target_id"], json!(job_id));
    let first = &actions[3]["details"];
    assert_eq!((first["before"]["enabled"].clone(), first["after"]["enabled"].clone()), (json!(true), json!(false)));
    assert_eq!(first["after"]["threshold"], 77, "{first}");
    assert_ne!(first["before"]["threshold"], 77, "{first}");
    assert_eq!(actions[2]["details"]["before"]["enabled"], false);
    assert_eq!(actions[2]["details"]["after"]["enabled"], true);

    // Every project the token sees, one page at a time; filtered by action.
    let first_page = audit(&gateway, "limit=3").await;
    assert_eq!(first_page["actions"].as_array().map(Vec::len), Some(3));
    assert_eq!(first_page["actions"][0]["project_id"], json!(other));
    let cursor = first_page["next_cursor"].as_str().expect("a next page");
    let second_page = audit(&gateway, &format!("limit=3&cursor={cursor}")).await;
    assert_eq!(second_page["actions"].as_array().map(Vec::len), Some(2));
    assert!(second_page["next_cursor"].is_null());
    let changed = audit(&gateway, "action=configuration_changed").await;
    assert_eq!(changed["actions"].as_array().map(Vec::len), Some(3));

    // A token of one project sees that project's actions only, and no other project's.
    let scoped = gateway.scoped(Method::GET, "/api/v1/audit", other).send().await.expect("sent");
    let scoped = ok(scoped, StatusCode::OK).await;
    assert_eq!(scoped["actions"].as_array().map(Vec::len), Some(1));
    let foreign = gateway.scoped(Method::GET, &format!("/api/v1/audit?project_id={project}"), other).send().await;
    error(foreign.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    for bad in ["action=deleted", "cursor=abc", "limit=0", "project_id=x"] {
        error(
            gateway.get(&format!("/api/v1/audit?{bad}")).send().await.expect("sent"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
    }
}

#[tokio::test]
async fn an_unmerge_and_a_rollback_request_are_listed_with_their_job() {
    let gateway = TestGateway::start().await;
    let _worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let job = consolidate(&gateway, project).await;
    let job_id = job["job_id"].clone();
    let created = job["created_memory_ids"][0].as_str().expect("a merged memory").to_owned();

    let unmerged = gateway.post(&format!("/api/v1/memories/{created}/unmerge"), &json!({"reason": "wrong"})).send();
    ok(unmerged.await.expect("sent"), StatusCode::OK).await;
    let rollback = post_rollback(&gateway, json!({"consolidation_id": job_id, "reason": "bad run"})).await;
    assert!(rollback.status().is_success(), "{}", rollback.status());

    let page = audit(&gateway, &format!("project_id={project}")).await;
    let actions = page["actions"].as_array().expect("actions");
    let names: Vec<&str> = actions.iter().map(|a| a["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["rollback_requested", "unmerge", "job_triggered"], "{page}");
    assert_eq!(actions[0]["target_id"], job_id);
    assert_eq!(actions[0]["details"]["reason"], "bad run");
    assert!(actions[0]["details"]["rollback_id"].is_string());
    assert_eq!(actions[1]["target_id"], json!(created));
    assert_eq!(actions[1]["details"]["job_id"], job_id);
    assert_eq!(actions[1]["details"]["reason"], "wrong");
    assert!(actions.iter().all(|a| a["actor"] == "tester@example.com"));
}

#[tokio::test]
async fn archiving_and_pinning_by_hand_are_admin_actions_and_a_reuse_is_not() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let ids = ingest(&gateway, project, &clustered_memories()).await;
    let (first, second) = (ids[0], ids[3]);
    for (path, body) in [
        (format!("/api/v1/memories/{first}/archive"), json!({"reason": "wrong"})),
        (format!("/api/v1/memories/{first}/unarchive"), json!(null)),
        (format!("/api/v1/memories/{second}/pin"), json!(null)),
        (format!("/api/v1/memories/{second}/unpin"), json!(null)),
        (format!("/api/v1/memories/{second}/reuse"), json!(null)),
    ] {
        ok(gateway.post(&path, &body).send().await.expect("sent"), StatusCode::OK).await;
    }

    let listed = audit(&gateway, &format!("project_id={project}")).await;
    let actions: Vec<(&str, &str)> = listed["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| (a["action"].as_str().expect("action"), a["target_id"].as_str().expect("target")))
        .collect();
    let (first, second) = (first.to_string(), second.to_string());
    assert_eq!(
        actions,
        [
            ("memory_unpinned", second.as_str()),
            ("memory_pinned", second.as_str()),
            ("memory_unarchived", first.as_str()),
            ("memory_archived", first.as_str()),
        ],
        "{listed}"
    );
    let archived = &listed["actions"][3];
    assert_eq!(
        (archived["actor"].as_str(), archived["details"]["reason"].as_str()),
        (Some("tester@example.com"), Some("wrong"))
    );
    gateway.stop().await;
}
