//! The NATS users of `deploy/nats.conf` (compose.yaml's), on a server of the test's own: the
//! worker runs with its user, an outside publisher starts jobs and checks and follows the events,
//! and neither it nor a read-only subscriber can cancel, roll back or read the command stream.

use std::time::Duration;

use consolidator::{
    bus::{
        Bus, CommandKind,
        messages::{CancelCommand, CheckCommand, JobEvent, RollbackCommand, SCHEMA_VERSION},
    },
    config::NatsConfig,
    domain::Prefix,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::{harness::*, private_nats::PrivateNats};

const PREFIX: &str = "consolidation";
const PASSWORDS: [(&str, &str); 5] = [
    ("NATS_WORKER_PASSWORD", "worker-secret"),
    ("NATS_GATEWAY_PASSWORD", "gateway-secret"),
    ("NATS_SCHEDULER_PASSWORD", "scheduler-secret"),
    ("NATS_PUBLISHER_PASSWORD", "publisher-secret"),
    ("NATS_SUBSCRIBER_PASSWORD", "subscriber-secret"),
];

fn settings(url: &str, user: &str) -> NatsConfig {
    NatsConfig {
        nats_url: url.to_owned(),
        nats_creds: None,
        nats_user: Some(user.to_owned()),
        nats_password: Some(format!("{user}-secret")),
        prefix: PREFIX.to_owned(),
        events_max_age_hours: 1,
        stream_replicas: 1,
    }
}

async fn connect_as(url: &str, user: &str) -> Bus {
    let mut bus = Bus::connect(&settings(url, user), Prefix::new(PREFIX).unwrap(), user).await.expect("connected");
    bus.jetstream.set_timeout(Duration::from_secs(2));
    bus
}

/// Whether JetStream stored a command published under this user.
async fn stored(bus: &Bus, kind: CommandKind, payload: &impl serde::Serialize) -> bool {
    let payload = serde_json::to_vec(payload).unwrap();
    match bus.jetstream.publish(bus.prefix.command(kind), payload.into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn an_outside_publisher_starts_jobs_and_checks_and_follows_events_and_nothing_more() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nats.conf");
    let server = PrivateNats::start_with(&["-c", config], &PASSWORDS).await;
    let env = TestEnv::with_nats(|nats| *nats = settings(&server.url, "worker")).await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.spawn_worker();
    let publisher = connect_as(&server.url, "publisher").await;
    let subscriber = connect_as(&server.url, "subscriber").await;

    // Triggers and checks go through; the publisher follows its job to the end.
    let command = trigger(project.id, serde_json::json!({}));
    assert!(stored(&publisher, CommandKind::Trigger, &command).await, "a trigger is accepted");
    let check = CheckCommand { schema_version: SCHEMA_VERSION, project_id: Uuid::new_v4(), requested_by: "ci".into() };
    assert!(stored(&publisher, CommandKind::Check, &check).await, "a check is accepted");
    let completed = |event: &JobEvent| event.event.as_str() == "completed";
    let events = publisher.prefix.job_events_of(project.id, command.job_id);
    let seen = events_until::<JobEvent>(&publisher, events.clone(), Duration::from_secs(60), completed).await;
    assert!(seen.last().is_some_and(|(_, event)| completed(event)), "{seen:?}");
    let seen = events_until::<JobEvent>(&subscriber, events, Duration::from_secs(10), completed).await;
    assert!(seen.last().is_some_and(|(_, event)| completed(event)), "the subscriber reads the events too");

    // No cancel, rollback or unmerge; a read-only subscriber publishes no command at all.
    let cancel = CancelCommand {
        schema_version: SCHEMA_VERSION,
        project_id: project.id,
        job_id: command.job_id,
        requested_by: "intruder".into(),
    };
    assert!(!stored(&publisher, CommandKind::Cancel, &cancel).await, "a cancel is refused");
    let rollback = RollbackCommand {
        schema_version: SCHEMA_VERSION,
        rollback_id: Uuid::new_v4(),
        project_id: project.id,
        consolidation_id: command.job_id,
        reason: None,
        requested_by: "intruder".into(),
        cascade: false,
    };
    assert!(!stored(&publisher, CommandKind::Rollback, &rollback).await, "a rollback is refused");
    assert!(!stored(&subscriber, CommandKind::Trigger, &trigger(project.id, serde_json::json!({}))).await);
    let mut anonymous = settings(&server.url, "anonymous");
    (anonymous.nats_user, anonymous.nats_password) = (None, None);
    let mut anonymous = Bus::connect(&anonymous, Prefix::new(PREFIX).unwrap(), "anonymous").await.expect("dialled");
    anonymous.jetstream.set_timeout(Duration::from_secs(2));
    assert!(!stored(&anonymous, CommandKind::Trigger, &trigger(project.id, serde_json::json!({}))).await, "no user");

    // Nor a view of the command stream: no info, no message by sequence, no live copy.
    let commands = publisher.prefix.commands_stream();
    assert!(publisher.jetstream.get_stream(&commands).await.is_err(), "stream info refused");
    let stream = publisher.jetstream.get_stream_no_info(&commands).await.expect("a handle, no request");
    assert!(stream.get_raw_message(1).await.is_err(), "reading a command refused");
    let mut live = publisher.client.subscribe(format!("{PREFIX}.cmd.>")).await.expect("asked");
    assert!(stored(&publisher, CommandKind::Check, &check).await);
    assert!(tokio::time::timeout(Duration::from_secs(1), live.next()).await.is_err(), "no live copy of commands");

    let mut stream = env.bus.jetstream.get_stream(&commands).await.unwrap();
    for kind in [CommandKind::Cancel, CommandKind::Rollback] {
        let subject = env.bus.prefix.command(kind);
        assert!(stream.get_last_raw_message_by_subject(&subject).await.is_err(), "nothing on {subject}");
    }
    assert!(stream.info().await.is_ok());
    worker.stop().await;
}
