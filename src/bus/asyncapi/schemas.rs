//! The payload schemas: derived from the message types' `utoipa::ToSchema` (the same derives the
//! OpenAPI document reads), then tightened where a rule lives in code rather than in a type.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::bus::messages::{
    CancelCommand, CheckCommand, DeadLetter, JobEvent, MAX_ACTOR_CHARS, RollbackCommand, RollbackEvent, SCHEMA_VERSION,
    SweepCommand, SweepSummary, TriggerCommand, UnmergeCommand, UnmergeEvent,
};

/// Every message type of the bus, and (through utoipa) every schema they refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    TriggerCommand,
    RollbackCommand,
    SweepCommand,
    CheckCommand,
    CancelCommand,
    UnmergeCommand,
    JobEvent,
    RollbackEvent,
    UnmergeEvent,
    SweepSummary,
    DeadLetter
)))]
struct Messages;

/// A text with no NUL character (U+0000): PostgreSQL's text and jsonb cannot hold one.
const NO_NUL: &str = "^[^\\x00]*$";

/// The free-text fields a command's sender chooses (see `messages::Versioned::texts`).
const SENDER_TEXTS: [&str; 3] = ["triggered_by", "requested_by", "reason"];

/// The name of the NATS server's max-deliveries advisory, the one payload this service does not
/// define.
pub const ADVISORY: &str = "MaxDeliveriesAdvisory";

/// The advisory's fields the worker reads (`worker::advisories`); the server sends more.
fn advisory() -> Value {
    json!({
        "type": "object",
        "description": "JetStream's `io.nats.jetstream.advisory.v1.max_deliver` advisory (defined by the NATS \
                        server); the fields the worker reads",
        "required": ["stream", "consumer", "stream_seq", "deliveries"],
        "properties": {
            "type": {"type": "string", "const": "io.nats.jetstream.advisory.v1.max_deliver"},
            "stream": {"type": "string"},
            "consumer": {"type": "string"},
            "stream_seq": {"type": "integer", "minimum": 0},
            "deliveries": {"type": "integer", "minimum": 0}
        }
    })
}

/// The schemas by name, as `components.schemas`.
pub fn components() -> Map<String, Value> {
    let schemas = Messages::openapi().components.map(|components| components.schemas).unwrap_or_default();
    let Ok(Value::Object(mut schemas)) = serde_json::to_value(schemas) else { return Map::new() };
    for (name, schema) in schemas.iter_mut() {
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        if let Some(version) = properties.get_mut("schema_version") {
            *version = json!({
                "type": "integer",
                "const": SCHEMA_VERSION,
                "description": "The payload's version; a worker dead-letters a command of any other"
            });
        }
        if name.ends_with("Command") {
            for field in SENDER_TEXTS {
                if let Some(Value::Object(text)) = properties.get_mut(field) {
                    text.insert("maxLength".to_owned(), json!(MAX_ACTOR_CHARS));
                    text.insert("pattern".to_owned(), json!(NO_NUL));
                }
            }
        }
    }
    schemas.insert(ADVISORY.to_owned(), advisory());
    schemas
}
