//! Gateway: projects and their consolidation settings.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::harness::*;

#[tokio::test]
async fn a_project_is_created_with_defaults_and_read_back() {
    let gateway = TestGateway::start().await;

    let response = gateway.post("/api/v1/projects", &json!({"name": "  agents  "})).send().await.expect("sent");
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let created = ok(response, StatusCode::CREATED).await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(location, format!("/api/v1/projects/{id}"));
    assert_eq!(created["name"], "agents");
    assert_eq!(created["consolidation_enabled"], true);
    assert_eq!(created["consolidation_threshold"], 1000);
    assert_eq!(created["embedding_dim"], serde_json::Value::Null);

    let read = ok(gateway.get(&location).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(read["id"], created["id"]);
    assert_eq!(read["active_memories"], 0);
    gateway.stop().await;
}

#[tokio::test]
async fn a_project_with_a_chosen_id_is_created_once() {
    let gateway = TestGateway::start().await;
    let id = Uuid::new_v4();
    let body = json!({"id": id, "name": "p", "consolidation_threshold": 5, "consolidation_options": {"merge": false}});

    let created = ok(gateway.post("/api/v1/projects", &body).send().await.expect("sent"), StatusCode::CREATED).await;
    assert_eq!(created["consolidation_options"], json!({"merge": false}));
    let again = gateway.post("/api/v1/projects", &body).send().await.expect("sent");
    assert!(error(again, StatusCode::CONFLICT, "conflict").await.contains(&id.to_string()));
    gateway.stop().await;
}

#[tokio::test]
async fn invalid_projects_are_refused_naming_the_field() {
    let gateway = TestGateway::start().await;
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "p", "consolidation_threshold": 0}), "threshold"),
        (json!({"name": "p", "consolidation_options": {"similarity_threshold": 0.2}}), "options.similarity_threshold"),
        (json!({"name": "p", "consolidation_options": {"colour": "red"}}), "colour"),
        (json!({"name": "p", "owner": "me"}), "owner"),
        (json!({"name": 5}), "name"),
    ];
    for (body, field) in cases {
        let response = gateway.post("/api/v1/projects", &body).send().await.expect("sent");
        let message = error(response, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
        assert!(message.contains(field), "{body}: {message}");
    }
    let malformed =
        gateway.request(Method::POST, "/api/v1/projects").header("content-type", "application/json").body("{");
    error(malformed.send().await.expect("sent"), StatusCode::BAD_REQUEST, "bad_request").await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_token_limited_to_some_projects_reaches_only_those() {
    let gateway = TestGateway::start().await;
    let mine = Uuid::new_v4();
    let other = gateway.project().await;

    let create = gateway.scoped(Method::POST, "/api/v1/projects", mine).json(&json!({"id": mine, "name": "mine"}));
    ok(create.send().await.expect("sent"), StatusCode::CREATED).await;
    let elsewhere = gateway.scoped(Method::POST, "/api/v1/projects", mine).json(&json!({"name": "unnamed id"}));
    error(elsewhere.send().await.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    ok(
        gateway.scoped(Method::GET, &format!("/api/v1/projects/{mine}"), mine).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    for path in [format!("/api/v1/projects/{other}"), format!("/api/v1/consolidation/configure/{other}")] {
        let response = gateway.scoped(Method::GET, &path, mine).send().await.expect("sent");
        assert!(error(response, StatusCode::FORBIDDEN, "forbidden").await.contains(&other.to_string()));
    }
    let put = gateway.scoped(Method::PUT, &format!("/api/v1/consolidation/configure/{other}"), mine).json(&json!({}));
    error(put.send().await.expect("sent"), StatusCode::FORBIDDEN, "forbidden").await;
    gateway.stop().await;
}

#[tokio::test]
async fn unknown_projects_are_404_and_malformed_ids_400() {
    let gateway = TestGateway::start().await;
    let unknown = Uuid::new_v4();
    for path in [format!("/api/v1/projects/{unknown}"), format!("/api/v1/consolidation/configure/{unknown}")] {
        error(gateway.get(&path).send().await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    }
    let put = gateway.put(&format!("/api/v1/consolidation/configure/{unknown}"), &json!({"enabled": false}));
    error(put.send().await.expect("sent"), StatusCode::NOT_FOUND, "not_found").await;
    error(
        gateway.get("/api/v1/projects/not-a-uuid").send().await.expect("sent"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn configuration_changes_only_what_is_given_and_shows_the_effective_options() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let path = format!("/api/v1/consolidation/configure/{project}");

    let before = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(before["enabled"], true);
    assert_eq!(before["effective_options"]["similarity_threshold"].as_f64().map(|v| (v * 100.0).round()), Some(90.0));

    let update = json!({"threshold": 250, "options": {"similarity_threshold": 0.8, "archive": false}});
    let after = ok(gateway.put(&path, &update).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(after["threshold"], 250);
    assert_eq!(after["enabled"], true, "left out, so unchanged");
    assert_eq!(after["options"], json!({"similarity_threshold": 0.8, "archive": false}));
    assert_eq!(after["effective_options"]["archive"], false);
    assert_eq!(after["effective_options"]["merge"], true);

    let disabled = ok(gateway.put(&path, &json!({"enabled": false})).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["threshold"], 250, "left out, so unchanged");
    let read = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(read, disabled);
    gateway.stop().await;
}

#[tokio::test]
async fn invalid_configuration_is_refused_naming_the_field_and_changes_nothing() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let path = format!("/api/v1/consolidation/configure/{project}");
    let cases = [
        (json!({"threshold": 0}), "threshold"),
        (json!({"threshold": 1_000_001}), "threshold"),
        (json!({"options": {"min_cluster_size": 51}}), "options.min_cluster_size"),
        (json!({"options": {"promote_confidence_threshold": 1.5}}), "options.promote_confidence_threshold"),
        (json!({"options": {"merge": "yes"}}), "merge"),
        (json!({"enabled": true, "paused": true}), "paused"),
    ];
    for (body, field) in cases {
        let response = gateway.put(&path, &body).send().await.expect("sent");
        let message = error(response, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity").await;
        assert!(message.contains(field), "{body}: {message}");
    }
    let read = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(
        (read["threshold"].clone(), read["options"].clone()),
        (json!(1000), json!({"max_changed_share": 1.0})),
        "unchanged"
    );
    gateway.stop().await;
}
