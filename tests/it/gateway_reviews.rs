//! The review queue as the console reads and settles it (issue 25): each review with both
//! memories, filters, and settling every open review a filter matches after a preview.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

/// Opens a review of `older` against `newer` directly in the table (what the value guard writes).
async fn open_review(
    gateway: &TestGateway,
    project: Uuid,
    job: Option<Uuid>,
    pair: (Uuid, Uuid),
    similarity: f32,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO consolidation_reviews (id, project_id, job_id, kind, older_memory_id, newer_memory_id,
                                            older_version, newer_version, similarity, difference, suggestion, status)
         VALUES ($1, $2, $3, 'possible_update', $4, $5, 1, 1, $6,
                 '{\"kind\": \"value\", \"left\": [\"20\"], \"right\": [\"40\"]}', 'supersede', 'open')",
    )
    .bind(id)
    .bind(project)
    .bind(job)
    .bind(pair.0)
    .bind(pair.1)
    .bind(similarity)
    .execute(&gateway.env.db)
    .await
    .expect("review");
    id
}

/// Three pairs of memories (pool size 20 / 40 and the like), each pair's ids.
async fn pairs(gateway: &TestGateway, project: Uuid) -> Vec<(Uuid, Uuid)> {
    let mut pairs = Vec::new();
    for axis in 0..3 {
        let memories = [
            memory_json(&format!("pool {axis} size is 20 connections"), "learning", direction(axis, 0.0)),
            memory_json(&format!("pool {axis} size is 40 connections"), "learning", direction(axis, 0.01)),
        ];
        let ids = ingest(gateway, project, &memories).await;
        pairs.push((ids[0], ids[1]));
    }
    pairs
}

async fn listed(gateway: &TestGateway, project: Uuid, query: &str) -> Vec<Value> {
    let page = ok(
        gateway.get(&format!("/api/v1/projects/{project}/reviews?{query}")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    page["reviews"].as_array().cloned().unwrap_or_default()
}

async fn settle(gateway: &TestGateway, project: Uuid, body: Value) -> reqwest::Response {
    gateway.post(&format!("/api/v1/projects/{project}/reviews/settle"), &body).send().await.expect("sent")
}

#[tokio::test]
async fn a_listed_review_carries_both_memories_and_the_list_takes_kind_similarity_and_job_filters() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let pairs = pairs(&gateway, project).await;
    let job = pending_job(&gateway, project).await;
    let first = open_review(&gateway, project, Some(job), pairs[0], 0.99).await;
    let second = open_review(&gateway, project, None, pairs[1], 0.95).await;
    let third = open_review(&gateway, project, None, pairs[2], 0.91).await;
    // The newer memory of the second pair is gone.
    sqlx::query("DELETE FROM task_memories WHERE id = $1").bind(pairs[1].1).execute(&gateway.env.db).await.unwrap();

    let all = listed(&gateway, project, "").await;
    assert_eq!(all.len(), 3);
    let review = &all[0];
    assert_eq!(review["review_id"], json!(first));
    assert_eq!(review["older"]["id"], json!(pairs[0].0));
    assert_eq!(review["older"]["text"], "pool 0 size is 20 connections");
    assert_eq!(review["newer"]["text"], "pool 0 size is 40 connections");
    assert_eq!(review["newer"]["status"], "active");
    assert_eq!(review["newer"]["reuse_count"], 5);
    assert_eq!(review["newer"]["provenance"]["memory_type"], "learning");
    assert!(review["older"]["created_at"].is_string(), "{review}");
    assert_eq!(all[1]["review_id"], json!(second));
    assert!(all[1]["newer"].is_null() && all[1]["older"].is_object(), "{}", all[1]);

    let ids = |reviews: Vec<Value>| reviews.iter().map(|r| r["review_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(listed(&gateway, project, &format!("job_id={job}")).await), vec![json!(first)]);
    assert_eq!(ids(listed(&gateway, project, "min_similarity=0.94").await), vec![json!(first), json!(second)]);
    assert_eq!(ids(listed(&gateway, project, "min_similarity=0.92&max_similarity=0.96").await), vec![json!(second)]);
    assert_eq!(listed(&gateway, project, "kind=possible_update").await.len(), 3);
    // A single decision answers with both memories too.
    let rejected = gateway.post(&format!("/api/v1/reviews/{third}/reject"), &json!({})).send().await.expect("sent");
    let rejected = ok(rejected, StatusCode::OK).await;
    assert_eq!(rejected["older"]["text"], "pool 2 size is 20 connections", "{rejected}");
    assert_eq!(rejected["newer"]["status"], "active");
    for bad in ["min_similarity=2", "min_similarity=0.9&max_similarity=0.8", "kind=maybe", "job_id=x"] {
        let response = gateway.get(&format!("/api/v1/projects/{project}/reviews?{bad}")).send().await.expect("sent");
        error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}

#[tokio::test]
async fn settling_previews_the_count_then_decides_each_match_as_one_decision_and_skips_what_changed() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let pairs = pairs(&gateway, project).await;
    let high = open_review(&gateway, project, None, pairs[0], 0.99).await;
    let changed = open_review(&gateway, project, None, pairs[1], 0.98).await;
    let low = open_review(&gateway, project, None, pairs[2], 0.90).await;
    let filter = json!({"decision": "approve", "min_similarity": 0.95, "preview": true});

    let preview = ok(settle(&gateway, project, filter.clone()).await, StatusCode::OK).await;
    assert_eq!(preview, json!({"matching": 2}));
    assert_eq!(listed(&gateway, project, "status=open").await.len(), 3, "a preview changes nothing");

    // One memory of a matching review changes after the preview: approving it is refused.
    sqlx::query("UPDATE task_memories SET version = version + 1 WHERE id = $1")
        .bind(pairs[1].0)
        .execute(&gateway.env.db)
        .await
        .unwrap();
    let settled =
        ok(settle(&gateway, project, json!({"decision": "approve", "min_similarity": 0.95})).await, StatusCode::OK)
            .await;
    assert_eq!((settled["settled"].as_u64(), settled["remaining"].as_u64()), (Some(1), Some(0)), "{settled}");
    assert_eq!(settled["skipped"][0]["review_id"], json!(changed), "{settled}");
    assert!(settled["skipped"][0]["reason"].as_str().is_some_and(|r| r.contains(&pairs[1].0.to_string())));
    let approved = listed(&gateway, project, "status=approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["review_id"], json!(high));
    assert_eq!(approved[0]["decided_by"], "tester@example.com");
    assert_eq!(approved[0]["older"]["status"], "archived", "approving supersedes the older memory");
    let open: Vec<Value> = listed(&gateway, project, "status=open").await;
    assert_eq!(open.iter().map(|r| r["review_id"].clone()).collect::<Vec<_>>(), vec![json!(changed), json!(low)]);

    // Each settlement is an audit row and an admin action naming who, as a single decision.
    let manual: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consolidation_changes WHERE operation = 'review' AND changed_by = 'tester@example.com'",
    )
    .fetch_one(&gateway.env.db)
    .await
    .unwrap();
    assert_eq!(manual, 1);
    let actions: Vec<(String, String, Option<Uuid>)> =
        sqlx::query_as("SELECT actor, action, target_id FROM admin_actions WHERE project_id = $1")
            .bind(project)
            .fetch_all(&gateway.env.db)
            .await
            .unwrap();
    assert_eq!(actions, vec![("tester@example.com".to_owned(), "review_approved".to_owned(), Some(high))]);

    let rejected = ok(settle(&gateway, project, json!({"decision": "reject"})).await, StatusCode::OK).await;
    assert_eq!(rejected, json!({"settled": 2, "skipped": [], "remaining": 0}));
    assert!(listed(&gateway, project, "status=open").await.is_empty());
}

#[tokio::test]
async fn settling_refuses_a_bad_filter_another_projects_token_and_an_unknown_project() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let message = error(
        settle(&gateway, project, json!({"decision": "approve", "max_similarity": 1.5})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
    )
    .await;
    assert!(message.contains("max_similarity"), "{message}");
    error(
        settle(&gateway, project, json!({"decision": "maybe"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
    )
    .await;
    error(settle(&gateway, Uuid::new_v4(), json!({"decision": "reject"})).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let foreign = gateway
        .scoped(Method::POST, &format!("/api/v1/projects/{project}/reviews/settle"), Uuid::new_v4())
        .json(&json!({"decision": "reject"}))
        .send()
        .await
        .expect("sent");
    error(foreign, StatusCode::FORBIDDEN, "forbidden").await;
}
