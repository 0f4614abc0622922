//! `cmd.unmerge`: take one consolidated memory of the named project apart. A memory of another
//! project, or one that cannot be unmerged, is dead-lettered with the reason, as the gateway
//! answers 404, 409 or 410.

use async_nats::jetstream::Message;
use tracing::Span;

use super::{Outcome, Worker, failure::Failure};
use crate::{
    bus::messages::{UnmergeCommand, decode},
    domain::ArchiveReason,
    store::{
        memories,
        undo::unmerge::{Refusal, Request},
    },
    unmerge::{self, UnmergeError},
};

pub async fn handle(worker: &Worker, message: &Message) -> Outcome {
    let command: UnmergeCommand = match decode(&message.payload) {
        Ok(command) => command,
        Err(error) => return Outcome::Poison { reason: error.to_string() },
    };
    Span::current().record("project_id", command.project_id.to_string());
    if command.requested_by.trim().is_empty() {
        return Outcome::Poison { reason: "requested_by must not be empty".to_owned() };
    }
    match run(worker, &command).await {
        Ok(outcome) => outcome,
        Err(failure) => failure.into(),
    }
}

async fn run(worker: &Worker, command: &UnmergeCommand) -> Result<Outcome, Failure> {
    let request = Request {
        project_id: command.project_id,
        memory_id: command.memory_id,
        requested_by: &command.requested_by,
        reason: command.reason.as_deref(),
        window_days: worker.retention.rollback_window_days,
    };
    match unmerge::run(&worker.db, &worker.bus, &request).await {
        Ok(Ok(_)) => Ok(Outcome::Done),
        Ok(Err(Refusal::Conflict(reason))) => {
            // A redelivery of the command that did it finds the memory retired already.
            let memory = memories::get(&worker.db, command.memory_id).await?;
            if memory.is_some_and(|m| m.archive_reason == Some(ArchiveReason::Unmerged)) {
                return Ok(Outcome::Done);
            }
            Err(Failure::Rejected(reason))
        }
        Ok(Err(Refusal::NotFound(reason) | Refusal::Gone(reason))) => Err(Failure::Rejected(reason)),
        Err(UnmergeError::Store(error)) => Err(error.into()),
        Err(UnmergeError::Bus(error)) => Err(error.into()),
    }
}
