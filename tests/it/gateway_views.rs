//! Gateway: the admin's read views (projects with counts, one memory with its provenance and
//! audit trail, the playbook), a rolled-back job shown as such, and errors as JSON everywhere.

use std::time::Duration;

use consolidator::domain::JobEventKind;
use consolidator::{
    bus::messages::JobEvent,
    store::{
        jobs::{self, TriggerType},
        playbook::{self, NewEntry},
        rollbacks,
    },
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

fn ids(items: &Value, key: &str) -> Vec<Uuid> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|item| item[key].as_str().and_then(|id| id.parse().ok()).expect("id"))
        .collect()
}

#[tokio::test]
async fn projects_are_listed_in_pages_within_the_tokens_scope_with_counts_and_the_last_job() {
    let gateway = TestGateway::start().await;
    let busy = gateway.project().await;
    let quiet = gateway.project().await;
    let third = gateway.project().await;
    let stored = ingest(
        &gateway,
        busy,
        &[
            memory_json("kept", "learning", direction(0, 0.0)),
            memory_json("archived", "learning", direction(1, 0.0)),
            memory_json("merged away", "learning", direction(2, 0.0)),
        ],
    )
    .await;
    ok(
        gateway.post(&format!("/api/v1/memories/{}/archive", stored[1]), &json!({})).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    sqlx::query("UPDATE task_memories SET is_duplicate = true, duplicate_of = $2 WHERE id = $1")
        .bind(stored[2])
        .bind(stored[0])
        .execute(&gateway.env.db)
        .await
        .expect("marked duplicate");
    let job = finished_job(&gateway, busy, TriggerType::Manual, true, json!({})).await;

    let first = ok(gateway.get("/api/v1/projects?limit=2").send().await.expect("sent"), StatusCode::OK).await;
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let rest = ok(
        gateway.get(&format!("/api/v1/projects?limit=2&cursor={cursor}")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut listed = ids(&first["projects"], "id");
    listed.extend(ids(&rest["projects"], "id"));
    let mut expected = vec![busy, quiet, third];
    expected.sort();
    assert_eq!(listed, expected, "every project once, in id order");

    let all = [first["projects"].as_array().expect("page").clone(), rest["projects"].as_array().expect("page").clone()]
        .concat();
    let busy_view = all.iter().find(|p| p["id"] == json!(busy)).expect("listed");
    assert_eq!(
        (
            busy_view["active_memories"].clone(),
            busy_view["duplicate_memories"].clone(),
            busy_view["archived_memories"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(busy_view["last_job"]["job_id"], json!(job.id));
    assert_eq!(busy_view["last_job"]["status"], "completed");
    let quiet_view = all.iter().find(|p| p["id"] == json!(quiet)).expect("listed");
    assert_eq!((quiet_view["active_memories"].clone(), quiet_view["last_job"].clone()), (json!(0), Value::Null));

    let scoped = gateway.scoped(Method::GET, "/api/v1/projects", quiet).send().await.expect("sent");
    assert_eq!(ids(&ok(scoped, StatusCode::OK).await["projects"], "id"), vec![quiet], "only what the token covers");
    error(gateway.get("/api/v1/projects?limit=0").send().await.expect("sent"), StatusCode::BAD_REQUEST, "bad_request")
        .await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_memory_shows_its_provenance_and_every_change_that_touched_it() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &clustered_memories()).await;
    let status = consolidate(&gateway, project).await;
    assert_eq!(status["status"], "completed", "{status}");
    let source = stored[0];

    let detail =
        ok(gateway.get(&format!("/api/v1/memories/{source}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(detail["id"], json!(source));
    assert_eq!(detail["is_duplicate"], true);
    assert_eq!(detail["provenance"]["superseded_by"], Value::Null);
    let into: Uuid =
        detail["provenance"]["consolidated_into"].as_str().and_then(|id| id.parse().ok()).expect("merged into");
    let merged = ok(gateway.get(&format!("/api/v1/memories/{into}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(merged["memory_type"], "consolidated");
    let sources: Vec<Uuid> = serde_json::from_value(merged["provenance"]["sources"].clone()).expect("sources");
    assert_eq!(sources.len(), 3, "{merged}");
    assert!(stored[..3].iter().all(|id| sources.contains(id)), "{sources:?}");
    assert_eq!(merged["provenance"]["consolidated_into"], Value::Null);

    let holder = ok(
        gateway
            .post(&format!("/api/v1/memories/{source}/reuse"), &json!({"reason": "used it"}))
            .send()
            .await
            .expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(holder["id"], json!(into), "a merged source's reuse counts on what it was merged into");
    ok(
        gateway
            .post(&format!("/api/v1/memories/{source}/archive"), &json!({"reason": "by hand"}))
            .send()
            .await
            .expect("sent"),
        StatusCode::OK,
    )
    .await;
    let changes =
        ok(gateway.get(&format!("/api/v1/memories/{source}/changes")).send().await.expect("sent"), StatusCode::OK)
            .await;
    let rows = changes["changes"].as_array().expect("rows");
    assert!(rows.iter().any(|row| row["job_id"] == status["job_id"] && row["operation"] == "merge"), "{changes}");
    let manual = rows.last().expect("the manual change is the latest");
    assert_eq!((manual["operation"].clone(), manual["job_id"].clone()), (json!("archive"), Value::Null));
    let paged = ok(
        gateway.get(&format!("/api/v1/memories/{source}/changes?limit=1")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(paged["changes"].as_array().map(Vec::len), Some(1));
    assert!(paged["next_cursor"].is_string());
    error(
        gateway.get(&format!("/api/v1/memories/{}", Uuid::new_v4())).send().await.expect("sent"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn the_playbook_lists_active_entries_with_their_supporting_memories() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &[memory_json("supports it", "learning", direction(0, 0.0))]).await;
    let entry = |content: &str, supporting: Vec<Uuid>| NewEntry {
        id: Uuid::new_v4(),
        content: content.to_owned(),
        category: "best_practice".to_owned(),
        tags: vec!["t".to_owned()],
        priority: 5,
        supporting_memory_ids: supporting,
        embedding: None,
        source_memory_id: Some(stored[0]),
    };
    let active = entry("Retry with backoff.", vec![stored[0], Uuid::new_v4()]);
    let retired = entry("An old rule.", vec![stored[0]]);
    let mut conn = gateway.env.db.acquire().await.expect("connection");
    playbook::insert_batch(
        &mut conn,
        project,
        &[active.clone(), retired.clone()],
        consolidator::domain::PlaybookOperation::Promote,
        "test",
        None,
        "tester",
    )
    .await
    .expect("entries");
    playbook::deactivate(&mut conn, &[retired.id], "test", None, "tester").await.expect("deactivated");
    drop(conn);
    let path = format!("/api/v1/projects/{project}/playbook");

    let page = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(ids(&page["entries"], "id"), vec![active.id], "active entries only by default");
    let shown = &page["entries"][0];
    assert_eq!(shown["supporting_memory_ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(ids(&shown["supporting_memories"], "id"), vec![stored[0]], "a missing memory is listed by id only");
    assert_eq!(shown["supporting_memories"][0]["execution_summary"], "supports it");
    let everything =
        ok(gateway.get(&format!("{path}?include_inactive=true&limit=1")).send().await.expect("sent"), StatusCode::OK)
            .await;
    assert_eq!(everything["entries"].as_array().map(Vec::len), Some(1));
    let cursor = everything["next_cursor"].as_str().expect("a second page");
    let second = ok(
        gateway.get(&format!("{path}?include_inactive=true&cursor={cursor}")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    let mut both = ids(&everything["entries"], "id");
    both.extend(ids(&second["entries"], "id"));
    both.sort();
    let mut expected = vec![active.id, retired.id];
    expected.sort();
    assert_eq!(both, expected);
    let unknown = gateway.get(&format!("/api/v1/projects/{}/playbook", Uuid::new_v4())).send().await.expect("sent");
    error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_rolled_back_job_says_so_in_its_status_its_history_and_its_event_stream() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let kept = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    let undone = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    let bus = &gateway.env.bus;
    bus.job_progress_event(
        JobEventKind::Completed,
        &JobEvent::new(consolidator::domain::JobEventKind::Completed, undone.id, project),
    )
    .await;
    let rollback = Uuid::new_v4();
    rollbacks::create(&gateway.env.db, rollback, undone.id, project, None, "someone", false)
        .await
        .expect("pending rollback");

    // Open while the rollback is under way: the stream stays open after `completed`.
    let events = gateway.get(&format!("/api/v1/consolidation/status/{}/events", undone.id)).send().await.expect("sent");
    let reader = tokio::spawn(read_sse(events, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The worker marks the job and completes the rollback in one transaction; marked first here.
    jobs::mark_rolled_back(&gateway.env.db, undone.id).await.expect("marked");
    rollbacks::complete(&gateway.env.db, rollback, 1, 1, &[]).await.expect("rollback done");
    bus.job_progress_event(
        JobEventKind::RolledBack,
        &JobEvent::new(consolidator::domain::JobEventKind::RolledBack, undone.id, project),
    )
    .await;
    let (events, ended) = reader.await.expect("reader");
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["completed", "rolled_back"], "{events:?}");
    assert!(ended, "the stream closes after rolled_back");

    let status = ok(
        gateway.get(&format!("/api/v1/consolidation/status/{}", undone.id)).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "rolled_back");
    assert!(status["rolled_back_at"].is_string());
    let history = |filter: &'static str| {
        let gateway = &gateway;
        async move {
            let page = gateway.get(&format!("/api/v1/consolidation/history/{project}?status={filter}")).send().await;
            ids(&ok(page.expect("sent"), StatusCode::OK).await["jobs"], "job_id")
        }
    };
    assert_eq!(history("rolled_back").await, vec![undone.id]);
    assert_eq!(history("completed").await, vec![kept.id], "completed means completed and still in force");
    gateway.stop().await;
}

#[tokio::test]
async fn options_come_back_as_given_and_a_dry_run_is_marked_in_history() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let options = json!({"similarity_threshold": 0.85, "promote_confidence_threshold": 0.93, "dry_run": true});
    let accepted =
        gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project, "options": options})).send().await;
    let job = ok(accepted.expect("sent"), StatusCode::ACCEPTED).await["job_id"].clone();

    let status = ok(
        gateway.get(&format!("/api/v1/consolidation/status/{}", job.as_str().expect("id"))).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["options"]["similarity_threshold"], json!(0.85), "{}", status["options"]);
    assert_eq!(status["options"]["promote_confidence_threshold"], json!(0.93));
    let history = ok(
        gateway.get(&format!("/api/v1/consolidation/history/{project}")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!((history["jobs"][0]["job_id"].clone(), history["jobs"][0]["dry_run"].clone()), (job, json!(true)));
    let configured = gateway.put(
        &format!("/api/v1/consolidation/configure/{project}"),
        &json!({"options": {"similarity_threshold": 0.87}}),
    );
    let configured = ok(configured.send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(configured["effective_options"]["similarity_threshold"], json!(0.87));
    gateway.stop().await;
}

#[tokio::test]
async fn a_wrong_method_or_media_type_is_answered_with_the_error_body() {
    let gateway = TestGateway::start().await;
    for (method, path) in
        [(Method::DELETE, "/api/v1/projects"), (Method::PUT, "/healthz"), (Method::POST, "/openapi.json")]
    {
        let response = gateway.request(method.clone(), path).send().await.expect("sent");
        let message = error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
        assert!(message.contains(method.as_str()), "{message}");
    }
    let untyped =
        gateway.request(Method::POST, "/api/v1/projects").body(r#"{"name": "p"}"#).send().await.expect("sent");
    error(untyped, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    gateway.stop().await;
}
