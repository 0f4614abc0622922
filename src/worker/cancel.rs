//! `cmd.cancel`: a pending job ends `cancelled` at once; a running one is asked to stop at its
//! next phase boundary (its worker ends it). A cancel of an unknown or finished job can never
//! succeed: it is dead-lettered with the reason, as the gateway answers 404 or 409.

use async_nats::jetstream::Message;
use tracing::Span;

use super::{Outcome, Worker, failure::Failure};
use crate::domain::JobEventKind;
use crate::{
    bus::messages::{CancelCommand, decode},
    store::{
        cancel::{self, CancelRequest},
        jobs::JobStatus,
    },
};

pub async fn handle(worker: &Worker, message: &Message) -> Outcome {
    let command: CancelCommand = match decode(&message.payload) {
        Ok(command) => command,
        Err(error) => return Outcome::Poison { reason: error.to_string() },
    };
    Span::current().record("job_id", command.job_id.to_string()).record("project_id", command.project_id.to_string());
    if command.requested_by.trim().is_empty() {
        return Outcome::Poison { reason: "requested_by must not be empty".to_owned() };
    }
    match run(worker, &command).await {
        Ok(outcome) => outcome,
        Err(failure) => failure.into(),
    }
}

async fn run(worker: &Worker, command: &CancelCommand) -> Result<Outcome, Failure> {
    match cancel::request(&worker.db, command.job_id, command.project_id, &command.requested_by).await? {
        CancelRequest::NotFound => {
            Err(Failure::Rejected(format!("project {} has no job {}", command.project_id, command.job_id)))
        }
        CancelRequest::Requested(_) => Ok(Outcome::Done),
        CancelRequest::Cancelled(job) => {
            worker.bus.job_terminal_event(JobEventKind::Cancelled, &crate::finish::cancelled_event(&job)).await?;
            super::sweep::on_job_finished(worker, job.id).await;
            Ok(Outcome::Done)
        }
        // A redelivery of the command that cancelled it: make sure the end reached the stream.
        CancelRequest::Finished(job)
            if job.status == JobStatus::Cancelled
                && job.cancel_requested_by.as_deref() == Some(command.requested_by.as_str()) =>
        {
            worker.bus.job_terminal_event(JobEventKind::Cancelled, &crate::finish::cancelled_event(&job)).await?;
            Ok(Outcome::Done)
        }
        CancelRequest::Finished(job) => Err(Failure::Rejected(cancel::nothing_to_cancel(&job))),
    }
}
