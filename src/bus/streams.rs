//! The two streams and the worker's durable consumers, created or updated at start.

use std::{future::Future, time::Duration};

use async_nats::jetstream::{
    self, ErrorCode,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    context::{CreateStreamErrorKind, GetStreamErrorKind},
    stream::{Config, ConsumerErrorKind, DiscardPolicy, RetentionPolicy, StorageType},
};
use backon::Retryable;

use super::{Bus, BusError, CommandKind};
use crate::domain::Prefix;

/// Covers a schedule tick's retries: a sweep command re-published within a day is dropped.
pub const COMMAND_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Covers a terminal event re-published by a redelivery (ack wait, lease and backoff add up to
/// minutes, not hours).
pub const EVENT_DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

/// How long stream and consumer setup keeps retrying a cluster that cannot answer yet (a stream
/// or meta leader election, a node restarting) before the process gives up.
pub const SETUP_BUDGET: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}

impl Bus {
    /// Deletes both streams (a test's or a benchmark's, with everything in them); a stream that
    /// does not exist is no error.
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        for name in [self.prefix.commands_stream(), self.prefix.events_stream()] {
            if let Err(error) = self.jetstream.delete_stream(&name).await {
                if self.jetstream.get_stream(&name).await.is_ok() {
                    return Err(BusError::Setup(format!("deleting stream {name}: {error}")));
                }
            }
        }
        Ok(())
    }

    /// The two streams' settings as this process's configuration has them.
    pub fn stream_configs(&self, events_max_age: Duration) -> [Config; 2] {
        stream_configs(&self.prefix, self.replicas, events_max_age)
    }

    /// Finds a stream a worker (or `consolidator setup`) created, waiting up to `patience` for it
    /// to appear, and never changes it: a setting that differs from `wanted` is logged and
    /// returned.
    pub async fn bind_stream(&self, wanted: &Config, patience: Duration) -> Result<Vec<String>, BusError> {
        let name = &wanted.name;
        let deadline = tokio::time::Instant::now() + patience;
        let stream = loop {
            match self.jetstream.get_stream(name).await {
                Ok(stream) => break stream,
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(BusError::Setup(format!(
                        "stream {name} is not there ({error}): a worker creates it at start, or run `consolidator setup`"
                    )));
                }
                Err(error) => {
                    tracing::info!(%error, "waiting for stream {name} (a worker or `consolidator setup` creates it)");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // get_stream read the stream's info already.
        let differences = differences(&stream.cached_info().config, wanted);
        if !differences.is_empty() {
            tracing::warn!(
                stream = %name,
                differences = %differences.join("; "),
                "the live stream's settings differ from this process's; left as they are (a worker or `consolidator setup` applies settings)"
            );
        }
        Ok(differences)
    }

    /// Creates both streams, or updates them to these settings.
    pub async fn ensure_streams(&self, events_max_age: Duration) -> Result<(), BusError> {
        let [commands, events] = self.stream_configs(events_max_age);
        for config in [commands, events] {
            let name = config.name.clone();
            let too_few = || {
                format!(
                    "STREAM_REPLICAS={} needs a NATS cluster of at least that many JetStream servers",
                    self.replicas
                )
            };
            let info = retry_setup(&format!("stream {name}"), || async {
                self.jetstream.create_or_update_stream(config.clone()).await.map_err(|error| {
                    let transient = match error.kind() {
                        CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::Response => true,
                        CreateStreamErrorKind::JetStream(error) => self.may_answer_later(&error),
                        _ => false,
                    };
                    let error = error.to_string();
                    let hint = if self.replicas > 1 && replicas_unavailable(&error) {
                        format!("; {}", too_few())
                    } else {
                        String::new()
                    };
                    SetupFailure { transient, message: format!("{error}{hint}") }
                })
            })
            .await?;
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
        let config = consumer_config(&self.prefix, kind, settings, self.replicas);
        let stream_name = self.prefix.commands_stream();
        let stream = retry_setup(&format!("stream {stream_name}"), || async {
            self.jetstream.get_stream(&stream_name).await.map_err(|error| SetupFailure {
                transient: match error.kind() {
                    GetStreamErrorKind::Request => true,
                    GetStreamErrorKind::JetStream(error) => self.may_answer_later(&error),
                    _ => false,
                },
                message: error.to_string(),
            })
        })
        .await?;
        retry_setup(&format!("consumer {name}"), || async {
            stream.create_consumer(config.clone()).await.map_err(|error| SetupFailure {
                transient: match error.kind() {
                    ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => true,
                    ConsumerErrorKind::JetStream(error) => self.may_answer_later(&error),
                    _ => false,
                },
                message: error.to_string(),
            })
        })
        .await
    }

    fn may_answer_later(&self, error: &jetstream::Error) -> bool {
        // The connected server announces every server of its cluster, itself included.
        let known_servers = self.client.server_info().connect_urls.len().max(1);
        may_answer_later(error, known_servers, self.replicas)
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

/// The two streams of a deployment: commands (a work queue) and events (kept `events_max_age`).
pub fn stream_configs(prefix: &Prefix, replicas: usize, events_max_age: Duration) -> [Config; 2] {
    let commands = Config {
        name: prefix.commands_stream(),
        subjects: vec![prefix.commands_wildcard()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: COMMAND_DUPLICATE_WINDOW,
        discard: DiscardPolicy::Old,
        num_replicas: replicas,
        ..Default::default()
    };
    let events = Config {
        name: prefix.events_stream(),
        subjects: vec![prefix.events_wildcard()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: events_max_age,
        duplicate_window: EVENT_DUPLICATE_WINDOW.min(events_max_age),
        num_replicas: replicas,
        ..Default::default()
    };
    [commands, events]
}

/// The durable pull consumer of one command kind, shared by every worker replica.
pub fn consumer_config(
    prefix: &Prefix,
    kind: CommandKind,
    settings: &ConsumerSettings,
    replicas: usize,
) -> pull::Config {
    let name = prefix.consumer(kind);
    pull::Config {
        durable_name: Some(name.clone()),
        name: Some(name),
        description: Some(format!("consolidator workers: {} commands", kind.as_str())),
        filter_subject: prefix.command(kind),
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        max_ack_pending: settings.max_ack_pending,
        deliver_policy: DeliverPolicy::All,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The settings this service chooses in which `live` differs from `wanted`, as `name: live X, here Y`.
fn differences(live: &Config, wanted: &Config) -> Vec<String> {
    let mut found = Vec::new();
    let mut compare = |name: &str, live: String, wanted: String| {
        if live != wanted {
            found.push(format!("{name}: live {live}, here {wanted}"));
        }
    };
    compare("subjects", format!("{:?}", live.subjects), format!("{:?}", wanted.subjects));
    compare("retention", format!("{:?}", live.retention), format!("{:?}", wanted.retention));
    compare("storage", format!("{:?}", live.storage), format!("{:?}", wanted.storage));
    compare("discard", format!("{:?}", live.discard), format!("{:?}", wanted.discard));
    compare("max_age", format!("{:?}", live.max_age), format!("{:?}", wanted.max_age));
    compare("duplicate_window", format!("{:?}", live.duplicate_window), format!("{:?}", wanted.duplicate_window));
    compare("num_replicas", live.num_replicas.to_string(), wanted.num_replicas.to_string());
    found
}

/// Why one setup request failed, and whether asking again may succeed.
struct SetupFailure {
    transient: bool,
    message: String,
}

/// Runs a setup request, retrying transient failures (1 s, 2 s ... 5 s apart) until
/// [`SETUP_BUDGET`] has passed, requests included; a permanent one (a bad setting, too few
/// servers) fails at once.
async fn retry_setup<T, F, Fut>(what: &str, request: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SetupFailure>>,
{
    let last_failure = std::sync::Mutex::new(String::new());
    let retried = request
        .retry(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(5))
                .without_max_times(),
        )
        .when(|failure| failure.transient)
        .notify(|failure, delay| {
            tracing::warn!(error = %failure.message, ?delay, "JetStream setup of {what} failed; retrying");
            if let Ok(mut last) = last_failure.lock() {
                last.clone_from(&failure.message);
            }
        });
    match tokio::time::timeout(SETUP_BUDGET, retried).await {
        Ok(result) => result.map_err(|failure| BusError::Setup(format!("{what}: {}", failure.message))),
        Err(_) => {
            let last = last_failure.lock().map(|last| last.clone()).unwrap_or_default();
            Err(BusError::Setup(format!("{what}: no answer within {} s (last: {last})", SETUP_BUDGET.as_secs())))
        }
    }
}

/// Whether the cluster may answer later: no meta leader yet, a stream or consumer offline while
/// its node restarts, or a placement refused while fewer servers have joined than the replicas
/// need although the client already knows of that many.
fn may_answer_later(error: &jetstream::Error, known_servers: usize, replicas: usize) -> bool {
    match error.error_code() {
        ErrorCode::CLUSTER_NOT_AVAILABLE
        | ErrorCode::CLUSTER_INCOMPLETE
        | ErrorCode::STREAM_OFFLINE
        | ErrorCode::CONSUMER_OFFLINE => true,
        ErrorCode::CLUSTER_NO_PEERS | ErrorCode::INSUFFICIENT_RESOURCES => known_servers >= replicas,
        // In a cluster, a create that raced a leader change can find our own stream under its
        // subjects (the lookup before it missed); asked again, the lookup finds and updates it.
        ErrorCode::STREAM_SUBJECT_OVERLAP => known_servers > 1,
        _ => false,
    }
}

/// What the server answers when a stream asks for more replicas than it has peers.
fn replicas_unavailable(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    ["insufficient resources", "replicas > 1 not supported", "no suitable peers"].iter().any(|m| error.contains(m))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn api_error(code: usize, err_code: u64) -> jetstream::Error {
        serde_json::from_value(serde_json::json!({ "code": code, "err_code": err_code, "description": "x" }))
            .expect("an API error")
    }

    #[test]
    fn only_an_election_an_offline_replica_or_a_cluster_still_forming_may_answer_later() {
        assert!(may_answer_later(&api_error(503, 10008), 3, 3), "no meta leader yet");
        assert!(may_answer_later(&api_error(500, 10118), 3, 3), "stream offline");
        assert!(may_answer_later(&api_error(400, 10005), 3, 3), "three servers known, not all joined yet");
        assert!(may_answer_later(&api_error(400, 10065), 3, 3), "a cluster's stale lookup before a create");
        assert!(!may_answer_later(&api_error(400, 10065), 1, 1), "one server: the overlap is real");
        assert!(!may_answer_later(&api_error(400, 10005), 2, 3), "a two-server cluster never places three");
        assert!(!may_answer_later(&api_error(503, 10023), 1, 3), "a single server never places three");
        assert!(!may_answer_later(&api_error(503, 10076), 1, 1), "JetStream not enabled");
        assert!(!may_answer_later(&api_error(400, 10058), 3, 3), "stream name in use");
    }

    #[tokio::test]
    async fn setup_asks_again_after_a_transient_failure_and_stops_at_a_permanent_one() {
        let calls = AtomicUsize::new(0);
        let answered = retry_setup("stream S", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(SetupFailure { transient: true, message: "timed out".into() }),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(answered.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let calls = AtomicUsize::new(0);
        let refused = retry_setup("stream S", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(SetupFailure { transient: false, message: "insufficient resources".into() })
        })
        .await;
        assert_eq!(refused.unwrap_err().to_string(), "JetStream setup failed: stream S: insufficient resources");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_live_stream_is_compared_setting_by_setting() {
        let wanted = Config {
            name: "P_EVENTS".into(),
            subjects: vec!["p.evt.>".into()],
            max_age: Duration::from_secs(3600),
            num_replicas: 1,
            ..Default::default()
        };
        assert!(differences(&wanted, &wanted).is_empty());
        let live = Config { num_replicas: 3, max_age: Duration::from_secs(7200), ..wanted.clone() };
        assert_eq!(differences(&live, &wanted), ["max_age: live 7200s, here 3600s", "num_replicas: live 3, here 1"]);
    }

    #[test]
    fn the_servers_answers_to_too_many_replicas_are_recognised() {
        assert!(replicas_unavailable("insufficient resources (code 503, error code 10023)"));
        assert!(replicas_unavailable("replicas > 1 not supported in non-clustered mode"));
        assert!(!replicas_unavailable("stream name already in use"));
    }
}
