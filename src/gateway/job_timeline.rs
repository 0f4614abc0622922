//! `GET /consolidation/jobs/{job_id}/timeline`: a job's phases and their durations, its attempts
//! and worker, and its events as they were published.

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    auth::Admin,
    error::{ErrorBody, Result},
    extract::Path,
    status::authorized_job,
};
use crate::{
    bus::messages::JobEvent,
    domain::{JobCost, JobEventKind, JobStatus, Phase, PhaseTimings},
    store::jobs::Job,
};

/// Events a timeline lists at most (a job publishes a handful).
const MAX_EVENTS: usize = 500;
/// The replay ends when the stream says nothing is left, or after this silence.
const REPLAY_IDLE: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobTimeline {
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub status: JobStatus,
    /// Times a worker claimed the job (a retry after a worker died counts).
    pub attempts: i32,
    /// The worker that ran it last.
    pub worker_id: Option<String>,
    pub triggered_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Loading, planning and applying in order, from the job's cost report; empty before it ends.
    pub phases: Vec<PhaseSpan>,
    /// Planning's own steps (partitions, similarity, clustering, merged texts, syntheses,
    /// archives, promotion), from the result's timings.
    pub steps: Vec<PhaseSpan>,
    /// The job's events in the order the event stream holds them (kept EVENTS_MAX_AGE_HOURS).
    pub events: Vec<TimelineEvent>,
    /// The job's cost report (JobCost); absent before it ends.
    #[schema(value_type = Option<Object>)]
    pub cost: Option<JobCost>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PhaseSpan {
    pub name: String,
    /// Milliseconds from the start of loading to the start of this span.
    pub start_ms: f64,
    pub ms: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelineEvent {
    /// The event stream's sequence number.
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub kind: JobEventKind,
    pub phase: Option<Phase>,
    pub progress: Option<f32>,
    pub error: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_timeline))
}

/// A job's timeline: phases with durations, attempts and worker, events, cost.
#[utoipa::path(get, path = "/consolidation/jobs/{job_id}/timeline", tag = "consolidation",
    params(("job_id" = Uuid, Path)),
    responses(
        (status = 200, body = JobTimeline),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 503, description = "NATS unavailable", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(job_id, project_id))]
pub async fn job_timeline(
    admin: Admin,
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
) -> Result<axum::Json<JobTimeline>> {
    let job = authorized_job(&state, &admin, job_id).await?;
    let events = replay(&state, &job).await?;
    Ok(axum::Json(timeline(job, events)))
}

async fn replay(state: &AppState, job: &Job) -> Result<Vec<TimelineEvent>> {
    let mut replay = state.bus.replay_events(state.bus.prefix.job_events_of(job.project_id, job.id)).await?;
    let mut events = Vec::new();
    while events.len() < MAX_EVENTS {
        let Ok(Some(Ok(message))) = tokio::time::timeout(REPLAY_IDLE, replay.next()).await else { break };
        let Ok(info) = message.info() else { break };
        let (sequence, pending) = (info.stream_sequence, info.pending);
        if let Ok(event) = serde_json::from_slice::<JobEvent>(&message.payload) {
            events.push(TimelineEvent {
                sequence,
                at: event.at,
                kind: event.event,
                phase: event.phase,
                progress: event.progress,
                error: event.error,
            });
        }
        if pending == 0 {
            break;
        }
    }
    Ok(events)
}

fn timeline(job: Job, events: Vec<TimelineEvent>) -> JobTimeline {
    let result = job.typed_result();
    let cost = result.as_ref().and_then(|result| result.cost);
    let timings = result.as_ref().and_then(|result| result.timings_and_scope().0.copied());
    JobTimeline {
        job_id: job.id,
        project_id: job.project_id,
        status: job.status,
        attempts: job.attempts,
        worker_id: job.worker_id,
        triggered_by: job.triggered_by,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.completed_at,
        error: job.error_message,
        phases: cost.map(phases).unwrap_or_default(),
        steps: timings.map(|timings| steps(&timings)).unwrap_or_default(),
        events,
        cost,
    }
}

fn spans(durations: &[(&str, f64)]) -> Vec<PhaseSpan> {
    let mut start_ms = 0.0;
    durations
        .iter()
        .map(|(name, ms)| {
            let span = PhaseSpan { name: (*name).to_owned(), start_ms, ms: *ms };
            start_ms += ms;
            span
        })
        .collect()
}

fn phases(cost: JobCost) -> Vec<PhaseSpan> {
    spans(&[("loading", cost.loading_ms), ("planning", cost.planning_ms), ("applying", cost.applying_ms)])
}

fn steps(timings: &PhaseTimings) -> Vec<PhaseSpan> {
    let steps = [
        ("rows", timings.load_rows),
        ("partitions", timings.partitions),
        ("similarity", timings.similarity),
        ("clustering", timings.clustering),
        ("merged texts", timings.merge),
        ("syntheses", timings.synthesis),
        ("archives", timings.archive),
        ("promotion", timings.promote),
    ];
    spans(&steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_each_other_from_the_start_of_loading() {
        let cost = JobCost { loading_ms: 10.0, planning_ms: 30.0, applying_ms: 5.0, ..JobCost::default() };
        let spans = phases(cost);
        let shape: Vec<(&str, f64, f64)> = spans.iter().map(|s| (s.name.as_str(), s.start_ms, s.ms)).collect();
        assert_eq!(shape, vec![("loading", 0.0, 10.0), ("planning", 10.0, 30.0), ("applying", 40.0, 5.0)]);
    }
}
