//! Stream and consumer setup is idempotent, and a changed setting is applied.

use std::time::Duration;

use consolidator::bus::{CommandKind, streams::ConsumerSettings};

use crate::common::TestEnv;

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
