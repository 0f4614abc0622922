//! Stream and consumer setup is idempotent, and a changed setting is applied.

use std::time::Duration;

use consolidator::{
    app,
    bus::{Bus, CommandKind, streams::ConsumerSettings},
};

use crate::harness::*;

#[tokio::test]
async fn streams_and_consumers_are_created_once_and_updated_when_settings_change() {
    let env = TestEnv::new().await;
    env.bus.ensure_streams(Duration::from_secs(3600)).await.expect("ensuring twice is fine");
    env.bus.ensure_streams(Duration::from_secs(7200)).await.expect("a new max age is applied");
    let mut events = env.bus.jetstream.get_stream(env.bus.prefix.events_stream()).await.unwrap();
    assert_eq!(events.info().await.unwrap().config.max_age, Duration::from_secs(7200));

    let first = ConsumerSettings { ack_wait: Duration::from_secs(5), max_deliver: 3, max_ack_pending: 10 };
    env.bus.command_consumer(CommandKind::Rollback, &first).await.unwrap();
    let changed = ConsumerSettings { ack_wait: Duration::from_secs(9), max_deliver: 4, max_ack_pending: 10 };
    let mut consumer = env.bus.command_consumer(CommandKind::Rollback, &changed).await.unwrap();

    let config = consumer.info().await.unwrap().config.clone();
    assert_eq!((config.ack_wait, config.max_deliver), (Duration::from_secs(9), 4));
    assert_eq!(config.filter_subject, env.bus.prefix.command(CommandKind::Rollback));
    assert_eq!(config.durable_name, Some(env.bus.prefix.consumer(CommandKind::Rollback)));
}

#[tokio::test]
async fn several_servers_may_be_named_and_more_replicas_than_servers_is_refused_naming_the_setting() {
    let env = TestEnv::new().await;
    let mut config = env.nats.clone();
    // The first server is not there; the client goes on to the next.
    config.nats_url = format!("nats://127.0.0.1:1, {}", env.nats.nats_url);
    config.stream_replicas = 3;
    let bus = Bus::connect(&config, env.bus.prefix.clone(), "replicas-test").await.expect("connects to the second");
    let error = bus.ensure_streams(Duration::from_secs(3600)).await.unwrap_err().to_string();
    assert!(error.contains("STREAM_REPLICAS=3"), "{error}");

    config.stream_replicas = 1;
    let single = Bus::connect(&config, env.bus.prefix.clone(), "replicas-test").await.unwrap();
    single.ensure_streams(Duration::from_secs(3600)).await.expect("one replica on one server");
    let mut commands = single.jetstream.get_stream(single.prefix.commands_stream()).await.unwrap();
    assert_eq!(commands.info().await.unwrap().config.num_replicas, 1);
}

#[test]
fn replicas_outside_jetstreams_range_and_an_empty_server_list_are_refused() {
    let mut config = consolidator::config::NatsConfig {
        nats_url: "nats://a:4222,nats://b:4222".into(),
        nats_creds: None,
        nats_user: None,
        nats_password: None,
        prefix: "p".into(),
        events_max_age_hours: 1,
        stream_replicas: 0,
    };
    assert_eq!(config.servers().unwrap().len(), 2);
    assert_eq!(config.replicas().unwrap_err().name, "STREAM_REPLICAS");
    config.stream_replicas = 6;
    assert!(config.replicas().is_err());
    config.stream_replicas = 3;
    assert_eq!(config.replicas().unwrap(), 3);
    config.nats_url = " , ".into();
    assert_eq!(config.servers().unwrap_err().name, "NATS_URL");
}

#[tokio::test]
async fn a_test_leaves_no_stream_behind() {
    let env = TestEnv::new().await;
    let (jetstream, prefix) = (env.bus.jetstream.clone(), env.bus.prefix.clone());
    for name in [prefix.commands_stream(), prefix.events_stream()] {
        assert!(jetstream.get_stream(&name).await.is_ok(), "{name} exists while the test runs");
    }
    drop(env);
    for name in [prefix.commands_stream(), prefix.events_stream()] {
        assert!(jetstream.get_stream(&name).await.is_err(), "{name} is deleted with the test's database");
    }
    // Deleting what is already gone is no error.
    let again = TestEnv::new().await;
    again.bus.delete_streams().await.expect("first delete");
    again.bus.delete_streams().await.expect("a stream already gone is no error");
}

#[tokio::test]
async fn a_read_only_client_binds_to_the_live_streams_and_never_changes_them() {
    let env = TestEnv::new().await;
    // What `watch` or `demo` would connect with: a week's max age where the live stream keeps an hour.
    let mut nats = env.nats.clone();
    nats.events_max_age_hours = 168;
    let watcher = app::connect_bus(&nats, "watch", app::StreamAccess::BindEvents(Duration::from_secs(2)))
        .await
        .expect("binds to the live events stream");
    let [_, wanted] = watcher.stream_configs(Duration::from_secs(168 * 3600));
    let differences = watcher.bind_stream(&wanted, Duration::from_secs(2)).await.unwrap();
    assert_eq!(differences, ["max_age: live 3600s, here 604800s"]);
    app::connect_bus(&nats, "demo", app::StreamAccess::Bind(Duration::from_secs(2))).await.expect("binds to both");
    let mut events = env.bus.jetstream.get_stream(env.bus.prefix.events_stream()).await.unwrap();
    assert_eq!(events.info().await.unwrap().config.max_age, Duration::from_secs(3600), "left as it was");

    // Before any worker (or `setup`) created them, a binding client stops and says who creates them.
    env.bus.delete_streams().await.unwrap();
    let error = app::connect_bus(&nats, "watch", app::StreamAccess::BindEvents(Duration::from_secs(1)))
        .await
        .expect_err("no stream to bind to");
    assert!(format!("{error:#}").contains("run `consolidator setup`"), "{error:#}");
    assert!(env.bus.jetstream.get_stream(env.bus.prefix.events_stream()).await.is_err(), "nothing created");
    app::connect_bus(&nats, "setup", app::StreamAccess::Manage).await.expect("setup creates them");
    let mut events = env.bus.jetstream.get_stream(env.bus.prefix.events_stream()).await.unwrap();
    assert_eq!(events.info().await.unwrap().config.max_age, Duration::from_secs(168 * 3600));
}
