//! An operator's picture of the store over time (issue 25): a project's timeline of memories by
//! state across its jobs with failures grouped by cause, and the projects needing attention.

use consolidator::store::jobs::TriggerType;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

async fn get(gateway: &TestGateway, path: &str) -> Value {
    ok(gateway.get(path).send().await.expect("sent"), StatusCode::OK).await
}

#[tokio::test]
async fn the_timeline_gives_each_jobs_memories_before_and_after_by_state_and_groups_failures_by_cause() {
    let gateway = TestGateway::start().await;
    let _worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let job = consolidate(&gateway, project).await;
    assert_eq!(job["status"], "completed", "{job}");
    finished_job(&gateway, project, TriggerType::Manual, false, json!({})).await;
    finished_job(&gateway, project, TriggerType::Manual, false, json!({})).await;

    let timeline = get(&gateway, &format!("/api/v1/projects/{project}/timeline")).await;
    let points = timeline["points"].as_array().expect("points");
    assert_eq!(points.len(), 3, "{timeline}");
    let first = &points[0];
    assert_eq!(first["job_id"], job["job_id"]);
    assert_eq!(first["status"], "completed");
    assert_eq!(first["before"], json!({"active": 7, "duplicate": 0, "archived": 0}), "{first}");
    let after = &first["after"];
    assert!(after["active"].as_i64().is_some_and(|active| active < 7), "{first}");
    assert!(after["duplicate"].as_i64().is_some_and(|duplicates| duplicates >= 5), "{first}");
    assert_eq!(timeline["current"], *after, "nothing changed since the job");
    assert!(first["duration_ms"].as_i64().is_some_and(|ms| ms >= 0), "{first}");
    assert_eq!(points[2]["status"], "failed");
    assert!(points[2]["after"].is_null(), "a failed job has no after: {}", points[2]);
    assert_eq!(timeline["failures"].as_array().map(Vec::len), Some(1), "{timeline}");
    let failure = &timeline["failures"][0];
    assert_eq!((failure["cause"].as_str(), failure["count"].as_i64()), (Some("it broke"), Some(2)));
    assert_eq!(failure["last_job_id"], points[2]["job_id"]);
    assert_eq!(failure["example"], "it broke");

    let last = get(&gateway, &format!("/api/v1/projects/{project}/timeline?limit=1")).await;
    assert_eq!(last["points"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["points"][0]["job_id"], points[2]["job_id"], "the last jobs, oldest first");
    for bad in ["limit=0", "limit=501", "limit=x", "other=1"] {
        let response = gateway.get(&format!("/api/v1/projects/{project}/timeline?{bad}")).send().await.expect("sent");
        error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let unknown = gateway.get(&format!("/api/v1/projects/{}/timeline", Uuid::new_v4())).send().await.expect("sent");
    error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let foreign =
        gateway.scoped(Method::GET, &format!("/api/v1/projects/{project}/timeline"), Uuid::new_v4()).send().await;
    error(foreign.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn attention_lists_the_projects_with_a_reason_most_reasons_first_within_the_tokens_scope() {
    let gateway = TestGateway::start().await;
    let quiet = gateway.project().await;
    let reviewed = gateway.project().await;
    let troubled = gateway.project().await;
    let crowded = gateway.project().await;
    let ids = ingest(
        &gateway,
        reviewed,
        &[memory_json("older", "learning", direction(0, 0.0)), memory_json("newer", "learning", direction(0, 0.01))],
    )
    .await;
    sqlx::query(
        "INSERT INTO consolidation_reviews (id, project_id, kind, older_memory_id, newer_memory_id, older_version,
                                            newer_version, similarity, difference, suggestion, status)
         VALUES ($1, $2, 'possible_update', $3, $4, 1, 1, 0.95, '{}', 'supersede', 'open')",
    )
    .bind(Uuid::new_v4())
    .bind(reviewed)
    .bind(ids[0])
    .bind(ids[1])
    .execute(&gateway.env.db)
    .await
    .expect("review");
    finished_job(&gateway, troubled, TriggerType::Manual, false, json!({})).await;
    let configure = format!("/api/v1/consolidation/configure/{troubled}");
    ok(gateway.put(&configure, &json!({"enabled": false})).send().await.expect("sent"), StatusCode::OK).await;
    let configure = format!("/api/v1/consolidation/configure/{crowded}");
    ok(gateway.put(&configure, &json!({"threshold": 1})).send().await.expect("sent"), StatusCode::OK).await;
    ingest(&gateway, crowded, &clustered_memories()[..2]).await;

    let attention = get(&gateway, "/api/v1/attention").await;
    let projects = attention["projects"].as_array().expect("projects");
    let listed: Vec<(Value, Value)> =
        projects.iter().map(|p| (p["project_id"].clone(), p["reasons"].clone())).collect();
    assert_eq!(listed.len(), 3, "{attention}");
    assert_eq!(listed[0], (json!(troubled), json!(["failed_jobs", "disabled"])));
    assert!(listed.contains(&(json!(reviewed), json!(["open_reviews"]))), "{attention}");
    assert!(listed.contains(&(json!(crowded), json!(["over_threshold"]))), "{attention}");
    assert!(!listed.iter().any(|(id, _)| *id == json!(quiet)));
    let troubled_row = &projects[0];
    assert_eq!(troubled_row["enabled"], false);
    assert_eq!(troubled_row["failed_jobs_7d"], 1);
    assert_eq!(troubled_row["last_job_status"], "failed");
    let crowded_row = projects.iter().find(|p| p["project_id"] == json!(crowded)).expect("crowded");
    assert_eq!((crowded_row["active"].as_i64(), crowded_row["threshold"].as_i64()), (Some(2), Some(1)));
    assert!(crowded_row["last_job_status"].is_null());
    let reviewed_row = projects.iter().find(|p| p["project_id"] == json!(reviewed)).expect("reviewed");
    assert_eq!(reviewed_row["open_reviews"], 1);

    let scoped = gateway.scoped(Method::GET, "/api/v1/attention", reviewed).send().await.expect("sent");
    let scoped = ok(scoped, StatusCode::OK).await;
    assert_eq!(scoped["projects"].as_array().map(Vec::len), Some(1));
    assert_eq!(scoped["projects"][0]["project_id"], json!(reviewed));
}

#[tokio::test]
async fn history_searches_by_job_id_prefix_or_error_text_and_lists_failed_jobs() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let completed = finished_job(&gateway, project, TriggerType::Manual, true, json!({})).await;
    let broke = finished_job(&gateway, project, TriggerType::Manual, false, json!({})).await;
    let other = finished_job(&gateway, project, TriggerType::Manual, false, json!({})).await;
    sqlx::query("UPDATE consolidation_jobs SET error_message = 'worker w-7 stopped heartbeating' WHERE id = $1")
        .bind(other.id)
        .execute(&gateway.env.db)
        .await
        .unwrap();
    let history = |query: String| {
        let gateway = &gateway;
        async move {
            let page = get(gateway, &format!("/api/v1/consolidation/history/{project}?{query}")).await;
            page["jobs"].as_array().expect("jobs").iter().map(|job| job["job_id"].clone()).collect::<Vec<_>>()
        }
    };

    assert_eq!(history("status=failed".to_owned()).await, vec![json!(other.id), json!(broke.id)]);
    assert_eq!(history("q=BROKE".to_owned()).await, vec![json!(broke.id)], "error text, any case");
    let prefix = &completed.id.to_string()[..8];
    assert_eq!(history(format!("q={}", prefix.to_uppercase())).await, vec![json!(completed.id)], "an id prefix");
    assert_eq!(history("q=heartbeat&status=failed".to_owned()).await, vec![json!(other.id)]);
    assert!(history("q=%25".to_owned()).await.is_empty(), "a wildcard is matched as itself");
    assert!(history("q=it_broke".to_owned()).await.is_empty(), "so is an underscore");
    for bad in ["q=".to_owned(), format!("q={}", "x".repeat(201)), "q=a%00b".to_owned()] {
        let response =
            gateway.get(&format!("/api/v1/consolidation/history/{project}?{bad}")).send().await.expect("sent");
        error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}
