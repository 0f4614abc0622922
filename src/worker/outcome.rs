//! Every ack decision in one place: a handler returns an [`Outcome`], [`settle`] answers NATS.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;

use crate::bus::{Bus, messages::DeadLetter};

/// What became of one delivery.
#[derive(Debug)]
pub enum Outcome {
    /// Applied (or found applied already): ack.
    Done,
    /// A failure worth retrying: redeliver later, with backoff. `counted` failures give up after
    /// the configured deliveries; the others (outages, a busy project) only after the retry
    /// budget, measured from the command's publication.
    Retry { reason: String, counted: bool },
    /// Someone else is on it: look again after `delay` without counting it as a failure.
    Wait { delay: Duration },
    /// Malformed or impossible: never redeliver; dead-letter with the reason.
    Poison { reason: String },
    /// This worker is shutting down and stopped the run: redeliver at once (to another worker),
    /// not a failure.
    Release,
    /// Another worker holds the job now: leave the delivery unanswered, since it may be the very
    /// message that worker is running (its answer settles it; otherwise ack-wait redelivers it).
    Abandon,
}

/// What settling did, for logs and for the caller that must record a final failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    Acked,
    Redelivering,
    /// Deliveries are exhausted: the caller records the failure with this reason.
    GaveUp(String),
    /// An outage outlasted the retry budget: dead-lettered, and the job or rollback is left
    /// unfinished for maintenance to publish again (an outage never fails it).
    Expired,
    DeadLettered,
    /// Left unanswered ([`Outcome::Abandon`]).
    Abandoned,
}

/// The longest backoff between two deliveries of a failing command, before jitter (which adds
/// up to as much again): after an outage ends, every waiting command is tried again within
/// twice this.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(15);

/// When a failing delivery gives up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Deliveries a failure that is not an outage may use.
    pub max_deliveries: i64,
    /// How long after its publication a command may keep waiting out an outage.
    pub budget: Duration,
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at [`MAX_RETRY_DELAY`].
pub fn retry_delay(delivery: i64) -> Duration {
    let attempt = usize::try_from(delivery.max(1) - 1).unwrap_or(0);
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt)
        .unwrap_or(MAX_RETRY_DELAY)
}

/// How long ago the command was first published (redeliveries keep that instant).
pub fn age(message: &Message) -> Duration {
    let Ok(info) = message.info() else { return Duration::ZERO };
    let now = Utc::now().timestamp_nanos_opt().map_or(i128::MAX, i128::from);
    let nanos = now.saturating_sub(info.published.unix_timestamp_nanos()).max(0);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

pub fn deliveries(message: &Message) -> i64 {
    message.info().map(|info| info.delivered).unwrap_or(1)
}

/// What became of a failed delivery's retry.
#[derive(Debug, PartialEq, Eq)]
pub enum Retry {
    After(Duration),
    /// Counted failures ran out: the job or rollback fails with the reason.
    GiveUp(String),
    /// The outage outlasted the budget: the message goes, the job stays for maintenance.
    Expire(String),
}

/// What to do with a failed delivery. `failures` is the count of failures that were not
/// outages (kept on the job's or rollback's row; the delivery count when it has none).
pub fn retry_or_give_up(
    reason: &str,
    counted: bool,
    failures: i64,
    delivered: i64,
    age: Duration,
    policy: RetryPolicy,
) -> Retry {
    if counted && failures >= policy.max_deliveries {
        return Retry::GiveUp(format!("gave up after {failures} failed deliveries: {reason}"));
    }
    if !counted && age > policy.budget {
        return Retry::Expire(format!(
            "still failing {} s after the command was published (retry budget {} s): {reason}; \
             maintenance publishes it again",
            age.as_secs(),
            policy.budget.as_secs()
        ));
    }
    Retry::After(retry_delay(delivered))
}

/// Answers NATS for `outcome`; a poison message is published as a dead letter before it is
/// terminated, and a retry past its policy gives up the same way.
pub async fn settle(
    bus: &Bus,
    message: &Message,
    command: &str,
    outcome: Outcome,
    policy: RetryPolicy,
    failures: Option<i64>,
) -> Settled {
    let delivered = deliveries(message);
    let failures = failures.unwrap_or(delivered);
    let (kind, settled) = match outcome {
        Outcome::Done => (AckKind::Ack, Settled::Acked),
        // Bounded by the consumer's own max_deliver; its advisory turns the end into a dead letter.
        Outcome::Wait { delay } => (AckKind::Nak(Some(delay)), Settled::Redelivering),
        Outcome::Release => (AckKind::Nak(None), Settled::Redelivering),
        Outcome::Abandon => return Settled::Abandoned,
        Outcome::Retry { reason, counted } => {
            match retry_or_give_up(&reason, counted, failures, delivered, age(message), policy) {
                Retry::After(delay) => {
                    tracing::warn!(%reason, counted, delivered, ?delay, "delivery failed, will retry");
                    (AckKind::Nak(Some(delay)), Settled::Redelivering)
                }
                Retry::GiveUp(reason) => {
                    dead_letter(bus, message, command, &reason).await;
                    (AckKind::Term, Settled::GaveUp(reason))
                }
                Retry::Expire(reason) => {
                    dead_letter(bus, message, command, &reason).await;
                    (AckKind::Term, Settled::Expired)
                }
            }
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
    let mut letter = DeadLetter::new(command, message.subject.to_string(), reason, &message.payload);
    letter.stream_sequence = info.as_ref().map(|info| info.stream_sequence);
    letter.deliveries = info.as_ref().map(|info| info.delivered);
    publish_dead_letter(bus, letter).await;
}

/// Publishes the dead letter, its payload cut to fit the server's message limit; false if it
/// could not be stored.
pub async fn publish_dead_letter(bus: &Bus, mut letter: DeadLetter) -> bool {
    let (reason, command) = (letter.reason.clone(), letter.command.clone());
    tracing::error!(%reason, command, "dead-lettering command");
    // Room for the headers JetStream adds.
    let limit = bus.client.server_info().max_payload.saturating_sub(1024);
    let encoded = match letter.fit(limit) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::error!(%error, "could not encode the dead letter");
            return false;
        }
    };
    match bus.publish_event_bytes(bus.prefix.dead_letter(&command), encoded).await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, "could not publish the dead letter");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_stays_capped() {
        assert!(retry_delay(1) <= Duration::from_secs(2));
        assert!(retry_delay(4) >= Duration::from_secs(8));
        assert!(retry_delay(40) <= 2 * MAX_RETRY_DELAY);
    }

    #[test]
    fn an_outage_never_uses_up_deliveries_only_the_budget() {
        let policy = RetryPolicy { max_deliveries: 5, budget: Duration::from_secs(3600) };
        let minute = Duration::from_secs(60);
        let retries = |retry| matches!(retry, Retry::After(_));
        assert!(retries(retry_or_give_up("db down", false, 0, 500, 50 * minute, policy)), "500 outage deliveries");
        let Retry::Expire(expired) = retry_or_give_up("db down", false, 0, 3, 61 * minute, policy) else {
            panic!("the budget is spent")
        };
        assert!(expired.contains("retry budget 3600 s") && expired.contains("db down"), "{expired}");
        // After a long outage the delivery count is high; only the counted failures matter.
        assert!(retries(retry_or_give_up("bad row", true, 4, 300, minute, policy)));
        let Retry::GiveUp(reason) = retry_or_give_up("bad row", true, 5, 300, minute, policy) else {
            panic!("counted failures ran out")
        };
        assert!(reason.contains("after 5 failed deliveries"), "{reason}");
    }
}
