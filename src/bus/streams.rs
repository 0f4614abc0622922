//! The two streams and the worker's durable consumers, created or updated at start.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
};

use super::{Bus, BusError, CommandKind};

/// Covers a schedule tick's retries: a sweep command re-published within a day is dropped.
pub const COMMAND_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Covers a terminal event re-published by a redelivery (ack wait, lease and backoff add up to
/// minutes, not hours).
pub const EVENT_DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}

impl Bus {
    /// Creates both streams, or updates them to these settings.
    pub async fn ensure_streams(&self, events_max_age: Duration) -> Result<(), BusError> {
        let commands = Config {
            name: self.prefix.commands_stream(),
            subjects: vec![self.prefix.commands_wildcard()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            duplicate_window: COMMAND_DUPLICATE_WINDOW,
            discard: DiscardPolicy::Old,
            num_replicas: self.replicas,
            ..Default::default()
        };
        let events = Config {
            name: self.prefix.events_stream(),
            subjects: vec![self.prefix.events_wildcard()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            max_age: events_max_age,
            duplicate_window: EVENT_DUPLICATE_WINDOW.min(events_max_age),
            num_replicas: self.replicas,
            ..Default::default()
        };
        for config in [commands, events] {
            let name = config.name.clone();
            let too_few = || {
                format!(
                    "STREAM_REPLICAS={} needs a NATS cluster of at least that many JetStream servers",
                    self.replicas
                )
            };
            let info = self.jetstream.create_or_update_stream(config).await.map_err(|error| {
                let error = error.to_string();
                let hint = if self.replicas > 1 && replicas_unavailable(&error) {
                    format!("; {}", too_few())
                } else {
                    String::new()
                };
                BusError::Setup(format!("stream {name}: {error}{hint}"))
            })?;
            // A single server accepts the setting and keeps one copy: count the copies it keeps.
            let copies = info.cluster.as_ref().map_or(1, |cluster| 1 + cluster.replicas.len());
            if copies < self.replicas {
                return Err(BusError::Setup(format!(
                    "stream {name} has {copies} replica(s) where {} were asked for: {}",
                    self.replicas,
                    too_few()
                )));
            }
        }
        Ok(())
    }

    /// The durable pull consumer of one command kind, created or updated to `settings`.
    pub async fn command_consumer(
        &self,
        kind: CommandKind,
        settings: &ConsumerSettings,
    ) -> Result<PullConsumer, BusError> {
        let name = self.prefix.consumer(kind);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            name: Some(name.clone()),
            description: Some(format!("consolidator workers: {} commands", kind.as_str())),
            filter_subject: self.prefix.command(kind),
            ack_policy: AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            max_deliver: settings.max_deliver,
            max_ack_pending: settings.max_ack_pending,
            deliver_policy: DeliverPolicy::All,
            num_replicas: self.replicas,
            ..Default::default()
        };
        let stream = self
            .jetstream
            .get_stream(self.prefix.commands_stream())
            .await
            .map_err(|error| BusError::Setup(format!("stream {}: {error}", self.prefix.commands_stream())))?;
        stream.create_consumer(config).await.map_err(|error| BusError::Setup(format!("consumer {name}: {error}")))
    }

    /// A fresh ordered consumer that replays the events under `filter` from the beginning.
    pub async fn replay_events(&self, filter: String) -> Result<jetstream::consumer::pull::Ordered, BusError> {
        let stream = self
            .jetstream
            .get_stream(self.prefix.events_stream())
            .await
            .map_err(|error| BusError::Setup(format!("stream {}: {error}", self.prefix.events_stream())))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter.clone(),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|error| BusError::Setup(format!("replay of {filter}: {error}")))?;
        consumer.messages().await.map_err(|error| BusError::Setup(format!("replay of {filter}: {error}")))
    }
}

/// What the server answers when a stream asks for more replicas than it has peers.
fn replicas_unavailable(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    ["insufficient resources", "replicas > 1 not supported", "no suitable peers"].iter().any(|m| error.contains(m))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_servers_answers_to_too_many_replicas_are_recognised() {
        assert!(super::replicas_unavailable("insufficient resources (code 503, error code 10023)"));
        assert!(super::replicas_unavailable("replicas > 1 not supported in non-clustered mode"));
        assert!(!super::replicas_unavailable("stream name already in use"));
    }
}
