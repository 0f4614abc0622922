//! The AsyncAPI 3.0 document of the bus, generated from the code: addresses from the `Prefix`
//! methods the service publishes with, payload schemas from the message types' `ToSchema`
//! derives, streams and consumers from the configurations the worker creates them with. The
//! gateway serves it at `/asyncapi.json`; `consolidator asyncapi` writes `docs/asyncapi.json`.
//! `subjects.md` remains the guide for people.

mod channels;
mod schemas;

use std::time::Duration;

use serde_json::{Map, Value, json};

pub use channels::{Channel, MessageId, Role, Stream, channels};

use super::{
    CommandKind,
    streams::{ConsumerSettings, consumer_config, stream_configs},
};
use crate::{config::DEFAULT_EVENTS_MAX_AGE_HOURS, domain::Prefix};

pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// The header JetStream reads a message's deduplication id from.
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";
/// The version of the NATS bindings (`queue`) this document writes.
const NATS_BINDING_VERSION: &str = "0.1.0";

/// What a deployment chooses that the document states.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: Prefix,
    pub replicas: usize,
    pub events_max_age: Duration,
}

impl Layout {
    /// The default settings (one replica, events kept `EVENTS_MAX_AGE_HOURS` by default) under `prefix`.
    pub fn with_defaults(prefix: Prefix) -> Self {
        Self { prefix, replicas: 1, events_max_age: Duration::from_secs(DEFAULT_EVENTS_MAX_AGE_HOURS * 3600) }
    }
}

/// The document as pretty JSON with a final newline, as `docs/asyncapi.json` holds it.
pub fn to_text(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    text
}

pub fn document(layout: &Layout) -> Value {
    let channels = channels(&layout.prefix);
    let [commands, events] = stream_configs(&layout.prefix, layout.replicas, layout.events_max_age);
    let stream_of = |stream: Stream| match stream {
        Stream::Commands => Some(commands.name.clone()),
        Stream::Events => Some(events.name.clone()),
        Stream::None => None,
    };
    let mut channel_objects = Map::new();
    let mut messages = Map::new();
    let mut operations = Map::new();
    for channel in &channels {
        let mut object = channel_object(channel);
        if let Some(stream) = stream_of(channel.stream) {
            object["x-jetstream-stream"] = json!(stream);
        }
        channel_objects.insert(channel.id.to_owned(), object);
        messages.insert(channel.message.to_owned(), message_object(channel));
        for (action, roles) in [("send", &channel.senders), ("receive", &channel.receivers)] {
            for role in roles {
                let (id, operation) = operation(layout, channel, *role, action);
                operations.insert(id, operation);
            }
        }
    }
    let streams: Map<String, Value> = [commands, events]
        .into_iter()
        .map(|config| (config.name.clone(), serde_json::to_value(&config).unwrap_or(Value::Null)))
        .collect();
    let consumers: Map<String, Value> =
        CommandKind::ALL.into_iter().map(|kind| (layout.prefix.consumer(kind), consumer(layout, kind))).collect();
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "id": format!("urn:consolidator:bus:{}", layout.prefix),
        "info": {
            "title": "consolidator bus",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The NATS JetStream subjects of `consolidator` under the prefix `{prefix}`: commands to its workers \
                 and the events they publish. Every payload is JSON with `schema_version` (currently {version}). \
                 Publishers of commands set `{MESSAGE_ID_HEADER}` to the idempotency key: JetStream drops a repeat \
                 inside the stream's duplicate window. Operations are tagged with the role that performs them. \
                 `x-jetstream` gives the streams (as the JetStream API takes them) and the workers' durable \
                 consumers. The guide for people, with examples and NATS permissions per role, is subjects.md.",
                prefix = layout.prefix,
                version = super::messages::SCHEMA_VERSION,
            ),
            "license": {"name": "MIT"},
            "tags": Role::ALL.iter().map(|role| json!({"name": role.tag(), "description": role.description()})).collect::<Vec<_>>(),
        },
        "defaultContentType": "application/json",
        "channels": channel_objects,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas::components()},
        "x-jetstream": {"streams": streams, "consumers": consumers},
    })
}

fn channel_object(channel: &Channel) -> Value {
    let mut object = json!({
        "address": channel.address,
        "title": channel.title,
        "description": channel.description,
        "messages": {channel.message: {"$ref": format!("#/components/messages/{}", channel.message)}},
    });
    if !channel.parameters.is_empty() {
        let parameters: Map<String, Value> = channel
            .parameters
            .iter()
            .map(|parameter| {
                let mut object = json!({"description": parameter.description});
                if !parameter.values.is_empty() {
                    object["enum"] = json!(parameter.values);
                }
                (parameter.name.to_owned(), object)
            })
            .collect();
        object["parameters"] = Value::Object(parameters);
    }
    object
}

fn message_object(channel: &Channel) -> Value {
    let mut message = json!({
        "name": channel.message,
        "title": channel.title,
        "contentType": "application/json",
        "payload": {"$ref": format!("#/components/schemas/{}", channel.message)},
    });
    if let Some(id) = channel.message_id {
        let mut headers = json!({
            "type": "object",
            "properties": {MESSAGE_ID_HEADER: {"type": "string", "minLength": 1, "description": id.description}},
        });
        if id.required {
            headers["required"] = json!([MESSAGE_ID_HEADER]);
        }
        message["headers"] = headers;
    }
    message
}

/// One role's send or receive on a channel, under an id such as `workerReceivesTrigger`.
fn operation(layout: &Layout, channel: &Channel, role: Role, action: &str) -> (String, Value) {
    let verb = if action == "send" { "Sends" } else { "Receives" };
    let id = format!("{}{verb}{}{}", camel(role.tag()), channel.id[..1].to_ascii_uppercase(), &channel.id[1..]);
    let mut operation = json!({
        "action": action,
        "channel": {"$ref": format!("#/channels/{}", channel.id)},
        "messages": [{"$ref": format!("#/channels/{}/messages/{}", channel.id, channel.message)}],
        "summary": format!("The {} {}s {}: {}", role.tag().replace('_', " "), action, channel.message, channel.title),
        "tags": [{"name": role.tag()}],
    });
    match (role, channel.consumer, channel.stream) {
        (Role::Worker, Some(kind), _) if action == "receive" => {
            operation["x-jetstream-consumer"] = json!(layout.prefix.consumer(kind));
        }
        (Role::Worker, None, Stream::None) => {
            operation["bindings"] = json!({"nats": {"queue": format!("{}_advisories", layout.prefix), "bindingVersion": NATS_BINDING_VERSION}});
        }
        _ => {}
    }
    (id, operation)
}

/// `outside_service` -> `outsideService`.
fn camel(tag: &str) -> String {
    let mut words = tag.split('_');
    let first = words.next().unwrap_or_default().to_owned();
    words.fold(first, |mut id, word| {
        let mut chars = word.chars();
        if let Some(initial) = chars.next() {
            id.extend(initial.to_uppercase());
            id.push_str(chars.as_str());
        }
        id
    })
}

/// A worker's durable consumer: the configuration it is created with, the worker's settings
/// named where they depend on its configuration.
fn consumer(layout: &Layout, kind: CommandKind) -> Value {
    let placeholder = ConsumerSettings { ack_wait: Duration::ZERO, max_deliver: 0, max_ack_pending: 0 };
    let mut config = serde_json::to_value(consumer_config(&layout.prefix, kind, &placeholder, layout.replicas))
        .unwrap_or(Value::Null);
    if let Some(fields) = config.as_object_mut() {
        for setting in ["ack_wait", "max_deliver", "max_ack_pending"] {
            fields.remove(setting);
        }
    }
    json!({
        "config": config,
        "set_by_the_worker": {
            "ack_wait": "ACK_WAIT_SECS (default 30 s)",
            "max_deliver": "JETSTREAM_MAX_DELIVER (default MAX_DELIVERIES + RETRY_BUDGET_SECS / 30 + 16)",
            "max_ack_pending": if kind == CommandKind::Trigger {
                "64 x WORKER_CONCURRENCY"
            } else {
                "64 x the worker's in-flight limit for small commands"
            },
        },
    })
}
