//! NATS JetStream: subject names, message types, stream and consumer setup, publishing.

pub mod asyncapi;
pub mod inspect;
pub mod messages;
pub mod streams;
pub mod subjects;

use std::time::Duration;

use async_nats::{HeaderMap, jetstream};
use backon::Retryable;
use serde::Serialize;

use crate::{config::NatsConfig, domain::Prefix};
pub use subjects::CommandKind;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect { url: String, source: async_nats::ConnectError },
    #[error("cannot read NATS credentials: {0}")]
    Credentials(std::io::Error),
    #[error("JetStream setup failed: {0}")]
    Setup(String),
    #[error("publish to {subject} failed: {message}")]
    Publish { subject: String, message: String },
    #[error("cannot encode message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where JetStream stored a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Dropped as a repeat inside the duplicate window (`sequence` is then the first one's).
    pub duplicate: bool,
    pub sequence: u64,
}

/// The NATS connection, its JetStream context and the deployment's prefix.
#[derive(Clone, Debug)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub prefix: Prefix,
    /// Replicas of the streams and durable consumers this process creates or updates.
    pub replicas: usize,
}

/// How long a publish waits for JetStream's acknowledgement.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a publish may take, retries (0.2 s, 0.4 s ... 2 s apart) included: a three-node
/// cluster took 5 to 9 s to elect a new stream leader after a `kill -9` of the old one.
const PUBLISH_BUDGET: Duration = Duration::from_secs(12);

impl Bus {
    pub async fn connect(config: &NatsConfig, prefix: Prefix, name: &str) -> Result<Self, BusError> {
        let servers = config.servers().map_err(|error| BusError::Setup(error.to_string()))?;
        let replicas = config.replicas().map_err(|error| BusError::Setup(error.to_string()))?;
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if let Some(path) = &config.nats_creds {
            options = options.credentials_file(path).await.map_err(BusError::Credentials)?;
        }
        if let (Some(user), Some(password)) = (&config.nats_user, &config.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = tokio::time::timeout(Duration::from_secs(15), options.connect(servers))
            .await
            .map_err(|_| BusError::Setup(format!("no answer from NATS at {} within 15 s", config.nats_url)))?
            .map_err(|source| BusError::Connect { url: config.nats_url.clone(), source })?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(PUBLISH_ACK_TIMEOUT);
        Ok(Self { client, jetstream, prefix, replicas })
    }

    /// Publishes a command with its idempotency key; JetStream drops a repeat inside the
    /// duplicate window. Returns whether the server saw it as a duplicate.
    pub async fn publish_command<T: Serialize>(
        &self,
        kind: CommandKind,
        idempotency_key: &str,
        command: &T,
    ) -> Result<bool, BusError> {
        Ok(self.publish_command_stored(kind, idempotency_key, command).await?.duplicate)
    }

    /// Like [`Bus::publish_command`], with where the stream stored it.
    pub async fn publish_command_stored<T: Serialize>(
        &self,
        kind: CommandKind,
        idempotency_key: &str,
        command: &T,
    ) -> Result<Stored, BusError> {
        let subject = self.prefix.command(kind);
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, idempotency_key);
        self.publish_acked(subject, headers, serde_json::to_vec(command)?).await
    }

    /// Whether the command stored at `sequence` is still in the work queue (not yet acked or
    /// removed); an error answers "don't know".
    pub async fn command_still_queued(&self, sequence: u64) -> Result<bool, BusError> {
        let stream = self
            .jetstream
            .get_stream(self.prefix.commands_stream())
            .await
            .map_err(|error| BusError::Setup(format!("stream {}: {error}", self.prefix.commands_stream())))?;
        match stream.get_raw_message(sequence).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(false),
            Err(error) => Err(BusError::Setup(format!("message {sequence}: {error}"))),
        }
    }

    /// Whether a command of `kind` waits in the work queue.
    pub async fn command_queued(&self, kind: CommandKind) -> Result<bool, BusError> {
        let stream = self
            .jetstream
            .get_stream(self.prefix.commands_stream())
            .await
            .map_err(|error| BusError::Setup(format!("stream {}: {error}", self.prefix.commands_stream())))?;
        match stream.get_last_raw_message_by_subject(&self.prefix.command(kind)).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(error) => Err(BusError::Setup(format!("last {} command: {error}", kind.as_str()))),
        }
    }

    /// Publishes an event into the event stream and waits for it to be stored.
    pub async fn publish_event<T: Serialize>(&self, subject: String, event: &T) -> Result<(), BusError> {
        self.publish_event_bytes(subject, serde_json::to_vec(event)?).await
    }

    /// Publishes an event already encoded.
    pub async fn publish_event_bytes(&self, subject: String, payload: Vec<u8>) -> Result<(), BusError> {
        self.publish_acked(subject, HeaderMap::new(), payload).await.map(|_| ())
    }

    /// The end of an unmerge, once per memory.
    pub async fn unmerged_event(&self, event: &messages::UnmergeEvent) -> Result<(), BusError> {
        let subject = self.prefix.memory_unmerged(event.project_id, event.memory_id);
        self.publish_event_once(subject, &format!("unmerged.{}", event.memory_id), event).await
    }

    /// Publishes an event with a message id: a repeat inside the duplicate window is dropped.
    pub async fn publish_event_once<T: Serialize>(
        &self,
        subject: String,
        message_id: &str,
        event: &T,
    ) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id);
        self.publish_acked(subject, headers, serde_json::to_vec(event)?).await.map(|_| ())
    }

    /// Publishes and waits for the stream's acknowledgement, retrying for a few seconds with the
    /// same headers: a reconnect to another server or a stream leader election in a cluster is
    /// ridden out, and the message id keeps a retried command or terminal event single.
    async fn publish_acked(&self, subject: String, headers: HeaderMap, payload: Vec<u8>) -> Result<Stored, BusError> {
        let attempt = || async {
            self.jetstream
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone().into())
                .await
                .map_err(|error| error.to_string())?
                .await
                .map_err(|error| error.to_string())
        };
        let retried = attempt
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .without_max_times(),
            )
            .notify(|error, delay| tracing::debug!(%error, ?delay, subject = %subject, "publish failed; retrying"));
        let ack = tokio::time::timeout(PUBLISH_BUDGET, retried)
            .await
            .map_err(|_| format!("no acknowledgement within {} s", PUBLISH_BUDGET.as_secs()))
            .and_then(|result| result)
            .map_err(|message| BusError::Publish { subject: subject.clone(), message })?;
        Ok(Stored { duplicate: ack.duplicate, sequence: ack.sequence })
    }
}
