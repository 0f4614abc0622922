//! Gateway: the served OpenAPI document is valid (every reference resolves, every path parameter
//! is declared, every answer described, every schema well-formed) and complete (shared answers,
//! limits, the event stream), and requests generated from it, odd ones included, never get a 5xx.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use consolidator::store::jobs::TriggerType;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];
const JSON_TYPES: [&str; 7] = ["string", "number", "integer", "boolean", "array", "object", "null"];

async fn served(gateway: &TestGateway) -> Value {
    ok(gateway.client.get(gateway.url("/openapi.json")).send().await.expect("sent"), StatusCode::OK).await
}

/// Every problem the document has, as readable lines (empty when it is valid).
fn problems(spec: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if !spec["openapi"].as_str().is_some_and(|version| version.starts_with("3.1.")) {
        found.push(format!("openapi version {}", spec["openapi"]));
    }
    if !spec["info"]["title"].is_string() || !spec["info"]["version"].is_string() {
        found.push("info.title and info.version are required".to_owned());
    }
    check_refs(spec, spec, "#", &mut found);
    let mut operation_ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        let templated: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let at = format!("{} {path}", method.to_uppercase());
            if let Some(id) = operation["operationId"].as_str() {
                if !operation_ids.insert(id.to_owned()) {
                    found.push(format!("{at}: operationId {id} used twice"));
                }
            }
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let mut declared = BTreeSet::new();
            for parameter in &parameters {
                let location = parameter["in"].as_str().unwrap_or_default();
                if !["query", "header", "path", "cookie"].contains(&location) || !parameter["name"].is_string() {
                    found.push(format!("{at}: parameter {parameter} lacks a name or a valid `in`"));
                }
                if parameter.get("schema").is_none() && parameter.get("content").is_none() {
                    found.push(format!("{at}: parameter {} has no schema", parameter["name"]));
                }
                if location == "path" {
                    if parameter["required"] != true {
                        found.push(format!("{at}: path parameter {} must be required", parameter["name"]));
                    }
                    declared.insert(parameter["name"].as_str().unwrap_or_default().to_owned());
                }
            }
            if declared != templated {
                found.push(format!("{at}: path parameters {declared:?} differ from the template's {templated:?}"));
            }
            let responses = operation["responses"].as_object().cloned().unwrap_or_default();
            if responses.is_empty() {
                found.push(format!("{at}: no responses"));
            }
            for (status, response) in &responses {
                let valid = status == "default"
                    || (status.len() == 3
                        && status.chars().all(|c| c.is_ascii_digit())
                        && ("1".."6").contains(&&status[..1]));
                if !valid {
                    found.push(format!("{at}: response key {status}"));
                }
                if !response["description"].is_string() {
                    found.push(format!("{at} {status}: no description"));
                }
                for media in response["content"].as_object().into_iter().flatten().map(|(media, _)| media) {
                    if media.split('/').count() != 2 {
                        found.push(format!("{at} {status}: media type {media}"));
                    }
                }
            }
        }
    }
    for (name, schema) in spec["components"]["schemas"].as_object().into_iter().flatten() {
        check_schema(schema, &format!("components.schemas.{name}"), &mut found);
    }
    found
}

/// Every `$ref` must point at something in this document.
fn check_refs(root: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(reference) = fields.get("$ref") {
                let target =
                    reference.as_str().and_then(|r| r.strip_prefix('#')).and_then(|pointer| root.pointer(pointer));
                if target.is_none() {
                    found.push(format!("{at}: $ref {reference} does not resolve"));
                }
            }
            for (key, item) in fields {
                check_refs(root, item, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, item)| check_refs(root, item, &format!("{at}/{i}"), found))
        }
        _ => {}
    }
}

fn check_schema(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(fields) = schema.as_object() else { return };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if let Some(bad) = types.iter().find(|t| !JSON_TYPES.contains(t)) {
        found.push(format!("{at}: type {bad}"));
    }
    for (low, high) in [("minimum", "maximum"), ("minItems", "maxItems"), ("minLength", "maxLength")] {
        if let (Some(low_value), Some(high_value)) = (schema[low].as_f64(), schema[high].as_f64()) {
            if low_value > high_value {
                found.push(format!("{at}: {low} {low_value} > {high} {high_value}"));
            }
        }
    }
    if schema.get("enum").is_some_and(|values| values.as_array().is_none_or(Vec::is_empty)) {
        found.push(format!("{at}: empty enum"));
    }
    if let (Some(required), Some(properties)) = (schema["required"].as_array(), schema["properties"].as_object()) {
        for name in required.iter().filter_map(Value::as_str) {
            if !properties.contains_key(name) {
                found.push(format!("{at}: required property {name} is not defined"));
            }
        }
    }
    for (key, value) in fields {
        match key.as_str() {
            "properties" => value
                .as_object()
                .into_iter()
                .flatten()
                .for_each(|(name, property)| check_schema(property, &format!("{at}.{name}"), found)),
            "items" | "additionalProperties" => check_schema(value, &format!("{at}.{key}"), found),
            "allOf" | "oneOf" | "anyOf" => value
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .for_each(|(i, part)| check_schema(part, &format!("{at}.{key}[{i}]"), found)),
            _ => {}
        }
    }
}

fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                all.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_and_states_every_answer_and_limit() {
    let gateway = TestGateway::start().await;
    let spec = served(&gateway).await;

    let found = problems(&spec);
    assert!(found.is_empty(), "the OpenAPI document is invalid:\n{}", found.join("\n"));
    for schema in
        ["JobState", "TriggerType", "Operation", "JobEvent", "ErrorBody", "MemoryDetail", "ProjectPage", "PlaybookPage"]
    {
        assert!(spec["components"]["schemas"][schema].is_object(), "schema {schema} is not registered");
    }
    for (method, path, operation) in operations(&spec) {
        let responses = &operation["responses"];
        let mut expected = vec!["405"];
        if path.starts_with("/api/v1") {
            expected.extend(["401", "403", "503"]);
        }
        if operation.get("requestBody").is_some() {
            expected.extend(["400", "413", "415", "422"]);
        }
        for status in expected {
            assert!(responses[status].is_object(), "{method} {path} does not document {status}");
        }
        if path.starts_with("/api/v1/memories/{id}/") && method == "POST" {
            assert!(responses["422"].is_object(), "{method} {path} lacks 422");
        }
    }
    let events = &spec["paths"]["/api/v1/consolidation/status/{job_id}/events"]["get"]["responses"];
    let event = &events["200"]["content"]["text/event-stream"]["schema"];
    assert_eq!(event["properties"]["data"]["contentSchema"]["$ref"], "#/components/schemas/JobEvent");
    assert_eq!(event["properties"]["event"]["$ref"], "#/components/schemas/JobEventKind");
    assert!(events["200"]["description"].as_str().is_some_and(|d| d.contains("JobEvent")));
    assert!(events["429"].is_object());
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["CreateProject"]["properties"]["name"]["maxLength"], 200);
    assert_eq!(schemas["SearchRequest"]["properties"]["limit"]["maximum"], 100);
    assert_eq!(schemas["SearchRequest"]["properties"]["min_similarity"]["minimum"], -1);
    assert_eq!(schemas["IngestRequest"]["properties"]["memories"]["maxItems"], 100, "the configured INGEST_MAX_BATCH");
    let job_states = schemas["JobState"]["enum"].as_array().cloned().unwrap_or_default();
    assert!(job_states.contains(&json!("rolled_back")), "{job_states:?}");
    gateway.stop().await;
}

#[test]
fn the_check_finds_a_dangling_reference_an_undeclared_parameter_and_a_bad_schema() {
    let spec = json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/things/{id}": {"get": {"responses": {"200": {"description": "ok",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Missing"}}}}}}}},
        "components": {"schemas": {"Bad": {"type": "text", "minimum": 5, "maximum": 1, "required": ["x"], "properties": {}}}}
    });
    let found = problems(&spec).join("\n");
    for expected in ["does not resolve", "path parameters", "type text", "minimum 5", "required property x"] {
        assert!(found.contains(expected), "{expected} not found in:\n{found}");
    }
}

/// A value a careless or hostile client might send where the schema wants something else.
fn odd_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(i64::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(-1e-300)),
        Just(json!(0.5)),
        ".{0,12}".prop_map(Value::from),
        Just(json!("nul\u{0}inside")),
        Just(json!("x".repeat(5000))),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!("rolled_back")),
        Just(json!("learning")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A request body: an object with the schema's own property names holding odd values, any odd
/// JSON, or text that is not JSON at all (huge exponents, truncation, NUL escapes).
fn odd_body(properties: Vec<String>) -> impl Strategy<Value = String> {
    let names = if properties.is_empty() { vec!["name".to_owned()] } else { properties };
    let shaped = prop::collection::btree_map(prop::sample::select(names), odd_value(), 0..5)
        .prop_map(|map| Value::Object(map.into_iter().collect::<serde_json::Map<_, _>>()).to_string());
    prop_oneof![
        4 => shaped,
        2 => odd_value().prop_map(|value| value.to_string()),
        1 => prop_oneof![
            Just(String::new()),
            Just("{".to_owned()),
            Just(r#"{"limit": 1e400, "embedding": [1e400]}"#.to_owned()),
            Just(r#"{"name": "a\u0000b"}"#.to_owned()),
            Just(r#"{"memories": [{"execution_summary": "x", "memory_type": "learning", "context_embedding": [0, 0]}]}"#.to_owned()),
            Just("[]".to_owned()),
        ],
    ]
}

fn request_properties(spec: &Value, operation: &Value) -> Vec<String> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    let schema = match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => spec.pointer(pointer).cloned().unwrap_or(Value::Null),
        None => schema.clone(),
    };
    schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_generated_from_the_spec_never_get_a_5xx_and_every_error_is_json() {
    let gateway = TestGateway::start_with(|config| config.rollback_wait_ms = 100).await;
    let project = gateway.project().await;
    let memories = ingest(&gateway, project, &[memory_json("a", "learning", direction(0, 0.0))]).await;
    let job = finished_job(&gateway, project, TriggerType::Manual, true, json!({"dry_run": false})).await;
    let spec = served(&gateway).await;
    let ids = vec![
        project.to_string(),
        memories[0].to_string(),
        job.id.to_string(),
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        "%00".to_owned(),
        "9".repeat(300),
    ];
    let query_values =
        vec!["-1", "0", "1", "99999999999999999999", "true", "maybe", "%00", "rolled_back", "merge", "2026-13-45"];

    let mut strategies = Vec::new();
    for (method, template, operation) in operations(&spec) {
        let params: Vec<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let has_body = operation.get("requestBody").is_some();
        let properties = request_properties(&spec, &operation);
        let path_ids = prop::collection::vec(prop::sample::select(ids.clone()), 2);
        let query = if params.is_empty() {
            Just(Vec::new()).boxed()
        } else {
            prop::collection::vec((prop::sample::select(params), prop::sample::select(query_values.clone())), 0..3)
                .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k, v.to_owned())).collect())
                .boxed()
        };
        let body = if has_body { odd_body(properties).prop_map(Some).boxed() } else { Just(None).boxed() };
        let case = (path_ids, query, body).prop_map(move |(path_ids, query, body)| {
            let mut next = path_ids.into_iter();
            let path = template
                .split('/')
                .map(
                    |segment| {
                        if segment.starts_with('{') { next.next().unwrap_or_default() } else { segment.to_owned() }
                    },
                )
                .collect::<Vec<_>>()
                .join("/");
            Case { method: method.clone(), path, query, body }
        });
        strategies.push(case.boxed());
    }
    let any_case = prop::strategy::Union::new(strategies);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases: 1000, failure_persistence: None, ..Config::default() });
    let statuses = std::sync::Mutex::new(BTreeMap::<u16, usize>::new());
    let result = runner.run(&any_case, |case| {
        let status = tokio::task::block_in_place(|| handle.block_on(send(&gateway, &case)));
        let (status, body) = status.map_err(TestCaseError::fail)?;
        *statuses.lock().expect("not poisoned").entry(status).or_default() += 1;
        if status >= 500 {
            return Err(TestCaseError::fail(format!("{case:?} answered {status}: {body}")));
        }
        if status >= 400 {
            let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if !parsed["error"].is_string() || !parsed["message"].is_string() {
                return Err(TestCaseError::fail(format!("{case:?} answered {status} without the error body: {body}")));
            }
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    let statuses = statuses.into_inner().expect("not poisoned");
    eprintln!("answers by status: {statuses:?}");
    assert!(statuses.keys().any(|status| *status < 300), "some requests must succeed: {statuses:?}");
    assert!(statuses.contains_key(&422) && statuses.contains_key(&404), "{statuses:?}");
    gateway.stop().await;
}

/// Sends one case; the event stream's body is not read (it may stay open).
async fn send(gateway: &TestGateway, case: &Case) -> Result<(u16, String), String> {
    let method: Method = case.method.parse().map_err(|error| format!("{error}"))?;
    let mut request = gateway.request(method, &case.path).query(&case.query).timeout(Duration::from_secs(20));
    if let Some(body) = &case.body {
        request = request.header("content-type", "application/json").body(body.clone());
    }
    let response = request.send().await.map_err(|error| format!("{case:?}: {error}"))?;
    let status = response.status().as_u16();
    let streaming =
        response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = if streaming { String::new() } else { response.text().await.map_err(|error| error.to_string())? };
    Ok((status, body))
}

/// The places where the service and its document disagreed (issue 24 item 9), each checked on
/// both sides: what the document says, and that the service takes what it says.
#[tokio::test]
async fn the_service_takes_what_its_document_allows() {
    let gateway = TestGateway::start().await;
    let spec = served(&gateway).await;
    let option = &spec["components"]["schemas"]["ConsolidationOptions"]["properties"];
    assert_eq!(option["min_cluster_size"]["type"], json!(["integer", "null"]));
    assert!(option["value_guard"]["enum"].as_array().is_some_and(|values| values.contains(&Value::Null)));
    let cursor = |path: &str| {
        let parameters = spec["paths"][path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        let cursor = parameters.into_iter().find(|p| p["name"] == "cursor").expect("a cursor parameter");
        cursor["schema"]["pattern"].as_str().map(str::to_owned)
    };
    let job_cursor = Some(consolidator::gateway::page::JOB_CURSOR_PATTERN.to_owned());
    let id_cursor = Some(consolidator::gateway::page::ID_CURSOR_PATTERN.to_owned());
    assert_eq!(cursor("/api/v1/consolidation/history/{project_id}"), job_cursor);
    assert_eq!(cursor("/api/v1/projects/{id}/reviews"), job_cursor);
    assert_eq!(cursor("/api/v1/consolidation/jobs/{job_id}/changes"), id_cursor);
    assert_eq!(cursor("/api/v1/memories/{id}/changes"), id_cursor);

    // 89.0 is an integer to JSON Schema; null is "not given"; both are stored as such.
    let project = gateway.project().await;
    let path = format!("/api/v1/consolidation/configure/{project}");
    let body = json!({"threshold": 89.0, "options": {"min_cluster_size": 8.0, "value_guard": null}});
    let configured = ok(gateway.put(&path, &body).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(
        (configured["threshold"].clone(), configured["options"].clone()),
        (json!(89), json!({"min_cluster_size": 8}))
    );
    let halves = json!({"options": {"min_cluster_size": 8.5}});
    error(
        gateway.put(&path, &halves).send().await.expect("sent"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
    )
    .await;
    let search = json!({"embedding": direction(0, 0.0), "limit": 5.0});
    let search = gateway.post(&format!("/api/v1/projects/{project}/memories/search"), &search).send();
    ok(search.await.expect("sent"), StatusCode::OK).await;

    // The memory actions' optional body may be `null`, as the document allows.
    let memories = ingest(&gateway, project, &[memory_json("a", "learning", direction(0, 0.0))]).await;
    let pin = gateway
        .request(Method::POST, &format!("/api/v1/memories/{}/pin", memories[0]))
        .header("content-type", "application/json")
        .body("null");
    assert_eq!(ok(pin.send().await.expect("sent"), StatusCode::OK).await["pinned"], true);
    gateway.stop().await;
}
