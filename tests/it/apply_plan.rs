//! `POST /consolidation/jobs/{dry_run_id}/apply`: a dry run's own plan applied as reviewed,
//! leaving out what changed since; and `GET /consolidation/jobs/{id}/timeline`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

async fn dry_run(gateway: &TestGateway, project: Uuid) -> Value {
    let body = json!({"project_id": project, "options": {"dry_run": true}});
    let accepted = gateway.post("/api/v1/consolidation/trigger", &body).send().await.expect("sent");
    let job_id = ok(accepted, StatusCode::ACCEPTED).await["job_id"].as_str().expect("job id").to_owned();
    finished_status(gateway, &job_id).await
}

fn apply_path(job_id: &str) -> String {
    format!("/api/v1/consolidation/jobs/{job_id}/apply")
}

/// The planned merges as (sorted source ids, merged text).
fn planned_merges(dry: &Value) -> Vec<(Vec<String>, String)> {
    let mut merges: Vec<(Vec<String>, String)> = dry["result"]["plan"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|merge| {
            let mut sources: Vec<String> = merge["sources"]
                .as_array()
                .expect("sources")
                .iter()
                .map(|s| s["id"].as_str().expect("id").to_owned())
                .collect();
            sources.sort();
            (sources, merge["memory"]["execution_summary"].as_str().expect("text").to_owned())
        })
        .collect();
    merges.sort();
    merges
}

#[tokio::test]
async fn a_dry_runs_plan_is_applied_as_reviewed_leaving_out_the_merge_whose_source_changed_since() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;

    let dry = dry_run(&gateway, project).await;
    assert_eq!(dry["status"], "completed", "{dry}");
    let merges = planned_merges(&dry);
    assert_eq!(merges.len(), 2, "the upload and the settings clusters: {merges:?}");
    let (upload, settings) = match merges[0].0.len() {
        3 => (merges[0].clone(), merges[1].clone()),
        _ => (merges[1].clone(), merges[0].clone()),
    };
    // After the review, an agent's edit reaches one source of the settings cluster.
    let changed = settings.0[0].clone();
    ok(
        gateway.post(&format!("/api/v1/memories/{changed}/archive"), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;

    let dry_id = dry["job_id"].as_str().expect("id").to_owned();
    let accepted = gateway.post(&apply_path(&dry_id), &json!(null)).send().await.expect("sent");
    let location = accepted.headers()["location"].to_str().expect("ascii").to_owned();
    let applied_id = ok(accepted, StatusCode::ACCEPTED).await["job_id"].as_str().expect("job id").to_owned();
    assert!(location.ends_with(&applied_id), "{location}");
    let applied = finished_status(&gateway, &applied_id).await;
    assert_eq!(applied["status"], "completed", "{applied}");

    let account = &applied["result"]["applied_plan"];
    assert_eq!(account["dry_run_id"], dry_id.as_str());
    let planned = dry["result"]["plan"]["totals"].clone();
    let promotions = planned["promotions"].as_u64().expect("promotions");
    assert_eq!(promotions, 2, "each cluster's merged memory is promoted: {planned}");
    // The upload merge and its promotion stand; the settings merge and its promotion are left out.
    assert_eq!(account["applied"], 2, "{account}");
    let left_out = account["left_out"].as_array().expect("left out");
    let kinds: Vec<&str> = left_out.iter().map(|l| l["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["merge", "promotion"], "{account}");
    let mut left_ids: Vec<String> = left_out[0]["memory_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_owned())
        .collect();
    left_ids.sort();
    assert_eq!(left_ids, settings.0);
    assert!(left_out[0]["reason"].as_str().expect("reason").contains(&changed), "{account}");
    assert!(left_out[1]["reason"].as_str().expect("reason").contains("left out"), "{account}");

    // Exactly the reviewed text, over exactly the reviewed sources.
    let created = applied["result"]["created_memory_ids"].as_array().expect("created");
    assert_eq!(created.len(), 1, "{applied}");
    let memory = ok(
        gateway.get(&format!("/api/v1/memories/{}", created[0].as_str().expect("id"))).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(memory["execution_summary"], upload.1.as_str(), "{memory}");
    for source in &upload.0 {
        let source =
            ok(gateway.get(&format!("/api/v1/memories/{source}")).send().await.expect("sent"), StatusCode::OK).await;
        assert_eq!(source["is_duplicate"], true, "{source}");
    }
    for source in &settings.0 {
        let source =
            ok(gateway.get(&format!("/api/v1/memories/{source}")).send().await.expect("sent"), StatusCode::OK).await;
        assert_eq!(source["is_duplicate"], false, "the left-out merge changed nothing: {source}");
    }

    // Once applied, the plan is spent; a real job's result is no plan to apply.
    let again = error(
        gateway.post(&apply_path(&dry_id), &json!(null)).send().await.expect("sent"),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(again.contains(&applied_id), "{again}");
    let not_dry = error(
        gateway.post(&apply_path(&applied_id), &json!(null)).send().await.expect("sent"),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(not_dry.contains("not a completed dry run"), "{not_dry}");
    error(
        gateway.post(&apply_path(&Uuid::new_v4().to_string()), &json!(null)).send().await.expect("sent"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    error(
        gateway.post(&apply_path("nope"), &json!(null)).send().await.expect("sent"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;

    // Who applied which dry run's plan is an admin action.
    let audit = ok(gateway.get("/api/v1/audit?action=plan_applied").send().await.expect("sent"), StatusCode::OK).await;
    let actions = audit["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{audit}");
    assert_eq!(actions[0]["target_id"], applied_id.as_str());
    assert_eq!(actions[0]["details"]["dry_run_id"], dry_id.as_str());
    assert_eq!(actions[0]["actor"], "tester@example.com");

    // Outside services publish the same command: a second application of a spent plan fails its
    // job and changes nothing.
    let mut repeat = trigger(project, json!({"dry_run": false}));
    repeat.plan_of = dry_id.parse().ok();
    publish_trigger(&gateway.env.bus, &repeat).await;
    let refused = wait_for_status(&gateway.env, repeat.job_id, "failed", Duration::from_secs(30)).await;
    assert!(refused.error_message.unwrap_or_default().contains(&applied_id));

    // The job that applied the plan rolls back like any other.
    let rollback = post_rollback(&gateway, json!({"consolidation_id": applied_id})).await;
    assert!(rollback.status().is_success(), "{:?}", rollback.text().await);
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_jobs_timeline_shows_its_phases_attempts_worker_and_events_in_order() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let job = consolidate(&gateway, project).await;
    let job_id = job["job_id"].as_str().expect("id");

    let timeline = ok(
        gateway.get(&format!("/api/v1/consolidation/jobs/{job_id}/timeline")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (timeline["status"].as_str(), timeline["attempts"].as_i64()),
        (Some("completed"), Some(1)),
        "{timeline}"
    );
    assert!(timeline["worker_id"].as_str().is_some_and(|id| !id.is_empty()), "{timeline}");
    let phases: Vec<&str> =
        timeline["phases"].as_array().expect("phases").iter().map(|p| p["name"].as_str().expect("name")).collect();
    assert_eq!(phases, ["loading", "planning", "applying"]);
    let planning = &timeline["phases"][1];
    assert_eq!(planning["start_ms"], timeline["phases"][0]["ms"], "{timeline}");
    assert!(timeline["steps"].as_array().expect("steps").iter().any(|s| s["name"] == "clustering"), "{timeline}");
    let kinds: Vec<&str> =
        timeline["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds.first(), Some(&"queued"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
    assert!(kinds.contains(&"started") && kinds.contains(&"progress"), "{kinds:?}");
    let sequences: Vec<u64> =
        timeline["events"].as_array().expect("events").iter().map(|e| e["sequence"].as_u64().expect("seq")).collect();
    assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]), "{sequences:?}");
    assert!(timeline["cost"]["total_ms"].as_f64().is_some(), "{timeline}");

    error(
        gateway.get(&format!("/api/v1/consolidation/jobs/{}/timeline", Uuid::new_v4())).send().await.expect("sent"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_plan_is_applied_only_within_its_projects_scope_while_kept_and_while_the_project_is_open() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let other = gateway.project().await;
    ingest(&gateway, project, &clustered_memories()).await;
    let dry = dry_run(&gateway, project).await;
    let dry_id = dry["job_id"].as_str().expect("id").to_owned();

    // Another project's token sees neither the dry run nor its timeline.
    let foreign = gateway.scoped(Method::POST, &apply_path(&dry_id), other).send().await.expect("sent");
    error(foreign, StatusCode::NOT_FOUND, "not_found").await;
    let timeline = format!("/api/v1/consolidation/jobs/{dry_id}/timeline");
    error(
        gateway.scoped(Method::GET, &timeline, other).send().await.expect("sent"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A paused project applies nothing.
    let configure = format!("/api/v1/consolidation/configure/{project}");
    ok(gateway.put(&configure, &json!({"enabled": false})).send().await.expect("sent"), StatusCode::OK).await;
    let paused = error(
        gateway.post(&apply_path(&dry_id), &json!(null)).send().await.expect("sent"),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(paused.contains("disabled"), "{paused}");
    ok(gateway.put(&configure, &json!({"enabled": true})).send().await.expect("sent"), StatusCode::OK).await;

    // A plan older than the rollback window is gone.
    sqlx::query("UPDATE consolidation_plans SET created_at = now() - interval '8 days' WHERE job_id = $1")
        .bind(dry_id.parse::<Uuid>().expect("uuid"))
        .execute(&gateway.env.db)
        .await
        .expect("backdated");
    let old = error(
        gateway.post(&apply_path(&dry_id), &json!(null)).send().await.expect("sent"),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(old.contains("not kept"), "{old}");
    let untouched: i64 = sqlx::query_scalar("SELECT count(*) FROM consolidation_jobs WHERE plan_of IS NOT NULL")
        .fetch_one(&gateway.env.db)
        .await
        .expect("count");
    assert_eq!(untouched, 0, "no refused application left a job");
    worker.stop().await;
    gateway.stop().await;
}
