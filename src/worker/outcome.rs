//! Every ack decision in one place: a handler returns an [`Outcome`], [`settle`] answers NATS.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;

use crate::bus::{
    Bus,
    messages::{DeadLetter, SCHEMA_VERSION},
};

/// What became of one delivery.
#[derive(Debug)]
pub enum Outcome {
    /// Applied (or found applied already): ack.
    Done,
    /// A transient failure: redeliver later, with backoff.
    Retry { reason: String },
    /// Someone else is on it: look again after `delay` without counting it as a failure.
    Wait { delay: Duration },
    /// Malformed or impossible: never redeliver; dead-letter with the reason.
    Poison { reason: String },
}

/// What settling did, for logs and for the caller that must record a final failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    Acked,
    Redelivering,
    /// Deliveries are exhausted: the caller records the failure with this reason.
    GaveUp(String),
    DeadLettered,
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at 60 s.
pub fn retry_delay(delivery: i64) -> Duration {
    let attempt = usize::try_from(delivery.max(1) - 1).unwrap_or(0);
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt)
        .unwrap_or(Duration::from_secs(60))
}

pub fn deliveries(message: &Message) -> i64 {
    message.info().map(|info| info.delivered).unwrap_or(1)
}

/// Answers NATS for `outcome`; a poison message is published as a dead letter before it is
/// terminated, and a retry on the last allowed delivery gives up the same way.
pub async fn settle(bus: &Bus, message: &Message, command: &str, outcome: Outcome, max_deliver: i64) -> Settled {
    let delivered = deliveries(message);
    let (kind, settled) = match outcome {
        Outcome::Done => (AckKind::Ack, Settled::Acked),
        Outcome::Wait { delay } if delivered < max_deliver => (AckKind::Nak(Some(delay)), Settled::Redelivering),
        Outcome::Wait { .. } => {
            let reason = format!(
                "the job was still held by another worker after {delivered} deliveries; if that worker \
                 died, maintenance fails the job once its lease is long expired"
            );
            dead_letter(bus, message, command, &reason).await;
            (AckKind::Term, Settled::DeadLettered)
        }
        Outcome::Retry { reason } if delivered < max_deliver => {
            let delay = retry_delay(delivered);
            tracing::warn!(%reason, delivered, ?delay, "transient failure, will retry");
            (AckKind::Nak(Some(delay)), Settled::Redelivering)
        }
        Outcome::Retry { reason } => {
            let reason = format!("gave up after {delivered} deliveries: {reason}");
            dead_letter(bus, message, command, &reason).await;
            (AckKind::Term, Settled::GaveUp(reason))
        }
        Outcome::Poison { reason } => {
            dead_letter(bus, message, command, &reason).await;
            (AckKind::Term, Settled::DeadLettered)
        }
    };
    if let Err(error) = message.ack_with(kind).await {
        // The server redelivers after ack_wait; job state in PostgreSQL keeps that harmless.
        tracing::warn!(%error, "could not answer the delivery");
    }
    settled
}

async fn dead_letter(bus: &Bus, message: &Message, command: &str, reason: &str) {
    let info = message.info().ok();
    let letter = DeadLetter {
        schema_version: SCHEMA_VERSION,
        command: command.to_owned(),
        subject: message.subject.to_string(),
        reason: reason.to_owned(),
        payload: String::from_utf8_lossy(&message.payload).into_owned(),
        stream_sequence: info.as_ref().map(|info| info.stream_sequence),
        deliveries: info.as_ref().map(|info| info.delivered),
        at: Utc::now(),
    };
    tracing::error!(%reason, command, "dead-lettering command");
    if let Err(error) = bus.publish_event(bus.prefix.dead_letter(command), &letter).await {
        tracing::error!(%error, "could not publish the dead letter");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_stays_capped() {
        assert!(retry_delay(1) <= Duration::from_secs(2));
        assert!(retry_delay(4) >= Duration::from_secs(8));
        assert!(retry_delay(40) <= Duration::from_secs(120));
    }
}
