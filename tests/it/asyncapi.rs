//! The bus's AsyncAPI document: committed as the code generates it, served by the gateway, and
//! true to the wire: every message the gateway, the worker and the scheduler publish during a
//! run (a job, rollbacks, an unmerge, dead letters, a sweep) validates against the schema of the
//! channel whose address its subject matches.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use chrono::{TimeZone, Utc};
use consolidator::{
    bus::{
        CommandKind,
        asyncapi::{self, Layout},
        messages::{CancelCommand, CheckCommand, SCHEMA_VERSION, UnmergeCommand},
    },
    domain::Prefix,
    store::sweeps,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(60);
/// The message id of the malformed command this test publishes on purpose.
const MALFORMED_ID: &str = "asyncapi-test-malformed";

/// One channel of the document, ready to match subjects and validate payloads and headers.
struct Contract {
    id: String,
    tokens: Vec<String>,
    values: BTreeMap<String, Vec<String>>,
    payload: jsonschema::Validator,
    headers: Option<jsonschema::Validator>,
}

impl Contract {
    /// The channel's contracts, each schema resolved against the document's components.
    fn all(document: &Value) -> Vec<Contract> {
        let mut contracts = Vec::new();
        for (id, channel) in document["channels"].as_object().expect("channels") {
            let (_, reference) = channel["messages"].as_object().and_then(|m| m.iter().next()).expect("a message");
            let pointer = reference["$ref"].as_str().and_then(|r| r.strip_prefix('#')).expect("a local $ref");
            let message = document.pointer(pointer).expect("the message resolves");
            let values = channel["parameters"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, parameter)| {
                    let values = parameter["enum"].as_array()?.iter().filter_map(Value::as_str).map(str::to_owned);
                    Some((name.clone(), values.collect()))
                })
                .collect();
            contracts.push(Contract {
                id: id.clone(),
                tokens: channel["address"].as_str().expect("address").split('.').map(str::to_owned).collect(),
                values,
                payload: validator(document, &message["payload"]),
                headers: message.get("headers").map(|headers| validator(document, headers)),
            });
        }
        contracts
    }

    fn matches(&self, subject: &str) -> bool {
        let tokens: Vec<&str> = subject.split('.').collect();
        tokens.len() == self.tokens.len()
            && self.tokens.iter().zip(&tokens).all(|(pattern, token)| {
                match pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => self.values.get(name).is_none_or(|values| values.iter().any(|v| v == token)),
                    None => pattern == token,
                }
            })
    }
}

/// A validator of `schema` whose `#/components/...` references resolve in `document`. The
/// AsyncAPI schema format is a superset of JSON Schema draft 07; formats (uuid, date-time) are
/// checked too.
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = document["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("schema {schema} does not compile: {error}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|error| format!("{} at {}", error, error.instance_path())).collect()
}

fn headers_of(message: &async_nats::Message) -> Value {
    let headers = message.headers.iter().flat_map(|headers| headers.iter());
    let map = headers
        .filter_map(|(name, values)| Some((name.to_string(), json!(values.first()?.as_str()))))
        .collect::<serde_json::Map<_, _>>();
    Value::Object(map)
}

#[test]
fn the_committed_document_is_the_one_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asyncapi.json");
    let committed = std::fs::read_to_string(path).expect("docs/asyncapi.json is committed");
    let prefix = Prefix::new("consolidation").expect("the default prefix");
    let generated = asyncapi::to_text(&asyncapi::document(&Layout::with_defaults(prefix)));
    assert!(
        committed == generated,
        "docs/asyncapi.json differs from the generated document: run `cargo run -- asyncapi --out docs/asyncapi.json`"
    );
}

#[test]
fn every_channel_lives_in_a_stream_and_every_command_has_its_consumer() {
    let prefix = Prefix::new("doc_check").expect("a prefix");
    let document = asyncapi::document(&Layout::with_defaults(prefix.clone()));
    let streams = document["x-jetstream"]["streams"].as_object().expect("streams");
    for (id, channel) in document["channels"].as_object().expect("channels") {
        let address = channel["address"].as_str().expect("address");
        let Some(stream) = channel["x-jetstream-stream"].as_str() else {
            assert!(address.starts_with("$JS.EVENT.ADVISORY."), "{id} is in no stream");
            continue;
        };
        let wildcard = streams[stream]["subjects"][0].as_str().expect("the stream's subjects");
        let stem = wildcard.strip_suffix('>').expect("a `>` wildcard");
        assert!(address.starts_with(stem), "{id} ({address}) is not under {stream}'s {wildcard}");
    }
    for kind in CommandKind::ALL {
        let channel = &document["channels"][kind.as_str()];
        assert_eq!(channel["address"], prefix.command(kind));
        let receive = format!("workerReceives{}{}", kind.as_str()[..1].to_uppercase(), &kind.as_str()[1..]);
        let consumer = document["operations"][&receive]["x-jetstream-consumer"].as_str().expect("a consumer");
        let config = &document["x-jetstream"]["consumers"][consumer]["config"];
        assert_eq!(
            (config["durable_name"].as_str(), config["filter_subject"].as_str()),
            (Some(prefix.consumer(kind).as_str()), Some(prefix.command(kind).as_str()))
        );
        assert_eq!(config["ack_policy"], "explicit");
    }
    assert_eq!(streams[&prefix.commands_stream()]["retention"], "workqueue");
    // Every operation names messages of its own channel.
    for (id, operation) in document["operations"].as_object().expect("operations") {
        let channel = operation["channel"]["$ref"].as_str().expect("a channel");
        for message in operation["messages"].as_array().expect("messages") {
            let reference = message["$ref"].as_str().expect("a message $ref");
            assert!(reference.starts_with(&format!("{channel}/messages/")), "{id}: {reference}");
            assert!(document.pointer(&reference[1..]).is_some(), "{id}: {reference} does not resolve");
        }
    }
}

#[tokio::test]
async fn the_gateway_serves_the_document_of_its_prefix_without_a_token() {
    let gateway = TestGateway::start().await;
    let response = gateway.client.get(gateway.url("/asyncapi.json")).send().await.expect("sent");
    let served = ok(response, StatusCode::OK).await;
    let layout = Layout { replicas: gateway.env.bus.replicas, ..Layout::with_defaults(gateway.env.bus.prefix.clone()) };
    assert_eq!(served, asyncapi::document(&layout));
    assert_eq!(served["asyncapi"], "3.0.0");
    assert_eq!(served["channels"]["trigger"]["address"], gateway.env.bus.prefix.command(CommandKind::Trigger));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_the_service_publishes_validates_against_its_channels_schema() {
    // Arrange: a gateway, a worker and a scheduler under one prefix, and a tap on all of it.
    let gateway = TestGateway::start().await;
    let env = &gateway.env;
    let bus = &env.bus;
    let mut tap = bus.client.subscribe(format!("{}.>", bus.prefix)).await.expect("subscribed");
    bus.client.flush().await.expect("flushed");
    let worker = env.spawn_worker();
    let document = asyncapi::document(&Layout::with_defaults(bus.prefix.clone()));
    let contracts = Contract::all(&document);

    // Act: a job through the gateway, its rollback twice (completed, then refused), a second job
    // and an unmerge of what it merged.
    let project = gateway.project().await;
    let stored = ingest(&gateway, project, &clustered_memories()).await;
    let first = consolidate(&gateway, project).await;
    assert_eq!(first["status"], "completed", "{first}");
    let job = first["job_id"].as_str().expect("job id").to_owned();
    let rolled_back = post_rollback(&gateway, json!({"consolidation_id": job})).await;
    assert_eq!(rolled_back.status(), StatusCode::OK);
    // Refused (already rolled back): the answer and its event say why.
    post_rollback(&gateway, json!({"consolidation_id": job})).await;
    let second = consolidate(&gateway, project).await;
    assert_eq!(second["status"], "completed", "{second}");
    let source = gateway.get(&format!("/api/v1/memories/{}", stored[0])).send().await.expect("sent");
    let source = ok(source, StatusCode::OK).await;
    let merged = source["provenance"]["consolidated_into"].as_str().expect("merged").to_owned();
    let unmerged = gateway.post(&format!("/api/v1/memories/{merged}/unmerge"), &json!({"reason": "not the same"}));
    ok(unmerged.send().await.expect("sent"), StatusCode::OK).await;

    // An outside service: a check, commands the worker dead-letters, and a malformed trigger.
    let check = CheckCommand { schema_version: SCHEMA_VERSION, project_id: project, requested_by: "runner".into() };
    bus.publish_command(CommandKind::Check, "task-42", &check).await.expect("published");
    let cancel = CancelCommand {
        schema_version: SCHEMA_VERSION,
        project_id: project,
        job_id: Uuid::new_v4(),
        requested_by: "ops-bot".into(),
    };
    bus.publish_command(CommandKind::Cancel, "cancel-unknown", &cancel).await.expect("published");
    let unmerge = UnmergeCommand {
        schema_version: SCHEMA_VERSION,
        project_id: project,
        memory_id: Uuid::new_v4(),
        reason: None,
        requested_by: "review-bot".into(),
    };
    bus.publish_command(CommandKind::Unmerge, "unmerge-unknown", &unmerge).await.expect("published");
    let malformed = json!({"schema_version": SCHEMA_VERSION, "job_id": Uuid::new_v4()});
    bus.publish_command(CommandKind::Trigger, MALFORMED_ID, &malformed).await.expect("published");

    // The scheduler's sweep over a project above its threshold.
    let swept = fixtures::project(&env.db, 3).await;
    fixtures::insert(&env.db, swept.id, &Scenario::new().all()).await;
    let schedule = "0 0 2 * * *";
    let scheduler = test_scheduler(env, schedule);
    let tick = Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).single().expect("a tick");
    scheduler.publish_sweep(tick).await.expect("sweep published");
    eventually(WAIT, || async { sweeps::get(&env.db, tick).await.ok()?.filter(|sweep| sweep.status == "completed") })
        .await
        .expect("the sweep completed");

    // Everything published until the bus has been quiet for two seconds.
    let mut captured = Vec::new();
    let mut sweep_summary = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), tap.next()).await {
            Ok(Some(message)) => {
                sweep_summary |= message.subject.ends_with(".completed") && message.subject.contains(".evt.sweep.");
                captured.push(message);
            }
            Ok(None) => break,
            Err(_) if sweep_summary => break,
            Err(_) => {}
        }
    }
    worker.stop().await;

    // Assert: each message matches exactly one channel and validates, payload and headers.
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut job_kinds = BTreeSet::new();
    for message in &captured {
        let subject = message.subject.as_str();
        let matching: Vec<&Contract> = contracts.iter().filter(|contract| contract.matches(subject)).collect();
        let [contract] = matching.as_slice() else {
            problems.push(format!("{subject} matches {} channels", matching.len()));
            continue;
        };
        let payload: Value = match serde_json::from_slice(&message.payload) {
            Ok(payload) => payload,
            Err(error) => {
                problems.push(format!("{subject}: not JSON: {error}"));
                continue;
            }
        };
        let headers = headers_of(message);
        if headers[asyncapi::MESSAGE_ID_HEADER] == MALFORMED_ID {
            assert!(!contract.payload.is_valid(&payload), "the malformed trigger must not validate");
            continue;
        }
        *seen.entry(contract.id.clone()).or_default() += 1;
        if contract.id == "jobEvents" {
            job_kinds.insert(payload["event"].as_str().unwrap_or_default().to_owned());
        }
        for error in errors(&contract.payload, &payload) {
            problems.push(format!("{subject}: payload: {error}: {payload}"));
        }
        if let Some(validator) = &contract.headers {
            for error in errors(validator, &headers) {
                problems.push(format!("{subject}: headers: {error}: {headers}"));
            }
        }
    }
    eprintln!("validated {} messages; per channel: {seen:?}; job event kinds: {job_kinds:?}", captured.len());
    assert!(
        problems.is_empty(),
        "{} of {} messages break the document:\n{}",
        problems.len(),
        captured.len(),
        problems.join("\n")
    );
    let every_channel: BTreeSet<String> =
        contracts.iter().map(|contract| contract.id.clone()).filter(|id| id != "maxDeliveriesAdvisory").collect();
    let seen_channels: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(seen_channels, every_channel, "messages per channel: {seen:?}");
    for kind in ["queued", "started", "progress", "completed", "rolled_back"] {
        assert!(job_kinds.contains(kind), "no {kind} job event among {job_kinds:?}");
    }
    gateway.stop().await;
}
