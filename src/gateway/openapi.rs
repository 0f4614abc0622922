//! `/openapi.json`: built from the handlers' own annotations (see [`super::api`]), then the
//! answers every operation shares are added in one place: the bearer requirement with 401/403
//! on admin routes, 405 and 503 everywhere, 413/415/422 wherever a JSON body is read, the
//! configured limits (batch size) as schema bounds, and the schema of one Server-Sent Event.

use std::sync::Arc;

use axum::{Extension, Json};
use serde_json::{Value, json};
use utoipa::{OpenApi, openapi};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{API_PREFIX, AppState, error::ErrorBody};
use crate::{
    bus::messages::JobEvent,
    config::GatewayConfig,
    domain::{ChangeOperation, JobState, TriggerType},
    interchange::{MAX_PATH_CHARS, MAX_TAG_CHARS, MAX_TAGS, MAX_TASK_ID_CHARS},
};

const BEARER: &str = "bearer";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consolidator",
        description = "Admin API of the task-memory consolidation service: trigger and follow jobs, \
                       read their audit trail, roll them back, configure projects, ingest and search memories. \
                       Every error is `{\"error\": \"<code>\", \"message\": \"...\"}`.",
    ),
    components(schemas(ErrorBody, JobState, TriggerType, ChangeOperation, JobEvent)),
    tags(
        (name = "consolidation", description = "Jobs: trigger, status, live events, history, changes"),
        (name = "rollback", description = "Undo a completed job"),
        (name = "projects", description = "Projects, their consolidation settings and playbooks"),
        (name = "memories", description = "Ingest, list, read, search, archive, restore, count reuse, audit trail"),
        (name = "reviews", description = "The value guard's review queue: possible updates to approve or reject"),
        (name = "audit", description = "Every administrator's action, who and when"),
        (name = "operations", description = "An operator's view: projects needing attention, store health over time, workers, dead letters"),
        (name = "health", description = "Liveness, readiness, metrics, this document"),
        (name = "console", description = "The admin console: static files; the page calls the API with the token it is given"),
    )
)]
struct ApiDoc;

pub fn base() -> openapi::OpenApi {
    ApiDoc::openapi()
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The served document: the annotations' with the shared answers and limits added.
pub fn finish(spec: openapi::OpenApi, config: &GatewayConfig) -> Value {
    let mut spec = serde_json::to_value(spec).unwrap_or(Value::Null);
    spec["components"]["securitySchemes"][BEARER] = json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 or RS256 token with role `admin` and a `projects` claim (ids or `*`)"
    });
    if let Some(paths) = spec["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                if let Some(operation) = item.get_mut(method) {
                    complete_operation(path, operation, config);
                }
            }
        }
    }
    let batch = &mut spec["components"]["schemas"]["IngestRequest"]["properties"]["memories"];
    if batch.is_object() {
        batch["maxItems"] = json!(config.ingest_max_batch);
    }
    for (schema, field) in [("SearchRequest", "embedding"), ("MemoryInput", "context_embedding")] {
        let embedding = &mut spec["components"]["schemas"][schema]["properties"][field];
        if embedding.is_object() {
            bound_embedding(embedding);
        }
    }
    let not_blank = not_blank();
    for text in [
        "CreateProject/properties/name",
        "MemoryInput/properties/execution_summary",
        "MemoryInput/properties/tags/items",
    ] {
        set(&mut spec, text, "pattern", json!(not_blank));
    }
    set(&mut spec, "MemoryInput/properties/tags/items", "maxLength", json!(MAX_TAG_CHARS));
    set(&mut spec, "MemoryInput/properties/files/items", "minLength", json!(1));
    set(&mut spec, "MemoryInput/properties/files/items", "maxLength", json!(MAX_PATH_CHARS));
    set(&mut spec, "MemoryInput/properties/task_ids", "maxItems", json!(MAX_TAGS));
    set(&mut spec, "MemoryInput/properties/task_ids/items", "maxLength", json!(MAX_TASK_ID_CHARS));
    forbid_nul(&mut spec);
    spec
}

/// Sets `key` of the component schema at `path` (below components/schemas), if it is there.
fn set(spec: &mut Value, path: &str, key: &str, value: Value) {
    if let Some(Value::Object(schema)) = spec.pointer_mut(&format!("/components/schemas/{path}")) {
        schema.insert(key.to_owned(), value);
    }
}

/// The pattern of a text with a character that is neither NUL nor white space, as `str::trim`
/// counts white space (every such character is in the Basic Multilingual Plane).
pub fn not_blank() -> String {
    let blanks: String = (0..=0xFFFF_u32)
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace())
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect();
    format!("^[^\\x00]*[^\\x00{blanks}][^\\x00]*$")
}

/// An embedding's values are 32-bit floats (a larger number would be infinite), and not all zero.
fn bound_embedding(embedding: &mut Value) {
    embedding["items"]["minimum"] = json!(f64::from(f32::MIN));
    embedding["items"]["maximum"] = json!(f64::from(f32::MAX));
    embedding["contains"] = json!({"not": {"const": 0}});
}

/// PostgreSQL stores no NUL character in text: every free text says so with a pattern (a request
/// holding one is a 422 naming the field).
pub const NO_NUL: &str = "^[^\\x00]*$";

fn forbid_nul(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let is_text = match object.get("type") {
                Some(Value::String(kind)) => kind == "string",
                Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "string"),
                _ => false,
            };
            let constrained = ["format", "enum", "pattern", "const"].iter().any(|key| object.contains_key(*key));
            if is_text && !constrained {
                object.insert("pattern".to_owned(), json!(NO_NUL));
            }
            object.values_mut().for_each(forbid_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

fn complete_operation(path: &str, operation: &mut Value, config: &GatewayConfig) {
    let admin = path.starts_with(API_PREFIX);
    let has_body = operation.get("requestBody").is_some();
    if admin {
        operation["security"] = json!([{BEARER: []}]);
    }
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };
    // Before OpenAPI 3.2 (`itemSchema`), an event stream's `schema` describes one event.
    for response in responses.values_mut() {
        if let Some(stream) = response.pointer_mut("/content/text~1event-stream") {
            stream["schema"] = sse_event();
        }
    }
    let mut add = |status: &str, answer: Value| {
        responses.entry(status.to_owned()).or_insert(answer);
    };
    if admin {
        add("401", error("Missing, malformed, expired or invalid token"));
        add("403", error("The token lacks the admin role or access to this project"));
    }
    add("405", error("The path exists, but not with this method"));
    if admin {
        add(
            "503",
            error("The database or NATS is unavailable, or the request took longer than HTTP_REQUEST_TIMEOUT_SECS"),
        );
    }
    if has_body {
        add("400", error("The body is not JSON"));
        let limit = config.body_limit_bytes;
        add("413", error(&format!("The body is larger than HTTP_BODY_LIMIT_BYTES ({limit} bytes here)")));
        add("415", error("The body is not declared `Content-Type: application/json`"));
        add(
            "422",
            error(
                "A field is missing, of the wrong type or out of range, or a text holds a NUL character (named in the message)",
            ),
        );
    }
}

/// One Server-Sent Event of a job's stream.
fn sse_event() -> Value {
    json!({
        "type": "object",
        "description": "One Server-Sent Event: `event` is the JobEvent's kind, `id` its stream sequence (absent \
                        on an end told from the database), `data` the JobEvent as JSON",
        "required": ["event", "data"],
        "properties": {
            "event": {"$ref": "#/components/schemas/JobEventKind"},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/JobEvent"}
            }
        }
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)))]
pub async fn openapi_json(Extension(spec): Extension<Arc<Value>>) -> Json<Value> {
    Json(spec.as_ref().clone())
}
