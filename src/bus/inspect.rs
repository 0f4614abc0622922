//! What an operator reads of the bus (`GET /workers`, `GET /dead-letters`): the command stream's
//! depth and the dead letters, read without consuming anything.

use std::{collections::VecDeque, time::Duration};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::{Bus, BusError, CommandKind};

/// How long reading the dead letters may take before it answers with what it has.
const READ_BUDGET: Duration = Duration::from_secs(5);

/// The command stream's depth, over every command kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandDepth {
    /// Commands no worker has taken yet.
    pub pending: u64,
    /// Commands delivered to a worker and not yet acknowledged.
    pub ack_pending: u64,
    /// Commands delivered more than once and not yet acknowledged.
    pub redelivered: u64,
}

/// One dead letter as the event stream holds it.
#[derive(Debug, Clone)]
pub struct StoredLetter {
    pub sequence: u64,
    pub subject: String,
    pub stored_at: DateTime<Utc>,
    pub payload: Vec<u8>,
}

impl Bus {
    fn setup_error(what: &str, error: impl std::fmt::Display) -> BusError {
        BusError::Setup(format!("{what}: {error}"))
    }

    /// The depth of the work queue: its messages, of which those a worker holds (its durable
    /// consumers' pending acknowledgements) are not pending.
    pub async fn command_depth(&self) -> Result<CommandDepth, BusError> {
        let name = self.prefix.commands_stream();
        let mut stream = self.jetstream.get_stream(&name).await.map_err(|error| Self::setup_error(&name, error))?;
        let messages = stream.info().await.map_err(|error| Self::setup_error(&name, error))?.state.messages;
        let mut depth = CommandDepth::default();
        for kind in CommandKind::ALL {
            // A consumer no worker created yet holds nothing.
            if let Ok(info) = stream.consumer_info(self.prefix.consumer(kind)).await {
                depth.ack_pending += info.num_ack_pending as u64;
                depth.redelivered += info.num_redelivered as u64;
            }
        }
        depth.pending = messages.saturating_sub(depth.ack_pending);
        Ok(depth)
    }

    /// How many dead letters the event stream holds.
    pub async fn dead_letter_count(&self) -> Result<u64, BusError> {
        let name = self.prefix.events_stream();
        let stream = self.jetstream.get_stream(&name).await.map_err(|error| Self::setup_error(&name, error))?;
        let counts = stream.info_with_subjects(self.prefix.dead_letter("*")).await;
        let counts = counts.map_err(|error| Self::setup_error(&name, error))?;
        let counts: Vec<(String, usize)> =
            counts.try_collect().await.map_err(|error| Self::setup_error(&name, error))?;
        Ok(counts.iter().map(|(_, count)| *count as u64).sum())
    }

    /// The newest `limit` dead letters, newest first, read through an ephemeral ordered consumer
    /// (nothing is acknowledged or removed).
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<StoredLetter>, BusError> {
        if limit == 0 || self.dead_letter_count().await? == 0 {
            return Ok(Vec::new());
        }
        let filter = self.prefix.dead_letter("*");
        let mut messages = self.replay_events(filter.clone()).await?;
        let mut newest = VecDeque::with_capacity(limit);
        let read = async {
            while let Some(message) = messages.next().await {
                let message = message.map_err(|error| Self::setup_error(&filter, error))?;
                let info = message.info().map_err(|error| Self::setup_error(&filter, error))?;
                let (sequence, pending) = (info.stream_sequence, info.pending);
                let stored_at = DateTime::from_timestamp(info.published.unix_timestamp(), info.published.nanosecond())
                    .unwrap_or_default();
                if newest.len() == limit {
                    newest.pop_front();
                }
                newest.push_back(StoredLetter {
                    sequence,
                    subject: message.subject.to_string(),
                    stored_at,
                    payload: message.payload.to_vec(),
                });
                if pending == 0 {
                    break;
                }
            }
            Ok::<(), BusError>(())
        };
        match tokio::time::timeout(READ_BUDGET, read).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!("dead letters read for {} s; answering with what was read", READ_BUDGET.as_secs()),
        }
        Ok(newest.into_iter().rev().collect())
    }
}
