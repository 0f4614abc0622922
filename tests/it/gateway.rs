//! The HTTP gateway's cross-cutting behaviour (authentication on every route, the OpenAPI document, health, metrics, request
//! ids, body limits, shutdown).

use std::{collections::BTreeSet, time::Duration};

use consolidator::config::RetentionConfig;
use consolidator::{
    config::GatewayConfig,
    gateway::{
        AppState,
        auth::{self, Claims},
    },
};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

fn uuid_path(path: &str) -> String {
    let nil = Uuid::new_v4().to_string();
    path.split('/')
        .map(|segment| if segment.starts_with('{') { nil.as_str() } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

async fn spec(gateway: &TestGateway) -> Value {
    ok(gateway.client.get(gateway.url("/openapi.json")).send().await.expect("sent"), StatusCode::OK).await
}

fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("path item").keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// DESIGN.md §7, route by route, the bus's AsyncAPI document (issue 26) and the operator's
/// routes (issue 25).
const DESIGNED_ROUTES: [(&str, &str); 43] = [
    ("POST", "/api/v1/consolidation/trigger"),
    ("GET", "/api/v1/consolidation/status/{job_id}"),
    ("GET", "/api/v1/consolidation/status/{job_id}/events"),
    ("GET", "/api/v1/consolidation/history/{project_id}"),
    ("GET", "/api/v1/consolidation/jobs/{job_id}/changes"),
    ("GET", "/api/v1/consolidation/jobs/{job_id}/timeline"),
    ("POST", "/api/v1/consolidation/rollback"),
    ("GET", "/api/v1/consolidation/rollback/{rollback_id}"),
    ("GET", "/api/v1/consolidation/configure/{project_id}"),
    ("PUT", "/api/v1/consolidation/configure/{project_id}"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects"),
    ("GET", "/api/v1/projects/{id}"),
    ("GET", "/api/v1/projects/{id}/playbook"),
    ("GET", "/api/v1/memories/{id}"),
    ("GET", "/api/v1/memories/{id}/changes"),
    ("POST", "/api/v1/projects/{id}/memories"),
    ("GET", "/api/v1/projects/{id}/memories"),
    ("POST", "/api/v1/projects/{id}/memories/search"),
    ("POST", "/api/v1/memories/{id}/archive"),
    ("POST", "/api/v1/memories/{id}/unarchive"),
    ("POST", "/api/v1/memories/{id}/reuse"),
    ("POST", "/api/v1/memories/{id}/unmerge"),
    ("POST", "/api/v1/memories/{id}/pin"),
    ("POST", "/api/v1/memories/{id}/unpin"),
    ("POST", "/api/v1/consolidation/jobs/{job_id}/cancel"),
    ("POST", "/api/v1/consolidation/jobs/{job_id}/apply"),
    ("GET", "/api/v1/projects/{id}/reviews"),
    ("POST", "/api/v1/reviews/{id}/approve"),
    ("POST", "/api/v1/reviews/{id}/reject"),
    ("POST", "/api/v1/projects/{id}/reviews/settle"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/projects/{id}/timeline"),
    ("GET", "/api/v1/attention"),
    ("GET", "/api/v1/workers"),
    ("GET", "/api/v1/dead-letters"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/asyncapi.json"),
    ("GET", "/console"),
    ("GET", "/console/{file}"),
];

#[tokio::test]
async fn the_openapi_document_and_the_router_hold_the_same_routes() {
    let gateway = TestGateway::start().await;
    let spec = spec(&gateway).await;

    let documented = operations(&spec);
    let designed: BTreeSet<(String, String)> =
        DESIGNED_ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect();
    assert_eq!(documented, designed, "documented routes differ from the designed ones");
    for (method, path) in &documented {
        let request = gateway.client.request(method.parse().expect("method"), gateway.url(&uuid_path(path)));
        let response = request.send().await.expect("sent");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
            || body["message"].as_str().is_some_and(|message| message.starts_with("no route"));
        assert!(!unrouted, "{method} {path} is documented but not served ({status}: {body})");
    }
    let unknown = gateway.get("/api/v1/nothing/here").send().await.expect("sent");
    assert!(error(unknown, StatusCode::NOT_FOUND, "not_found").await.starts_with("no route"));
    gateway.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_security_and_schemas() {
    let gateway = TestGateway::start().await;
    let spec = spec(&gateway).await;

    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (method, path) in operations(&spec).into_iter().filter(|(_, path)| path.starts_with("/api/v1")) {
        let operation = &spec["paths"][&path][method.to_lowercase()];
        assert!(operation["security"][0]["bearer"].is_array(), "{method} {path} lacks the bearer requirement");
        for status in ["401", "403"] {
            assert!(operation["responses"][status].is_object(), "{method} {path} lacks a {status} answer");
        }
    }
    for schema in [
        "ErrorBody",
        "TriggerRequest",
        "TriggerResponse",
        "JobView",
        "RollbackView",
        "MemoryInput",
        "ConsolidationOptions",
    ] {
        assert!(spec["components"]["schemas"][schema].is_object(), "schema {schema} missing");
    }
    let memory_types = &spec["components"]["schemas"]["MemoryInput"]["properties"]["memory_type"]["enum"];
    assert_eq!(memory_types.as_array().map(Vec::len), Some(8), "memory types: {memory_types}");
    gateway.stop().await;
}

#[tokio::test]
async fn every_admin_route_refuses_missing_bad_and_expired_tokens_with_401_and_other_roles_with_403() {
    let gateway = TestGateway::start().await;
    let spec = spec(&gateway).await;
    let all = vec!["*".to_owned()];
    let expired = token_with(&all, "admin", chrono::Utc::now().timestamp() - 3600, SECRET);
    let forged = token_with(&all, "admin", chrono::Utc::now().timestamp() + 600, "another-secret");
    let viewer = token(&all, "viewer");
    let nobody = auth::mint(
        SECRET,
        &Claims {
            sub: " ".to_owned(),
            exp: (chrono::Utc::now().timestamp() + 600) as u64,
            role: Some("admin".to_owned()),
            roles: Vec::new(),
            projects: all.clone(),
            iss: None,
            aud: None,
        },
    )
    .expect("token signed");

    for (method, path) in operations(&spec).into_iter().filter(|(_, path)| path.starts_with("/api/v1")) {
        let url = gateway.url(&uuid_path(&path));
        let method: Method = method.parse().expect("method");
        let without = gateway.client.request(method.clone(), &url).send().await.expect("sent");
        error(without, StatusCode::UNAUTHORIZED, "unauthorized").await;
        for bad in [&expired, &forged, &nobody, &"not-a-jwt".to_owned()] {
            let response = gateway.client.request(method.clone(), &url).bearer_auth(bad).send().await.expect("sent");
            error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
        let basic = gateway.client.request(method.clone(), &url).header("authorization", "Basic eDp5").send().await;
        error(basic.expect("sent"), StatusCode::UNAUTHORIZED, "unauthorized").await;
        let response = gateway.client.request(method.clone(), &url).bearer_auth(&viewer).send().await.expect("sent");
        let message = error(response, StatusCode::FORBIDDEN, "forbidden").await;
        assert!(message.contains("admin"), "{method} {path}: {message}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn health_and_readiness_report_the_database_and_nats() {
    let gateway = TestGateway::start().await;

    let live = ok(gateway.client.get(gateway.url("/healthz")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(live["status"], "ok");
    let ready = ok(gateway.client.get(gateway.url("/readyz")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(ready, json!({"status": "ready", "database": true, "nats": true}));
    gateway.stop().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let gateway = TestGateway::start().await;
    gateway.requests_db.close().await;

    let response = gateway.client.get(gateway.url("/readyz")).send().await.expect("sent");
    let message = error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(message.contains("database=false") && message.contains("nats=true"), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_jobs_by_status() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    ok(gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent"), StatusCode::OK).await;
    ok(gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent"), StatusCode::OK).await;
    let trigger = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    ok(trigger.expect("sent"), StatusCode::ACCEPTED).await;

    let response = gateway.client.get(gateway.url("/metrics")).send().await.expect("sent");
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("application/openmetrics-text"));
    let text = response.text().await.expect("body");
    assert!(
        text.contains(r#"consolidator_http_requests_total{method="GET",route="/api/v1/projects/{id}",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"consolidator_http_request_duration_seconds_count{method="GET",route="/api/v1/projects/{id}"} 2"#
        )
    );
    assert!(text.contains(r#"consolidator_jobs{status="pending"} 1"#), "{text}");
    assert!(text.contains(r#"consolidator_jobs{status="completed"} 0"#));
    assert!(text.contains("consolidator_job_duration_seconds_count 0"), "{text}");
    assert!(text.contains(r#"consolidator_job_duration_seconds_bucket{le="+Inf"} 0"#));
    gateway.stop().await;
}

#[tokio::test]
async fn metrics_can_require_their_own_token() {
    let gateway = TestGateway::start_with(|config| config.metrics_token = Some("scrape-secret".to_owned())).await;
    let url = gateway.url("/metrics");
    let bare = gateway.client.get(&url).send().await.expect("sent");
    let message = error(bare, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(message.contains("METRICS_TOKEN"), "{message}");
    let wrong = gateway.client.get(&url).bearer_auth("scrape-secreT").send().await.expect("sent");
    error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let right = gateway.client.get(&url).bearer_auth("scrape-secret").send().await.expect("sent");
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.text().await.expect("body").contains("consolidator_jobs"));
    gateway.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_keeps_the_callers() {
    let gateway = TestGateway::start().await;

    let generated = gateway.client.get(gateway.url("/healthz")).send().await.expect("sent");
    let id = generated.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(Uuid::parse_str(&id).is_ok(), "{id}");
    let kept = gateway.client.get(gateway.url("/healthz")).header("x-request-id", "caller-42").send().await;
    assert_eq!(kept.expect("sent").headers()["x-request-id"], "caller-42");
    gateway.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let gateway = TestGateway::start_with(|config| config.body_limit_bytes = 4096).await;
    let project = gateway.project().await;

    let summary = "x".repeat(8192);
    let body = json!({"memories": [{"execution_summary": summary, "memory_type": "learning"}]});
    let response = gateway.post(&format!("/api/v1/projects/{project}/memories"), &body).send().await.expect("sent");
    error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    gateway.stop().await;
}

#[tokio::test]
async fn invalid_settings_fail_at_start_naming_the_setting() {
    let env = TestEnv::new().await;
    let mut slow_rollback = config();
    slow_rollback.rollback_wait_ms = 60_000;
    let error = AppState::new(env.db.clone(), env.bus.clone(), slow_rollback, RetentionConfig::default())
        .err()
        .expect("refused");
    assert_eq!(error.name, "ROLLBACK_WAIT_MS");

    let refused = |configure: &dyn Fn(&mut GatewayConfig)| {
        let mut config = config();
        configure(&mut config);
        AppState::new(env.db.clone(), env.bus.clone(), config, RetentionConfig::default())
            .err()
            .map(|error| (error.name, error.message))
    };
    let no_key = refused(&|config| config.jwt_secret = None).expect("no key refused");
    assert_eq!(no_key.0, "JWT_SECRET");
    let short = refused(&|config| config.jwt_secret = Some("change-me-in-production".to_owned())).expect("refused");
    assert!(short.0 == "JWT_SECRET" && short.1.contains("at least 32"), "{short:?}");
    let both = refused(&|config| config.jwt_public_key = Some("/nonexistent.pem".to_owned())).expect("refused");
    assert!(both.1.contains("not both"), "{both:?}");
    assert_eq!(refused(&|config| config.sse_max_streams = 0).map(|e| e.0), Some("SSE_MAX_STREAMS"));
    assert_eq!(refused(&|config| config.search_max_candidates = 0).map(|e| e.0), Some("SEARCH_MAX_CANDIDATES"));
}

#[tokio::test]
async fn shutdown_ends_live_event_streams_and_stops_the_server() {
    let gateway = TestGateway::start().await;
    let project = gateway.project().await;
    let trigger = gateway.post("/api/v1/consolidation/trigger", &json!({"project_id": project})).send().await;
    let job = ok(trigger.expect("sent"), StatusCode::ACCEPTED).await["job_id"].as_str().expect("job id").to_owned();
    let events = gateway.get(&format!("/api/v1/consolidation/status/{job}/events")).send().await.expect("sent");
    assert_eq!(events.status(), StatusCode::OK);
    let mut body = events.bytes_stream();

    gateway.shutdown.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(10), async { while body.next().await.is_some() {} }).await;
    assert!(drained.is_ok(), "the event stream outlived the shutdown");
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.handle).await;
    assert!(matches!(stopped, Ok(Ok(Ok(_)))), "the server did not stop: {stopped:?}");
}
