//! Gateway: memory ingest, listing, search, and the manual archive / unarchive / reuse.

use consolidator::store::memories;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

async fn list(gateway: &TestGateway, project: Uuid, query: &str) -> Value {
    let response = gateway.get(&format!("/api/v1/projects/{project}/memories?{query}")).send().await.expect("sent");
    ok(response, StatusCode::OK).await
}

fn ids_of(page: &Value, key: &str) -> Vec<Uuid> {
    page[key]
        .as_array()
        .expect("array")
        .iter()
        .map(|item| {
            let memory = if item.get("memory").is_some() { &item["memory"] } else { item };
            memory["id"].as_str().and_then(|id| id.parse().ok()).expect("id")
        })
        .collect()
}

#[tokio::test]
async fn a_batch_is_stored_whole_and_fixes_the_projects_dimension() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let batch = [
        memory_json("Fixed the flaky login test.", "error_fix", direction(0, 0.1)),
        memory_json("The cache is keyed by tenant.", "codebase_knowledge", direction(3, 0.0)),
    ];

    let response = gateway.post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": batch})).send();
    let body = ok(response.await.expect("sent"), StatusCode::CREATED).await;
    assert_eq!(body["inserted"], 2);
    assert_eq!(body["embedding_dim"], 16);
    let project_view = gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent");
    let project_view = ok(project_view, StatusCode::OK).await;
    assert_eq!((project_view["embedding_dim"].clone(), project_view["active_memories"].clone()), (json!(16), json!(2)));

    let page = list(&gateway, project, "include_embedding=true").await;
    let stored = page["memories"].as_array().expect("memories");
    assert_eq!(stored.len(), 2);
    let first = stored.iter().find(|m| m["id"] == batch[0]["id"]).expect("first memory listed");
    assert_eq!(first["execution_summary"], "Fixed the flaky login test.");
    assert_eq!(first["files"], json!(["src/lib.rs"]));
    assert_eq!(first["context_embedding"].as_array().map(Vec::len), Some(16));
    let plain = list(&gateway, project, "").await;
    assert!(plain["memories"][0].get("context_embedding").is_none(), "embeddings only when asked");
    gateway.stop().await;
}

#[tokio::test]
async fn an_invalid_memory_is_named_and_nothing_of_its_batch_is_stored() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    ingest(&gateway, project, &[memory_json("first", "learning", direction(0, 0.0))]).await;
    let good = || memory_json("fine", "learning", direction(1, 0.0));
    let mut wrong_dim = good();
    wrong_dim["context_embedding"] = json!([1.0, 0.0, 0.0]);
    let mut bad_type = good();
    bad_type["memory_type"] = json!("gossip");
    let mut empty = good();
    empty["execution_summary"] = json!("   ");
    let mut zero = good();
    zero["context_embedding"] = json!(vec![0.0; 16]);
    let mut negative = good();
    negative["reused_count"] = json!(-1);
    let mut many_tags = good();
    many_tags["tags"] = json!((0..65).map(|i| format!("t{i}")).collect::<Vec<_>>());
    let mut unknown_field = good();
    unknown_field["colour"] = json!("red");
    let cases = [
        (wrong_dim, "memories[1].context_embedding"),
        (bad_type, "memories[1].memory_type"),
        (empty, "memories[1].execution_summary"),
        (zero, "memories[1].context_embedding"),
        (negative, "memories[1].reused_count"),
        (many_tags, "memories[1].tags"),
        (unknown_field, "colour"),
    ];
    for (bad, field) in cases {
        let body = json!({"memories": [good(), bad]});
        let response = gateway.post(&format!("/api/v1/projects/{project}/memories"), &body).send().await.expect("sent");
        let message = error(response, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
        assert!(message.contains(field), "expected {field} in {message}");
    }
    let empty_batch = gateway.post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": []})).send();
    error(empty_batch.await.expect("sent"), StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
    assert_eq!(list(&gateway, project, "").await["memories"].as_array().map(Vec::len), Some(1));
    gateway.stop().await;
}

#[tokio::test]
async fn a_first_batch_may_not_mix_dimensions() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let batch = [memory_json("a", "learning", vec![1.0, 0.0]), memory_json("b", "learning", vec![1.0, 0.0, 0.0])];

    let response = gateway.post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": batch})).send();
    let message = error(response.await.expect("sent"), StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
    assert!(message.contains("memories[1].context_embedding"), "{message}");
    let read =
        ok(gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(read["embedding_dim"], Value::Null, "a refused batch fixes nothing");
    gateway.stop().await;
}

#[tokio::test]
async fn too_many_memories_in_one_batch_is_413() {
    let gateway = TestGateway::start_with(|config| config.ingest_max_batch = 2).await;
    let project = gateway.project().await;
    let batch: Vec<Value> = (0..3).map(|i| memory_json(&format!("m{i}"), "learning", direction(i, 0.0))).collect();

    let response = gateway.post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": batch})).send();
    error(response.await.expect("sent"), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    gateway.stop().await;
}

#[tokio::test]
async fn ingest_answers_409_for_an_existing_id_404_for_an_unknown_project_and_403_outside_the_token() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let first = memory_json("first", "learning", direction(0, 0.0));
    ingest(&gateway, project, std::slice::from_ref(&first)).await;

    let again = gateway.post(&format!("/api/v1/projects/{project}/memories"), &json!({"memories": [first]})).send();
    error(again.await.expect("sent"), StatusCode::CONFLICT, "conflict").await;
    let body = json!({"memories": [memory_json("x", "learning", direction(0, 0.0))]});
    let unknown = gateway.post(&format!("/api/v1/projects/{}/memories", Uuid::new_v4()), &body).send();
    error(unknown.await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    let other = gateway.scoped(Method::POST, &format!("/api/v1/projects/{project}/memories"), Uuid::new_v4());
    error(other.json(&body).send().await.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    let listing = gateway.scoped(Method::GET, &format!("/api/v1/projects/{project}/memories"), Uuid::new_v4());
    error(listing.send().await.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    let unknown_list = gateway.get(&format!("/api/v1/projects/{}/memories", Uuid::new_v4())).send();
    error(unknown_list.await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}

#[tokio::test]
async fn listing_hides_archived_and_duplicate_memories_unless_asked_and_filters_by_type() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let ids = ingest(
        &gateway,
        project,
        &[
            memory_json("kept", "learning", direction(0, 0.0)),
            memory_json("archived", "learning", direction(1, 0.0)),
            memory_json("duplicate", "warning", direction(2, 0.0)),
            memory_json("a decision", "decision", direction(3, 0.0)),
        ],
    )
    .await;
    ok(
        gateway.post(&format!("/api/v1/memories/{}/archive", ids[1]), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    let mut conn = gateway.env.db.acquire().await.expect("connection");
    memories::mark_duplicates(&mut conn, &[ids[2]], &[ids[0]]).await.expect("marked");
    drop(conn);

    let sorted = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids
    };
    assert_eq!(ids_of(&list(&gateway, project, "").await, "memories"), sorted(vec![ids[0], ids[3]]));
    assert_eq!(
        ids_of(&list(&gateway, project, "include_archived=true").await, "memories"),
        sorted(vec![ids[0], ids[1], ids[3]])
    );
    assert_eq!(
        ids_of(&list(&gateway, project, "include_archived=true&include_duplicates=true").await, "memories"),
        sorted(ids.clone())
    );
    assert_eq!(ids_of(&list(&gateway, project, "memory_type=decision").await, "memories"), vec![ids[3]]);
    for query in ["memory_type=gossip", "limit=0", "limit=501", "cursor=nope", "include_archived=maybe"] {
        let response = gateway.get(&format!("/api/v1/projects/{project}/memories?{query}")).send().await.expect("sent");
        error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    gateway.stop().await;
}

#[tokio::test]
async fn listing_pages_in_a_stable_order_without_gaps_or_repeats() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let batch: Vec<Value> = (0..7).map(|i| memory_json(&format!("m{i}"), "learning", direction(i, 0.0))).collect();
    let mut expected = ingest(&gateway, project, &batch).await;
    expected.sort();

    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    loop {
        let page = list(&gateway, project, &query).await;
        seen.extend(ids_of(&page, "memories"));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    gateway.stop().await;
}

#[tokio::test]
async fn search_ranks_by_similarity_and_hides_archived_and_duplicates_unless_asked() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let ids = ingest(
        &gateway,
        project,
        &[
            memory_json("closest", "learning", direction(0, 0.05)),
            memory_json("close", "decision", direction(0, 0.4)),
            memory_json("far", "learning", direction(5, 0.0)),
            memory_json("archived twin", "learning", direction(0, 0.0)),
            memory_json("duplicate twin", "learning", direction(0, 0.01)),
        ],
    )
    .await;
    ok(
        gateway.post(&format!("/api/v1/memories/{}/archive", ids[3]), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    let mut conn = gateway.env.db.acquire().await.expect("connection");
    memories::mark_duplicates(&mut conn, &[ids[4]], &[ids[0]]).await.expect("marked");
    drop(conn);
    let path = format!("/api/v1/projects/{project}/memories/search");
    let search = |body: Value| {
        let request = gateway.post(&path, &body);
        async move { ok(request.send().await.expect("sent"), StatusCode::OK).await }
    };
    let query = direction(0, 0.0);

    let hits = search(json!({"embedding": query, "limit": 3})).await;
    assert_eq!(ids_of(&hits, "results"), vec![ids[0], ids[1], ids[2]]);
    let top = hits["results"][0]["similarity"].as_f64().expect("similarity");
    assert!(top > 0.99 && top <= 1.0, "{top}");
    let with_hidden =
        search(json!({"embedding": query, "limit": 2, "include_archived": true, "include_duplicates": true})).await;
    assert_eq!(ids_of(&with_hidden, "results"), vec![ids[3], ids[4]]);
    let decisions = search(json!({"embedding": query, "memory_type": "decision"})).await;
    assert_eq!(ids_of(&decisions, "results"), vec![ids[1]]);
    let close_only = search(json!({"embedding": query, "min_similarity": 0.5})).await;
    assert_eq!(ids_of(&close_only, "results"), vec![ids[0], ids[1]]);

    for (body, field) in [
        (json!({"embedding": [1.0, 0.0]}), "embedding"),
        (json!({"embedding": query, "limit": 0}), "limit"),
        (json!({"embedding": query, "memory_type": "gossip"}), "memory_type"),
    ] {
        let response = gateway.post(&format!("/api/v1/projects/{project}/memories/search"), &body).send().await;
        let message = error(response.expect("sent"), StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
        assert!(message.contains(field), "{message}");
    }
    let elsewhere =
        gateway.scoped(Method::POST, &format!("/api/v1/projects/{project}/memories/search"), Uuid::new_v4());
    error(elsewhere.json(&json!({"embedding": query})).send().await.expect("sent"), StatusCode::FORBIDDEN, "forbidden")
        .await;
    let unknown =
        gateway.post(&format!("/api/v1/projects/{}/memories/search", Uuid::new_v4()), &json!({"embedding": query}));
    error(unknown.send().await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}

async fn audit_rows(gateway: &TestGateway, memory: Uuid) -> Vec<(Option<Uuid>, String, String, Value, Value)> {
    sqlx::query_as::<_, (Option<Uuid>, String, String, sqlx::types::Json<Value>, sqlx::types::Json<Value>)>(
        "SELECT job_id, operation, changed_by, previous_state, new_state FROM consolidation_changes
          WHERE memory_id = $1 ORDER BY id",
    )
    .bind(memory)
    .fetch_all(&gateway.env.db)
    .await
    .expect("audit rows")
    .into_iter()
    .map(|(job, operation, by, previous, new)| (job, operation, by, previous.0, new.0))
    .collect()
}

#[tokio::test]
async fn archive_unarchive_and_reuse_change_the_memory_and_are_audited() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let id = ingest(&gateway, project, &[memory_json("m", "learning", direction(0, 0.0))]).await[0];

    let archived = gateway.post(&format!("/api/v1/memories/{id}/archive"), &json!({"reason": "obsolete API"})).send();
    let archived = ok(archived.await.expect("sent"), StatusCode::OK).await;
    assert_eq!((archived["is_archived"].clone(), archived["archive_reason"].clone()), (json!(true), json!("manual")));
    let restored = gateway.request(Method::POST, &format!("/api/v1/memories/{id}/unarchive")).send().await;
    let restored = ok(restored.expect("sent"), StatusCode::OK).await;
    assert_eq!(restored["is_archived"], false);
    let unarchived_version = restored["version"].clone();
    let reused = ok(
        gateway.post(&format!("/api/v1/memories/{id}/reuse"), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reused["reused_count"], 6);

    let rows = audit_rows(&gateway, id).await;
    let operations: Vec<&str> = rows.iter().map(|row| row.1.as_str()).collect();
    assert_eq!(operations, ["archive", "unarchive", "reuse"]);
    assert!(rows.iter().all(|row| row.0.is_none() && row.2 == "tester@example.com"), "{rows:?}");
    assert_eq!(rows[0].3["is_archived"], false);
    assert_eq!(rows[0].4["is_archived"], true);
    assert_eq!((rows[2].3["reused_count"].clone(), rows[2].4["reused_count"].clone()), (json!(5), json!(6)));
    assert_eq!(reused["version"], unarchived_version, "a reuse is usage, not an edit: the version stays");
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM consolidation_changes WHERE memory_id = $1 ORDER BY id LIMIT 1")
            .bind(id)
            .fetch_one(&gateway.env.db)
            .await
            .expect("reason");
    assert_eq!(reason, "obsolete API");
    gateway.stop().await;
}

#[tokio::test]
async fn manual_actions_answer_409_404_and_400_as_they_should() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let id = ingest(&gateway, project, &[memory_json("m", "learning", direction(0, 0.0))]).await[0];

    let unarchive = gateway.post(&format!("/api/v1/memories/{id}/unarchive"), &json!({})).send().await.expect("sent");
    error(unarchive, StatusCode::CONFLICT, "conflict").await;
    ok(gateway.post(&format!("/api/v1/memories/{id}/archive"), &json!({})).send().await.expect("sent"), StatusCode::OK)
        .await;
    let twice = gateway.post(&format!("/api/v1/memories/{id}/archive"), &json!({})).send().await.expect("sent");
    error(twice, StatusCode::CONFLICT, "conflict").await;
    for action in ["archive", "unarchive", "reuse"] {
        let unknown = gateway.post(&format!("/api/v1/memories/{}/{action}", Uuid::new_v4()), &json!({})).send().await;
        error(unknown.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
        let elsewhere =
            gateway.scoped(Method::POST, &format!("/api/v1/memories/{id}/{action}"), Uuid::new_v4()).send().await;
        error(elsewhere.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
        let malformed = gateway
            .request(Method::POST, &format!("/api/v1/memories/{id}/{action}"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await;
        error(malformed.expect("sent"), StatusCode::BAD_REQUEST, "bad_request").await;
        let bad_field = gateway.post(&format!("/api/v1/memories/{id}/{action}"), &json!({"why": "x"})).send().await;
        error(bad_field.expect("sent"), StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
    }
    assert_eq!(audit_rows(&gateway, id).await.len(), 1, "refused actions leave no audit row");
    gateway.stop().await;
}

#[tokio::test]
async fn search_ranks_embeddings_of_huge_and_tiny_finite_values_with_a_similarity() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let huge: Vec<f32> = direction(0, 0.0).iter().map(|v| v * 3e38).collect();
    let tiny: Vec<f32> = direction(0, 0.0).iter().map(|v| v * 1e-30).collect();
    let ids = ingest(
        &gateway,
        project,
        &[memory_json("huge", "learning", huge.clone()), memory_json("tiny", "learning", tiny)],
    )
    .await;

    let search = json!({"embedding": huge});
    let response = gateway.post(&format!("/api/v1/projects/{project}/memories/search"), &search).send();
    let hits = ok(response.await.expect("sent"), StatusCode::OK).await;
    let results = hits["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{hits}");
    for hit in &results {
        let similarity = hit["similarity"].as_f64().unwrap_or_else(|| panic!("a number: {hit}"));
        assert!((similarity - 1.0).abs() < 1e-6, "{hit}");
        assert!(ids.iter().any(|id| hit["memory"]["id"] == id.to_string()));
    }
    gateway.stop().await;
}
