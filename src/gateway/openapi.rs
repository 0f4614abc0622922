//! `/openapi.json`: built from the handlers' own annotations (see [`super::api`]), then the
//! answers every operation shares are added in one place: the bearer requirement with 401/403
//! on admin routes, 405 and 503 everywhere, 413/415/422 wherever a JSON body is read, and the
//! configured limits (batch size) as schema bounds.

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
    spec
}

fn complete_operation(path: &str, operation: &mut Value, config: &GatewayConfig) {
    let admin = path.starts_with(API_PREFIX);
    let has_body = operation.get("requestBody").is_some();
    if admin {
        operation["security"] = json!([{BEARER: []}]);
    }
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };
    // OpenAPI 3.1 has no field for the items of a stream; this names the schema of each event's
    // `data` for tools that read it (3.2 calls it `itemSchema`).
    for response in responses.values_mut() {
        if let Some(stream) = response.pointer_mut("/content/text~1event-stream") {
            stream["x-event-data"] = json!({"$ref": "#/components/schemas/JobEvent"});
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)))]
pub async fn openapi_json(Extension(spec): Extension<Arc<Value>>) -> Json<Value> {
    Json(spec.as_ref().clone())
}
