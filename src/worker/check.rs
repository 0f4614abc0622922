//! `cmd.check`: "a task just finished": start a `threshold` job if the project is over its
//! threshold and idle.

use async_nats::jetstream::Message;
use tracing::Span;
use uuid::Uuid;

use super::{Outcome, Worker, events::job_event, failure::Failure};
use crate::domain::JobEventKind;
use crate::{
    bus::{
        CommandKind,
        messages::{CheckCommand, SCHEMA_VERSION, TriggerCommand, decode},
    },
    store::{
        jobs::{self, CreateOutcome, NewJob, TriggerType},
        projects,
    },
};

pub async fn handle(worker: &Worker, message: &Message) -> Outcome {
    let command: CheckCommand = match decode(&message.payload) {
        Ok(command) => command,
        Err(error) => return Outcome::Poison { reason: error.to_string() },
    };
    Span::current().record("project_id", command.project_id.to_string());
    match run(worker, &command, check_job_id(message, command.project_id)).await {
        Ok(outcome) => outcome,
        Err(failure) => failure.into(),
    }
}

/// The job a check creates is named by the command: a redelivered check finds its own job
/// instead of creating a second one. Its Nats-Msg-Id, or else its place in the stream.
pub fn check_job_id(message: &Message, project_id: Uuid) -> Uuid {
    let message_id = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|id| id.as_str().to_owned());
    let key = message_id.unwrap_or_else(|| {
        let sequence = message.info().map(|info| info.stream_sequence).unwrap_or_default();
        format!("{}#{sequence}", message.subject)
    });
    Uuid::new_v5(&project_id, format!("check:{key}").as_bytes())
}

async fn run(worker: &Worker, command: &CheckCommand, job_id: Uuid) -> Result<Outcome, Failure> {
    let project = projects::get(&worker.db, command.project_id)
        .await?
        .ok_or_else(|| Failure::Rejected(format!("project {} does not exist", command.project_id)))?;
    if !project.consolidation_enabled {
        tracing::debug!("consolidation disabled for the project; nothing to check");
        return Ok(Outcome::Done);
    }
    let active = projects::active_memory_count(&worker.db, project.id).await?;
    if active <= i64::from(project.consolidation_threshold) {
        return Ok(Outcome::Done);
    }
    let job = NewJob {
        id: job_id,
        project_id: project.id,
        trigger_type: TriggerType::Threshold,
        options: serde_json::json!({}),
        triggered_by: command.requested_by.clone(),
        scheduled_for: None,
        plan_of: None,
    };
    let created = match jobs::create(&worker.db, &job).await? {
        CreateOutcome::Created(created) => {
            tracing::info!(job_id = %created.id, active, threshold = project.consolidation_threshold, "threshold job created");
            created
        }
        // This check's own job, left pending by a delivery whose publish failed: publish again.
        CreateOutcome::Existing(existing) if existing.status == jobs::JobStatus::Pending => existing,
        CreateOutcome::Existing(_) | CreateOutcome::ProjectBusy { .. } => return Ok(Outcome::Done),
    };
    // On failure the job stays pending: the redelivery (or maintenance) publishes it.
    publish_trigger(worker, &job).await?;
    tracing::debug!(job_id = %created.id, "threshold job published");
    Ok(Outcome::Done)
}

/// Publishes the trigger of a job this worker created, and its `queued` event.
pub async fn publish_trigger(worker: &Worker, job: &NewJob) -> Result<(), Failure> {
    let command = TriggerCommand {
        schema_version: SCHEMA_VERSION,
        job_id: job.id,
        project_id: job.project_id,
        options: None,
        trigger_type: job.trigger_type,
        triggered_by: job.triggered_by.clone(),
        plan_of: None,
    };
    worker.bus.publish_command(CommandKind::Trigger, &job.id.to_string(), &command).await?;
    let event = job_event(JobEventKind::Queued, job.id, job.project_id);
    worker.bus.job_progress_event(JobEventKind::Queued, &event).await;
    Ok(())
}
