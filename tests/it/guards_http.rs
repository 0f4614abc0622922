//! Guards through the HTTP API (DESIGN.md §7, §11): cancel, and the review queue.

use std::time::Duration;

use consolidator::store::{jobs, memories};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

async fn cancel(gateway: &TestGateway, job_id: Uuid) -> reqwest::Response {
    gateway.post(&format!("/api/v1/consolidation/jobs/{job_id}/cancel"), &json!({})).send().await.expect("sent")
}

#[tokio::test]
async fn cancel_ends_a_pending_job_at_once_and_answers_409_once_it_has_ended_and_404_for_an_unknown_one() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job_id = pending_job(&gateway, project).await;

    let cancelled = ok(cancel(&gateway, job_id).await, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancel_requested_by"].as_str().is_some_and(|by| !by.is_empty()), "{cancelled}");
    let message = error(cancel(&gateway, job_id).await, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("already ended (cancelled)"), "{message}");
    let events = gateway.get(&format!("/api/v1/consolidation/status/{job_id}/events")).send().await.expect("sent");
    let (events, ended) = read_sse(events, WAIT).await;
    assert!(ended, "the event stream of a cancelled job ends");
    assert_eq!(events.last().map(|(name, _, _)| name.as_str()), Some("cancelled"), "{events:?}");
    error(cancel(&gateway, Uuid::new_v4()).await, StatusCode::NOT_FOUND, "not_found").await;
    error(
        gateway.post("/api/v1/consolidation/jobs/not-a-uuid/cancel", &json!({})).send().await.expect("sent"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let foreign = gateway
        .scoped(Method::POST, &format!("/api/v1/consolidation/jobs/{job_id}/cancel"), Uuid::new_v4())
        .send()
        .await
        .expect("sent");
    assert!(matches!(foreign.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{}", foreign.status());

    let history = ok(
        gateway.get(&format!("/api/v1/consolidation/history/{project}?status=cancelled")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(history["jobs"].as_array().map(Vec::len), Some(1), "the history filter knows `cancelled`");
    gateway.stop().await;
}

/// Triggers through the API with `options` and returns the job id.
async fn trigger(gateway: &TestGateway, project: Uuid, options: Value) -> Uuid {
    let body = json!({"project_id": project, "options": options});
    let accepted =
        ok(gateway.post("/api/v1/consolidation/trigger", &body).send().await.expect("sent"), StatusCode::ACCEPTED)
            .await;
    accepted["job_id"].as_str().and_then(|id| id.parse().ok()).expect("job id")
}

#[tokio::test]
async fn a_cancel_racing_a_running_job_either_wins_entirely_or_is_409_after_its_commit() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    for attempt in 0..4 {
        let project = gateway.project().await;
        fixtures::insert(&gateway.env.db, project, &Scenario::new().all()).await;
        let job_id = trigger(&gateway, project, json!({})).await;
        // Later each round, so the cancel lands in different phases.
        tokio::time::sleep(Duration::from_millis(attempt * 15)).await;
        let answer = cancel(&gateway, job_id).await.status();
        let ended = crate::harness::eventually(WAIT, || async {
            jobs::get(&gateway.env.db, job_id).await.ok().flatten().filter(|job| job.is_finished())
        })
        .await
        .expect("the job ends");
        let changed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM task_memories WHERE project_id = $1 AND (is_duplicate OR is_archived)",
        )
        .bind(project)
        .fetch_one(&gateway.env.db)
        .await
        .unwrap();
        match answer {
            StatusCode::OK | StatusCode::ACCEPTED => {
                assert_eq!(ended.status, "cancelled", "attempt {attempt}: {answer}");
                assert_eq!(changed, 0, "a cancelled job changed nothing");
            }
            StatusCode::CONFLICT => {
                assert_eq!(ended.status, "completed", "attempt {attempt}");
                assert_eq!(changed, 6);
            }
            other => panic!("attempt {attempt}: unexpected answer {other}"),
        }
    }
    worker.stop().await;
    gateway.stop().await;
}

/// Every audit row of a memory: (operation, whether it was manual, new state).
async fn audit_of(gateway: &TestGateway, memory_id: Uuid) -> Vec<(String, bool, Value)> {
    sqlx::query_as::<_, (String, bool, Option<sqlx::types::Json<Value>>)>(
        "SELECT operation, job_id IS NULL, new_state FROM consolidation_changes WHERE memory_id = $1 ORDER BY id",
    )
    .bind(memory_id)
    .fetch_all(&gateway.env.db)
    .await
    .expect("audit rows")
    .into_iter()
    .map(|(operation, manual, state)| (operation, manual, state.map(|s| s.0).unwrap_or(Value::Null)))
    .collect()
}

async fn reviews(gateway: &TestGateway, project: Uuid, status: &str) -> Vec<Value> {
    let path = format!("/api/v1/projects/{project}/reviews?status={status}");
    let page = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    page["reviews"].as_array().cloned().unwrap_or_default()
}

async fn decide(gateway: &TestGateway, review: &Value, decision: &str) -> reqwest::Response {
    let id = review["review_id"].as_str().expect("review id");
    gateway.post(&format!("/api/v1/reviews/{id}/{decision}"), &json!({})).send().await.expect("sent")
}

#[tokio::test]
async fn a_rejected_review_is_audited_and_its_pair_is_not_proposed_again() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let (paraphrases, newer) = router_addresses();
    fixtures::insert(&gateway.env.db, project, &[paraphrases[0].clone(), newer.clone()]).await;
    let first = trigger(&gateway, project, json!({})).await;
    wait_for_status(&gateway.env, first, "completed", WAIT).await;

    let open = reviews(&gateway, project, "open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["older_memory_id"], paraphrases[0].id.to_string());
    assert_eq!(open[0]["suggestion"], "supersede");
    let rejected = ok(decide(&gateway, &open[0], "reject").await, StatusCode::OK).await;
    assert_eq!(rejected["status"], "rejected");
    error(decide(&gateway, &open[0], "approve").await, StatusCode::CONFLICT, "conflict").await;
    let audit = audit_of(&gateway, paraphrases[0].id).await;
    assert!(audit.iter().any(|(operation, manual, _)| operation == "review" && *manual), "{audit:?}");

    let second = trigger(&gateway, project, json!({"mode": "full"})).await;
    let job = wait_for_status(&gateway.env, second, "completed", WAIT).await;
    worker.stop().await;
    let guard = &job.result.expect("result").0["guards"]["value_guard"];
    assert_eq!((guard["judged_pairs"].as_i64(), guard["reviews_proposed"].as_i64()), (Some(1), Some(0)), "{guard}");
    assert!(reviews(&gateway, project, "open").await.is_empty());
    let both = [paraphrases[0].id, newer.id];
    for id in both {
        let memory = memories::get(&gateway.env.db, id).await.unwrap().unwrap();
        assert!(!memory.is_duplicate && !memory.is_archived, "a rejected pair stays apart, both visible");
    }
    error(
        gateway.get(&format!("/api/v1/projects/{project}/reviews?status=maybe")).send().await.expect("sent"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    error(decide(&gateway, &json!({"review_id": Uuid::new_v4()}), "approve").await, StatusCode::NOT_FOUND, "not_found")
        .await;
    gateway.stop().await;
}

#[tokio::test]
async fn approving_checks_versions_then_supersedes_the_older_memory_in_one_audited_change() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let (paraphrases, newer) = router_addresses();
    let older = paraphrases[0].clone();
    fixtures::insert(&gateway.env.db, project, &[older.clone(), newer.clone()]).await;
    let first = trigger(&gateway, project, json!({})).await;
    wait_for_status(&gateway.env, first, "completed", WAIT).await;
    let open = reviews(&gateway, project, "open").await;
    assert_eq!(open.len(), 1);

    // A reuse is usage, not a change: it leaves the review's versions alone.
    ok(
        gateway.post(&format!("/api/v1/memories/{}/reuse", newer.id), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    let reviewed = memories::get(&gateway.env.db, newer.id).await.unwrap().unwrap();
    assert_eq!(reviewed.version, open[0]["newer_version"].as_i64().expect("newer_version"), "{}", open[0]);
    // The newer memory changes after the review was opened: approving now is refused.
    let archive = format!("/api/v1/memories/{}/archive", newer.id);
    ok(gateway.post(&archive, &json!({})).send().await.expect("sent"), StatusCode::OK).await;
    let unarchive = format!("/api/v1/memories/{}/unarchive", newer.id);
    ok(gateway.post(&unarchive, &json!({})).send().await.expect("sent"), StatusCode::OK).await;
    let message = error(decide(&gateway, &open[0], "approve").await, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains(&newer.id.to_string()), "{message}");
    assert!(!memories::get(&gateway.env.db, older.id).await.unwrap().unwrap().is_archived, "nothing applied");

    // The next job brings the open review up to date; approving then applies it.
    let second = trigger(&gateway, project, json!({"mode": "full"})).await;
    wait_for_status(&gateway.env, second, "completed", WAIT).await;
    worker.stop().await;
    let open = reviews(&gateway, project, "open").await;
    assert_eq!(open.len(), 1);
    let approved = ok(decide(&gateway, &open[0], "approve").await, StatusCode::OK).await;
    assert_eq!(approved["status"], "approved");
    let hidden = memories::get(&gateway.env.db, older.id).await.unwrap().unwrap();
    assert_eq!((hidden.is_archived, hidden.archive_reason.map(|reason| reason.as_str())), (true, Some("superseded")));
    let audit = audit_of(&gateway, older.id).await;
    let archive =
        audit.iter().find(|(operation, manual, _)| operation == "archive" && *manual).expect("an archive row");
    assert_eq!(archive.2["superseded_by"], newer.id.to_string());
    let detail =
        ok(gateway.get(&format!("/api/v1/memories/{}", older.id)).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(detail["provenance"]["superseded_by"], newer.id.to_string(), "the memory names what superseded it");
    assert!(audit.iter().any(|(operation, _, _)| operation == "review"));
    assert_eq!(reviews(&gateway, project, "approved").await.len(), 1);
    gateway.stop().await;
}

#[tokio::test]
async fn a_review_of_another_project_is_answered_as_an_unknown_one_before_anything_is_locked() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let pair =
        [memory_json("older", "learning", direction(0, 0.0)), memory_json("newer", "learning", direction(0, 0.01))];
    let ids = ingest(&gateway, project, &pair).await;
    let review = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO consolidation_reviews (id, project_id, kind, older_memory_id, newer_memory_id, older_version,
                                            newer_version, similarity, difference, suggestion, status)
         VALUES ($1, $2, 'possible_update', $3, $4, 1, 1, 0.95, '{}', 'supersede', 'open')",
    )
    .bind(review)
    .bind(project)
    .bind(ids[0])
    .bind(ids[1])
    .execute(&gateway.env.db)
    .await
    .expect("review");
    // Someone of the review's own project is deciding it: its row is locked meanwhile.
    let mut holder = gateway.env.db.begin().await.expect("transaction");
    sqlx::query("SELECT 1 FROM consolidation_reviews WHERE id = $1 FOR UPDATE")
        .bind(review)
        .execute(&mut *holder)
        .await
        .expect("locked");

    let other = Uuid::new_v4();
    let answer = |id: Uuid, decision: &'static str| {
        gateway.scoped(Method::POST, &format!("/api/v1/reviews/{id}/{decision}"), other).timeout(Duration::from_secs(5))
    };
    for decision in ["approve", "reject"] {
        let foreign = answer(review, decision).send().await.expect("answered without waiting for the lock");
        let foreign = (foreign.status(), foreign.json::<Value>().await.expect("json"));
        let unknown_id = Uuid::new_v4();
        let unknown = answer(unknown_id, decision).send().await.expect("sent");
        let unknown = (unknown.status(), unknown.json::<Value>().await.expect("json"));
        assert_eq!(foreign.0, StatusCode::NOT_FOUND, "{decision}: {foreign:?}");
        assert_eq!(foreign.0, unknown.0);
        assert_eq!(foreign.1["error"], unknown.1["error"]);
        let unknown_message = unknown.1["message"].as_str().expect("message").replace(&unknown_id.to_string(), "ID");
        assert_eq!(foreign.1["message"].as_str().map(|m| m.replace(&review.to_string(), "ID")), Some(unknown_message));
        assert!(!foreign.1.to_string().contains(&project.to_string()), "the answer names no project: {foreign:?}");
    }
    holder.rollback().await.expect("released");
    let open = reviews(&gateway, project, "open").await;
    assert_eq!(open.len(), 1, "the foreign attempts changed nothing");
    gateway.stop().await;
}
