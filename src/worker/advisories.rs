//! JetStream's own give-up is not silent: when a command consumer reaches its max_deliver, the
//! server publishes an advisory and keeps the message. One worker per advisory (a queue group)
//! fetches the message by its stream sequence, publishes the dead letter with the payload, fails
//! the job or rollback it names, and removes the message.

use std::sync::Arc;

use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Worker, give_up, outcome::publish_dead_letter};
use crate::bus::{Bus, BusError, messages::DeadLetter};

/// The fields of `io.nats.jetstream.advisory.v1.max_deliver` this needs.
#[derive(Debug, Deserialize)]
pub struct MaxDeliveriesAdvisory {
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub deliveries: i64,
}

pub async fn subscribe(bus: &Bus) -> Result<async_nats::Subscriber, BusError> {
    let subject = bus.prefix.max_deliveries_advisories();
    bus.client
        .queue_subscribe(subject.clone(), format!("{}_advisories", bus.prefix))
        .await
        .map_err(|error| BusError::Setup(format!("subscription to {subject}: {error}")))
}

pub async fn listen(worker: Arc<Worker>, mut advisories: async_nats::Subscriber, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = advisories.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        match serde_json::from_slice::<MaxDeliveriesAdvisory>(&message.payload) {
            Ok(advisory) => handle(&worker, &advisory).await,
            Err(error) => tracing::warn!(%error, "unreadable max-deliveries advisory"),
        }
    }
}

/// Dead-letters the message the advisory names and records the failure of its job or rollback.
pub async fn handle(worker: &Worker, advisory: &MaxDeliveriesAdvisory) {
    let Some(kind) = worker.bus.prefix.kind_of_consumer(&advisory.consumer) else { return };
    let stream = match worker.bus.jetstream.get_stream(&advisory.stream).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, stream = %advisory.stream, "advisory's stream not found");
            return;
        }
    };
    let stored = match stream.get_raw_message(advisory.stream_seq).await {
        Ok(stored) => Some(stored),
        Err(error) => {
            tracing::warn!(%error, sequence = advisory.stream_seq, "message of the advisory is gone");
            None
        }
    };
    let reason = format!(
        "JetStream stopped delivering the command after {} deliveries (consumer {} max_deliver)",
        advisory.deliveries, advisory.consumer
    );
    let payload = stored.as_ref().map(|stored| stored.payload.to_vec()).unwrap_or_default();
    let subject = stored.as_ref().map_or_else(|| worker.bus.prefix.command(kind), |stored| stored.subject.to_string());
    let mut letter = DeadLetter::new(kind.as_str(), subject, &reason, &payload);
    letter.stream_sequence = Some(advisory.stream_seq);
    letter.deliveries = Some(advisory.deliveries);
    let lettered = publish_dead_letter(&worker.bus, letter).await;
    give_up(worker, kind, &payload, &reason).await;
    // Kept while its dead letter is not stored: the payload must not be lost.
    if stored.is_some() && lettered {
        if let Err(error) = stream.delete_message(advisory.stream_seq).await {
            tracing::warn!(%error, sequence = advisory.stream_seq, "given-up message not removed");
        }
    }
}
