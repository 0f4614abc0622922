//! Gateway: trigger, status, live events, history and changes.

use std::time::Duration;

use consolidator::domain::JobEventKind;
use consolidator::{
    bus::{CommandKind, messages::TriggerCommand},
    domain::ChangeOperation,
    store::{
        changes::{self, NewChange},
        jobs::{self, TriggerType},
    },
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

async fn trigger(gateway: &TestGateway, body: Value) -> reqwest::Response {
    gateway.post("/api/v1/consolidation/trigger", &body).send().await.expect("sent")
}

#[tokio::test]
async fn a_trigger_writes_a_pending_job_publishes_its_command_and_answers_202() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;

    let response =
        trigger(&gateway, json!({"project_id": project, "options": {"similarity_threshold": 0.95, "mode": "full"}}))
            .await;
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let body = ok(response, StatusCode::ACCEPTED).await;
    let job_id: Uuid = body["job_id"].as_str().and_then(|id| id.parse().ok()).expect("job id");
    assert_eq!(location, format!("/api/v1/consolidation/status/{job_id}"));
    assert_eq!(body["status"], "pending");
    let estimated: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["estimated_completion"].clone()).expect("date");
    assert!(estimated > chrono::Utc::now(), "{estimated}");
    let seconds = body["estimated_seconds"].as_f64().expect("seconds");
    assert_eq!(seconds, (seconds * 1000.0).round() / 1000.0, "to the millisecond: {seconds}");

    let job = jobs::get(&gateway.env.db, job_id).await.expect("read").expect("job row written");
    assert_eq!((job.status.as_str(), job.trigger_type.as_str()), ("pending", "manual"));
    assert_eq!(job.triggered_by, "tester@example.com");
    assert!((job.options.0["similarity_threshold"].as_f64().expect("resolved") - 0.95).abs() < 1e-6);
    assert_eq!(job.options.0["merge"], true, "the options are stored resolved");
    assert_eq!(job.options.0["mode"], "full");

    let prefix = &gateway.env.bus.prefix;
    let stream = gateway.env.bus.jetstream.get_stream(prefix.commands_stream()).await.expect("stream");
    let message = stream.get_last_raw_message_by_subject(&prefix.command(CommandKind::Trigger)).await.expect("command");
    assert_eq!(message.headers.get("Nats-Msg-Id").map(|id| id.as_str().to_owned()), Some(job_id.to_string()));
    let command: TriggerCommand = serde_json::from_slice(&message.payload).expect("trigger command");
    assert_eq!((command.job_id, command.project_id, command.trigger_type), (job_id, project, TriggerType::Manual));
    gateway.stop().await;
}

#[tokio::test]
async fn a_second_trigger_while_one_is_active_is_409_naming_the_active_job() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let first = ok(trigger(&gateway, json!({"project_id": project})).await, StatusCode::ACCEPTED).await;

    let message =
        error(trigger(&gateway, json!({"project_id": project})).await, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains(first["job_id"].as_str().expect("job id")), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_trigger_is_refused_for_a_disabled_unknown_or_foreign_project_and_for_bad_options() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let disabled = gateway.project().await;
    let put = gateway.put(&format!("/api/v1/consolidation/configure/{disabled}"), &json!({"enabled": false}));
    ok(put.send().await.expect("sent"), StatusCode::OK).await;

    let message =
        error(trigger(&gateway, json!({"project_id": disabled})).await, StatusCode::CONFLICT, "conflict").await;
    assert!(message.contains("disabled"), "{message}");
    let enable = format!("PUT /api/v1/consolidation/configure/{disabled} {{\"enabled\": true}}");
    assert!(message.contains(&enable), "names the route that enables it: {message}");
    error(trigger(&gateway, json!({"project_id": Uuid::new_v4()})).await, StatusCode::NOT_FOUND, "not_found").await;
    let foreign = gateway
        .scoped(Method::POST, "/api/v1/consolidation/trigger", Uuid::new_v4())
        .json(&json!({"project_id": project}));
    error(foreign.send().await.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    for (options, field) in [
        (json!({"similarity_threshold": 1.5}), "options.similarity_threshold"),
        (json!({"min_cluster_size": 1}), "options.min_cluster_size"),
        (json!({"merge": "yes"}), "merge"),
        (json!({"mode": "fast"}), "mode"),
        (json!({"aggressive": true}), "aggressive"),
    ] {
        let response = trigger(&gateway, json!({"project_id": project, "options": options})).await;
        let message = error(response, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
        assert!(message.contains(field), "{message}");
    }
    error(trigger(&gateway, json!({"options": {}})).await, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity")
        .await;
    let malformed =
        gateway.request(Method::POST, "/api/v1/consolidation/trigger").header("content-type", "application/json");
    error(malformed.body("{\"project_id\":").send().await.expect("sent"), StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(jobs::active_for_project(&gateway.env.db, project).await.expect("read"), None, "no job was written");
    gateway.stop().await;
}

#[tokio::test]
async fn when_the_command_cannot_be_published_the_job_fails_and_the_answer_is_503() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    gateway.env.bus.jetstream.delete_stream(gateway.env.bus.prefix.commands_stream()).await.expect("stream deleted");

    let response = trigger(&gateway, json!({"project_id": project})).await;
    error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert_eq!(jobs::active_for_project(&gateway.env.db, project).await.expect("read"), None, "no job left pending");
    let filter = jobs::HistoryFilter { limit: 10, ..Default::default() };
    let history = jobs::history(&gateway.env.db, project, &filter).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, "failed");
    assert!(history[0].error_message.as_deref().is_some_and(|error| error.contains("could not be published")));
    gateway.stop().await;
}

#[tokio::test]
async fn a_trigger_whose_request_times_out_mid_publish_still_fails_its_job() {
    let gateway = TestGateway::start_with(|config| {
        config.request_timeout_secs = 2;
        config.rollback_wait_ms = 1000;
    })
    .await;
    let project = gateway.project().await;
    gateway.env.bus.jetstream.delete_stream(gateway.env.bus.prefix.commands_stream()).await.expect("stream deleted");

    let response = trigger(&gateway, json!({"project_id": project})).await;
    let message = error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(message.contains("longer than 2 s"), "{message}");
    // The publish goes on after the answer and, once its budget is used, fails the job.
    let filter = jobs::HistoryFilter { limit: 10, ..Default::default() };
    let mut history = Vec::new();
    for _ in 0..100 {
        history = jobs::history(&gateway.env.db, project, &filter).await.expect("history");
        if history.first().is_some_and(|job| job.status != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, "failed");
    assert!(history[0].error_message.as_deref().is_some_and(|error| error.contains("could not be published")));
    gateway.stop().await;
}

#[tokio::test]
async fn the_status_shows_progress_counters_created_memories_and_links() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let created = Uuid::new_v4();
    let job = finished_job(
        &gateway,
        project,
        TriggerType::Manual,
        true,
        json!({"dry_run": false, "created_memory_ids": [created]}),
    )
    .await;

    let status = ok(
        gateway.get(&format!("/api/v1/consolidation/status/{}", job.id)).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "completed");
    assert_eq!(status["phase"], "done");
    assert_eq!(status["progress"], 1.0);
    assert_eq!(status["counters"]["memories_merged"], 2);
    assert_eq!((status["memories_before"].clone(), status["memories_after"].clone()), (json!(10), json!(8)));
    assert_eq!(status["created_memory_ids"], json!([created]));
    assert_eq!(status["links"]["changes"], format!("/api/v1/consolidation/jobs/{}/changes", job.id));
    assert_eq!(
        status["links"]["changes_by_operation"]["merge"],
        format!("/api/v1/consolidation/jobs/{}/changes?operation=merge", job.id)
    );
    assert_eq!(status["links"]["events"], format!("/api/v1/consolidation/status/{}/events", job.id));
    let failed = finished_job(&gateway, project, TriggerType::Manual, false, Value::Null).await;
    let failed = ok(
        gateway.get(&format!("/api/v1/consolidation/status/{}", failed.id)).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!((failed["status"].clone(), failed["error"].clone()), (json!("failed"), json!("it broke")));

    let unknown = gateway.get(&format!("/api/v1/consolidation/status/{}", Uuid::new_v4())).send().await.expect("sent");
    error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let foreign =
        gateway.scoped(Method::GET, &format!("/api/v1/consolidation/status/{}", job.id), Uuid::new_v4()).send().await;
    error(foreign.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    let own = gateway.scoped(Method::GET, &format!("/api/v1/consolidation/status/{}", job.id), project).send().await;
    ok(own.expect("sent"), StatusCode::OK).await;
    error(
        gateway.get("/api/v1/consolidation/status/42").send().await.expect("sent"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn events_replay_what_happened_follow_live_and_close_after_the_end() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let accepted = ok(trigger(&gateway, json!({"project_id": project})).await, StatusCode::ACCEPTED).await;
    let job_id: Uuid = accepted["job_id"].as_str().and_then(|id| id.parse().ok()).expect("job id");
    let bus = &gateway.env.bus;
    let event = |kind: JobEventKind| {
        let mut event = consolidator::bus::messages::JobEvent::new(kind, job_id, project);
        event.progress = Some(if kind == JobEventKind::Completed { 1.0 } else { 0.2 });
        event
    };
    bus.job_progress_event(JobEventKind::Started, &event(JobEventKind::Started)).await;

    let response = gateway.get(&format!("/api/v1/consolidation/status/{job_id}/events")).send().await.expect("sent");
    let reader = tokio::spawn(read_sse(response, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    bus.job_progress_event(JobEventKind::Progress, &event(JobEventKind::Progress)).await;
    bus.job_terminal_event(JobEventKind::Completed, &event(JobEventKind::Completed)).await.expect("published");
    bus.job_progress_event(JobEventKind::Progress, &event(JobEventKind::Progress)).await;
    let (events, ended) = reader.await.expect("reader");

    assert!(ended, "the stream closes after the terminal event");
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["queued", "started", "progress", "completed"]);
    assert!(events.iter().all(|(_, _, data)| data["job_id"] == json!(job_id)));
    assert_eq!(events[3].2["progress"], 1.0);

    let resume_after = events[1].1.clone().expect("events carry their stream sequence as id");
    let response = gateway
        .get(&format!("/api/v1/consolidation/status/{job_id}/events"))
        .header("last-event-id", resume_after)
        .send()
        .await
        .expect("sent");
    let (resumed, ended) = read_sse(response, Duration::from_secs(20)).await;
    assert!(ended);
    let names: Vec<&str> = resumed.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["progress", "completed"], "a reconnecting client resumes after the last event it saw");
    gateway.stop().await;
}

#[tokio::test]
async fn events_of_a_job_that_ended_without_its_event_are_told_from_the_database() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    sqlx::query("UPDATE consolidation_jobs SET completed_at = now() - interval '1 minute' WHERE id = $1")
        .bind(job.id)
        .execute(&gateway.env.db)
        .await
        .expect("aged");

    let response = gateway.get(&format!("/api/v1/consolidation/status/{}/events", job.id)).send().await.expect("sent");
    let (events, ended) = read_sse(response, Duration::from_secs(20)).await;
    assert!(ended);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "completed");
    assert_eq!(events[0].2["memories_after"], 8);

    // An EventSource reconnects when the stream closes: told 204, it stops.
    let again = gateway
        .get(&format!("/api/v1/consolidation/status/{}/events", job.id))
        .header("last-event-id", "1")
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    gateway.stop().await;
}

#[tokio::test]
async fn events_answer_404_for_an_unknown_job_and_for_one_outside_the_token() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({})).await;

    let unknown = gateway.get(&format!("/api/v1/consolidation/status/{}/events", Uuid::new_v4())).send().await;
    error(unknown.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    let foreign =
        gateway.scoped(Method::GET, &format!("/api/v1/consolidation/status/{}/events", job.id), Uuid::new_v4());
    error(foreign.send().await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}

async fn history_ids(gateway: &TestGateway, project: Uuid, query: &str) -> (Vec<Uuid>, Option<String>) {
    let response = gateway.get(&format!("/api/v1/consolidation/history/{project}?{query}")).send().await.expect("sent");
    let page = ok(response, StatusCode::OK).await;
    let ids = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["job_id"].as_str().and_then(|id| id.parse().ok()).expect("id"))
        .collect();
    (ids, page["next_cursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn history_is_newest_first_filtered_and_paged_in_a_stable_order() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let kinds = [
        (TriggerType::Manual, true, "2026-01-01T10:00:00Z"),
        (TriggerType::Threshold, true, "2026-01-02T10:00:00Z"),
        (TriggerType::Manual, false, "2026-01-03T10:00:00Z"),
        (TriggerType::Scheduled, true, "2026-01-03T10:00:00Z"),
        (TriggerType::Manual, true, "2026-01-05T10:00:00Z"),
    ];
    let mut jobs = Vec::new();
    for (trigger_type, completed, created_at) in kinds {
        let job = finished_job(&gateway, project, trigger_type, completed, json!({})).await;
        sqlx::query("UPDATE consolidation_jobs SET created_at = $2::timestamptz WHERE id = $1")
            .bind(job.id)
            .bind(created_at)
            .execute(&gateway.env.db)
            .await
            .expect("dated");
        jobs.push(job.id);
    }
    // Newest first; the two jobs of 3 January in descending id order.
    let (mut tied, rest) = (vec![jobs[2], jobs[3]], [jobs[1], jobs[0]]);
    tied.sort_by(|a, b| b.cmp(a));
    let expected: Vec<Uuid> = [jobs[4]].into_iter().chain(tied).chain(rest).collect();

    assert_eq!(history_ids(&gateway, project, "").await, (expected.clone(), None));
    let mut paged = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (ids, cursor) = history_ids(&gateway, project, &query).await;
        paged.extend(ids);
        match cursor {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, expected, "pages neither skip nor repeat jobs, even with equal timestamps");
    assert_eq!(history_ids(&gateway, project, "status=failed").await.0, vec![jobs[2]]);
    assert_eq!(history_ids(&gateway, project, "trigger_type=threshold").await.0, vec![jobs[1]]);
    let range = "from=2026-01-02T00:00:00Z&to=2026-01-04T00:00:00Z&trigger_type=manual";
    assert_eq!(history_ids(&gateway, project, range).await.0, vec![jobs[2]]);
    for empty in
        ["from=2026-01-02T00:00:00Z&to=2026-01-02T00:00:00Z", "from=2026-01-04T00:00:00Z&to=2026-01-02T00:00:00Z"]
    {
        assert_eq!(history_ids(&gateway, project, empty).await.0, Vec::<Uuid>::new(), "an empty window: {empty}");
    }

    let response = gateway.get(&format!("/api/v1/consolidation/history/{project}")).send().await.expect("sent");
    let page = ok(response, StatusCode::OK).await;
    assert_eq!(
        (page["jobs"][0]["memories_before"].clone(), page["jobs"][0]["memories_after"].clone()),
        (json!(10), json!(8))
    );
    gateway.stop().await;
}

#[tokio::test]
async fn history_refuses_bad_filters_unknown_projects_and_foreign_tokens() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    for query in [
        "status=sleeping",
        "trigger_type=cron",
        "limit=0",
        "limit=101",
        "cursor=garbage",
        "from=yesterday",
        "cursor=",
        "cursor=5_0F8E6A8E8A534C559C593C1D3C9D2B10",
    ] {
        let response =
            gateway.get(&format!("/api/v1/consolidation/history/{project}?{query}")).send().await.expect("sent");
        error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    // Before 4713 BC: chrono reads it, PostgreSQL cannot compare with it.
    for cursor in
        ["-250000000000000000_0f8e6a8e8a534c559c593c1d3c9d2b10", "99999999999999999_0f8e6a8e8a534c559c593c1d3c9d2b10"]
    {
        let response = gateway
            .get(&format!("/api/v1/consolidation/history/{project}?cursor={cursor}"))
            .send()
            .await
            .expect("sent");
        let message = error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(message.contains("out of range"), "{message}");
    }
    let unknown = gateway.get(&format!("/api/v1/consolidation/history/{}", Uuid::new_v4())).send().await.expect("sent");
    error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let foreign =
        gateway.scoped(Method::GET, &format!("/api/v1/consolidation/history/{project}"), Uuid::new_v4()).send().await;
    error(foreign.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    gateway.stop().await;
}

fn change(operation: ChangeOperation) -> NewChange {
    NewChange {
        operation,
        memory_id: Uuid::new_v4(),
        previous_state: Some(json!({"version": 1})),
        new_state: Some(json!({"version": 2})),
        reason: format!("{operation} for the test"),
        confidence: Some(0.9),
    }
}

#[tokio::test]
async fn changes_are_listed_in_write_order_paged_and_filtered_by_operation() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({})).await;
    let written = [
        change(ChangeOperation::Merge),
        change(ChangeOperation::Merge),
        change(ChangeOperation::Archive),
        change(ChangeOperation::Summarize),
        change(ChangeOperation::Archive),
    ];
    let mut conn = gateway.env.db.acquire().await.expect("connection");
    changes::insert_batch(&mut conn, Some(job.id), project, "worker", &written).await.expect("changes written");
    drop(conn);
    let path = format!("/api/v1/consolidation/jobs/{}/changes", job.id);
    let memories_of = |page: &Value| -> Vec<Uuid> {
        page["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["memory_id"].as_str().and_then(|id| id.parse().ok()).expect("id"))
            .collect()
    };

    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = ok(gateway.get(&format!("{path}?{query}")).send().await.expect("sent"), StatusCode::OK).await;
        seen.extend(memories_of(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, written.iter().map(|c| c.memory_id).collect::<Vec<_>>());
    let archives =
        ok(gateway.get(&format!("{path}?operation=archive")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(memories_of(&archives), vec![written[2].memory_id, written[4].memory_id]);
    assert_eq!(archives["changes"][0]["job_id"], json!(job.id));
    assert_eq!(archives["changes"][0]["reason"], "archive for the test");

    for query in ["operation=delete", "cursor=x", "limit=1001"] {
        error(
            gateway.get(&format!("{path}?{query}")).send().await.expect("sent"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
    }
    let unknown = gateway.get(&format!("/api/v1/consolidation/jobs/{}/changes", Uuid::new_v4())).send().await;
    error(unknown.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    let foreign = gateway.scoped(Method::GET, &path, Uuid::new_v4()).send().await.expect("sent");
    error(foreign, StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}
